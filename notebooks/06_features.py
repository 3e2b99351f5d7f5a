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
# # Lab 6.1: training data: labels, position bias and features
#
# A click model is only as good as the rows it learns from. The {doc}`concept
# page <../book/step6_models>` listed what can go wrong between a user's click
# and a training row; this lab measures each of those failure points on the ad
# system of Step 4, against the world's truth.
#
# ```{admonition} What you will build
# :class: note
# - **Labels as the platform writes them**: the cost of human ratings next to
#   free logged clicks, the non-clicks that are not negatives, and the
#   {term}`attribution window` as a trade-off between label bias and freshness,
#   measured as a curve (you choose the window).
# - **Position bias**: a small randomized-slot experiment, the examination curve
#   it measures against the world's, what training naively on served logs gets
#   wrong, and two corrections, position as a feature and inverse-propensity
#   weights, with their effect on calibration and revenue.
# - **Features of every player**: user, advertiser and ad, publisher and context,
#   frequency; what each is worth, measured by dropping it; what hashing the
#   ids into a fixed number of buckets costs; a label leak and a feedback loop,
#   measured.
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
from threadpoolctl import threadpool_limits

from adsys import metrics, plots
from adsys.baseline import serve_shuffled
from adsys.checks import step6
from adsys.events import FEATURE_PREFIX, join_clicks, training_data
from adsys.features import CATEGORICAL_COLUMNS, make_features
from adsys.history import ExposureCounter
from adsys.observable import SECONDS_PER_DAY
from adsys.pacing import traffic_forecast
from adsys.position import (
    FixedPositionModel,
    at_position,
    inverse_propensity_weights,
    relative_examination,
    relative_examination_interval,
)
from adsys.prediction import (
    LightGBMClickModel,
    LogisticClickModel,
    downsample_negatives,
)
from adsys.serving import AdServer
from adsys.simulate import SimulationConfig, bootstrap, retrain, simulate_day
from adsys.world import World

plots.style()
threadpool_limits(1)      # one thread per numeric library: small, shared machines
SEED = 0
N_DAYS = 4
N_REQUESTS = 50_000       # requests per simulated day (the default world has 100k)
WINDOW = 3600.0           # the platform's attribution window, seconds
KEEP = 0.25               # share of non-clicks kept for training


def pct(x: float, digits: int = 1) -> str:
    """Format a fraction as a percentage string for glue."""
    return f"{100 * x:.{digits}f}%"


def served_features(log: pd.DataFrame) -> pd.DataFrame:
    """The features the model saw at serving time (the log's f_ columns)."""
    columns = [c for c in log if c.startswith(FEATURE_PREFIX)]
    return log[columns].rename(columns=lambda c: c[len(FEATURE_PREFIX):])


# %% [markdown]
# ## 0. Four days of the ad system
#
# We run the loop of Step 4 for four days: random traffic bootstraps the first
# model, then each day is served by the model trained the night before on the
# platform's own closed logs. This is `simulate()` written out, so that we keep
# each day's server: its model, and the history (the platform's counts) its
# features read.

# %%
world = World(seed=SEED)
view = world.view
config = SimulationConfig(browsing_days=2, training_days=1, bootstrap_requests=30_000)
rng = np.random.default_rng(SEED)
models, history, boot = bootstrap(world, rng, config.bootstrap_requests,
                                  browsing_days=config.browsing_days)
forecast = traffic_forecast(boot["time"].drop_duplicates(), config.steps_per_day)
exposures = ExposureCounter(view.n_ads)
days, servers, ids = [], [], (0, 0)
for day in range(N_DAYS):
    server = AdServer(view, models.heavy, history, exposures, models.light, k=config.k,
                      reserve=config.reserve, model_version=day)
    result = simulate_day(world, server, day, rng, config, forecast, N_REQUESTS, *ids)
    ids = (ids[0] + result.n_requests, ids[1] + len(result.impressions))
    days.append(result)
    servers.append(server)
    forecast = traffic_forecast(result.requests.time, config.steps_per_day)
    models, history = retrain(days[-2:], config, LogisticClickModel, history, rng,
                              models)
clicks = pd.concat([d.clicks for d in days], ignore_index=True)
pd.DataFrame({"impressions": [len(d.impressions) for d in days],
              "CTR": [d.impressions["true_p"].mean() for d in days],
              "revenue ($)": [d.impressions["charged"].sum() for d in days]},
             index=[f"day {d.day}" for d in days]).round(4)

# %% [markdown]
# ## 1. Labels
#
# ### Who labels: logged interactions or people
#
# The platform's labels are free: every impression is logged, every click
# arrives on its own. Human raters give a different label, a judgement of
# relevance or of policy (is this ad misleading, is it safe next to this
# page?), and they cost money per judgement, usually bought from an outsourcing
# vendor with quality control (several raters per item, gold questions). Say a
# judgement costs 5 cents, a typical crowd-work rate:

# %%
RATER_COST = 0.05                    # dollars per judgement (assumed)
day_2 = days[2]
rating_cost = RATER_COST * len(day_2.impressions)
pd.Series({"impressions on day 2": len(day_2.impressions),
           "cost to rate them once ($)": rating_cost,
           "the day's revenue ($)": day_2.impressions["charged"].sum()},
          name="").to_frame().round(0)

# %% tags=["remove-cell"]
glue("rate_cost", f"${rating_cost:,.0f}", display=False)
glue("rate_times", f"{rating_cost / day_2.impressions['charged'].sum():.1f}",
     display=False)

# %% [markdown]
# Rating one day of impressions once would cost {glue:text}`rate_cost`,
# {glue:text}`rate_times` times what the day earned. So clicks train the click
# model, and platforms pay for ratings where clicks cannot answer: policy and
# brand safety, the quality of a new ad before it has any impressions, the
# relevance of search results, and a small, carefully sampled evaluation set
# that keeps the click-trained models honest.
#
# **On paper.** The platform launches a new ad format (a video slot) where
# nobody has clicked yet, and policy asks that no ad for a regulated product
# runs next to news about children. Which labels do you buy, which do you log,
# and how do you keep the bought ones affordable?
#
# ```{admonition} Model answer
# :class: dropdown
# Log clicks (and video views, hides) from day one: they will train the click
# model once there is traffic, starting from the existing format's model and a
# little exploration. Buy ratings for the policy question, which clicks can
# never answer: a classifier for "regulated product" and "news about
# children" trained on a few thousand rated examples, with guidelines, gold
# questions and several raters per item at the vendor. Keep it affordable by
# rating a stratified sample (new advertisers, borderline classifier scores)
# rather than everything, and re-rate only what the classifier is unsure of.
# ```
#
# ### A non-click is not always a negative
#
# The logs record a click or nothing. "Nothing" mixes three different things:
# the user looked and did not want the ad (a true negative), the user never
# looked (the slot was below the fold, the page was left), or the click is on
# its way and has not arrived yet. The world knows how likely each slot is to be
# looked at (`world.examine`), so we can count the first kind:

# %%
served = days[2].impressions
seen = world.examine(served["position"].to_numpy())
unseen = pd.DataFrame({"slot": served["position"], "never looked at": 1 - seen,
                       "not clicked": 1 - served["true_p"]}).groupby("slot").sum()
never_seen = unseen["never looked at"] / unseen["not clicked"]
never_seen.to_frame("share of non-clicks never looked at").round(3)

# %% [markdown]
# And the ones still in flight: the nightly job runs at midnight, and an
# impression shown at 23:30 has had only half its window.

# %%
midnight = 3 * SECONDS_PER_DAY
open_at_midnight = served["time"].to_numpy() + WINDOW > midnight
labelled, _ = join_clicks(served, clicks, WINDOW)
clicked_later = labelled["clicked"].to_numpy() == 1
in_flight = pd.Series({
    "impressions whose window is open at midnight": open_at_midnight.mean(),
    "... share of the day's clicks among them": clicked_later[open_at_midnight].sum()
    / clicked_later.sum()})
in_flight.to_frame("share").round(4)

# %% tags=["remove-cell"]
all_unseen = unseen["never looked at"].sum() / unseen["not clicked"].sum()
glue("unseen_all", pct(all_unseen, 0), display=False)
glue("unseen_slot3", pct(never_seen.loc[3], 0), display=False)
glue("open_share", pct(in_flight.iloc[0]), display=False)
glue("open_clicks", pct(in_flight.iloc[1]), display=False)

# %% [markdown]
# About {glue:text}`unseen_all` of the non-clicks were never looked at
# ({glue:text}`unseen_slot3` in slot 3): they say nothing about the ad, and a
# model that counts them as rejections learns that low slots hold bad ads
# (section 2). At midnight {glue:text}`open_share` of the day's impressions are
# still inside their window, holding {glue:text}`open_clicks` of the day's
# clicks: labelled now, they would be false negatives. `events.closed_labels`
# leaves them out until the next night. (A platform that offers "hide this ad"
# gets a third kind of label, an explicit negative, richer than a missing
# click; this world does not have one.)
#
# ### The attribution window: label bias against freshness
#
# The window decides both. Short, and the late clicks count as non-clicks: the
# labels, and a model trained on them, under-state the click rate. Long, and
# labels wait: more of the evening's traffic misses tonight's training, and
# billing and reports wait too. We measure both sides over a range of windows,
# from the click log's real delays.

# %%
first_click = clicks.groupby("impression_id")["click_time"].min()
delay = (first_click - served.set_index("impression_id")["time"]).dropna()
WINDOWS = np.array([60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400])
window_curve = pd.DataFrame({
    "clicks missed": [(delay > w).mean() for w in WINDOWS],
    "impressions waiting": [(served["time"] + w > midnight).mean() for w in WINDOWS],
}, index=pd.Index(WINDOWS, name="window (s)"))
window_curve.assign(**{"minutes": WINDOWS / 60}).round(4)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 3.0))
ax.plot(WINDOWS / 60, window_curve["clicks missed"], marker="o",
        label="clicks that arrive after the window (label bias)")
ax.plot(WINDOWS / 60, window_curve["impressions waiting"], marker="s",
        label="impressions still open at midnight (wait a night)")
ax.axvline(WINDOW / 60, color="grey", linestyle="--", linewidth=0.8)
ax.set(xscale="log", xlabel="attribution window (minutes, log scale)",
       ylabel="share of the day's clicks / impressions")
ticks = [1, 5, 15, 60, 180, 720, 1440]
ax.set_xticks(ticks, [str(t) for t in ticks])
ax.minorticks_off()
plots.percent_axis(ax, "y", decimals=0)
ax.legend(loc="upper center", fontsize=8)
glue("fig_window", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
glue("miss_5min", pct(window_curve.loc[300, "clicks missed"], 0), display=False)
glue("miss_1h", pct(window_curve.loc[3600, "clicks missed"]), display=False)
glue("wait_1h", pct(window_curve.loc[3600, "impressions waiting"]), display=False)
glue("wait_6h", pct(window_curve.loc[6 * 3600, "impressions waiting"], 0),
     display=False)
gap = window_curve["clicks missed"] - window_curve["impressions waiting"]
assert gap.iloc[0] > 0 > gap.iloc[-1]     # "the two curves cross"
glue("miss_model", pct(1 - world.delay_cdf(300), 0), display=False)
glue("req_captured", pct(step6.MIN_CAPTURED, 0), display=False)
glue("req_missed", pct(1 - step6.MIN_CAPTURED, 0), display=False)
glue("req_labelled", pct(step6.MIN_LABELLED, 0), display=False)
glue("req_waiting", pct(1 - step6.MIN_LABELLED, 0), display=False)

# %% [markdown]
# ```{glue:figure} fig_window
# :name: fig-step6-window
#
# For each attribution window (log scale), the share of day 2's clicked
# impressions whose first click came later than the window (blue), and the share
# of day 2's impressions whose window is still open when the nightly job runs at
# midnight (orange). Dashed: the platform's one-hour window.
# ```
#
# **Takeaway:** the two curves cross: no window is free, and the choice is where
# on this curve the business wants to sit.
#
# A five-minute window would miss {glue:text}`miss_5min` of the clicks (the
# world's delay distribution says {glue:text}`miss_model`); the one-hour window
# misses {glue:text}`miss_1h` and holds back {glue:text}`wait_1h` of the day;
# six hours hold back {glue:text}`wait_6h`.

# %% [markdown]
# ```{exercise} Choose the attribution window
# :label: ex-step6-window
#
# The team keeps Lab 1's requirements for its training labels: (a) capture at
# least {glue:text}`req_captured` of the clicks that will ever arrive (at most
# {glue:text}`req_missed` in `clicks missed`), so the model does not learn a
# CTR that is too low, and (b) label at least {glue:text}`req_labelled` of the
# day's impressions by the nightly job at midnight (at most
# {glue:text}`req_waiting` in `impressions waiting`), so it trains on most of
# today. From `window_curve`, choose the attribution window, in seconds, and
# store it in `window_seconds`. Several answers meet both; the check says what
# yours trades.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-window
# :class: dropdown
# ```

# %%
meets = window_curve[(window_curve["clicks missed"] <= 0.10)
                     & (window_curve["impressions waiting"] <= 0.20)]
print(f"measured windows that meet both: {(meets.index / 60).tolist()} minutes")
window_seconds = 3600  # a round value in that range

# %% [markdown]
# ```{solution-end}
# ```

# %%
step6.attribution_window(window_seconds, window_curve)

# %% [markdown]
# ## 2. Position bias
#
# ### What the served log says, and why it exaggerates
#
# The served log's click rate falls with the slot. But the auction put the best
# ads on top, so the drop mixes two things: the slot's effect on whether users
# look, and the ads' own appeal.

# %%
by_slot = served.groupby("position").agg(impressions=("true_p", "size"),
                                         CTR=("true_p", "mean"))
by_slot["CTR relative to slot 1"] = by_slot["CTR"] / by_slot.loc[1, "CTR"]
by_slot["world: examination"] = world.examine(by_slot.index.to_numpy())
by_slot.round(4)

# %% [markdown]
# ### A randomized-slot experiment
#
# To separate them, shuffle: for a random half of tomorrow's requests, the ads
# that won the auction are shown in a random order of the slots
# (`baseline.serve_shuffled`). Every slot then sees the same ads on average, and
# the ratio of click rates is the position effect alone. The other half, served
# as usual, is the control.

# %%
experiment_rng = np.random.default_rng(SEED + 1)
tomorrow = world.requests(N_DAYS, experiment_rng, n=40_000)
live = AdServer(view, models.heavy, history, ExposureCounter(view.n_ads), models.light,
                k=config.k, reserve=config.reserve)
experiment = serve_shuffled(world, live, tomorrow, N_DAYS, experiment_rng, share=0.5)
full_pages = experiment[experiment["shuffled"]
                        & (experiment["slots_filled"] == view.n_slots)]
low, high = relative_examination_interval(full_pages["position"], full_pages["clicked"])
estimate = pd.DataFrame({
    "experiment": relative_examination(full_pages["position"], full_pages["clicked"]),
    "95% low": low, "95% high": high,
    "world (truth)": world.examine(np.arange(1, view.n_slots + 1))},
    index=pd.Index(np.arange(1, view.n_slots + 1), name="slot"))
estimate.round(3)

# %% tags=["remove-cell"]
# The cost of shuffling, paired: the same requests and ads at the slots shown against
# the slots the auction gave them (expected clicks, from the world's truth).
shuffled = experiment[experiment["shuffled"]]
as_auctioned = world.click_probability(
    shuffled["user_id"], shuffled["ad_id"], shuffled["publisher_id"], shuffled["hour"],
    shuffled["auction_position"], N_DAYS, shuffled["exposures"])
lost_clicks = 1 - shuffled["true_p"].sum() / as_auctioned.sum()
lost_revenue = 1 - (shuffled["price"] * shuffled["true_p"]).sum() / (
    shuffled["price"] * as_auctioned).sum()
within = (estimate["95% low"] <= estimate["world (truth)"]) & (
    estimate["world (truth)"] <= estimate["95% high"])
glue("exp_requests", f"{shuffled['request_id'].nunique():,}", display=False)
glue("exp_slot2", f"{estimate.loc[2, 'experiment']:.2f}", display=False)
glue("exp_slot3", f"{estimate.loc[3, 'experiment']:.2f}", display=False)
slot3 = estimate.loc[3]
glue("exp_slot3_ci", f"{slot3['95% low']:.2f}-{slot3['95% high']:.2f}", display=False)
glue("true_slot2", f"{world.examine(2):.2f}", display=False)
glue("true_slot3", f"{world.examine(3):.2f}", display=False)
glue("naive_slot3", f"{by_slot.loc[3, 'CTR relative to slot 1']:.2f}", display=False)
missed = [f"slot {slot} ({estimate.loc[slot, '95% low']:.2f}-"
          f"{estimate.loc[slot, '95% high']:.2f})" for slot in estimate.index[~within]]
glue("exp_within", "lies inside every slot's 95% interval" if within.all()
     else "misses the 95% interval of " + " and of ".join(missed), display=False)
glue("exp_cost", f"{pct(abs(lost_clicks))} {'fewer' if lost_clicks > 0 else 'more'} "
     f"clicks and {pct(lost_revenue)} less revenue", display=False)
assert by_slot.loc[3, "CTR relative to slot 1"] < world.examine(3)
assert lost_revenue > 0

# %% [markdown]
# The experiment's {glue:text}`exp_requests` shuffled requests put slot 2 at
# {glue:text}`exp_slot2` and slot 3 at {glue:text}`exp_slot3` of slot 1
# (95% interval {glue:text}`exp_slot3_ci`); the world's truth,
# {glue:text}`true_slot2` and {glue:text}`true_slot3`,
# {glue:text}`exp_within`. The served log alone said
# {glue:text}`naive_slot3` for slot 3: it blamed the slot for the auction's
# choices. The experiment is not free: the shuffled requests got
# {glue:text}`exp_cost` than the auction's order would have given the same ads
# (the world's expected clicks at both orders), which is why it runs on a small
# share of traffic, and why the estimate's interval matters.

# %% [markdown]
# ```{exercise} The examination curve by hand
# :label: ex-step6-examination
#
# From the experiment's log `experiment` (columns `position`, `clicked`,
# `shuffled`, `slots_filled`), compute the examination probability of each
# slot relative to slot 1 without `relative_examination`: an array
# `examination`, slot 1 first.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-examination
# :class: dropdown
# ```

# %%
usable = experiment[experiment["shuffled"] & (experiment["slots_filled"] == 3)]
ctr_by_slot = usable.groupby("position")["clicked"].mean()
examination = (ctr_by_slot / ctr_by_slot.loc[1]).to_numpy()

# %% [markdown]
# ```{solution-end}
# ```

# %%
step6.examination_by_hand(examination, experiment)

# %% [markdown]
# ### What naive training gets wrong, and two corrections
#
# The server scores every candidate as if it were shown in slot 1 and the
# auction ranks those position-1 pCTRs. So the model's job is to predict the
# click rate *at slot 1*, from logs where most impressions were elsewhere. Three
# ways to train it on days 1 and 2:
#
# - **naive**: ignore the slot (every row's position set to 1). Non-clicks in
#   low slots, mostly unseen, count as rejections.
# - **position as a feature**, fixed at serving: the model learns the slot's
#   effect apart from the ad's; serving asks for slot 1
#   (`position.FixedPositionModel`).
# - **inverse-propensity weights**: ignore the slot but weigh each click by
#   1 / examination of its slot, from the experiment
#   (`position.inverse_propensity_weights`).
#
# We judge them on day 3 against the truth at slot 1, which only the world
# knows: for every impression, its click probability had it been shown first.

# %%
past = pd.concat([d.impressions for d in days[1:3]], ignore_index=True)
X_pos, y_pos = training_data(past, clicks, WINDOW, as_of=3 * SECONDS_PER_DAY)
y_pos = y_pos.to_numpy()
keep = downsample_negatives(y_pos, KEEP, np.random.default_rng(SEED))
X_pos, y_pos = X_pos[keep], y_pos[keep]
slots_pos = X_pos["position"].to_numpy().astype(int)
measured = estimate["experiment"].to_numpy()

# %% [markdown]
# ```{exercise} Inverse-propensity weights
# :label: ex-step6-ipw
#
# Compute the training weight of each row of `X_pos` (slots `slots_pos`, labels
# `y_pos`) for the inverse-propensity correction, using the examination curve
# the experiment `measured` (slot 1 first). Call the array `weights`.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-ipw
# :class: dropdown
# ```

# %%
weights = np.where(y_pos == 1, 1 / measured[slots_pos - 1], 1.0)

# %% [markdown]
# ```{solution-end}
# ```

# %%
step6.propensity_weights(weights, slots_pos, y_pos, measured)

# %%
blind = at_position(X_pos, 1)
corrections = {
    "naive": LogisticClickModel(downsampling_rate=KEEP).fit(blind, y_pos),
    "position feature": FixedPositionModel(
        LogisticClickModel(downsampling_rate=KEEP), 1).fit(X_pos, y_pos),
    "propensity weights": LogisticClickModel(downsampling_rate=KEEP).fit(
        blind, y_pos,
        sample_weight=inverse_propensity_weights(slots_pos, y_pos, measured)),
}
test, _ = join_clicks(days[3].impressions, clicks, WINDOW)
X_day3 = at_position(served_features(test), 1)
def truth_at_slot_1(log: pd.DataFrame, day: int) -> np.ndarray:
    """The world's click probability of each impression had it been in slot 1."""
    columns = ("user_id", "ad_id", "publisher_id", "hour")
    return world.click_probability(*(log[c].to_numpy() for c in columns), 1, day,
                                   log["exposures"].to_numpy())


truth_at_1 = world.delay_cdf(WINDOW) * truth_at_slot_1(test, 3)


def at_slot_1(p: np.ndarray) -> dict[str, float]:
    """Predictions at slot 1 against the truth at slot 1, by the slot actually shown."""
    shown = test["position"].to_numpy()
    ratios = {f"calibration, shown in slot {s}": p[shown == s].sum()
              / truth_at_1[shown == s].sum() for s in (1, 2, 3)}
    expected_loss = -np.mean(truth_at_1 * np.log(p) + (1 - truth_at_1) * np.log1p(-p))
    floor = -np.mean(truth_at_1 * np.log(truth_at_1)
                     + (1 - truth_at_1) * np.log1p(-truth_at_1))
    return {"calibration at slot 1": p.sum() / truth_at_1.sum(), **ratios,
            "expected log loss at slot 1, % above truth":
                100 * (expected_loss / floor - 1)}


slot1 = pd.DataFrame({name: at_slot_1(model.predict(X_day3))
                      for name, model in corrections.items()}).T
slot1.T.round(3)

# %% tags=["remove-cell"]
cal = slot1["calibration at slot 1"]
glue("naive_cal", f"{cal['naive']:.2f}", display=False)
glue("pos_cal", f"{cal['position feature']:.3f}", display=False)
glue("ipw_cal", f"{cal['propensity weights']:.3f}", display=False)
glue("naive_low_slot", f"{slot1.loc['naive', 'calibration, shown in slot 3']:.2f}",
     display=False)
glue("naive_top_slot", f"{slot1.loc['naive', 'calibration, shown in slot 1']:.2f}",
     display=False)
logged_truth = test["true_p"].to_numpy() * world.delay_cdf(WINDOW)
logged_cal = (corrections["position feature"].model.predict(served_features(test)).sum()
              / logged_truth.sum())
glue("pos_cal_logged", f"{logged_cal:.3f}", display=False)
assert cal["naive"] < min(cal["position feature"], cal["propensity weights"])
assert (slot1.loc["naive", "calibration, shown in slot 3"]
        < slot1.loc["naive", "calibration, shown in slot 1"])
assert abs(cal["position feature"] - 1) < abs(cal["naive"] - 1)
# the prose: about as well calibrated at slot 1 as at the slots shown
assert abs(cal["position feature"] - logged_cal) < 0.05

# %% [markdown]
# The naive model predicts {glue:text}`naive_cal` of the clicks these ads would
# get in slot 1: it learned the average slot, not the first one. And not
# uniformly: for ads the auction had placed in slot 1 it predicts
# {glue:text}`naive_top_slot` of their slot-1 truth, for those it had placed in
# slot 3 only {glue:text}`naive_low_slot`, so yesterday's losers look worse than
# they are and stay losers (a feedback loop). The position feature gives
# {glue:text}`pos_cal` and the propensity weights {glue:text}`ipw_cal`: the
# position-feature model is about as well calibrated at slot 1 as it is at the
# slots the ads were really shown in ({glue:text}`pos_cal_logged`, a
# day-to-day drift that the calibrator of Lab 6.2 takes out), so the slot
# itself is handled.
#
# ### The effect on revenue, and the choice of the serving slot
#
# Calibration at slot 1 matters because the auction compares eCPMs with the
# reserve and prices clicks with them. We serve the same 20,000 requests of
# tomorrow with each model (same history, same selector), and one more: the
# position-feature model asked for slot 3 instead of slot 1. Revenue and clicks
# are the world's expectations (price x true click probability), which removes
# the noise of the draws.

# %%
replay = world.requests(N_DAYS, np.random.default_rng(SEED + 2), n=20_000)
candidates = {**corrections,
              "position feature, served at slot 3": FixedPositionModel(
                  corrections["position feature"].model, 3)}
outcomes = {}
for name, model in candidates.items():
    server = AdServer(view, model, history, ExposureCounter(view.n_ads), models.light,
                      k=config.k, reserve=config.reserve)
    log = serve_shuffled(world, server, replay, N_DAYS, np.random.default_rng(SEED + 3),
                         share=0.0)
    top_slot = truth_at_slot_1(log, N_DAYS)
    outcomes[name] = {"impressions": len(log),
                      "expected clicks": log["true_p"].sum(),
                      "expected revenue ($)": (log["price"] * log["true_p"]).sum(),
                      "pCTR / truth at slot 1": log["pctr"].sum() / top_slot.sum()}
outcomes = pd.DataFrame(outcomes).T
outcomes["RPM ($)"] = 1000 * outcomes["expected revenue ($)"] / len(replay)
outcomes.T.round(3)

# %% tags=["remove-cell"]
rpm = outcomes["RPM ($)"]
glue("rpm_pos", f"${rpm['position feature']:.2f}", display=False)
glue("rpm_naive", f"${rpm['naive']:.2f}", display=False)
glue("rpm_ipw", f"${rpm['propensity weights']:.2f}", display=False)
glue("rpm_slot3", f"${rpm['position feature, served at slot 3']:.2f}", display=False)
glue("imp_pos", f"{int(outcomes.loc['position feature', 'impressions']):,}",
     display=False)
at_slot_3 = outcomes.loc["position feature, served at slot 3"]
glue("imp_slot3", f"{int(at_slot_3['impressions']):,}", display=False)
glue("naive_vs_pos", ("less" if rpm["naive"] < rpm["position feature"] else "more")
     + " than with the position feature", display=False)
glue("slot3_vs_pos", ("less" if rpm["position feature, served at slot 3"]
                      < rpm["position feature"] else "more")
     + " than served at slot 1", display=False)
assert at_slot_3["impressions"] < outcomes.loc["position feature", "impressions"]

# %% [markdown]
# Served with the position-feature model, tomorrow's requests earn
# {glue:text}`rpm_pos` per thousand; the propensity-weighted model earns
# {glue:text}`rpm_ipw` and the naive model {glue:text}`rpm_naive`
# ({glue:text}`naive_vs_pos`). Asking the same model for slot 3 keeps the
# logistic model's ranking (it multiplies every candidate's odds by the same
# factor, so the order is unchanged) but every pCTR shrinks: more candidates
# fall under the reserve, {glue:text}`imp_slot3` impressions are shown instead
# of {glue:text}`imp_pos`, and revenue is {glue:text}`rpm_slot3`
# ({glue:text}`slot3_vs_pos`). A tree model can also *reorder* candidates at
# another slot, since the slot interacts with other features in its trees. The
# serving slot is a convention the auction and its reserve are tuned to; pick
# slot 1 and keep it.

# %% [markdown]
# ## 3. Features of every player
#
# ### Why each player matters
#
# Each party to an impression contributes signal: the **user** (profile,
# declared and inferred interests, how much they click), the **advertiser and
# the ad** (topic, history), the **publisher and the context** (page topic,
# hour, device), and the **frequency** of this ad to this user. To look at each
# without the slot's effect, we use a position-normalized click rate: clicks
# divided by the clicks the slots would predict (each impression counts as the
# experiment's examination of its slot).

# %%
day2 = labelled.assign(expected=measured[labelled["position"].to_numpy() - 1])
f2 = served_features(day2)


def normalized_ctr(groups: pd.Series) -> pd.Series:
    """Clicks over slot-expected impressions in each group, relative to the day."""
    sums = day2.groupby(groups.to_numpy())[["clicked", "expected"]].sum()
    return (sums["clicked"] / sums["expected"]) / (day2["clicked"].sum()
                                                   / day2["expected"].sum())


panels = {
    "user: declared the topic": normalized_ctr(f2["declared_interest"].map(
        {0: "no", 1: "yes"})),
    "user: share of page views\non the ad's topic": normalized_ctr(pd.qcut(
        f2["user_topic_view_share"], 4, labels=["Q1", "Q2", "Q3", "Q4"])),
    "ad: historical CTR\n(relative, quartile)": normalized_ctr(pd.qcut(
        f2["ad_ctr_logit"], 4, labels=["Q1", "Q2", "Q3", "Q4"])),
    "context: page on\nthe ad's topic": normalized_ctr(f2["page_topic_match"].map(
        {0: "no", 1: "yes"})),
    "frequency: earlier views\nof this ad today": normalized_ctr(
        day2["exposures"].clip(upper=3).map({0: "0", 1: "1", 2: "2", 3: "3+"})),
}

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(panels), figsize=(8.0, 2.6), sharey=True)
for ax, (title, values) in zip(axes, panels.items(), strict=True):
    ax.bar(values.index.astype(str), values.to_numpy(), color="C0")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_title(title, fontsize=8, fontweight="normal")
    ax.tick_params(axis="x", labelsize=8)
axes[0].set_ylabel("position-normalized CTR\n(relative to the day)")
glue("fig_players", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
declared = panels["user: declared the topic"]
glue("eda_declared", f"{declared['yes'] / declared['no']:.1f}", display=False)
views = panels["user: share of page views\non the ad's topic"]
glue("eda_views", f"{views['Q4'] / views['Q1']:.1f}", display=False)
match = panels["context: page on\nthe ad's topic"]
glue("eda_match", f"{match['yes'] / match['no']:.1f}", display=False)
ad_history = panels["ad: historical CTR\n(relative, quartile)"]
glue("eda_ad", f"{ad_history['Q4'] / ad_history['Q1']:.1f}", display=False)
fatigue = panels["frequency: earlier views\nof this ad today"]
glue("eda_repeat", f"{fatigue['3+'] / fatigue['0']:.2f}", display=False)
repeat = day2[day2["exposures"] >= 3]
args = [repeat[c].to_numpy() for c in ("user_id", "ad_id", "publisher_id", "hour")]
tired = world.relevance(*args, 2, repeat["exposures"].to_numpy())
fresh = world.relevance(*args, 2, 0)
glue("eda_fatigue_true", pct(1 - tired.sum() / fresh.sum(), 0), display=False)
assert declared["yes"] > declared["no"] and views["Q4"] > views["Q1"]
assert ad_history["Q4"] > ad_history["Q1"] and match["yes"] > match["no"]
assert fatigue["3+"] > fatigue["0"] and tired.sum() < fresh.sum()

# %% [markdown]
# ```{glue:figure} fig_players
# :name: fig-step6-players
#
# Day 2's click rate by one feature of each player, normalized by the slot
# (clicks over the clicks the slots would explain) and relative to the day's
# average (dashed).
# ```
#
# **Takeaway:** every player carries signal, and a log shows associations, not
# effects.
#
# A user whose page views lean most to the ad's topic clicks
# {glue:text}`eda_views` times as often as one whose views lean least, and a
# user who declared the topic more often than one who did not (declarations are
# noisy and incomplete); ads in the top quarter by historical CTR do
# {glue:text}`eda_ad` times as well as those in the bottom quarter; an
# ad on a page about its own topic does {glue:text}`eda_match` times as well.
# The last panel is a trap: impressions that were the user's fourth or later
# view of the ad that day were clicked {glue:text}`eda_repeat` times as often as first
# views, yet the world's fatigue made each of those repeat views
# {glue:text}`eda_fatigue_true` less likely to be clicked than a first view of
# the same ad would have been. The platform shows an ad again to the users most
# likely to want it, so the log's association runs opposite to the effect. The
# frequency feature, together with the interest features, is what lets a model
# separate the two (the drop-column test below measures what it adds on these
# short logs), but reading effects off served logs needs an experiment.
#
# Some signal only shows in combination: which topic each age band likes, at
# which hour each topic peaks. Here is the first: the normalized CTR of each age
# band on each ad topic.

# %% tags=["hide-input"]
age = f2["age_band"].astype(str)
topic = f2["ad_topic"].astype(str)
sums = day2.groupby([age.to_numpy(), topic.to_numpy()])[["clicked", "expected"]].sum()
day_rate = day2["clicked"].sum() / day2["expected"].sum()
expected_clicks = (sums["expected"] * day_rate).unstack()   # at the day's average rate
cross = sums["clicked"].unstack() / expected_clicks
MIN_EXPECTED = 20         # fewer expected clicks than this: too noisy to show
too_few = ~(expected_clicks.to_numpy() >= MIN_EXPECTED)
shown_cells = np.ma.masked_where(too_few, np.log2(cross.to_numpy(dtype=float).clip(1 / 8, 8)))
cmap = plt.get_cmap("RdBu_r").copy()
cmap.set_bad("0.7")              # grey: too few impressions
fig, ax = plt.subplots(figsize=(7.5, 2.6))
image = ax.imshow(shown_cells, cmap=cmap, vmin=-2, vmax=2, aspect="auto")
ax.set_yticks(range(len(cross.index)), cross.index, fontsize=8)
ax.set_xticks(range(len(cross.columns)), cross.columns, rotation=60, fontsize=7)
ax.set_xlabel("ad topic")
ax.set_ylabel("age band")
ax.grid(False)
fig.colorbar(image, ax=ax, label="log2 of relative CTR", shrink=0.9)
glue("fig_age_topic", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
assert not (cross.to_numpy() == 0)[~too_few].any(), "a shown cell has no clicks"
glue("min_expected", f"{MIN_EXPECTED}", display=False)
glue("n_masked", f"{int(too_few.sum())}", display=False)

# %% [markdown]
# ```{glue:figure} fig_age_topic
# :name: fig-step6-age-topic
#
# Position-normalized CTR of each age band (rows) on each ad topic (columns) on
# day 2, relative to the day, on a log2 scale: red above average, blue below
# (capped at 4x either way). Grey: too few impressions, fewer than
# {glue:text}`min_expected` clicks expected at the day's average rate
# ({glue:text}`n_masked` cells).
# ```
#
# **Takeaway:** tastes differ by age *per topic*, an interaction one weight per
# age band and one per topic cannot express: a **cross** (age band x ad topic)
# or a tree can. Lab 6.2 measures what such crosses are worth.
#
# ### Feature selection by measured gain
#
# Which features earn their keep? Drop each player's group and measure how
# much the held-out log loss rises (drop-column importance): a model retrained
# without the group, scored on day 3. A group is "dropped" by setting its
# columns to a constant, so the model can no longer split or weigh on them.

# %%
GROUPS = {
    "user profile": ["age_band", "gender", "region", "device", "n_declared"],
    "user interests": ["declared_interest", "user_topic_view_share", "user_log_views",
                       "user_topic_ctr_logit", "user_topic_log_impressions"],
    "user activity": ["user_ctr_logit", "user_log_impressions"],
    "advertiser and ad": ["ad_topic", "campaign_id", "advertiser_id", "ad_ctr_logit",
                          "campaign_ctr_logit", "ad_log_impressions"],
    "publisher and context": ["page_topic", "page_topic_match", "hour"],
    "frequency": ["log_exposures"],
    "position": ["position"],
}


def without(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The table with ``columns`` held constant (categoricals at their first
    category)."""
    out = table.copy()
    for column in columns:
        if column in CATEGORICAL_COLUMNS:
            out[column] = pd.Categorical.from_codes(np.zeros(len(out), np.int8),
                                                    dtype=out[column].dtype)
        else:
            out[column] = 0.0
    return out


X_day3_logged, y_day3 = served_features(test), test["clicked"].to_numpy()
y2 = day2["clicked"].to_numpy()
keep2 = downsample_negatives(y2, KEEP, np.random.default_rng(SEED))
X2, y2 = f2[keep2], y2[keep2]


def held_out_loss(columns: list[str]) -> float:
    model = LightGBMClickModel(n_estimators=40, learning_rate=0.2, n_jobs=1,
                               downsampling_rate=KEEP)
    model.fit(without(X2, columns), y2)
    return metrics.log_loss(y_day3, model.predict(without(X_day3_logged, columns)))


full_loss = held_out_loss([])
gain = pd.Series({group: 100 * (held_out_loss(cols) / full_loss - 1)
                  for group, cols in GROUPS.items()}, name="log loss increase (%)")
gain.sort_values(ascending=False).round(2).to_frame()

# %% tags=["remove-cell"]
ranked = gain.sort_values(ascending=False)
glue("gain_top", ranked.index[0], display=False)
glue("gain_top_value", f"{ranked.iloc[0]:.1f}%", display=False)
glue("gain_second", ranked.index[1], display=False)
glue("gain_second_value", f"{ranked.iloc[1]:.1f}%", display=False)
glue("gain_last", ranked.index[-1], display=False)
last = ranked.iloc[-1]
glue("gain_last_effect", f"raises it by {last:.2f}%" if last > 0 else
     f"lowers it by {-last:.2f}%: on these logs the model does a little better "
     f"without it", display=False)

# %% [markdown]
# Without the {glue:text}`gain_top` group the log loss rises by
# {glue:text}`gain_top_value`, without {glue:text}`gain_second` by
# {glue:text}`gain_second_value`; the least useful group,
# {glue:text}`gain_last`, {glue:text}`gain_last_effect`. Drop-column
# gain is honest where a model's built-in importance (split counts, total gain)
# is not: correlated features share credit, and high-cardinality ids collect
# splits that do not generalize. It is also expensive, one retraining per
# group, which is why teams run it per group, not per feature, and at feature
# review time rather than nightly. A group whose gain is within the day-to-day
# noise is a candidate for removal: every feature has a cost in pipelines,
# serving latency and things that can break.

# %% [markdown]
# ### Hashing high-cardinality ids, measured
#
# The logistic model gives every campaign and every advertiser its own weight: a
# table as long as the id list, which grows with every new advertiser. Real systems
# with millions of ids (queries, pages, users) **hash** each id into a fixed number
# of buckets instead: the table stays the same size and a new id needs no new
# column, at the price of collisions, ids that share a bucket and so a weight. We
# measure that price: the logistic model trained on day 2 and scored on day 3, with
# the campaign and advertiser ids hashed into B buckets each, against exact ids and
# against no ids at all.

# %%
ID_COLUMNS = ["campaign_id", "advertiser_id"]


def bucket_of(ids: np.ndarray, buckets: int) -> np.ndarray:
    """Each id's bucket: a fixed 64-bit hash of the id, modulo ``buckets``."""
    return (pd.util.hash_array(ids.astype(np.int64)) % np.uint64(buckets)).astype(np.int64)


def share_colliding(ids: np.ndarray, buckets: int) -> float:
    """Share of the ids whose bucket holds another id too."""
    bucket = bucket_of(ids, buckets)
    return float(np.mean(np.bincount(bucket)[bucket] > 1))


def hashed(table: pd.DataFrame, buckets: int) -> pd.DataFrame:
    """The table with each id column replaced by its bucket."""
    out = table.copy()
    for column in ID_COLUMNS:
        out[column] = pd.Categorical(bucket_of(out[column].to_numpy(np.int64), buckets),
                                     categories=range(buckets))
    return out


def logistic_loss(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Held-out (day 3) log loss of the logistic model trained on day 2's rows."""
    model = LogisticClickModel(downsampling_rate=KEEP).fit(train, y2)
    return metrics.log_loss(y_day3, model.predict(test))


# %%
BUCKETS = [4, 16, 64, 256, 1024]
live = np.unique(view.ads["campaign_id"].to_numpy()[view.active_ads(3)])
exact_loss = logistic_loss(X2, X_day3_logged)
hashing = pd.DataFrame({
    "live campaigns per bucket": [len(live) / b for b in BUCKETS],
    "share sharing a bucket": [share_colliding(live, b) for b in BUCKETS],
    "log loss vs exact ids (%)": [
        100 * (logistic_loss(hashed(X2, b), hashed(X_day3_logged, b)) / exact_loss - 1)
        for b in BUCKETS],
}, index=pd.Index(BUCKETS, name="buckets B"))
no_ids = 100 * (logistic_loss(without(X2, ID_COLUMNS), without(X_day3_logged, ID_COLUMNS))
                / exact_loss - 1)
hashing.round(3)

# %% tags=["remove-cell"]
cost = hashing["log loss vs exact ids (%)"]
shared_share = hashing["share sharing a bucket"]
glue("hash_live", f"{len(live):,}", display=False)
glue("hash_b_small", f"{BUCKETS[0]:,}", display=False)
glue("hash_b_large", f"{BUCKETS[-1]:,}", display=False)
glue("hash_per_small", f"{len(live) / BUCKETS[0]:.0f}", display=False)
glue("hash_cost_small", f"{cost.iloc[0]:+.2f}%", display=False)
glue("hash_cost_large", f"{cost.iloc[-1]:+.2f}%", display=False)
glue("hash_shared_large", pct(shared_share.iloc[-1], 0), display=False)
small_from = (cost.abs() <= 0.1)[::-1].cummin()[::-1]   # this B and every larger one
within = cost.index[small_from].tolist()
glue("hash_enough", f"from B = {within[0]:,} on it stays within 0.1% of exact ids"
     if within else "no B measured keeps it within 0.1% of exact ids", display=False)
if no_ids > 0.1:
    ids_worth = (f"Dropping the ids altogether raises it by {no_ids:.2f}%: they carry "
                 "signal the history features do not")
elif no_ids >= -0.1:
    ids_worth = (f"Dropping the ids altogether moves it only {no_ids:+.2f}%: the ads' and "
                 "campaigns' click-rate features carry most of what an id weight knows")
else:
    ids_worth = (f"Dropping the ids altogether even lowers it, by {-no_ids:.2f}%: trained "
                 "on one day, an id weight learns luck along with signal (the winner's "
                 "curse below), and the ads' and campaigns' click-rate features carry "
                 "what the ids know")
glue("hash_ids_worth", ids_worth, display=False)


# %% [markdown]
# With {glue:text}`hash_live` live campaigns, {glue:text}`hash_b_small` buckets put
# about {glue:text}`hash_per_small` of them on each weight and the held-out log loss
# moves
# {glue:text}`hash_cost_small` against exact ids; at {glue:text}`hash_b_large`
# buckets, where {glue:text}`hash_shared_large` of live campaigns still share one, it
# moves {glue:text}`hash_cost_large`, and {glue:text}`hash_enough`.
# {glue:text}`hash_ids_worth`. Collisions are common long before they cost
# anything measurable: ids that share a bucket share a weight, and the
# regularization already pulls the weights of ids with little traffic together.
# Hashing bounds the model's memory where ids arrive without end (queries, pages,
# users), and the model needs no new column when an advertiser arrives.

# %% [markdown]
# ### A label leak, measured
#
# History features must come from impressions *before* the row, and only from
# closed windows. Count the row's own click into its features and the model
# learns to read the label. We build day 3's features twice: honestly, from the
# history the server had that morning, and with a leak, from a history that
# already includes day 3's labels; and train a model on day 2 built each way.

# %%
def rebuild(rows: pd.DataFrame, counts) -> pd.DataFrame:
    """Features of logged rows recomputed from the history ``counts``."""
    return make_features(view, rows["user_id"], rows["ad_id"], rows["publisher_id"],
                         rows["hour"], rows["position"], counts, rows["exposures"])


def with_own_labels(counts, rows: pd.DataFrame):
    """A history that (wrongly) already counts these rows' labels."""
    return counts.copy().add(rows["user_id"], rows["ad_id"], rows["clicked"])


leaky_train = rebuild(day2, with_own_labels(servers[2].history, day2))[keep2]
leaky_test = rebuild(test, with_own_labels(servers[3].history, test))
honest_test = rebuild(test, servers[3].history)
oracle_day3 = test["true_p"].to_numpy() * world.delay_cdf(WINDOW)
floor = metrics.log_loss(y_day3, oracle_day3)
honest_train = rebuild(day2, servers[2].history)[keep2]
leaky = LogisticClickModel(downsampling_rate=KEEP).fit(leaky_train, y2)
honest = LogisticClickModel(downsampling_rate=KEEP).fit(honest_train, y2)
leak = pd.Series({
    "honest model, honest features": metrics.log_loss(
        y_day3, honest.predict(honest_test)),
    "leaky model, leaky features (offline)": metrics.log_loss(
        y_day3, leaky.predict(leaky_test)),
    "leaky model, serving features (online)": metrics.log_loss(
        y_day3, leaky.predict(honest_test))})
(100 * (leak / floor - 1)).round(2).to_frame("log loss above the oracle (%)")

# %% tags=["remove-cell"]
leak_gap = 100 * (leak / floor - 1)
glue("leak_offline", f"{leak_gap.iloc[1]:.1f}%", display=False)
glue("leak_online", f"{leak_gap.iloc[2]:.1f}%", display=False)
glue("leak_honest", f"{leak_gap.iloc[0]:.1f}%", display=False)
glue("leak_below", "below" if leak_gap.iloc[1] < 0 else "far closer to",
     display=False)
assert leak_gap.iloc[1] < leak_gap.iloc[0] < leak_gap.iloc[2]
assert leak_gap.iloc[2] > 0, "the prose says the leak is above the oracle online"
offline = leak_gap.iloc[1]
glue("leak_offline_vs", f"scored {abs(offline):.1f}% "
     + ("below" if offline < 0 else "above") + " the oracle", display=False)

# %% [markdown]
# Offline the leaky model looks brilliant, {glue:text}`leak_offline` against
# the oracle ({glue:text}`leak_below` the floor no honest model can beat); at
# serving time, where no row's label can be known yet, it is
# {glue:text}`leak_online` above, worse than the honest model
# ({glue:text}`leak_honest`). A model that beats the oracle, or a sudden jump
# in offline metrics after a feature change, is a leak until proven otherwise.
#
# ### A feedback loop in the counts, measured
#
# The history counts come from the platform's own choices, and those choices
# change. The first history held only the random bootstrap traffic; each night
# adds impressions chosen by a better model, so the platform's overall click
# rate rises:

# %%
base_rates = pd.Series({f"day {d}": s.history.base_rate for d, s in enumerate(servers)},
                       name="overall CTR of the history the server read")
base_rates.round(4).to_frame()

# %% [markdown]
# The package's history features are click rates *relative* to that overall
# rate. Suppose instead they were raw log-odds of each ad's and each user's
# click rate: every raw feature then rises with the overall rate, though no ad
# or user changed. We train a logistic model on day 0 and test it on day 1,
# with raw and with relative rates (raw = relative + the log-odds of the
# history's overall rate). A third model adds what the package's logistic model
# also has, a weight for every campaign and every advertiser id.

# %%
RATE_COLUMNS = ["ad_ctr_logit", "campaign_ctr_logit", "user_ctr_logit",
                "user_topic_ctr_logit"]
IDS = ["campaign_id", "advertiser_id"]


def raw(table: pd.DataFrame, base_rate: float) -> pd.DataFrame:
    """The table with click-rate features as raw log-odds instead of relative ones."""
    return table.assign(**{c: table[c] + np.log(base_rate / (1 - base_rate))
                           for c in RATE_COLUMNS})


day0, _ = join_clicks(days[0].impressions, clicks, WINDOW)
day1, _ = join_clicks(days[1].impressions, clicks, WINDOW)
keep0 = downsample_negatives(day0["clicked"], KEEP, np.random.default_rng(SEED))
X0, y0, X1 = served_features(day0)[keep0], day0["clicked"][keep0], served_features(day1)
rate0, rate1 = servers[0].history.base_rate, servers[1].history.base_rate
expected_day1 = day1["true_p"].sum() * world.delay_cdf(WINDOW)
variants = {"raw rates": (lambda t, r: without(raw(t, r), IDS)),
            "relative rates (the package)": (lambda t, r: without(t, IDS)),
            "relative rates + campaign and advertiser ids": (lambda t, r: t)}
drift = {}
for name, convert in variants.items():
    model = LogisticClickModel(downsampling_rate=KEEP).fit(convert(X0, rate0), y0)
    drift[name] = model.predict(convert(X1, rate1)).sum() / expected_day1
pd.Series(drift, name="day 1: predicted / true expected clicks").round(3).to_frame()

# %% tags=["remove-cell"]
glue("rate0", pct(rate0, 2), display=False)
glue("rate1", pct(rate1, 2), display=False)
glue("drift_raw", f"{drift['raw rates']:.2f}", display=False)
glue("drift_rel", f"{drift['relative rates (the package)']:.2f}", display=False)
glue("drift_ids", f"{drift['relative rates + campaign and advertiser ids']:.2f}",
     display=False)
assert drift["raw rates"] > drift["relative rates + campaign and advertiser ids"] > \
    drift["relative rates (the package)"]
miss_raw, miss_rel = drift["raw rates"] - 1, drift["relative rates (the package)"] - 1
assert miss_raw > 0 and abs(miss_rel) < abs(miss_raw)   # raw rates over-predict most
# the winner's curse: on the traffic they picked, lucky id weights over-predict
assert drift["relative rates + campaign and advertiser ids"] > 1
glue("drift_rel_left", "a smaller miss the "
     + ("other way" if miss_rel < 0 else "same way") + f" ({pct(abs(miss_rel), 0)} "
     + ("too few" if miss_rel < 0 else "too many") + " clicks)", display=False)

# %% [markdown]
# Between day 0's and day 1's features the history's overall click rate went
# from {glue:text}`rate0` to {glue:text}`rate1`, because day 0's served traffic
# joined the random bootstrap. With raw rates, yesterday's model reads every ad
# and every user as better than it learned them to be, and predicts
# {glue:text}`drift_raw` times the clicks; with relative rates,
# {glue:text}`drift_rel`. The model's own success moved its inputs. Relative
# rates remove the rise that came with the overall rate; what is left is
# {glue:text}`drift_rel_left`, a level that a calibrator refreshed on the
# newest traffic takes out (Lab 6.2).
#
# The third line is a subtler loop. With a weight per campaign and advertiser,
# learned from one day, some weights are high by luck. Tomorrow's auction, run
# by a model with the same lucky weights, picks exactly those ads, and on the
# traffic it picked the model predicts {glue:text}`drift_ids` times the clicks:
# the **winner's curse** of any system that acts on its own estimates. The
# cures are the same as for any overfit id: stronger regularization or
# smoothing of high-cardinality ids (LightGBM's categorical smoothing, hashing
# with a strong penalty), more days of training data, a calibrator refreshed
# on the newest traffic (Lab 6.2), and a little exploration traffic whose
# choices do not depend on the model.

# %% [markdown]
# ## 4. Recap
#
# - **Labels**: logged clicks are free and plentiful; ratings cost
#   {glue:text}`rate_cost` for one pass over a day and are kept for what clicks
#   cannot judge. Non-clicks include {glue:text}`unseen_all` never looked at and
#   impressions still in their window; the window trades
#   {glue:text}`miss_1h` missed clicks against {glue:text}`wait_1h` of the day
#   waiting a night at one hour.
# - **Position bias**: the served log said slot 3 gets {glue:text}`naive_slot3`
#   of slot 1's clicks, the randomized experiment {glue:text}`exp_slot3`, the
#   world {glue:text}`true_slot3`. Naive training predicted
#   {glue:text}`naive_cal` of the slot-1 truth; position as a feature
#   {glue:text}`pos_cal`, propensity weights {glue:text}`ipw_cal`.
# - **Features**: each player carries signal; {glue:text}`gain_top` matters most
#   by drop-column gain. A leak {glue:text}`leak_offline_vs` offline and
#   {glue:text}`leak_online` above it online; raw history rates made a
#   day-old model predict {glue:text}`drift_raw` times the clicks, and lucky id
#   weights {glue:text}`drift_ids` (the winner's curse). Hashing the ids into
#   {glue:text}`hash_b_large` buckets moved the log loss
#   {glue:text}`hash_cost_large`.
#
# ```{admonition} What to say in the interview
# :class: tip
# "Training data comes from the logs: impressions joined to clicks within an
# attribution window, labels written only once the window closes. I'd pick the
# window from the delay distribution: here an hour missed {glue:text}`miss_1h`
# of clicks and left {glue:text}`wait_1h` of the day for the next night. Human
# raters are for what clicks can't tell, policy and quality, at a cost per
# judgement. A non-click isn't always a negative: many were never seen, so
# position bias is the big one. I'd measure it with a small randomized-slot
# experiment (it put slot 3 at {glue:text}`exp_slot3` of slot 1, the served log
# said {glue:text}`naive_slot3`) and correct it, either with position as a
# feature fixed to slot 1 at serving or with inverse-propensity weights; naive
# training under-predicted the top slot at {glue:text}`naive_cal`. For
# features, I'd cover every player: user, advertiser and ad, publisher and
# context, frequency, keep what drop-column tests say earns its cost, compute
# history only from closed windows before the row, and make rates relative so
# the model's own success doesn't shift its inputs."
# ```
