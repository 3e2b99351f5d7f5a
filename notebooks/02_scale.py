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
# # Lab 2: what a prediction costs
#
# In the interview you *estimate* the cost of scoring ads; in this lab you *measure*
# it. We train three click models on the toy world's logs, time the scoring stage
# (feature building plus prediction) for one request at a time, and turn the
# measurements into the capacity plan and the trade-off table of
# {doc}`../book/step2_scale`.
#
# ```{admonition} What you will build
# :class: note
# - A logistic regression and two LightGBM models, with their held-out log loss
#   against the oracle.
# - Latency *distributions* (p50 and p99 over repeated requests) from 10 to 10,000
#   candidates per request, split into a fixed cost per call and a cost per
#   candidate, and what batching does to both.
# - A capacity plan: cores and 16-core machines for 1k and 1M requests per second,
#   and the volume of logs and training data those loads imply.
# - What replicas and shards do to latency, from the same measurements.
# - The trade-off table to draw on the whiteboard, and a judgment call: which model,
#   scoring how many candidates, fits the budget.
#
# About 45 minutes. Prerequisites: {doc}`01_clarify` and the
# {doc}`concept page <../book/step2_scale>`.
# ```
#
# ```{admonition} These numbers are measured, not quoted
# :class: note
# Every latency and capacity figure on this page was measured while the book was
# built, on whatever machine built it, and a rerun gives different values. Your
# laptop will differ by a factor of two either way; a busy machine adds tail latency.
# What carries over is the method and the shape of the results, not the milliseconds.
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
import io
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from myst_nb import glue

from adsys import plots
from adsys.baseline import serve_random
from adsys.checks import step2
from adsys.events import closed_labels
from adsys.features import (
    FEATURE_COLUMNS,
    SERVING_POSITION,
    feature_arrays,
    make_features,
    to_frame,
)
from adsys.history import History
from adsys.metrics import calibration_ratio, log_loss
from adsys.observable import SECONDS_PER_DAY
from adsys.prediction import LightGBMClickModel, LogisticClickModel
from adsys.world import World

plots.style()
world = World(seed=0)
view = world.view
rng = np.random.default_rng(2)

# %% [markdown]
# ## 1. Training data and three models
#
# We log three days of the random server of Lab 1 and label them as the platform
# does: from the click stream, with a one-hour attribution window, once the window
# has closed (the truth column `clicked` is dropped first). Day 0 fills the
# platform's history (its counts per ad and per user and topic), on top of two weeks
# of page views logged before ads launched, as the simulation loop does; the
# features read it. Day 1 is the training set and day 2 the held-out test set.

# %%
WINDOW = 3600  # seconds


def random_day(day: int, n_requests: int) -> pd.DataFrame:
    """One day of random serving, labelled from the click stream at the day's end."""
    log = serve_random(world, day, n_requests, rng)
    log.insert(0, "impression_id", day * 10**7 + np.arange(len(log)))
    clicked = log.pop("clicked")   # the truth; the platform sees the click stream
    stream = world.click_stream(log["impression_id"], log["time"], clicked, rng)
    return closed_labels(log, stream, WINDOW, as_of=(day + 1) * SECONDS_PER_DAY)


history = History(view)
for _ in range(14):                         # two weeks of page views before ads
    before = world.requests(0, rng)
    history.add_views(before.user, before.publisher)
past, train, test = random_day(0, 100_000), random_day(1, 60_000), random_day(2, 60_000)
history.add(past["user_id"], past["ad_id"], past["clicked"])
pages = past.drop_duplicates("request_id")
history.add_views(pages["user_id"], pages["publisher_id"])


def features_of(log: pd.DataFrame) -> pd.DataFrame:
    """Features of logged impressions: the same function the server calls."""
    return make_features(view, log["user_id"], log["ad_id"], log["publisher_id"],
                         log["hour"], log["position"], history, log["exposures"])


x_train, x_test = features_of(train), features_of(test)

# %% [markdown]
# The LightGBM sizes are written *trees x leaves per tree*; the larger model gets a
# smaller learning rate, so that its extra trees refine rather than overfit. Every
# model runs on one thread (`n_jobs=1`): in serving, one request is handled by one
# core, and the capacity plan below counts cores.

# %%
TREES = dict(min_child_samples=200, reg_lambda=5.0, n_jobs=1, seed=0)
SMALL, BIG = "LightGBM 50x15", "LightGBM 200x15"
models = {
    "logistic": LogisticClickModel(),
    SMALL: LightGBMClickModel(50, 15, learning_rate=0.1, **TREES),
    BIG: LightGBMClickModel(200, 15, learning_rate=0.045, **TREES),
}
quality, predictions = {}, {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(x_train, train["clicked"])
    seconds = time.perf_counter() - start
    p = predictions[name] = model.predict(x_test)
    quality[name] = {"log loss": log_loss(test["clicked"], p),
                     "calibration": calibration_ratio(test["clicked"], p),
                     "training s": seconds}
oracle = log_loss(test["clicked"], test["true_p"] * world.delay_cdf(WINDOW))
quality = pd.DataFrame(quality).T
quality["above oracle"] = quality["log loss"] / oracle - 1
quality.style.format({"log loss": "{:.5f}", "calibration": "{:.3f}",
                      "training s": "{:.1f}", "above oracle": "{:.1%}"})

# %% tags=["remove-cell"]
ll = quality["log loss"]
best = ll.idxmin()
assert best != "logistic", "the premise of this lab: trees beat the logistic model"
assert ll[SMALL] < ll["logistic"], "the small tree model already beats the logistic one"
gain_small = 1 - ll[SMALL] / ll["logistic"]
gain_big = 1 - ll[BIG] / ll[SMALL]
glue("n_train", f"{len(train):,}", display=False)
glue("n_test", f"{len(test):,}", display=False)
glue("n_test_clicks", f"{test['clicked'].sum():,}", display=False)
glue("ll_oracle", f"{oracle:.5f}", display=False)
glue("ll_logistic", f"{ll['logistic']:.5f}", display=False)
glue("ll_best", f"{ll[best]:.5f}", display=False)
glue("best_model", best, display=False)
gain_best = 1 - ll[best] / ll["logistic"]
glue("gain_best", f"{gain_best:.1%}", display=False)
tastes = ("interest matters more on a page about the same topic, and each age band "
          "has its own tastes")
above_oracle = quality["above oracle"]
if gain_best >= 0.01:
    trees_gain = ("The trees earn their place because the world is not additive in "
                  f"what the platform sees: {tastes}.")
else:
    assert above_oracle[best] > 2 * gain_best, "the prose: small next to the oracle gap"
    trees_gain = ("That gain is small next to the distance both models keep from the "
                  f"oracle ({above_oracle['logistic']:.1%} and {above_oracle[best]:.1%} "
                  "above it): the world is not additive in what the platform sees "
                  f"({tastes}), and trees can capture that, but on this log it buys "
                  "little.")
glue("trees_gain", trees_gain, display=False)
glue("small_name", SMALL, display=False)
glue("big_name", BIG, display=False)
glue("gain_small", f"{gain_small:.1%}", display=False)
more = models[BIG].params["n_estimators"] // models[SMALL].params["n_estimators"]
glue("big_vs_small", f"{more} times as many trees buy another {gain_big:.2%}"
     if gain_big > 0 else f"{more} times as many trees buy nothing ({-gain_big:.2%} "
     "worse)", display=False)


# %% tags=["remove-cell"]
# The big model's own gain over the logistic regression, with a 95% bootstrap interval:
# resample the test impressions, both models on the same rows.
def row_losses(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return -np.where(test["clicked"].to_numpy() == 1, np.log(q), np.log1p(-q))


loss_lr, loss_big = row_losses(predictions["logistic"]), row_losses(predictions[BIG])
assert np.isclose(loss_big.mean(), ll[BIG])
assert np.isclose(loss_lr.mean(), ll["logistic"])
resample = np.random.default_rng(3)     # its own stream: later draws are unchanged
gains = []
for _ in range(400):
    pick = resample.integers(0, len(test), len(test))
    gains.append(1 - loss_big[pick].mean() / loss_lr[pick].mean())
gain_low, gain_high = np.percentile(gains, [2.5, 97.5])
gain_big_lr = 1 - ll[BIG] / ll["logistic"]
lower = "lower" if gain_big_lr > 0 else "higher"
zero = "" if gain_low > 0 or gain_high < 0 else ", which includes zero"
said = (f"{BIG}'s held-out log loss is {abs(gain_big_lr):.1%} {lower} than the "
        "logistic regression's (95% bootstrap interval of the gain, resampling test "
        f"impressions: {gain_low:.1%} to {gain_high:.1%}{zero})")
glue("gain_big_lr", f"{abs(gain_big_lr):.1%} {lower}", display=False)
glue("big_gain_said", said, display=False)
size = ("A difference within the noise" if gain_low <= 0 <= gain_high else
        "A small difference" if abs(gain_big_lr) < 0.01 else "A clear difference")
glue("big_gain_caveat",
     f"{size} on {test['clicked'].sum():,} test clicks: the example is about the "
     "method, checking a model against the latency budget at the candidate count "
     "needed, not a proof that the bigger model is better", display=False)

# %% [markdown]
# Trained on {glue:text}`n_train` impressions and evaluated on the
# {glue:text}`n_test` of the next day ({glue:text}`n_test_clicks` clicks), the
# logistic regression reaches a log loss of {glue:text}`ll_logistic` and the best
# model, {glue:text}`best_model`, {glue:text}`ll_best`, {glue:text}`gain_best`
# lower; the oracle (the world's true probability of a click within the window)
# sets the floor at {glue:text}`ll_oracle`. {glue:text}`trees_gain` The small LightGBM
# model already has a {glue:text}`gain_small` lower log loss than the logistic
# regression;
# {glue:text}`big_vs_small`: diminishing returns {cite}`he2014practical`. Whether
# either gain is worth its cost is the question of this lab. Take the gains for what
# they are: {glue:text}`big_gain_said`. {glue:text}`big_gain_caveat`.

# %% [markdown]
# ## 2. Timing the scoring stage, one request at a time
#
# At serving time a request arrives with a user, a page and an hour; the earlier
# stages hand over the candidate ads. The scoring stage builds their features with
# the *same* `make_features` as training (every candidate at position 1, see
# `adsys.features`) and calls `predict`. Both parts are timed: feature building is
# part of the serving cost.
#
# For each of {glue:text}`n_repeats` requests drawn from the world's traffic and
# each candidate count, we draw that many active ads, build the features once and
# let every model score the same rows. The toy world has only
# {glue:text}`n_active` active ads, fewer than a production index returns, so the
# larger counts repeat ads: scoring a repeated ad costs the same. One untimed pass
# first warms up caches.
#
# Two clocks run. `time.thread_time_ns` gives the CPU time the request used: its own
# work, which is what it takes on a core of its own and what the capacity plan
# counts. `time.perf_counter_ns` gives the wall-clock time, which on a shared
# machine also includes waiting for a free core. We check the budget against the
# p99 of the CPU time, as a server with a core per request would see it, and come
# back to the waiting in section 6.
#
# A word on that p99. With {glue:text}`n_repeats` requests per count,
# `np.percentile(x, 99)` falls between the two slowest of them, so the p99 of this
# lab is nearly the slowest of {glue:text}`n_repeats` requests: a rough stand-in for
# the true 99th percentile (the slowest of {glue:text}`n_repeats` lands, on average,
# near the {glue:text}`max_quantile` point of the distribution), and one busy moment
# on the machine can move it. Pinning down a p99 takes a thousand or more requests
# per count, as a load test does; at 10,000 candidates that is more time than this
# lab can spend. Read its p99 as a rough tail: enough to show the shape and to
# practise the check, not to sign a service-level objective.

# %%
BUDGET_MS = 20.0   # p99 of the stage: 10 ms for features + 10 ms for the model
CANDIDATES = [10, 100, 300, 1000, 10_000]
REPEATS = 30
requests = world.requests(2, rng, n=64)   # day 2's traffic: 64 requests to time
active_ads = np.flatnonzero(view.active_ads(2))


def request_features(i: int, ads: np.ndarray, n_requests: int = 1) -> pd.DataFrame:
    """Features of ``ads`` for requests i..i+n_requests-1 (each request sees all)."""
    take = np.repeat(np.arange(i, i + n_requests), len(ads))
    return make_features(view, requests.user[take], np.tile(ads, n_requests),
                         requests.publisher[take], requests.hour[take],
                         SERVING_POSITION, history)


def draw_ads(n: int) -> np.ndarray:
    return rng.choice(active_ads, size=n, replace=n > len(active_ads))


def clock() -> tuple[int, int]:
    return time.perf_counter_ns(), time.thread_time_ns()


# %% tags=["remove-cell"]
glue("n_active", f"{len(active_ads):,}", display=False)
glue("n_repeats", f"{REPEATS}", display=False)
assert REPEATS <= 100, "the prose: the p99 lies between the two slowest timings"
glue("max_quantile", f"{REPEATS / (REPEATS + 1):.0%}", display=False)

# %%
for n in CANDIDATES:  # warm-up, not timed
    for model in models.values():
        model.predict(request_features(0, draw_ads(n)))

rows = []
for i in range(REPEATS):
    for n in CANDIDATES:
        ads = draw_ads(n)
        wall0, cpu0 = clock()
        features = request_features(i, ads)
        wall1, cpu1 = clock()
        build = (wall1 - wall0, cpu1 - cpu0)
        for name, model in models.items():
            model.predict(features)
            wall2, cpu2 = clock()
            rows.append((name, n, i, *build, wall2 - wall1, cpu2 - cpu1))
            wall1, cpu1 = wall2, cpu2
runs = pd.DataFrame(rows, columns=["model", "candidates", "request", "features_ns",
                                   "features_cpu_ns", "predict_ns", "predict_cpu_ns"])
runs["wall_ms"] = (runs["features_ns"] + runs["predict_ns"]) / 1e6
runs["cpu_ms"] = (runs["features_cpu_ns"] + runs["predict_cpu_ns"]) / 1e6

# %% tags=["remove-cell"]
glue("n_timed", f"{len(runs):,}", display=False)

# %% [markdown]
# Each row of `runs` is one timed request and model ({glue:text}`n_timed` in all).
# Summarized by percentiles:


# %%
def p99(x: pd.Series) -> float:
    return float(np.percentile(x, 99))


latency = runs.groupby(["model", "candidates"], sort=False).agg(
    p50_ms=("cpu_ms", "median"), p99_ms=("cpu_ms", p99), cpu_ms=("cpu_ms", "mean"),
    wall_p99_ms=("wall_ms", p99))
latency.unstack("candidates")["p99_ms"].style.format("{:.2f}").set_caption(
    "p99 CPU time (ms) of the scoring stage, by model and candidates per request")

# %% tags=["hide-input", "remove-output"]
fig, ax = plt.subplots(figsize=(7.0, 4.2))
markers = ["o", "s", "^", "D", "v"]
for k, (name, group) in enumerate(latency.groupby(level="model", sort=False)):
    counts = group.index.get_level_values("candidates")
    ax.plot(counts, group["p99_ms"], "-", marker=markers[k], color=f"C{k}", label=name)
    ax.plot(counts, group["p50_ms"], "--", color=f"C{k}", alpha=0.7, lw=1)
ax.plot([], [], "k-", label="p99 (solid)")
ax.plot([], [], "k--", lw=1, alpha=0.7, label="p50 (dashed)")
ax.axhline(BUDGET_MS, color="black", lw=1.2, ls=":", label=f"budget ({BUDGET_MS:g} ms)")
ax.set(xscale="log", yscale="log", xlabel="candidates per request (log scale)",
       ylabel="CPU time per request (ms, log scale)",
       title="Scoring-stage latency (features + model) on this machine")
top = ax.get_ylim()[1]
ax.axhspan(BUDGET_MS, top, color="C3", alpha=0.07, lw=0, label="over budget")
ax.set_ylim(top=top)
ax.set_xticks(CANDIDATES, [f"{c:,}" for c in CANDIDATES])
ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
ax.yaxis.set_minor_formatter(NullFormatter())
fig.legend(loc="outside lower center", ncol=3, fontsize=9)
glue("fig_latency", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_latency
# :name: fig-step2-latency
#
# Latency of the scoring stage (feature building plus prediction) for one request
# on a core of its own (its CPU time), against the number of candidate ads it
# scores, on the machine that built this page. Solid lines: p99 over the repeated
# requests; dashed: the median. Dotted: the 20 ms budget of this stage, with the
# region over it shaded.
# ```
#
# **Takeaway:** each line is flat at first, where a fixed cost per call dominates,
# then climbs, where the candidates do; the bigger the model, the earlier and the
# steeper the climb. Which part dominates at the count you need decides which lever
# helps.

# %% [markdown]
# ## 3. A fixed cost per call and a cost per candidate
#
# Two numbers summarize each line: the cost per candidate, the slope between 1,000
# and 10,000 candidates, and the fixed cost per call, what is left at 10
# candidates. We take them from the median CPU time, for feature building and for
# each model separately.

# %%
def split_cost(cpu_ns: pd.Series) -> dict[str, float]:
    """Fixed ms per call and microseconds per candidate, from medians by count."""
    med = cpu_ns.groupby(level="candidates").median() / 1e3    # microseconds
    per_candidate = (med[10_000] - med[1000]) / 9000
    return {"fixed ms per call": max(med[10] - 10 * per_candidate, 0) / 1e3,
            "µs per candidate": per_candidate}


by = runs.set_index(["model", "candidates"])
costs = pd.DataFrame({"features": split_cost(by.loc["logistic", "features_cpu_ns"]),
                      **{name: split_cost(by.loc[name, "predict_cpu_ns"])
                         for name in models}}).T
costs.style.format({"fixed ms per call": "{:.2f}", "µs per candidate": "{:.2f}"})

# %% tags=["remove-cell"]
us = costs["µs per candidate"]
assert us[BIG] > us[SMALL] > us["logistic"], "bigger models cost more per candidate"
glue("us_features", f"{us['features']:.2f} µs", display=False)
glue("us_logistic", f"{us['logistic']:.2f} µs", display=False)
glue("us_small", f"{us[SMALL]:.1f} µs", display=False)
glue("us_big", f"{us[BIG]:.1f} µs", display=False)
glue("big_over_logistic", f"{us[BIG] / us['logistic']:.0f}", display=False)
fixed = costs["fixed ms per call"]
glue("fixed_features", f"{fixed['features']:.1f} ms", display=False)
glue("fixed_logistic", f"{fixed['logistic']:.1f} ms", display=False)
glue("fixed_big", f"{fixed[BIG]:.1f} ms", display=False)

# %% [markdown]
# Per candidate, building the features costs {glue:text}`us_features`, the
# logistic regression {glue:text}`us_logistic`, {glue:text}`small_name`
# {glue:text}`us_small` and {glue:text}`big_name` {glue:text}`us_big`,
# {glue:text}`big_over_logistic` times the logistic regression: a tree model walks
# every tree for every candidate. Per call, the features cost
# {glue:text}`fixed_features`, the logistic regression {glue:text}`fixed_logistic`
# and {glue:text}`big_name` {glue:text}`fixed_big`, before any candidate is scored.
#
# Where does a fixed cost of milliseconds come from? Not from arithmetic: from the
# general-purpose layers around it. `LightGBMClickModel.predict` hands LightGBM a
# pandas table, which it converts column by column on every call; the logistic
# regression is fitted as a scikit-learn pipeline (one-hot encoding, scaling, the
# regression) but served from lookup tables, one weight per category and one slope
# per numeric feature. Timing each model's general path against a lean one on the
# same 1,000 candidates (the lean LightGBM path gives the booster the feature arrays
# as one numeric matrix):


# %%
one = np.zeros(1000, dtype=int)                       # request 0, 1,000 candidates
arrays = feature_arrays(view, requests.user[one], draw_ads(1000),
                        requests.publisher[one], requests.hour[one], SERVING_POSITION,
                        history)
table = to_frame(view, arrays)                        # what make_features returns
logistic, big, booster = models["logistic"], models[BIG], models[BIG].estimator.booster_
paths = {
    ("logistic", "scikit-learn pipeline"):
        lambda: logistic.estimator.predict_proba(table[list(FEATURE_COLUMNS)])[:, 1],
    ("logistic", "lookup tables (served)"): lambda: logistic.predict(table),
    (BIG, "pandas table (served)"): lambda: big.predict(table),
    (BIG, "booster on a matrix"): lambda: booster.predict(
        np.column_stack([arrays[c] for c in FEATURE_COLUMNS]).astype(float)),
}
lean = {}
for (name, path), score in paths.items():
    cpu = []
    for _ in range(10):
        start = time.thread_time_ns()
        p = score()
        cpu.append(time.thread_time_ns() - start)
    gap = float(np.abs(p - models[name].predict(table)).max())
    lean[name, path] = {"median CPU ms": np.median(cpu) / 1e6,
                        "largest difference": gap}
lean = pd.DataFrame(lean).T.rename_axis(["model", "path"])
lean.style.format({"median CPU ms": "{:.2f}", "largest difference": "{:.0e}"})

# %% tags=["remove-cell"]
assert (lean["largest difference"] < 1e-9).all(), "all paths give the same predictions"
cpu_path = lean["median CPU ms"]
assert (cpu_path["logistic", "lookup tables (served)"]
        < cpu_path["logistic", "scikit-learn pipeline"]), "tables beat the pipeline"
assert cpu_path[BIG, "booster on a matrix"] < cpu_path[BIG, "pandas table (served)"]
glue("pipeline_ms", f"{cpu_path['logistic', 'scikit-learn pipeline']:.2f} ms",
     display=False)
glue("tables_ms", f"{cpu_path['logistic', 'lookup tables (served)']:.2f} ms",
     display=False)
glue("pandas_ms", f"{cpu_path[BIG, 'pandas table (served)']:.2f} ms", display=False)
glue("matrix_ms", f"{cpu_path[BIG, 'booster on a matrix']:.2f} ms", display=False)
# The concept page: the fixed costs, and how much of the big model's is serving code.
assert fixed[BIG] >= 1, "the prose: a fixed cost of milliseconds per call"
saved = cpu_path[BIG, "pandas table (served)"] - cpu_path[BIG, "booster on a matrix"]
share = "most" if saved >= fixed[BIG] / 2 else "part"
glue("fixed_share", share.capitalize(), display=False)
glue("fixed_page", f"plus fixed costs per call of {fixed['features']:.1f} ms to build "
     f"the features and {fixed[BIG]:.1f} ms for the 200-tree model's call, {share} of "
     "the latter serving code rather than arithmetic: given the same 1,000 candidates as a plain "
     f"matrix instead of a pandas table, that model took "
     f"{cpu_path[BIG, 'booster on a matrix']:.1f} ms instead of "
     f"{cpu_path[BIG, 'pandas table (served)']:.1f} ms", display=False)

# %% [markdown]
# Same models, same predictions (the largest difference is in the last column),
# different serving code. The logistic regression takes {glue:text}`pipeline_ms`
# through the general pipeline and {glue:text}`tables_ms` from its lookup tables;
# {glue:text}`big_name` takes {glue:text}`pandas_ms` from a pandas table and
# {glue:text}`matrix_ms` from a plain matrix. This is the "compilation" lever of the
# concept page, and the reason to profile before choosing a lever: much of a Python
# server's cost is not where the model is. A production server in C++ or Java pays
# mostly the per-candidate part; the capacity plan below keeps the course's own
# serving code, overhead included, because that is what we would deploy.

# %% [markdown]
# ## 4. Batching: more requests per call
#
# The fixed cost per call suggests another lever: score several requests in one
# call. Below, each call scores a batch of requests with 100 candidates each; we
# time 3 calls per batch size and divide the CPU time by the requests in the batch.

# %%
BATCHES = [1, 4, 16, 64]
batch_rows = []
for size in BATCHES:
    for call in range(3):
        first = call % (len(requests) - size + 1)
        features = request_features(first, draw_ads(100), size)
        wall0, cpu0 = clock()
        models[BIG].predict(features)
        wall1, cpu1 = clock()
        batch_rows.append((size, (wall1 - wall0) / 1e6, (cpu1 - cpu0) / 1e6 / size))
batching = (pd.DataFrame(batch_rows, columns=["batch", "call ms", "CPU ms per request"])
            .groupby("batch").median())
batching.style.format("{:.2f}").set_caption(
    f"{BIG}: median wall time of one call and model CPU time per request (ms)")

# %% tags=["remove-cell"]
per_request = batching["CPU ms per request"]
assert per_request[BATCHES[-1]] < per_request[1], "batching shares the fixed cost"
glue("batch_max", f"{BATCHES[-1]}", display=False)
glue("batch_cpu_1", f"{batching.loc[1, 'CPU ms per request']:.2f} ms", display=False)
glue("batch_cpu_max", f"{batching.loc[BATCHES[-1], 'CPU ms per request']:.2f} ms",
     display=False)
glue("batch_call_max", f"{batching.loc[BATCHES[-1], 'call ms']:.1f} ms", display=False)

# %% [markdown]
# Going from one request per call to {glue:text}`batch_max` cuts the model's CPU
# cost per request from {glue:text}`batch_cpu_1` to {glue:text}`batch_cpu_max`: the
# fixed cost is shared. The price is latency: the call now takes
# {glue:text}`batch_call_max`, and every request in the batch waits for the whole of
# it (plus the time spent waiting for the batch to fill). Batching across requests
# suits a throughput-bound stage with slack in its budget; within one request,
# scoring all candidates in a single call is always worth it.

# %% [markdown]
# ## 5. From measurements to a capacity plan
#
# The plan needs four inputs: the load, its peak-to-mean ratio, the CPU time per
# request and a target utilization. The world's daily traffic curve gives the ratio.
# For the cost we take the *mean CPU time* at the planned candidate count (total
# work is the mean times the number of requests); for the budget, its *p99*. The
# plan scores every eligible ad of a production-sized index,
# {glue:text}`k_plan` candidates per request, keeps the stage within its
# {glue:text}`budget` at p99, and runs machines at 60% utilization at peak.

# %%
hourly = world.hourly_traffic()
PEAK_TO_MEAN = float(hourly.max() / hourly.mean())
K_PLAN, UTILIZATION, CORES_PER_MACHINE = 10_000, 0.6, 16
LOADS = {"1k QPS": 1_000, "1M QPS": 1_000_000}


def cores(avg_qps: float, cpu_ms: float) -> float:
    """Cores for ``avg_qps`` on average, at the peak hour, at the target utilization."""
    return avg_qps * PEAK_TO_MEAN * (cpu_ms / 1000) / UTILIZATION


plan = latency.xs(K_PLAN, level="candidates")
trade_off = pd.DataFrame({
    "log loss": ll,
    "p99 ms": plan["p99_ms"],
    "CPU ms / request": plan["cpu_ms"],
    **{f"cores, {load}": cores(qps, plan["cpu_ms"]) for load, qps in LOADS.items()},
    "machines, 1M QPS": np.ceil(cores(1e6, plan["cpu_ms"]) / CORES_PER_MACHINE),
    "within budget": plan["p99_ms"] <= BUDGET_MS,
})
trade_off.style.format({"log loss": "{:.5f}", "p99 ms": "{:.1f}",
                        "CPU ms / request": "{:.2f}", "cores, 1k QPS": "{:.1f}",
                        "cores, 1M QPS": "{:,.0f}", "machines, 1M QPS": "{:,.0f}"})

# %% tags=["remove-cell"]
glue("k_plan", f"{K_PLAN:,}", display=False)
glue("budget", f"{BUDGET_MS:g} ms", display=False)
glue("peak_to_mean", f"{PEAK_TO_MEAN:.2f}", display=False)
glue("peak_hour", f"{int(hourly.argmax()):02d}:00", display=False)
machines = trade_off["machines, 1M QPS"]
glue("cores_1k_min", f"{trade_off['cores, 1k QPS'].min():.1f}", display=False)
glue("cores_1k_max", f"{trade_off['cores, 1k QPS'].max():.1f}", display=False)
glue("machines_min", f"{machines.min():,.0f}", display=False)
glue("machines_max", f"{machines.max():,.0f}", display=False)
glue("machines_per_ms", f"{cores(1e6, 1.0) / CORES_PER_MACHINE:,.0f}", display=False)

# %% [markdown]
# Traffic peaks at {glue:text}`peak_hour`, at {glue:text}`peak_to_mean` times the
# daily average: the fleet is sized for that hour. At 1k QPS the models need from
# {glue:text}`cores_1k_min` to {glue:text}`cores_1k_max` cores, a small fleet
# whichever model wins (plus a spare machine for redundancy). At 1M QPS they need
# from {glue:text}`machines_min` to {glue:text}`machines_max` machines of 16 cores,
# and every millisecond of CPU per request is worth about
# {glue:text}`machines_per_ms` machines.
#
# The same load sets the data volume. Every impression is logged and, once its
# label is final, becomes a training row. We measure a row on the lab's own log: the
# training day as the platform stores it (the world's `true_p` dropped), written as
# compressed Parquet, then scale by impressions per day and by a four-week training
# window.

# %%
logged = train.drop(columns="true_p")          # what the platform itself logs
buffer = io.BytesIO()
logged.to_parquet(buffer)
bytes_per_row = buffer.getbuffer().nbytes / len(logged)
per_request = len(logged) / logged["request_id"].nunique()
WINDOW_DAYS = 28
volume = pd.DataFrame(index=pd.Index(list(LOADS), name="load"))
volume["impressions per day, billions"] = [
    qps * SECONDS_PER_DAY * per_request / 1e9 for qps in LOADS.values()]
volume["GB per day"] = volume["impressions per day, billions"] * bytes_per_row
volume[f"TB per {WINDOW_DAYS} days"] = volume["GB per day"] * WINDOW_DAYS / 1e3
volume.style.format(lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.3g}")

# %% tags=["remove-cell"]
glue("bytes_per_row", f"{bytes_per_row:.0f}", display=False)
glue("n_logged_columns", f"{logged.shape[1]}", display=False)
glue("per_request", f"{per_request:.2f}", display=False)
glue("window_days", f"{WINDOW_DAYS}", display=False)
glue("requests_day_1m", f"{1e6 * SECONDS_PER_DAY / 1e9:.1f} billion", display=False)
big_load = volume.loc["1M QPS"]
glue("imps_day_1m", f"{big_load['impressions per day, billions']:.0f} billion",
     display=False)
glue("tb_day_1m", f"{big_load['GB per day'] / 1e3:.1f} TB", display=False)
glue("tb_window_1m", f"{big_load[f'TB per {WINDOW_DAYS} days']:,.0f} TB", display=False)
glue("gb_day_1k", f"{volume.loc['1k QPS', 'GB per day']:.1f} GB", display=False)

# %% [markdown]
# A labelled impression takes {glue:text}`bytes_per_row` bytes in this form
# ({glue:text}`n_logged_columns` columns: IDs, time, slot, bid, the label and when its
# click arrived). At the log's {glue:text}`per_request` impressions per request, 1M
# QPS means {glue:text}`imps_day_1m` impressions and {glue:text}`tb_day_1m` a day,
# {glue:text}`tb_window_1m` for a {glue:text}`window_days`-day training window; 1k
# QPS means {glue:text}`gb_day_1k` a day. A production row carries much more (string
# IDs, the features as served, prices, the model version), so read these as a floor.
# No one trains on every impression at 1M QPS: Step 6 samples the negatives.

# %% [markdown]
# ## 6. Latency is not throughput: replicas and shards
#
# More machines of the same kind (*replicas*, each serving whole requests) add
# throughput. They also make requests faster in one situation: near full load. A
# request that finds the server busy waits in a queue, and in the simplest queueing
# model the mean wait is u / (1 - u) service times at utilization u. Here with the
# measured service time (mean CPU time) of {glue:text}`big_name` at 1,000
# candidates:

# %%
service_ms = latency.loc[(BIG, 1000), "cpu_ms"]
u = np.array([0.5, 0.7, 0.8, 0.9, 0.95])
pd.DataFrame({"utilization": u,
              "mean wait, ms": service_ms * u / (1 - u),
              "with twice the replicas, ms": service_ms * (u / 2) / (1 - u / 2)}
             ).style.format({"utilization": "{:.0%}", "mean wait, ms": "{:.1f}",
                             "with twice the replicas, ms": "{:.1f}"}).hide()

# %% tags=["remove-cell"]
glue("service_ms", f"{service_ms:.1f} ms", display=False)
glue("wait_90", f"{service_ms * 9:.0f} ms", display=False)
glue("wait_45", f"{service_ms * 0.45 / 0.55:.1f} ms", display=False)
at_1000 = latency.loc[(BIG, 1000)]
wall_over_cpu = at_1000["wall_p99_ms"] / at_1000["p99_ms"]
if wall_over_cpu >= 1.1:
    waited = (f"This lab ran into it: on the machine that built this page, the "
              f"wall-clock p99 of {BIG} at 1,000 candidates was {wall_over_cpu:.1f} "
              "times its CPU p99, the difference being mostly time spent waiting for a "
              "free core.")
else:
    waited = (f"This lab did not run into it: on the machine that built this page, the "
              f"wall-clock p99 of {BIG} at 1,000 candidates was about the same as its "
              "CPU p99, so its requests seldom waited for a free core.")
glue("waited", waited, display=False)

# %% [markdown]
# At 90% utilization a request waits nine service times on average
# ({glue:text}`wait_90`) before its own {glue:text}`service_ms` of work; doubling
# the replicas halves the utilization and the wait falls to {glue:text}`wait_45`.
# {glue:text}`waited` Near full load, adding machines is a latency lever; at the 60%
# of the plan it helps little, and no number of replicas makes one request's own
# work shorter.
#
# *Shards* can. Split one request's candidates across S scoring servers that work in
# parallel: each scores 1/S of them, so the compute on the critical path shrinks,
# but the request now waits for the *slowest* shard, and every shard pays the fixed
# cost per call. The slowest of S independent shards is under a time t only if all S
# are, with probability F(t)^S, so a request's quantile q is one shard's quantile at
# q^(1/S). For the p99 of a request split ten ways that is a shard's 99.9th
# percentile, far beyond what {glue:text}`n_repeats` timings show, so we compare the
# *median* request, which needs a shard's quantile at 0.5^(1/S): the
# {glue:text}`q_ten` quantile for ten shards, the {glue:text}`q_hundred` quantile for
# a hundred. We estimate a quantile only from enough timings to leave five above it,
# so we time more calls of {glue:text}`big_name` (features included) at 1,000 and at
# 100 candidates, {glue:text}`n_shard_extra` in all, and pool them with those of
# section 2. With {glue:text}`k_plan` candidates split evenly, network time left out:

# %%
ABOVE = 5   # timings above a quantile, for it to be estimated at all
extra = {}
for n_shards in [10, 100]:
    per_shard, q = K_PLAN // n_shards, 0.5 ** (1 / n_shards)
    cpu = []
    for i in range(int(np.ceil(ABOVE / (1 - q))) - REPEATS):
        ads = draw_ads(per_shard)
        start = time.thread_time_ns()
        models[BIG].predict(request_features(i % len(requests), ads))
        cpu.append((time.thread_time_ns() - start) / 1e6)
    extra[per_shard] = cpu

# %%
shard_rows = []
for n_shards in [1, 10, 100]:
    per_shard, q = K_PLAN // n_shards, 0.5 ** (1 / n_shards)
    times = runs.query("model == @BIG and candidates == @per_shard")["cpu_ms"]
    sample = np.concatenate([times, extra.get(per_shard, [])])
    assert len(sample) * (1 - q) >= ABOVE - 1e-9, "enough timings above the quantile"
    shard_rows.append({"shards": n_shards, "candidates per shard": per_shard,
                       "timings": len(sample),
                       "median of one shard, ms": np.median(sample),
                       "median request, ms": np.quantile(sample, q),
                       "CPU ms per request": n_shards * times.mean()})
shards = pd.DataFrame(shard_rows).set_index("shards")
shards.style.format("{:.1f}").format(
    "{:,}", subset=["candidates per shard", "timings"])

# %% tags=["remove-cell"]
glue("q_ten", f"{0.5 ** 0.1:.3f}", display=False)
glue("q_hundred", f"{0.5 ** 0.01:.3f}", display=False)
glue("n_shard_extra", f"{sum(len(cpu) for cpu in extra.values()):,}", display=False)
request_p50, one_p50 = shards["median request, ms"], shards["median of one shard, ms"]
assert np.isclose(request_p50[1], latency.loc[(BIG, K_PLAN), "p50_ms"]), "one shard"
assert request_p50[1] / request_p50[10] < 10, "ten shards: less than ten times faster"
assert one_p50[10] > one_p50[1] / 10, "the prose: the fixed cost per call stays"
assert request_p50[10] > one_p50[10], "the prose: the slowest of ten sets the pace"
glue("shard_p50_1", f"{request_p50[1]:.1f} ms", display=False)
glue("shard_p50_10", f"{request_p50[10]:.1f} ms", display=False)
glue("shard_one_10", f"{one_p50[10]:.1f} ms", display=False)
glue("shard_speedup", f"{request_p50[1] / request_p50[10]:.1f}", display=False)
shard_cpu = shards["CPU ms per request"]
glue("shard_cpu_ratio", f"{shard_cpu[100] / shard_cpu[1]:.1f}", display=False)
p10, p100 = request_p50[10], request_p50[100]
hundred = ("no faster than ten" if p100 >= p10 else
           f"{p10 / p100:.1f} times faster than ten, not ten times")
glue("shard_hundred", f"A hundred shards are {hundred}: the median request takes "
     f"{p100:.1f} ms against {p10:.1f} ms", display=False)

# %% [markdown]
# Ten shards bring the median request from {glue:text}`shard_p50_1` to
# {glue:text}`shard_p50_10`, {glue:text}`shard_speedup` times lower, not ten: one
# shard's median call on 1,000 candidates already takes {glue:text}`shard_one_10`,
# because the fixed cost per call does not shrink, and waiting for the slowest of ten
# shards adds the rest. {glue:text}`shard_hundred`, as each shard still pays the
# fixed cost per call and the request waits for the slowest of a hundred; together
# they spend {glue:text}`shard_cpu_ratio` times the CPU of one. Sharding buys latency
# with machines and with a fan-out tail; replicas buy throughput, and latency only
# near full load.

# %% [markdown]
# ## 7. The decision: a better model that is too slow is rejected
#
# The trade-off table of section 5 puts the two columns that matter side by side:
# held-out log loss and p99 latency at the candidate count we need. Read together:

# %% tags=["remove-cell"]
fits = trade_off["within budget"]


def largest_fitting(name: str) -> int:
    """The largest measured count whose p99 fits the budget (0 if none)."""
    row = latency.loc[name, "p99_ms"]
    return max([int(k) for k, v in row.items() if v <= BUDGET_MS], default=0)


def typical_reach(name: str) -> int:
    """Candidates that fit the budget at the median costs of section 3 (features too).

    (budget - fixed ms per call) / ms per candidate: what a typical request affords.
    """
    per_call = fixed["features"] + fixed[name]
    per_candidate_ms = (us["features"] + us[name]) / 1000
    return max(int((BUDGET_MS - per_call) / per_candidate_ms), 0)


def reach_sentence(name: str, where: str = " (section 3)") -> str:
    """The candidates ``name`` affords: at its median costs, and at the measured p99.

    ``where`` points to the lab section on the fixed cost ("" on the concept page).
    """
    reach, typical = largest_fitting(name), typical_reach(name)
    row = latency.loc[name, "p99_ms"]
    above = [k for k in row.index if k > reach]
    per_call, per_candidate = fixed["features"] + fixed[name], us["features"] + us[name]
    said = (f"{name}, at its median costs ({per_call:.1f} ms per call with the "
            f"features, {per_candidate:.1f} µs per candidate), could score "
            f"about {typical:,} candidates per request")
    said += (f"; of the counts timed, up to {reach:,} kept the p99 within it"
             if reach else "; no count timed kept the p99 within it")
    if above:
        said += f" (at {above[0]:,}, the p99 was {row[above[0]]:.1f} ms)"
    if per_call > BUDGET_MS / 2:
        said += (f": the fixed cost per call, mostly general-purpose code{where}, "
                 "takes most of the budget before the first candidate")
    return said


def fit_sentence(name: str) -> str:
    """Whether ``name`` fits the budget at p99, from the counts timed."""
    reach, row = largest_fitting(name), latency.loc[name, "p99_ms"]
    if reach >= K_PLAN:
        return (f"its p99 stayed within the {BUDGET_MS:g} ms budget even at "
                f"{K_PLAN:,} candidates")
    if not reach:
        return (f"even at {row.index[0]:,} candidates its p99 was "
                f"{row.iloc[0]:.1f} ms, over the {BUDGET_MS:g} ms budget, so it fits "
                "only behind a selector or with leaner serving code")
    above = min(k for k in row.index if k > reach)
    return (f"its p99 stayed within the {BUDGET_MS:g} ms budget up to {reach:,} "
            f"candidates (at {above:,} it was {row[above]:.1f} ms), so at "
            f"{K_PLAN:,} it fits only behind a selector")


best_fit = ll[fits].idxmin() if fits.any() else None
if fits[best]:
    decision = (f"{best}, the model with the best log loss, keeps its p99 within the "
                f"budget at {K_PLAN:,} candidates: on this machine it is the choice.")
else:
    over = plan.loc[best, "p99_ms"]
    decision = (f"{best} has the best log loss, but at {K_PLAN:,} candidates its p99 "
                f"is {over:.1f} ms, over the {BUDGET_MS:g} ms budget: "
                "its timeouts would show no ad at all, so it is rejected. ")
    decision += (f"The best model that fits is {best_fit}, whose log loss is "
                 f"{ll[best_fit] / ll[best] - 1:.1%} higher." if best_fit else
                 "No model fits at that count on this machine.")
for key, where in [("decision", " (section 3)"), ("decision_page", "")]:
    glue(key, decision if fits[best] else f"{decision} {reach_sentence(best, where)}.",
         display=False)
glue("say_fit", fit_sentence(BIG), display=False)
glue("rejected_because",
     "Had it been over, the test would be the same: a model over the budget is rejected "
     "not for its log loss, but because a timeout earns nothing." if fits[best] else
     "This is the sense in which a more accurate model that is too slow is rejected: "
     "not for its log loss, but because a timeout earns nothing.", display=False)

# %% [markdown]
# {glue:text}`decision`
#
# {glue:text}`rejected_because` When a heavier model's gain is worth having,
# the way out is not to give up the better model but to give it fewer candidates: a
# cheap first stage picks the few hundred best of the {glue:text}`k_plan`, and the
# heavy model scores only those. That is the funnel of Step 5.
#
# ```{admonition} Pitfall
# :class: warning
# These milliseconds include the course's Python overhead and this machine's load;
# a compiled server on production hardware would be several times faster. The
# *ratios* carry over better (here {glue:text}`big_name` cost
# {glue:text}`big_over_logistic` times as much per candidate as the logistic
# regression), and so does the method: measure, fit fixed plus per-candidate cost,
# and check the p99 against the budget at the count you need.
# ```

# %% [markdown]
# ## 8. Exercises
#
# Each exercise names the variable to fill in; the cell after it checks your answer
# against the measurements of this run and explains what is wrong if it is.

# %% [markdown]
# ```{exercise} The p99 of a latency distribution
# :label: ex-step2-p99
#
# `timings_ns` holds the CPU times, in nanoseconds, of the timed requests that the
# big LightGBM model scored with 1,000 candidates each. Compute `p99_ms`, their 99th
# percentile in milliseconds. Compare it with the mean: which one should a latency
# budget be checked against?
# ```

# %%
timed = runs[(runs["model"] == BIG) & (runs["candidates"] == 1000)]
timings_ns = (timed["features_cpu_ns"] + timed["predict_cpu_ns"]).to_numpy()

# %% [markdown]
# ```{solution-start} ex-step2-p99
# :class: dropdown
# ```

# %%
p99_ms = np.percentile(timings_ns / 1e6, 99)

# %% [markdown]
# Against the p99. A caller's timeout cuts off single requests, and a request past
# it shows no ad, so what matters is how slow the slowest ones are. The mean hides
# them: a few very slow requests move it little, and at 1M QPS the 1% beyond the
# p99 is ten thousand requests a second. With these few timings the p99 is nearly
# the slowest of them; a budget you sign up to needs thousands.
#
# ```{solution-end}
# ```

# %%
step2.p99_latency(p99_ms, timings_ns)

# %% [markdown]
# ```{exercise} Cores for a million requests per second
# :label: ex-step2-cores
#
# A teammate measured `cpu_ms`, the mean CPU time per request of the big LightGBM
# model at 1,000 candidates (below). Compute `cores_1m`, the number of cores needed
# to serve an average of 1,000,000 requests per second, given the peak-to-mean
# ratio `PEAK_TO_MEAN` and the target utilization `UTILIZATION`. Write the formula
# yourself rather than calling `cores`.
# ```

# %%
cpu_ms = float(latency.loc[(BIG, 1000), "cpu_ms"])
print(f"cpu_ms = {cpu_ms:.3f}, PEAK_TO_MEAN = {PEAK_TO_MEAN:.2f}, "
      f"UTILIZATION = {UTILIZATION}")

# %% [markdown]
# ```{solution-start} ex-step2-cores
# :class: dropdown
# ```

# %%
cores_1m = 1_000_000 * PEAK_TO_MEAN * (cpu_ms / 1000) / UTILIZATION

# %% [markdown]
# ```{solution-end}
# ```

# %%
step2.cores_needed(cores_1m, avg_qps=1_000_000, cpu_ms_per_request=cpu_ms,
                   peak_to_mean=PEAK_TO_MEAN, utilization=UTILIZATION)

# %% [markdown]
# ```{exercise} How many candidates fit the budget?
# :label: ex-step2-budget
#
# Using `runs` (one row per timed request, latency in `cpu_ms`), find
# `max_candidates`: the largest measured candidate count at which the big LightGBM
# model (`BIG`) keeps its p99 latency within `BUDGET_MS`. Use 0 if no count fits.
# What would you propose to score the other candidates?
# ```

# %% [markdown]
# ```{solution-start} ex-step2-budget
# :class: dropdown
# ```

# %%
model_runs = runs[runs["model"] == BIG]
p99_by_count = model_runs.groupby("candidates")["cpu_ms"].quantile(0.99)
max_candidates = max([n for n, v in p99_by_count.items() if v <= BUDGET_MS], default=0)

# %% [markdown]
# A cheap first stage: score every candidate with a model that costs little per
# candidate (the logistic regression here, or a lookup of each ad's past CTR), keep
# the best few hundred, and give the big model only those, as many as its p99
# allows. That is the funnel of Step 5. Its price is recall: an ad the first stage
# drops is never scored by the big model, so measure how often the ad that would
# have won is dropped. Leaner serving code (section 3) and a smaller model are the
# other levers; dropping candidates at random is not one.
#
# ```{solution-end}
# ```

# %%
step2.max_candidates(max_candidates, runs, model=BIG, budget_ms=BUDGET_MS,
                     column="cpu_ms")

# %% [markdown]
# ```{exercise} Judgment: which model, scoring how many candidates?
# :label: ex-step2-choose
#
# The index hands the scoring stage up to {glue:text}`k_plan` candidates per
# request, and the stage must keep its p99 within `BUDGET_MS`. Choose a model and
# the number of candidates it scores, one of the measured counts: `choice` is a
# pair `(model name, candidates)`. Use `runs` for the latency (`cpu_ms`, as in the
# previous exercise) and `quality` for the
# log loss. Several answers are defensible; the check says which, and what yours
# trades away.
# ```

# %% [markdown]
# ```{solution-start} ex-step2-choose
# :class: dropdown
# ```

# %%
p99_table = runs.groupby(["model", "candidates"])["cpu_ms"].quantile(0.99).unstack()
largest = {name: max([k for k, v in row.items() if v <= BUDGET_MS], default=0)
           for name, row in p99_table.iterrows()}
print("largest count within the budget:", largest)
# Most candidates first; among equals, the lower log loss.
choice = max(((name, k) for name, k in largest.items() if k > 0),
             key=lambda option: (option[1], -quality.loc[option[0], "log loss"]))

# %% [markdown]
# ```{solution-end}
# ```

# %%
step2.model_and_candidates(choice, runs, quality["log loss"], budget_ms=BUDGET_MS,
                           column="cpu_ms")

# %% [markdown]
# ## 9. Recap
#
# - Scoring costs a fixed amount per call plus an amount per candidate; here
#   {glue:text}`us_logistic` per candidate for the logistic regression and
#   {glue:text}`us_big` for {glue:text}`big_name`. {glue:text}`fixed_share` of the
#   big model's fixed part is the serving code, not the model.
# - The best tree model, {glue:text}`best_model`, has a {glue:text}`gain_best`
#   lower log loss than the logistic regression, a gain to check against its cost:
#   trees are far more expensive per candidate, with diminishing returns in size.
# - Capacity is peak QPS x CPU per request / target utilization; latency is the p99
#   of one request against the budget. Replicas add throughput (and cut queueing near
#   full load); shards cut one request's compute at the cost of a fan-out tail.
# - A model enters the comparison only if it fits the budget at the candidate count
#   needed; otherwise it scores fewer candidates behind a cheap first stage.

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# "Before choosing a model I'd measure what it costs per request, features included,
# on one core, as a distribution. When I did, the cost was a fixed part per call plus
# a part per candidate: {glue:text}`us_logistic` per candidate for a logistic
# regression, {glue:text}`us_big` for a 200-tree LightGBM model, whose held-out log
# loss was {glue:text}`gain_big_lr`; {glue:text}`say_fit`. Capacity is peak QPS
# times CPU per request over a target utilization: at 1M QPS with a
# {glue:text}`peak_to_mean` peak-to-mean ratio and 60% utilization, each millisecond
# of CPU per request is about {glue:text}`machines_per_ms` 16-core machines. Latency
# is the hard constraint: a better model that times out shows no ad, so I'd pick the
# best model whose p99 fits at the candidate count we need, and if the best one
# doesn't fit, keep it for the top candidates, as many as its p99 allows, behind a
# cheap selection stage. More replicas add throughput and cut queueing near full
# load; sharding the candidates cuts each request's compute but waits for the
# slowest shard."
# ```
