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
# # Lab 4.1: build the blueprint's components
#
# The {doc}`concept page <../book/step4_blueprint>` drew the ad system as boxes
# and arrows. This lab builds every box of the request path from the `adsys`
# package on the course's default world, one at a time, and looks inside each.
# {doc}`Lab 4.2 <04_day>` then wires them together and plays a day of traffic
# through the whole loop.
#
# ```{admonition} What you will build
# :class: note
# - The **ads index**: which ads may be shown to a request, by targeting and
#   remaining budget.
# - The platform's **history**: what it knows about users and ads, learned from
#   its own logs (page views before launch, then a random bootstrap log).
# - The **selector**: a light, user-aware model that keeps the top K of the
#   eligible ads, and what it does with an ad it has never seen.
# - The **features**: one function for training and serving, with the position
#   fixed at serving.
# - **Prediction v0**: a logistic-regression click model trained on the bootstrap
#   log.
# - The **auction**: worked examples of eCPM ranking, second prices and a reserve,
#   and a reserve price you choose from the market's revenue and fill curve.
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

from adsys import plots
from adsys.auction import run_auction, run_auctions
from adsys.baseline import serve_random
from adsys.checks import step4
from adsys.events import join_clicks
from adsys.features import SERVING_POSITION, make_features
from adsys.history import PRIOR_STRENGTH, History
from adsys.index import AdIndex
from adsys.prediction import LogisticClickModel
from adsys.selection import LIGHT_FEATURES, LightModel, Selector
from adsys.simulate import SimulationConfig
from adsys.world import World

plots.style()
SEED = 0
world = World(seed=SEED)
view = world.view          # all a platform component ever receives
campaign_of = view.ads["campaign_id"].to_numpy()
max_cpc = view.campaigns["max_cpc"].to_numpy()


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
# has budget left; interest-targeted ads then also need the user to have
# *declared* that interest, since declarations are all the platform knows.
#
# First the single-request path: the eligible ads for one user.

# %%
index = AdIndex(view)
requests = world.requests(0, np.random.default_rng(SEED), n=20_000)
user = int(requests.user[0])
eligible_one = index.eligible_for(user, day=0)
profile = {kind: view.label(kind, [view.users.loc[user, kind]])[0]
           for kind in ["region", "age_band", "device"]}
declared = np.flatnonzero(view.declared(np.full(len(view.topics), user),
                                        np.arange(len(view.topics))))
pd.Series({**profile, "declared interests": ", ".join(view.label("topic", declared)),
           "eligible ads": len(eligible_one), "first ids": eligible_one[:6].tolist()},
          name=f"user {user}").to_frame()

# %% [markdown]
# The batch path answers a whole batch of requests at once: aligned arrays of
# (request position, ad id) pairs. It shares its code with the single-request
# path, and both must agree with the targeting rule itself (`index.matches`).

# %%
request_pos, ad_id = index.eligible(requests, day=0)
per_request = np.bincount(request_pos, minlength=len(requests))
active = np.flatnonzero(view.active_ads(0))
agreement = pd.Series({
    "single-request path = batch rows (first 200 requests)": all(
        np.array_equal(index.eligible_for(int(requests.user[i]), 0),
                       np.sort(ad_id[request_pos == i])) for i in range(200)),
    "every pair passes the campaign's targeting": bool(
        index.matches(requests.user[request_pos], ad_id).all()),
    "user gets every active ad whose targeting matches": bool(
        index.matches(np.full(len(active), user), active).sum() == len(eligible_one)),
}, name="holds")
assert agreement.all()
agreement.to_frame()

# %% [markdown]
# Budget is the other filter. When a campaign runs out, the pacer marks it in
# `has_budget` and its ads leave the index's answers at once.

# %%
has_budget = np.ones(view.n_campaigns, dtype=bool)
broke = campaign_of[eligible_one[0]]
has_budget[broke] = False
without = index.eligible_for(user, day=0, has_budget=has_budget)
removed = np.setdiff1d(eligible_one, without)
assert (campaign_of[removed] == broke).all()
pd.Series({"eligible with every budget": len(eligible_one),
           f"eligible without campaign {broke}": len(without),
           "removed ad ids": removed.tolist()}, name="ads").to_frame()

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
age = view.label("age_band", view.users["age_band"].to_numpy()[requests.user])
by_age = pd.Series(per_request).groupby(age).median()
ends, middle = by_age[["18-24", "65+"]].max(), by_age[["25-34", "35-44", "45-54"]].min()
glue("idx_age_sentence",
     f"The youngest and oldest users are eligible for fewer ads (median {ends:.0f} or "
     f"fewer, against at least {middle:.0f} for ages 25-54): advertisers target "
     "contiguous age ranges, which leave out the ends more often than the middle."
     if ends < middle else
     f"Age matters little: the median ranges from {by_age.min():.0f} to "
     f"{by_age.max():.0f} eligible ads across age bands.", display=False)

# %% [markdown]
# User {glue:text}`idx_user` may see {glue:text}`idx_n_one` ads. Switching off
# campaign {glue:text}`idx_broke` removes its {glue:text}`idx_removed` ad(s) from
# the answer and nothing else. How many ads survive targeting for a typical
# request?

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 3.0))
ax.hist(per_request, bins=np.arange(per_request.min(), per_request.max() + 6, 5),
        color="C0")                      # 5 whole counts per bin
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
# **Takeaway:** targeting is a weak filter: the median request is eligible for
# {glue:text}`idx_median` ads ({glue:text}`idx_share` of the
# {glue:text}`idx_active` active ads; 10th to 90th percentile
# {glue:text}`idx_p10`-{glue:text}`idx_p90`).
# {glue:text}`idx_age_sentence`
#
# Can the heavy model score them all within the latency budget? In production it
# cannot: an index leaves many thousands of eligible ads per request, for models
# that cost far more per candidate than ours, so a cheap stage must cut the list
# first. That is the selector's job. This toy world is small; section 5 times
# our heavy model on the busiest request.

# %% [markdown]
# ## 2. What the platform knows: its history
#
# The platform never sees a user's true interests or an ad's true quality; it
# counts. `adsys.history.History` holds, from the platform's own logs: page views
# per user and topic (publishers' readers were there before the ads), and
# impressions and clicks per ad and per (user, topic), counted only once an
# impression's attribution window has closed. Before launch no model exists to
# choose ads, so the first impressions come from the random server of Step 1:
# random eligible ads, no auction.

# %%
BROWSING_DAYS, N_BOOTSTRAP = SimulationConfig().browsing_days, 50_000
rng = np.random.default_rng(SEED)
history = History(view)
for _ in range(BROWSING_DAYS):                       # page views before ads launched
    before = world.requests(0, rng)
    history.add_views(before.user, before.publisher)
served = serve_random(world, day=0, n_requests=N_BOOTSTRAP, rng=rng, with_truth=False)
ids = np.arange(len(served))                          # the clicks reach the platform as
stream = world.click_stream(ids, served["time"],      # a stream (Step 3), late or twice
                            served.pop("clicked").to_numpy(bool), rng)
served.insert(0, "impression_id", ids)
boot_log, boot_join = join_clicks(served, stream, SimulationConfig().attribution_window)
boot_features = make_features(view, boot_log["user_id"], boot_log["ad_id"],
                              boot_log["publisher_id"], boot_log["hour"],
                              boot_log["position"], history, boot_log["exposures"])

# %% [markdown]
# The random server's clicks reach the platform as Step 3's click stream and label
# an impression only within the attribution window, as every label the platform
# learns from will ({glue:text}`hist_late` clicks came too late; every window has
# closed by launch). The features of the bootstrap log are computed *before* its
# own clicks are counted, so no row sees its own label. Then the log joins the
# history: its labels are final and its requests are page views too.

# %%
history.add(boot_log["user_id"], boot_log["ad_id"], boot_log["clicked"])
views = boot_log.drop_duplicates("request_id")
history.add_views(views["user_id"], views["publisher_id"])
share = history.tables()["user_topic_view_share"][user]
top_read = np.argsort(-share)[:3]
true_top = np.argsort(-world.interests[user])[:3]      # hidden: for comparison only
pd.DataFrame({"declared (profile)": pd.Series(view.label("topic", declared)),
              "most read (history)": pd.Series(view.label("topic", top_read)),
              "true top interests (world, hidden)": pd.Series(view.label(
                  "topic", true_top))}).fillna("")

# %% tags=["remove-cell"]
glue("hist_days", f"{BROWSING_DAYS}", display=False)
glue("hist_boot", f"{N_BOOTSTRAP:,}", display=False)
glue("hist_ctr", pct(boot_log["clicked"].mean(), 2), display=False)
glue("hist_late", f"{boot_join.late:,} of its {boot_join.late + boot_join.attributed:,}",
     display=False)
glue("hist_base", pct(history.base_rate, 2), display=False)

# %% [markdown]
# For user {glue:text}`idx_user` the platform has a declared profile and what they
# read over {glue:text}`hist_days` days of page views; the world's true interests
# sit next to them only because this is a simulation. The bootstrap log of
# {glue:text}`hist_boot` requests had a CTR of {glue:text}`hist_ctr`; the
# history's overall CTR (smoothed towards a prior) is {glue:text}`hist_base`.

# %% [markdown]
# ## 3. The selector
#
# The selector is the funnel's light stage. Its model, `LightModel`, is a
# logistic regression on six features that are each one table lookup away: the
# ad's historical CTR, the user's interest in the ad's topic (share of page views,
# CTR on that topic's ads, declared or not), how much the user clicks at all, and
# whether the page is about the ad's topic. Its score is a light eCPM, 1000 x bid x
# light pCTR, and the K best per request go on to the heavy model.

# %%
light = LightModel().fit(boot_features, boot_log["clicked"])
pd.Series(light.weights, name="weight").round(3).to_frame()

# %% tags=["remove-cell"]
zero = [name for name, weight in light.weights.items() if weight == 0]
assert {"ad_ctr_logit", "user_ctr_logit"} <= set(zero)
glue("sel_zero", ", ".join(zero), display=False)

# %% [markdown]
# The CTR features ({glue:text}`sel_zero`) get no weight, and that is by design:
# the bootstrap rows were featurized before any click was counted, so those
# features are 0 on every training row. Version 0 ranks by what the user reads
# and declared, the page and the bid; the first nightly retrain learns from rows
# logged with real click history (Lab 4.2 shows the command that runs it). The
# weights fold into one table per ad and one per (user, topic), so scoring a pair
# costs two lookups and an add. Here are the K candidates it keeps for the first
# request:

# %%
K = SimulationConfig().k
selector = Selector(view, history, light)
kept_pos, kept_ad = selector.select(requests, request_pos, ad_id, k=K)
first = kept_pos == 0
top = kept_ad[first]
light_ctr = selector.light_ctr(requests, kept_pos[first], top)
light_ecpm = selector.score(requests, kept_pos[first], top)
pd.DataFrame({"ad_id": top, "bid ($)": max_cpc[campaign_of[top]],
              "ad's past impressions": history.ad_impressions[top].astype(int),
              "light pCTR": light_ctr, "light eCPM ($ per 1,000)": light_ecpm,
              }).set_index("ad_id").round(4)

# %% [markdown]
# A new ad has no history. Its CTR features are 0, the log-odds of the
# platform's average CTR, so the selector scores it as an average ad for this
# user and page: it can still be picked, and learn. An ad with a few lucky
# impressions is shrunk towards the average by a prior of
# {glue:text}`sel_strength` pseudo-impressions, so it does not jump to the top.

# %%
tables = history.tables()
cold = np.flatnonzero(view.active_ads(0) & (history.ad_impressions == 0))
tomorrow = np.flatnonzero(view.ads["start_day"].to_numpy() == 1)
assert np.allclose(tables["ad_ctr_logit"][cold], 0)
assert np.allclose(tables["ad_ctr_logit"][tomorrow], 0)
raw = history.ad_clicks / np.maximum(history.ad_impressions, 1)
few = np.flatnonzero((history.ad_impressions > 0) & (history.ad_impressions <= 20)
                     & (history.ad_clicks > 0))
thin = few[np.argmax(raw[few])]
pd.DataFrame({"ads": [len(cold), len(tomorrow), 1],
              "raw CTR": [np.nan, np.nan, raw[thin]],
              "smoothed CTR": [history.ad_ctr()[cold].mean(),
                               history.ad_ctr()[tomorrow].mean(),
                               history.ad_ctr()[thin]]},
             index=["active today, never shown", "starting tomorrow",
                    f"ad {thin}: a few lucky impressions"]).round(4)

# %% tags=["remove-cell"]
glue("sel_strength", f"{PRIOR_STRENGTH:g}", display=False)
glue("sel_k", f"{K}", display=False)
glue("sel_cold", f"{len(cold)}", display=False)
glue("sel_tomorrow", f"{len(tomorrow)}", display=False)
glue("sel_thin_ad", f"{thin}", display=False)
n_thin = int(history.ad_clicks[thin])
glue("sel_thin_raw", f"{n_thin} click{'s' if n_thin > 1 else ''} in "
     f"{int(history.ad_impressions[thin])} impressions "
     f"({pct(raw[thin], 0)})", display=False)
glue("sel_thin_smooth", pct(history.ad_ctr()[thin]), display=False)
glue("sel_factor", f"{len(ad_id) / len(kept_ad):.0f}", display=False)
glue("sel_n_features", f"{len(LIGHT_FEATURES)}", display=False)

# %% [markdown]
# {glue:text}`sel_cold` active ads were never drawn in the bootstrap log, and
# {glue:text}`sel_tomorrow` ads start tomorrow; all score as average ads. Ad
# {glue:text}`sel_thin_ad` had {glue:text}`sel_thin_raw`; its smoothed CTR is
# {glue:text}`sel_thin_smooth`. Keeping K = {glue:text}`sel_k` per request cuts
# the pairs the heavy model must score by a factor of {glue:text}`sel_factor`.
#
# ```{admonition} Pitfall
# :class: warning
# A selector that ranks by observed CTR without a prior starves new ads: with
# no impressions they score zero, are never shown, and never get the
# impressions that would prove them. That is {term}`cold start` in one line of
# code.
# ```

# %% [markdown]
# ## 4. Features: one function for training and serving
#
# `make_features` turns aligned (user, ad, page, hour, position) arrays and the
# platform's history into the model's feature table. The server calls it on the
# selector's candidates with the position fixed to `SERVING_POSITION`; the trainer
# reads the same rows from the impression log, where they were written with the
# slot each ad was shown in.

# %%
users_k, pubs_k, hours_k = (requests.user[kept_pos], requests.publisher[kept_pos],
                            requests.hour[kept_pos])
serving = make_features(view, users_k, kept_ad, pubs_k, hours_k, SERVING_POSITION,
                        history)
serving.head(3).transpose()

# %% [markdown]
# A row's features do not depend on the batch it is computed in, so a single
# request at serving time gets exactly the row a batch would. Training rows carry
# their logged slot:

# %%
alone = make_features(view, users_k[[2]], kept_ad[[2]], pubs_k[[2]], hours_k[[2]],
                      SERVING_POSITION, history)
pd.testing.assert_frame_equal(alone, serving.iloc[[2]].reset_index(drop=True))
boot_features["position"].value_counts().sort_index().rename("training rows")

# %% [markdown]
# The model learns the position effect as a feature of its own instead of
# crediting it to the ads that happened to be on top ({term}`position bias`). At
# serving every candidate is scored at position {glue:text}`serving_position`:
# their pCTRs become comparable, and the auction, not the model, decides the
# slots.
#
# ```{admonition} In production
# :class: note
# Two implementations of "the same" feature (a SQL job for training, a service
# for serving) drift apart silently; that is {term}`training/serving skew`.
# One function, imported by both paths, and logging the features as served
# (Lab 4.2) are the two defences.
# ```

# %% [markdown]
# ## 5. Prediction v0
#
# The first heavy model is a logistic regression on those features, trained on
# the bootstrap log. (`adsys.simulate.bootstrap` wraps sections 2 to 5: page
# views, random log, features, both models.) Step 6 replaces it with LightGBM
# behind the same `fit` / `predict` interface.

# %%
model = LogisticClickModel().fit(boot_features, boot_log["clicked"])
pctr_k = model.predict(serving)
bids_0, pctr_0 = max_cpc[campaign_of[top]], pctr_k[first]
true_0 = world.click_probability(users_k[first], top, pubs_k[first], hours_k[first],
                                 SERVING_POSITION, day=0)      # hidden: analysis only
candidates_0 = pd.DataFrame({
    "ad_id": top, "bid ($)": bids_0, "selector rank": np.arange(1, first.sum() + 1),
    "pCTR": pctr_0, "true P(click) (world)": true_0,
    "eCPM ($ per 1,000)": 1000 * bids_0 * pctr_0})
candidates_0["model rank"] = candidates_0["eCPM ($ per 1,000)"].rank(
    ascending=False, method="first").astype(int)
candidates_0.set_index("ad_id").round(4)

# %% tags=["remove-cell"]
moved = candidates_0["model rank"] != candidates_0["selector rank"]
glue("pred_moved", f"{moved.sum()}", display=False)
ratio = pctr_0 / true_0
glue("pred_error", f"between {ratio.min():.1f} and {ratio.max():.1f} times",
     display=False)

# %% [markdown]
# The heavy model sees more than the selector (the demographics, the hour, the
# campaign and advertiser ids) and reorders the list: between the selector's order
# and the model's, {glue:text}`pred_moved` of the {glue:text}`sel_k` candidates
# change rank. Next to its pCTR is the world's true click probability, which no
# platform has: version 0, trained on {glue:text}`hist_boot` random requests,
# predicts {glue:text}`pred_error` the truth for this request's candidates, the
# kind of error nightly retraining and the models of Step 6 reduce. How much did it
# learn about position? Score the same candidates at each slot:

# %%
slots = np.arange(1, view.n_slots + 1)
by_slot = {p: make_features(view, users_k, kept_ad, pubs_k, hours_k, p, history)
           for p in slots}
position_effect = pd.DataFrame({
    "model: mean pCTR / pCTR at slot 1": [np.mean(model.predict(f) / pctr_k)
                                          for f in by_slot.values()],
    "world: examine(position)": world.examine(slots),
}, index=pd.Index(slots, name="position"))
position_effect.round(3)

# %% tags=["remove-cell"]
glue("serving_position", f"{SERVING_POSITION}", display=False)
glue("pred_last_ratio", f"{position_effect.iloc[-1, 0]:.2f}", display=False)
glue("pred_last_examine", f"{position_effect.iloc[-1, 1]:.2f}", display=False)
assert abs(position_effect.iloc[-1, 0] - position_effect.iloc[-1, 1]) < 0.05, \
    "the prose says the position feature absorbed the position effect"

# %% [markdown]
# The model puts the last slot at {glue:text}`pred_last_ratio` of the top
# slot's click probability; the world's examination probability there is
# {glue:text}`pred_last_examine`. The position feature absorbed the position
# effect, which is what lets serving switch it off.
#
# Section 1 asked whether the heavy model could score every eligible ad. Time
# it on the busiest request of the batch: features and prediction for all its
# eligible ads, repeated, against the {glue:text}`score_budget` p99 that Step 2
# gave the features and the heavy model together.

# %%
BUDGET_MS = 20.0                                  # Step 2: features + heavy model, p99
busiest = request_pos == np.argmax(per_request)   # the request with most eligible ads
req = request_pos[busiest]                       # its index in the batch, per pair


def score_all_ms() -> float:
    """Milliseconds to build features and predict for every eligible ad, once."""
    start = time.perf_counter()
    model.predict(make_features(view, requests.user[req], ad_id[busiest],
                                requests.publisher[req], requests.hour[req],
                                SERVING_POSITION, history))
    return 1000 * (time.perf_counter() - start)


score_ms = np.array([score_all_ms() for _ in range(200)])
pd.Series({"eligible ads": busiest.sum(), "median ms": np.median(score_ms),
           "p99 ms": np.percentile(score_ms, 99)}, name="score them all").round(2)

# %% tags=["remove-cell"]
score_p99 = np.percentile(score_ms, 99)
glue("score_budget", f"{BUDGET_MS:g} ms", display=False)
measured = (f"the v0 heavy model scored all {busiest.sum()} eligible ads of the "
            f"busiest of {len(requests):,} requests, features included, in "
            f"{score_p99:.1f} ms at p99")
if score_p99 <= BUDGET_MS:
    glue("score_all", f"On this machine {measured}, within the budget: in this toy "
         "world the heavy model could score every eligible ad in time, and the "
         "funnel saves work rather than making serving possible.", display=False)
    glue("score_all_page", f"in Lab 4.1 {measured}, within the {BUDGET_MS:g} ms that "
         "Step 2 gave features and the heavy model, so here the heavy model could "
         "score every eligible ad in time.", display=False)
    glue("score_say", "our heavy model could score them all in time, but a "
         "production index leaves many thousands, so the blueprint keeps a cheap "
         "first stage", display=False)
else:
    glue("score_all", f"On this machine {measured}, over the budget: even this toy "
         "world needs a cheaper first stage.", display=False)
    glue("score_all_page", f"in Lab 4.1 {measured}, over the {BUDGET_MS:g} ms that "
         "Step 2 gave features and the heavy model, so even this toy needs the "
         "selector.", display=False)
    glue("score_say", "already too many for the heavy model within the latency "
         "budget", display=False)

# %% [markdown]
# {glue:text}`score_all` Production inventories and models are what the
# blueprint is drawn for; {doc}`Step 5 <../book/step5_scale>` measures what the
# funnel costs and saves on this world.

# %% [markdown]
# ## 6. The auction
#
# `run_auction(bids, pctr, n_slots, reserve)` ranks the candidates by
# {term}`eCPM` = 1000 x bid x pCTR (dollars per thousand impressions), drops those
# below the {term}`reserve price` (an eCPM too), and charges each winner the
# {term}`generalized second price`: per click,
# `max(next eligible eCPM, reserve) / (1000 x own pCTR)`, never above its bid. Four
# candidates make the rules concrete.

# %%
example = pd.DataFrame({"bid ($ per click)": [2.00, 1.00, 4.00, 0.50],
                        "pCTR": [0.010, 0.030, 0.004, 0.020]}, index=list("ABCD"))
example["eCPM ($ per 1,000)"] = 1000 * example["bid ($ per click)"] * example["pCTR"]
example.round(3)


# %%
def auction_row(bids, n_slots, reserve=0.0):
    """Who takes each slot and at what price, and who the reserve keeps out."""
    result = run_auction(bids, example["pCTR"], n_slots, reserve)
    row = {f"slot {s + 1}": f"{example.index[c]} pays ${p:.2f}"
           for s, (c, p) in enumerate(zip(result.slots, result.prices, strict=True))}
    below = example.index[1000 * np.asarray(bids) * example["pCTR"] < reserve]
    row["below reserve"] = ", ".join(below) or "-"
    return row, result


bids = example["bid ($ per click)"].to_numpy()
raised = bids.copy()
raised[1] = 3.00   # B triples its bid
cases = {"2 slots": auction_row(bids, 2),
         "2 slots, reserve $18": auction_row(bids, 2, 18.0),
         "1 slot": auction_row(bids, 1),
         "2 slots, B bids $3.00": auction_row(raised, 2)}
pd.DataFrame({name: row for name, (row, _) in cases.items()}).T.fillna("empty")

# %% tags=["remove-cell"]
res = {name: result for name, (_, result) in cases.items()}
glue("auc_b_price", f"${res['2 slots'].prices[0]:.2f}", display=False)
glue("auc_a_price", f"${res['2 slots'].prices[1]:.2f}", display=False)
glue("auc_a_reserve", f"${res['2 slots, reserve $18'].prices[1]:.2f}", display=False)
glue("auc_one_slot", f"${res['1 slot'].prices[0]:.2f}", display=False)
glue("auc_raised", f"${res['2 slots, B bids $3.00'].prices[0]:.2f}", display=False)
assert res["2 slots, B bids $3.00"].prices[0] == res["2 slots"].prices[0]

# %% [markdown]
# Read the table row by row:
#
# - **Ranking by eCPM.** C bids the most but is rarely clicked; B bids little
#   but is clicked often. B's eCPM is the highest, so B takes slot 1, then A.
# - **GSP prices.** B pays A's eCPM over 1000 x its own pCTR,
#   {glue:text}`auc_b_price` per click: the least it could have bid and kept
#   slot 1. A pays C's eCPM over 1000 x A's pCTR, {glue:text}`auc_a_price`. Both
#   are below their bids.
# - **A reserve.** At a reserve eCPM of \$18, C and D cannot be shown, so nobody
#   eligible is left below A: A now pays the floor, reserve / (1000 x own pCTR),
#   {glue:text}`auc_a_reserve` instead of {glue:text}`auc_a_price`.
# - **One slot** is a second-price auction on eCPM: B pays
#   {glue:text}`auc_one_slot`, the runner-up's eCPM converted to B's clicks.
# - **Raising your own bid** changes nothing while you keep your slot: B
#   tripled its bid and still pays {glue:text}`auc_raised`. A winner's price is
#   set by the ads below it, never by its own bid.
#
# The serving path calls the same rules on the model's pCTRs. Here is the
# auction of the first request, with its {glue:text}`sel_k` candidates,
# {glue:text}`n_slots` slots and the simulator's default reserve of
# {glue:text}`default_reserve` per thousand impressions:

# %%
RESERVE = SimulationConfig().reserve
live = run_auction(bids_0, pctr_0, n_slots=view.n_slots, reserve=RESERVE)
pd.DataFrame({"ad_id": top[live.slots], "bid ($)": bids_0[live.slots],
              "pCTR": pctr_0[live.slots], "eCPM ($ per 1,000)": live.ecpm,
              "price per click ($)": live.prices},
             index=pd.Index(np.arange(1, len(live.slots) + 1), name="slot")).round(4)

# %% tags=["remove-cell"]
glue("n_slots", f"{view.n_slots}", display=False)
glue("default_reserve", f"${RESERVE:g}", display=False)

# %% [markdown]
# ## 7. What a reserve price does: the revenue and fill curve
#
# A reserve trades impressions for price: it removes every ad whose eCPM is
# below it, and it sets the price of any winner with no eligible ad below it. To
# see the trade on this market, run the auctions of all {glue:text}`idx_requests`
# requests at a range of reserves, with the candidates and pCTRs of the sections
# above. The revenue is the *expected* revenue, each winner's price times the
# world's true click probability at its slot (analysis only; the platform never
# sees it).


# %%
def as_rows(values: np.ndarray) -> np.ndarray:
    """The kept pairs' values as one padded row per request (0 where no candidate)."""
    counts = np.bincount(kept_pos, minlength=len(requests))
    column = np.arange(len(kept_pos)) - np.repeat(np.cumsum(counts) - counts, counts)
    table = np.zeros((len(requests), counts.max()))
    table[kept_pos, column] = values
    return table


bid_rows, pctr_rows = as_rows(max_cpc[campaign_of[kept_ad]]), as_rows(pctr_k)
relevance = as_rows(world.relevance(users_k, kept_ad, pubs_k, hours_k, day=0))
examine = world.examine(slots)

# %%
rows, ecpm_rows = [], 1000 * bid_rows * pctr_rows
for reserve in [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30]:
    result = run_auctions(bid_rows, pctr_rows, view.n_slots, reserve)
    shown = result.slots >= 0
    request, slot = np.nonzero(shown)
    p_click = relevance[request, result.slots[request, slot]] * examine[slot]
    cleared = ((ecpm_rows >= reserve) & (ecpm_rows > 0)).sum(axis=1)   # ads per request
    rows.append({"reserve": reserve,
                 "rpm": 1000 * (result.prices[request, slot] @ p_click) / len(requests),
                 "fill_rate": shown.any(axis=1).mean(),
                 "ads_per_request": shown.sum() / len(requests),
                 "ctr": p_click.sum() / shown.sum(),
                 # no eligible ad below the last winner: the reserve sets its price
                 "floor_sets_price": ((cleared > 0) & (cleared <= view.n_slots)).sum()
                 / shown.sum()})
reserve_curve = pd.DataFrame(rows)
reserve_curve.round(4)

# %% tags=["hide-input"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.0))
ax1.plot(reserve_curve["reserve"], reserve_curve["rpm"] / reserve_curve["rpm"].max() - 1,
         marker="o", markersize=3)
ax1.set(title="Expected revenue", xlabel="reserve ($ eCPM)",
        ylabel="change from the best reserve")
plots.percent_axis(ax1)
ax2.plot(reserve_curve["reserve"], reserve_curve["fill_rate"], marker="o", markersize=3,
         label="requests with an ad")
ax2.plot(reserve_curve["reserve"], reserve_curve["ads_per_request"] / view.n_slots,
         marker="o", markersize=3, label="slots filled")
ax2.set(title="Fill", xlabel="reserve ($ eCPM)", ylabel="share")
plots.percent_axis(ax2, decimals=0)
ax2.legend(loc="lower left", fontsize=8)
glue("fig_reserve", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
peak = reserve_curve.loc[reserve_curve["rpm"].idxmax()]
at = reserve_curve.set_index("reserve")
glue("res_peak_rpm", f"${peak['rpm']:.2f}", display=False)
glue("res_at10_loss", pct(1 - at.loc[10, "rpm"] / peak["rpm"]), display=False)
glue("res_at10_fill", pct(at.loc[10, "fill_rate"]), display=False)
glue("res_at10_slots", pct(at.loc[10, "ads_per_request"] / view.n_slots), display=False)
glue("res_ctr0", pct(at.loc[0, "ctr"], 2), display=False)
glue("res_ctr10", pct(at.loc[10, "ctr"], 2), display=False)
assert at.loc[10, "ctr"] > at.loc[0, "ctr"], "the prose says the shown ads' CTR rises"
flat = reserve_curve[reserve_curve["rpm"] >= (1 - 1e-3) * peak["rpm"]]["reserve"]
assert (reserve_curve.loc[reserve_curve["reserve"] > flat.max(), "rpm"].diff()
        .dropna() < 0).all()
glue("res_flat", f"${flat.max():g}", display=False)
floor = reserve_curve.set_index("reserve")["floor_sets_price"]
removed_10 = 1 - at.loc[10, "ads_per_request"] / at.loc[0, "ads_per_request"]
revenue_10 = at.loc[10, "rpm"] / at.loc[0, "rpm"] - 1
assert floor[floor.index <= 10].max() < 0.05, "the prose: the floor rarely sets a price"
assert removed_10 > abs(revenue_10), "the prose says a reserve mostly removes ads"
glue("res_floor_flat", pct(floor[floor.index <= flat.max()].max()), display=False)
glue("res_floor_10", pct(floor[10]), display=False)
glue("res_at10_removed", pct(removed_10), display=False)
glue("res_page", f"in Lab 4.1, a $10 reserve set the price of {pct(floor[10])} of the "
     f"shown ads and removed {pct(removed_10)} of the ads shown without a reserve, "
     f"while expected revenue changed by {revenue_10:+.1%}.", display=False)

# %% [markdown]
# ```{glue:figure} fig_reserve
# :name: fig-step4-reserve
#
# The same auctions at a range of reserves. Left: expected revenue per thousand
# requests, relative to the best reserve's ({glue:text}`res_peak_rpm`). Right:
# the share of requests that show at least one ad, and the share of slots filled.
# ```
#
# **Takeaway:** on this market, revenue stays within 0.1% of its best up to a
# reserve of {glue:text}`res_flat` and falls steadily beyond. Each request has
# {glue:text}`sel_k` candidates for {glue:text}`n_slots` slots, so the ad below a
# winner almost always clears the reserve and the floor rarely sets a price: up
# to {glue:text}`res_flat` it set the price of at most
# {glue:text}`res_floor_flat` of the shown ads, at \$10 of
# {glue:text}`res_floor_10`. What the reserve does is remove the weakest ads. At
# a \$10 reserve revenue is {glue:text}`res_at10_loss` lower than at the best
# reserve on the curve ({glue:text}`res_peak_rpm` per thousand requests), while
# {glue:text}`res_at10_removed` fewer ads are shown than with no reserve:
# {glue:text}`res_at10_fill` of requests still show an ad and
# {glue:text}`res_at10_slots` of slots are filled, and the shown ads' expected
# CTR rises from {glue:text}`res_ctr0` to {glue:text}`res_ctr10`. A reserve earns
# its keep where competition is thin (one or two eligible ads), a case this
# average hides, and it keeps low-value ads off the page.

# %% [markdown]
# ## 8. Exercises
#
# Each exercise names the variable to fill in; the cell after it checks your
# answer and explains what is wrong if it is not right yet.

# %%
exercise = pd.DataFrame({"bid": [1.20, 0.50, 2.50, 0.40],
                         "pctr": [0.010, 0.032, 0.0024, 0.022]})
EX_SLOTS, EX_RESERVE = 2, 10.0
exercise.round(4)

# %% [markdown]
# ```{exercise} GSP prices by hand
# :label: ex-step4-gsp-prices
#
# The page has 2 slots and a reserve of \$10 eCPM (1000 x bid x pCTR, dollars per
# thousand impressions). Without calling `run_auction`, compute what each winner of
# the `exercise` candidates pays per click: a list `prices`, one value per filled
# slot, slot 1 first, in dollars (rounded to cents or not).
# ```

# %% [markdown]
# ```{solution-start} ex-step4-gsp-prices
# :class: dropdown
# ```

# %%
ecpm = 1000 * exercise["bid"] * exercise["pctr"]
ranked = ecpm[ecpm >= EX_RESERVE].sort_values(ascending=False)
winners = ranked.index[:EX_SLOTS]
thresholds = [max(ranked.iloc[s + 1] if s + 1 < len(ranked) else 0.0, EX_RESERVE)
              for s in range(len(winners))]
prices = [t / (1000 * exercise.loc[w, "pctr"])
          for t, w in zip(thresholds, winners, strict=True)]

# %% [markdown]
# ```{solution-end}
# ```

# %%
step4.gsp_prices(prices, exercise["bid"], exercise["pctr"], EX_SLOTS, EX_RESERVE)

# %% [markdown]
# The usual mistakes: charging the next ad's *bid* (ads are ranked by eCPM, so
# the threshold is an eCPM, turned into a price per click with the winner's own
# pCTR), charging the winner its own bid (first price), forgetting the factor
# 1000 between an eCPM and a price per click, or forgetting that the reserve is
# also a floor on the price.

# %% [markdown]
# ```{exercise} Choose a reserve price
# :label: ex-step4-reserve
#
# A judgment call. The publisher team wants an ad on at least 98% of pages, and
# the platform will give up at most 1% of revenue for fewer, better ads. From
# `reserve_curve` (figure above), choose a reserve, in dollars per thousand
# impressions: `reserve`. Its revenue is not measured: it is the expected revenue
# computed from the world's true click probabilities, an analysis only the
# simulation allows (a real platform would measure the curve in an experiment).
# Any reserve the curve defends is accepted; the check says what your choice
# trades.
# ```

# %% [markdown]
# ```{solution-start} ex-step4-reserve
# :class: dropdown
# ```

# %%
best_rpm = reserve_curve["rpm"].max()
allowed = reserve_curve[(reserve_curve["rpm"] >= 0.99 * best_rpm)
                        & (reserve_curve["fill_rate"] >= 0.98)]
reserve = float(allowed["reserve"].max())     # the fewest weak ads the limits allow

# %% [markdown]
# ```{solution-end}
# ```

# %%
step4.choose_reserve(reserve, reserve_curve, max_revenue_loss=0.01, min_fill=0.98)

# %% [markdown]
# ## 9. Recap
#
# - The index answers "who may see this ad" from targeting and budgets, in one
#   code path for a batch and a single request; here it leaves a median of
#   {glue:text}`idx_median` eligible ads per request.
# - The platform knows only what it logs: page views, and impressions and clicks
#   from closed windows. New ads start as average ads, and thin counts are shrunk
#   towards the average.
# - The selector's light model keeps {glue:text}`sel_k` candidates per request;
#   the heavy model scores them at position 1, after learning the position effect
#   from the logged slots.
# - The auction ranks by eCPM, charges generalized second price, and the reserve
#   is an eCPM floor whose effect you measure before you choose it.

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# "The request path has four boxes. The ads index turns each campaign's
# targeting into posting lists and returns the eligible ads with budget left; in
# our system that is a median of {glue:text}`idx_median` per request;
# {glue:text}`score_say`. A light, user-aware model keeps the top
# {glue:text}`sel_k` by bid times light pCTR, using only table lookups. The heavy
# model predicts a calibrated pCTR at position 1 from features that come from one
# function shared with training, with the position as a training feature. The
# auction ranks by eCPM, a thousand times bid times pCTR, charges generalized second
# price per click, never above the bid, and applies a reserve that I'd set from a
# measured revenue and fill curve: on our market a \$10 reserve cost
# {glue:text}`res_at10_loss` of revenue and kept an ad on
# {glue:text}`res_at10_fill` of pages. Everything the platform knows about users
# and ads it learns from its own logs."
# ```
