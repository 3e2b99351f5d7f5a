# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 3: the metrics that decide a launch
#
# The {doc}`concept page <../book/step3_metrics>` argued which metrics matter for a
# click model that feeds an auction. Here we measure them on the toy ad system,
# against the world's ground truth.
#
# ```{admonition} What you will build
# :class: note
# - A three-day impression log from the random server, split by time into
#   history, training and test days.
# - Five click models of increasing quality, from a constant to the oracle that
#   knows the true click probability, scored with log loss, normalized entropy,
#   AUC, calibration and precision/recall/F1.
# - A distortion that leaves AUC untouched while every bid goes wrong, the
#   concept page's two-ad example checked in code, and a reliability diagram.
# - NDCG on a small search-ranking example.
# - The online metrics of the log: CTR, revenue, RPM, ad load.
# - Hundreds of A/A tests on the same log, to see how often a naive test "finds"
#   a difference that does not exist, and the design effect that fixes it.
# - A power curve in days of traffic, and a test length you choose from it.
# ```
#
# Everything is seeded: a rerun gives the same numbers.

# %% tags=["remove-cell"]
# On Colab, fetch the course and install its package first (Binder and local
# installs already have it). The address is `repository.url` in _config.yml.
import sys

if "google.colab" in sys.modules:
    import subprocess

    COURSE = "https://github.com/ml-system-design-built/adsys-course"
    subprocess.run(["git", "clone", "-q", "--depth", "1", COURSE, "/content/course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/course"],
                   check=True)
    sys.path.insert(0, "/content/course/src")

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from adsys import experiment, metrics, plots
from adsys.baseline import serve_random
from adsys.checks import step3
from adsys.features import make_features
from adsys.history import History
from adsys.prediction import LightGBMClickModel, LogisticClickModel
from adsys.world import World

plots.style()
world = World(seed=0)
view = world.view          # what the platform may see; `world` keeps the truth
rng = np.random.default_rng(3)


def pct(x: float, digits: int = 1) -> str:
    """Format a fraction as a percentage string for glue."""
    return f"{100 * x:.{digits}f}%"


# %% [markdown]
# ## 1. A log split by time
#
# The random server shows each request three ads drawn at random among those whose
# targeting matches the user. Its log is the cleanest data we have: no model chose
# what was shown. Each row also carries `true_p`, the world's click probability,
# which no real log has; we keep it aside as the oracle.
#
# We serve three days of the world's default traffic and split them by time, as
# production does: day 0 only provides the platform's history (each ad's and
# user's clicks, each user's page views), day 1 trains, day 2 tests. A random split
# would let the model train on the same hour, the same users' sessions and the same
# ad statistics it is tested on, and flatter it.

# %%
N_REQUESTS = world.config.requests_per_day
days = [serve_random(world, day, N_REQUESTS, rng).assign(day=day) for day in range(3)]
log = pd.concat(days, ignore_index=True)
impressions_per_day = len(log) / len(days)   # used to size experiments in section 9
log.head()

# %% tags=["remove-cell"]
glue("n_requests", f"{N_REQUESTS:,}", display=False)
glue("impressions_per_day", f"{impressions_per_day:,.0f}", display=False)
glue("log_ctr", pct(log["clicked"].mean(), 2), display=False)
glue("n_users", f"{log['user_id'].nunique():,}", display=False)
glue("train_clicks", f"{days[1]['clicked'].sum():,}", display=False)

# %% [markdown]
# Each day has {glue:text}`n_requests` requests and about
# {glue:text}`impressions_per_day` impressions; over the three days
# {glue:text}`n_users` users saw ads and clicked {glue:text}`log_ctr` of them.
#
# Features come from the package's one feature function. The platform's history
# (`adsys.history.History`) is counted on the *previous* day only, so no row's
# label leaks into its own features, and training and test rows see the same
# amount of history. The slot is a feature, since position changes the click rate.


# %%
def history_of(day_log: pd.DataFrame) -> History:
    """The platform's counts from one day of logs: impressions, clicks, page views."""
    history = History(view).add(day_log["user_id"], day_log["ad_id"],
                                day_log["clicked"])
    page_views = day_log.drop_duplicates("request_id")
    return history.add_views(page_views["user_id"], page_views["publisher_id"])


def features(rows: pd.DataFrame, past: pd.DataFrame) -> pd.DataFrame:
    """Features of logged impressions, with the history of ``past`` only."""
    return make_features(view, rows["user_id"], rows["ad_id"], rows["publisher_id"],
                         rows["hour"], rows["position"], history_of(past),
                         rows["exposures"])


history_day, train, test = days
X_train, X_test = features(train, history_day), features(test, train)
y_train, y_test = train["clicked"].to_numpy(), test["clicked"].to_numpy()

# %% [markdown]
# ## 2. Models of increasing quality
#
# Five predictors of the test day's clicks:
#
# - **base rate**: the training day's CTR for every impression;
# - **CTR by position**: the training CTR of the slot, the position effect alone;
# - **logistic regression** and **LightGBM** from `adsys.prediction` on the
#   features above (the tree model is kept small and strongly regularized: the
#   training day of random traffic has only {glue:text}`train_clicks` clicks);
# - **oracle**: the world's true click probability, which no model can beat.

# %%
ctr_by_position = train.groupby("position")["clicked"].mean()
lightgbm = LightGBMClickModel(n_estimators=100, num_leaves=7, learning_rate=0.1,
                              min_child_samples=1000, n_jobs=1)
predictions = {
    "base rate": np.full(len(test), y_train.mean()),
    "CTR by position": ctr_by_position.reindex(test["position"]).to_numpy(),
    "logistic regression": LogisticClickModel().fit(X_train, y_train).predict(X_test),
    "LightGBM": lightgbm.fit(X_train, y_train).predict(X_test),
    "oracle": test["true_p"].to_numpy(),
}

# %% [markdown]
# Precision, recall and F1 need a decision threshold. A click model makes no
# decision (the auction does), so any threshold is arbitrary; we pick one a few
# times the typical CTR.

# %%
THRESHOLD = 0.02


def offline_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The offline metrics of one model on one test set."""
    prf = metrics.precision_recall_f1(y, p, threshold=THRESHOLD)
    return {"log loss": metrics.log_loss(y, p), "NE": metrics.normalized_entropy(y, p),
            "AUC": metrics.roc_auc(y, p),
            "calibration": metrics.calibration_ratio(y, p),
            "precision": prf.precision, "recall": prf.recall, "F1": prf.f1}


table = pd.DataFrame({name: offline_metrics(y_test, p)
                      for name, p in predictions.items()}).T
oracle_loss = table.loc["oracle", "log loss"]
table.insert(1, "% above oracle", 100 * (table["log loss"] / oracle_loss - 1))
table.round(4)

# %% tags=["remove-cell"]
gap = table["% above oracle"]
learned = table.loc[["logistic regression", "LightGBM"]]
best = learned["log loss"].idxmin()
by_loss = list(table["log loss"].sort_values(ascending=False).index)
by_auc = list(table["AUC"].sort_values().index)
assert table.loc["oracle", "AUC"] < 0.9 and table.loc["oracle", "NE"] > 0.7
drift = y_train.mean() / y_test.mean() - 1
assert drift > 0 and (learned["calibration"] > 1).all()
glue("threshold", pct(THRESHOLD, 0), display=False)
glue("oracle_loss", f"{oracle_loss:.4f}", display=False)
glue("oracle_ne", f"{table.loc['oracle', 'NE']:.3f}", display=False)
glue("oracle_ne_gain", pct(1 - table.loc["oracle", "NE"], 0), display=False)
for key, name in [("base", "base rate"), ("position", "CTR by position"),
                  ("logreg", "logistic regression"), ("lgbm", "LightGBM")]:
    glue(f"gap_{key}", f"{gap[name]:.1f}%", display=False)
    glue(f"auc_{key}", f"{table.loc[name, 'AUC']:.3f}", display=False)
glue("auc_oracle", f"{table.loc['oracle', 'AUC']:.3f}", display=False)
glue("best_model", best, display=False)
glue("best_gap", f"{gap[best]:.1f}%", display=False)
glue("best_calibration", f"{table.loc[best, 'calibration']:.2f}", display=False)
glue("base_calibration", f"{table.loc['base rate', 'calibration']:.2f}", display=False)
glue("ctr_drop", pct(1 - y_test.mean() / y_train.mean()), display=False)
# The same test impressions with the training day's topic appeal: only the day differs.
on_train_day = world.click_probability(
    test["user_id"], test["ad_id"], test["publisher_id"], test["hour"],
    test["position"], day=int(train["day"].iloc[0]), exposures=test["exposures"])
drift_rise = on_train_day.sum() / test["true_p"].sum() - 1
chance = ("the two days showed different ads to different requests, and clicks are "
          "random.")
glue("ctr_cause", f"Part of it is the world: its topics drift from day to day, and "
     f"scored with the training day's topic appeal the same test impressions would "
     f"have a true click probability {pct(drift_rise)} higher. The rest is chance: "
     f"{chance}"
     if drift_rise > 0 else
     f"It is not the world's drift: scored with the training day's topic appeal, the "
     f"same test impressions would have a true click probability {pct(-drift_rise)} "
     f"lower, not higher. The drop is chance: {chance}", display=False)
glue("auc_order", "in the same order as log loss" if by_auc == by_loss else
     "in an order that differs from log loss's", display=False)
above = (predictions[best] >= THRESHOLD).mean()
glue("share_above", pct(above, 1), display=False)

# %% [markdown]
# What the table says:
#
# - The oracle's log loss, {glue:text}`oracle_loss` nats per impression, is the
#   floor. Clicks are random even when the probability is known exactly; that
#   noise is all the oracle pays. Its NE is {glue:text}`oracle_ne`: perfect
#   knowledge removes only {glue:text}`oracle_ne_gain` of the base rate's
#   uncertainty, which is normal for ads and why small NE gains matter.
# - The gap to the floor is the learnable error left. The base rate is
#   {glue:text}`gap_base` above the oracle, the position CTR
#   {glue:text}`gap_position`, logistic regression {glue:text}`gap_logreg` and
#   LightGBM {glue:text}`gap_lgbm`. The best learned model here,
#   {glue:text}`best_model`, is {glue:text}`best_gap` above the floor.
# - AUC ranks the models {glue:text}`auc_order`, on a compressed scale: from
#   {glue:text}`auc_base` for the constant, through {glue:text}`auc_position`
#   (position only), {glue:text}`auc_logreg` and {glue:text}`auc_lgbm`, to
#   {glue:text}`auc_oracle` for the truth. Even the oracle is far from 1, because
#   most clicks are luck.
# - Every learned model over-predicts the test day (the best has a calibration
#   ratio of {glue:text}`best_calibration`), and so does the base rate
#   ({glue:text}`base_calibration`): the test day's CTR is
#   {glue:text}`ctr_drop` lower than the training day's. {glue:text}`ctr_cause`
#   A model is calibrated for the day it learned from; that is why production
#   recalibrates daily and alerts on the ratio.
# - Precision, recall and F1 at {glue:text}`threshold` mostly describe the
#   threshold: only {glue:text}`share_above` of the best model's predictions
#   reach it. A model whose predictions never reach it scores 0 on all three,
#   however well calibrated; move the threshold and the ranking of models can
#   change. They answer "should we act on this impression?", a question the
#   auction, not the model, decides.
#
# ```{admonition} Interview angle
# :class: tip
# Say the floor out loud: "log loss can't go to zero, clicks are noisy; what I
# track is the gap to a strong baseline and the NE, and I check calibration
# separately." Interviewers listen for whether you know that a log loss which
# looks high can sit right next to the floor.
# ```

# %% [markdown]
# ## 3. A distortion that AUC cannot see
#
# Take the best model's predictions and distort them with a monotone function:
# multiply the odds p / (1 - p) by a factor k (for small p this is about k x pCTR,
# exactly what a forgotten downsampling correction or a units bug does), or square
# them. Every pair of impressions keeps its order, so AUC cannot change. The bid
# the auction computes from the prediction changes too: by about the factor k when
# the odds are scaled, and by a factor p (each impression its own) when p is squared.


# %%
def scale_odds(p: np.ndarray, factor: float) -> np.ndarray:
    """Multiply the odds p / (1 - p) by ``factor``: monotone, about factor x p."""
    odds = factor * p / (1 - p)
    return odds / (1 + odds)


def distortion_row(p: np.ndarray) -> dict[str, float]:
    """AUC, log loss (also above the oracle) and calibration of predictions ``p``."""
    loss = metrics.log_loss(y_test, p)
    return {"AUC": metrics.roc_auc(y_test, p), "log loss": loss,
            "% above oracle": 100 * (loss / oracle_loss - 1),
            "calibration": metrics.calibration_ratio(y_test, p)}


p_good = predictions[best]
distorted = {best: p_good, "odds x 2": scale_odds(p_good, 2.0),
             "odds / 2": scale_odds(p_good, 0.5), "p squared": p_good**2,
             "square root of p": np.sqrt(p_good)}
distortion_table = pd.DataFrame({n: distortion_row(p) for n, p in distorted.items()}).T
distortion_table.round(4)

# %% tags=["remove-cell"]
factors = np.geomspace(0.25, 4.0, 17)
sweep = pd.DataFrame([{"factor": k, **distortion_row(scale_odds(p_good, k))}
                      for k in factors])
doubled = distortion_table.loc["odds x 2"]
assert round(doubled["AUC"], 4) == round(distortion_table.loc[best, "AUC"], 4)
assert doubled["log loss"] > distortion_table.loc[best, "log loss"], "odds x 2 raise it"
assert doubled["calibration"] > 1.5 * distortion_table.loc[best, "calibration"]
assert round(distortion_table.loc["p squared", "AUC"], 4) == round(doubled["AUC"], 4)
glue("auc_doubled", f"{doubled['AUC']:.4f}", display=False)
glue("auc_undistorted", f"{distortion_table.loc[best, 'AUC']:.4f}", display=False)
glue("gap_doubled", f"{doubled['% above oracle']:.1f}%", display=False)
glue("calibration_doubled", f"{doubled['calibration']:.2f}", display=False)
glue("gap_squared", f"{distortion_table.loc['p squared', '% above oracle']:.0f}%",
     display=False)
glue("gap_undistorted", f"{distortion_table.loc[best, '% above oracle']:.0f}%",
     display=False)
loss_rise = (distortion_table.loc["p squared", "log loss"]
             / distortion_table.loc[best, "log loss"] - 1)
assert loss_rise > 0, "squaring raises the log loss"
glue("rise_squared", f"{loss_rise:.0%}", display=False)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6), sharex=True)
panels = [("AUC", "AUC", None), ("% above oracle", "log loss above oracle (%)", 0.0),
          ("calibration", "calibration ratio\n(sum pCTR / clicks)", 1.0)]
for ax, (column, label, reference) in zip(axes, panels, strict=True):
    ax.plot(sweep["factor"], sweep[column], marker="o", markersize=3)
    if reference is not None:
        ax.axhline(reference, color="grey", linewidth=0.8, linestyle="--")
    ax.set(xscale="log", ylabel=label, xlabel="odds multiplier k")
    ax.set_xticks([0.25, 0.5, 1, 2, 4], ["1/4", "1/2", "1", "2", "4"])
    ax.set_xticks([], minor=True)
axes[0].set_ylim(0.5, 1.0)
axes[0].set_title("AUC: flat")
axes[1].set_title("log loss: U-shaped")
axes[2].set_title("calibration: follows k")
glue("fig_distortion", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_distortion
# :name: fig-step3-distortion
#
# Multiplying the best model's predicted odds by k (x axis, log scale) on the test
# day. AUC (left) does not move; log loss (middle, in % above the oracle) is lowest
# near the model's own predictions and grows on both sides; the calibration ratio
# (right) follows k.
# ```
#
# **Takeaway:** AUC cannot tell a model from the same model with every bid wrong by
# a factor k.
#
# Doubling the odds leaves AUC at {glue:text}`auc_doubled` (it was
# {glue:text}`auc_undistorted`) while the calibration ratio jumps to
# {glue:text}`calibration_doubled` and log loss to {glue:text}`gap_doubled` above
# the oracle: in the auction, that model bids about twice what each impression is
# worth. Squaring the predictions, another monotone map, keeps the same AUC but
# raises the log loss by {glue:text}`rise_squared`, from {glue:text}`gap_undistorted`
# above the oracle to {glue:text}`gap_squared`.
#
# ```{admonition} Pitfall
# :class: warning
# A dashboard that tracks only AUC will stay green through a broken calibration
# layer, a forgotten downsampling correction or a feature-scaling bug that shifts
# every score. Alert on the calibration ratio (overall and per slice) next to AUC
# and log loss.
# ```

# %% [markdown]
# ## 4. Same AUC, different auction
#
# The concept page's worked example has two ads competing for one slot: A bids
# \$2.00 per click and has a true CTR of 1%; B bids \$1.00 and has a true CTR of 3%.
# Give each 1,000 impressions with exactly its true number of clicks, and score
# them with two models that predict one number per ad: an honest one (1% and 3%)
# and one that doubles A's prediction (2% and 3%).

# %%
two_ads = pd.DataFrame({"bid": [2.00, 1.00], "true CTR": [0.01, 0.03],
                        "honest pCTR": [0.01, 0.03], "biased pCTR": [0.02, 0.03]},
                       index=["A", "B"])
y_two = np.concatenate([np.arange(1000) < 10, np.arange(1000) < 30]).astype(int)
rows = {}
for model in ("honest", "biased"):
    p_two = np.repeat(two_ads[f"{model} pCTR"].to_numpy(), 1000)
    ecpm = 1000 * two_ads["bid"] * two_ads[f"{model} pCTR"]   # $ per 1,000 impressions
    winner = ecpm.idxmax()
    rows[model] = {"AUC": metrics.roc_auc(y_two, p_two),
                   "log loss": metrics.log_loss(y_two, p_two),
                   "eCPM of A ($)": ecpm["A"], "eCPM of B ($)": ecpm["B"],
                   "slot goes to": winner, "true value of the slot ($ per 1,000)":
                   1000 * two_ads.loc[winner, "bid"] * two_ads.loc[winner, "true CTR"]}
same_auc = pd.DataFrame(rows).T
same_auc.round(4)

# %% tags=["remove-cell"]
assert same_auc.loc["honest", "AUC"] == same_auc.loc["biased", "AUC"]
assert same_auc.loc["biased", "log loss"] > same_auc.loc["honest", "log loss"]
assert (same_auc["slot goes to"] == ["B", "A"]).all()
glue("two_auc", f"{same_auc.loc['honest', 'AUC']:.3f}", display=False)
glue("two_loss_honest", f"{same_auc.loc['honest', 'log loss']:.4f}", display=False)
glue("two_loss_biased", f"{same_auc.loc['biased', 'log loss']:.4f}", display=False)
value = same_auc["true value of the slot ($ per 1,000)"]
glue("two_value_lost", pct(1 - value["biased"] / value["honest"], 0), display=False)

# %% [markdown]
# Both models have an AUC of {glue:text}`two_auc`: each ranks every impression
# of B above every impression of A, so every (click, non-click) pair is ordered
# the same way. Log loss tells them apart ({glue:text}`two_loss_honest` against
# {glue:text}`two_loss_biased`), and so does the auction: the biased model gives
# the slot to A, whose true value is {glue:text}`two_value_lost` less.
#
# The equality needs a condition: doubling *one* ad's predictions keeps AUC only
# while no doubled prediction overtakes a prediction of another ad. With
# predictions that vary from impression to impression, it does not:

# %%
p_varied = np.concatenate([np.linspace(0.005, 0.015, 1000),
                           np.linspace(0.015, 0.045, 1000)])
y_varied = (np.random.default_rng(0).random(2000) < p_varied).astype(int)
p_a_doubled = np.where(np.arange(2000) < 1000, 2 * p_varied, p_varied)
varied_auc = pd.Series({"honest": metrics.roc_auc(y_varied, p_varied),
                        "A doubled": metrics.roc_auc(y_varied, p_a_doubled),
                        "every ad doubled": metrics.roc_auc(y_varied, 2 * p_varied)},
                       name="AUC")
assert varied_auc["every ad doubled"] == varied_auc["honest"] != varied_auc["A doubled"]
varied_auc.round(4).to_frame()

# %% [markdown]
# Doubling every prediction keeps AUC exactly; doubling one ad's predictions
# moves it, in either direction depending on the data. Either way, AUC is not
# the metric that sees the miscalibration: log loss and the calibration ratio
# per ad (or per advertiser) are.

# %% [markdown]
# ## 5. Reliability diagram
#
# The calibration ratio is one number for all traffic; a model can be right on
# average and wrong at both ends. The reliability diagram sorts impressions into
# ten bins of equal size by prediction and plots the observed click rate against
# the mean prediction in each bin. A calibrated model lies on the diagonal.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5.2, 4.0))
shown_models = {"logistic regression": predictions["logistic regression"],
                "LightGBM": predictions["LightGBM"], "oracle": predictions["oracle"],
                f"{best}, odds x 2": distorted["odds x 2"]}
for (name, p), marker in zip(shown_models.items(), ["o", "s", "^", "D"], strict=True):
    curve = metrics.reliability_curve(y_test, p, bins=10)
    style = "--" if "x 2" in name else "-"
    ax.plot(curve["mean_predicted"], curve["observed_rate"], style, marker=marker,
            markersize=4, label=name)
ticks = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05]
ax.plot([ticks[0], ticks[-1]], [ticks[0], ticks[-1]], color="grey", linewidth=0.8,
        label="calibrated")
ax.set(xscale="log", yscale="log", xlabel="mean predicted CTR in bin (log scale)",
       ylabel="observed CTR in bin (log scale)")
labels = [f"{100 * t:g}%" for t in ticks]
ax.set_xticks(ticks, labels)
ax.set_yticks(ticks, labels)
ax.minorticks_off()
ax.legend(loc="upper left", fontsize=8)
glue("fig_reliability", fig, display=False)
plt.close(fig)


# %% tags=["remove-cell"]
def worst_factor(p: np.ndarray) -> float:
    """The largest factor, either way, between a bin's mean prediction and its CTR."""
    curve = metrics.reliability_curve(y_test, p, bins=10)
    ratio = curve["mean_predicted"] / curve["observed_rate"]
    assert (curve["observed_rate"] > 0).all()
    return float(np.exp(np.abs(np.log(ratio))).max())


glue("rel_oracle", f"{worst_factor(predictions['oracle']):.1f}", display=False)
glue("rel_learned", f"{max(worst_factor(predictions[n]) for n in learned.index):.1f}",
     display=False)

# %% [markdown]
# ```{glue:figure} fig_reliability
# :name: fig-step3-reliability
#
# Reliability diagram on the test day: each point is a tenth of the impressions,
# sorted by prediction; both axes in percent on a log scale. Click noise alone
# moves a point: the oracle's stray from the diagonal by up to a factor of
# {glue:text}`rel_oracle`, since a tenth of the day's impressions holds few clicks
# at the low end. The learned models' points stray by up to a factor of
# {glue:text}`rel_learned`, and on the whole they over-predict the test day, as
# their calibration ratios said. The distorted model (dashed) runs parallel to
# the model it distorts, a factor of two to the right.
# ```
#
# **Takeaway:** calibration is visible per bin, and a monotone distortion moves
# the whole curve off the diagonal while keeping its shape (and its AUC).

# %% [markdown]
# ## 6. NDCG on a small search-ranking example
#
# If the prompt is search ads, the output is a ranked list per query, and the
# metric is NDCG. Take the query "trail running shoes" and six results that human
# raters graded from 0 (irrelevant) to 3 (exactly what the user wants). Three
# rankers order them: ranker 1 from best to worst, ranker 2 with the two best
# results swapped, ranker 3 with the irrelevant result lifted from sixth to fourth.

# %%
results = pd.DataFrame({
    "result": ["trail shoe review", "trail shoe shop", "road running shoes",
               "hiking boots", "running socks", "shoe polish"],
    "rating": [3, 2, 2, 1, 1, 0]})
rankers = {"ranker 1": [0, 1, 2, 3, 4, 5], "ranker 2": [1, 0, 2, 3, 4, 5],
           "ranker 3": [0, 1, 2, 5, 4, 3]}
K = 5


def dcg_table(order: list[int]) -> pd.DataFrame:
    """Per position: gain 2^rating - 1, discount 1 / log2(position + 1), product."""
    rated = results.iloc[order].reset_index(drop=True)
    position = np.arange(1, len(rated) + 1)
    return rated.assign(position=position, gain=2.0 ** rated["rating"] - 1,
                        discount=1 / np.log2(position + 1),
                        contribution=lambda t: t["gain"] * t["discount"])


dcg_table(rankers["ranker 1"]).head(K).round(3)

# %% [markdown]
# DCG@5 is the sum of the contribution column; NDCG@5 divides it by the DCG of
# the ideal order (ratings sorted from best to worst), so a perfect ranking scores
# 1 whatever the query. `metrics.ndcg_at_k` takes the ratings in ranked order:

# %%
ideal = dcg_table(list(np.argsort(-results["rating"].to_numpy(), kind="stable")))
ndcg = {}
for name, order in rankers.items():
    dcg = dcg_table(order)["contribution"].head(K).sum()
    by_hand = dcg / ideal["contribution"].head(K).sum()
    ndcg[name] = metrics.ndcg_at_k(results["rating"].to_numpy()[order], k=K)
    assert np.isclose(by_hand, ndcg[name])
pd.Series(ndcg, name=f"NDCG@{K}").round(3).to_frame()

# %% tags=["remove-cell"]
assert ndcg["ranker 1"] == 1.0 > ndcg["ranker 3"] > ndcg["ranker 2"]
for name, value in ndcg.items():
    glue(f"ndcg_{name[-1]}", f"{value:.3f}", display=False)
glue("ndcg_k", f"{K}", display=False)
glue("ndcg_ideal_dcg", f"{ideal['contribution'].head(K).sum():.3f}", display=False)

# %% [markdown]
# Ranker 1 is the ideal order (NDCG@5 = {glue:text}`ndcg_1`, its DCG
# {glue:text}`ndcg_ideal_dcg`). Ranker 2 swaps the top two and falls to
# {glue:text}`ndcg_2`; ranker 3 moves the irrelevant result up from position 6
# to 4 and only falls to {glue:text}`ndcg_3`: the discount makes mistakes at the
# top cost most, which is what a user scanning from the top experiences. Like AUC,
# NDCG sees only the order: scores of 0.9 and 0.1 or of 9 and 1 give the same
# list. It is the right metric for a stage whose job is order (search ranking,
# the selection stage of Step 5); the ad click model also needs its
# probabilities right.

# %% [markdown]
# ## 7. Online metrics of the log
#
# Offline metrics judge a component; the business is judged on the whole system's
# output. `metrics.online_metrics` summarises an impression log. The random server
# runs no auction, so its log has no prices: as a stand-in we bill each click its
# campaign's maximum CPC (a first-price rule). The revenue figures are therefore an
# upper bound for this traffic, useful only to compare days and, later, policies.

# %%
billed = log.assign(price=log["max_cpc"])
online = pd.DataFrame({f"day {d}": metrics.online_metrics(billed[billed["day"] == d],
                                                          N_REQUESTS)
                       for d in range(3)}).T
online.astype({"impressions": int, "clicks": int}).round(
    {"ctr": 5, "revenue": 0, "rpm": 2, "cpc": 3, "fill_rate": 3, "ads_per_request": 2,
     "ads_per_user": 1})

# %% tags=["remove-cell"]
glue("online_rpm", f"${online['rpm'].mean():.2f}", display=False)
glue("online_cpc", f"${online['cpc'].mean():.2f}", display=False)
glue("ads_per_request", f"{online['ads_per_request'].mean():.2f}", display=False)

# %% [markdown]
# The random server earns about {glue:text}`online_rpm` per thousand requests
# (RPM) at an average cost per click of {glue:text}`online_cpc`, showing
# {glue:text}`ads_per_request` ads per request. These are the numbers a product
# manager reads, and none of them appears in the offline table: a model that
# halves its log loss but shows fewer ads, or cheaper ones, can still lose
# revenue. Step 4 adds what the random server lacks: an auction that prices
# clicks, and pacing that keeps each campaign within its budget.
#
# ```{admonition} In production
# :class: note
# Online metrics are computed from the same logs the A/B platform reads, per arm
# and per day, with guardrails (latency, ad load, hides and complaints, advertiser
# return) next to the target. A model launch is judged on them, not on the
# offline table above.
# ```

# %% [markdown]
# ## 8. A/A tests: how often does "no difference" look significant?
#
# An A/A test splits users into two arms that receive the *same* system. Any
# "significant" difference is a false positive, which at alpha = 0.05 should happen
# 5% of the time. We replay the three-day log under many random user splits (a
# different `assign_arm` salt each time) and test the CTR difference two ways:
#
# - **naive**: a two-proportion z-test that treats every impression as an
#   independent trial;
# - **delta method**: a test on per-user clicks and impressions that respects the
#   randomization unit, the user.

# %%
N_SPLITS, ALPHA = 500, 0.05
per_user = log.groupby("user_id")["clicked"].agg(clicks="sum", impressions="size")
user_ids = per_user.index.to_numpy()
user_clicks = per_user["clicks"].to_numpy(dtype=float)
user_shown = per_user["impressions"].to_numpy(dtype=float)


def aa_test(salt: str) -> dict[str, float]:
    """One A/A split of the logged users: the naive and the delta-method test."""
    b = experiment.assign_arm(user_ids, salt)
    ca, na, cb, nb = (user_clicks[~b].sum(), user_shown[~b].sum(),
                      user_clicks[b].sum(), user_shown[b].sum())
    naive = experiment.two_proportion_test(int(ca), int(na), int(cb), int(nb))
    delta = experiment.ratio_delta_interval(user_clicks[~b], user_shown[~b],
                                            user_clicks[b], user_shown[b])
    naive_se = np.sqrt(naive.rate_a * (1 - naive.rate_a) / na
                       + naive.rate_b * (1 - naive.rate_b) / nb)
    return {"difference": delta.difference, "naive_z": naive.z,
            "naive_p": naive.p_value, "naive_se": naive_se, "delta_z": delta.z,
            "delta_p": delta.p_value, "delta_se": delta.std_error}


aa = pd.DataFrame([aa_test(f"aa-{i}") for i in range(N_SPLITS)])
summary = pd.DataFrame({
    test: {"false-positive rate": (aa[f"{test}_p"] < ALPHA).mean(),
           "mean standard error": aa[f"{test}_se"].mean(),
           "spread of z (1 if correct)": aa[f"{test}_z"].std()}
    for test in ("naive", "delta")}).T
# The design effect: per-user variance of the CTR difference over the binomial one.
design_effect = float((aa["delta_se"].mean() / aa["naive_se"].mean()) ** 2)
summary.round(6)

# %% tags=["remove-cell"]
fpr_naive, fpr_delta = summary["false-positive rate"]
noise = 1.96 * np.sqrt(ALPHA * (1 - ALPHA) / N_SPLITS)
true_se = aa["difference"].std()
assert aa["naive_se"].mean() < true_se and design_effect > 1
assert fpr_naive > ALPHA + noise and abs(fpr_delta - ALPHA) <= noise
glue("n_splits", f"{N_SPLITS}", display=False)
glue("fpr_naive", pct(fpr_naive), display=False)
glue("fpr_delta", pct(fpr_delta), display=False)
glue("fpr_low", pct(ALPHA - noise), display=False)
glue("fpr_high", pct(ALPHA + noise), display=False)
glue("se_true", f"{true_se:.2e}", display=False)
glue("se_naive", f"{aa['naive_se'].mean():.2e}", display=False)
glue("se_delta", f"{aa['delta_se'].mean():.2e}", display=False)
glue("se_naive_short", pct(1 - aa["naive_se"].mean() / true_se, 0), display=False)
glue("design_effect", f"{design_effect:.2f}", display=False)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.0, 3.2))
bins = np.linspace(-4.5, 4.5, 37)
tests = [("naive_z", "naive (per impression)"), ("delta_z", "delta method (per user)")]
for column, label in tests:
    ax.hist(aa[column], bins=bins, density=True, histtype="step", linewidth=1.5,
            label=label)
z = np.linspace(-4.5, 4.5, 200)
ax.plot(z, np.exp(-z**2 / 2) / np.sqrt(2 * np.pi), color="grey", linestyle="--",
        label="N(0, 1): a correct test")
for edge in (-1.96, 1.96):
    ax.axvline(edge, color="C3", linestyle=":", linewidth=1.2,
               label="±1.96: significant outside" if edge > 0 else None)
ax.set(xlabel="z statistic of the A/A difference in CTR (standard errors)",
       ylabel="density (per unit of z)")
ax.legend(loc="upper left", fontsize=8)
glue("fig_aa", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_aa
# :name: fig-step3-aa
#
# z statistics of the CTR difference over repeated A/A splits of the same log, for
# the naive per-impression test and the per-user delta method. Under no true
# difference a correct test follows the dashed N(0, 1); outside the red dotted
# lines at ±1.96 it declares significance at alpha = 0.05.
# ```
#
# **Takeaway:** counting impressions as independent makes the z statistic too
# wide, so the naive test declares more false wins than it promises.
#
# Over {glue:text}`n_splits` splits the naive test was significant in
# {glue:text}`fpr_naive` of them and the delta method in {glue:text}`fpr_delta`;
# with this many splits, a correct 5% test lands between {glue:text}`fpr_low` and
# {glue:text}`fpr_high` by chance alone. The standard errors tell the same story
# more precisely: the actual spread of the difference across splits is
# {glue:text}`se_true`, the delta method estimates {glue:text}`se_delta`, the
# naive formula {glue:text}`se_naive`, too small by {glue:text}`se_naive_short`.
# Users differ in how often they click and how many ads they see, so impressions
# of the same user are correlated; the variance of CTR is
# {glue:text}`design_effect` times what the binomial formula assumes. That factor
# is the *design effect*, and it is what turns a sample size counted in
# independent impressions into the impressions a user-randomized test needs.
#
# ```{admonition} Pitfall
# :class: warning
# Randomize by user, analyse by user. A test that randomizes users but computes
# its variance per impression overstates its confidence, and more so for
# heavy-tailed activity: a platform running dozens of experiments a week then
# ships a steady stream of "wins" that are noise. Run A/A tests on the experiment
# platform itself to catch this.
# ```

# %% [markdown]
# ## 9. Power: how much traffic does a test need?
#
# Before an A/B test, decide the smallest lift worth detecting and compute how
# much traffic it takes to see it with 80% power at alpha = 0.05.
# `experiment.sample_size_per_arm` answers in impressions per arm, *assuming
# independent impressions*, with the formula of the concept page (the pooled
# variance under "no difference", each arm's own variance under the lift). A
# user-randomized test needs the design effect times more. In days of this
# world's traffic, split 50/50:

# %%
ctr = float(log["clicked"].mean())


def days_needed(lift: float, effect: float = 1.0) -> float:
    """Days of this world's traffic, split 50/50, to detect ``lift`` with 80% power."""
    return 2 * experiment.sample_size_per_arm(ctr, lift) * effect / impressions_per_day


plan = pd.DataFrame({
    "impressions per arm (independent)": [experiment.sample_size_per_arm(ctr, lift)
                                          for lift in (0.02, 0.10)],
    "days (independent)": [days_needed(lift) for lift in (0.02, 0.10)],
    "days (x design effect)": [days_needed(lift, design_effect)
                               for lift in (0.02, 0.10)],
}, index=["+2% relative lift", "+10% relative lift"])
plan.round(1)

# %% tags=["remove-cell"]
glue("ctr", pct(ctr, 2), display=False)
ratio = (experiment.sample_size_per_arm(ctr, 0.02)
         / experiment.sample_size_per_arm(ctr, 0.1))
glue("size_ratio", f"{ratio:.0f}", display=False)
for lift in (0.02, 0.10):
    key = f"{round(100 * lift)}"
    glue(f"n_{key}", f"{experiment.sample_size_per_arm(ctr, lift):,}", display=False)
    glue(f"days_{key}", f"{days_needed(lift):.1f}", display=False)
    glue(f"days_{key}_clustered", f"{days_needed(lift, design_effect):.1f}",
         display=False)

# %% tags=["hide-input"]
day_grid = np.geomspace(0.25, 84, 400)
fig, ax = plt.subplots(figsize=(6.0, 3.2))
for lift in (0.02, 0.05, 0.10):
    per_arm = (day_grid * impressions_per_day / 2 / design_effect).astype(int)
    ax.plot(day_grid, [experiment.power(ctr, lift, int(n)) for n in per_arm],
            label=f"+{lift:.0%} relative lift")
ax.axhline(0.8, color="grey", linestyle="--", linewidth=0.8)
for week in (7, 14, 28, 56, 84):
    ax.axvline(week, color="0.85", linewidth=0.6, zorder=0)
day_ticks = [0.5, 1, 2, 3, 7, 14, 28, 56, 84]
ax.set(xscale="log", xlabel="test length (days of this world's traffic, 50/50 split; "
       "log scale)", ylabel="power", xlim=(day_grid[0], day_grid[-1]))
ax.set_xticks(day_ticks, [f"{d:g}" for d in day_ticks])
ax.minorticks_off()
plots.percent_axis(ax, "y", decimals=0)
ax.legend(loc="lower right", fontsize=8)
glue("fig_power", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_power
# :name: fig-step3-power
#
# Probability that a two-sided test at alpha = 0.05 detects a relative CTR lift,
# against the test's length in days of this world's traffic split 50/50, with the
# design effect measured above (per-user variance); days on a log scale. The
# dashed line is the usual 80% target; the light vertical lines mark 1, 2, 4, 8
# and 12 weeks.
# ```
#
# **Takeaway:** a lift five times smaller needs about {glue:text}`size_ratio`
# times more traffic.
#
# At a CTR of {glue:text}`ctr`, detecting a +10% lift takes
# {glue:text}`n_10` impressions per arm if impressions were independent:
# {glue:text}`days_10` days of this world's traffic split 50/50, and
# {glue:text}`days_10_clustered` days once the design effect is included. A +2%
# lift takes {glue:text}`n_2` per arm: {glue:text}`days_2` days
# ({glue:text}`days_2_clustered` with the design effect). Small lifts are what
# mature ad systems mostly ship, which is why large platforms run experiments for
# weeks, use variance reduction, and reserve traffic for them.

# %% [markdown]
# ## 10. Exercises
#
# Each exercise names the variable to fill in; the cell after it checks your
# answer and explains what is wrong if it is not right yet.

# %% [markdown]
# ```{exercise} Normalized entropy by hand
# :label: ex-step3-ne
#
# Compute the normalized entropy of the best model's test predictions `p_good` for
# the test clicks `y_test` without `metrics.log_loss` or
# `metrics.normalized_entropy`: the log loss, divided by the entropy of the test
# day's base rate. Store it in `ne_by_hand`.
# ```

# %% [markdown]
# ```{solution-start} ex-step3-ne
# :class: dropdown
# ```

# %%
base_rate = y_test.mean()
model_loss = -np.mean(np.where(y_test == 1, np.log(p_good), np.log(1 - p_good)))
base_entropy = -(base_rate * np.log(base_rate)
                 + (1 - base_rate) * np.log(1 - base_rate))
ne_by_hand = model_loss / base_entropy

# %% [markdown]
# ```{solution-end}
# ```

# %%
step3.normalized_entropy_by_hand(ne_by_hand, y_test, p_good)

# %% [markdown]
# ```{exercise} Catch the calibration bug
# :label: ex-step3-calibration-bug
#
# A teammate trained the model on negatively downsampled data (non-clicks kept at
# rate w = 0.25) and forgot the correction `recalibrate_downsampled`. Its
# predictions are `p_buggy` below. Compute its AUC, log loss and calibration ratio
# on the test day in a dict `bug_metrics` with keys `"auc"`, `"log_loss"` and
# `"calibration_ratio"`, and set `bug_detector` to the name of the metric you would
# alert on to catch this bug.
# ```

# %%
w = 0.25
p_buggy = p_good / (p_good + (1 - p_good) * w)

# %% [markdown]
# ```{solution-start} ex-step3-calibration-bug
# :class: dropdown
# ```

# %%
bug_metrics = {"auc": metrics.roc_auc(y_test, p_buggy),
               "log_loss": metrics.log_loss(y_test, p_buggy),
               "calibration_ratio": metrics.calibration_ratio(y_test, p_buggy)}
bug_detector = "calibration_ratio"

# %% [markdown]
# ```{solution-end}
# ```

# %%
step3.calibration_bug(bug_metrics, bug_detector, y_test, p_buggy, p_good)

# %% [markdown]
# ```{exercise} Size the experiment
# :label: ex-step3-sample-size
#
# A new feature is expected to lift CTR by 5% (relative). How many impressions per
# arm does a two-sided test at alpha = 0.05 with 80% power need, at the log's CTR
# `ctr`, counting impressions as independent? Store it in `n_per_arm`. Use the
# package or the concept page's formula.
# ```

# %% [markdown]
# ```{solution-start} ex-step3-sample-size
# :class: dropdown
# ```

# %%
n_per_arm = experiment.sample_size_per_arm(ctr, relative_lift=0.05)

# %% [markdown]
# ```{solution-end}
# ```

# %%
step3.sample_size(n_per_arm, base_rate=ctr, relative_lift=0.05)

# %% [markdown]
# ```{exercise} Choose the test's length
# :label: ex-step3-duration
#
# A judgment call. The team wants to detect that +5% lift with 80% power, in a
# user-randomized 50/50 test on this world's traffic (`impressions_per_day`
# impressions a day, from section 1). Read the power curve above, or compute from
# `n_per_arm` and the `design_effect` measured by the A/A tests of section 8, and
# choose how many days the test runs: `test_days`. Any length from the shortest
# one that reaches 80% power up to twice that, rounded up to whole weeks, is
# accepted; the check says what your choice trades.
# ```

# %%
print(f"impressions_per_day = {impressions_per_day:,.0f}, design_effect = {design_effect:.2f}")

# %% [markdown]
# ```{solution-start} ex-step3-duration
# :class: dropdown
# ```

# %%
days_for_power = 2 * n_per_arm * design_effect / impressions_per_day
test_days = 7 * int(np.ceil(days_for_power / 7))     # whole weeks

# %% [markdown]
# ```{solution-end}
# ```

# %%
step3.experiment_days(test_days, base_rate=ctr, relative_lift=0.05,
                      impressions_per_day=impressions_per_day,
                      design_effect=design_effect)

# %% [markdown]
# ## 11. Recap
#
# - Log loss has a floor, the oracle's; the learnable error is the gap to it, and
#   NE makes it comparable across days and segments.
# - AUC and NDCG see only order: a distortion that breaks every bid, or one ad's
#   predictions doubled, can leave them unchanged. Log loss and the calibration
#   ratio see it.
# - A model is calibrated for the day it learned from; the next day's drift shows
#   up first in the calibration ratio.
# - Impressions of one user are correlated: randomize and analyse by user, and
#   multiply a sample size counted in impressions by the measured design effect.
# - Size the test before running it, and choose its length from the power curve.

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# "Offline, I'd judge the click model by log loss, or normalized entropy to compare
# across traffic, because its output is multiplied by a bid: on our test day the
# floor, the log loss of the true probabilities, was {glue:text}`oracle_loss`, and
# the best model was {glue:text}`best_gap` above it. I'd report AUC but never alone:
# doubling every prediction kept AUC at {glue:text}`auc_doubled` while log loss
# rose to {glue:text}`gap_doubled` above the floor; so I'd also track the
# calibration ratio overall and per slice. For a search variant I'd add NDCG on the
# ranked list. Online, the decision is an A/B test on revenue per thousand requests
# and CTR, with guardrails on latency, ad load, hides and advertiser return. I'd
# randomize by user and compute the variance per user: in A/A replays of our logs
# the naive per-impression test was significant {glue:text}`fpr_naive` of the time
# against {glue:text}`fpr_delta` for the delta method. And I'd size the test first:
# with the design effect of {glue:text}`design_effect`, a +2% lift needed
# {glue:text}`days_2_clustered` days of this system's traffic, a +10% lift
# {glue:text}`days_10_clustered` days."
# ```
