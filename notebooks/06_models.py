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
# # Lab 6.2: the model ladder, calibration and downsampling
#
# The {doc}`concept page <../book/step6_models>` argued for climbing a ladder of
# click models, each rung justified by what it buys against the
# {term}`oracle log loss`, and for calibrating whatever comes out on top, because
# the auction multiplies it by money. {doc}`Lab 6.1 <06_features>` built the
# training data; here we climb the ladder on the platform's own logs and measure
# every step against the world's truth.
#
# ```{admonition} What you will build
# :class: note
# - **Training data as the nightly job writes it**: four days of the ad system's
#   logs, labels from a one-hour {term}`attribution window`, negatives
#   downsampled, the next day held out.
# - **The model ladder**: logistic regression, logistic regression with crosses,
#   LightGBM, and boosted trees as features for a logistic model, each against
#   the oracle in log loss, NE, AUC and calibration, with its training and
#   scoring time.
# - **What no observable can reach**: the same trees given the world's hidden
#   truth, to split the remaining gap into what the platform could learn and what
#   it cannot see.
# - **Calibration**: Platt and isotonic calibrators, calibration by slice (new
#   ads, devices, positions), and why a second-price auction needs it.
# - **Negative downsampling**: the keep rate against training time and log loss,
#   and the rate you would ship.
# ```

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
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from adsys import metrics, plots
from adsys.auction import run_auction
from adsys.checks import step6
from adsys.events import FEATURE_PREFIX, join_clicks, training_data
from adsys.features import NUMERIC_COLUMNS
from adsys.ladder import (
    CalibratedClickModel,
    TreeLogisticClickModel,
    calibration_by_slice,
)
from adsys.observable import SECONDS_PER_DAY
from adsys.prediction import (
    Calibrator,
    LightGBMClickModel,
    LogisticClickModel,
    downsample_negatives,
    recalibrate_downsampled,
)
from adsys.simulate import SimulationConfig, simulate
from adsys.world import World

plots.style()
threadpool_limits(1)      # one thread per numeric library: small, shared machines
SEED = 0
N_REQUESTS = 50_000       # requests per simulated day (the default world has 100k)
WINDOW = 3600.0           # attribution window of the labels, seconds
KEEP = 0.25               # share of non-clicks kept in the training data


def pct(x: float, digits: int = 1) -> str:
    """Format a fraction as a percentage string for glue."""
    return f"{100 * x:.{digits}f}%"


# %% [markdown]
# ## 1. Four days of the platform's logs
#
# We run the ad system of Step 4 for four days: each night it retrains on its
# own logs, so these are the impressions a real team would have, chosen by the
# previous model and the auction. To fit in a short lab, a day has
# {glue:text}`n_requests` requests (the default world has twice as many) and the
# nightly model trains on one day.

# %%
world = World(seed=SEED)
config = SimulationConfig(browsing_days=2, training_days=1, bootstrap_requests=30_000)
days = list(simulate(world, 4, seed=SEED, config=config, n_requests=N_REQUESTS))
pd.DataFrame({"impressions": [len(d.impressions) for d in days],
              "CTR": [d.impressions["true_p"].mean() for d in days]},
             index=[f"day {d.day}" for d in days]).round(4)

# %% [markdown]
# The training data is what the nightly job writes at the end of day 2: the
# features logged at serving time and a label per impression whose one-hour
# window has closed (`events.training_data`). Day 3 is held out, labelled once
# all its windows have closed. Its **oracle** is the world's true click
# probability times the share of clicks that arrive within the window,
# `true_p x world.delay_cdf(3600)`: a one-hour label can be no likelier than that.

# %%
def served_features(log: pd.DataFrame) -> pd.DataFrame:
    """The features the model saw at serving time (the log's f_ columns)."""
    columns = [c for c in log if c.startswith(FEATURE_PREFIX)]
    return log[columns].rename(columns=lambda c: c[len(FEATURE_PREFIX):])


clicks = pd.concat([d.clicks for d in days], ignore_index=True)
past = pd.concat([d.impressions for d in days[:3]], ignore_index=True)
X_all, y_all = training_data(past, clicks, WINDOW, as_of=3 * SECONDS_PER_DAY)
y_all = y_all.to_numpy()
closed_rows = past["time"] + WINDOW <= 3 * SECONDS_PER_DAY     # the rows of X_all
past_day = past["day"].to_numpy()
past = past.loc[closed_rows, ["user_id", "ad_id"]].reset_index(drop=True)
closed_rows = closed_rows.to_numpy()
test, _ = join_clicks(days[3].impressions, clicks, WINDOW)
X_test, y_test = served_features(test), test["clicked"].to_numpy()
oracle = test["true_p"].to_numpy() * world.delay_cdf(WINDOW)
oracle_loss = metrics.log_loss(y_test, oracle)
del days, clicks     # keep only what the lab uses: the logs are large

# %% [markdown]
# Clicks are rare, so most rows are non-clicks that teach the model little
# each. The job keeps every click and a random {glue:text}`keep` of the
# non-clicks ({term}`negative downsampling`); a model trained on them predicts
# too high, and `recalibrate_downsampled` maps its output back (section 5
# measures the trade).

# %%
keep = downsample_negatives(y_all, KEEP, np.random.default_rng(SEED))
X, y = X_all[keep], y_all[keep]
pd.Series({"training impressions (days 0-2, closed windows)": len(X_all),
           "... of which clicks": int(y_all.sum()),
           "rows after downsampling": len(X),
           "test impressions (day 3)": len(X_test),
           "oracle log loss on day 3": round(oracle_loss, 5)}, name="").to_frame()

# %% tags=["remove-cell"]
glue("n_requests", f"{N_REQUESTS:,}", display=False)
glue("keep", pct(KEEP, 0), display=False)
glue("n_train", f"{len(X_all):,}", display=False)
glue("n_train_clicks", f"{int(y_all.sum()):,}", display=False)
glue("n_rows", f"{len(X):,}", display=False)
glue("oracle_loss", f"{oracle_loss:.4f}", display=False)

# %% [markdown]
# ## 2. The ladder
#
# Four rungs, each a `ClickModel` with the same `fit` and `predict`, trained on
# the same rows:
#
# 1. **Logistic regression** on the features of every player (one-hot
#    categoricals, standardized numerics): the baseline, additive in the logit.
# 2. **Logistic regression with crosses**: a weight per *pair* of categories
#    for four pairs, each an interaction an analyst would suspect after the EDA
#    of Lab 6.1 (who likes which topic, when, on which pages): age band x ad
#    topic, gender x ad topic, hour x ad topic, page topic x ad topic.
# 3. **LightGBM**: boosted trees that find interactions by themselves.
# 4. **Trees as features for a logistic model** {cite}`he2014practical`: each of
#    100 small trees sends a row to one of its leaves; the leaves become one-hot
#    features of a strongly regularized logistic regression.

# %%
CROSSES = (("age_band", "ad_topic"), ("gender", "ad_topic"), ("hour", "ad_topic"),
           ("page_topic", "ad_topic"))
ladder = {
    "logistic": LogisticClickModel(downsampling_rate=KEEP),
    "logistic + crosses": LogisticClickModel(downsampling_rate=KEEP, crosses=CROSSES),
    "LightGBM": LightGBMClickModel(n_estimators=100, learning_rate=0.15, n_jobs=1,
                                   downsampling_rate=KEEP),
    "trees -> logistic": TreeLogisticClickModel(downsampling_rate=KEEP),
}
predictions, cost = {}, {}
for name, model in ladder.items():
    start = time.process_time()
    model.fit(X, y)
    fitted = time.process_time()
    predictions[name] = model.predict(X_test)
    cost[name] = (fitted - start, time.process_time() - fitted)

# %% [markdown]
# Every rung is scored on the held-out day like the oracle: log loss and how far
# above the oracle it is, {term}`normalized entropy`, {term}`AUC`, the
# calibration ratio (predicted clicks over clicks), and the CPU time to train
# and to score a row.

# %%
def scores(p: np.ndarray) -> dict[str, float]:
    """The offline metrics of predictions p on the test day."""
    loss = metrics.log_loss(y_test, p)
    return {"log loss": loss, "% above oracle": 100 * (loss / oracle_loss - 1),
            "NE": metrics.normalized_entropy(y_test, p),
            "AUC": metrics.roc_auc(y_test, p),
            "calibration": metrics.calibration_ratio(y_test, p)}


table = pd.DataFrame({name: {**scores(p), "train (CPU s)": cost[name][0],
                             "score (µs/row)": 1e6 * cost[name][1] / len(X_test)}
                      for name, p in predictions.items()}).T
table.loc["oracle"] = {**scores(oracle), "train (CPU s)": np.nan,
                       "score (µs/row)": np.nan}
table.round({"log loss": 5, "% above oracle": 2, "NE": 4, "AUC": 4, "calibration": 3,
             "train (CPU s)": 1, "score (µs/row)": 1})

# %% tags=["remove-cell"]
gap = table["% above oracle"].drop("oracle")
best = gap.idxmin()
for key, name in [("lr", "logistic"), ("cross", "logistic + crosses"),
                  ("lgbm", "LightGBM"), ("tlr", "trees -> logistic")]:
    glue(f"gap_{key}", f"{gap[name]:.1f}%", display=False)
    glue(f"auc_{key}", f"{table.loc[name, 'AUC']:.3f}", display=False)
    glue(f"fit_{key}", f"{table.loc[name, 'train (CPU s)']:.1f}", display=False)
    glue(f"us_{key}", f"{table.loc[name, 'score (µs/row)']:.1f}", display=False)
glue("auc_oracle", f"{table.loc['oracle', 'AUC']:.3f}", display=False)
glue("best", best, display=False)
glue("best_gap", f"{gap[best]:.1f}%", display=False)
trees_vs_plain = gap["logistic"] - gap["LightGBM"]
glue("trees_vs_plain", f"{trees_vs_plain:.1f}", display=False)
per_row = table["score (µs/row)"]
glue("lgbm_slower", f"{per_row['LightGBM'] / per_row['logistic']:.0f}", display=False)
glue("cross_vs_lgbm",
     "below" if gap["logistic + crosses"] < gap["LightGBM"] else "above",
     display=False)
glue("tlr_vs_lgbm", "closer to" if gap["trees -> logistic"] < gap["LightGBM"]
     else "further from", display=False)
cheap = per_row["logistic + crosses"] < per_row["LightGBM"] / 3
glue("cross_cost", "at a fraction of the trees' scoring cost" if cheap
     else "at about the trees' scoring cost", display=False)
tlr_cost = per_row["trees -> logistic"] / per_row["LightGBM"]
glue("tlr_cost", "at about the trees' scoring cost" if tlr_cost > 0.5
     else "at a fraction of the trees' scoring cost", display=False)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 2.6))
order = gap.sort_values(ascending=False)
colors = ["C3" if name == best else "C0" for name in order.index]
ax.barh(order.index, order.to_numpy(), color=colors)
for i, (name, value) in enumerate(order.items()):
    ax.annotate(f"{value:.1f}%   train {table.loc[name, 'train (CPU s)']:.1f} s",
                (value, i), xytext=(4, 0), textcoords="offset points", va="center",
                fontsize=8)
ax.set(xlabel="held-out log loss above the oracle (%)", xlim=(0, 1.45 * order.max()))
glue("fig_ladder", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_ladder
# :name: fig-step6-ladder
#
# Held-out log loss of each rung, in percent above the oracle's (0% is the
# truth), with its CPU training time; the best rung in red.
# ```
#
# **Takeaway:** trees beat the plain logistic model, and a logistic model given
# the right crosses, or the trees' leaves, gets further still.
#
# - The plain logistic model is {glue:text}`gap_lr` above the oracle: it cannot
#   express "this age band likes this topic" with one weight per age band and
#   one per topic.
# - LightGBM finds those interactions itself and is {glue:text}`gap_lgbm` above
#   ({glue:text}`trees_vs_plain` points better), but scores a row about
#   {glue:text}`lgbm_slower` times slower: a Step 5 cost.
# - The logistic model with the four crosses lands {glue:text}`cross_vs_lgbm`
#   LightGBM, at {glue:text}`gap_cross`: three of this world's interactions are
#   topic x something (hour, age band, gender), and a cross gives each cell its
#   own weight; the other two run through the user's hidden interest. In a
#   real system with hundreds of features nobody knows all the crosses worth
#   making; finding them is what the trees are for.
# - Trees as features for a logistic model ({glue:text}`gap_tlr`) end up
#   {glue:text}`tlr_vs_lgbm` the oracle than LightGBM alone: the trees propose
#   the interactions, the regularized linear model weighs them, and it can be
#   retrained on fresh data every hour without regrowing the trees.
#
# AUC tells the same story on a squeezed scale, from {glue:text}`auc_lr` to
# {glue:text}`auc_oracle` for the truth.

# %%
assert gap["LightGBM"] < gap["logistic"], "the prose says trees beat plain logistic"
assert gap["logistic + crosses"] < gap["logistic"]
assert max(gap["logistic + crosses"], gap["trees -> logistic"]) < gap["LightGBM"]

# %% [markdown]
# **On paper.** A colleague's new model beats production by 1% in NE offline
# but scores a row 20 times slower, and the serving path has a fixed latency
# budget. What do you check before proposing it, and what are your options?
#
# ```{admonition} Model answer
# :class: dropdown
# Check the gain is real: the same held-out days, the same labels, per slice,
# against a baseline retrained on the same data, and calibration after the
# calibrator. Then price the latency: at a fixed budget, a slower heavy model
# scores fewer candidates (a smaller K in the funnel of Step 5), which can cost
# more revenue than 1% NE buys. Options: distil the model or prune its trees;
# use it as trees-as-features for a logistic layer; keep it for the top few
# candidates only; cache per-user or per-ad parts; or buy the machines if the
# A/B test shows the revenue pays for them. Offline wins are candidates, not
# launches.
# ```

# %% [markdown]
# ```{admonition} Interview angle
# :class: tip
# "Which model?" is a question about a ladder, not a name. Start with logistic
# regression (fast, calibrated, debuggable), add crosses you can justify, move to
# trees when the gain pays for their serving cost, and quote the gain against a
# floor, not against the previous rung only.
# ```

# %% [markdown]
# ## 3. What no observable can reach
#
# The best rung is still {glue:text}`best_gap` above the oracle. How much of the
# rest could better features win? In a simulation we can ask directly: give the
# logistic model with crosses, as three extra columns, the hidden quantities of
# the world's click model (the user's true interest in the ad's topic, the ad's
# quality, the user's propensity to click) and see how close it gets. This is
# an analysis, not a platform component: no real system has these columns.

# %%
def hidden(log: pd.DataFrame) -> pd.DataFrame:
    """The world's hidden truth for each impression (analysis only)."""
    user, ad = log["user_id"].to_numpy(), log["ad_id"].to_numpy()
    topic = world.view.ads["topic"].to_numpy()[ad]
    return pd.DataFrame({"true interest": world.interests[user, topic],
                         "ad quality": world.ad_quality[ad],
                         "user bias": world.user_bias[user]}, index=log.index)


truth_train, truth_test = hidden(past)[keep], hidden(test)
crossed = ladder["logistic + crosses"]
encode = ColumnTransformer([
    ("categorical", OneHotEncoder(handle_unknown="ignore"), list(crossed.categorical)),
    ("numeric", StandardScaler(), [*NUMERIC_COLUMNS, *truth_train.columns])])
given_truth = make_pipeline(encode, LogisticRegression(max_iter=2000))
given_truth.fit(pd.concat([crossed.inputs(X), truth_train], axis=1), y)
p = given_truth.predict_proba(pd.concat([crossed.inputs(X_test), truth_test], axis=1))
reach = pd.DataFrame({
    "logistic + crosses": scores(predictions["logistic + crosses"]),
    "logistic + crosses + hidden truth": scores(recalibrate_downsampled(p[:, 1], KEEP)),
}).T
reach.round(4)

# %% tags=["remove-cell"]
reach_gap = reach["% above oracle"]
glue("reach_all", f"{reach_gap.iloc[1]:.1f}%", display=False)
glue("reach_hidden_share", pct(1 - reach_gap.iloc[1] / reach_gap.iloc[0], 0),
     display=False)
assert reach_gap.iloc[1] < reach_gap.iloc[0]

# %% [markdown]
# Knowing each user's true interest, the ad's true quality and the user's
# propensity to click takes the model from {glue:text}`gap_cross` to
# {glue:text}`reach_all` above the oracle. So about
# {glue:text}`reach_hidden_share` of its gap is information the platform does
# not observe: interests it infers from a few page views and clicks, quality
# it infers from an ad's few hundred impressions. No model closes that part;
# only better signals (more history, new features) can. The rest,
# {glue:text}`reach_all` even with the truth in hand, is finite data (a model
# that must *learn* how the truth maps to clicks from
# {glue:text}`n_train_clicks` clicks) and the effects the model's form does not
# express. The {doc}`concept page <../book/step6_models>` splits the gap
# quantity by quantity on the default world's full traffic, and shows the
# finite-data part shrinking with more days.

# %% [markdown]
# ## 4. Calibration
#
# The auction ranks by eCPM = 1000 x bid x pCTR and charges the winner of each
# slot the least it could have bid to keep it, `max(next eCPM, reserve) / (1000 x
# own pCTR)` per click. The pCTR appears in the ranking *and* in the price, so an
# ad whose pCTR is twice too high wins slots it should lose and pays half per
# click. A worked example with three ads for two slots:

# %%
bids = np.array([1.00, 0.80, 0.60])          # dollars per click
true_ctr = np.array([0.020, 0.030, 0.035])
for label, pctr in [("calibrated", true_ctr), ("ad 0 at 2x", true_ctr * [2, 1, 1])]:
    result = run_auction(bids, pctr, n_slots=2, reserve=1.0)
    # expected dollars per 1000 page views: true CTR x price per click, summed
    value = true_ctr[result.slots] * result.prices * 1000
    print(f"{label:>10}: slots {result.slots.tolist()}, price per click "
          f"{np.round(result.prices, 3).tolist()}, revenue per 1000 page views "
          f"${value.sum():.2f}")

# %% tags=["remove-cell"]
honest = run_auction(bids, true_ctr, n_slots=2, reserve=1.0)
inflated = run_auction(bids, true_ctr * [2, 1, 1], n_slots=2, reserve=1.0)
revenue = [1000 * (true_ctr[r.slots] * r.prices).sum() for r in (honest, inflated)]
assert list(honest.slots) == [1, 2] and list(inflated.slots) == [0, 1]
assert revenue[1] < revenue[0]
glue("auction_top", f"ad {honest.slots[0]}", display=False)
glue("auction_revenue", f"${revenue[0]:.2f}", display=False)
glue("auction_revenue_bad", f"${revenue[1]:.2f}", display=False)
glue("auction_price_bad", f"${inflated.prices[0]:.2f}", display=False)

# %% [markdown]
# Calibrated, ad 0 (the highest bid, the lowest click rate) loses, and the page
# expects {glue:text}`auction_revenue` per thousand page views. With ad 0's pCTR
# doubled it takes slot 1 and pays {glue:text}`auction_price_bad` per click, a
# price computed from its inflated pCTR; the page now expects
# {glue:text}`auction_revenue_bad`; {glue:text}`auction_top` drops to slot 2,
# and ad 2, the ad users like most, is no longer shown. Every price is a ratio
# of predictions, so calibration is part of the auction's correctness, not a
# cosmetic.
#
# A model that is right on average can still be wrong for a slice. In
# production the calibration layer is refreshed more often than the model, on
# the freshest labelled traffic. Here the best rung, trained last night, gets a
# calibrator fitted on half of the test day's requests (those with an even id)
# and is judged on the other half. Both halves share the day's mix of hours,
# pages and ads, so the only difference between them is the calibrator. Two
# calibrators: **Platt** (a logistic regression on the log-odds: two
# parameters) and **isotonic** (a monotone step function: flexible, needs more
# data).

# %%
def ad_age(table: pd.DataFrame) -> np.ndarray:
    """New ads have fewer than 1,000 logged impressions when served."""
    return np.where(table["ad_log_impressions"] < np.log1p(1000), "new ad", "older ad")


fit_rows = test["request_id"].to_numpy() % 2 == 0    # even requests fit
judged = ~fit_rows                                     # odd requests judge
calibrated = {"uncalibrated": predictions[best][judged]}
for name, method, slices in [("platt", "platt", None), ("isotonic", "isotonic", None),
                             ("isotonic by ad age", "isotonic", ad_age)]:
    model = CalibratedClickModel(ladder[best], Calibrator(method), slice_of=slices)
    model.calibrate(X_test[fit_rows], y_test[fit_rows], downsampling_rate=1.0)
    calibrated[name] = model.predict(X_test[judged])
y_judged, oracle_judged = y_test[judged], oracle[judged]
calibration_table = pd.DataFrame({
    name: {"log loss": metrics.log_loss(y_judged, p),
           "calibration": metrics.calibration_ratio(y_judged, p),
           "predicted / true expected clicks": p.sum() / oracle_judged.sum()}
    for name, p in calibrated.items()}).T
calibration_table.round(4)

# %% [markdown]
# The calibrator is told its rows were not downsampled; fitted on
# downsampled rows instead, it learns on their scale and maps back with the
# same `recalibrate_downsampled`. The third calibrator is fitted *by slice*:
# one isotonic map for new ads (fewer than 1,000 logged impressions when
# served), one for the others. Now calibration by slice, with a 95% interval
# from the noise of each slice's clicks: ad age, devices, positions.

# %%
X_judged = X_test[judged]
young = ad_age(X_judged)
iso = calibrated["isotonic"]          # the isotonic model's predictions on the judged half
slices = {"ad age": young, "device": X_judged["device"].astype(str),
          "position": "slot " + X_judged["position"].astype(str)}
by_slice = pd.concat({
    (kind, method): calibration_by_slice(y_judged, p, keys)[
        ["clicks", "ratio", "ratio_low", "ratio_high"]]
    for kind, keys in slices.items() for method, p in calibrated.items()},
    names=["slice kind", "calibrator", "slice"])
by_slice.xs("isotonic", level="calibrator").round(3)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8), sharey=True,
                         gridspec_kw={"width_ratios": [2, 3, 3]})
for ax, kind in zip(axes, slices, strict=True):
    part = by_slice.xs(kind, level="slice kind")
    names = part.index.get_level_values("slice").unique()
    for j, (method, marker) in enumerate(zip(calibrated, "osD^", strict=True)):
        rows = part.xs(method, level="calibrator").reindex(names)
        x = np.arange(len(names)) + (j - 1.5) * 0.18
        ax.errorbar(x, rows["ratio"], [rows["ratio"] - rows["ratio_low"],
                                       rows["ratio_high"] - rows["ratio"]],
                    fmt=marker, markersize=4, capsize=2, label=method)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_title(kind)
axes[0].set_ylabel("calibration ratio\n(predicted clicks / clicks)")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncol=4,
           fontsize=7)
glue("fig_slices", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
new = young == "new ad"
for key, name in [("raw", "uncalibrated"), ("platt", "platt"), ("iso", "isotonic"),
                  ("slice", "isotonic by ad age")]:
    p = calibrated[name]
    glue(f"cal_{key}", f"{metrics.calibration_ratio(y_judged, p):.3f}", display=False)
    glue(f"cal_{key}_truth", f"{p.sum() / oracle_judged.sum():.3f}", display=False)
    glue(f"cal_{key}_new", f"{p[new].sum() / oracle_judged[new].sum():.3f}",
         display=False)
glue("new_clicks", f"{int(y_judged[new].sum()):,}", display=False)
new_gap = {name: abs(p[new].sum() / oracle_judged[new].sum() - 1)
           for name, p in calibrated.items()}
glue("cal_slice_verdict", "closer to the truth than" if new_gap["isotonic by ad age"]
     < new_gap["isotonic"] else "no closer to the truth than", display=False)
glue("cal_slice_at_one", "still not at 1" if new_gap["isotonic by ad age"] > 0.01
     else "about at 1", display=False)


def toward(after: float, before: float) -> str:
    """'closer to 1' or 'further from 1', from two calibration ratios."""
    return "closer to 1" if abs(after - 1) < abs(before - 1) else "further from 1"


# %% tags=["remove-cell"]
ratio, loss = calibration_table["calibration"], calibration_table["log loss"]
raw_ratio, raw_loss = ratio["uncalibrated"], loss["uncalibrated"]
moves = [f"{ratio[name]:.3f} ({label}, {toward(ratio[name], raw_ratio)})"
         for name, label in [("platt", "Platt"), ("isotonic", "isotonic")]]
losses = [f"{loss[name]:.4f} ({label}, "
          f"{'lower' if loss[name] < raw_loss else 'no lower'})"
          for name, label in [("platt", "Platt"), ("isotonic", "isotonic")]]
text = (f"Against the labels, the calibration ratio goes from {raw_ratio:.3f} "
        f"(uncalibrated) to {moves[0]} and {moves[1]}; log loss goes from "
        f"{raw_loss:.4f} to {losses[0]} and {losses[1]}.")
noise = 1.96 / np.sqrt(y_judged.sum())
if abs(raw_ratio - 1) < noise:
    text += (f" The model was already within the noise of the half-day's clicks "
             f"(about ±{noise:.1%}) of 1: a calibrator had little to fix, and part "
             f"of what it learns is that noise.")
else:
    text += (f" The half-day's clicks carry noise of their own (about ±{noise:.1%}), "
             f"so a ratio against them is only as sharp as that.")
glue("cal_sentence", text, display=False)

# Against the truth: did the calibrators move the ratio toward 1, and how far the
# clicks they were fitted on fell from their expected clicks (labels are random
# draws from the truth, so that gap is chance, and a calibrator learns it).
truth_ratio = calibration_table["predicted / true expected clicks"]
truth_moves = {name: toward(truth_ratio[name], truth_ratio["uncalibrated"])
               for name in ("platt", "isotonic")}
fit_share = y_test[fit_rows].sum() / oracle[fit_rows].sum()
fitted_on = (f": the clicks they were fitted on came to {fit_share:.3f} times their "
             f"expected clicks, {'short' if fit_share < 1 else 'over'} by chance, "
             f"and a calibrator learns that chance as if it were the model's error")
# that explanation only where the shift has the sign of the fitted clicks' gap
if (truth_ratio["isotonic"] < truth_ratio["uncalibrated"]) != (fit_share < 1):
    fitted_on = ""
if set(truth_moves.values()) == {"closer to 1"}:
    text = "The calibrators moved it closer to 1."
elif set(truth_moves.values()) == {"further from 1"}:
    text = f"The calibrators moved it further from 1{fitted_on}."
else:
    text = (f"Platt moved it {truth_moves['platt']}, isotonic "
            f"{truth_moves['isotonic']}{fitted_on}.")
glue("cal_truth_sentence", text, display=False)

# %% tags=["remove-cell"]
# Two isotonic calibrators judged against the truth on the afternoon and evening's
# odd requests: one fitted on the morning (hours 0-11), another mix of hours, and
# one fitted on the afternoon and evening's even requests, the same mix.
morning = test["hour"].to_numpy() < 12
pm_judged = ~morning & judged
pm_truth = oracle[pm_judged].sum()
pm_ratio, pm_clicks = {"raw": predictions[best][pm_judged].sum() / pm_truth}, {}
for key, fit in [("am", morning), ("same", ~morning & fit_rows)]:
    model = CalibratedClickModel(ladder[best], Calibrator("isotonic"))
    model.calibrate(X_test[fit], y_test[fit], downsampling_rate=1.0)
    pm_ratio[key] = model.predict(X_test[pm_judged]).sum() / pm_truth
    pm_clicks[key] = y_test[fit].sum()
# 95% noise of the difference between the two, from the clicks each was fitted on
pm_noise = 1.96 * np.sqrt(1 / pm_clicks["am"] + 1 / pm_clicks["same"])
am_worse = abs(pm_ratio["am"] - 1) > abs(pm_ratio["same"] - 1)
beyond_noise = abs(pm_ratio["am"] - pm_ratio["same"]) > pm_noise
for key in pm_ratio:
    glue(f"cal_pm_{key}", f"{pm_ratio[key]:.3f}", display=False)
if am_worse and beyond_noise:
    text = ("The morning's calibrator ends further from 1: it learned on one mix of "
            "hours, users and pages and is judged on another.")
elif am_worse:
    text = (f"The morning's calibrator ends further from 1, but by less than the "
            f"noise of the clicks the two were fitted on (about ±{pm_noise:.1%}): "
            f"on this day the change of mix shows only faintly.")
else:
    text = (f"Here the morning's calibrator ends no further from 1: on this day the "
            f"change of mix does not show, and the noise of the clicks the two were "
            f"fitted on (about ±{pm_noise:.1%}) decides which lands closer.")
glue("cal_pm_sentence", text, display=False)
if am_worse:
    text = ("fitted on the morning, it ended further from 1 on the afternoon than one "
            "fitted on the afternoon" + ("" if beyond_noise else ", within the noise"))
else:
    text = ("on this day, one fitted on the morning did no worse on the afternoon "
            "than one fitted on the afternoon")
glue("cal_pm_recap", text, display=False)

# %% [markdown]
# ```{glue:figure} fig_slices
# :name: fig-step6-slices
#
# Calibration ratio of the best rung on the judged half of the test day's
# requests by slice, uncalibrated and after a Platt, an isotonic, and a
# per-ad-age isotonic calibrator fitted on the other half, with 95% intervals
# from the Poisson noise of each slice's clicks. Dashed: perfectly calibrated.
# ```
#
# **Takeaway:** a calibrator can at best match the average of the clicks it is
# fitted on, their noise included, and it does not fix every slice; a slice
# whose interval misses 1 needs a feature, or a calibrator of its own.
#
# {glue:text}`cal_sentence` Against the truth, which only the simulator knows,
# the same three predict {glue:text}`cal_raw_truth`,
# {glue:text}`cal_platt_truth` and {glue:text}`cal_iso_truth` times the
# expected clicks. {glue:text}`cal_truth_sentence` For new ads they predict
# {glue:text}`cal_raw_new`, {glue:text}`cal_platt_new` and
# {glue:text}`cal_iso_new`. A calibrator per ad
# age puts new ads at {glue:text}`cal_slice_new` (overall
# {glue:text}`cal_slice_truth`), {glue:text}`cal_slice_verdict` one isotonic
# map for all, and {glue:text}`cal_slice_at_one`: a calibrator per slice needs
# enough fresh data in each, and the new-ad slice has only
# {glue:text}`new_clicks` clicks here, too few to fit or judge tightly from
# clicks alone. Production watches such slices over many days.
#
# Where the calibrator learns matters too. Judged against the truth on the
# afternoon and evening's odd requests, where the model alone predicts
# {glue:text}`cal_pm_raw` times the expected clicks, an isotonic calibrator
# fitted on the morning (hours 0-11) ends at {glue:text}`cal_pm_am`, one fitted
# on the afternoon and evening's even requests at {glue:text}`cal_pm_same`.
# {glue:text}`cal_pm_sentence` Fit it on rows that look like the traffic it
# will serve (the previous full day, or the same hours of recent days). The
# predictions in this section are for the slot each
# ad was shown in; Lab 6.1 showed what serving every candidate at slot 1
# changes.

# %% [markdown]
# ```{exercise} The calibration ratio of new ads
# :label: ex-step6-new-ads
#
# Compute the calibration ratio of the isotonic model's predictions `iso` for
# the new ads of the judged half of the test day (the rows where `young ==
# "new ad"`), against their one-hour labels `y_judged`. Call it `new_ad_ratio`.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-new-ads
# :class: dropdown
# ```

# %%
is_new = young == "new ad"
new_ad_ratio = iso[is_new].sum() / y_judged[is_new].sum()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step6.slice_calibration(new_ad_ratio, y_judged, iso, young == "new ad")

# %% [markdown]
# ## 5. Negative downsampling
#
# Keeping a share w of the non-clicks shrinks the training set to a little more
# than a share w of its rows (almost 1/w-fold fewer: clicks are a few percent of
# the rows and all kept), so training gets faster; the model sees fewer
# examples of what does not get clicked, so it gets a little worse;
# and its raw output is the click rate of the *downsampled* data, which
# `recalibrate_downsampled` undoes: q = p / (p + (1 - p) / w). We retrain the
# logistic model on the last two training days at several keep rates, time
# each fit, and score it on day 3.

# %%
RATES = (1.0, 0.3, 0.1, 0.03)
recent = past_day[closed_rows] >= 1
X_recent, y_recent = X_all[recent], y_all[recent]
rows, by_rate = [], {}
for rate in RATES:
    kept = downsample_negatives(y_recent, rate, np.random.default_rng(SEED + 1))
    start = time.process_time()
    model = by_rate[rate] = LogisticClickModel(downsampling_rate=rate).fit(X_recent[kept],
                                                                           y_recent[kept])
    seconds = time.process_time() - start
    q = model.predict(X_test)
    raw = q / (q + (1 - q) * rate)   # what the model outputs before the correction
    rows.append({"keep rate w": rate, "rows": int(kept.sum()), "train (CPU s)": seconds,
                 "log loss": metrics.log_loss(y_test, q),
                 "calibration": metrics.calibration_ratio(y_test, q),
                 "calibration, uncorrected": metrics.calibration_ratio(y_test, raw)})
curve = pd.DataFrame(rows).set_index("keep rate w")
curve["speed-up"] = curve.loc[1.0, "train (CPU s)"] / curve["train (CPU s)"]
curve["share of rows"] = curve["rows"] / curve.loc[1.0, "rows"]
full_loss = curve.loc[1.0, "log loss"]
curve["log loss increase (%)"] = 100 * (curve["log loss"] / full_loss - 1)
curve.round(3)

# %% tags=["hide-input"]
fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 2.8))
left.plot(curve.index, curve["train (CPU s)"], marker="o")
left.set(xscale="log", xlabel="keep rate of non-clicks w (log scale)",
         ylabel="training time (CPU s)")
right.plot(curve.index, curve["log loss increase (%)"], marker="o")
right.axhline(1.0, color="C3", linestyle="--", linewidth=0.8, label="+1%")
right.set(xscale="log", xlabel="keep rate of non-clicks w (log scale)",
          ylabel="log loss vs w = 1 (%)")
right.legend(loc="upper right")
for ax in (left, right):
    ax.set_xticks(list(RATES), [f"{w:g}" for w in RATES])
    ax.minorticks_off()
glue("fig_downsampling", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
SHOWN = 0.1
shown = curve.loc[SHOWN]
assert shown["log loss increase (%)"] < 1, "the prose calls w = 0.1 affordable"
assert curve["train (CPU s)"].iloc[-1] < curve["train (CPU s)"].iloc[0]
fastest_ok = SHOWN
glue("ds_fastest_ok", f"{SHOWN:g}", display=False)
glue("ds_speedup", f"{curve.loc[SHOWN, 'speed-up']:.1f}", display=False)
glue("ds_increase", f"{curve.loc[SHOWN, 'log loss increase (%)']:.2f}%", display=False)
glue("ds_uncorrected", f"{shown['calibration, uncorrected']:.1f}", display=False)
smallest = min(RATES)
glue("ds_smallest", f"{smallest:g}", display=False)
glue("ds_smallest_speedup", f"{curve.loc[smallest, 'speed-up']:.1f}", display=False)
glue("ds_smallest_increase", f"{curve.loc[smallest, 'log loss increase (%)']:.2f}%",
     display=False)
glue("ds_cal_full", f"{curve.loc[1.0, 'calibration']:.3f}", display=False)
glue("ds_cal_ok", f"{curve.loc[fastest_ok, 'calibration']:.3f}", display=False)
glue("req_rows", f"{step6.MAX_ROWS_SHARE:.0%}", display=False)
glue("req_loss", f"{step6.LOG_LOSS_LIMIT:g}%", display=False)

# %% [markdown]
# ```{glue:figure} fig_downsampling
# :name: fig-step6-downsampling
#
# The logistic model retrained on days 1 and 2 with non-clicks kept at rate w
# (log scale): CPU training time (left) and held-out log loss relative to
# keeping everything (right), after the recalibration.
# ```
#
# **Takeaway:** most non-clicks can go: the rows, and the training time with
# them, shrink much faster than the log loss grows.
#
# At w = {glue:text}`ds_fastest_ok` training is {glue:text}`ds_speedup` times
# faster for {glue:text}`ds_increase` more log loss; at w =
# {glue:text}`ds_smallest`, {glue:text}`ds_smallest_speedup` times faster for
# {glue:text}`ds_smallest_increase`.
# Without the correction the model at w = 0.1 would predict
# {glue:text}`ds_uncorrected` times the observed clicks: downsampling without
# recalibration is the classic calibration bug of Step 3. With it, the
# calibration ratio is {glue:text}`ds_cal_ok` at w = {glue:text}`ds_fastest_ok`
# against {glue:text}`ds_cal_full` with every row: the correction is exact for
# a model that is right in every cell, and a regularized, imperfect model
# drifts a little as w falls. The calibrator of section 4, refreshed on
# untouched traffic, absorbs that too.

# %% [markdown]
# ```{exercise} Recalibrate by hand
# :label: ex-step6-recalibrate
#
# `raw_p` holds the raw output (before the correction) of the model trained at
# keep rate `w` = 0.1 for the first 1,000 test rows. Undo the downsampling
# yourself, without `recalibrate_downsampled`, and call the result `q_by_hand`.
# ```

# %%
w = 0.1
model_01 = by_rate[w]
raw_p = model_01.estimator.predict_proba(model_01.inputs(X_test.iloc[:1000]))[:, 1]

# %% [markdown]
# ```{solution-start} ex-step6-recalibrate
# :class: dropdown
# ```

# %%
q_by_hand = raw_p / (raw_p + (1 - raw_p) / w)

# %% [markdown]
# ```{solution-end}
# ```

# %%
step6.recalibrated(q_by_hand, raw_p, w=0.1)

# %% [markdown]
# ```{exercise} Choose the keep rate
# :label: ex-step6-keep-rate
#
# Your team retrains the click model every night on a few days of logs, and the
# job's budget is tight: it must train on at most {glue:text}`req_rows` of the
# rows it trains on today with every non-click (column `share of rows`; the
# training time follows the rows, and unlike a timing, which varies from run to
# run, the rows do not), and the recalibrated model's log loss may grow by at
# most {glue:text}`req_loss` (column `log loss increase (%)`). From the
# measured `curve`, choose the keep rate you would ship and store it in
# `keep_rate`. Several answers meet both; the check says what yours trades.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-keep-rate
# :class: dropdown
# ```

# %%
meets = curve[(curve["share of rows"] <= 0.5) & (curve["log loss increase (%)"] <= 1.0)]
print(f"measured keep rates that meet both: {meets.index.tolist()}")
keep_rate = 0.1  # in that range, with room under the log-loss limit

# %% [markdown]
# ```{solution-end}
# ```

# %%
step6.keep_rate(keep_rate, curve)

# %% [markdown]
# ## 6. Recap
#
# - The ladder on the platform's own logs: logistic {glue:text}`gap_lr` above
#   the oracle, LightGBM {glue:text}`gap_lgbm`, logistic with crosses
#   {glue:text}`gap_cross`, trees as features {glue:text}`gap_tlr`.
# - Given the hidden truth, the logistic model with crosses reaches
#   {glue:text}`reach_all`: {glue:text}`reach_hidden_share` of its gap is what
#   the platform cannot observe; the rest is finite data.
# - A calibrator is only as good as the rows it is fitted on: rows that share
#   the served traffic's mix, not another mix ({glue:text}`cal_pm_recap`).
#   Slices (new ads,
#   devices, positions) need to be checked one by one, with intervals.
# - Downsampling at w = {glue:text}`ds_fastest_ok` trains
#   {glue:text}`ds_speedup` times faster for {glue:text}`ds_increase` more log
#   loss, once recalibrated.
#
# ```{admonition} What to say in the interview
# :class: tip
# "I'd climb a ladder and measure every rung against a floor. A logistic model
# first: on our logs it was {glue:text}`gap_lr` above the best possible log
# loss. Trees found the interactions it missed ({glue:text}`gap_lgbm`), and a
# logistic model with the right crosses did better still
# ({glue:text}`gap_cross`), {glue:text}`cross_cost`; one on the trees' leaves
# reached {glue:text}`gap_tlr`, {glue:text}`tlr_cost`. Much of what is left is
# information we don't observe: given the users' true interests and the ads'
# true quality, the model with crosses got to {glue:text}`reach_all`, so the
# next gains are features and data, not model capacity.
# I'd calibrate on recent held-out data with the serving traffic's mix of
# hours and check calibration by slice, because the auction prices every click
# with the pCTR. And I'd keep about
# {glue:text}`ds_fastest_ok` of the non-clicks: that trained
# {glue:text}`ds_speedup` times faster for {glue:text}`ds_increase` more log
# loss, provided the predictions are recalibrated."
# ```
