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
# # Lab: build the blueprint and run a day
#
# The {doc}`concept page <../book/step4_blueprint>` drew the ad system as boxes
# and arrows. This lab builds every box from the `adsys` package on the course's
# default world, wires the boxes together, and plays a simulated day of traffic
# through the whole loop: requests in, priced ads out, clicks back into the logs.
#
# ```{admonition} What you will build
# :class: note
# - The **ads index**: which ads may be shown to a request, by targeting and
#   remaining budget.
# - The **selector**: a cheap score that keeps the top K of hundreds of eligible
#   ads, and what it does with an ad it has never seen.
# - The **features**: one function for training and serving, with the position
#   fixed at serving.
# - **Prediction v0**: a logistic-regression click model trained on a bootstrap
#   log.
# - The **auction**: worked examples of eCPM ranking, second prices and a reserve.
# - **Pacing**: the same day with and without it, spend against the plan.
# - The **event log and the join**: impressions with the features as served,
#   late and duplicated clicks, labels from an attribution window.
# - The **daily report** a team reads the next morning, and the command that
#   writes it outside the notebook.
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
import dataclasses
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from adsys import plots, report
from adsys.auction import run_auction
from adsys.baseline import serve_random
from adsys.checks import step4
from adsys.events import join_clicks, training_data
from adsys.features import PRIOR_STRENGTH, SERVING_POSITION, count_ad_stats, make_features
from adsys.index import AdIndex
from adsys.prediction import LogisticClickModel
from adsys.selection import Selector
from adsys.serving import AdServer
from adsys.simulate import SimulationConfig, simulate_day
from adsys.world import SECONDS_PER_DAY, World

plots.style()
SEED = 0
world = World(seed=SEED)
campaign_of = world.ads["campaign_id"].to_numpy()
max_cpc = world.campaigns["max_cpc"].to_numpy()


def pct(x: float, digits: int = 1) -> str:
    """Format a fraction as a percentage string for glue."""
    return f"{100 * x:.{digits}f}%"


# %% [markdown]
# ## 1. The ads index
#
# Advertisers store their {term}`targeting` with each campaign: regions, age
# bands, devices and, for some, an interest topic. The index turns it into
# posting lists, one per targeting value (the ads that accept region r, age band
# a, device d), stored as bitmaps over ad ids. A request's candidates are the
# AND of its three lists, of the ads active today and of those whose campaign
# has budget left; interest-targeted ads then also need a matching user interest.
#
# First the single-request path: the eligible ads for one user.

# %%
index = AdIndex(world)
requests = world.requests(0, np.random.default_rng(SEED), n=2_000)
user = int(requests.user[0])
eligible_one = index.eligible_for(user, day=0)
strong = np.flatnonzero(world.interests[user] >= world.config.interest_threshold)
profile = {kind: world.label(kind, [world.users.loc[user, kind]])[0]
           for kind in ["region", "age_band", "device"]}
pd.Series({**profile, "interests": ", ".join(world.label("topic", strong)),
           "eligible ads": len(eligible_one), "first ids": eligible_one[:6].tolist()},
          name=f"user {user}").to_frame()

# %% [markdown]
# The batch path answers a whole batch of requests at once: aligned arrays of
# (request position, ad id) pairs. It shares its code with the single-request
# path, and both must agree with the world's own targeting rule.

# %%
request_pos, ad_id = index.eligible(requests, day=0)
per_request = np.bincount(request_pos, minlength=len(requests))
active = np.flatnonzero(world.active_ads(0))
agreement = pd.Series({
    "single-request path = batch rows (first 200 requests)": all(
        np.array_equal(index.eligible_for(int(requests.user[i]), 0), ad_id[request_pos == i])
        for i in range(200)),
    "every pair passes the campaign's targeting": bool(
        world.matches_targeting(requests.user[request_pos], ad_id).all()),
    "user gets every active ad whose targeting matches": bool(
        world.matches_targeting(np.full(len(active), user), active).sum() == len(eligible_one)),
}, name="holds")
assert agreement.all()
agreement.to_frame()

# %% [markdown]
# Budget is the other filter. When a campaign runs out, the pacer marks it in
# `has_budget` and its ads leave the index's answers at once.

# %%
has_budget = np.ones(len(world.campaigns), dtype=bool)
broke = campaign_of[eligible_one[0]]
has_budget[broke] = False
without = index.eligible_for(user, day=0, has_budget=has_budget)
removed = np.setdiff1d(eligible_one, without)
assert (campaign_of[removed] == broke).all()
pd.Series({"eligible with every budget": len(eligible_one), "eligible without campaign "
           f"{broke}": len(without), "removed ad ids": removed.tolist()}, name="ads").to_frame()

# %% tags=["remove-cell"]
glue("idx_user", f"{user:,}", display=False)
glue("idx_n_one", f"{len(eligible_one):,}", display=False)
glue("idx_broke", f"{broke}", display=False)
glue("idx_removed", f"{len(removed)}", display=False)
glue("idx_requests", f"{len(requests):,}", display=False)
glue("idx_active", f"{len(active):,}", display=False)
glue("idx_median", f"{np.median(per_request):.0f}", display=False)
glue("idx_p10", f"{np.percentile(per_request, 10):.0f}", display=False)
glue("idx_p90", f"{np.percentile(per_request, 90):.0f}", display=False)
glue("idx_share", pct(np.median(per_request) / len(active), 0), display=False)
glue("idx_pairs", f"{len(ad_id):,}", display=False)
age = world.label("age_band", world.users["age_band"].to_numpy()[requests.user])
by_age = pd.Series(per_request).groupby(age).median()
glue("idx_ends", f"{by_age[['18-24', '65+']].max():.0f}", display=False)
glue("idx_middle", f"{by_age[['25-34', '35-44', '45-54']].min():.0f}", display=False)

# %% [markdown]
# User {glue:text}`idx_user` may see {glue:text}`idx_n_one` ads. Switching off
# campaign {glue:text}`idx_broke` removes its {glue:text}`idx_removed` ad(s) from
# the answer and nothing else. How many ads survive targeting for a typical
# request?

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 3.0))
ax.hist(per_request, bins=40, color="C0")
ax.axvline(np.median(per_request), color="C3", ls="--", label="median")
ax.set(xlabel=f"eligible ads per request (of {len(active):,} active ads)",
       ylabel="requests")
ax.legend(loc="upper left")
glue("fig_eligible", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_eligible
# :name: fig-step4-eligible
#
# Number of ads whose targeting accepts the request, for
# {glue:text}`idx_requests` requests of day 0.
# ```
#
# **Takeaway:** targeting is a weak filter here: the median request is eligible
# for {glue:text}`idx_median` ads ({glue:text}`idx_share` of the
# {glue:text}`idx_active` active ads; 10th to 90th percentile
# {glue:text}`idx_p10`-{glue:text}`idx_p90`), far too many for a heavy model
# to score within the latency budget. That is the selector's job. The smaller
# hump is the youngest and oldest users (median {glue:text}`idx_ends` eligible
# ads or fewer, against at least {glue:text}`idx_middle` for ages 25-54):
# advertisers target contiguous age ranges, which leave out the ends more often
# than the middle.

# %% [markdown]
# ## 2. The selector
#
# Before launch no model exists to choose ads, so the first log comes from the
# random server of Step 1: random eligible ads, no auction. Its per-ad
# impression and click counts are the history the selector starts with.

# %%
N_BOOTSTRAP = 50_000
boot_log = serve_random(world, day=0, n_requests=N_BOOTSTRAP,
                        rng=np.random.default_rng(SEED), with_truth=False)
ad_stats = count_ad_stats(boot_log["ad_id"], boot_log["clicked"])
ad_stats.head()

# %% [markdown]
# The selector scores every eligible (request, ad) pair with two array lookups,
# `max_cpc x smoothed CTR`, and keeps the K best per request. The smoothed CTR
# shrinks an ad's clicks / impressions towards a prior: `(clicks + m p0) /
# (impressions + m)` with {glue:text}`sel_strength` pseudo-impressions `m`, so
# an ad with three lucky impressions does not jump to the top.

# %%
K = 10
selector = Selector(world, ad_stats)
kept_pos, kept_ad = selector.select(request_pos, ad_id, k=K)
top = kept_ad[kept_pos == 0]
pd.DataFrame({
    "ad_id": top, "max_cpc ($)": max_cpc[campaign_of[top]],
    "impressions": selector.impressions[top].astype(int),
    "clicks": selector.clicks[top].astype(int), "smoothed CTR": selector.ctr[top],
    "score ($ per impression)": selector.score(top),
}).set_index("ad_id").round(4)

# %% [markdown]
# A new ad has no history. The prior gives it a CTR instead of zero, so the
# selector can still pick it, at the prior's rate, and learn.

# %%
cold = np.flatnonzero(world.active_ads(0) & (selector.impressions == 0))
tomorrow = np.flatnonzero(world.ads["start_day"].to_numpy() == 1)
assert np.allclose(selector.ctr[cold], selector.prior_ctr)
assert np.allclose(selector.ctr[tomorrow], selector.prior_ctr)
pd.DataFrame({"ads": [len(cold), len(tomorrow)],
              "smoothed CTR": [selector.ctr[cold].mean(), selector.ctr[tomorrow].mean()]},
             index=["active today, never shown", "starting tomorrow"])

# %% tags=["remove-cell"]
few = np.flatnonzero((selector.impressions > 0) & (selector.impressions <= 10)
                     & (selector.clicks > 0))
thin = few[np.argmax(selector.clicks[few] / selector.impressions[few])]
glue("sel_strength", f"{PRIOR_STRENGTH:g}", display=False)
glue("sel_k", f"{K}", display=False)
glue("sel_boot", f"{N_BOOTSTRAP:,}", display=False)
glue("sel_cold", f"{len(cold)}", display=False)
glue("sel_tomorrow", f"{len(tomorrow)}", display=False)
glue("sel_prior", pct(selector.prior_ctr), display=False)
glue("sel_thin_ad", f"{thin}", display=False)
n_thin = int(selector.clicks[thin])
glue("sel_thin_raw", f"{n_thin} click{'s' if n_thin > 1 else ''} in "
     f"{int(selector.impressions[thin])} impressions "
     f"({pct(selector.clicks[thin] / selector.impressions[thin], 0)})", display=False)
glue("sel_thin_smooth", pct(selector.ctr[thin]), display=False)
glue("sel_pairs", f"{len(kept_ad):,}", display=False)
glue("sel_factor", f"{len(ad_id) / len(kept_ad):.0f}", display=False)

# %% [markdown]
# {glue:text}`sel_cold` active ads were never drawn in the
# {glue:text}`sel_boot`-request bootstrap log, and {glue:text}`sel_tomorrow`
# ads start tomorrow; all get the prior CTR of {glue:text}`sel_prior`. At the
# other extreme, ad {glue:text}`sel_thin_ad` had {glue:text}`sel_thin_raw`; its
# smoothed CTR is {glue:text}`sel_thin_smooth`. Keeping K = {glue:text}`sel_k`
# per request cuts the pairs the heavy model must score by a factor of
# {glue:text}`sel_factor`.
#
# ```{admonition} Pitfall
# :class: warning
# A selector that ranks by observed CTR without a prior starves new ads: with
# no impressions they score zero, are never shown, and never get the
# impressions that would prove them. That is {term}`cold start` in one line of
# code.
# ```

# %% [markdown]
# ## 3. Features: one function for training and serving
#
# `make_features` turns aligned (user, ad, page, hour, position) arrays into
# the model's feature table. The server calls it on the selector's candidates
# with the position fixed to `SERVING_POSITION`; the trainer calls it on logged
# impressions with the slot each one was shown in.

# %%
users_k, pubs_k, hours_k = (requests.user[kept_pos], requests.publisher[kept_pos],
                            requests.hour[kept_pos])
serving = make_features(world, users_k, kept_ad, pubs_k, hours_k, SERVING_POSITION)
serving.head(3).transpose()

# %% [markdown]
# The ad's click history (`ad_ctr_logit`, `campaign_ctr_logit`,
# `ad_log_impressions`) sits at the prior here: the v0 server does not give the
# model the logged CTRs, only the selector. Counts from traffic the model itself
# chose are a feedback loop; Step 6 takes it up.
#
# A row's features do not depend on the batch it is computed in, so a single
# request at serving time gets exactly the row a batch would:

# %%
alone = make_features(world, users_k[[2]], kept_ad[[2]], pubs_k[[2]], hours_k[[2]],
                      SERVING_POSITION)
pd.testing.assert_frame_equal(alone, serving.iloc[[2]].reset_index(drop=True))
train_features = make_features(world, boot_log["user_id"], boot_log["ad_id"],
                               boot_log["publisher_id"], boot_log["hour"],
                               boot_log["position"])
train_features["position"].value_counts().sort_index().rename("training rows")

# %% [markdown]
# Training rows carry their logged slot, so the model learns the position
# effect as a feature of its own instead of crediting it to the ads that
# happened to be on top ({term}`position bias`). At serving every candidate is
# scored at position {glue:text}`serving_position`: their pCTRs become
# comparable, and the auction, not the model, decides the slots.
#
# ```{admonition} In production
# :class: note
# Two implementations of "the same" feature (a SQL job for training, a service
# for serving) drift apart silently; that is {term}`training/serving skew`.
# One function, imported by both paths, and logging the features as served
# (section 7) are the two defences.
# ```

# %% [markdown]
# ## 4. Prediction v0
#
# The first click model is a logistic regression on those features, trained on
# the bootstrap log. (`adsys.simulate.bootstrap_model` wraps these steps:
# random log, ad statistics, features, fit.) Step 6 replaces it with LightGBM
# behind the same `fit` / `predict` interface.

# %%
model = LogisticClickModel().fit(train_features, boot_log["clicked"])
pctr_k = model.predict(serving)
first = kept_pos == 0
bids_0, pctr_0 = max_cpc[campaign_of[kept_ad[first]]], pctr_k[first]
candidates_0 = pd.DataFrame({
    "ad_id": kept_ad[first], "bid ($)": bids_0, "selector rank": np.arange(1, first.sum() + 1),
    "pCTR": pctr_0, "eCPM ($ per impression)": bids_0 * pctr_0,
})
candidates_0["model rank"] = candidates_0["eCPM ($ per impression)"].rank(
    ascending=False, method="first").astype(int)
candidates_0.set_index("ad_id").round(4)

# %% [markdown]
# The model reorders the selector's list: it knows who the user is and what
# the page is about, the selector only knows the ad. How much did it learn about
# position? Score the same candidates at each slot:

# %%
by_slot = {p: make_features(world, users_k, kept_ad, pubs_k, hours_k, p)
           for p in range(1, world.config.n_slots + 1)}
position_effect = pd.DataFrame({
    "model: mean pCTR / pCTR at slot 1": [
        np.mean(model.predict(f) / pctr_k) for f in by_slot.values()],
    "world: examine(position)": world.examine(np.arange(1, world.config.n_slots + 1)),
}, index=pd.Index(list(by_slot), name="position"))
position_effect.round(3)

# %% tags=["remove-cell"]
glue("serving_position", f"{SERVING_POSITION}", display=False)
glue("pred_moved", f"{(candidates_0['model rank'] != candidates_0['selector rank']).sum()}",
     display=False)
glue("pred_last_ratio", f"{position_effect.iloc[-1, 0]:.2f}", display=False)
glue("pred_last_examine", f"{position_effect.iloc[-1, 1]:.2f}", display=False)

# %% [markdown]
# {glue:text}`pred_moved` of the {glue:text}`sel_k` candidates change rank.
# The model puts the last slot at {glue:text}`pred_last_ratio` of the top
# slot's click probability; the world's examination probability there is
# {glue:text}`pred_last_examine`. The position feature absorbed the position
# effect, which is what lets serving switch it off.

# %% [markdown]
# ## 5. The auction
#
# `run_auction(bids, pctr, n_slots, reserve)` ranks the candidates by
# {term}`eCPM` = bid x pCTR (dollars per impression; per thousand it is 1000
# times that), drops those below the {term}`reserve price`, and charges each
# winner the {term}`generalized second price`: per click,
# `max(next eligible eCPM, reserve) / own pCTR`, never above its bid. Four
# candidates make the rules concrete.

# %%
example = pd.DataFrame({"bid ($ per click)": [2.00, 1.00, 4.00, 0.50],
                        "pCTR": [0.05, 0.20, 0.02, 0.10]}, index=list("ABCD"))
example["eCPM ($ per impression)"] = example["bid ($ per click)"] * example["pCTR"]
example.round(3)


# %%
def auction_row(bids, n_slots, reserve=0.0):
    """Who takes each slot and at what price, and who the reserve keeps out."""
    result = run_auction(bids, example["pCTR"], n_slots, reserve)
    row = {f"slot {s + 1}": f"{example.index[c]} pays ${p:.2f}"
           for s, (c, p) in enumerate(zip(result.slots, result.prices, strict=True))}
    below = example.index[np.asarray(bids) * example["pCTR"] < reserve]
    row["below reserve"] = ", ".join(below) or "-"
    return row, result


bids = example["bid ($ per click)"].to_numpy()
raised = bids.copy()
raised[1] = 3.00   # B triples its bid
cases = {"2 slots": auction_row(bids, 2), "2 slots, reserve $0.09": auction_row(bids, 2, 0.09),
         "1 slot": auction_row(bids, 1), "2 slots, B bids $3.00": auction_row(raised, 2)}
pd.DataFrame({name: row for name, (row, _) in cases.items()}).T.fillna("empty")

# %% tags=["remove-cell"]
res = {name: result for name, (_, result) in cases.items()}
glue("auc_b_price", f"${res['2 slots'].prices[0]:.2f}", display=False)
glue("auc_a_price", f"${res['2 slots'].prices[1]:.2f}", display=False)
glue("auc_a_reserve", f"${res['2 slots, reserve $0.09'].prices[1]:.2f}", display=False)
glue("auc_one_slot", f"${res['1 slot'].prices[0]:.2f}", display=False)
glue("auc_raised", f"${res['2 slots, B bids $3.00'].prices[0]:.2f}", display=False)
assert res["2 slots, B bids $3.00"].prices[0] == res["2 slots"].prices[0]

# %% [markdown]
# Read the table row by row:
#
# - **Ranking by eCPM.** C bids the most but is rarely clicked; B bids little
#   but is clicked often. B's eCPM is the highest, so B takes slot 1, then A.
# - **GSP prices.** B pays A's eCPM over its own pCTR, {glue:text}`auc_b_price`
#   per click: the least it could have bid and kept slot 1. A pays C's eCPM over
#   A's pCTR, {glue:text}`auc_a_price`. Both are below their bids.
# - **A reserve.** At a reserve eCPM of $0.09, C and D cannot be shown, so
#   nobody eligible is left below A: A now pays the floor, reserve / own pCTR,
#   {glue:text}`auc_a_reserve` instead of {glue:text}`auc_a_price`.
# - **One slot** is a second-price auction on eCPM: B pays
#   {glue:text}`auc_one_slot`, the runner-up's eCPM converted to B's clicks.
# - **Raising your own bid** changes nothing while you keep your slot: B
#   tripled its bid and still pays {glue:text}`auc_raised`. A winner's price is
#   set by the ads below it, never by its own bid.
#
# The serving path calls the same rules on the model's pCTRs. Here is the
# auction of the request from the previous sections, with its
# {glue:text}`sel_k` candidates and {glue:text}`n_slots` slots:

# %%
live = run_auction(bids_0, pctr_0, n_slots=world.config.n_slots)
pd.DataFrame({"ad_id": kept_ad[first][live.slots], "bid ($)": bids_0[live.slots],
              "pCTR": pctr_0[live.slots], "eCPM ($)": live.ecpm,
              "price per click ($)": live.prices},
             index=pd.Index(np.arange(1, len(live.slots) + 1), name="slot")).round(4)

# %% tags=["remove-cell"]
glue("n_slots", f"{world.config.n_slots}", display=False)

# %% [markdown]
# ## 6. Pacing: the same day with and without it
#
# `AdServer` wires the index, the selector, the features, the model and the
# auction into one serving path. `simulate_day` plays a day of
# {glue:text}`day_requests` requests through it in steps of
# {glue:text}`step_minutes` minutes: the {term}`pacing` controller sets each
# campaign's participation rate, the server serves the step's requests, the
# world draws clicks, and the clicks that have arrived are billed, never above a
# campaign's budget. The same seed gives the same requests, so the two runs
# differ only by pacing.

# %%
server = AdServer(world, model, ad_stats, k=K)
days, seconds = {}, {}
for pacing in (True, False):
    start = time.perf_counter()
    days[pacing] = simulate_day(world, server, 0, np.random.default_rng(SEED),
                                SimulationConfig(pacing=pacing))
    seconds[pacing] = time.perf_counter() - start
paced, unpaced = days[True], days[False]
pd.Series({"paced": seconds[True], "unpaced": seconds[False]},
          name="seconds per simulated day").round(1).to_frame()

# %% [markdown]
# Pacing matters for the campaigns whose demand exceeds their budget. Find them
# in the unpaced run: those that spent (almost) all of it.

# %%
budgets = world.campaigns["daily_budget"].to_numpy()
limited = unpaced.spend >= 0.999 * budgets
share_paced = paced.spend[limited] / budgets[limited]
hours = np.arange(1, paced.pacer.n_steps + 1) * 24 / paced.pacer.n_steps
cum_unpaced = np.cumsum(unpaced.pacer.spend_by_step[:, limited], axis=0) / budgets[limited]
cum_paced = np.cumsum(paced.pacer.spend_by_step[:, limited], axis=0) / budgets[limited]
reached = cum_unpaced >= 0.999      # billed by the pacer's steps (not after midnight)
ran_out = np.where(reached.any(axis=0), hours[reached.argmax(axis=0)], 24.0)
final = [unpaced.spend[limited] / budgets[limited], share_paced]
peak = world.config.peak_hour
delivery = pd.DataFrame({
    "mean share of budget spent": [f.mean() for f in final],
    "ended within 95-100% of budget": [np.mean((f >= 0.95) & (f <= 1 + 1e-9)) for f in final],
    f"out of budget before the {peak}:00 peak": [
        np.mean(cum[hours == peak][0] >= 0.999) for cum in (cum_unpaced, cum_paced)],
}, index=["unpaced", "paced"])
delivery.map(pct)

# %% tags=["hide-input"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.4), width_ratios=[1.3, 1])
plan = paced.pacer.planned_spend[:, limited][:, 0] / budgets[limited][0]
ax1.plot(hours, plan, "--", color="0.3", label="plan: traffic so far")
for cum, name, color in [(cum_unpaced, "unpaced", "C3"), (cum_paced, "paced", "C0")]:
    low, mid, high = np.percentile(cum, [10, 50, 90], axis=1)
    ax1.fill_between(hours, low, high, color=color, alpha=0.2, lw=0)
    ax1.plot(hours, mid, color=color, label=f"{name}: median, 10-90%")
ax1.set(title=f"Spend of the {limited.sum()} budget-limited campaigns",
        xlabel="hour of day", ylabel="share of daily budget spent", xlim=(0, 24),
        xticks=range(0, 25, 6))
plots.percent_axis(ax1)
ax1.legend(loc="lower right", fontsize=8)
hourly = {name: day.pacer.spend_by_step[:, limited].sum(axis=1).reshape(24, -1).sum(axis=1)
          for name, day in [("unpaced", unpaced), ("paced", paced)]}
ax2.bar(np.arange(24) + 0.5, budgets[limited].sum() * world.hourly_traffic(), width=1.0,
        color="0.85", label="plan: budget x traffic")
for name, color in [("unpaced", "C3"), ("paced", "C0")]:
    ax2.step(np.arange(25), np.r_[hourly[name], hourly[name][-1]], where="post", color=color,
             label=name)
ax2.set(title="Their spend per hour", xlabel="hour of day", ylabel="spend ($ per hour)",
        xlim=(0, 24), xticks=range(0, 25, 6))
ax2.legend(loc="upper left", fontsize=8)
glue("fig_pacing", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
in_range = (share_paced >= 0.95) & (share_paced <= 1.0 + 1e-9)
steps = paced.pacer.n_steps
glue("day_requests", f"{paced.n_requests:,}", display=False)
glue("step_minutes", f"{24 * 60 // steps}", display=False)
glue("pace_before_peak", pct(delivery.iloc[0, 2], 0), display=False)
unbilled = {p: days[p].impressions["unbilled"].sum() for p in days}
revenue = {p: days[p].impressions["charged"].sum() for p in days}
glue("pace_limited", f"{limited.sum()}", display=False)
median_out = np.median(ran_out)
glue("pace_ran_out", f"{int(median_out)}:{round(60 * (median_out % 1)):02d}", display=False)
glue("pace_in_range", pct(in_range.mean()), display=False)
glue("pace_min_share", pct(share_paced.min()), display=False)
glue("pace_max_share", pct(share_paced.max(), 2), display=False)
glue("pace_unbilled", f"${unbilled[True]:,.0f}", display=False)
glue("pace_unbilled_unpaced", f"${unbilled[False]:,.0f}", display=False)
glue("pace_unbilled_share", pct(unbilled[True] / budgets[limited].sum(), 2), display=False)
glue("pace_unbilled_unpaced_share", pct(unbilled[False] / budgets[limited].sum(), 1),
     display=False)
glue("pace_revenue", f"${revenue[True]:,.0f}", display=False)
glue("pace_revenue_unpaced", f"${revenue[False]:,.0f}", display=False)
glue("pace_revenue_gain", pct(revenue[True] / revenue[False] - 1), display=False)
glue("pace_seconds", f"{seconds[True]:.1f}", display=False)
served = {p: days[p].impressions["campaign_id"].nunique() for p in days}
glue("pace_served", f"{served[True]}", display=False)
glue("pace_served_unpaced", f"{served[False]}", display=False)

# %% [markdown]
# ```{glue:figure} fig_pacing
# :name: fig-step4-pacing
#
# The campaigns whose unpaced demand exhausts their budget, the same day played
# with and without pacing. Left: cumulative spend as a share of each budget
# against the plan (budget x share of the day's traffic so far). Right: their
# total spend in each hour against the plan's hourly share.
# ```
#
# **Takeaway:** unpaced, budgets run out in a cascade, the strongest bidders
# first; the median campaign is out of money by {glue:text}`pace_ran_out` and
# {glue:text}`pace_before_peak` of them are gone before the evening peak.
# Paced, spend follows traffic all day.
#
# Of the {glue:text}`pace_limited` budget-limited campaigns,
# {glue:text}`pace_in_range` end the paced day within 95-100% of their budget
# (lowest {glue:text}`pace_min_share`, highest {glue:text}`pace_max_share`:
# never above). Throttling the strong campaigns also lets others in:
# {glue:text}`pace_served` campaigns showed ads on the paced day,
# {glue:text}`pace_served_unpaced` on the unpaced one.
#
# Clicks arrive minutes after the impression, so a campaign can still be shown
# after its last billable click: those clicks are **unbilled overdelivery**,
# delivered free in slots that another advertiser would have paid for. Paced,
# they come to {glue:text}`pace_unbilled` ({glue:text}`pace_unbilled_share` of
# the limited campaigns' budgets); unpaced, where campaigns hit their budget at
# full speed, {glue:text}`pace_unbilled_unpaced`
# ({glue:text}`pace_unbilled_unpaced_share`). Revenue is
# {glue:text}`pace_revenue` paced against {glue:text}`pace_revenue_unpaced`
# unpaced ({glue:text}`pace_revenue_gain` more): a campaign that ran dry at
# lunchtime no longer sets anyone's second price in the evening.

# %% [markdown]
# ## 7. The event log and the join
#
# Every impression the server shows is logged with what a trainer and an
# analyst need later. The columns, by group:

# %%
imp, clicks = paced.impressions, paced.clicks
column_groups = {
    "request context": ["impression_id", "request_id", "time", "day", "hour", "user_id",
                        "publisher_id", "device"],
    "ad and slot": ["ad_id", "campaign_id", "position"],
    "auction": ["bid", "pctr", "price", "model_version"],
    "features as served": [c for c in imp.columns if c.startswith("f_")],
    "billing (end of day)": ["charged", "unbilled"],
    "ground truth (simulation only)": ["true_p"],
}
assert sorted(sum(column_groups.values(), [])) == sorted(imp.columns)
pd.Series({group: ", ".join(cols) for group, cols in column_groups.items()},
          name="columns").to_frame()

# %%
imp[["impression_id", "time", "ad_id", "position", "bid", "pctr", "price",
     "model_version", "f_position", "f_user_topic_interest"]].head().round(4)

# %% [markdown]
# `pctr` is the slot-1 prediction the auction used; `f_position` is the slot
# the ad was shown in, the row a trainer needs. The logged features are exactly
# what `make_features` gives for that slot, so training on them cannot skew:

# %%
head = imp.head(5_000)
logged = head.filter(like="f_").rename(columns=lambda c: c.removeprefix("f_"))
recomputed = make_features(world, head["user_id"], head["ad_id"], head["publisher_id"],
                           head["hour"], head["position"])
pd.testing.assert_frame_equal(logged, recomputed)

# %% [markdown]
# Clicks come back as events, in the order they arrive: after a delay, out of
# impression order, some twice, some after midnight.

# %%
clicks.head()

# %% tags=["remove-cell"]
glue("ev_events", f"{len(clicks):,}", display=False)
glue("ev_clicked", f"{clicks['impression_id'].nunique():,}", display=False)
glue("ev_after_midnight", f"{(clicks['click_time'] > SECONDS_PER_DAY).sum():,}",
     display=False)
glue("ev_out_of_order", pct((np.diff(clicks["impression_id"]) < 0).mean(), 0), display=False)

# %% [markdown]
# The day produced {glue:text}`ev_events` click events for
# {glue:text}`ev_clicked` distinct impressions; {glue:text}`ev_after_midnight`
# arrived after midnight, and {glue:text}`ev_out_of_order` of events name an
# earlier impression than the event before them. `join_clicks` attributes each
# event to the impression it names, keeps the first click of each impression,
# and labels it positive if that click came within the {term}`attribution window`
# of one hour. Its report accounts for every event exactly once.

# %%
WINDOW = 3600
labelled, join = join_clicks(imp, clicks, WINDOW)
assert join.attributed + join.late + join.duplicates + join.orphans == join.click_events
pd.Series(dataclasses.asdict(join), name="click events").to_frame()

# %% [markdown]
# A nightly job that runs at midnight cannot label everything: an impression
# shown at 23:30 may still be clicked at 00:10. `training_data` labels only
# impressions whose window has closed, from the clicks received by then.

# %%
features, labels = training_data(imp, clicks, WINDOW, as_of=SECONDS_PER_DAY)
waiting = imp["time"] + WINDOW > SECONDS_PER_DAY
assert len(features) == len(imp) - waiting.sum()
pd.Series({"labelled rows": len(features), "positives": int(labels.sum()),
           "held back (window still open)": int(waiting.sum()),
           "held back, shown from": time.strftime(
               "%H:%M:%S", time.gmtime(imp.loc[waiting, "time"].min()))},
          name="training data at midnight").to_frame()

# %% tags=["remove-cell"]
glue("ev_attributed", f"{join.attributed:,}", display=False)
glue("ev_late", f"{join.late:,}", display=False)
glue("ev_duplicates", f"{join.duplicates:,}", display=False)
glue("ev_orphans", f"{join.orphans:,}", display=False)
glue("ev_held", f"{waiting.sum():,}", display=False)
glue("ev_held_share", pct(waiting.mean()), display=False)
glue("ev_rows", f"{len(features):,}", display=False)

# %% [markdown]
# {glue:text}`ev_attributed` impressions are positives,
# {glue:text}`ev_late` first clicks came after the window (negatives, by the
# rule), {glue:text}`ev_duplicates` duplicate events counted once and
# {glue:text}`ev_orphans` events named no logged impression. At midnight the
# job writes {glue:text}`ev_rows` rows and holds back
# {glue:text}`ev_held` ({glue:text}`ev_held_share`), the last hour's
# impressions: the next night labels them. Labelling them now would turn every
# click still in flight into a false negative.

# %% [markdown]
# ## 8. The daily report
#
# `adsys.report.day_report` condenses a day into the numbers a team reads the
# next morning: online metrics, budget delivery, and the model's quality on
# the impressions it served, next to the {term}`oracle log loss` of the world's
# true click probabilities.

# %%
daily = pd.DataFrame({"paced": report.day_report(paced, WINDOW),
                      "unpaced": report.day_report(unpaced, WINDOW)})
shown_rows = [r for r in daily.index if not r.startswith("seconds_")]
daily.loc[shown_rows].map(lambda v: f"{v:,.0f}" if float(v).is_integer() else f"{v:,.4f}")

# %% tags=["remove-cell"]
day = daily["paced"]
glue("rep_ctr", pct(day["ctr"], 2), display=False)
glue("rep_rpm", f"${day['rpm']:.2f}", display=False)
glue("rep_model", f"{day['model_log_loss']:.4f}", display=False)
glue("rep_oracle", f"{day['oracle_log_loss']:.4f}", display=False)
glue("rep_gap", pct(day["model_log_loss"] / day["oracle_log_loss"] - 1), display=False)
glue("rep_calibration", f"{day['model_calibration']:.2f}", display=False)
glue("rep_auc", f"{day['model_auc']:.3f}", display=False)
glue("rep_95", f"{int(day['campaigns_spending_95_to_100_percent'])}", display=False)
glue("rep_served", f"{int(day['campaigns_served'])}", display=False)

# %% [markdown]
# On the paced day the system showed ads at a {term}`CTR` of
# {glue:text}`rep_ctr` and earned {glue:text}`rep_rpm` per thousand requests.
# The v0 model's log loss is {glue:text}`rep_model` against the oracle's
# {glue:text}`rep_oracle`, {glue:text}`rep_gap` above the floor no model can
# beat, with AUC {glue:text}`rep_auc`. {glue:text}`rep_95` of the
# {glue:text}`rep_served` campaigns served spent 95% or more of their budget.
#
# The model's {term}`calibration` ratio on the shown ads is
# {glue:text}`rep_calibration`, although it was trained on random traffic. Is
# that the model, or the ads it was asked about? Compare its predictions with
# the world's true click probabilities (no click noise, no late clicks) on a
# fresh random-server log and on the ads the auction picked:

# %%
fresh = serve_random(world, day=0, n_requests=20_000, rng=np.random.default_rng(SEED + 1))
fresh_p = model.predict(make_features(world, fresh["user_id"], fresh["ad_id"],
                                      fresh["publisher_id"], fresh["hour"], fresh["position"]))
served_p = model.predict(imp.filter(like="f_").rename(columns=lambda c: c.removeprefix("f_")))
selection = pd.Series({
    "random ads (fresh random-server log)": fresh_p.sum() / fresh["true_p"].sum(),
    "ads the auction picked (paced day)": served_p.sum() / imp["true_p"].sum(),
}, name="sum of pCTR / sum of true P(click)")
selection.round(3).to_frame()

# %% tags=["remove-cell"]
glue("cal_random", f"{selection.iloc[0]:.2f}", display=False)
glue("cal_served", f"{selection.iloc[1]:.2f}", display=False)

# %% [markdown]
# On random ads the model predicts {glue:text}`cal_random` times the true
# clicks; on the ads it helped pick, {glue:text}`cal_served` times. The auction
# favours candidates whose pCTR errs high, so a model over-predicts on its own
# winners: a selection effect that offline evaluation on random logs cannot
# see. Step 6 measures it and recalibrates.
#
# The report's figures show spend against the plan and CTR through the day:

# %% tags=["hide-input"]
fig_spend = report.spend_figure(paced)
glue("fig_report_spend", fig_spend, display=False)
plt.close(fig_spend)
fig_ctr = report.ctr_figure([paced])
glue("fig_report_ctr", fig_ctr, display=False)
plt.close(fig_ctr)
ctr_by_hour = report.billed_log(paced)["clicked"].groupby(paced.impressions["hour"]).mean()
glue("rep_ctr_low", f"{pct(ctr_by_hour.min(), 2)} at {ctr_by_hour.idxmin()}:00", display=False)
glue("rep_ctr_high", f"{pct(ctr_by_hour.max(), 2)} at {ctr_by_hour.idxmax()}:00", display=False)

# %% [markdown]
# ```{glue:figure} fig_report_spend
# :name: fig-step4-report-spend
#
# The daily report's spend figure: total spend of the campaigns that used 95%
# or more of their budget on the paced day, against the sum of their plans.
# ```
#
# **Takeaway:** in aggregate the pacer tracks the plan through the quiet night
# and the evening peak alike.
#
# ```{glue:figure} fig_report_ctr
# :name: fig-step4-report-ctr
#
# The daily report's CTR figure: click-through rate of the shown ads in each
# hour of the paced day.
# ```
#
# **Takeaway:** the CTR of the shown ads runs from {glue:text}`rep_ctr_low` to
# {glue:text}`rep_ctr_high`; this daily shape is the baseline tomorrow's report
# is read against.
#
# Outside the notebook, the same loop runs from the command line, several days
# in a row, retraining the model every night on the closed impressions:
#
# ```bash
# python -m adsys simulate --days 2 --seed 0 --out out/
# ```
#
# It writes `impressions.csv.gz` and `clicks.csv.gz` (the logs),
# `report.json` (one `day_report` per day) and `spend.png` / `ctr.png` (the
# two figures above, for the last day) into `out/`; the same seed writes the
# same bytes. Two full days and a nightly retrain take longer than a lab should,
# so the command is shown here, not run.

# %% [markdown]
# ## 9. Exercises
#
# Each exercise names the variable to fill in; the cell after it checks your
# answer and explains what is wrong if it is not right yet.

# %%
exercise = pd.DataFrame({"bid": [1.20, 0.50, 2.50, 0.40],
                         "pctr": [0.05, 0.16, 0.012, 0.11]})
EX_SLOTS, EX_RESERVE = 2, 0.05
exercise.round(3)

# %% [markdown]
# ```{exercise} GSP prices by hand
# :label: ex-step4-gsp-prices
#
# The page has 2 slots and a reserve eCPM of $0.05 (bid x pCTR, dollars per
# impression). Without calling `run_auction`, compute what each winner of the
# `exercise` candidates pays per click: a list `prices`, one value per filled
# slot, slot 1 first.
# ```

# %% [markdown]
# ```{solution-start} ex-step4-gsp-prices
# :class: dropdown
# ```

# %%
ecpm = exercise["bid"] * exercise["pctr"]
ranked = ecpm[ecpm >= EX_RESERVE].sort_values(ascending=False)
winners = ranked.index[:EX_SLOTS]
thresholds = [max(ranked.iloc[s + 1] if s + 1 < len(ranked) else 0.0, EX_RESERVE)
              for s in range(len(winners))]
prices = [t / exercise.loc[w, "pctr"] for t, w in zip(thresholds, winners, strict=True)]

# %% [markdown]
# ```{solution-end}
# ```

# %%
step4.gsp_prices(prices, exercise["bid"], exercise["pctr"], EX_SLOTS, EX_RESERVE)

# %% [markdown]
# The usual mistakes: charging the next ad's *bid* (ads are ranked by eCPM, so
# the threshold is an eCPM, turned into a price per click with the winner's own
# pCTR), charging the winner its own bid (first price), or forgetting that the
# reserve is also a floor on the price.

# %%
ex_campaign = int(np.flatnonzero(limited)[np.argmax(budgets[limited])])
ex_budget = float(budgets[ex_campaign])
pd.Series({"campaign": ex_campaign, "daily budget ($)": ex_budget}).to_frame("exercise")

# %% [markdown]
# ```{exercise} The pacing plan at 18:00
# :label: ex-step4-pacing-plan
#
# Campaign `ex_campaign`, the largest of the budget-limited campaigns, has a
# daily budget of `ex_budget` dollars. How much does its pacing plan allow it
# to have spent by 18:00? Use the world's expected traffic per hour,
# `world.hourly_traffic()` (24 shares, hour 0 first), and call the answer
# `planned_spend`, in dollars.
# ```

# %% [markdown]
# ```{solution-start} ex-step4-pacing-plan
# :class: dropdown
# ```

# %%
hourly_traffic = world.hourly_traffic()
planned_spend = ex_budget * hourly_traffic[:18].sum()
# The pacer's own plan at the end of its last step before 18:00 agrees.
assert np.isclose(planned_spend,
                  paced.pacer.planned_spend[18 * (paced.pacer.n_steps // 24) - 1, ex_campaign])

# %% [markdown]
# ```{solution-end}
# ```

# %%
step4.pacing_plan(planned_spend, ex_budget, world.hourly_traffic(), by_hour=18)

# %% [markdown]
# ```{exercise} Positives with a 10-minute window
# :label: ex-step4-window-positives
#
# A training job runs at midnight (`as_of = SECONDS_PER_DAY`) on the paced
# day's `imp` and `clicks`, with a 10-minute attribution window. How many
# positive labels does it write? Call the answer `n_positives`. Only
# clicks received by midnight are known, each impression counts once, and an
# impression is labelled only once its window has closed.
# ```

# %% [markdown]
# ```{solution-start} ex-step4-window-positives
# :class: dropdown
# ```

# %%
as_of = SECONDS_PER_DAY
window_10min = 600
received = clicks[clicks["click_time"] <= as_of]
first_click = received.groupby("impression_id")["click_time"].min()
click_delay = imp["impression_id"].map(first_click) - imp["time"]
window_closed = imp["time"] + window_10min <= as_of
n_positives = int(((click_delay <= window_10min) & window_closed).sum())
# The package's training-data generator writes the same labels.
assert n_positives == training_data(imp, clicks, window_10min, as_of)[1].sum()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step4.window_positives(n_positives, imp, clicks, window_seconds=600,
                       as_of=SECONDS_PER_DAY)

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# - **Draw both paths.** The request path: ads index (targeting, budget left),
#   a cheap selector keeping the top K, the calibrated click model, the
#   auction. The feedback path: impression log, click join, training data,
#   retraining. Here the index left a median of {glue:text}`idx_median`
#   eligible ads per request and the selector passed {glue:text}`sel_k` to the
#   model.
# - **Name the auction precisely.** Rank by eCPM = bid x pCTR; charge
#   generalized second price per click, `max(next eCPM, reserve) / own pCTR`,
#   never above the bid; a winner's price does not move with its own bid.
# - **Pace budgets.** Without pacing the median budget-limited campaign was out
#   of money by {glue:text}`pace_ran_out`; throttled, {glue:text}`pace_in_range`
#   of them ended within 95-100% of budget, never above, and revenue went up
#   {glue:text}`pace_revenue_gain`. Late clicks past the budget are unbilled
#   overdelivery; say you would measure it.
# - **Generate labels carefully.** Log the features as served, join clicks by
#   impression id, count duplicates once, and label only closed windows
#   ({glue:text}`ev_held` impressions waited for the next night here).
# - **Quote the floor.** The v0 model is {glue:text}`rep_gap` above the oracle
#   log loss; its calibration on its own winners ({glue:text}`rep_calibration`)
#   is the next thing to fix. One simulated day of {glue:text}`day_requests`
#   requests ran through the whole loop in {glue:text}`pace_seconds` seconds
#   here.
# ```
