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
# - A tour of the world: users, advertisers with their campaigns and ads,
#   publishers, and the daily rhythm of traffic.
# - A naive ad server that shows random eligible ads, and the impression log it
#   writes.
# - Three looks at that log: click-through rate by position, by how much the
#   user cares about the ad's topic, and by hour.
# - The objective: why ranking by click probability alone leaves money on the
#   table, measured in dollars.
# - The label: what counts as a positive, what does not, and how late clicks
#   arrive.
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
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from adsys import plots
from adsys.baseline import CANDIDATE_DRAWS, serve_random
from adsys.checks import step1
from adsys.world import AGE_BANDS, DEVICES, REGIONS, World

plots.style()
SEED = 0

# %% [markdown]
# ## 1. Meet the players
#
# The world is built from the default configuration, `data/world.toml`, and a
# seed: the same seed always gives the same users, ads and publishers.

# %%
world = World(seed=SEED)
config = world.config
users, campaigns, ads = world.users, world.campaigns, world.ads
publishers = world.publishers

# %% tags=["remove-cell"]
glue("n_users", f"{len(users):,}", display=False)
glue("n_topics", f"{config.n_topics}", display=False)

# %% [markdown]
# ### Users
#
# There are {glue:text}`n_users` users. Each has a region, an age band, a
# gender, a device and an interest vector over {glue:text}`n_topics` topics.
# The tables store codes; `world.label` turns them into names.

# %%
readable = users.assign(**{kind: world.label(kind, users[kind])
                           for kind in ["age_band", "gender", "region", "device"]})
readable["top_topic"] = world.label("topic", users["top_topic"])
readable.head()

# %% [markdown]
# Interests are sparse: each user cares about a few topics and hardly at all
# about the rest. An interest of at least `interest_threshold` counts for
# {term}`targeting`.

# %%
top_strength = world.interests.max(axis=1)
n_strong = (world.interests >= config.interest_threshold).sum(axis=1)
pd.Series(n_strong).value_counts().sort_index().rename_axis("strong interests").rename("users")

# %% tags=["remove-cell"]
glue("median_strong", f"{np.median(n_strong):.0f}", display=False)
glue("share_top_half", f"{(top_strength > 0.5).mean():.0%}", display=False)
glue("interest_threshold", f"{config.interest_threshold:g}", display=False)


# %% tags=["hide-input", "remove-output"]
def count_bars(ax, codes, kind, title):
    """Horizontal bars: number of users per category of ``kind``, in the world's order."""
    counts = np.bincount(codes)
    ax.barh(world.label(kind, np.arange(len(counts))), counts, color="C0")
    ax.set(title=title, xlabel="users")
    ax.invert_yaxis()


fig, axes = plt.subplots(2, 2, figsize=(8, 5.2))
count_bars(axes[0, 0], users["region"], "region", "Region")
count_bars(axes[0, 1], users["age_band"], "age_band", "Age band")
count_bars(axes[1, 0], users["device"], "device", "Device")
axes[1, 1].hist(top_strength, bins=np.linspace(0, 1, 21), color="C1")
axes[1, 1].set(title="Strongest interest", xlabel="share of the user's interest in the top topic",
               ylabel="users")
glue("fig_users", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_users
# :name: fig-step1-users
#
# Who the users are: counts by region, age band and device, and how strongly
# each user leans towards their favourite topic (1 means a single interest).
# ```
#
# **Takeaway:** the median user has {glue:text}`median_strong` strong
# interests (at least {glue:text}`interest_threshold`), and for
# {glue:text}`share_top_half` of users a single topic holds more than half of
# their interest, so a random ad is usually about something the user ignores.

# %% [markdown]
# ### Advertisers, campaigns and ads
#
# An {term}`advertiser` runs one or more {term}`campaigns <campaign>`; a
# campaign has a daily budget, a maximum cost-per-click {term}`bid` and its
# targeting, and groups one or more ads (creatives) about the advertiser's
# topic. Each ad also has a hidden quality that only the world knows.

# %%
live = campaigns[campaigns["start_day"] == 0]  # campaigns running on day 0
ads.head()

# %% tags=["remove-cell"]
glue("n_advertisers", f"{(world.advertisers['start_day'] == 0).sum():,}", display=False)
glue("n_campaigns", f"{len(live):,}", display=False)
glue("n_ads", f"{world.active_ads(0).sum():,}", display=False)
glue("n_later", f"{len(campaigns) - len(live):,}", display=False)
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
    "campaign_id": shown["campaign_id"], "topic": world.label("topic", shown["topic"]),
    "daily_budget": shown["daily_budget"], "max_cpc": shown["max_cpc"],
    "regions": [allowed(m, REGIONS) for m in shown["region_mask"]],
    "ages": [allowed(m, AGE_BANDS) for m in shown["age_mask"]],
    "devices": [allowed(m, DEVICES) for m in shown["device_mask"]],
    "interest": np.where(shown["topic_mask"] > 0, world.label("topic", shown["topic"]), "any"),
}).set_index("campaign_id")

# %% [markdown]
# How many campaigns restrict each dimension (the rest accept everyone):

# %%
restricted = pd.Series({
    "region": (live["region_mask"] != (1 << len(REGIONS)) - 1).mean(),
    "age band": (live["age_mask"] != (1 << len(AGE_BANDS)) - 1).mean(),
    "device": (live["device_mask"] != (1 << len(DEVICES)) - 1).mean(),
    "interest in the ad's topic": (live["topic_mask"] != 0).mean(),
})
restricted.map("{:.0%}".format).rename("share of campaigns").to_frame()

# %% tags=["hide-input", "remove-output"]
fig, (ax1, ax2) = plt.subplots(1, 2)
ax1.hist(live["daily_budget"], bins=np.geomspace(1, live["daily_budget"].max(), 30), color="C0")
ax1.set(xscale="log", title="Daily budget", xlabel="budget per campaign ($ per day, log scale)",
        ylabel="campaigns")
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
# day and bids {glue:text}`bid_median` per click, but both spread over an order
# of magnitude, so the bid will matter as much as the click probability when
# we choose which ad to show.

# %% [markdown]
# ### Publishers and the daily rhythm
#
# A {term}`publisher` owns the pages where ads appear; each page has a topic and
# {glue:text}`n_slots` ad slots. A few publishers carry most of the traffic
# (their shares follow a Zipf law), and traffic swings through the day.

# %% tags=["remove-cell"]
traffic = publishers["traffic_share"]
hourly = world.hourly_traffic()
glue("n_slots", f"{config.n_slots}", display=False)
glue("n_publishers", f"{len(publishers)}", display=False)
glue("top_publisher", f"{traffic.max():.0%}", display=False)
glue("top10_publishers", f"{traffic.nlargest(10).sum():.0%}", display=False)
glue("peak_hour", f"{hourly.argmax()}:00", display=False)
glue("trough_hour", f"{hourly.argmin()}:00", display=False)
glue("peak_ratio", f"{hourly.max() / hourly.min():.1f}", display=False)

# %% tags=["hide-input", "remove-output"]
fig, (ax1, ax2) = plt.subplots(1, 2)
ax1.loglog(np.arange(1, len(traffic) + 1), np.sort(traffic)[::-1], "o", ms=4)
ax1.set(title="Publishers", xlabel="publisher rank (log scale)",
        ylabel="share of requests (log scale)")
ax2.bar(np.arange(24), hourly, color="C0")
ax2.set(title="Hour of day", xlabel="hour of day (0-23)", ylabel="share of the day's requests",
        xticks=range(0, 24, 3))
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

# %%
N_REQUESTS = 50_000
rng = np.random.default_rng(SEED)
requests = world.requests(0, rng, n=N_REQUESTS)
requests.to_frame().head()


# %% [markdown]
# The server lives in the package as `adsys.baseline.serve_random`, because later
# chapters reuse its unbiased logs. It is vectorized over requests: draw
# {glue:text}`n_draws` random active ads per request, keep those whose targeting
# matches the user (each ad once), and take the first {glue:text}`n_slots` in draw
# order as positions 1, 2, and so on. Each shown ad becomes one {term}`impression`.
# The world gives its true click probability, the
# {term}`examination probability <examination probability>` of the position times
# the relevance of the ad to this user, page and hour, and then draws whether the
# user clicked.

# %%
glue("n_draws", f"{CANDIDATE_DRAWS}", display=False)
log = serve_random(world, day=0, n_requests=N_REQUESTS, rng=rng)
log.insert(0, "impression_id", np.arange(len(log)))
log.head()

# %% tags=["remove-cell"]
n_short = N_REQUESTS - (log.groupby("request_id").size() == config.n_slots).sum()
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
    """Impressions, clicks, CTR with a 95% half-width, and the true mean CTR per group."""
    table = frame.groupby(by, observed=True).agg(
        impressions=("clicked", "size"), clicks=("clicked", "sum"), true_ctr=("true_p", "mean"))
    table["ctr"] = table["clicks"] / table["impressions"]
    table["ci95"] = 1.96 * np.sqrt(table["ctr"] * (1 - table["ctr"]) / table["impressions"])
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

# %% [markdown]
# ```{glue:figure} fig_position
# :name: fig-step1-position
#
# CTR by position under random serving, with the world's true examination
# curve scaled by the average relevance of the ads shown.
# ```
#
# **Takeaway:** the same random ads get {glue:text}`ctr_pos1` CTR in the top
# slot and only {glue:text}`ratio_last` of that in the last one, close to the
# world's examination probability of {glue:text}`examine_last`: position alone
# moves CTR a lot, which is {term}`position bias` {cite}`craswell2008clickmodels`.

# %% [markdown]
# Next, relevance. For each impression, look up how much this user cares about
# this ad's topic (their interest, from 0 to 1), and bin it.

# %%
ad_topic = ads["topic"].to_numpy()[log["ad_id"]]
interest = world.interests[log["user_id"], ad_topic]
bins = [0, 0.01, 0.1, 0.3, 0.6, 1]
labels = ["0-0.01", "0.01-0.1", "0.1-0.3", "0.3-0.6", "0.6-1"]
log["interest_bin"] = pd.cut(interest, bins, labels=labels, include_lowest=True)
by_interest = ctr_table(log, "interest_bin")
by_interest["share"] = by_interest["impressions"] / len(log)
by_interest.round(4)

# %% tags=["hide-input", "remove-output"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
ax1.bar(labels, by_interest["share"], color="C7")
ax1.set(title="Impressions", xlabel="user's interest in the ad's topic",
        ylabel="share of impressions")
ax2.bar(labels, by_interest["ctr"], yerr=by_interest["ci95"], capsize=4, color="C0",
        label="measured CTR (95% interval)")
ax2.plot(labels, by_interest["true_ctr"], "o--", color="C3", label="world: mean true_p")
ax2.set(title="Click-through rate", xlabel="user's interest in the ad's topic", ylabel="CTR",
        ylim=(0, 1.35 * by_interest["ctr"].max()))
ax2.legend(loc="upper left")
for ax in (ax1, ax2):
    plots.percent_axis(ax)
    ax.tick_params(axis="x", labelsize=9)
glue("fig_interest", fig, display=False)

# %% tags=["remove-cell"]
glue("share_no_interest", f"{by_interest['share'].iloc[0]:.0%}", display=False)
glue("ctr_no_interest", f"{by_interest['ctr'].iloc[0]:.1%}", display=False)
glue("ctr_top_interest", f"{by_interest['ctr'].iloc[-1]:.1%}", display=False)

# %% [markdown]
# ```{glue:figure} fig_interest
# :name: fig-step1-interest
#
# Topic match under random serving: how impressions spread over the user's
# interest in the ad's topic (left) and the CTR in each bin (right).
# ```
#
# **Takeaway:** {glue:text}`share_no_interest` of random impressions go to
# users with almost no interest in the topic, where CTR is
# {glue:text}`ctr_no_interest`; for strongly interested users it is
# {glue:text}`ctr_top_interest`. Matching ads to interests is where a model
# earns its keep.

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
glue("ci_hour", f"{100 * by_hour['ci95'].median():.2f} percentage points", display=False)

# %% tags=["hide-input", "remove-output"]
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
ax1.bar(by_hour.index, by_hour["requests"], color="C0", label="measured")
ax1.plot(np.arange(24), world.hourly_traffic() * N_REQUESTS, "o--", color="C3", ms=3,
         label="world: expected")
ax1.set(title="Traffic", ylabel="requests per hour")
ax1.legend(loc="upper center")
ax2.errorbar(by_hour.index, by_hour["ctr"], yerr=by_hour["ci95"], fmt="o", capsize=3,
             label="measured CTR (95% interval)")
ax2.plot(by_hour.index, by_hour["true_ctr"], "--", color="C3", label="world: mean true_p")
ax2.set(title="Click-through rate", xlabel="hour of day (0-23)", ylabel="CTR",
        xticks=range(0, 24, 3), ylim=(0, 1.1 * (by_hour["ctr"] + by_hour["ci95"]).max()))
plots.percent_axis(ax2)
ax2.legend(loc="lower center", ncols=2)
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
# the day, about as much as the typical 95% interval of one hour's CTR
# (± {glue:text}`ci_hour`): one day of logs cannot tell this effect from noise.

# %% [markdown]
# ## 4. Why the objective is not CTR alone
#
# The business goal is revenue (from advertisers who keep coming back because
# their ads get clicked). With cost-per-click pricing, an impression's expected
# revenue is its bid times its click probability: the {term}`eCPM` (expected
# cost per thousand impressions, bid x {term}`pCTR` x 1000)
# {cite}`edelman2007gsp,varian2007position`. Here we use the world's true
# relevance as the pCTR, the best a model could ever do, and score every
# eligible ad for a sample of requests.

# %%
sample = np.sort(rng.choice(N_REQUESTS, size=1_000, replace=False))
req = requests.take(sample)
pool = np.flatnonzero(world.active_ads(0))
n, m, slots = len(sample), len(pool), config.n_slots
pair_user, pair_ad = np.repeat(req.user, m), np.tile(pool, n)
eligible = world.matches_targeting(pair_user, pair_ad).reshape(n, m)
pctr = world.relevance(pair_user, pair_ad, np.repeat(req.publisher, m),
                       np.repeat(req.hour, m), day=0).reshape(n, m)
bid = campaigns["max_cpc"].to_numpy()[ads["campaign_id"].to_numpy()[pool]]

# %% tags=["remove-cell"]
glue("n_sample", f"{n:,}", display=False)
glue("n_eligible", f"{eligible.sum(axis=1).mean():.0f}", display=False)
glue("n_pool", f"{m:,}", display=False)


# %% [markdown]
# Each of the {glue:text}`n_sample` requests is eligible for
# {glue:text}`n_eligible` of the {glue:text}`n_pool` active ads on average.
# Two rankings fill the slots: by pCTR alone, or by eCPM = bid x pCTR.

# %%
def top_slots(score):
    """Columns of the n_slots best eligible ads of each request, best first."""
    return np.argsort(-np.where(eligible, score, -np.inf), axis=1)[:, :slots]


def outcome(p_click, paid):
    """Expected clicks and revenue per 1,000 requests, and the mean bid of shown ads."""
    return {"clicks per 1,000 requests": 1000 * p_click.sum() / n,
            "revenue per 1,000 requests ($)": 1000 * (p_click * paid).sum() / n,
            "mean bid of shown ads ($)": paid.mean()}


examine = world.examine(np.arange(1, slots + 1))
rankings = {"pCTR": top_slots(pctr), "eCPM = bid x pCTR": top_slots(bid * pctr)}

# %%
rows = {"random (section 2)": outcome(*log.loc[log["request_id"].isin(sample),
                                               ["true_p", "max_cpc"]].to_numpy().T)}
for name, cols in rankings.items():
    rows[f"by {name}"] = outcome(np.take_along_axis(pctr, cols, 1) * examine, bid[cols])
comparison = pd.DataFrame(rows).T
comparison.round(2)

# %% tags=["remove-cell"]
ctr_row, ecpm_row = comparison.iloc[1], comparison.iloc[2]
differ = (rankings["pCTR"][:, 0] != rankings["eCPM = bid x pCTR"][:, 0]).mean()
glue("share_differ", f"{differ:.0%}", display=False)
glue("revenue_gain", f"{ecpm_row.iloc[1] / ctr_row.iloc[1] - 1:.0%}", display=False)
glue("click_loss", f"{1 - ecpm_row.iloc[0] / ctr_row.iloc[0]:.0%}", display=False)
glue("random_gap", f"{ecpm_row.iloc[1] / comparison.iloc[0, 1]:.0f}", display=False)

# %% [markdown]
# Revenue here assumes each click pays its full bid; the auction chapter
# charges second prices instead, never more than the bid.
# The two rankings put a different ad in the top slot for
# {glue:text}`share_differ` of requests. Ranking by eCPM earns
# {glue:text}`revenue_gain` more than ranking by pCTR, for
# {glue:text}`click_loss` fewer clicks, and {glue:text}`random_gap` times the
# revenue of random serving.
#
# To see why, take one request where the two rankings disagree, and its best
# candidates under either rule.

# %%
i = int(np.flatnonzero(rankings["pCTR"][:, 0] != rankings["eCPM = bid x pCTR"][:, 0])[0])
cols = list(dict.fromkeys([*rankings["pCTR"][i, :2], *rankings["eCPM = bid x pCTR"][i, :2]]))
rank_ctr = np.argsort(np.argsort(-np.where(eligible[i], pctr[i], -np.inf))) + 1
rank_ecpm = np.argsort(np.argsort(-np.where(eligible[i], bid * pctr[i], -np.inf))) + 1
example = pd.DataFrame({
    "ad_id": pool[cols], "topic": world.label("topic", ads["topic"].to_numpy()[pool[cols]]),
    "bid ($)": bid[cols], "pCTR": pctr[i, cols], "eCPM ($)": 1000 * bid[cols] * pctr[i, cols],
    "rank by pCTR": rank_ctr[cols], "rank by eCPM": rank_ecpm[cols],
}).set_index("ad_id")
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
# problem is therefore: **predict the probability that this user, in this
# context, clicks this ad**, calibrated, because the auction multiplies it by
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
# A training example is an impression. It is a **positive** if its ad was
# clicked and the click reached us within the {term}`attribution window`; a
# **negative** if it was shown and no click arrived within the window. Two
# caveats make this less clean than it sounds.
#
# First, a non-click is not always a "no". In the last slot (position
# {glue:text}`n_slots`) the user looks at the ad only
# {glue:text}`examine_last` of the time, so many non-clicks there were never
# seen at all.

# %%
e_last = config.examine[-1]
last = log[(log["position"] == config.n_slots) & (log["clicked"] == 0)]
unseen = ((1 - e_last) / (1 - last["true_p"])).mean()  # P(not examined | not clicked)
glue("unseen_last", f"{unseen:.0%}", display=False)

# %% [markdown]
# Of the non-clicks at position {glue:text}`n_slots`,
# {glue:text}`unseen_last` were never examined: they say nothing about the ad,
# only about where it was. Step 6 handles this position bias.
#
# Second, the click arrives later than the impression. The world's
# `click_stream` returns clicks as the logging system receives them: after a
# delay, out of order, and a few reported twice.

# %%
clicks = world.click_stream(log["impression_id"], log["time"], log["clicked"], rng)
first_arrival = clicks.groupby("impression_id")["click_time"].min()
delay = first_arrival - log.set_index("impression_id").loc[first_arrival.index, "time"]
windows = {"1 minute": 60, "10 minutes": 600, "1 hour": 3600, "1 day": 86_400}
late = pd.Series({name: (delay > s).mean() for name, s in windows.items()})
late.map("{:.2%}".format).rename("clicks arriving later than this").to_frame()

# %% tags=["remove-cell"]
glue("n_duplicates", f"{len(clicks) - len(first_arrival):,}", display=False)
glue("delay_median", f"{delay.median() / 60:.0f} minutes", display=False)
glue("late_1h", f"{late['1 hour']:.1%}", display=False)
glue("late_1d", f"{late['1 day']:.2%}", display=False)
after_midnight = (first_arrival >= 86_400).mean()
glue("after_midnight", f"{after_midnight:.2%}", display=False)

# %% tags=["hide-input", "remove-output"]
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.ecdf(delay, complementary=True)
for name in ["1 minute", "1 hour", "1 day"]:
    ax.axvline(windows[name], color="C3", ls=":")
    ax.annotate(name, (windows[name], 0.9), xytext=(3, 0), textcoords="offset points")
ax.set(xscale="log", xlabel="delay from impression to click (seconds, log scale)",
       ylabel="clicks not yet arrived", ylim=(0, 1.02), xlim=(None, 4e5))
plots.percent_axis(ax)
glue("fig_delay", fig, display=False)

# %% [markdown]
# ```{glue:figure} fig_delay
# :name: fig-step1-delay
#
# How long clicks take to arrive: the share of clicks still missing at each
# delay after the impression, with one-minute, one-hour and one-day windows.
# ```
#
# **Takeaway:** the median click arrives after {glue:text}`delay_median`, but
# {glue:text}`late_1h` of clicks come after one hour (and
# {glue:text}`late_1d` after one day); {glue:text}`after_midnight` of the day's
# clicks land after midnight, outside the day's log, and
# {glue:text}`n_duplicates` clicks were reported twice. A short window gives
# fresh labels but turns late clicks into false negatives; a long one delays
# training.

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
candidates = pd.DataFrame({"ad_id": pool[cols_j], "bid": bid[cols_j], "pctr": pctr[j, cols_j]})
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
ecpm = candidates["bid"] * candidates["pctr"]
best = ecpm.sort_values(ascending=False).index[: config.n_slots]
slot_order = candidates.loc[best, "ad_id"].tolist()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step1.ecpm_slots(slot_order, candidates, n_slots=config.n_slots)

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
# ```{admonition} What to say in the interview
# :class: tip
# - **Clarify the product first.** Feed or social ads, where we know the user's
#   demographics and interests, or search ads, where the query carries the
#   intent? Who are the actors: users, advertisers with campaigns and budgets,
#   publishers with pages and slots?
# - **Turn the business goal into an ML problem.** We are paid per click and
#   rank by eCPM = bid x pCTR, so the model must predict the probability that
#   this user, in this context, clicks this ad, and be calibrated, because the
#   auction multiplies it by money. In this lab, ranking by eCPM earned
#   {glue:text}`revenue_gain` more than ranking by pCTR, for
#   {glue:text}`click_loss` fewer clicks.
# - **Define the label precisely.** A positive is a click attributed to a shown
#   ad within a window; a negative is a shown ad without one. Say that
#   non-clicks at low positions were often never seen (position bias) and that
#   clicks arrive late ({glue:text}`late_1h` after one hour here), so the
#   window trades label freshness against false negatives.
# - **Look at the data before modelling.** Even random logs show the position
#   effect and the pull of topic match, and show that small effects such as
#   time of day need more than one day of data.
# ```
