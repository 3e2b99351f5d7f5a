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
# In the interview you *estimate* the cost of scoring ads; in this lab you *measure* it.
# We train four click models on the toy world's logs, time the serving step (feature
# building plus prediction) for one request at a time, and turn the measurements into
# the capacity plan and the trade-off table from {doc}`../book/step2_scale`.
#
# **What you will build**
#
# - a logistic regression and three LightGBM models of growing size, with their
#   held-out log loss;
# - latency *distributions* (p50 and p99 over many repeated requests) at 10 to 1,000
#   candidates per request, and the effect of batching several requests per call;
# - a capacity plan: cores and 16-core machines for 1k and 1M requests per second at a
#   20 ms budget for the scoring stage (feature building plus prediction);
# - the trade-off table a candidate would draw on the whiteboard, and the
#   configurations that break the budget.
#
# ```{admonition} These numbers are measured, not quoted
# :class: note
# Every latency and capacity figure on this page was measured while the book was
# built, on whatever machine built it, and a rerun gives different values. Your laptop
# will differ by a factor of two either way; a busy machine adds tail latency. What
# carries over is the method and the shape of the results, not the milliseconds.
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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from myst_nb import glue

from adsys import plots
from adsys.baseline import serve_random
from adsys.checks import step2
from adsys.features import FEATURE_COLUMNS, SERVING_POSITION, count_ad_stats, make_features
from adsys.metrics import log_loss
from adsys.prediction import LightGBMClickModel, LogisticClickModel
from adsys.world import World

plots.style()
world = World(seed=0)
rng = np.random.default_rng(2)

# %% [markdown]
# ## Training data and four models
#
# We log three days of the random server from Lab 1. Day 0 only provides each ad's
# click history (`ad_stats`, a feature), day 1 is the training set and day 2 the
# held-out set.

# %%
history = serve_random(world, day=0, n_requests=20_000, rng=rng)
train = serve_random(world, day=1, n_requests=15_000, rng=rng)
test = serve_random(world, day=2, n_requests=15_000, rng=rng)
ad_stats = count_ad_stats(history["ad_id"], history["clicked"])


def features_of(log: pd.DataFrame) -> pd.DataFrame:
    """Features of logged impressions: the same function the server calls."""
    return make_features(world, log["user_id"].to_numpy(), log["ad_id"].to_numpy(),
                         log["publisher_id"].to_numpy(), log["hour"].to_numpy(),
                         log["position"].to_numpy(), ad_stats)


x_train, x_test = features_of(train), features_of(test)
glue("n_train", f"{len(train):,}", display=False)
glue("n_test", f"{len(test):,}", display=False)

# %% [markdown]
# The LightGBM sizes are written *trees x leaves per tree*. So that the larger models
# are not simply overfitting, the learning rate shrinks as the trees grow (trees x
# learning rate = 5 for all three). Every model runs on **one thread** (`n_jobs=1`):
# in serving, one request is handled by one core, and the capacity plan below counts
# cores.

# %%
TREES = dict(min_child_samples=300, reg_lambda=5.0, cat_smooth=100, cat_l2=100,
             min_data_per_group=1000, max_cat_threshold=16, n_jobs=1, seed=0)
models = {
    "logistic": LogisticClickModel(),
    "LightGBM 50x15": LightGBMClickModel(50, 15, learning_rate=0.1, **TREES),
    "LightGBM 200x31": LightGBMClickModel(200, 31, learning_rate=0.025, **TREES),
    "LightGBM 500x63": LightGBMClickModel(500, 63, learning_rate=0.01, **TREES),
}
quality = {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(x_train, train["clicked"])
    quality[name] = {"log loss": log_loss(test["clicked"], model.predict(x_test)),
                     "training s": time.perf_counter() - start}
quality = pd.DataFrame(quality).T
oracle = log_loss(test["clicked"], test["true_p"])
quality.style.format({"log loss": "{:.4f}", "training s": "{:.1f}"})

# %%
best, worst = quality["log loss"].idxmin(), quality["log loss"].idxmax()
glue("ll_best", f"{quality.loc[best, 'log loss']:.4f}", display=False)
glue("ll_best_model", best, display=False)
glue("ll_worst", f"{quality.loc[worst, 'log loss']:.4f}", display=False)
glue("ll_worst_model", worst, display=False)
glue("ll_oracle", f"{oracle:.4f}", display=False)

# %% [markdown]
# Trained on {glue:text}`n_train` impressions and evaluated on {glue:text}`n_test`
# held-out ones, the log loss ranges from
# {glue:text}`ll_best` ({glue:text}`ll_best_model`) to {glue:text}`ll_worst`
# ({glue:text}`ll_worst_model`); the oracle log loss, the floor no model can beat, is
# {glue:text}`ll_oracle`. The differences are small: the toy world's true click model
# is smooth in a handful of features, so more trees and leaves have little left to
# find. Real ad data, with many more features and rows, rewards larger models a little
# more, with diminishing returns {cite}`he2014practical`. Either way, the question of
# this lab is what each model *costs* to serve.

# %% [markdown]
# ## Timing the serving step, one request at a time
#
# At serving time a request arrives with a user, a page and an hour; the earlier
# stages hand over the candidate ads. The scoring stage builds their features with the
# *same* `make_features` as training (with every candidate at position 1, as explained
# in `adsys.features`) and calls `predict`. Both parts are timed: feature building is
# part of the serving cost.
#
# For each of {glue:text}`n_repeats` requests drawn from the world's traffic, and each
# candidate count, we draw that many active ads, build the features once and let every
# model score the same rows. `time.perf_counter_ns` gives the wall-clock time the caller waits;
# `time.thread_time_ns` the CPU time the request used, which is what the capacity plan
# needs. One untimed pass first warms up caches.
#
# The budget for this stage is 20 ms at p99: the 10 ms for building features plus the
# 10 ms for the model in the illustrative split of the concept page.

# %%
BUDGET_MS = 20.0
CANDIDATES = [10, 30, 100, 300, 1000]
REPEATS = 80
DAY = 2
requests = world.requests(DAY, rng, n=REPEATS)
active_ads = np.flatnonzero(world.active_ads(DAY))


def request_features(i: int, ads: np.ndarray, n_requests: int = 1) -> pd.DataFrame:
    """Features of ``ads`` for requests i..i+n_requests-1 (every request sees all ads)."""
    take = np.repeat(np.arange(i, i + n_requests), len(ads))
    return make_features(world, requests.user[take], np.tile(ads, n_requests),
                         requests.publisher[take], requests.hour[take],
                         SERVING_POSITION, ad_stats)


def clock() -> tuple[int, int]:
    return time.perf_counter_ns(), time.thread_time_ns()


# %%
for n in CANDIDATES:  # warm-up, not timed
    for model in models.values():
        model.predict(request_features(0, active_ads[:n]))

rows = []
for i in range(REPEATS):
    for n in CANDIDATES:
        ads = rng.choice(active_ads, size=n, replace=False)
        wall0, cpu0 = clock()
        features = request_features(i, ads)
        wall1, cpu1 = clock()
        feature_wall, feature_cpu = wall1 - wall0, cpu1 - cpu0
        for name, model in models.items():
            model.predict(features)
            wall2, cpu2 = clock()
            rows.append((name, n, i, feature_wall, wall2 - wall1, feature_cpu + cpu2 - cpu1))
            wall1, cpu1 = wall2, cpu2
runs = pd.DataFrame(rows, columns=["model", "candidates", "request", "features_ns",
                                   "predict_ns", "cpu_ns"])
runs["wall_ns"] = runs["features_ns"] + runs["predict_ns"]
runs["wall_ms"], runs["cpu_ms"] = runs["wall_ns"] / 1e6, runs["cpu_ns"] / 1e6
glue("n_timed", f"{len(runs):,}", display=False)

# %% [markdown]
# Each row of `runs` is one timed request ({glue:text}`n_timed` in all). Summarized by
# percentiles:

# %%
def p99(x: pd.Series) -> float:
    return float(np.percentile(x, 99))


latency = runs.groupby(["model", "candidates"], sort=False).agg(
    p50_ms=("wall_ms", "median"), p99_ms=("wall_ms", p99), cpu_ms=("cpu_ms", "mean"),
    features_ms=("features_ns", lambda x: x.median() / 1e6))
latency.unstack("candidates")["p99_ms"].style.format("{:.2f}").set_caption(
    "p99 latency (ms) of the scoring stage, by model (rows) and candidates per request")

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.0, 4.2))
for k, (name, group) in enumerate(latency.groupby(level="model", sort=False)):
    counts = group.index.get_level_values("candidates")
    ax.plot(counts, group["p99_ms"], "o-", color=f"C{k}", label=name)
    ax.plot(counts, group["p50_ms"], "--", color=f"C{k}", alpha=0.7, lw=1)
ax.plot([], [], "k-", marker="o", label="p99 (solid)")
ax.plot([], [], "k--", lw=1, alpha=0.7, label="p50 (dashed)")
ax.axhline(BUDGET_MS, color="black", lw=1.2, ls=":", label=f"budget ({BUDGET_MS:g} ms)")
ax.set(xscale="log", yscale="log", xlabel="candidates per request (log scale)",
       ylabel="latency per request (ms, log scale)",
       title="Scoring-stage latency (features + model) on this machine")
ax.set_xticks(CANDIDATES, [str(c) for c in CANDIDATES])
ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
ax.yaxis.set_minor_formatter(NullFormatter())
fig.legend(loc="outside lower center", ncol=4, fontsize=9)
glue("fig_latency", fig, display=False)
plt.close(fig)

# %%
med = latency["p50_ms"]
small_name, big_name = "LightGBM 50x15", "LightGBM 500x63"
glue("features_ms", f"{latency['features_ms'].median():.1f} ms", display=False)
glue("logistic_10", f"{med['logistic', 10]:.1f} ms", display=False)
glue("small_tree", f"{med[small_name, 10]:.1f} ms", display=False)
glue("small_name", small_name, display=False)
glue("big_name", big_name, display=False)
glue("big_growth", f"{med[big_name, 1000] / med[big_name, 100]:.1f}", display=False)
glue("small_growth", f"{med[small_name, 1000] / med[small_name, 100]:.1f}", display=False)
glue("big_tail_ratio", f"{latency.loc[(big_name, 300), 'p99_ms'] / med[big_name, 300]:.1f}",
     display=False)
glue("n_repeats", f"{REPEATS}", display=False)

# %% [markdown]
# ```{glue:figure} fig_latency
# :name: fig-step2-latency
#
# Wall-clock latency of the scoring stage (feature building plus prediction) for one
# request, against the number of candidate ads it scores, on the machine that built
# this page. Solid lines: p99 over the repeated requests; dashed: the median.
# Dotted: the 20 ms budget of this stage.
# ```
#
# **Takeaway:** the latency of a request is a fixed cost per call plus a cost per
# candidate that grows with the size of the model. Where the line is flat, the fixed
# cost dominates; where it climbs, the candidates do. Which one dominates decides which
# lever helps.
#
# Three things to read off the measurements:
#
# - **The fixed cost per call.** Building the features of a request takes about
#   {glue:text}`features_ms` at the median, almost whatever the count, and every call into a
#   model pays Python and pandas overhead before any arithmetic: at 10 candidates the
#   whole stage takes {glue:text}`logistic_10` at the median for the logistic regression
#   and {glue:text}`small_tree` for the small LightGBM model.
# - **The cost per candidate.** From 100 to 1,000 candidates, the median of
#   {glue:text}`big_name` grows {glue:text}`big_growth`-fold, that of
#   {glue:text}`small_name` {glue:text}`small_growth`-fold: each extra candidate costs
#   more in a bigger model.
# - **The tail.** At 300 candidates the p99 of {glue:text}`big_name` is
#   {glue:text}`big_tail_ratio` times its median. With only {glue:text}`n_repeats`
#   requests per point the p99 rests on the slowest one or two of them, and a busy
#   machine widens it; production systems estimate it from millions of requests.

# %% [markdown]
# How a model is *served* matters as much as its size. The logistic regression is
# fitted as a scikit-learn pipeline (one-hot encoding, scaling, then the regression,
# in its `estimator` attribute), but `LogisticClickModel.predict` serves it from lookup
# tables: one weight per category and one slope per numeric feature, summed for each
# candidate. Timing both paths on the same rows, 100 candidates per request:

# %%
logistic = models["logistic"]
pipeline_ns, tables_ns, largest_gap = [], [], 0.0
for i in range(50):
    features = request_features(i, rng.choice(active_ads, size=100, replace=False))
    wall0, _ = clock()
    p_pipeline = logistic.estimator.predict_proba(features[list(FEATURE_COLUMNS)])[:, 1]
    wall1, _ = clock()
    p_tables = logistic.predict(features)
    wall2, _ = clock()
    pipeline_ns.append(wall1 - wall0)
    tables_ns.append(wall2 - wall1)
    largest_gap = max(largest_gap, float(np.abs(p_pipeline - p_tables).max()))
pipeline_ms, tables_ms = np.median(pipeline_ns) / 1e6, np.median(tables_ns) / 1e6
glue("pipeline_ms", f"{pipeline_ms:.2f} ms", display=False)
glue("tables_ms", f"{tables_ms:.2f} ms", display=False)
glue("tables_speedup", f"{pipeline_ms / tables_ms:.0f}", display=False)
glue("tables_gap", f"{largest_gap:.0e}", display=False)

# %% [markdown]
# The general-purpose pipeline takes {glue:text}`pipeline_ms` at the median, the lookup
# tables {glue:text}`tables_ms`, about {glue:text}`tables_speedup` times less, for the
# same predictions (they differ by at most {glue:text}`tables_gap`). Same model, same
# log loss: only the serving code changed. This is the "compilation" lever of the concept
# page, and the reason to profile before choosing a lever: the cost is often not where
# the model is.
#
# ## Batching: more requests per call
#
# The fixed cost per call suggests a lever: score several requests in one call. Below,
# each call scores a batch of requests with 100 candidates each; we time 10 calls per
# batch size and divide the CPU time by the number of requests in the batch.

# %%
BATCHES = [1, 4, 16, 64]
batch_rows = []
for name in ["logistic", "LightGBM 200x31"]:
    for size in BATCHES:
        for call in range(10):
            ads = rng.choice(active_ads, size=100, replace=False)
            first = call % (REPEATS - size + 1)
            wall0, cpu0 = clock()
            models[name].predict(request_features(first, ads, n_requests=size))
            wall1, cpu1 = clock()
            batch_rows.append((name, size, (wall1 - wall0) / 1e6, (cpu1 - cpu0) / 1e6 / size))
batching = (pd.DataFrame(batch_rows, columns=["model", "batch", "call_ms", "cpu_ms_per_request"])
            .groupby(["model", "batch"]).median())
batching.unstack("model").style.format("{:.2f}").set_caption(
    "Median wall time of one call and CPU time per request (ms), by requests per call")

# %%
batch_model = "LightGBM 200x31"
glue("batch_model", batch_model, display=False)
glue("batch_max", f"{BATCHES[-1]}", display=False)
glue("batch_cpu_1", f"{batching.loc[(batch_model, 1), 'cpu_ms_per_request']:.2f} ms",
     display=False)
glue("batch_cpu_max",
     f"{batching.loc[(batch_model, BATCHES[-1]), 'cpu_ms_per_request']:.2f} ms", display=False)
glue("batch_call_max", f"{batching.loc[(batch_model, BATCHES[-1]), 'call_ms']:.1f} ms",
     display=False)

# %% [markdown]
# For {glue:text}`batch_model`, going from one request per call to
# {glue:text}`batch_max` cuts the CPU cost per request from {glue:text}`batch_cpu_1` to
# {glue:text}`batch_cpu_max`, which the capacity plan would feel directly. The price is
# latency: the call now takes {glue:text}`batch_call_max`, and every request in the batch
# waits for the whole of it (plus the time spent waiting for the batch to fill). Batching
# across requests suits a throughput-bound stage with slack in its budget; within one
# request, scoring all candidates in a single call is always worth it.

# %% [markdown]
# ## From measurements to a capacity plan
#
# The plan needs four inputs: the load, its peak-to-mean ratio, the CPU time per
# request and a target utilization. The world's daily traffic curve gives the ratio.
# For the cost we take the **mean CPU time** at the planned candidate count (total work
# is the mean times the number of requests); for the budget we take the **p99 wall
# time**. The plan scores 300 candidates per request within the 20 ms budget of this
# stage, and keeps machines at 60% utilization at peak.

# %%
hourly = world.hourly_traffic()
PEAK_TO_MEAN = float(hourly.max() / hourly.mean())
N_PLAN, UTILIZATION, CORES_PER_MACHINE = 300, 0.6, 16
LOADS = {"1k QPS": 1_000, "1M QPS": 1_000_000}


def cores(avg_qps: float, cpu_ms: float) -> float:
    """Cores to serve ``avg_qps`` on average, at the peak hour, at the target utilization."""
    return avg_qps * PEAK_TO_MEAN * (cpu_ms / 1000) / UTILIZATION


glue("peak_to_mean", f"{PEAK_TO_MEAN:.2f}", display=False)
glue("peak_hour", f"{int(hourly.argmax()):02d}:00", display=False)

# %% [markdown]
# Traffic peaks at {glue:text}`peak_hour`, at {glue:text}`peak_to_mean` times the daily
# average: the fleet is sized for that hour. Per model, at 300 candidates:

# %%
plan = latency.xs(N_PLAN, level="candidates")
table = pd.DataFrame({
    "held-out log loss": quality["log loss"],
    "p99 ms": plan["p99_ms"],
    "CPU ms / request": plan["cpu_ms"],
    **{f"cores, {load}": cores(qps, plan["cpu_ms"]) for load, qps in LOADS.items()},
    "16-core machines, 1M QPS": np.ceil(cores(1e6, plan["cpu_ms"]) / CORES_PER_MACHINE),
    "within budget": plan["p99_ms"] <= BUDGET_MS,
})
table.style.format({"held-out log loss": "{:.4f}", "p99 ms": "{:.1f}",
                    "CPU ms / request": "{:.2f}", "cores, 1k QPS": "{:.1f}",
                    "cores, 1M QPS": "{:,.0f}", "16-core machines, 1M QPS": "{:,.0f}"})

# %%
def names(items: list[str]) -> str:
    if not items:
        return "none of the models"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


fit = table.index[table["within budget"]].tolist()
miss = table.index[~table["within budget"]].tolist()
budget = f"the {BUDGET_MS:g} ms budget at {N_PLAN} candidates"
if not miss:
    budget_sentence = f"every model keeps its p99 within {budget}."
elif not fit:
    budget_sentence = (f"no model keeps its p99 within {budget}: on this machine, the stage "
                       "needs fewer candidates or a faster model.")
else:
    budget_sentence = (f"{names(fit)} {'keeps its' if len(fit) == 1 else 'keep their'} p99 "
                       f"within {budget}; {names(miss)} {'breaks' if len(miss) == 1 else 'break'}"
                       " it.")
machines = table["16-core machines, 1M QPS"]
glue("budget_sentence", budget_sentence, display=False)
glue("cores_1k_min", f"{table['cores, 1k QPS'].min():.1f}", display=False)
glue("cores_1k_max", f"{table['cores, 1k QPS'].max():.1f}", display=False)
glue("machines_min", f"{machines.min():,.0f}", display=False)
glue("machines_max", f"{machines.max():,.0f}", display=False)
glue("machines_per_ms", f"{cores(1e6, 1.0) / CORES_PER_MACHINE:,.0f}", display=False)
ll = table["held-out log loss"]
glue("ll_gap_pct", f"{(ll.max() - ll.min()) / ll.min():.1%}", display=False)

# %% [markdown]
# This is the trade-off table to draw in the interview. On this run,
# {glue:text}`budget_sentence` At 1k QPS the
# models need from {glue:text}`cores_1k_min` to {glue:text}`cores_1k_max` cores, a small
# fleet whichever model wins (plus a spare machine for redundancy). At 1M QPS the same
# models need from {glue:text}`machines_min` to {glue:text}`machines_max` machines of
# 16 cores, and every millisecond of CPU per request is worth about
# {glue:text}`machines_per_ms` machines. The gap in log loss between the models is at
# most {glue:text}`ll_gap_pct`; whether that buys its machines is a decision for an
# online experiment (Step 3), but a model beyond the budget never gets that far: its
# timeouts would show no ad at all.
#
# These costs include the Python and pandas overhead of the course's code, which a
# production server written in C++ or Java would mostly not pay; the method carries
# over, the milliseconds do not.
#
# Where the budget breaks, the levers of the concept page apply: fewer candidates (the
# funnel of Step 5), a smaller model, serving code that skips general-purpose layers
# (as the logistic regression's lookup tables do), or fewer features to build. Adding
# machines makes none of the requests faster.

# %%
say = table.loc["LightGBM 200x31"]
glue("say_p99", f"{say['p99 ms']:.1f} ms", display=False)
glue("say_cpu", f"{say['CPU ms / request']:.1f} ms", display=False)
glue("say_cores", f"{say['cores, 1M QPS']:,.0f}", display=False)
glue("say_machines", f"{say['16-core machines, 1M QPS']:,.0f}", display=False)
glue("say_cores_1k", f"{say['cores, 1k QPS']:.0f}", display=False)

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# "Before choosing a model I'd measure what it costs per request, features included,
# on one core, as a distribution. When I measured it, a 200-tree LightGBM model scored
# 300 candidates at {glue:text}`say_p99` p99 and {glue:text}`say_cpu` of CPU per
# request. At 1M QPS with a {glue:text}`peak_to_mean` peak-to-mean ratio and 60%
# utilization that's {glue:text}`say_cores` cores, about {glue:text}`say_machines`
# 16-core machines; at 1k QPS it's {glue:text}`say_cores_1k` cores. I'd pick the best
# log loss among the models whose p99 fits the budget at the candidate count we need.
# If none fits, I score fewer candidates with a cheap selection stage in front, rather
# than buy machines, because machines add throughput but don't make a single request
# faster."
# ```

# %% [markdown]
# ## Exercises
#
# Each exercise names the variable to fill in; the cell after it checks your answer
# against the measurements of this run and explains what is wrong if it is.

# %% [markdown]
# ```{exercise} The p99 of a latency distribution
# :label: ex-step2-p99
#
# `timings_ns` holds the wall-clock times, in nanoseconds, of the timed requests that
# LightGBM 200x31 scored with 300 candidates each. Compute `p99_ms`, their 99th
# percentile in milliseconds. Compare it with the mean: which one should a latency
# budget be checked against?
# ```

# %%
timings_ns = runs.query("model == 'LightGBM 200x31' and candidates == 300")["wall_ns"].to_numpy()

# %% [markdown]
# ```{solution-start} ex-step2-p99
# :class: dropdown
# ```

# %%
p99_ms = np.percentile(timings_ns / 1e6, 99)

# %% [markdown]
# ```{solution-end}
# ```

# %%
step2.p99_latency(p99_ms, timings_ns)

# %% [markdown]
# ```{exercise} Cores for a million requests per second
# :label: ex-step2-cores
#
# A teammate measured `cpu_ms`, the mean CPU time per request of LightGBM 500x63 at
# 300 candidates (below). Compute `cores_1m`, the number of cores needed to serve an
# average of 1,000,000 requests per second, given the peak-to-mean ratio
# `PEAK_TO_MEAN` and the target utilization `UTILIZATION`. Write the formula yourself
# rather than calling `cores`.
# ```

# %%
cpu_ms = float(plan.loc["LightGBM 500x63", "cpu_ms"])
print(f"cpu_ms = {cpu_ms:.3f}, PEAK_TO_MEAN = {PEAK_TO_MEAN:.2f}, UTILIZATION = {UTILIZATION}")

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
# Using `runs` (one row per timed request, latency in `wall_ms`), find
# `max_candidates`: the largest measured candidate count at which LightGBM 200x31
# keeps its p99 latency within `BUDGET_MS`. Use 0 if no count fits. What would you
# propose to score the other candidates?
# ```

# %% [markdown]
# ```{solution-start} ex-step2-budget
# :class: dropdown
# ```

# %%
model_runs = runs[runs["model"] == "LightGBM 200x31"]
p99_by_count = model_runs.groupby("candidates")["wall_ms"].quantile(0.99)
max_candidates = max([n for n, v in p99_by_count.items() if v <= BUDGET_MS], default=0)

# %% [markdown]
# ```{solution-end}
# ```

# %%
step2.max_candidates(max_candidates, runs, model="LightGBM 200x31", budget_ms=BUDGET_MS)
