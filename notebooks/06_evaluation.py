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
# # Lab 6.3: launch or rebuild? Offline, off-policy and online evaluation
#
# {doc}`Lab 6.2 <06_models>` climbed the model ladder offline, against the
# oracle. This lab asks the question that follows every offline win: should the
# new model serve real traffic? The {doc}`concept page <../book/step6_evaluation>`
# gives the reasoning; here the world knows the answer, so every estimate can be
# checked against the truth.
#
# ```{admonition} What you will build
# :class: note
# - **Two challengers** for the production logistic model A: a LightGBM model B
#   trained on the same logs, and C, the same ranking as B but over-confident.
# - **Offline evaluation** of all three on a held-out day, next to the oracle.
# - **Exploration traffic** with logged propensities, and its cost in revenue,
#   measured at three exploration shares.
# - **Off-policy estimates** (IPS, SNIPS, doubly robust) of B's slot-1 click rate
#   from the old model's logs, against the value the world gives when B serves.
# - Their **bias and spread** over many replays as the exploration share shrinks.
# - **Two online A/B tests**, randomized by user, with a decision rule written
#   before the test: B against A, then C against A: C beats A on the offline
#   ranking metric (AUC) and loses online.
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
from scipy.optimize import brentq
from scipy.special import expit, logit

from adsys import metrics, offpolicy, plots
from adsys.checks import step6_evaluation as check
from adsys.events import FEATURE_PREFIX
from adsys.experiment import ratio_delta_interval
from adsys.history import ExposureCounter
from adsys.pacing import traffic_forecast
from adsys.prediction import LightGBMClickModel, LogisticClickModel
from adsys.serving import AdServer, SplitServer
from adsys.simulate import SimulationConfig, bootstrap, retrain, simulate_day
from adsys.world import World

plots.style()
SEED = 0
N = 20_000                        # requests per simulated day: small enough for Binder
config = SimulationConfig(steps_per_day=24, exploration=0.05,   # hourly pacing steps
                          candidate_share=1.0)   # all candidates, when a server logs them
world = World(seed=SEED)
view = world.view


def pct(x: float, digits: int = 1, sign: bool = False) -> str:
    """A fraction as a percentage string for glue."""
    return f"{100 * x:{'+' if sign else ''}.{digits}f}%"


def features(log: pd.DataFrame) -> pd.DataFrame:
    """The logged features (the `f_` columns) as the click models read them."""
    columns = log.filter(like=FEATURE_PREFIX)
    return columns.rename(columns=lambda c: c[len(FEATURE_PREFIX):])


# %% [markdown]
# ## 1. The production model and two challengers
#
# The platform launches as in Step 4: a bootstrap on random traffic, then days of
# the nightly loop. Production runs with {glue:text}`eps_prod` exploration (the
# next section explains why). After two days the nightly job trains model A,
# the logistic model production uses, and on the very same logs the team trains
# challenger B, a LightGBM model.

# %%
rng = np.random.default_rng(SEED)
models, history, boot = bootstrap(world, rng, 30_000, browsing_days=14,
                                  requests_per_day=N)
forecast = traffic_forecast(boot["time"].drop_duplicates(), config.steps_per_day)

# %% [markdown]
# Two days of the loop, each served by the model trained the night before:

# %%
exposures, logs, next_ids = ExposureCounter(view.n_ads), [], (0, 0)
for day in range(2):
    server = AdServer(view, models.heavy, history, exposures, models.light,
                      reserve=config.reserve, model_version=day,
                      exploration=config.exploration)
    logs.append(simulate_day(world, server, day, rng, config, forecast, N, *next_ids))
    next_ids = (next_ids[0] + N, next_ids[1] + len(logs[-1].impressions))
    forecast = traffic_forecast(logs[-1].requests.time, config.steps_per_day)
    if day == 0:
        models, history = retrain(logs, config, LogisticClickModel, history, rng,
                                  models)

# %% [markdown]
# On the closed impressions of those two days, with the features logged at
# serving, the nightly job fits A and the team fits B (100 trees; one thread, as
# on Binder). Both keep the same light selector, so the candidates are the same
# and only the click model differs.


# %%
def lightgbm(**kwargs) -> LightGBMClickModel:
    return LightGBMClickModel(n_estimators=100, learning_rate=0.1, n_jobs=1, **kwargs)


model_a, history_2 = retrain(logs, config, LogisticClickModel, history,
                             np.random.default_rng(1), models)
model_b, _ = retrain(logs, config, lightgbm, history, np.random.default_rng(1), models)

# %% [markdown]
# Challenger C is B made over-confident: its log-odds are stretched by a factor
# {glue:text}`stretch`, then shifted. It ranks every pair of impressions exactly
# as B does. That is what an over-fitted model (too many trees, too little
# regularization, a leaky feature) looks like: too sure at both ends. C is a
# construction, built to make a point: we fit its shift on the held-out day of
# the next section, so that there it predicts as many clicks as B on average,
# and so has B's AUC *and* B's calibration ratio.


# %%
class OverConfident:
    """B's log-odds times `stretch`, shifted to keep B's mean on `reference`."""

    def __init__(self, base, stretch: float, reference: pd.DataFrame) -> None:
        self.base, self.stretch = base, stretch
        z = logit(base.predict(reference))
        target = expit(z).mean()
        self.shift = brentq(lambda c: expit(stretch * z + c).mean() - target, -30, 30)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return expit(self.stretch * logit(self.base.predict(features)) + self.shift)


STRETCH = 3.0

# %% tags=["remove-cell"]
glue("eps_prod", pct(config.exploration, 0), display=False)
glue("stretch", f"{STRETCH:g}", display=False)
glue("n_requests", f"{N:,}", display=False)

# %% [markdown]
# ## 2. Offline: B wins, and C looks as good on ranking
#
# Day 2 is the held-out day. Production (A, no exploration) serves its
# {glue:text}`n_requests` requests; then the three models predict the same
# logged impressions, at the slot each was shown in. The world adds the oracle:
# the true click probability of every impression, the floor no model can beat.
# {doc}`Lab 6.2 <06_models>` covers the ladder and the oracle in depth; here
# they are the first filter.

# %%
EVAL_DAY, EVAL_SEED = 2, 42


def play(model, eps: float = 0.0, candidates: bool = False):
    """Serve day 2 with `model` at exploration share `eps` (the same requests)."""
    server = AdServer(view, model, history_2, ExposureCounter(view.n_ads),
                      model_a.light, reserve=config.reserve, model_version=EVAL_DAY,
                      exploration=eps, log_candidates=candidates)
    result = simulate_day(world, server, EVAL_DAY, np.random.default_rng(EVAL_SEED),
                          config, forecast, N, *next_ids)
    clicked = result.impressions["impression_id"].isin(result.clicks["impression_id"])
    result.impressions["clicked"] = clicked.astype(int)
    return result


# %% [markdown]
# The held-out day, C fitted on it, and the four sets of predictions:

# %%
day_a = play(model_a.heavy)
held_out = day_a.impressions
model_c = OverConfident(model_b.heavy, STRETCH, features(held_out))
heavy = {"A (logistic)": model_a.heavy, "B (LightGBM)": model_b.heavy,
         "C (over-confident B)": model_c}
y = held_out["clicked"].to_numpy()
predictions = {name: m.predict(features(held_out)) for name, m in heavy.items()}
predictions["oracle (true probability)"] = held_out["true_p"].to_numpy()
offline = pd.DataFrame({name: {
    "log loss": metrics.log_loss(y, p), "NE": metrics.normalized_entropy(y, p),
    "AUC": metrics.roc_auc(y, p), "calibration ratio": metrics.calibration_ratio(y, p),
} for name, p in predictions.items()}).T
offline.round(4)

# %% tags=["remove-cell"]
ll = offline["log loss"]
names = list(heavy)
gap_a, gap_b, gap_c = (ll[n] / ll.iloc[-1] - 1 for n in names)
assert ll[names[1]] < ll[names[0]] < ll[names[2]]
assert offline["AUC"][names[1]] > offline["AUC"][names[0]]
assert abs(offline["AUC"][names[2]] - offline["AUC"][names[1]]) < 1e-9
cal = offline["calibration ratio"]
assert abs(cal[names[2]] - cal[names[1]]) < 0.01       # C has B's calibration ratio
glue("off_ll_gain", pct(1 - ll[names[1]] / ll[names[0]]), display=False)
glue("off_gap_a", pct(gap_a), display=False)
glue("off_gap_b", pct(gap_b), display=False)
glue("off_gap_c", pct(gap_c), display=False)
glue("off_auc_a", f"{offline['AUC'][names[0]]:.3f}", display=False)
glue("off_auc_b", f"{offline['AUC'][names[1]]:.3f}", display=False)
glue("off_cal_a", f"{offline['calibration ratio'][names[0]]:.2f}", display=False)
glue("off_cal_b", f"{cal[names[1]]:.2f}", display=False)
glue("off_cal_c", f"{cal[names[2]]:.2f}", display=False)
glue("off_imps", f"{len(held_out):,}", display=False)

# %% [markdown]
# On {glue:text}`off_imps` held-out impressions, B's log loss is
# {glue:text}`off_ll_gain` lower than A's, and its AUC is higher
# ({glue:text}`off_auc_b` against {glue:text}`off_auc_a`). Measured against the
# oracle, A is {glue:text}`off_gap_a` above the floor, B {glue:text}`off_gap_b`.
# C, as built, has B's AUC to the last digit and B's calibration ratio
# ({glue:text}`off_cal_c` against {glue:text}`off_cal_b`; A's is
# {glue:text}`off_cal_a`), so a team that reads AUC and the calibration ratio
# would rank it with B. Only its log loss,
# {glue:text}`off_gap_c` above the oracle, says something is off. The
# reliability curves show what, because the world can draw them against the
# true click probability instead of noisy clicks:

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.0, 3.4))
truth = held_out["true_p"].to_numpy()
for name, p in list(predictions.items())[:3]:
    bins = pd.qcut(p, 10, labels=False, duplicates="drop")
    curve = pd.DataFrame({"p": p, "true": truth}).groupby(bins).mean()
    ax.plot(curve["p"], curve["true"], marker="o", ms=3, label=name)
ax.plot([1e-5, 0.3], [1e-5, 0.3], color="grey", ls="--", lw=1, label="calibrated")
ax.set(xscale="log", yscale="log", xlabel="predicted click probability (decile mean)",
       ylabel="true click probability", ylim=(1e-3, 0.3))
ax.legend(loc="upper left", fontsize=8)
glue("fig_reliability", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_reliability
# :name: fig-step6-reliability
#
# Mean true click probability against the mean prediction, in deciles of each
# model's predictions, on the held-out day (log-log axes).
# ```
#
# **Takeaway:** B lies near the diagonal; C's curve is flatter than the
# diagonal: it predicts too little for the ads it dislikes and too much for the
# ads it likes. In an auction that multiplies pCTR by money, that is a pricing
# error, and the sections below show what it costs.

# %% [markdown]
# ## 3. Exploration: a small, priced share of random choices
#
# Every log so far was written by a model choosing the ads it liked best. A new
# model will choose differently, and for the ads the old one never showed in
# slot 1 the log has no outcome at all. Exploration fixes that: on a share eps
# of requests the server puts a random eligible candidate (eCPM at least the
# reserve) in slot 1, sells it at the reserve price, and logs with every slot-1
# impression its **propensity**, the probability that the policy put that ad
# there. We play day 2 again, with the same requests, at three shares.

# %%
EPS = (0.0, 0.05, 0.2)
runs = {0.0: day_a}
runs.update({eps: play(model_a.heavy, eps, candidates=True) for eps in EPS[1:]})


def summary(result) -> dict[str, float]:
    imp = result.impressions
    slot1 = imp[imp["position"] == 1]
    return {"explored slot-1 ads": int(slot1["explored"].sum()),
            "revenue ($)": imp["charged"].sum(),
            "expected revenue ($)": (imp["true_p"] * imp["price"]).sum(),
            "slot-1 true CTR": slot1["true_p"].mean(), "true CTR": imp["true_p"].mean()}


exploring = pd.DataFrame({f"eps = {eps:g}": summary(r) for eps, r in runs.items()}).T
exploring.style.format("{:.4f}").format("{:,.0f}", subset=list(exploring.columns[:3]))

# %% tags=["remove-cell"]
expected = exploring["expected revenue ($)"].to_numpy()
cost = 1 - expected / expected[0]
assert cost[2] > cost[1] > 0
glue("eps_high", pct(EPS[2], 0), display=False)
glue("cost_05", pct(cost[1]), display=False)
glue("cost_20", pct(cost[2]), display=False)
glue("cost_05_dollars", f"${expected[0] - expected[1]:,.0f}", display=False)
ctr1 = exploring["slot-1 true CTR"].to_numpy()
glue("ctr_cost_20", pct(1 - ctr1[2] / ctr1[0]), display=False)
assert ctr1[2] < ctr1[0]      # "slot 1's click rate drops"

# %% [markdown]
# Revenue measured from the clicks moves with the luck of the draws; the world
# also knows the *expected* revenue, true click probability times price, summed
# over impressions. Exploring {glue:text}`eps_prod` of the traffic costs
# {glue:text}`cost_05` of the day's expected revenue
# ({glue:text}`cost_05_dollars` on this small day); exploring 20% costs
# {glue:text}`cost_20`, and slot 1's click rate drops by
# {glue:text}`ctr_cost_20`. The random ad is usually worse than the winner, and
# it pays only the reserve. That is the price of being able to evaluate the next
# model, and of giving new ads a chance to be seen (Step 7 returns to that).
#
# Which propensities did the server log? With probability 1 - eps the policy
# shows the auction's winner; with probability eps it draws one of the
# `n_eligible` candidates uniformly, the winner included. Each candidate's
# probability follows.

# %%
EPS_LOG = 0.2
log_20 = runs[EPS_LOG].impressions
cands_20 = runs[EPS_LOG].candidates
eligible = cands_20[cands_20["propensity"] > 0]
winner = eligible.loc[eligible.groupby("request_id")["ecpm"].idxmax(), "ad_id"]
per_request = pd.DataFrame({
    "n_eligible": eligible.groupby("request_id").size(),
    "n_candidates": cands_20.groupby("request_id").size(),
    "winner_ad": winner.set_axis(eligible.loc[winner.index, "request_id"])})
slot1 = log_20[log_20["position"] == 1].join(per_request, on="request_id")
slot1["is_winner"] = slot1["ad_id"] == slot1["winner_ad"]
counts = ["n_eligible", "n_candidates"]
slot1[counts] = slot1[counts].astype(int)
shown = ["request_id", "ad_id", "explored", "n_eligible", "is_winner", "propensity"]
slot1[shown].head()

# %% [markdown]
# ```{exercise} The propensity of each slot-1 ad
# :label: ex-step6-propensity
#
# For every slot-1 impression of the eps = 0.2 log, compute the probability
# that the logging policy put that ad in slot 1, from `slot1["n_eligible"]`,
# `slot1["is_winner"]` and `EPS_LOG`, without reading the logged `propensity`
# column. Store the array in `propensity`.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-propensity
# :class: dropdown
# ```

# %%
propensity = EPS_LOG / slot1["n_eligible"] + (1 - EPS_LOG) * slot1["is_winner"]

# %% [markdown]
# ```{solution-end}
# ```

# %%
check.slot1_propensity(propensity, slot1["n_eligible"], slot1["is_winner"], EPS_LOG,
                       n_candidates=slot1["n_candidates"])
assert np.allclose(propensity, slot1["propensity"])   # the server logged the same

# %% [markdown]
# ## 4. What would B have done? Off-policy estimates
#
# The question for B is counterfactual: had B chosen the slot-1 ad of every
# request, how often would slot 1 have been clicked? B re-ranks the candidates
# the old system logged (those exploration could draw, so that every choice B
# makes has a positive propensity) by its own eCPM, bid x its pCTR. Its choice
# is a deterministic policy: probability 1 for its ad, 0 for the others.

# %%
def b_pool(result) -> pd.DataFrame:
    """The candidates exploration could draw, with B's pCTR and eCPM for each."""
    pool = result.candidates[result.candidates["propensity"] > 0].copy()
    pool["p_b"] = model_b.heavy.predict(features(pool))
    pool["ecpm_b"] = 1000 * pool["bid"] * pool["p_b"]
    return pool


# %% [markdown]
# For every request, the log's slot-1 decision (ad, click, propensity) next to
# B's choice, and B's pCTR for both (the reward model of doubly robust):


# %%
def decisions(result, pool: pd.DataFrame) -> pd.DataFrame:
    """One row per slot-1 decision: what the log shows and what B would have shown."""
    choice = pool.loc[pool.groupby("request_id")["ecpm_b"].idxmax()]
    imp = result.impressions
    logged = imp[imp["position"] == 1].set_index("request_id")
    out = pd.DataFrame({
        "reward": logged["clicked"], "propensity": logged["propensity"],
        "logged_ad": logged["ad_id"],
        "target_ad": choice.set_index("request_id")["ad_id"]}).dropna()
    out[["logged_ad", "target_ad"]] = out[["logged_ad", "target_ad"]].astype(int)
    b = pool.set_index(["request_id", "ad_id"])["p_b"]
    out["target"] = (out["logged_ad"] == out["target_ad"]).astype(float)
    for column in ("logged", "target"):
        pairs = pd.MultiIndex.from_arrays([out.index, out[f"{column}_ad"]])
        out[f"p_b_{column}"] = b.loc[pairs].to_numpy()
    return out


pools = {eps: b_pool(runs[eps]) for eps in EPS[1:]}
log_b = {eps: decisions(runs[eps], pools[eps]) for eps in EPS[1:]}
d = log_b[EPS_LOG]          # the eps = 0.2 log
d.head()

# %% [markdown]
# ```{exercise} Inverse propensity scoring by hand
# :label: ex-step6-ips
#
# From `d`, the eps = 0.2 log, estimate B's slot-1 click rate per decision by
# inverse propensity scoring, without `offpolicy.ips`: each logged click counts
# `target / propensity` times, and the sum is divided by the number of logged
# decisions. Store it in `estimate`.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-ips
# :class: dropdown
# ```

# %%
estimate = np.mean(d["reward"] * d["target"] / d["propensity"])

# %% [markdown]
# ```{solution-end}
# ```

# %%
check.ips_estimate(estimate, d["reward"], d["propensity"], d["target"])

# %% [markdown]
# Now the three estimators of the package, next to two naive answers: the
# logged click rate (what the *old* policy got) and the **direct method**, B's
# own average prediction for its own choices (the model grading itself). Doubly
# robust starts from the direct method and corrects it with IPS on B's errors.
# The truth comes from the world: day 2 served by B itself, the same requests,
# slot 1's true click probability averaged over requests.

# %%
def estimates(d: pd.DataFrame) -> dict[str, float]:
    args = (d["reward"], d["propensity"], d["target"])
    return {"logged (old policy)": d["reward"].mean(),
            "direct method": d["p_b_target"].mean(), "IPS": offpolicy.ips(*args),
            "SNIPS": offpolicy.snips(*args),
            "doubly robust": offpolicy.doubly_robust(*args, d["p_b_logged"],
                                                     d["p_b_target"])}


day_b = play(model_b.heavy)
truth_b = day_b.impressions.query("position == 1")["true_p"].mean()
truth_a = day_a.impressions.query("position == 1")["true_p"].mean()
ope = pd.DataFrame({f"eps = {eps:g}": estimates(d) for eps, d in log_b.items()})
ope["error at eps = 0.05"] = ope["eps = 0.05"] / truth_b - 1
ope["error at eps = 0.2"] = ope["eps = 0.2"] / truth_b - 1
ope.style.format("{:.5f}").format("{:+.1%}", subset=list(ope.columns[2:]))

# %% tags=["remove-cell"]
err = ope["error at eps = 0.2"]
glue("truth_b", f"{truth_b:.4f}", display=False)
glue("truth_a", f"{truth_a:.4f}", display=False)
glue("b_vs_a_slot1", pct(truth_b / truth_a - 1, sign=True), display=False)
for key, row in (("ips", "IPS"), ("snips", "SNIPS"), ("dr", "doubly robust"),
                 ("dm", "direct method"), ("logged", "logged (old policy)")):
    glue(f"err20_{key}", pct(err[row], sign=True), display=False)
    glue(f"err05_{key}", pct(ope.loc[row, "error at eps = 0.05"], sign=True),
         display=False)
agree = log_b[EPS_LOG]["target"].mean()
glue("agree", pct(agree, 0), display=False)
dm_err = err["direct method"]
if abs(dm_err) < 0.01:
    dm_reason = ("negligible on this log, which does not make the method unbiased: "
                 "Section 5 measures its bias against the replay's truth")
elif dm_err > 0:
    dm_reason = ("B over-predicts the ads it chooses: the winner of a comparison on "
                 "predictions tends to be the one whose prediction erred upwards")
else:
    dm_reason = ("B under-predicts the ads it chooses here: its calibration on its own "
                 "picks is not its calibration overall")
glue("dm_reason", dm_reason, display=False)

# %% [markdown]
# The truth: served by B, slot 1 is clicked with probability
# {glue:text}`truth_b` per request, against {glue:text}`truth_a` under A
# ({glue:text}`b_vs_a_slot1`). From the eps = 0.2 log, IPS is off by
# {glue:text}`err20_ips`, SNIPS by {glue:text}`err20_snips` and doubly robust by
# {glue:text}`err20_dr`; from the eps = 0.05 log by {glue:text}`err05_ips`,
# {glue:text}`err05_snips` and {glue:text}`err05_dr`. The direct method is off by
# {glue:text}`err20_dm`: {glue:text}`dm_reason`. The
# logged click rate (off by {glue:text}`err05_logged` and
# {glue:text}`err20_logged`) measures the old policy and would read the same for
# any new model. One log is one draw; whether the other errors are bias or bad
# luck needs many draws.

# %% [markdown]
# ## 5. Bias and spread as exploration shrinks
#
# One day of the simulator is too slow to replay hundreds of times, but the part
# that matters can be replayed exactly: keep the day's requests and candidates,
# let the epsilon-greedy policy choose again, and draw the click from the
# world's true probability of the chosen ad in slot 1. Each replay is a fresh
# exploration log of the same day.

# %%
pool = pools[EPS_LOG].sort_values("request_id", kind="stable").reset_index(drop=True)
req = runs[EPS_LOG].requests.to_frame().set_index("request_id").loc[pool["request_id"]]
true_1 = world.click_probability(req["user"], pool["ad_id"], req["publisher"],
                                 req["hour"], 1, EVAL_DAY,
                                 np.rint(np.expm1(pool["f_log_exposures"])).astype(int))
p_b = pool["p_b"].to_numpy()
rid = pool["request_id"].to_numpy()
start = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1]])
size = np.diff(np.r_[start, len(pool)])

# %% [markdown]
# Each request's greedy winner under A and B's choice, as rows of the pool:


# %%
def first_of(score: np.ndarray) -> np.ndarray:
    """Row of each request's highest score (ties: the earlier row)."""
    order = np.lexsort((-score, rid))
    return order[start]


best_a = first_of(pool["ecpm"].to_numpy())       # A's winner, the greedy choice
best_b = first_of(pool["ecpm_b"].to_numpy())     # B's choice
replay_truth = true_1[best_b].mean()

# %% [markdown]
# The truth of the replayed world is the mean true click probability of B's
# choices among the logged candidates, {glue:text}`replay_truth`. B serving the
# whole day got {glue:text}`truth_b`: serving B also changes which ads users saw
# earlier in the day (fatigue) and how budgets paced, which a replay of single
# decisions holds fixed. The replay draws the logging policy's choice, its
# click, and the four estimates, for 200 seeds at each of six exploration
# shares (a couple of seconds in all: everything is vectorized over the day's
# requests).

# %%
def replay(eps: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    explore = rng.random(len(start)) < eps
    drawn = start + (rng.random(len(start)) * size).astype(int)
    pick = np.where(explore, drawn, best_a)
    reward = (rng.random(len(start)) < true_1[pick]).astype(float)
    logging = eps / size + (1 - eps) * (pick == best_a)
    args = (reward, logging, (pick == best_b).astype(float))
    return {"eps": eps, "IPS": offpolicy.ips(*args), "SNIPS": offpolicy.snips(*args),
            "doubly robust": offpolicy.doubly_robust(*args, p_b[pick], p_b[best_b]),
            "direct method": p_b[best_b].mean()}


GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
draws = pd.DataFrame([replay(eps, seed) for eps in GRID for seed in range(200)])
error = draws.set_index("eps") / replay_truth - 1
spread = error.groupby("eps").agg(["mean", "std"])
spread.round(3)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 3.2))
for i, name in enumerate(["IPS", "SNIPS", "doubly robust", "direct method"]):
    mean, std = spread[name]["mean"], spread[name]["std"]
    x = np.asarray(GRID) * (1 + 0.06 * (i - 1.5))          # nudge to keep bars apart
    ax.errorbar(x, mean, yerr=std, marker="o", ms=3, capsize=2, label=name)
ax.axhline(0, color="grey", lw=1)
ax.set(xscale="log", xlabel="exploration share eps (log scale)",
       ylabel="error against the truth")
ax.set_xticks(GRID, [f"{eps:g}" for eps in GRID])
ax.minorticks_off()
plots.percent_axis(ax)
ax.legend(ncol=2, fontsize=8)
glue("fig_ope", fig, display=False)
plt.close(fig)

# %% tags=["remove-cell"]
sd = spread.xs("std", axis=1, level=1)
mean_err = spread.xs("mean", axis=1, level=1)
n_dec = len(start)
for name, key in (("IPS", "ips"), ("SNIPS", "snips"), ("doubly robust", "dr")):
    for eps in (0.05, 0.2, 0.01):
        glue(f"sd_{key}_{round(100 * eps):03d}", pct(sd.loc[eps, name], 0),
             display=False)
    # standard error of the mean over 200 seeds: is the bias distinguishable from 0?
    se = sd[name] / np.sqrt(200)
    assert (mean_err[name].abs() < 4 * se + 0.01).all(), name
assert (sd["IPS"].diff().dropna() < 0).all()             # spread falls as eps grows
glue("replay_truth", f"{replay_truth:.4f}", display=False)
glue("bias_dm", pct(mean_err["direct method"].mean(), sign=True), display=False)
dm_small = abs(mean_err.loc[0.05, "direct method"]) < sd.loc[0.05, "IPS"]
glue("dm_versus", "here that is smaller than the spread of IPS at 5% exploration: B "
     "is a decent model of its own choices" if dm_small else "here that is larger than "
     "the spread of IPS at 5% exploration", display=False)
glue("replay_n", f"{n_dec:,}", display=False)
need = n_dec * (sd.loc[0.05, "doubly robust"] / 0.05) ** 2
glue("need_05", f"{need:,.0f}", display=False)
glue("need_days", f"{need / N:.0f}", display=False)
glue("need_seconds", f"{need / 100_000:.0f}", display=False)
dr_gain = 1 - sd["doubly robust"] / sd["IPS"]
# B's calibration (pCTR over true probability, slot 1) on all candidates and its picks
cal_pool, cal_picks = p_b.sum() / true_1.sum(), p_b[best_b].sum() / true_1[best_b].sum()
assert abs(cal_picks - 1 - mean_err["direct method"].mean()) < 1e-9   # the DM's bias
glue("cal_pool", f"{cal_pool:.2f}", display=False)
glue("cal_picks", f"{cal_picks:.2f}", display=False)
side = "below" if cal_picks < 1 else "above"
lifted = "higher" if cal_picks > cal_pool else "lower"
glue("picks_answer", f"Here B's predictions on its picks sit {lifted} against the "
     f"truth than on all candidates ({cal_picks:.2f} against {cal_pool:.2f}), "
     + ("as the winner's curse predicts" if cal_picks > cal_pool else
        "against what the winner's curse alone predicts")
     + f", and still {side} 1, so the direct method is biased "
     + ("downwards" if cal_picks < 1 else "upwards") + ".", display=False)
glue("dr_gain", pct(dr_gain.max(), 0), display=False)
assert (dr_gain > 0).all()

# %% [markdown]
# ```{glue:figure} fig_ope
# :name: fig-step6-ope
#
# Error of each estimate of B's slot-1 click rate against the truth, mean and
# one standard deviation over 200 replays of day 2, at six exploration shares.
# ```
#
# **Takeaway:** IPS, SNIPS and doubly robust show no bias at any share (their
# mean error is within the noise of 200 replays: IPS is unbiased when the logged
# propensities are right, SNIPS only as the logs grow, doubly robust when either
# its propensities or its model is right), but their spread grows as
# exploration shrinks: one standard deviation is {glue:text}`sd_ips_020` of the
# value at eps = 0.2, {glue:text}`sd_ips_005` at 0.05 and
# {glue:text}`sd_ips_001` at 0.01, with {glue:text}`replay_n` decisions. The
# direct method never moves and is wrong by {glue:text}`bias_dm` whatever eps;
# {glue:text}`dm_versus`. Its error cannot be seen from the logs, though: only
# the unbiased estimators come with an honest interval.
# Doubly robust helps, but by at most {glue:text}`dr_gain` of IPS's spread here:
# with clicks this rare, most of the noise is the coin of the click itself,
# which no reward model removes. For doubly robust's {glue:text}`sd_dr_005`
# spread at 5% exploration to fall to 5%, the log would need about
# {glue:text}`need_05` decisions: {glue:text}`need_days` days of this toy
# platform, or {glue:text}`need_seconds` seconds of a platform serving 100,000
# requests a second.

# %% [markdown]
# :::{admonition} Questions on paper
# :class: tip
#
# 1. Why must exploration draw only among ads that passed the reserve, and what
#    could off-policy evaluation not say about a policy that shows an ad below it?
# 2. In the eps = 0.2 log, B would have shown the logged slot-1 ad on only
#    {glue:text}`agree` of the decisions. Where do the noisy terms of IPS come
#    from, and why does the spread grow as eps shrinks?
# 3. B's calibration ratio on the held-out impressions was
#    {glue:text}`off_cal_b`. In the replayed day, its slot-1 predictions sum to
#    {glue:text}`cal_pool` of the true click probabilities over all eligible
#    candidates, and {glue:text}`cal_picks` over the ads it picks. Why can a
#    model's calibration on its own choices differ from its calibration overall,
#    and what does that do to the direct method?
# :::

# %% [markdown]
# ```{dropdown} Model answers
# 1. Every action the new policy might take needs a positive logging probability
#    (the *support* condition). An ad below the reserve is never shown, so the log
#    has no outcome for it and IPS would divide by zero; a policy that shows such
#    ads cannot be evaluated from these logs at all, only tested online.
# 2. The weights: where B agrees with A's winner, the weight is about
#    1 / (1 - eps), close to 1; where it disagrees, the only useful rows are the
#    explored ones that happened to pick B's ad, each with weight n / eps (for
#    ten eligible ads: 50 at eps = 0.2, 200 at 0.05, 1,000 at 0.01). The more B
#    disagrees and the smaller eps, the more the estimate rests on a handful of
#    heavily weighted clicks.
# 3. Calibration on average is not calibration on the ads B *chooses*: B picks
#    the candidate with the highest predicted eCPM, and among candidates with
#    similar true value the one whose pCTR happens to be too high wins (the
#    winner's curse), which pushes its predictions on its picks up relative to
#    the truth. Calibration also varies by slice: the held-out ratio is over
#    A's shown impressions in every slot, the replay's over all eligible
#    candidates in slot 1. {glue:text}`picks_answer` The direct
#    method averages exactly those predictions, so its bias is B's calibration
#    error on its own picks, which the logs cannot reveal: only clicks on B's
#    choices measure it. Doubly robust corrects it with the logged clicks.
# ```

# %% [markdown]
# ## 6. The online test
#
# Off-policy estimates screen candidates; the launch decision is an online A/B
# test ({doc}`Step 3 <../book/step3_metrics>` set up the statistics). Users
# are split by a hash of their id, so each user sees one model for the whole
# test; both arms share the selector, the budgets and the pacing, as they would
# on a real platform. The rule is written **before** the test:

# %%
RULE = pd.DataFrame({
    "role": ["primary", "guardrail", "guardrail", "secondary", "secondary"],
    "better": ["up", "down", "down", "up", "up"],
    "tolerance": [0.0, 0.05, 0.10, 0.0, 0.0],
}, index=["revenue per request", "cost per click", "repeated-ad share", "CTR",
          "ads per request"]).rename_axis("metric")
RULE.style.format({"tolerance": "{:.0%}"})

# %% [markdown]
# - **Launch** if revenue per request is up with its whole 95% interval above
#   0, and no guardrail fails.
# - A **guardrail fails** if it moves the wrong way by more than its tolerance
#   and its interval excludes 0: advertisers' cost per click up more than 5%
#   (the advertiser side), the share of impressions repeating an ad the user
#   already saw today up more than 10% (the user side).
# - **Rebuild** if revenue per request is down with its whole interval below 0.
# - Otherwise **iterate**: fix what failed, or size a longer test.
#
# CTR and ads per request are secondary: they explain a result, they do not
# decide it. Every metric is a ratio over users (revenue over requests, clicks
# over impressions), so its interval comes from per-user totals by the delta
# method.

# %%
AB_DAYS = 3


def ab_test(treatment, salt: str, first_day: int) -> pd.DataFrame:
    """Run a user-split test for AB_DAYS days; return per-user totals by arm."""
    shared = ExposureCounter(view.n_ads)
    servers = [AdServer(view, m, history_2, shared, model_a.light,
                        reserve=config.reserve, model_version=v)
               for v, m in ((0, model_a.heavy), (1, treatment))]
    split = SplitServer(*servers, salt=salt)
    rng, days = np.random.default_rng(first_day), []
    for day in range(first_day, first_day + AB_DAYS):
        result = simulate_day(world, split, day, rng, config, forecast, N, *next_ids)
        imp = result.impressions
        imp["clicked"] = imp["impression_id"].isin(result.clicks["impression_id"])
        days.append((imp, result.requests.to_frame()))
    return per_user(days, split)


# %% [markdown]
# Each user's totals over the test: requests, impressions, clicks, revenue and
# repeated ads (impressions of an ad the user had already seen that day).

# %%
def per_user(days: list, split: SplitServer) -> pd.DataFrame:
    imp = pd.concat([i for i, _ in days], ignore_index=True)
    requests = pd.concat([r for _, r in days], ignore_index=True)
    imp = imp.assign(repeat=imp["exposures"] > 0)
    users = imp.groupby("user_id").agg(
        impressions=("ad_id", "size"), clicks=("clicked", "sum"),
        revenue=("charged", "sum"), repeats=("repeat", "sum"))
    users = users.reindex(requests["user"].unique(), fill_value=0)
    users["requests"] = requests.groupby("user").size()
    users["arm"] = np.where(split.arm(users.index.to_numpy()), "treatment", "control")
    return users


# %% [markdown]
# Each metric is a ratio of two per-user totals; `ratio_delta_interval` gives the
# change and its interval:

# %%
METRICS = {"revenue per request": ("revenue", "requests"),
           "cost per click": ("revenue", "clicks"),
           "repeated-ad share": ("repeats", "impressions"),
           "CTR": ("clicks", "impressions"),
           "ads per request": ("impressions", "requests")}


def analyse(users: pd.DataFrame, metrics_: dict = METRICS) -> pd.DataFrame:
    """Relative change of each ratio metric with its delta-method 95% interval."""
    a, b = (users[users["arm"] == arm] for arm in ("control", "treatment"))
    rows = {}
    for name, (num, den) in metrics_.items():
        r = ratio_delta_interval(a[num], a[den], b[num], b[den])
        rows[name] = {"control": r.ratio_a, "treatment": r.ratio_b,
                      "change": r.difference / r.ratio_a,
                      "ci_low": r.ci_low / r.ratio_a, "ci_high": r.ci_high / r.ratio_a,
                      "p_value": r.p_value}
    return RULE.join(pd.DataFrame(rows).T)


# %% [markdown]
# The decision rule, as code, so that nobody can bend it after seeing the result:

# %%
def verdict(results: pd.DataFrame) -> tuple[str, list[str]]:
    """The rule's decision, and the guardrails that failed."""
    worse = np.where(results["better"] == "up", -1, 1)     # positive = worse, below
    change = results["change"] * worse
    low = np.minimum(results["ci_low"] * worse, results["ci_high"] * worse)
    high = np.maximum(results["ci_low"] * worse, results["ci_high"] * worse)
    guard = results["role"] == "guardrail"
    failed = list(results.index[guard & (change > results["tolerance"]) & (low > 0)])
    primary = results["role"] == "primary"
    if (high[primary] < 0).all() and not failed:
        return "launch", failed
    return ("rebuild" if (low[primary] > 0).all() else "iterate"), failed


# %% [markdown]
# ### Test 1: B against A
#
# Half the users get B for {glue:text}`ab_days` days of {glue:text}`n_requests`
# requests each.

# %%
def show(results: pd.DataFrame):
    """The result table, formatted: ratios, relative change and its interval."""
    shown = results.drop(columns=["role", "better", "tolerance"])
    change = {c: "{:+.1%}" for c in ("change", "ci_low", "ci_high")}
    return shown.style.format({"control": "{:.4f}", "treatment": "{:.4f}",
                               "p_value": "{:.3f}", **change})


FIRST_B = 3                              # B's test runs on days 3, 4 and 5
users_b = ab_test(model_b.heavy, salt="step6-b", first_day=FIRST_B)
result_b = analyse(users_b)
show(result_b)

# %% tags=["remove-cell"]
glue("ab_days", f"{AB_DAYS}", display=False)
glue("ab_users", f"{len(users_b):,}", display=False)


def glue_row(prefix: str, results: pd.DataFrame, name: str, key: str) -> None:
    row = results.loc[name]
    glue(f"{prefix}_{key}", pct(row["change"], sign=True), display=False)
    glue(f"{prefix}_{key}_ci", f"{pct(row['ci_low'], sign=True)} to "
         f"{pct(row['ci_high'], sign=True)}", display=False)


KEYS = {"revenue per request": "rpr", "cost per click": "cpc",
        "repeated-ad share": "rep", "CTR": "ctr", "ads per request": "apr"}
for name, key in KEYS.items():
    glue_row("b", result_b, name, key)
glue("b_verdict", verdict(result_b)[0], display=False)

# %% [markdown]
# Revenue per request moved {glue:text}`b_rpr` (95% interval
# {glue:text}`b_rpr_ci`), cost per click {glue:text}`b_cpc`
# ({glue:text}`b_cpc_ci`), the repeated-ad share {glue:text}`b_rep`
# ({glue:text}`b_rep_ci`) and CTR {glue:text}`b_ctr` ({glue:text}`b_ctr_ci`),
# over {glue:text}`ab_users` users. The rule says: **{glue:text}`b_verdict`**.

# %% [markdown]
# ```{exercise} Launch, iterate or rebuild?
# :label: ex-step6-decision
#
# You own the launch review of B. From `result_b` (and the rule above), decide
# `decision` as `"launch"`, `"iterate"` or `"rebuild"`, and list in `reasons`
# the metric(s) of the table that drive your decision. More than one answer can
# be defensible; the check says which and why.
# ```

# %% [markdown]
# ```{solution-start} ex-step6-decision
# :class: dropdown
# ```

# %%
decision = verdict(result_b)[0]        # the rule first; then judge if it fits
reasons = ["revenue per request", *verdict(result_b)[1]]

# %% [markdown]
# ```{solution-end}
# ```

# %%
check.launch_decision(decision, reasons, result_b)

# %% [markdown]
# What does the world say? It can serve the whole of day 2 with each model and
# compare the expected values, free of the noise of which users landed in which
# arm.

# %%
def day_truth(result) -> dict[str, float]:
    imp = result.impressions
    revenue = (imp["true_p"] * imp["price"]).sum()
    return {"revenue per request": revenue / N,
            "cost per click": revenue / imp["true_p"].sum(),
            "CTR": imp["true_p"].mean(),
            "repeated-ad share": (imp["exposures"] > 0).mean(),
            "ads per request": len(imp) / N}


world_says = pd.DataFrame({"A": day_truth(day_a), "B": day_truth(day_b)})
world_says["B against A"] = world_says["B"] / world_says["A"] - 1
world_says.style.format("{:.4f}").format("{:+.1%}", subset=["B against A"])

# %% tags=["remove-cell"]
lift = world_says["B against A"]
glue("true_rpr", pct(lift["revenue per request"], sign=True), display=False)
glue("true_cpc", pct(lift["cost per click"], sign=True), display=False)
glue("true_cpc_up", pct(lift["cost per click"]), display=False)
glue("true_ctr", pct(lift["CTR"], sign=True), display=False)
glue("true_rep", pct(lift["repeated-ad share"], sign=True), display=False)
row = result_b.loc["revenue per request"]
half_width = (row["ci_high"] - row["ci_low"]) / 2
scale = ((1.96 + 0.84) * half_width / 1.96 / abs(lift["revenue per request"])) ** 2
low, high = result_b["ci_low"], result_b["ci_high"]
inside = {name: low[name] <= lift[name] <= high[name]
          for name in ("revenue per request", "cost per click", "CTR")}
missed = [name for name, ok in inside.items() if not ok]
held = [name for name, ok in inside.items() if ok]
# A lift far inside the test's noise cannot be confirmed at any practical size.
NEGLIGIBLE = 0.005
tiny = abs(lift["revenue per request"]) < NEGLIGIBLE
power = ("the world's change is too small to matter, and no test of a practical "
         "size would confirm it" if tiny else
         f"to detect the revenue "
         f"{'lift' if lift['revenue per request'] > 0 else 'cut'} with 80% power, "
         f"the test would need about "
         f"{scale:.0f} times as many users (or days of them)")
days = f"days {FIRST_B} to {FIRST_B + AB_DAYS - 1}"
why = ("That is unlikely to be bad luck in the draw of users (a 95% interval misses "
       "one time in twenty), and a larger test would not fix it: the two measure "
       "different things. The world's numbers come from day "
       f"{EVAL_DAY} served entirely by A or entirely by B; the test runs on {days}, "
       "and its two arms share the campaigns' budgets, their pacing and the exposure "
       "counter. A campaign whose ads B favours spends its budget for both arms, and "
       "pacing throttles it in both: the arms interfere, so their difference is not "
       "the difference between a platform running A and one running B. Arms that "
       "compete for the same campaigns' money are a classic A/B pitfall")
if not missed:
    text = ("Each of the test's intervals contains the world's value; "
            + (f"{power}." if tiny else
               f"the revenue interval is simply too wide to confirm the change: {power}."))
else:
    text = (f"The test's intervals for {' and '.join(missed)} exclude the world's "
            "values" + (f" (those for {' and '.join(held)} contain them)" if held
                        else "") + f". {why}"
            + (f". The revenue interval contains the change, but is too wide: {power}."
               if inside["revenue per request"] else "."))
glue("truth_vs_test", text, display=False)
rpr_low, rpr_high = row["ci_low"], row["ci_high"]
glue("ab_page", f"In the lab, B's test ({AB_DAYS} days) gives a revenue interval of "
     f"{pct(rpr_low, sign=True)} to {pct(rpr_high, sign=True)}, "
     + ("which contains" if inside["revenue per request"] else "which excludes")
     + " the change the world measures when B serves a whole day alone "
     f"({pct(lift['revenue per request'], sign=True)})"
     + ("; a change that small is not worth confirming" if tiny and inside[
         "revenue per request"] else
        f"; it would need about {scale:.0f} times as many users to confirm it"
        if inside["revenue per request"] else
        ": the test measures other days, with arms that compete for the same "
        "budgets"), display=False)
glue("eval_day", f"{EVAL_DAY}", display=False)
glue("b_revenue", "leaves revenue per request about where it was"
     if tiny else "lifts" if lift["revenue per request"] > 0 else "cuts", display=False)
assert lift["CTR"] < 0 and lift["cost per click"] > 0
glue("b_trade", "the higher price per click about makes up for the lost clicks"
     if tiny else "the higher price per click more than makes up for the lost "
     "clicks" if lift["revenue per request"] > 0 else "the higher price per click "
     "does not make up for the lost clicks", display=False)
first_a = day_a.impressions.query("position == 1")
first_b = day_b.impressions.query("position == 1")
assert first_b["bid"].mean() > first_a["bid"].mean()
assert first_b["true_p"].mean() < first_a["true_p"].mean()
glue("bid_a", f"${first_a['bid'].mean():.2f}", display=False)
glue("bid_b", f"${first_b['bid'].mean():.2f}", display=False)

# %% [markdown]
# The truth for day {glue:text}`eval_day`: B {glue:text}`b_revenue`
# ({glue:text}`true_rpr` revenue per request), raises cost per click by
# {glue:text}`true_cpc` and changes CTR by {glue:text}`true_ctr`.
# {glue:text}`truth_vs_test` B trades clicks for price: its slot-1 ads bid
# {glue:text}`bid_b` per click on average against {glue:text}`bid_a` for A's,
# and are clicked less often; {glue:text}`b_trade`. Whether advertisers
# accept paying {glue:text}`true_cpc_up` more per click is the business
# question the guardrail exists to raise.

# %% [markdown]
# ### Test 2: C against A, the model that wins on ranking offline and loses online

# %%
users_c = ab_test(model_c, salt="step6-c", first_day=FIRST_B + AB_DAYS)
result_c = analyse(users_c)
show(result_c)

# %% tags=["remove-cell"]
for name, key in KEYS.items():
    glue_row("c", result_c, name, key)
glue("c_verdict", verdict(result_c)[0], display=False)
glue("c_rpr_cut", pct(-result_c.loc["revenue per request", "change"]), display=False)
glue("c_ctr_up", pct(result_c.loc["CTR", "change"]), display=False)
glue("c_apr_cut", pct(-result_c.loc["ads per request", "change"]), display=False)
b_rule, b_failed = verdict(result_b)
b_low, b_high = result_b.loc["revenue per request", ["ci_low", "ci_high"]]
b_primary = "up" if b_low > 0 else "down" if b_high < 0 else "inconclusive"
assert b_primary == "inconclusive"      # the concept page says the test cannot tell
glue("b_summary", f"B's test is {b_primary} on revenue"
     + (f" and breaks the {' and '.join(b_failed)} guardrail" if b_failed
        else " and every guardrail held"), display=False)
assert result_c.loc["revenue per request", "ci_high"] < 0
assert result_c.loc["CTR", "ci_low"] > 0
assert result_c.loc["ads per request", "ci_high"] < 0
assert result_c.loc["cost per click", "ci_high"] < 0

# %% [markdown]
# C **loses**: revenue per request {glue:text}`c_rpr` ({glue:text}`c_rpr_ci`),
# and the rule says **{glue:text}`c_verdict`**. A dashboard of CTR would have
# cheered: CTR rose {glue:text}`c_ctr_up` ({glue:text}`c_ctr_ci`), and cost per
# click moved {glue:text}`c_cpc`, cheaper for advertisers. Both come from the
# same error. Over-confidence pushes the predictions of ordinary ads down, below
# the reserve: ads per request fell by {glue:text}`c_apr_cut`, so fewer,
# "better" ads were shown, hence the CTR. And it exaggerates the gap between the
# winner's pCTR and the runner-up's, so the second price, runner-up eCPM / own
# pCTR, falls with it. Nothing in AUC could have seen this.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0), sharey=True)
tests = (("B against A", result_b), ("C against A", result_c))
ROLE_STYLE = {"primary": ("C3", "D"), "guardrail": ("C1", "s"), "secondary": ("C0", "o")}
for ax, (title, res) in zip(axes, tests, strict=True):
    for i, (_, row) in enumerate(res.iterrows()):
        y_pos = len(res) - 1 - i
        error = [[row["change"] - row["ci_low"]], [row["ci_high"] - row["change"]]]
        colour, marker = ROLE_STYLE[row["role"]]
        ax.errorbar(row["change"], y_pos, xerr=error, fmt=marker, ms=5, capsize=3,
                    color=colour, label=row["role"])
    ax.axvline(0, color="grey", lw=1)
    ax.set_title(title)
    plots.percent_axis(ax, "x", 0)
axes[0].set_yticks(np.arange(len(result_b))[::-1], result_b.index)
by_role = dict(zip(*axes[0].get_legend_handles_labels()[::-1], strict=True))
fig.legend(by_role.values(), [f"{role} metric" for role in by_role],
           loc="outside upper center", ncol=len(by_role), fontsize=8)
fig.supxlabel("relative change, treatment against control, with its 95% interval",
              fontsize=10)
glue("fig_ab", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_ab
# :name: fig-step6-ab
#
# Relative change of each metric in the two tests, with its delta-method 95%
# interval over users; red diamond the primary metric, orange squares the
# guardrails, blue dots the secondary metrics.
# ```
#
# **Takeaway:** {glue:text}`b_summary`; C's is a clear loss on revenue that CTR
# would have called a win.

# %% [markdown]
# ## 7. Recap
#
# - Offline evaluation against the oracle ranked B above A and could not tell C
#   from B by AUC or the calibration ratio; log loss and a reliability curve
#   could.
# - Exploration cost {glue:text}`cost_05` of expected revenue at
#   {glue:text}`eps_prod` and {glue:text}`cost_20` at 20%; it buys logs in which
#   every ad a new model might pick has a known, positive propensity.
# - IPS, SNIPS and doubly robust estimated B's slot-1 click rate with no bias
#   detectable in 200 replays;
#   their spread at 5% exploration ({glue:text}`sd_ips_005` with IPS) says how
#   much traffic a useful estimate needs. The direct method was biased by
#   {glue:text}`bias_dm`.
# - The A/B test, with the decision rule written first, said
#   {glue:text}`b_verdict` for B and {glue:text}`c_verdict` for C, whose CTR
#   gain hid a revenue loss of {glue:text}`c_rpr_cut`.

# %% [markdown]
# ```{admonition} What to say in the interview
# :class: tip
# "Offline, I compare the candidate with production on log loss, NE and
# calibration on a later day, next to the best achievable. That only tells me
# it's worth testing: the logs were written by the old model. Before an A/B
# test I'd estimate the new policy's value off-policy, from exploration traffic
# that logs a propensity with every impression: IPS or SNIPS, doubly robust with
# the model as a control variate. Exploring costs revenue, here
# {glue:text}`cost_05` at {glue:text}`eps_prod`, and the estimates get noisy
# fast as exploration shrinks. The launch decision is a user-randomized A/B
# test, with the rule written beforehand: revenue per request as the primary
# metric, guardrails on advertiser cost per click and on what users see, CTR as
# a diagnostic, delta-method intervals per user. I'd expect surprises: an
# over-confident model with the same AUC raised CTR {glue:text}`c_ctr_up` and
# cut revenue by {glue:text}`c_rpr_cut`, because the auction multiplies
# predictions by money."
# ```
