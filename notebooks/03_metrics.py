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
# **What you will build.** The {doc}`concept page <../book/step3_metrics>` argued
# which metrics matter for a click model that feeds an auction. Here we measure
# them on the toy ad system, against the world's ground truth:
#
# 1. a three-day impression log from the random server, split by time into
#    history, training and test days;
# 2. five click models of increasing quality, from a constant to the oracle that
#    knows the true click probability, scored with log loss, normalized entropy,
#    AUC, calibration and precision/recall/F1;
# 3. a distortion that leaves AUC untouched while the predictions become useless
#    for bidding, and a reliability diagram that shows it;
# 4. the online metrics of the log: CTR, revenue, RPM, ad load;
# 5. hundreds of A/A tests on the same log, to see how often a naive test
#    "finds" a difference that does not exist;
# 6. a power curve: how much traffic it takes to see a 2% and a 10% lift.
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
from adsys.features import count_ad_stats, make_features
from adsys.prediction import LightGBMClickModel, LogisticClickModel
from adsys.world import World

plots.style()
world = World(seed=0)
rng = np.random.default_rng(3)


def pct(x: float, digits: int = 1) -> str:
    """Format a fraction as a percentage string for glue."""
    return f"{100 * x:.{digits}f}%"


# %% [markdown]
# ## A log split by time
#
# The random server shows each request three ads drawn at random among those whose
# targeting matches the user. Its log is the cleanest data we have: no model chose
# what was shown. Each row also carries `true_p`, the world's click probability,
# which no real log has; we keep it aside as the oracle.
#
# We serve three days of the world's default traffic and split them by time, as
# production does: **day 0** only provides each ad's click history (a feature),
# **day 1** trains, **day 2** tests. A random split would let the model train on
# the same hour, the same users' sessions and the same ad statistics it is tested
# on, and flatter it.

# %%
N_REQUESTS = world.config.requests_per_day
days = [serve_random(world, day, N_REQUESTS, rng).assign(day=day) for day in range(3)]
history, train, test = days
log = pd.concat(days, ignore_index=True)
log.head()

# %%
impressions_per_day = len(log) / len(days)
glue("n_requests", f"{N_REQUESTS:,}", display=False)
glue("impressions_per_day", f"{impressions_per_day:,.0f}", display=False)
glue("log_ctr", pct(log["clicked"].mean(), 2), display=False)
glue("n_users", f"{log['user_id'].nunique():,}", display=False)

# %% [markdown]
# Each day has {glue:text}`n_requests` requests and about
# {glue:text}`impressions_per_day` impressions; over the three days
# {glue:text}`n_users` users saw ads and clicked {glue:text}`log_ctr` of them.
#
# Features come from the package's one feature function, with the ad's click
# history counted on the *previous* day only, so no row's label leaks into its
# own features. The slot is a feature, since position changes the click rate.


# %%
def features(rows: pd.DataFrame, past: pd.DataFrame) -> pd.DataFrame:
    """Features of logged impressions, with ad click history from ``past`` only."""
    stats = count_ad_stats(past["ad_id"], past["clicked"])
    return make_features(world, rows["user_id"], rows["ad_id"], rows["publisher_id"],
                         rows["hour"], rows["position"], ad_stats=stats)


X_train, X_test = features(train, history), features(test, train)
y_train, y_test = train["clicked"].to_numpy(), test["clicked"].to_numpy()

# %% [markdown]
# ## Models of increasing quality
#
# Five predictors of the test day's clicks:
#
# - **base rate**: the training day's CTR for every impression;
# - **CTR by position**: the training CTR of the slot, the position effect alone;
# - **logistic regression** and **LightGBM** from `adsys.prediction` on the
#   features above (the tree model is kept small and strongly regularized: one
#   day of data has only a few thousand clicks);
# - **oracle**: the world's true click probability, which no model can beat.

# %%
ctr_by_position = train.groupby("position")["clicked"].mean()
lightgbm = LightGBMClickModel(
    n_estimators=100, num_leaves=7, learning_rate=0.1, min_child_samples=1000, n_jobs=1,
    cat_l2=100.0, cat_smooth=200.0, min_data_per_group=1000, max_cat_threshold=8,
    max_cat_to_onehot=64)
predictions = {
    "base rate": np.full(len(test), y_train.mean()),
    "CTR by position": ctr_by_position.reindex(test["position"]).to_numpy(),
    "logistic regression": LogisticClickModel().fit(X_train, y_train).predict(X_test),
    "LightGBM": lightgbm.fit(X_train, y_train).predict(X_test),
    "oracle": test["true_p"].to_numpy(),
}

# %% [markdown]
# Precision, recall and F1 need a decision threshold. A click model makes no
# decision (the auction does), so any threshold is arbitrary; we pick one a little
# above the typical CTR.

# %%
THRESHOLD = 0.05


def offline_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The offline metrics of one model on one test set."""
    prf = metrics.precision_recall_f1(y, p, threshold=THRESHOLD)
    return {"log loss": metrics.log_loss(y, p), "NE": metrics.normalized_entropy(y, p),
            "AUC": metrics.roc_auc(y, p), "calibration": metrics.calibration_ratio(y, p),
            "precision": prf.precision, "recall": prf.recall, "F1": prf.f1}


table = pd.DataFrame({name: offline_metrics(y_test, p) for name, p in predictions.items()}).T
oracle_loss = table.loc["oracle", "log loss"]
table.insert(1, "% above oracle", 100 * (table["log loss"] / oracle_loss - 1))
table.round(4)

# %%
gap = table["% above oracle"]
learned = table.loc[["logistic regression", "LightGBM"]]
best = learned["log loss"].idxmin()
glue("threshold", pct(THRESHOLD, 0), display=False)
glue("oracle_loss", f"{oracle_loss:.4f}", display=False)
glue("oracle_ne", f"{table.loc['oracle', 'NE']:.3f}", display=False)
for key, name in [("base", "base rate"), ("position", "CTR by position"),
                  ("logreg", "logistic regression"), ("lgbm", "LightGBM")]:
    glue(f"gap_{key}", f"{gap[name]:.1f}%", display=False)
    glue(f"auc_{key}", f"{table.loc[name, 'AUC']:.3f}", display=False)
glue("auc_oracle", f"{table.loc['oracle', 'AUC']:.3f}", display=False)
glue("best_model", best, display=False)
glue("best_gap", f"{gap[best]:.1f}%", display=False)
glue("best_calibration", f"{table.loc[best, 'calibration']:.3f}", display=False)

# %% [markdown]
# What the table says:
#
# - **The oracle's log loss, {glue:text}`oracle_loss` nats per impression, is the
#   floor.** Clicks are random even when the probability is known exactly; that
#   noise is all the oracle pays. Its NE is {glue:text}`oracle_ne`: even perfect
#   knowledge removes only a modest share of the base rate's uncertainty, which is
#   normal for ads and why small NE gains matter.
# - **The gap to the floor is the learnable error left.** The base rate is
#   {glue:text}`gap_base` above the oracle, the position CTR
#   {glue:text}`gap_position`, logistic regression {glue:text}`gap_logreg` and
#   LightGBM {glue:text}`gap_lgbm`. The best learned model here,
#   {glue:text}`best_model`, is {glue:text}`best_gap` above the floor, with a
#   calibration ratio of {glue:text}`best_calibration`.
# - **AUC ranks the models in the same order but on a compressed scale**: from
#   {glue:text}`auc_base` for the constant, through {glue:text}`auc_position`
#   (position only), {glue:text}`auc_logreg` and {glue:text}`auc_lgbm`, to
#   {glue:text}`auc_oracle` for the truth. Even the oracle is far from 1, because
#   most clicks are luck.
# - **Precision, recall and F1 at {glue:text}`threshold` mostly describe the
#   threshold.** A model whose predictions never reach it scores 0 on all three,
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
# ## A distortion that AUC cannot see
#
# Take LightGBM's predictions and distort them with a monotone function: multiply
# the odds p / (1 - p) by a factor k (for small p this is about k x pCTR, exactly
# what a forgotten downsampling correction or a units bug does), or square them.
# Every pair of impressions keeps its order, so AUC cannot change. The bid the
# auction computes from the prediction changes by the same factor.


# %%
def scale_odds(p: np.ndarray, factor: float) -> np.ndarray:
    """Multiply the odds p / (1 - p) by ``factor``: monotone, about factor x p for small p."""
    odds = factor * p / (1 - p)
    return odds / (1 + odds)


p_good = predictions["LightGBM"]
distorted = {"LightGBM": p_good, "odds x 2": scale_odds(p_good, 2.0),
             "odds / 2": scale_odds(p_good, 0.5), "p squared": p_good**2,
             "square root of p": np.sqrt(p_good)}
distortion_table = pd.DataFrame({
    name: {"AUC": metrics.roc_auc(y_test, p), "log loss": metrics.log_loss(y_test, p),
           "% above oracle": 100 * (metrics.log_loss(y_test, p) / oracle_loss - 1),
           "calibration": metrics.calibration_ratio(y_test, p)}
    for name, p in distorted.items()}).T
distortion_table.round(4)

# %%
factors = np.geomspace(0.25, 4.0, 17)
sweep = pd.DataFrame([
    {"factor": k, "AUC": metrics.roc_auc(y_test, q), "calibration": metrics.calibration_ratio(
        y_test, q), "gap": 100 * (metrics.log_loss(y_test, q) / oracle_loss - 1)}
    for k in factors for q in [scale_odds(p_good, k)]])
doubled = distortion_table.loc["odds x 2"]
glue("auc_doubled", f"{doubled['AUC']:.4f}", display=False)
glue("auc_undistorted", f"{distortion_table.loc['LightGBM', 'AUC']:.4f}", display=False)
glue("gap_doubled", f"{doubled['% above oracle']:.1f}%", display=False)
glue("calibration_doubled", f"{doubled['calibration']:.2f}", display=False)
glue("gap_squared", f"{distortion_table.loc['p squared', '% above oracle']:.0f}%",
     display=False)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6), sharex=True)
panels = [("AUC", "AUC", None), ("gap", "log loss above oracle (%)", 0.0),
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
# Multiplying LightGBM's predicted odds by k (x axis, log scale) on the test day.
# AUC (left) does not move; log loss (middle, in % above the oracle) is lowest
# near k = 1 and grows on both sides; the calibration ratio (right) follows k.
# **Takeaway: AUC cannot tell a model from the same model with every bid wrong by
# a factor k.**
# ```
#
# Doubling the odds leaves AUC at {glue:text}`auc_doubled` (it was
# {glue:text}`auc_undistorted`) while the calibration ratio jumps to
# {glue:text}`calibration_doubled` and log loss to {glue:text}`gap_doubled` above
# the oracle: in the auction, that model bids about twice what each impression is
# worth. Squaring the predictions, another monotone map, costs
# {glue:text}`gap_squared` in log loss with the same AUC.
#
# ```{admonition} Pitfall
# :class: warning
# A dashboard that tracks only AUC will stay green through a broken calibration
# layer, a forgotten downsampling correction or a feature-scaling bug that shifts
# every score. Alert on the calibration ratio (overall and per slice) next to AUC
# and log loss.
# ```

# %% [markdown]
# ## Reliability diagram
#
# The calibration ratio is one number for all traffic; a model can be right on
# average and wrong at both ends. The reliability diagram sorts impressions into
# ten bins of equal size by prediction and plots the observed click rate against
# the mean prediction in each bin. A calibrated model lies on the diagonal.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(5.2, 4.0))
shown_models = {"logistic regression": predictions["logistic regression"],
                "LightGBM": p_good, "oracle": predictions["oracle"],
                "LightGBM, odds x 2": distorted["odds x 2"]}
for name, p in shown_models.items():
    curve = metrics.reliability_curve(y_test, p, bins=10)
    style = "--" if "x 2" in name else "-"
    ax.plot(curve["mean_predicted"], curve["observed_rate"], style, marker="o", markersize=4,
            label=name)
ax.plot([0.002, 0.2], [0.002, 0.2], color="grey", linewidth=0.8, label="calibrated")
ax.set(xscale="log", yscale="log", xlabel="mean predicted CTR in bin (%, log scale)",
       ylabel="observed CTR in bin (%, log scale)")
ticks = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
labels = [f"{100 * t:g}%" for t in ticks]
ax.set_xticks(ticks, labels)
ax.set_yticks(ticks, labels)
ax.minorticks_off()
ax.legend(loc="upper left")
glue("fig_reliability", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_reliability
# :name: fig-step3-reliability
#
# Reliability diagram on the test day: each point is a tenth of the impressions,
# sorted by prediction; both axes in percent on a log scale. The learned models and
# the oracle stay close to the diagonal; the distorted model (dashed) runs parallel to it,
# a factor of two to the right. **Takeaway: calibration is visible per bin, and a
# monotone distortion moves the whole curve off the diagonal while keeping its
# shape (and its AUC).**
# ```

# %% [markdown]
# ## Online metrics of the log
#
# Offline metrics judge a component; the business is judged on the whole system's
# output. `metrics.online_metrics` summarises an impression log. The random server
# runs no auction, so its log has no prices: as a stand-in we bill each click its
# campaign's maximum CPC (a first-price rule). The revenue figures are therefore an
# upper bound for this traffic, useful only to compare days and, later, policies.

# %%
billed = log.assign(price=log["max_cpc"])
online = pd.DataFrame({f"day {d}": metrics.online_metrics(billed[billed["day"] == d],
                                                          N_REQUESTS) for d in range(3)}).T
online.astype({"impressions": int, "clicks": int}).round(3)

# %%
spend = metrics.spend_by_campaign(billed[billed["day"] == 2])
budget = world.campaigns.set_index("campaign_id").loc[spend.index, "daily_budget"]
over_budget = float((spend["spend"] > budget).mean())
glue("online_rpm", f"${online['rpm'].mean():.2f}", display=False)
glue("online_cpc", f"${online['cpc'].mean():.2f}", display=False)
glue("ads_per_request", f"{online['ads_per_request'].mean():.2f}", display=False)
glue("over_budget", pct(over_budget, 0), display=False)

# %% [markdown]
# The random server earns about {glue:text}`online_rpm` per thousand requests at an
# average cost per click of {glue:text}`online_cpc`, showing
# {glue:text}`ads_per_request` ads per request. It also knows nothing about
# budgets: on day 2, {glue:text}`over_budget` of the campaigns that were shown
# would have been billed more than their daily budget. That is a guardrail an
# offline metric never sees, and why the system needs pacing (Step 4).
#
# ```{admonition} In production
# :class: note
# Online metrics are computed from the same logs the A/B platform reads, per arm
# and per day, with guardrails (latency, ad load, hides and complaints, advertiser
# return) next to the target. A model launch is judged on them, not on the
# offline table above.
# ```

# %% [markdown]
# ## A/A tests: how often does "no difference" look significant?
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
    return {"difference": delta.difference, "naive_z": naive.z, "naive_p": naive.p_value,
            "naive_se": naive_se, "delta_z": delta.z, "delta_p": delta.p_value,
            "delta_se": delta.std_error}


aa = pd.DataFrame([aa_test(f"aa-{i}") for i in range(N_SPLITS)])
summary = pd.DataFrame({
    test: {"false-positive rate": (aa[f"{test}_p"] < ALPHA).mean(),
           "mean standard error": aa[f"{test}_se"].mean(),
           "spread of z (1 if correct)": aa[f"{test}_z"].std()}
    for test in ("naive", "delta")}).T
summary.round(6)

# %%
fpr_naive, fpr_delta = summary["false-positive rate"]
noise = 1.96 * np.sqrt(ALPHA * (1 - ALPHA) / N_SPLITS)
true_se = aa["difference"].std()
design_effect = float((aa["delta_se"].mean() / aa["naive_se"].mean()) ** 2)
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
    ax.hist(aa[column], bins=bins, density=True, histtype="step", linewidth=1.5, label=label)
z = np.linspace(-4.5, 4.5, 200)
ax.plot(z, np.exp(-z**2 / 2) / np.sqrt(2 * np.pi), color="grey", linestyle="--",
        label="N(0, 1): a correct test")
for edge in (-1.96, 1.96):
    ax.axvline(edge, color="grey", linewidth=0.8)
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
# difference a correct test follows the dashed N(0, 1); outside the vertical lines
# at ±1.96 it declares significance at alpha = 0.05. **Takeaway: counting
# impressions as independent makes the z statistic too wide, so the naive test
# declares more false wins than it promises.**
# ```
#
# Over {glue:text}`n_splits` splits the naive test was significant in
# {glue:text}`fpr_naive` of them and the delta method in {glue:text}`fpr_delta`;
# with this many splits, a correct 5% test lands between {glue:text}`fpr_low` and
# {glue:text}`fpr_high` by chance alone. The standard errors tell the same story more precisely: the
# actual spread of the difference across splits is {glue:text}`se_true`, the
# delta method estimates {glue:text}`se_delta`, the naive formula
# {glue:text}`se_naive`, too small by {glue:text}`se_naive_short`. Users differ
# in how often they click and how many ads they see, so impressions of the same
# user are correlated; the variance of CTR is {glue:text}`design_effect` times
# what the binomial formula assumes (the *design effect*).
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
# ## Power: how much traffic does a test need?
#
# Before an A/B test, decide the smallest lift worth detecting and compute how
# much traffic it takes to see it with 80% power at alpha = 0.05. The formula of
# `experiment.sample_size_per_arm` counts independent trials; for CTR we count
# impressions and then multiply by the design effect measured above.

# %%
ctr = float(log["clicked"].mean())
sizes = {lift: experiment.sample_size_per_arm(ctr, lift) for lift in (0.02, 0.05, 0.10)}
plan = pd.DataFrame({
    "relative lift": [f"+{lift:.0%}" for lift in sizes],
    "impressions per arm": list(sizes.values()),
    "days (independent)": [2 * n / impressions_per_day for n in sizes.values()],
    "days (x design effect)": [2 * n * design_effect / impressions_per_day
                               for n in sizes.values()],
})
plan.round(1)

# %%
glue("ctr", pct(ctr, 2), display=False)
for lift in (0.02, 0.10):
    key = f"{round(100 * lift)}"
    glue(f"n_{key}", f"{sizes[lift]:,}", display=False)
    glue(f"days_{key}", f"{2 * sizes[lift] / impressions_per_day:.1f}", display=False)
    glue(f"days_{key}_clustered", f"{2 * sizes[lift] * design_effect / impressions_per_day:.1f}",
         display=False)

# %% tags=["hide-input"]
n_grid = np.unique(np.geomspace(1e4, 1e8, 120).astype(int))
fig, ax = plt.subplots(figsize=(6.0, 3.2))
for lift in (0.02, 0.05, 0.10):
    ax.plot(n_grid, [experiment.power(ctr, lift, int(n)) for n in n_grid],
            label=f"+{lift:.0%} relative lift")
ax.axhline(0.8, color="grey", linestyle="--", linewidth=0.8)
ax.axvline(impressions_per_day / 2, color="grey", linewidth=0.8)
ax.annotate("one day, 50/50 split", (impressions_per_day / 2, 0.05),
            xytext=(4, 0), textcoords="offset points", fontsize=8)
ax.set(xscale="log", xlabel="impressions per arm (log scale)", ylabel="power")
plots.percent_axis(ax, "y", decimals=0)
ax.legend(loc="lower right", fontsize=8)
glue("fig_power", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_power
# :name: fig-step3-power
#
# Probability that a two-sided z-test at alpha = 0.05 detects a relative CTR lift,
# against impressions per arm (log scale), at this world's CTR. The dashed line is
# the usual 80% target; the vertical line is what each arm receives from one day of
# this world's traffic in a 50/50 test. **Takeaway: a 5x smaller lift needs about
# 25x more traffic.**
# ```
#
# At a CTR of {glue:text}`ctr`, detecting a +10% lift takes
# {glue:text}`n_10` impressions per arm, {glue:text}`days_10` days of this world's
# traffic split 50/50 ({glue:text}`days_10_clustered` days once the design effect
# is included). A +2% lift takes {glue:text}`n_2` per arm:
# {glue:text}`days_2` days ({glue:text}`days_2_clustered` with the design effect).
# Small lifts are what mature ad systems mostly ship, which is why large platforms
# run experiments for weeks, use variance reduction, and reserve traffic for them.

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# "Offline, I'd judge the click model by log loss, or normalized entropy to compare
# across traffic, because its output is multiplied by a bid: on our test day the
# floor, the log loss of the true probabilities, was {glue:text}`oracle_loss`, and
# the best model was {glue:text}`best_gap` above it. I'd report AUC but never alone:
# doubling every prediction kept AUC at {glue:text}`auc_doubled` while log loss
# rose to {glue:text}`gap_doubled` above the floor; so I'd also track the calibration
# ratio overall and per slice. Online, the decision is an A/B test on revenue per
# thousand requests and CTR, with guardrails on latency, ad load, hides and
# advertiser return. I'd randomize by user and compute the variance per user: in
# A/A replays of our logs the naive per-impression test was significant
# {glue:text}`fpr_naive` of the time against {glue:text}`fpr_delta` for the delta
# method. And I'd size the test first: a +2% lift needed {glue:text}`days_2_clustered`
# days of this system's traffic, a +10% lift {glue:text}`days_10_clustered` days."
# ```

# %% [markdown]
# ## Exercises

# %% [markdown]
# ```{exercise} Normalized entropy by hand
# :label: ex-step3-ne
#
# Compute the normalized entropy of LightGBM's test predictions `p_good` for the
# test clicks `y_test` without `metrics.log_loss` or `metrics.normalized_entropy`:
# the log loss, divided by the entropy of the test day's base rate. Store it in
# `ne_by_hand`.
# ```

# %% [markdown]
# ```{solution-start} ex-step3-ne
# :class: dropdown
# ```

# %%
base_rate = y_test.mean()
model_loss = -np.mean(np.where(y_test == 1, np.log(p_good), np.log(1 - p_good)))
base_entropy = -(base_rate * np.log(base_rate) + (1 - base_rate) * np.log(1 - base_rate))
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
# A teammate trained LightGBM on negatively downsampled data (non-clicks kept at
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
# `ctr`? Store it in `n_per_arm`. Then, on paper: how many days of this world's
# traffic is that, and how does the design effect change it?
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
