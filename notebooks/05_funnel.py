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
# # Lab 5: the funnel, measured against scoring every ad
#
# The {doc}`concept page <../book/step5_scale>` argued that a heavy model cannot score
# every eligible ad, so a cheap model narrows them to the top K first. This lab puts
# numbers on that argument. On the same requests we serve ads with every K, from a
# handful to all the eligible ads, and measure what the funnel keeps (revenue and
# clicks, against the world's truth) and what it saves (time per request, by stage).
#
# ```{admonition} What you will build
# :class: note
# - A **heavy model** (LightGBM, calibrated) and a **light model** (a logistic
#   regression on six lookups), both trained on the platform's own logs.
# - **Recall@K** of the light stage against the heavy model's ranking, for a
#   user-aware light model and for a user-blind one.
# - **Revenue and clicks** of the whole funnel for each K, computed from the world's
#   true click probabilities, relative to scoring every eligible ad.
# - **Time per request by stage**, batched and one request at a time, and the
#   heavy model's cost per call against its cost per candidate.
# - The **revenue-versus-latency curve** with the latency budget of Step 2, the
#   **cost per thousand requests** and the **machines** for 1k and 1M QPS.
# - A **judgment call**: the K you would ship under a given budget.
# ```
#
# ```{admonition} The times on this page are measured, not quoted
# :class: note
# Every time and machine count on this page was measured while the book was built,
# on whatever machine built it; a rerun gives different values. Times are CPU time
# (`time.process_time`): what the work costs on a core of its own. The wall-clock
# latency a caller sees adds any wait for a core, which on a busy shared machine can
# dwarf the work itself; CPU time is the steadier measure of the code. Revenue, clicks
# and recall do not depend on the machine: the same seed gives the same values.
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
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MultipleLocator, NullFormatter
from myst_nb import glue

from adsys import plots
from adsys.checks import step5
from adsys.events import closed_labels, training_data
from adsys.features import SERVING_POSITION, make_features
from adsys.funnel import ServedClickModel, batched_stage_seconds, one_at_a_time
from adsys.history import ExposureCounter
from adsys.index import AdIndex
from adsys.metrics import calibration_ratio, log_loss, recall_at_k
from adsys.observable import SECONDS_PER_DAY
from adsys.pacing import traffic_forecast
from adsys.prediction import Calibrator, LightGBMClickModel, LogisticClickModel
from adsys.selection import LightModel, Selector
from adsys.serving import STAGES, AdServer
from adsys.simulate import SimulationConfig, bootstrap, retrain, simulate_day
from adsys.world import World

plots.style()
world = World(seed=0)
view = world.view
config = SimulationConfig()
rng = np.random.default_rng(0)
started = time.perf_counter()


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percentage string, for glue."""
    return f"{100 * x:.{digits}f}%"


# %% [markdown]
# ## 1. Two models from the platform's own logs
#
# The models must learn from what the platform logged, as in production. We replay
# the launch of {doc}`Lab 4 <04_blueprint>` at a smaller scale: a week of page views,
# a day of random serving (the bootstrap), then day 0 served by the first funnel, a
# logistic click model behind the bootstrap's light model.

# %%
def first_model(downsampling_rate: float = 1.0) -> LogisticClickModel:
    """Version 0 of the click model, trained on the random server's log."""
    return LogisticClickModel(max_iter=300, downsampling_rate=downsampling_rate)


models, history, boot_log = bootstrap(world, rng, 30_000, first_model, browsing_days=7)
server = AdServer(view, models.heavy, history, ExposureCounter(view.n_ads),
                  models.light, k=10, reserve=config.reserve)
forecast = traffic_forecast(boot_log["time"].drop_duplicates(), config.steps_per_day)
day0 = simulate_day(world, server, 0, rng, config, forecast, n_requests=60_000)

# %% [markdown]
# That night the platform's nightly job (`retrain`) counts day 0's closed impressions
# into its history and fits both models of the funnel on them. The heavy model is
# LightGBM: 150 trees of 15 leaves on all the features of `make_features`, with
# one thread, since a server gives each request one core. The light model is the
# selector's logistic regression on six features that are each one table lookup away
# (`adsys.selection.LIGHT_FEATURES`).

# %%
def heavy_model(downsampling_rate: float = 1.0) -> LightGBMClickModel:
    """The heavy click model: gradient-boosted trees, one thread."""
    return LightGBMClickModel(n_estimators=150, learning_rate=0.1, n_jobs=1,
                              downsampling_rate=downsampling_rate)


models, history = retrain([day0], config, heavy_model, history, rng, models)
server = AdServer(view, ServedClickModel(models.heavy), history,
                  ExposureCounter(view.n_ads), models.light, k=10,
                  reserve=config.reserve, model_version=1)
day1 = simulate_day(world, server, 1, rng, config,
                    traffic_forecast(day0.requests.time, config.steps_per_day),
                    n_requests=20_000, first_request_id=day0.n_requests,
                    first_impression_id=len(day0.impressions))

# %% [markdown]
# The auction multiplies pCTR by the bid and divides prices by it, so the heavy model
# must be calibrated. We fit a Platt calibrator on half of day 1's closed impressions
# (the features as served, with the slot each ad was shown in) and check it on the
# other half, next to the oracle: the world's true probability of a click inside the
# attribution window.

# %%
as_of = 2 * SECONDS_PER_DAY
window = config.attribution_window
features, clicked = training_data(day1.impressions, day1.clicks, window, as_of)
closed = closed_labels(day1.impressions, day1.clicks, window, as_of)
true_p = closed["true_p"].to_numpy() * world.delay_cdf(window)   # analysis only
y = clicked.to_numpy()
fit_half = np.arange(len(y)) % 2 == 0
raw = models.heavy.predict(features)
calibrator = Calibrator("platt").fit(raw[fit_half], y[fit_half])
heavy = ServedClickModel(models.heavy, calibrator)
held = ~fit_half
predictions = {"LightGBM": raw[held], "LightGBM + Platt": heavy.predict(features[held]),
               "oracle (the world's truth)": true_p[held]}
quality = pd.DataFrame({
    "log loss": {name: log_loss(y[held], p) for name, p in predictions.items()},
    "calibration (predicted / observed)": {
        name: calibration_ratio(y[held], p) for name, p in predictions.items()},
})
quality.style.format("{:.4f}")

# %% tags=["remove-cell"]
ll = quality["log loss"]
assert ll["LightGBM + Platt"] > ll["oracle (the world's truth)"]
glue("cal_n", f"{held.sum():,}", display=False)
glue("cal_raw", f"{quality.iloc[0, 1]:.2f}", display=False)
glue("cal_after", f"{quality.iloc[1, 1]:.2f}", display=False)
glue("cal_gap", pct(ll["LightGBM + Platt"] / ll["oracle (the world's truth)"] - 1),
     display=False)

# %% [markdown]
# On {glue:text}`cal_n` held-out impressions, the trees alone predict
# {glue:text}`cal_raw` times the clicks observed and the calibrated model
# {glue:text}`cal_after` times; its log loss is {glue:text}`cal_gap` above the
# oracle's. This heavy model learned from a single day of logs; Step 6 builds and
# compares better ones. The funnel's question is different: given *this* heavy model,
# how much of its value survives when it only sees K ads?

# %% [markdown]
# ## 2. The same requests, every K
#
# We draw a sample of day 1's requests and ask the index for their eligible ads. The
# heavy model's eCPM (dollars per thousand impressions, `1000 x bid x pCTR`) of every
# eligible pair is the reference ranking: what the page would show with no funnel.
# Next to it, the light eCPM of two selectors: the user-aware light model, and the
# user-blind score `LightModel.ad_only()`: the bid times the ad's smoothed CTR,
# whatever the user, the simplest selector there is.

# %%
DAY, N_REQUESTS = 1, 2_000
requests = world.requests(DAY, np.random.default_rng(7), n=N_REQUESTS)
req, ad = AdIndex(view).eligible(requests, DAY)
bid = view.campaigns["max_cpc"].to_numpy()[view.ads["campaign_id"].to_numpy()[ad]]
pairs = make_features(view, requests.user[req], ad, requests.publisher[req],
                      requests.hour[req], SERVING_POSITION, history)
heavy_ecpm = 1000 * bid * heavy.predict(pairs)
light_models = {"user-aware light model": models.light,
                "user-blind (ad only)": LightModel.ad_only(history.base_rate)}
light_ecpm = {name: Selector(view, history, model).score(requests, req, ad)
              for name, model in light_models.items()}
n_eligible = np.bincount(req, minlength=N_REQUESTS)

# %% tags=["remove-cell"]
glue("n_requests", f"{N_REQUESTS:,}", display=False)
glue("eligible_median", f"{np.median(n_eligible):.0f}", display=False)
glue("eligible_max", f"{n_eligible.max():.0f}", display=False)
glue("active_ads", f"{int(view.active_ads(DAY).sum()):,}", display=False)
glue("n_pairs", f"{len(req):,}", display=False)

# %% [markdown]
# The {glue:text}`n_requests` requests have {glue:text}`n_pairs` eligible pairs, a
# median of {glue:text}`eligible_median` per request (at most
# {glue:text}`eligible_max`). The light stage keeps the top K of each request; the
# page has three slots. **Recall@K** (`adsys.metrics.recall_at_k`) is the share of
# the heavy model's top three that survive in the light stage's top K, averaged over
# requests (here the first {glue:text}`n_sub`): the funnel's loss in one number,
# before any auction.

# %%
KS = [4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 64]
sub = req < 1_000   # the first 1,000 requests are plenty for an average
recall = pd.DataFrame({
    name: [recall_at_k(heavy_ecpm[sub], score[sub], req[sub], k, m=view.n_slots)
           for k in KS]
    for name, score in light_ecpm.items()}, index=pd.Index(KS, name="K"))
aware_ecpm = light_ecpm["user-aware light model"]
recall["user-aware, heavy's first ad"] = [
    recall_at_k(heavy_ecpm[sub], aware_ecpm[sub], req[sub], k, m=1) for k in KS]
recall.T.style.format("{:.1%}")

# %% tags=["hide-input"]
fig, ax = plt.subplots()
for name, style in zip(recall.columns, ["o-", "s--", ":"], strict=True):
    ax.plot(recall.index, recall[name], style, label=name)
ax.set(xscale="log", xlabel="K, ads the light stage keeps per request (log scale)",
       ylabel="recall@K of the heavy top 3", ylim=(0, 1.02),
       title="How much of the heavy model's ranking survives the light stage")
ax.set_xticks(KS, [str(k) for k in KS])
ax.xaxis.set_minor_locator(plt.NullLocator())
plots.percent_axis(ax)
ax.legend(loc="lower right")
glue("fig_recall", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
aware, blind = recall["user-aware light model"], recall["user-blind (ad only)"]
assert (aware > blind).all()
glue("n_sub", f"{np.unique(req[sub]).size:,}", display=False)
K_SHOW = 8
glue("k_show", f"{K_SHOW}", display=False)
glue("recall_aware_show", pct(aware[K_SHOW], 0), display=False)
glue("recall_blind_show", pct(blind[K_SHOW], 0), display=False)
glue("recall_first_show", pct(recall.loc[K_SHOW, "user-aware, heavy's first ad"], 0),
     display=False)
glue("recall_aware_16", pct(aware[16], 0), display=False)
glue("recall_aware_64", pct(aware[64]), display=False)
assert aware[K_SHOW] < aware[16] < aware[64], "the prose says recall climbs with K"

# %% [markdown]
# ```{glue:figure} fig_recall
# :name: fig-step5-recall
#
# Recall@K of the light stage against the heavy model's top three (and, dotted, its
# first ad), for the same requests and K from 4 to 64.
# ```
#
# **Takeaway:** a light model that sees the user keeps far more of the heavy model's
# choices than one that only knows the ad. At K = {glue:text}`k_show` the user-aware
# model keeps {glue:text}`recall_aware_show` of the heavy top three, the user-blind
# score {glue:text}`recall_blind_show`; the heavy model's first choice survives in
# {glue:text}`recall_first_show` of requests. Recall climbs with K
# ({glue:text}`recall_aware_16` at K = 16, {glue:text}`recall_aware_64` at K = 64), but
# at small K the light model misses part of the heavy top three: it knows nothing of
# the hour, the user's age or how often they saw the ad today. Recall is a proxy,
# though: what the funnel loses is the difference between the lost ads and their
# replacements, which the next section measures in dollars.

# %% [markdown]
# ## 3. Revenue and clicks against the truth
#
# Now the whole funnel: for each K, and for K = every eligible ad (`k=None`, the
# reference), an `AdServer` serves the same requests: light stage, heavy model on the
# K survivors, auction with the reserve. The platform only sees its pCTRs; we score
# what it showed with the world's true click probability, so revenue is the expected
# value of the prices actually charged, and clicks the expected clicks.

# %%
def truth(log: pd.DataFrame) -> tuple[float, float, float]:
    """Expected revenue ($) and clicks of an impression log, from the world's truth,
    and the clicks the platform's pCTRs predicted."""
    p = world.click_probability(log["user_id"], log["ad_id"], log["publisher_id"],
                                log["hour"], log["position"], DAY)
    return float((p * log["price"]).sum()), float(p.sum()), float(log["pctr"].sum())


def serve(k: int | None, light: LightModel) -> dict:
    """Serve the sample with light stage ``light`` and K = ``k``; score it by truth."""
    funnel = AdServer(view, heavy, history, light_model=light, k=k,
                      reserve=config.reserve)
    revenue, clicks, predicted = truth(funnel.serve(requests, DAY))
    return {"K": k or "all", "revenue": revenue, "clicks": clicks,
            "predicted clicks": predicted}


sweep = pd.DataFrame([serve(k, models.light) for k in [*KS, None]]).set_index("K")
reference = sweep.loc["all"]
sweep["revenue ratio"] = sweep["revenue"] / reference["revenue"]
sweep["clicks ratio"] = sweep["clicks"] / reference["clicks"]
ratio = sweep.loc[KS, "revenue ratio"]
K97 = int(ratio.index[(ratio >= 0.97).argmax()])   # the smallest K that keeps 97%
assert ratio[K97] >= 0.97, "no K keeps 97% of the revenue"
KS_BLIND = sorted({4, 8, 16, 64, K97})
blind_sweep = pd.DataFrame([serve(k, light_models["user-blind (ad only)"])
                            for k in KS_BLIND]).set_index("K")
blind_sweep["revenue ratio"] = blind_sweep["revenue"] / reference["revenue"]

# %% tags=["hide-input"]
fig, ax = plt.subplots()
ax.plot(KS, sweep.loc[KS, "revenue ratio"], "o-", label="user-aware light stage")
ax.plot(KS_BLIND, blind_sweep["revenue ratio"], "s--", label="user-blind (ad only)")
ax.plot(KS, sweep.loc[KS, "clicks ratio"], "^:", color="C0", ms=4, mfc="white",
        label="clicks, user-aware")
ax.axhline(0.97, color="0.5", lw=1, ls="--", label="97% of the reference")
ax.set(xscale="log", xlabel="K, ads the heavy model scores per request (log scale)",
       ylabel="share of the reference",
       title="What the funnel keeps, against scoring every eligible ad")
ax.set_xticks(KS, [str(k) for k in KS])
ax.xaxis.set_minor_locator(plt.NullLocator())
plots.percent_axis(ax)
ax.legend(loc="lower right", fontsize=9)
glue("fig_revenue", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
glue("k97", f"{K97}", display=False)
glue("rev_k97", pct(ratio[K97]), display=False)
glue("rev_k4", pct(ratio[4]), display=False)
glue("rev_blind_k97", pct(blind_sweep.loc[K97, "revenue ratio"]), display=False)
glue("clicks_k97", pct(sweep.loc[K97, "clicks ratio"]), display=False)
glue("rpm_ref", f"${1000 * reference['revenue'] / N_REQUESTS:.2f}", display=False)
blind_k = int(blind_sweep.index[(blind_sweep["revenue ratio"] >= 0.97).argmax()]) \
    if (blind_sweep["revenue ratio"] >= 0.97).any() else None
glue("blind_k97", "no K up to 64" if blind_k is None else f"K = {blind_k}",
     display=False)
assert blind_sweep.loc[K97, "revenue ratio"] < ratio[K97]

# %% [markdown]
# ```{glue:figure} fig_revenue
# :name: fig-step5-revenue
#
# Expected revenue (solid, circles) and clicks (dotted, open triangles) of the funnel
# for each K, relative to the heavy model scoring every eligible ad, on the same
# requests; orange squares: the user-blind light stage; grey dashed: 97% of the
# reference.
# ```
#
# **Takeaway:** with the user-aware light stage, K = {glue:text}`k97` is the smallest
# K that keeps 97% of the reference revenue ({glue:text}`rev_k97`, and
# {glue:text}`clicks_k97` of the clicks); K = 4 keeps {glue:text}`rev_k4`. The
# user-blind selector at the same K keeps {glue:text}`rev_blind_k97` and needs
# {glue:text}`blind_k97` to reach 97%: this is why the light model must see the user.
# Scoring every ad earns {glue:text}`rpm_ref` per thousand requests.
#
# Recall and revenue do not move together. Side by side at K = {glue:text}`k97`, with
# two more measures: the recall of the heavy top four (the fourth ad sets the price
# of the last slot: in a second-price auction each slot pays what the next ad down
# would have bid for it), and the *eCPM kept*, the heavy eCPM of the best three ads
# the light stage keeps over that of the heavy top three, which counts how good the
# replacements of the lost ads are, in the heavy model's eyes. The last column divides
# the clicks the heavy model predicted for the ads shown by their true clicks (its
# pCTRs are for the first slot, so both selectors' ratios exceed 1; compare them).


# %%
def ecpm_kept(score: np.ndarray, k: int, m: int = view.n_slots) -> float:
    """Heavy eCPM of the top m among the light top k, over the heavy top m's."""
    frame = pd.DataFrame({"req": req[sub], "heavy": heavy_ecpm[sub],
                          "light": score[sub]})
    light_rank = frame.groupby("req")["light"].rank(ascending=False, method="first")

    def top(f: pd.DataFrame) -> pd.Series:
        best = f.sort_values("heavy", ascending=False).groupby("req").head(m)
        return best.groupby("req")["heavy"].sum()

    return float((top(frame[light_rank <= k]) / top(frame)).mean())


sweeps = {"user-aware light model": sweep, "user-blind (ad only)": blind_sweep}
at_k97 = pd.DataFrame({name: {
    "recall, heavy top 3": recall.loc[K97, name],
    "recall, heavy top 4": recall_at_k(heavy_ecpm[sub], score[sub], req[sub], K97,
                                       m=view.n_slots + 1),
    "eCPM kept": ecpm_kept(score, K97),
    "revenue": sweeps[name].loc[K97, "revenue"] / reference["revenue"],
    "clicks": sweeps[name].loc[K97, "clicks"] / reference["clicks"],
    "predicted / true clicks": sweeps[name].loc[K97, "predicted clicks"]
    / sweeps[name].loc[K97, "clicks"]}
    for name, score in light_ecpm.items()}).T
at_k97.style.format("{:.1%}").format("{:.2f}", subset=["predicted / true clicks"])

# %% tags=["remove-cell"]
aware_row, blind_row = at_k97.iloc[0], at_k97.iloc[1]
assert (at_k97["predicted / true clicks"] > 1).all(), "the prose: both ratios exceed 1"
points = 100 * (aware_row - blind_row)
aware_ahead = (aware_row["revenue"] > aware_row["recall, heavy top 3"]
               and aware_row["eCPM kept"] > aware_row["recall, heavy top 3"])
blind_behind = blind_row["revenue"] < blind_row["recall, heavy top 3"]
parts = [("For the user-aware selector revenue runs ahead of recall: the heavy "
          "favourites it drops are mostly replaced by others nearly as good, as its "
          "eCPM kept shows." if aware_ahead else
          "Even for the user-aware selector revenue does not run ahead of recall.")]
if blind_behind:
    parts.append(f"For the user-blind one it lags: its recall of the top three is only "
                 f"{points['recall, heavy top 3']:.1f} points lower, but it keeps "
                 f"{points['revenue']:.1f} points less of the revenue.")
gap_widens = points["recall, heavy top 4"] > points["recall, heavy top 3"]
only = "only " if points["recall, heavy top 4"] < points["revenue"] / 2 else ""
parts.append(f"Counting the fourth ad, which sets the last slot's price, widens the "
             f"recall gap {only}to {points['recall, heavy top 4']:.1f} points."
             if gap_widens else "Counting the fourth ad does not widen the recall gap.")
if points["eCPM kept"] < points["revenue"] / 2:
    parts.append(f"Even the eCPM kept, measured with the heavy model's own pCTRs, is only "
                 f"{points['eCPM kept']:.1f} points lower for the user-blind selector, "
                 f"whose shown ads earn {pct(blind_row['clicks'])} of the reference's "
                 "true clicks: the loss shows against the truth, not through the heavy "
                 "model.")
aware_over, blind_over = at_k97["predicted / true clicks"]
if blind_over > 1.05 * aware_over:
    parts.append(f"On the ads each funnel shows, the heavy model predicts "
                 f"{blind_over:.2f} clicks per true click for the user-blind selector "
                 f"against {aware_over:.2f} for the user-aware one: it overrates what the "
                 "blind selector keeps, which hides part of the loss from any measure "
                 "computed with its pCTRs.")
if blind_row["revenue"] < blind_row["clicks"]:
    parts.append(f"Revenue ({pct(blind_row['revenue'])}) falls further than clicks "
                 f"({pct(blind_row['clicks'])}): it also depends on prices, which the "
                 "ads ranked below each winner set.")
glue("recall_revenue_sentence", " ".join(parts), display=False)

# %% [markdown]
# {glue:text}`recall_revenue_sentence` Recall@K says whether the heavy model's
# favourites survive; only revenue against scoring every ad says what the funnel
# costs.

# %% [markdown]
# ## 4. What a request costs, by stage
#
# ### The heavy model: cost per call and cost per candidate
#
# How the heavy model is *called* matters as much as how many candidates it scores.
# `LightGBMClickModel.predict` goes through the scikit-learn wrapper, which converts
# the pandas feature table before LightGBM sees it. `ServedClickModel` hands the
# same trees a float matrix directly. We time both on 1 to 1,000 rows, the best of
# several calls each.

# %%
through_pandas = ServedClickModel(models.heavy, calibrator, direct=False)
assert np.allclose(through_pandas.predict(pairs[:500]), heavy.predict(pairs[:500]))
ROWS = [1, 3, 10, 30, 100, 300, 1000]


def best_ms(model: ServedClickModel, rows: pd.DataFrame, repeats: int = 7) -> float:
    """The fastest of ``repeats`` calls of ``model.predict(rows)``, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        model.predict(rows)
        times.append(time.process_time() - start)
    return 1000 * min(times)


paths = {"pandas wrapper": through_pandas, "direct": heavy}
per_call = pd.DataFrame({name: [best_ms(model, pairs[:n]) for n in ROWS]
                         for name, model in paths.items()},
                        index=pd.Index(ROWS, name="rows per call"))
per_call.T.style.format("{:.2f}").set_caption("milliseconds per call")

# %% [markdown]
# Two numbers summarize each path: the cost of each extra row (a candidate), the
# slope from 100 to 1,000 rows, and the cost of a call, what one row costs beyond
# its own share.

# %%
per_row_ms = (per_call.loc[1000] - per_call.loc[100]) / 900
costs = pd.DataFrame({"ms per call": per_call.loc[1] - per_row_ms,
                      "microseconds per row": 1000 * per_row_ms})
costs.style.format("{:.2f}")

# %% tags=["remove-cell"]
call_pandas, call_direct = costs["ms per call"]
row_us = costs.loc["direct", "microseconds per row"]
glue("call_pandas", f"{call_pandas:.2f} ms", display=False)
glue("call_direct", f"{call_direct:.2f} ms", display=False)
glue("row_us", f"{row_us:.1f} µs", display=False)
glue("rows_per_call", f"{call_pandas / (row_us / 1000):,.0f}", display=False)
glue("rows_per_call_direct", f"{call_direct / (row_us / 1000):,.0f}", display=False)
one_row = per_call.loc[1]
assert one_row["direct"] < one_row["pandas wrapper"]
glue("one_row_ratio", f"{one_row['pandas wrapper'] / one_row['direct']:.0f}",
     display=False)

# %% [markdown]
# A call through the pandas wrapper costs about {glue:text}`call_pandas` before the
# first row, as much as about {glue:text}`rows_per_call` rows at the direct path's
# {glue:text}`row_us` each (the path the server runs); the direct call costs
# {glue:text}`call_direct` (on one row it is {glue:text}`one_row_ratio` times
# faster). Same trees, same predictions.
# So the heavy stage must score all the K candidates of a request in *one* call, and
# the server must not pay a general-purpose conversion on every call: below, the
# heavy stage runs the direct path.
#
# ### One candidate, one request, or a whole batch per call
#
# How many calls a request makes decides whether the per-call cost dominates. For the
# first 50 sample requests, with the light stage's top {glue:text}`k97`, we score the
# candidates one row per call, one request per call, and all 50 requests in one call.

# %%
selector = Selector(view, history, models.light)
first = req < 50
kept_req, kept_ad = selector.select(requests, req[first], ad[first], K97)
kept = make_features(view, requests.user[kept_req], kept_ad,
                     requests.publisher[kept_req], requests.hour[kept_req],
                     SERVING_POSITION, history)
bounds = np.searchsorted(kept_req, np.arange(51))
calls = {"one row per call": [kept[i:i + 1] for i in range(len(kept))],
         "one request per call": [kept[a:b] for a, b in pairwise(bounds)],
         "50 requests per call": [kept]}
per_request = {}
for name, chunks in calls.items():
    start = time.process_time()
    for chunk in chunks:
        heavy.predict(chunk)
    per_request[name] = 1000 * (time.process_time() - start) / 50
per_request = pd.Series(per_request, name="heavy model, ms per request")
per_request.to_frame().style.format("{:.3f}")

# %% tags=["remove-cell"]
glue("per_row_ms", f"{per_request['one row per call']:.2f} ms", display=False)
glue("per_req_ms", f"{per_request['one request per call']:.2f} ms", display=False)
glue("per_batch_ms", f"{per_request['50 requests per call']:.3f} ms", display=False)

# %% [markdown]
# One row per call costs {glue:text}`per_row_ms` per request, one request per call
# {glue:text}`per_req_ms`, and batching 50 requests {glue:text}`per_batch_ms`: a
# server scores each request's candidates in a single call, and a throughput job (the
# simulator, an offline replay) batches whole requests.
#
# ### Every stage, batched and one request at a time
#
# `adsys.funnel.batched_stage_seconds` serves a batch in one call and returns the CPU
# seconds per request of each stage. We run every K on the first 500 requests, three
# rounds, and keep each K's fastest round, so that a burst of other work on the
# machine does not land on one K only. This is the marginal work per request: each
# call's fixed costs are shared by 500 requests.

# %%
def funnel_server(k: int | None) -> AdServer:
    """The funnel with the user-aware light stage and K = ``k``."""
    return AdServer(view, heavy, history, light_model=models.light, k=k,
                    reserve=config.reserve)


timed = requests.take(slice(0, 500))
servers = {k or "all": funnel_server(k) for k in [*KS, None]}
runs = [pd.DataFrame({k: batched_stage_seconds(server, timed, DAY)
                      for k, server in servers.items()}).T for _ in range(3)]
batched = pd.concat(runs).groupby(level=0, sort=False).min() * 1000   # best of 3
batched.index.name = "K"
batched["scoring"] = batched["select"] + batched["predict"]
batched["total"] = batched[list(STAGES)].sum(axis=1)
batched.style.format("{:.3f}").set_caption("CPU milliseconds per request, batched")

# %% [markdown]
# The course's server does not wait to batch requests: it answers each one as it
# arrives, alone (`AdServer.serve_one`). `adsys.funnel.one_at_a_time` serves
# requests that way and records each stage's time, here on the CPU clock: the
# latency of a request on a core of its own, and the work this server does for it.
# Percentiles over 150 requests, served in three rounds of 50 that take every K in
# turn, so that a burst of other work on the machine does not land on one K only:

# %%
K_SINGLE = [4, K97, 32, None]
alone = requests.take(slice(0, 150))
one_by_one = {k or "all": funnel_server(k) for k in dict.fromkeys(K_SINGLE)}
rounds = [{k: one_at_a_time(server, alone.take(slice(i, i + 50)), DAY,
                            clock=time.process_time)
           for k, server in one_by_one.items()} for i in (0, 50, 100)]
single = {k: pd.concat([r[k] for r in rounds], ignore_index=True) for k in one_by_one}
latency = pd.concat({k: frame[[*STAGES, "total"]].quantile([0.5, 0.99]) * 1000
                     for k, frame in single.items()}, names=["K", "percentile"])
latency["scoring"] = pd.concat({
    k: (frame["select"] + frame["predict"]).quantile([0.5, 0.99]) * 1000
    for k, frame in single.items()})
latency.style.format("{:.2f}").set_caption(
    "CPU milliseconds, one request at a time")

# %% tags=["remove-cell"]
p99 = latency.xs(0.99, level="percentile")
glue("p99_total_k97", f"{p99.loc[K97, 'total']:.1f} ms", display=False)
glue("p99_total_all", f"{p99.loc['all', 'total']:.1f} ms", display=False)
glue("p99_predict_k97", f"{p99.loc[K97, 'predict']:.1f} ms", display=False)
glue("p99_predict_all", f"{p99.loc['all', 'predict']:.1f} ms", display=False)
glue("p99_log_k97", f"{p99.loc[K97, 'log']:.1f} ms", display=False)
glue("batched_predict_k97", f"{batched.loc[K97, 'predict']:.3f} ms", display=False)
glue("batched_predict_all", f"{batched.loc['all', 'predict']:.3f} ms", display=False)
glue("batched_select", f"{batched.loc[K97, 'select']:.3f} ms", display=False)
single_speedup = p99.loc["all", "scoring"] / p99.loc[K97, "scoring"]
batch_speedup = batched.loc["all", "scoring"] / batched.loc[K97, "scoring"]
glue("single_speedup", f"{single_speedup:.1f}", display=False)
glue("batch_speedup", f"{batch_speedup:.1f}", display=False)
if single_speedup < batch_speedup:
    speedup_sentence = (f"a speed-up of {single_speedup:.1f} for scoring, smaller than "
                        "batched: each request pays the fixed costs of its calls "
                        "(building a feature table, calling the trees, calibrating) "
                        "whatever its K")
else:
    speedup_sentence = (f"a speed-up of {single_speedup:.1f} for scoring, no smaller "
                        "than batched")
glue("speedup_sentence", speedup_sentence, display=False)

# %% [markdown]
# Batched, the heavy stage costs {glue:text}`batched_predict_all` of CPU per request
# when it scores every eligible ad and {glue:text}`batched_predict_k97` at
# K = {glue:text}`k97`; the light stage that makes the cut costs
# {glue:text}`batched_select`. Scoring (light plus heavy) is
# {glue:text}`batch_speedup` times cheaper. One request at a time, the heavy stage's
# p99 goes from {glue:text}`p99_predict_all` to {glue:text}`p99_predict_k97`,
# {glue:text}`speedup_sentence`. The whole request takes
# {glue:text}`p99_total_k97` at p99 with the funnel against
# {glue:text}`p99_total_all` without, and stages that do not depend on K, such as
# writing the impression log ({glue:text}`p99_log_k97`), become visible.

# %% [markdown]
# ## 5. Revenue against latency, and the K the budget allows
#
# Step 2 split a 50 ms budget across the stages: about 5 ms for selection and 20 ms
# for building features and scoring them with the heavy model, so the scoring stages
# here (select plus predict) get 25 ms at p99. Two views of the same trade-off: the
# revenue each K keeps against its batched CPU cost (the marginal work: what a fleet
# pays if its servers batch), and against its p99 latency one request at a time
# (what a caller waits for).

# %%
BUDGET_MS = 25.0
curve = pd.DataFrame({"revenue ratio": sweep["revenue ratio"],
                      "batched scoring ms": batched["scoring"],
                      "p99 scoring ms": p99["scoring"]}, index=sweep.index)
curve["speed-up (batched)"] = (batched.loc["all", "scoring"]
                               / curve["batched scoring ms"])
curve["p99 within budget"] = (curve["p99 scoring ms"] <= BUDGET_MS).where(
    curve["p99 scoring ms"].notna())
curve.style.format({"revenue ratio": "{:.1%}", "batched scoring ms": "{:.3f}",
                    "p99 scoring ms": "{:.2f}", "speed-up (batched)": "{:.1f}"},
                   na_rep="")

# %% tags=["hide-input"]
fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 4.0), sharey=True)
by_cost = curve.sort_values("batched scoring ms")   # measured costs need not rise with K
left.plot(by_cost["batched scoring ms"], by_cost["revenue ratio"], "o-", ms=4,
          label="every K, in order of cost")
left.axvline(batched.loc["all", "scoring"] / 20, color="C2", ls="--", lw=1.2,
             label="20x less than scoring all")
left.set(xscale="log", xlabel="CPU ms per request, batched (log)",
         ylabel="revenue, share of scoring all", title="Against cost")
right.axvline(BUDGET_MS, color="C3", ls="--", lw=1.2,
              label=f"Step 2 budget, {BUDGET_MS:g} ms")
right.set(xscale="log", xlabel="p99 CPU ms, one request at a time (log)",
          title="Against latency")
timed_k = curve.dropna(subset=["p99 scoring ms"])
marks = [("v", "C1"), ("D", "C4"), ("^", "C5"), ("s", "black")]   # one per K timed
for (k, row), (marker, colour) in zip(timed_k.iterrows(), marks, strict=False):
    for ax, column in ((left, "batched scoring ms"), (right, "p99 scoring ms")):
        ax.plot(row[column], row["revenue ratio"], marker, color=colour, ms=8, mec="white",
                zorder=3, label=f"K={k}" if ax is left else None)
for ax in (left, right):
    ax.axhline(0.97, color="black", ls=":", lw=1,
               label="97% of the revenue" if ax is left else None)
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
left.yaxis.set_major_locator(MultipleLocator(0.05))   # whole percents, labelled exactly
plots.percent_axis(left, decimals=0)
handles, labels = (a + b for a, b in zip(left.get_legend_handles_labels(),
                                         right.get_legend_handles_labels(), strict=True))
fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
glue("fig_tradeoff", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
# "flat on the right": from K = 32 on, every K keeps within 1% of scoring them all
right_side = curve["revenue ratio"].drop("all")
assert (right_side[[k >= 32 for k in right_side.index]] > 0.99).all()
misses = timed_k.index[timed_k["p99 scoring ms"] > BUDGET_MS].tolist()
if not misses:
    budget_sentence = ("every K measured keeps its p99 within it, scoring all the "
                       "eligible ads included")
elif len(misses) == len(timed_k):
    budget_sentence = ("no K keeps its p99 within it on this machine: the fixed "
                       "costs of a request alone exceed it")
else:
    over = ", ".join(f"K = {k}" for k in misses)
    budget_sentence = (f"{over} went over it on this run, but not every K below it "
                       "did: a p99 from 150 requests is noisy")
glue("budget_sentence", budget_sentence, display=False)
glue("budget_ms", f"{BUDGET_MS:g} ms", display=False)
MODEL_BUDGET_MS = 10.0   # Step 2's share for the heavy model alone
k_budget = int((MODEL_BUDGET_MS - call_direct) / (row_us / 1000))
binds = k_budget < n_eligible.max()
glue("k_budget", f"{k_budget:,}", display=False)
k_budget_pandas = max(int((MODEL_BUDGET_MS - call_pandas) / (row_us / 1000)), 0)
glue("k_budget_pandas", f"would hold about {k_budget_pandas:,}" if k_budget_pandas
     else "would not hold a single candidate", display=False)
glue("k_budget_vs", "fewer than" if binds else "more than", display=False)
glue("binds_sentence", "even this toy needs the funnel to stay within it" if binds
     else "on this toy, latency alone does not force a funnel", display=False)

# %% [markdown]
# ```{glue:figure} fig_tradeoff
# :name: fig-step5-tradeoff
#
# Revenue kept (share of scoring every eligible ad) against the cost of the light and
# heavy stages per request: left, CPU time batched, for every K; right, the p99 of
# the CPU time of one request at a time, for the four K timed that way (the same
# marker in both panels), with the {glue:text}`budget_ms` budget of these stages from
# Step 2. Dotted: 97% of the revenue.
# ```
#
# **Takeaway:** both curves are flat on the right: beyond a few dozen candidates,
# more cost buys almost no revenue. Against the {glue:text}`budget_ms` budget,
# {glue:text}`budget_sentence`.
#
# The measured costs also say when the budget binds. Step 2 gave the heavy model
# itself 10 ms; at the direct path's best-case cost per call and per row that is about
# {glue:text}`k_budget` candidates per request, {glue:text}`k_budget_vs` the
# {glue:text}`eligible_max` eligible ads of our busiest request:
# {glue:text}`binds_sentence`. Through the pandas wrapper, whose call alone costs
# {glue:text}`call_pandas`, the same 10 ms {glue:text}`k_budget_pandas`. Step 2's
# count of the candidates that fit its budget measures something else: feature
# building and a 200-tree model together, through the pandas path, against a 20 ms
# budget, both at the median costs of a typical request and at the p99 of a handful
# of measured counts, where the slowest requests on a shared machine decide.
# A real index leaves thousands to millions of eligible ads, and production heavy
# models cost far more per candidate: there, the budget is what sets K.
#
# This course's quality bar asks for both halves of the trade at once:

# %% tags=["remove-cell"]
speedup = batched.loc["all", "scoring"] / batched.loc[KS, "scoring"]
fast = speedup[speedup >= 20]
glue("bar_speedup", f"{speedup[K97]:.1f}", display=False)
glue("ceiling", f"{np.median(n_eligible) / K97:.1f}", display=False)
kept_97 = f"revenue reaches 97% at K = {K97} ({pct(ratio[K97])})"
cheaper = f"scoring is {speedup[K97]:.1f} times cheaper"
if speedup[K97] >= 20:
    bar_sentence = f"{kept_97}, where {cheaper}: the bar is met."
elif len(fast):
    k20 = int(fast.index[-1])
    bar_sentence = (f"{kept_97}, where {cheaper}; a 20x saving needs K = {k20} or "
                    f"less, which keeps {pct(ratio[k20])}. On this run the two halves "
                    "of the bar do not meet.")
else:
    bar_sentence = (f"{kept_97}, where {cheaper}; no K measured here saves 20x. The "
                    "two halves of the bar do not meet.")
glue("bar_sentence", bar_sentence, display=False)

# %% [markdown]
# **Keep at least 97% of the revenue of scoring every eligible ad, with at least 20
# times less scoring time per request.** On this run, {glue:text}`bar_sentence` The
# saving has a ceiling, eligible ads over K: with about {glue:text}`eligible_median`
# eligible ads, K = {glue:text}`k97` saves at most about {glue:text}`ceiling` times,
# less the light stage's own cost, whatever the code. The same funnel in front of a
# larger index saves proportionally more, and a better light model lowers the K that
# keeps 97%.

# %% [markdown]
# ## 6. Cost per thousand requests, and machines
#
# Step 2 turned a CPU cost per request into cores: average QPS times the
# peak-to-mean ratio times CPU seconds per request, over a target utilization. The
# platform knows its peak-to-mean ratio from its own request log (yesterday's
# traffic curve). We price a core-hour at an assumed $0.05, in the range of cloud
# list prices, and size 16-core machines at 60% utilization, from two costs of a
# whole request (every stage) measured in section 4:
#
# - **batched**: the marginal work per request, with each call's fixed costs shared
#   by a whole batch. A server written for the purpose, with little overhead per
#   call, approaches it; one that groups requests into small batches
#   (micro-batching) reaches it, at the cost of the wait to fill a batch.
# - **one at a time**: the CPU time of a request served alone, the path this course's
#   server takes; each request pays the fixed costs of its calls. A capacity plan
#   wants the mean, but on a shared machine a few requests slowed by other work
#   inflate it, so we take the median of the 150 requests, the steadier estimate.
#
# The toy's costs per request are tiny, so compute is in micro-dollars (millionths
# of a dollar) per thousand requests.

# %%
hourly = traffic_forecast(day0.requests.time, 24)
PEAK_TO_MEAN = float(hourly.max() / hourly.mean())
CORE_HOUR_DOLLARS, UTILIZATION, CORES_PER_MACHINE = 0.05, 0.6, 16


def cores(avg_qps: float, cpu_ms_per_request: float) -> float:
    """Cores for ``avg_qps`` on average, sized for the peak at the utilization."""
    return avg_qps * PEAK_TO_MEAN * cpu_ms_per_request / 1000 / UTILIZATION


alone_ms = pd.Series({k: 1000 * frame["total"].median() for k, frame in single.items()})
cpu_ms = pd.DataFrame({"batched": batched.loc[alone_ms.index, "total"],
                       "one at a time": alone_ms})
plan = pd.concat({path: pd.DataFrame({
    "CPU ms / request": ms,
    "compute µ$ / 1k requests": ms * CORE_HOUR_DOLLARS / 3600 * 1e6,
    "cores, 1k QPS": cores(1e3, ms),
    "machines, 1M QPS": np.ceil(cores(1e6, ms) / CORES_PER_MACHINE)})
    for path, ms in cpu_ms.items()}, axis=1)
plan["revenue", "$ / 1k requests"] = 1000 * sweep.loc[plan.index, "revenue"] / N_REQUESTS
plan.index.name = "K"
plan.style.format({c: "{:,.0f}" if c[1].startswith("machines") else "{:.2f}"
                   for c in plan.columns})

# %% tags=["remove-cell"]
glue("peak_to_mean", f"{PEAK_TO_MEAN:.2f}", display=False)
machines = {path: plan[path, "machines, 1M QPS"] for path in cpu_ms}
cores_1k = {path: plan[path, "cores, 1k QPS"] for path in cpu_ms}
for path, tag in (("one at a time", ""), ("batched", "_batched")):
    glue(f"machines_all{tag}", f"{machines[path]['all']:,.0f}", display=False)
    glue(f"machines_k97{tag}", f"{machines[path][K97]:,.0f}", display=False)
    glue(f"cores_1k_all{tag}", f"{cores_1k[path]['all']:.1f}", display=False)
    glue(f"cores_1k_k97{tag}", f"{cores_1k[path][K97]:.1f}", display=False)
machines_1k = np.ceil(cores_1k["one at a time"] / CORES_PER_MACHINE)
n_all, n_k97 = int(machines_1k["all"]), int(machines_1k[K97])
same = "a single machine" if n_all == 1 else f"the same {n_all} machines"
glue("machines_1k_sentence", (
    f"{same} either way" if n_all == n_k97 else f"{n_all} machines against {n_k97}")
    + " (plus one for redundancy)" + (
    ": at 1k QPS the funnel is not worth its complexity for cost alone"
    if n_all - n_k97 <= 1 else ""), display=False)
fleet_saving = {path: 1 - m[K97] / m["all"] for path, m in machines.items()}
glue("fleet_saving_batched", pct(fleet_saving["batched"], 0), display=False)
glue("fleet_saving_alone", pct(fleet_saving["one at a time"], 0)
     if fleet_saving["one at a time"] > 0 else "none on this run", display=False)
overhead = cpu_ms.loc[K97, "one at a time"] / cpu_ms.loc[K97, "batched"]
glue("alone_over_batched", f"{overhead:.0f}", display=False)
alone_saving = fleet_saving["one at a time"]
if alone_saving < fleet_saving["batched"]:
    fleet_sentence = ((f"saves {pct(alone_saving, 0)} of the machines" if alone_saving > 0
                       else "saves no machines at all on this run")
                      + f", not {pct(fleet_saving['batched'], 0)}: the fixed costs of each "
                      "call (building a feature table, calling the trees, calibrating, "
                      "writing the log) do not shrink with K, and served alone a request "
                      "pays them all itself")
else:
    fleet_sentence = (f"saves {pct(fleet_saving['one at a time'], 0)} of the machines, "
                      f"no less than batched ({pct(fleet_saving['batched'], 0)}) on this "
                      "run")
glue("fleet_sentence", fleet_sentence, display=False)
revenue_1k = plan["revenue", "$ / 1k requests"]
lost = revenue_1k["all"] - revenue_1k[K97]
saved = {path: (plan[path, "compute µ$ / 1k requests"]["all"]
                - plan[path, "compute µ$ / 1k requests"][K97]) / 1e6 for path in cpu_ms}
most_saved = max(saved.values())
assert lost > 100 * most_saved > 0   # "the dollars say: score more candidates"
glue("revenue_lost", f"${lost:.2f}", display=False)
glue("compute_saved", f"{most_saved * 1e6:.1f} µ$", display=False)
glue("break_even", f"{lost / most_saved:,.0f}", display=False)

# %% [markdown]
# This server answers each request alone, so the one-at-a-time cost sizes its fleet.
# With a peak-to-mean ratio of {glue:text}`peak_to_mean`, 1M QPS needs
# {glue:text}`machines_all` machines when the heavy model scores every eligible ad and
# {glue:text}`machines_k97` at K = {glue:text}`k97`. At 1k QPS it needs
# {glue:text}`cores_1k_all` against {glue:text}`cores_1k_k97` cores, so
# {glue:text}`machines_1k_sentence`.
#
# From the batched cost, the marginal work, 1M QPS would need
# {glue:text}`machines_all_batched` machines against {glue:text}`machines_k97_batched`,
# a saving of {glue:text}`fleet_saving_batched`. That is the fleet of a server that
# batches, or whose overhead per call is negligible; served alone, a request at
# K = {glue:text}`k97` costs about {glue:text}`alone_over_batched` times its marginal
# work, the rest being fixed costs per call in this toy's Python. On this server the
# funnel {glue:text}`fleet_sentence`. A server with less overhead per call spends
# more of its time on candidates, so it gains more from cutting them.
#
# The comparison a business owner asks for is in dollars: per thousand requests the
# funnel at K = {glue:text}`k97` gives up {glue:text}`revenue_lost` of revenue and
# saves at most {glue:text}`compute_saved` of compute (the larger of the two
# savings). Compute would have to cost {glue:text}`break_even` times more for the
# saving to pay for that revenue. So on this toy, with a cheap heavy model and a small
# index, the dollars say: score more candidates. The funnel pays where the heavy
# model is expensive per candidate (deep networks over hundreds of features) and the
# index large; there the latency budget forces it first, and the fleet size follows.
# The arithmetic is the same with larger numbers, which is why you measure instead of
# assuming.

# %% [markdown]
# ## 7. Exercises
#
# Each exercise names the variable to fill in; the cell after it checks your answer
# and explains what is wrong if it is.

# %% [markdown]
# ```{exercise} Recall@K by hand
# :label: ex-step5-recall
#
# Compute `blind_recall`, the recall@K of the user-blind selector at K = 8 against the
# heavy model's top 3, *without* `recall_at_k`: for each request, the share of its
# three highest `heavy_ecpm` pairs that are among its eight highest
# `light_ecpm["user-blind (ad only)"]` pairs, averaged over requests. The pairs of
# request `i` are the rows where `req == i`. Average over all
# {glue:text}`n_requests` requests: the recall table of section 2 averaged only the
# first {glue:text}`n_sub`, so its K = 8 value differs a little from yours.
# ```

# %% [markdown]
# ```{solution-start} ex-step5-recall
# :class: dropdown
# ```

# %%
frame = pd.DataFrame({"req": req, "heavy": heavy_ecpm,
                      "light": light_ecpm["user-blind (ad only)"]})
by_request = frame.groupby("req")
frame["heavy_rank"] = by_request["heavy"].rank(ascending=False, method="first")
frame["light_rank"] = by_request["light"].rank(ascending=False, method="first")
top3 = frame[frame["heavy_rank"] <= 3]
blind_recall = (top3["light_rank"] <= 8).groupby(top3["req"]).mean().mean()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step5.recall_by_hand(blind_recall, heavy_ecpm, light_ecpm["user-blind (ad only)"], req,
                     k=8, m=3)

# %% [markdown]
# ```{exercise} Machines for a million requests per second
# :label: ex-step5-machines
#
# This course's server answers each request alone. Using the median CPU time of a
# whole request served that way at K = {glue:text}`k97` (`cpu_ms_k`, below), compute
# `machines_1m`: the 16-core machines it needs for an average of 1,000,000 requests
# per second, with the peak-to-mean ratio `PEAK_TO_MEAN` and the target utilization
# `UTILIZATION`. Write the formula rather than calling `cores`. Why would the batched
# cost of section 4 be the wrong input for this server?
# ```

# %%
cpu_ms_k = float(cpu_ms.loc[K97, "one at a time"])
print(f"cpu_ms_k = {cpu_ms_k:.4f}, PEAK_TO_MEAN = {PEAK_TO_MEAN:.2f}, "
      f"UTILIZATION = {UTILIZATION}")

# %% [markdown]
# ```{solution-start} ex-step5-machines
# :class: dropdown
# ```

# %%
busy_cores = 1_000_000 * PEAK_TO_MEAN * cpu_ms_k / 1000
machines_1m = int(np.ceil(busy_cores / UTILIZATION / 16))

# %% [markdown]
# The batched cost shares each call's fixed costs among 500 requests; this server
# pays them on every request, so the batched cost would undersize its fleet. It is
# the right input only for a server that batches requests, or whose fixed costs per
# call are negligible next to its work per candidate.
#
# ```{solution-end}
# ```

# %%
step5.machines_needed(machines_1m, cpu_ms_per_request=cpu_ms_k, avg_qps=1_000_000,
                      peak_to_mean=PEAK_TO_MEAN, utilization=UTILIZATION,
                      cores_per_machine=16)

# %% [markdown]
# ```{exercise} Choose K for a budget
# :label: ex-step5-choose-k
#
# Picture this platform at internet scale, where scoring is the largest line of the
# serving bill and the server is written for the purpose: its cost per request
# approaches the batched, marginal work of section 4, with little overhead per call.
# The capacity plan gives the scoring stages (light plus heavy) a quarter of what
# scoring every eligible ad costs today: `budget_ms` of CPU per request, batched.
# Using the table `options` (one row per K: its measured scoring cost and the revenue
# it keeps), choose the K you would ship and set `chosen_k`. Several K fit. The costs
# are noisy measurements, so the check does not rule out a K less than 10% over the
# budget; it accepts any K that fits and keeps within half a point of the revenue of
# the best K that fits, and tells you what yours trades away.
# ```

# %%
budget_ms = float(batched.loc["all", "scoring"]) / 4
options = pd.DataFrame({"scoring ms": batched.loc[KS, "scoring"],
                        "revenue ratio": sweep.loc[KS, "revenue ratio"]})
print(f"budget_ms = {budget_ms:.4f}")
options.style.format({"scoring ms": "{:.4f}", "revenue ratio": "{:.1%}"})

# %% tags=["remove-cell"]
assert (options["scoring ms"] <= budget_ms).sum() >= 3   # "Several K fit"

# %% [markdown]
# ```{solution-start} ex-step5-choose-k
# :class: dropdown
# ```

# %%
affordable = options[options["scoring ms"] <= budget_ms]
chosen_k = int(affordable["revenue ratio"].idxmax() if len(affordable)
               else options["scoring ms"].idxmin())

# %% [markdown]
# ```{solution-end}
# ```

# %%
step5.choose_k(chosen_k, options, budget_ms)

# %% [markdown]
# ```{exercise} On paper: shard the index
# :label: ex-step5-shards
#
# At a million ads the index and the light stage no longer fit one machine, so the
# ads are split over 20 shards; a request goes to all 20, each returns its top K, and
# a merger keeps the global top K for the heavy model. Each shard answers within
# 5 ms 99% of the time. (a) What share of requests waits longer than 5 ms for its
# slowest shard? (b) Does the merged top K equal the top K of one big index? (c) Name
# two ways to cut the tail.
# ```

# %% [markdown]
# ```{solution-start} ex-step5-shards
# :class: dropdown
# ```

# %% [markdown]
# (a) A request is fast only if all 20 shards are: 0.99^20 = 0.82, so about 18% of
# requests wait for at least one shard's tail. The p99 of a shard becomes roughly the
# p82 of the request. (b) Yes, if each shard returns its own top K by the same light
# score: any ad in the global top K is in its shard's top K. (The heavy stage then
# scores K ads, not 20K; sending 20K to the heavy model is a different, costlier
# design.) (c) Fewer, larger shards or replicas (a smaller fan-out); hedged requests
# (send a second copy to another replica when the first is late and take the first
# answer); a deadline after which the merger proceeds with the shards that answered,
# losing a little recall instead of a lot of latency.

# %% [markdown]
# ```{solution-end}
# ```

# %% tags=["remove-cell"]
glue("lab_seconds", f"{time.perf_counter() - started:.0f}", display=False)
glue("recall_aware_k97", pct(aware.get(K97, np.nan), 0), display=False)

# %% [markdown]
# ## Recap
#
# - The light stage decides what the heavy model ever sees. A user-aware light model
#   kept {glue:text}`rev_k97` of the revenue at K = {glue:text}`k97` (recall@K of the
#   heavy top three: {glue:text}`recall_aware_k97`); a user-blind one kept
#   {glue:text}`rev_blind_k97` at the same K.
# - Work per request is candidates times cost per candidate, plus the cost of each
#   call. At the direct path's {glue:text}`row_us` per candidate, one call of the
#   heavy model costs as much as about {glue:text}`rows_per_call_direct`
#   candidates on the direct path and {glue:text}`rows_per_call` through pandas,
#   so the stage scores each request's candidates in one call, and skips the
#   general-purpose conversion.
# - The funnel's saving is bounded by eligible ads / K. Here: {glue:text}`bar_sentence`
# - Size a fleet from the path the server runs. From the batched, marginal work the
#   funnel at K = {glue:text}`k97` saved {glue:text}`fleet_saving_batched` of the
#   machines at 1M QPS; this server, which answers each request alone and pays its
#   fixed costs per call every time, saved {glue:text}`fleet_saving_alone`.
# - Latency at p99, one request at a time, at K = {glue:text}`k97`:
#   {glue:text}`p99_total_k97` for the whole request. This lab ran in
#   {glue:text}`lab_seconds` seconds.

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# "The heavy model can't score every eligible ad, so I'd build a funnel: the index
# filters by targeting and budget, a light model that sees the user scores every
# eligible ad with a few precomputed lookups, and the heavy, calibrated model scores
# the top K; then the auction. Work per request is candidates times cost per
# candidate plus a fixed cost per call, so the heavy stage gets each request's K
# candidates in one call. I'd choose K from a measured curve: in my simulation K =
# {glue:text}`k97` kept {glue:text}`rev_k97` of the revenue of scoring every ad, for
# {glue:text}`bar_speedup` times less scoring time; a user-blind selector kept only
# {glue:text}`rev_blind_k97` at that K. I'd check the p99 per stage one request at a
# time, not the batched average, because fixed costs per call don't shrink with K. At
# internet scale the index holds millions of ads, so a retrieval stage (an
# embedding-based nearest-neighbour search) comes before the light ranker, the index
# and scorers are sharded with replicas, and I'd watch the fan-out tail."
# ```
