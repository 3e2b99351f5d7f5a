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
# # Lab 1: clarify the problem on a real world
#
# "Show relevant ads" is a vague prompt. In an interview you sharpen it with
# questions: who are the players, what does the system see, what is it paid for,
# and what exactly would a model predict? This lab asks those questions of a
# world you can measure: the course's simulated ad market, whose ground truth we
# know and our models never will.
#
# ```{admonition} What you will build
# :class: note
# - A tour of the world through the platform's eyes (profiles with declared
#   interests, campaigns, ads, pages) next to the hidden truth (real interests,
#   ad quality) that only the world knows.
# - A naive ad server that shows random eligible ads, and the impression log it
#   writes.
# - Three looks at that log: click-through rate by position, by interest
#   (declared and real), and by hour.
# - The objective: why ranking by click probability alone leaves money on the
#   table, measured in dollars.
# - The label: what counts as a positive, how late clicks arrive, and a
#   judgment call: the attribution window.
#
# About 45 minutes to read and run. Prerequisite: the
# {doc}`concept page <../book/step1_clarify>`.
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

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter
from myst_nb import glue

from adsys import plots
from adsys.baseline import CANDIDATE_DRAWS, serve_random
from adsys.checks import step1
from adsys.index import AdIndex
from adsys.observable import AGE_BANDS, DEVICES, REGIONS, SECONDS_PER_DAY
from adsys.world import World

plots.style()
SEED = 0

# %% [markdown]
# ## 1. What the platform sees, and what only the world knows
#
# The world is built from the default configuration, `data/world.toml`, and a
# seed: the same seed always gives the same users, ads and publishers. It holds
# two things. Its attribute `view` is what a real ad platform can observe: user
# profiles, advertisers' campaigns and ads, publishers' pages. Everything else
# (what users really like, how good each ad really is, how likely anyone is to
# click) is hidden truth that only the world, and this course's analysis cells,
# can read.

# %%
world = World(seed=SEED)
view, config = world.view, world.config
tables = {"users": view.users, "advertisers": view.advertisers,
          "campaigns": view.campaigns, "ads": view.ads, "publishers": view.publishers}
pd.DataFrame({"rows": {name: len(t) for name, t in tables.items()},
              "columns": {name: len(t.columns) for name, t in tables.items()}})

# %% [markdown]
# ```{admonition} The boundary is code, not a convention
# :class: note
# Every component of the platform (the ads index, the selector, the features,
# the click models, the server, pacing) takes `world.view`, never `world`, and
# the package's tests fail if a platform module imports the world. The view's
# tables may hold only the columns listed in `adsys.observable.VIEW_COLUMNS`. In
# the labs, a cell that reads `world.interests` or `true_p` is *analysis*: it
# grades what the platform does, it never feeds it.
# ```
#
# ### Users: declared interests and real ones
#
# A user's profile has a region, an age band, a gender, a device and the topics
# they *declared* an interest in (a bit mask, decoded below). The world also
# knows each user's real interest in each of the {glue:text}`n_topics` topics,
# a share between 0 and 1 (each user's shares sum to 1), and that table,
# `world.interests`, never reaches the platform. Here are both, side by side,
# for the first users.


# %%
def declared_names(mask: int) -> str:
    """The topics a declared-interest bit mask names."""
    return ", ".join(t for i, t in enumerate(view.topics) if mask >> i & 1) or "(none)"


def real_names(user: int) -> str:
    """The user's three strongest real interests (hidden), with their share."""
    share = world.interests[user]
    strong = np.argsort(-share)[: int((share >= config.interest_threshold).sum())]
    return ", ".join(f"{view.topics[t]} {share[t]:.2f}" for t in strong[:3])


first = view.users.head(6)
pd.DataFrame({
    "age band": view.label("age_band", first["age_band"]),
    "region": view.label("region", first["region"]),
    "declared (seen)": [declared_names(m) for m in first["declared_topics"]],
    "real interests (hidden)": [real_names(u) for u in first["user_id"]],
}, index=first["user_id"].rename("user_id"))

# %% tags=["remove-cell"]
n_users, n_topics = view.n_users, len(view.topics)
strong = world.interests >= config.interest_threshold
masks = view.users["declared_topics"].to_numpy()
declared = (masks[:, None] >> np.arange(n_topics) & 1).astype(bool)  # bit t: topic t
glue("n_users", f"{n_users:,}", display=False)
glue("n_topics", f"{n_topics}", display=False)
glue("interest_threshold", f"{config.interest_threshold:g}", display=False)
recall, false_share = (declared & strong).sum() / strong.sum(), \
    (declared & ~strong).sum() / declared.sum()
glue("declared_recall", f"{recall:.0%}", display=False)
glue("declared_false", f"{false_share:.0%}", display=False)
glue("declared_none", f"{(~declared.any(axis=1)).mean():.1%}", display=False)
glue("median_strong", f"{np.median(strong.sum(axis=1)):.0f}", display=False)
top_strength = world.interests.max(axis=1)
glue("share_top_half", f"{(top_strength > 0.5).mean():.0%}", display=False)

# %% [markdown]
# Over all {glue:text}`n_users` users, a real interest (a share of at least
# {glue:text}`interest_threshold`) is declared {glue:text}`declared_recall` of
# the time; {glue:text}`declared_false` of declared topics are not real
# interests, and {glue:text}`declared_none` of users declared nothing at all.
# Declared interests are a noisy, incomplete view of the truth, and they are all
# the platform gets at first: anything better it must learn from its own logs
# (which pages a user reads, which ads they click), as later chapters do.

# %% tags=["hide-input", "remove-output"]
def count_bars(ax, codes, kind, title):
    """Horizontal bars: users per category of ``kind``, in the view's order."""
    counts = np.bincount(codes)
    ax.barh(view.label(kind, np.arange(len(counts))), counts, color="C0")
    ax.set(title=title, xlabel="users")
    ax.invert_yaxis()


fig, axes = plt.subplots(2, 2, figsize=(8, 5.2))
count_bars(axes[0, 0], view.users["region"], "region", "Region (seen)")
count_bars(axes[0, 1], view.users["age_band"], "age_band", "Age band (seen)")
count_bars(axes[1, 0], view.users["device"], "device", "Device (seen)")
axes[1, 1].hist(top_strength, bins=np.linspace(0, 1, 21), color="C1")
axes[1, 1].set(title="Strongest real interest (hidden)", ylabel="users",
               xlabel="share of the user's interest in the top topic")
glue("fig_users", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_users
# :name: fig-step1-users
#
# Who the users are: counts by region, age band and device (in the platform's
# view), and how strongly each user leans towards their favourite topic (hidden
# truth; 1 means a single interest).
# ```
#
# **Takeaway:** the median user has {glue:text}`median_strong` real interests,
# and for {glue:text}`share_top_half` of users a single topic holds more than
# half of their interest, so a random ad is usually about something the user
# ignores.

# %% [markdown]
# ### Advertisers, campaigns and ads
#
# An {term}`advertiser` runs one or more {term}`campaigns <campaign>`; a
# campaign has a daily budget, a maximum cost-per-click {term}`bid` and its
# {term}`targeting`, and groups one or two ads (creatives) about the
# advertiser's topic. The platform sees all of that. Each ad also has a quality
# (`world.ad_quality`) that only the world knows: the platform can only estimate
# it from the ad's clicks.

# %%
live = view.campaigns[view.campaigns["start_day"] == 0]  # campaigns running on day 0
view.ads.head()

# %% tags=["remove-cell"]
glue("n_advertisers", f"{(view.advertisers['start_day'] == 0).sum():,}", display=False)
glue("n_advertisers_all", f"{len(view.advertisers):,}", display=False)
glue("n_campaigns", f"{len(live):,}", display=False)
glue("n_ads", f"{view.active_ads(0).sum():,}", display=False)
glue("n_later", f"{len(view.campaigns) - len(live):,}", display=False)
glue("horizon", f"{config.horizon_days}", display=False)
glue("budget_median", f"${live['daily_budget'].median():.0f}", display=False)
glue("bid_median", f"${live['max_cpc'].median():.2f}", display=False)

# %% [markdown]
# On day 0, {glue:text}`n_advertisers` advertisers run
# {glue:text}`n_campaigns` campaigns with {glue:text}`n_ads` ads. Another
# {glue:text}`n_later` campaigns, each from a new advertiser, arrive over the
# next {glue:text}`horizon` days: the {term}`cold start` cases of later chapters.
# Targeting is stored as bit masks; here are a few campaigns, decoded.


# %%
def allowed(mask: int, names: tuple[str, ...]) -> str:
    """The options a targeting bit mask lets through, or 'all'."""
    chosen = [name for i, name in enumerate(names) if mask >> i & 1]
    return "all" if len(chosen) == len(names) else ", ".join(chosen)


shown = live.head(6)
pd.DataFrame({
    "topic": view.label("topic", shown["topic"]),
    "daily_budget": shown["daily_budget"], "max_cpc": shown["max_cpc"],
    "regions": [allowed(m, REGIONS) for m in shown["region_mask"]],
    "ages": [allowed(m, AGE_BANDS) for m in shown["age_mask"]],
    "devices": [allowed(m, DEVICES) for m in shown["device_mask"]],
    "interest": np.where(shown["topic_mask"] > 0,
                         view.label("topic", shown["topic"]), "any"),
}, index=shown["campaign_id"])

# %% [markdown]
# How many campaigns restrict each dimension (the rest accept everyone):

# %%
restricted = pd.Series({
    "region": (live["region_mask"] != (1 << len(REGIONS)) - 1).mean(),
    "age band": (live["age_mask"] != (1 << len(AGE_BANDS)) - 1).mean(),
    "device": (live["device_mask"] != (1 << len(DEVICES)) - 1).mean(),
    "declared interest in the ad's topic": (live["topic_mask"] != 0).mean(),
})
restricted.map("{:.0%}".format).rename("share of campaigns").to_frame()

# %% [markdown]
# Interest targeting can only match what users declared: a user with a real
# but undeclared interest in travel never sees the travel campaigns that target
# travel lovers. Targeting is the advertiser's rule, applied to the platform's
# view, not to the truth.

# %% tags=["hide-input", "remove-output"]
fig, (ax1, ax2) = plt.subplots(1, 2)
ax1.hist(live["daily_budget"], bins=np.geomspace(1, live["daily_budget"].max(), 30),
         color="C0")
ax1.set(xscale="log", title="Daily budget", ylabel="campaigns",
        xlabel="budget per campaign per day (log scale)")
ax1.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:g}"))
ax2.hist(live["max_cpc"], bins=30, color="C2")
ax2.set(title="Maximum CPC bid", xlabel="bid ($ per click)", ylabel="campaigns")
glue("fig_campaigns", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_campaigns
# :name: fig-step1-campaigns
#
# What advertisers are willing to spend: daily budgets (log scale) and maximum
# cost-per-click bids of the campaigns live on day 0.
# ```
#
# **Takeaway:** the median campaign spends up to {glue:text}`budget_median` a
# day and bids {glue:text}`bid_median` per click, but both spread widely, so the
# bid will matter as much as the click probability when we choose which ad to
# show.

# %% [markdown]
# ### Publishers and the daily rhythm
#
# A {term}`publisher` owns the pages where ads appear; each page has a topic and
# {glue:text}`n_slots` ad slots. A few publishers carry most of the traffic
# (their shares follow a Zipf law), and traffic swings through the day. The
# platform does not know these curves in advance; it measures them in its
# request log. We read the world's own values.

# %% tags=["remove-cell"]
traffic = world.publisher_share
hourly = world.hourly_traffic()
glue("n_slots", f"{view.n_slots}", display=False)
glue("n_publishers", f"{view.n_publishers}", display=False)
glue("top_publisher", f"{traffic.max():.0%}", display=False)
glue("top10_publishers", f"{np.sort(traffic)[-10:].sum():.0%}", display=False)
glue("peak_hour", f"{hourly.argmax()}:00", display=False)
glue("trough_hour", f"{hourly.argmin()}:00", display=False)
glue("peak_ratio", f"{hourly.max() / hourly.min():.1f}", display=False)

# %% tags=["hide-input", "remove-output"]
fig, (ax1, ax2) = plt.subplots(1, 2)
ax1.loglog(np.arange(1, len(traffic) + 1), np.sort(traffic)[::-1], "o", ms=4)
ax1.set(title="Publishers", xlabel="publisher rank (log scale)",
        ylabel="share of requests (log scale)")
ranks = [1, 2, 5, 10, 20, len(traffic)]
ax1.minorticks_off()
ax1.set_xticks(ranks, labels=[str(r) for r in ranks])
ax1.set_yticks([0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
ax1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
ax2.bar(np.arange(24), hourly, color="C0")
ax2.set(title="Hour of day", xlabel="hour of day (0-23)",
        ylabel="share of the day's requests", xticks=range(0, 24, 3))
plots.percent_axis(ax2)
glue("fig_context", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_context
# :name: fig-step1-context
#
# Where and when requests happen: each publisher's share of requests against
# its popularity rank (a straight line on log-log axes is a Zipf law), and the
# expected share of a day's requests in each hour.
# ```
#
# **Takeaway:** the largest of the {glue:text}`n_publishers` publishers gets
# {glue:text}`top_publisher` of requests and the top ten get
# {glue:text}`top10_publishers`; traffic peaks at {glue:text}`peak_hour`, about
# {glue:text}`peak_ratio` times the quietest hour ({glue:text}`trough_hour`).

# %% [markdown]
# ## 2. A naive random server
#
# Before building anything clever, serve ads the dumbest way that still
# respects advertisers' targeting: fill each page's slots with random active ads
# whose targeting matches the user. Its log is the baseline for everything that
# follows, and because positions are assigned at random it shows the position
# effect without any confounding.
#
# The server lives in the package as `adsys.baseline.serve_random`, because
# later chapters reuse its unbiased logs. It is vectorized over requests: draw
# {glue:text}`n_draws` random active ads per request, keep those the platform's
# ads index (`adsys.index.AdIndex`, built from the view) says match the user,
# and take the first {glue:text}`n_slots` in draw order as positions 1, 2, and
# so on. Each shown ad becomes one {term}`impression`. The world gives its true
# click probability, the {term}`examination probability <examination probability>`
# of the position times the relevance of the ad to this user, page and hour,
# and then draws whether the user clicked.

# %%
N_REQUESTS = 50_000
rng = np.random.default_rng(SEED)
log = serve_random(world, day=0, n_requests=N_REQUESTS, rng=rng)
log.insert(0, "impression_id", np.arange(len(log)))
log.head()

# %% tags=["remove-cell"]
n_short = N_REQUESTS - (log.groupby("request_id").size() == view.n_slots).sum()
glue("n_draws", f"{CANDIDATE_DRAWS}", display=False)
glue("n_requests", f"{N_REQUESTS:,}", display=False)
glue("n_impressions", f"{len(log):,}", display=False)
glue("n_clicks", f"{log['clicked'].sum():,}", display=False)
glue("ctr_random", f"{log['clicked'].mean():.2%}", display=False)
glue("n_short", f"{n_short:,}", display=False)

# %% [markdown]
# One day of {glue:text}`n_requests` requests produced
# {glue:text}`n_impressions` impressions and {glue:text}`n_clicks` clicks: a
# {term}`CTR` of {glue:text}`ctr_random` (time is in seconds since the start of
# day 0). {glue:text}`n_short` requests got fewer than {glue:text}`n_slots` ads
# because too few random draws matched their user.
#
# ```{admonition} Pitfall
# :class: warning
# The `true_p` column is there only because we are the world. A real log never
# has it: it records what was shown and what was clicked, nothing more. Every
# model in this course learns from `clicked`; `true_p` only grades it.
# ```

# %% [markdown]
# ## 3. Look at the logs
#
# Three questions about the log, each answered with CTR and a 95% interval
# (binomial standard error) per group. The world's expected CTR (the mean of
# `true_p`) is drawn alongside, to show what is signal and what is noise.


# %%
def ctr_table(frame, by):
    """Impressions, clicks, CTR with a 95% half-width, true mean CTR per group."""
    table = frame.groupby(by, observed=True).agg(
        impressions=("clicked", "size"), clicks=("clicked", "sum"),
        true_ctr=("true_p", "mean"))
    ctr = table["ctr"] = table["clicks"] / table["impressions"]
    table["ci95"] = 1.96 * np.sqrt(ctr * (1 - ctr) / table["impressions"])
    return table


by_position = ctr_table(log, "position")
by_position.round(4)

# %% tags=["hide-input", "remove-output"]
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.bar(by_position.index, by_position["ctr"], yerr=by_position["ci95"], capsize=4,
       color="C0", label="measured CTR (95% interval)")
mean_relevance = (log["true_p"] / world.examine(log["position"])).mean()
truth = world.examine(by_position.index.to_numpy()) * mean_relevance
ax.plot(by_position.index, truth, "o--", color="C3",
        label="world: examine(position) x mean relevance")
ax.set(xlabel="position on the page (1 = top)", ylabel="CTR", xticks=by_position.index,
       ylim=(0, 1.4 * by_position["ctr"].max()))
plots.percent_axis(ax, decimals=1)
ax.legend(loc="upper right")
glue("fig_position", fig, display=False)

# %% tags=["remove-cell"]
ratio = by_position["ctr"] / by_position["ctr"].iloc[0]
glue("ctr_pos1", f"{by_position['ctr'].iloc[0]:.2%}", display=False)
glue("ratio_last", f"{ratio.iloc[-1]:.0%}", display=False)
glue("examine_last", f"{config.examine[-1]:.0%}", display=False)
# Is the measured ratio within sampling noise of the true one? (delta method)
first_pos, last_pos = by_position.iloc[0], by_position.iloc[-1]
se = ratio.iloc[-1] * np.hypot(first_pos["ci95"] / first_pos["ctr"],
                               last_pos["ci95"] / last_pos["ctr"]) / 1.96
glue("ratio_vs_truth", "within one day's sampling noise of"
     if abs(ratio.iloc[-1] - config.examine[-1]) < 1.96 * se
     else "measurably different from", display=False)

# %% [markdown]
# ```{glue:figure} fig_position
# :name: fig-step1-position
#
# CTR by position under random serving, with the world's true examination
# curve scaled by the average relevance of the ads shown.
# ```
#
# **Takeaway:** the same random ads get {glue:text}`ctr_pos1` CTR in the top
# slot and only {glue:text}`ratio_last` of that in the last one,
# {glue:text}`ratio_vs_truth` the world's examination probability of
# {glue:text}`examine_last`: position alone
# moves CTR a lot, which is {term}`position bias` {cite}`craswell2008clickmodels`.

# %% [markdown]
# Next, relevance, seen from both sides of the boundary. The platform knows
# whether the user *declared* an interest in the ad's topic; the world knows how
# much they *really* care (a real interest is a share of at least
# {glue:text}`interest_threshold`). CTR in the four cells:

# %%
ad_topic = view.ads["topic"].to_numpy()[log["ad_id"]]
interest = world.interests[log["user_id"], ad_topic]        # hidden truth
log["declared"] = view.declared(log["user_id"], ad_topic)   # what the platform sees
log["real interest"] = interest >= config.interest_threshold
cells = ctr_table(log, ["declared", "real interest"])
cells[["impressions", "ctr", "ci95"]].unstack("real interest").round(4)

# %% tags=["remove-cell"]
ctr = cells["ctr"]
glue("ctr_declared", f"{log.loc[log['declared'], 'clicked'].mean():.2%}", display=False)
glue("ctr_undeclared", f"{log.loc[~log['declared'], 'clicked'].mean():.2%}",
     display=False)
glue("ctr_real_undeclared", f"{ctr[False, True]:.2%}", display=False)
glue("ctr_declared_unreal", f"{ctr[True, False]:.2%}", display=False)
# The claims below: declared topics click more than the others (a useful signal),
# and a real but undeclared interest more than a declared but unreal one.
by_declared = log.groupby("declared")["clicked"].mean()
assert by_declared[True] > by_declared[False]
assert ctr[False, True] > ctr[True, False]

# %% [markdown]
# Ads on a declared topic get {glue:text}`ctr_declared` CTR, the others
# {glue:text}`ctr_undeclared`: the platform's signal is useful. But the truth is
# sharper: a real interest the user never declared gets
# {glue:text}`ctr_real_undeclared`, a declared topic the user does not really
# care about only {glue:text}`ctr_declared_unreal`. The figure splits impressions
# further by the strength of the real interest.

# %% tags=["hide-input", "remove-output"]
bins = [0, 0.01, 0.1, 0.3, 0.6, 1]
labels = ["0-0.01", "0.01-0.1", "0.1-0.3", "0.3-0.6", "0.6-1"]
log["interest_bin"] = pd.cut(interest, bins, labels=labels, include_lowest=True)
by_interest = ctr_table(log, ["interest_bin", "declared"])
fig, ax = plt.subplots(figsize=(7, 3.4))
x = np.arange(len(labels))
for k, (flag, name) in enumerate([(False, "not declared"), (True, "declared")]):
    part = by_interest.xs(flag, level="declared").reindex(labels)
    ax.bar(x + (k - 0.5) * 0.38, part["ctr"], width=0.38, yerr=part["ci95"], capsize=3,
           color=f"C{k}", label=f"{name} (platform's view)")
ax.set(xticks=x, xticklabels=labels, ylabel="CTR",
       xlabel="user's real interest in the ad's topic (hidden from the platform)")
plots.percent_axis(ax, decimals=1)
ax.legend(loc="upper left")
glue("fig_interest", fig, display=False)

# %% tags=["remove-cell"]
# The takeaway: CTR rises from the weakest real interest to the strongest, declared
# or not.
for flag in (False, True):
    part = by_interest.xs(flag, level="declared")["ctr"]
    assert part.loc["0.6-1"] > part.loc["0-0.01"]

# %% [markdown]
# ```{glue:figure} fig_interest
# :name: fig-step1-interest
#
# CTR by the user's real interest in the ad's topic (hidden) and by whether they
# declared it (seen), with 95% intervals, under random serving.
# ```
#
# **Takeaway:** CTR climbs with the real interest whether or not it was declared;
# the declaration is a coarse proxy. Inferring the real interest from behaviour
# is where a model earns its keep.

# %% [markdown]
# Last, time of day: how many requests arrive each hour, and whether users
# click more at some hours.

# %%
by_hour = ctr_table(log, "hour")
by_hour["requests"] = log.groupby("hour")["request_id"].nunique()
by_hour.head().round(4)

# %% tags=["remove-cell"]
glue("ctr_hour_max", f"{by_hour['true_ctr'].max():.2%}", display=False)
glue("ctr_hour_min", f"{by_hour['true_ctr'].min():.2%}", display=False)
glue("ci_hour", f"{100 * by_hour['ci95'].median():.2f} percentage points",
     display=False)
hour_range = by_hour["true_ctr"].max() - by_hour["true_ctr"].min()
small = hour_range < 2 * by_hour["ci95"].median()
glue("hour_vs_noise", "about as much as" if small else "clearly more than",
     display=False)
glue("hour_conclusion", "one day of logs is a poor guide to effects this small" if small
     else "a day of logs shows the effect, if only just", display=False)
# The recap orders the effects by the CTR ratios measured above, the hour last.
real = log.groupby("real interest")["clicked"].mean()
effects = {
    "with a real interest in the ad's topic as without": real[True] / real[False],
    "on a declared topic as on the others": by_declared[True] / by_declared[False],
    "in the top slot as in the last": 1 / ratio.iloc[-1],
}
hour_ratio = by_hour["true_ctr"].max() / by_hour["true_ctr"].min()
assert hour_ratio < min(effects.values()), "the recap: the hour moves CTR the least"
said = [f"{r:.1f} times as high {what}"
        for what, r in sorted(effects.items(), key=lambda item: -item[1])]
glue("effects_ranked", f"{', '.join(said[:-1])}, and {said[-1]}", display=False)

# %% tags=["hide-input", "remove-output"]
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
ax1.bar(by_hour.index, by_hour["requests"], color="C0", label="measured")
ax1.plot(np.arange(24), hourly * N_REQUESTS, "o--", color="C3", ms=3,
         label="world: expected")
ax1.set(title="Traffic", ylabel="requests per hour")
ax1.legend(loc="upper center")
ax2.errorbar(by_hour.index, by_hour["ctr"], yerr=by_hour["ci95"], fmt="o", capsize=3,
             label="measured CTR (95% interval)")
ax2.plot(by_hour.index, by_hour["true_ctr"], "--", color="C3",
         label="world: mean true_p")
ax2.set(title="Click-through rate", xlabel="hour of day (0-23)", ylabel="CTR",
        xticks=range(0, 24, 3),
        ylim=(0, 1.35 * (by_hour["ctr"] + by_hour["ci95"]).max()))  # room for the legend
plots.percent_axis(ax2)
ax2.legend(loc="upper center", ncols=2)
glue("fig_hour", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_hour
# :name: fig-step1-hour
#
# Requests per hour (top) and CTR per hour (bottom) for one day of random
# serving, with the world's expected values.
# ```
#
# **Takeaway:** traffic follows the daily curve closely, but the true CTR only
# moves between {glue:text}`ctr_hour_min` and {glue:text}`ctr_hour_max` over
# the day, {glue:text}`hour_vs_noise` the typical 95% interval of one hour's CTR
# (± {glue:text}`ci_hour`): {glue:text}`hour_conclusion`.

# %% [markdown]
# ## 4. Why the objective is not CTR alone
#
# The business goal is revenue (from advertisers who keep coming back because
# their ads get clicked). With cost-per-click pricing, an impression's expected
# value at the advertiser's bid is the bid times the click probability; expressed
# per thousand impressions, as the industry does, that is the {term}`eCPM`,
# 1000 x bid x {term}`pCTR` dollars {cite}`edelman2007gsp,varian2007position`.
# A second-price auction charges less than the bid, so this is an upper bound on
# what the platform earns, but it is what the auction ranks by.
# Here we use the world's true relevance as the pCTR, the best a model could
# ever do, and score every eligible ad (by the platform's index) for a sample of
# requests.

# %%
sample = np.sort(rng.choice(log["request_id"].unique(), size=1_000, replace=False))
req = log.drop_duplicates("request_id").set_index("request_id").loc[sample]
pool = np.flatnonzero(view.active_ads(0))
n, m, slots = len(sample), len(pool), view.n_slots
pair_user, pair_ad = np.repeat(req["user_id"].to_numpy(), m), np.tile(pool, n)
eligible = AdIndex(view).matches(pair_user, pair_ad).reshape(n, m)
pctr = world.relevance(pair_user, pair_ad, np.repeat(req["publisher_id"].to_numpy(), m),
                       np.repeat(req["hour"].to_numpy(), m), day=0).reshape(n, m)
bid = view.campaigns["max_cpc"].to_numpy()[view.ads["campaign_id"].to_numpy()[pool]]

# %% tags=["remove-cell"]
assert eligible.sum(axis=1).min() >= slots, "every sampled request fills its slots"
glue("n_sample", f"{n:,}", display=False)
glue("n_eligible", f"{eligible.sum(axis=1).mean():.0f}", display=False)
glue("n_pool", f"{m:,}", display=False)


# %% [markdown]
# Each of the {glue:text}`n_sample` requests is eligible for
# {glue:text}`n_eligible` of the {glue:text}`n_pool` active ads on average.
# Two rankings fill the slots: by pCTR alone, or by eCPM.

# %%
def top_slots(score):
    """Columns of the n_slots best eligible ads of each request, best first."""
    return np.argsort(-np.where(eligible, score, -np.inf), axis=1)[:, :slots]


def outcome(p_click, paid):
    """CTR, expected clicks and revenue per 1,000 requests, mean bid of shown ads."""
    return {"CTR": p_click.mean(),
            "clicks per 1,000 requests": 1000 * p_click.sum() / n,
            "revenue per 1,000 requests ($)": 1000 * (p_click * paid).sum() / n,
            "mean bid of shown ads ($)": paid.mean()}


examine = world.examine(np.arange(1, slots + 1))
rankings = {"pCTR": top_slots(pctr), "eCPM": top_slots(bid * pctr)}
shown_random = log.loc[log["request_id"].isin(sample), ["true_p", "max_cpc"]]
rows = {"random (section 2)": outcome(*shown_random.to_numpy().T)}
for name, cols in rankings.items():
    rows[f"by {name}"] = outcome(np.take_along_axis(pctr, cols, 1) * examine, bid[cols])
comparison = pd.DataFrame(rows).T
comparison.style.format({"CTR": "{:.2%}", "clicks per 1,000 requests": "{:.1f}",
                         "revenue per 1,000 requests ($)": "{:.2f}",
                         "mean bid of shown ads ($)": "{:.2f}"})

# %% tags=["remove-cell"]
ctr_row, ecpm_row = comparison.loc["by pCTR"], comparison.loc["by eCPM"]
revenue, clicks = "revenue per 1,000 requests ($)", "clicks per 1,000 requests"
assert ecpm_row[revenue] > ctr_row[revenue] and ecpm_row[clicks] < ctr_row[clicks]
differ = (rankings["pCTR"][:, 0] != rankings["eCPM"][:, 0]).mean()
glue("share_differ", f"{differ:.0%}", display=False)
glue("revenue_gain", f"{ecpm_row[revenue] / ctr_row[revenue] - 1:.0%}", display=False)
glue("click_loss", f"{1 - ecpm_row[clicks] / ctr_row[clicks]:.0%}", display=False)
glue("random_gap", f"{ecpm_row[revenue] / comparison.iloc[0][revenue]:.0f}",
     display=False)
glue("ctr_oracle_ecpm", f"{ecpm_row['CTR']:.1%}", display=False)
glue("ctr_oracle_pctr", f"{ctr_row['CTR']:.1%}", display=False)

# %% [markdown]
# Revenue here assumes each click pays its full bid; the auction chapter
# charges second prices instead, never more than the bid.
# The two rankings put a different ad in the top slot for
# {glue:text}`share_differ` of requests. Ranking by eCPM earns
# {glue:text}`revenue_gain` more than ranking by pCTR, for
# {glue:text}`click_loss` fewer clicks, and {glue:text}`random_gap` times the
# revenue of random serving. Even with perfect click probabilities the CTR of
# the eCPM ranking is {glue:text}`ctr_oracle_ecpm` (by pCTR alone,
# {glue:text}`ctr_oracle_pctr`): feed ads are rarely clicked.
#
# To see why, take one request where the two rankings disagree, and its best
# candidates under either rule.

# %%
i = int(np.flatnonzero(rankings["pCTR"][:, 0] != rankings["eCPM"][:, 0])[0])
cols = list(dict.fromkeys([*rankings["pCTR"][i, :2], *rankings["eCPM"][i, :2]]))
rank_ctr = np.argsort(np.argsort(-np.where(eligible[i], pctr[i], -np.inf))) + 1
rank_ecpm = np.argsort(np.argsort(-np.where(eligible[i], bid * pctr[i], -np.inf))) + 1
example = pd.DataFrame({
    "topic": view.label("topic", view.ads["topic"].to_numpy()[pool[cols]]),
    "bid ($)": bid[cols], "pCTR": pctr[i, cols],
    "eCPM ($)": 1000 * bid[cols] * pctr[i, cols],
    "rank by pCTR": rank_ctr[cols], "rank by eCPM": rank_ecpm[cols],
}, index=pd.Index(pool[cols], name="ad_id"))
example.style.format({"bid ($)": "{:.2f}", "pCTR": "{:.2%}", "eCPM ($)": "{:.2f}"})

# %% tags=["remove-cell"]
best_ctr, best_ecpm = example["rank by pCTR"].idxmin(), example["rank by eCPM"].idxmin()
glue("ex_request", f"{int(sample[i]):,}", display=False)
glue("ex_ctr_ad", f"{best_ctr}", display=False)
glue("ex_ctr_p", f"{example.loc[best_ctr, 'pCTR']:.2%}", display=False)
glue("ex_ctr_bid", f"${example.loc[best_ctr, 'bid ($)']:.2f}", display=False)
glue("ex_ecpm_ad", f"{best_ecpm}", display=False)
glue("ex_ecpm_p", f"{example.loc[best_ecpm, 'pCTR']:.2%}", display=False)
glue("ex_ecpm_bid", f"${example.loc[best_ecpm, 'bid ($)']:.2f}", display=False)

# %% [markdown]
# In request {glue:text}`ex_request`, ad {glue:text}`ex_ctr_ad` is the most
# likely click ({glue:text}`ex_ctr_p`) but pays only {glue:text}`ex_ctr_bid`;
# ad {glue:text}`ex_ecpm_ad` is clicked less often ({glue:text}`ex_ecpm_p`)
# but pays {glue:text}`ex_ecpm_bid`, so it is worth more per impression. The ML
# problem is therefore: *predict the probability that this user, in this
# context, clicks this ad*, calibrated, because the auction multiplies it by
# money. CTR is the model's target, not the system's objective.
#
# ```{admonition} Interview angle
# :class: tip
# Ask what the system is paid for (per click, per impression, per conversion)
# before choosing the label. Pay-per-click makes pCTR the quantity to predict,
# and makes its calibration matter as much as its ranking.
# ```

# %% [markdown]
# ## 5. The label
#
# A training example is an impression. It is a *positive* if its ad was
# clicked and the click reached us within the {term}`attribution window`; a
# *negative* if it was shown and no click arrived within the window. Two
# caveats make this less clean than it sounds.
#
# First, a non-click is not always a "no". In the last slot (position
# {glue:text}`n_slots`) the user looks at the ad only
# {glue:text}`examine_last` of the time, so many non-clicks there were never
# seen at all.

# %% tags=["remove-cell"]
e_last = config.examine[-1]
last = log[(log["position"] == view.n_slots) & (log["clicked"] == 0)]
unseen = ((1 - e_last) / (1 - last["true_p"])).mean()  # P(not examined | not clicked)
glue("unseen_last", f"{unseen:.0%}", display=False)

# %% [markdown]
# Of the non-clicks at position {glue:text}`n_slots`,
# {glue:text}`unseen_last` were never examined (the world knows; the log does
# not): they say nothing about the ad, only about where it was. Step 6 handles
# this position bias.
#
# Second, the click arrives later than the impression. The world's
# `click_stream` returns clicks as the logging system receives them: after a
# delay, out of order, and a few sent twice (the re-send arrives after the
# original).

# %%
clicks = world.click_stream(log["impression_id"], log["time"], log["clicked"], rng)
first_arrival = clicks.groupby("impression_id")["click_time"].min()
delay = first_arrival - log.set_index("impression_id").loc[first_arrival.index, "time"]
windows = {"1 minute": 60, "10 minutes": 600, "1 hour": 3600, "1 day": 86_400}
late = pd.Series({name: (delay > s).mean() for name, s in windows.items()})
late.map("{:.2%}".format).rename("clicks arriving later than this").to_frame()

# %% [markdown]
# A longer window catches more clicks, but a label is only final once its
# window has closed. If the nightly training job runs at midnight, an
# impression shown at 23:30 with a one-hour window is not labelled yet: it waits
# for the next night. Both sides of that trade-off, measured on this day:

# %%
grid = np.geomspace(10, 2 * SECONDS_PER_DAY, 400)                # candidate windows, s
captured = np.searchsorted(np.sort(delay), grid, side="right") / len(delay)
labelled_by_midnight = np.searchsorted(np.sort(log["time"]), SECONDS_PER_DAY - grid,
                                       side="right") / len(log)

# %% tags=["remove-cell"]
glue("n_duplicates", f"{len(clicks) - len(first_arrival):,}", display=False)
glue("delay_median", f"{delay.median() / 60:.0f} minutes", display=False)
glue("late_1h", f"{late['1 hour']:.1%}", display=False)
glue("late_1d", f"{late['1 day']:.2%} after one day" if late["1 day"] > 0
     else "none after one day", display=False)
glue("labelled_1h", f"{np.interp(3600, grid, labelled_by_midnight):.0%}", display=False)
glue("labelled_6h", f"{np.interp(6 * 3600, grid, labelled_by_midnight):.0%}",
     display=False)

# %% tags=["hide-input", "remove-output"]
fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.plot(grid, captured, color="C0", label="clicks that arrive within the window")
ax.plot(grid, labelled_by_midnight, color="C1",
        label="impressions whose label is final by midnight")
for name in ["1 minute", "1 hour", "1 day"]:
    ax.axvline(windows[name], color="C7", ls=":")
    ax.annotate(name, (windows[name], 0.03), xytext=(3, 0), textcoords="offset points")
ax.set(xscale="log", xlabel="attribution window (seconds, log scale)",
       ylabel="share", ylim=(0, 1.02), xlim=(grid[0], grid[-1]))
plots.percent_axis(ax)
fig.legend(loc="outside lower center", ncols=2)
glue("fig_delay", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_delay
# :name: fig-step1-delay
#
# The attribution window's trade-off on one day of random serving: the share of
# clicks that reach the log within the window (blue), and the share of the day's
# impressions whose window has closed by midnight, in time for the nightly
# training job (orange).
# ```
#
# **Takeaway:** the median click arrives after {glue:text}`delay_median`, but
# {glue:text}`late_1h` of clicks come after one hour (and
# {glue:text}`late_1d`), and {glue:text}`n_duplicates` clicks
# were sent twice. With a one-hour window {glue:text}`labelled_1h` of the day's
# impressions are labelled by midnight; with six hours only
# {glue:text}`labelled_6h`, because the evening peak is still open. A short
# window gives fresh labels but turns late clicks into false negatives; a long
# one delays training.

# %% [markdown]
# ## 6. Exercises
#
# Each exercise names the variable to fill in; the cell after it checks your
# answer and explains what is wrong if it is not right yet.

# %% [markdown]
# ```{exercise} CTR by position
# :label: ex-step1-position-ctr
#
# From the impression `log`, compute the click-through rate of each position:
# a pandas Series `ctr_by_position`, indexed by position (1 to `n_slots`),
# holding CTR as a fraction. Use only what a real log would have.
# ```

# %% [markdown]
# ```{solution-start} ex-step1-position-ctr
# :class: dropdown
# ```

# %%
ctr_by_position = log.groupby("position")["clicked"].mean()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step1.position_ctr(ctr_by_position, log)

# %% [markdown]
# For the next exercise, here are the candidates of another request where the
# rankings by pCTR, by bid and by eCPM all disagree.

# %%
top3 = [top_slots(s) for s in (pctr, np.broadcast_to(bid, pctr.shape), bid * pctr)]
j = int(np.flatnonzero((top3[0] != top3[2]).any(1) & (top3[1] != top3[2]).any(1))[1])
cols_j = np.unique(np.concatenate([t[j] for t in top3]))
candidates = pd.DataFrame({"ad_id": pool[cols_j], "bid": bid[cols_j],
                           "pctr": pctr[j, cols_j]})
candidates.round(4)

# %% [markdown]
# ```{exercise} Fill the slots by eCPM
# :label: ex-step1-ecpm-slots
#
# Rank the `candidates` as the auction would and fill the page's
# {glue:text}`n_slots` slots: a list `slot_order` of the `ad_id` of the ad in
# slot 1, slot 2 and so on.
# ```

# %% [markdown]
# ```{solution-start} ex-step1-ecpm-slots
# :class: dropdown
# ```

# %%
ecpm = 1000 * candidates["bid"] * candidates["pctr"]
best = ecpm.sort_values(ascending=False).index[: view.n_slots]
slot_order = candidates.loc[best, "ad_id"].tolist()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step1.ecpm_slots(slot_order, candidates, n_slots=view.n_slots)

# %% [markdown]
# ```{exercise} Labels with a one-hour attribution window
# :label: ex-step1-label-window
#
# Label every impression of `log` as a training system would, from the
# `clicks` stream and a one-hour attribution window: `label_1h` holds one value
# per row of `log`, in the same order, 1 if a click on that impression arrived
# at most 3600 seconds after the impression's `time`, else 0. Count each
# impression once, whatever the duplicates in the stream.
# ```

# %% [markdown]
# ```{solution-start} ex-step1-label-window
# :class: dropdown
# ```

# %%
first_click = clicks.groupby("impression_id")["click_time"].min()
click_delay = log["impression_id"].map(first_click) - log["time"]
label_1h = (click_delay <= 3600).astype(int).to_numpy()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step1.attribution_labels(label_1h, log, clicks)

# %% [markdown]
# ```{exercise} Judgment: choose the attribution window
# :label: ex-step1-choose-window
#
# The team asks for labels that (a) capture at least 90% of the clicks that will
# ever arrive, so the model does not learn a CTR that is too low, and (b) are
# final by midnight for at least 80% of the day's impressions, so the nightly
# job trains on most of today. Read the curves of the
# {ref}`delay figure <fig-step1-delay>`
# (the arrays `grid`, `captured` and `labelled_by_midnight` hold them) and
# choose `window_seconds`, in seconds. Several answers are defensible; the check
# says what yours trades away.
# ```

# %% [markdown]
# ```{solution-start} ex-step1-choose-window
# :class: dropdown
# ```

# %%
fits = (captured >= 0.9) & (labelled_by_midnight >= 0.8)
print(f"defensible windows: {grid[fits].min() / 60:.0f} min to "
      f"{grid[fits].max() / 3600:.1f} h")
window_seconds = 3600  # a round value inside that range

# %% [markdown]
# ```{solution-end}
# ```

# %%
step1.attribution_window(window_seconds, delay, log["time"])

# %% [markdown]
# ## 7. Recap
#
# - The platform sees a *view* of the world: profiles with declared interests,
#   campaigns with targeting, ads, pages, requests, and its own logs. What users
#   really like, how good ads really are and the true click probabilities stay
#   in the world; here they only grade what the platform does.
# - Random serving gets a CTR of {glue:text}`ctr_random`. In this run CTR is
#   {glue:text}`effects_ranked`. The hour moves it least: over the day the true CTR
#   moves between {glue:text}`ctr_hour_min` and {glue:text}`ctr_hour_max`,
#   {glue:text}`hour_vs_noise` the typical 95% interval of one hour's measured CTR.
# - Ranking by eCPM = 1000 x bid x pCTR beats ranking by pCTR alone in revenue,
#   so the model must predict a calibrated click probability, not just an order.
# - The label is a click within an attribution window: non-clicks in low slots
#   were often never seen, and the window trades captured clicks against fresh
#   labels.

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# - **Clarify the product first.** Feed or social ads, where we know the user's
#   profile and declared interests, or search ads, where the query carries the
#   intent? Who are the actors: users, advertisers with campaigns and budgets,
#   publishers with pages and slots?
# - **Say what the platform can observe.** Declared interests are incomplete and
#   noisy; everything else about users and ads is learned from our own logs.
# - **Turn the business goal into an ML problem.** We are paid per click and
#   rank by eCPM = 1000 x bid x pCTR, so the model must predict the probability
#   that this user, in this context, clicks this ad, and be calibrated, because
#   the auction multiplies it by money. In this lab, ranking by eCPM earned
#   {glue:text}`revenue_gain` more than ranking by pCTR, for
#   {glue:text}`click_loss` fewer clicks.
# - **Define the label precisely.** A positive is a click attributed to a shown
#   ad within a window; a negative is a shown ad without one. Say that
#   non-clicks at low positions were often never seen (position bias) and that
#   clicks arrive late ({glue:text}`late_1h` after one hour here), so the
#   window trades label freshness against false negatives.
# ```
