"""Off-policy estimates of a new click model's value against the world's truth.

The setting of Lab 6.2 (notebooks/06_evaluation): production logistic model A and a
LightGBM challenger B, trained on the same two days of logs. Day 2 is served by A
with epsilon-greedy exploration of slot 1; the question is B's slot-1 click rate
had B chosen the slot-1 ad among the logged candidates.

Measured:

- the cost of exploring: expected revenue (true click probability x price) of
  day 2 at eps = 0, 0.05, 0.2, same requests;
- the truth: day 2 served by B (slot-1 true click probability per request), and
  the exact value of B's choices on the logged candidates (the replay truth);
- one real log per share (0.05, 0.2): each estimator's error against the truth;
- many replays of the day's exploration (the policy's choice and the click drawn
  from the world's true probability) at each share: bias, spread and RMSE of IPS,
  SNIPS, doubly robust and the direct method, relative to the replay truth.

Run: python benchmarks/bench_offpolicy.py  (writes benchmarks/results/offpolicy.json)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from _common import save

from adsys import offpolicy
from adsys.events import FEATURE_PREFIX
from adsys.history import ExposureCounter
from adsys.pacing import traffic_forecast
from adsys.prediction import LightGBMClickModel, LogisticClickModel
from adsys.serving import AdServer
from adsys.simulate import SimulationConfig, bootstrap, retrain, simulate_day
from adsys.world import World

SEED, N, EVAL_DAY, EVAL_SEED = 0, 20_000, 2, 42
SHARES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
REPLAYS = 500


def features(log: pd.DataFrame) -> pd.DataFrame:
    columns = log.filter(like=FEATURE_PREFIX)
    return columns.rename(columns=lambda c: c[len(FEATURE_PREFIX):])


def lightgbm(**kwargs) -> LightGBMClickModel:
    return LightGBMClickModel(n_estimators=100, learning_rate=0.1, n_jobs=1, **kwargs)


def setup() -> dict:
    """The lab's platform: bootstrap, two days of the loop, models A and B."""
    config = SimulationConfig(steps_per_day=24, exploration=0.05, candidate_share=1.0)
    world = World(seed=SEED)
    view = world.view
    rng = np.random.default_rng(SEED)
    models, history, boot = bootstrap(world, rng, 30_000, browsing_days=14,
                                      requests_per_day=N)
    forecast = traffic_forecast(boot["time"].drop_duplicates(), config.steps_per_day)
    exposures, logs, ids = ExposureCounter(view.n_ads), [], (0, 0)
    for day in range(2):
        server = AdServer(view, models.heavy, history, exposures, models.light,
                          reserve=config.reserve, model_version=day,
                          exploration=config.exploration)
        logs.append(simulate_day(world, server, day, rng, config, forecast, N, *ids))
        ids = (ids[0] + N, ids[1] + len(logs[-1].impressions))
        forecast = traffic_forecast(logs[-1].requests.time, config.steps_per_day)
        if day == 0:
            models, history = retrain(logs, config, LogisticClickModel, history, rng, models)
    model_a, history_2 = retrain(logs, config, LogisticClickModel, history,
                                 np.random.default_rng(1), models)
    model_b, _ = retrain(logs, config, lightgbm, history, np.random.default_rng(1), models)
    return {"world": world, "config": config, "forecast": forecast, "ids": ids,
            "history": history_2, "a": model_a, "b": model_b}


def play(env: dict, model, eps: float):
    """Day 2 served by ``model`` at exploration share ``eps``, same requests."""
    view = env["world"].view
    server = AdServer(view, model, env["history"], ExposureCounter(view.n_ads),
                      env["a"].light, reserve=env["config"].reserve,
                      model_version=EVAL_DAY, exploration=eps, log_candidates=eps > 0)
    result = simulate_day(env["world"], server, EVAL_DAY, np.random.default_rng(EVAL_SEED),
                          env["config"], env["forecast"], N, *env["ids"])
    clicked = result.impressions["impression_id"].isin(result.clicks["impression_id"])
    result.impressions["clicked"] = clicked.astype(float)
    return result


def estimates_from_log(result, model_b) -> tuple[dict[str, float], pd.DataFrame]:
    """Each estimator on one real exploration log; and B's candidate pool."""
    pool = result.candidates[result.candidates["propensity"] > 0].copy()
    pool["p_b"] = model_b.heavy.predict(features(pool))
    pool["ecpm_b"] = 1000 * pool["bid"] * pool["p_b"]
    choice = pool.loc[pool.groupby("request_id")["ecpm_b"].idxmax()].set_index("request_id")
    imp = result.impressions
    logged = imp[imp["position"] == 1].set_index("request_id").loc[choice.index]
    p_b = pool.set_index(["request_id", "ad_id"])["p_b"]
    logged_p = p_b.loc[pd.MultiIndex.from_arrays([logged.index, logged["ad_id"]])]
    target = (logged["ad_id"].to_numpy() == choice["ad_id"].to_numpy()).astype(float)
    args = (logged["clicked"].to_numpy(), logged["propensity"].to_numpy(), target)
    return {
        "logged (old policy)": float(args[0].mean()),
        "direct method": float(choice["p_b"].mean()),
        "ips": offpolicy.ips(*args), "snips": offpolicy.snips(*args),
        "doubly_robust": offpolicy.doubly_robust(*args, logged_p.to_numpy(),
                                                 choice["p_b"].to_numpy()),
    }, pool


def replays(env: dict, result, pool: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """Redraw the day's exploration and clicks REPLAYS times at every share."""
    pool = pool.sort_values("request_id", kind="stable").reset_index(drop=True)
    req = result.requests.to_frame().set_index("request_id").loc[pool["request_id"]]
    true_1 = env["world"].click_probability(
        req["user"], pool["ad_id"], req["publisher"], req["hour"], 1, EVAL_DAY,
        np.rint(np.expm1(pool["f_log_exposures"])).astype(np.int64))
    rid = pool["request_id"].to_numpy()
    start = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1]])
    size = np.diff(np.r_[start, len(pool)])

    def first_of(score: np.ndarray) -> np.ndarray:
        return np.lexsort((-score, rid))[start]

    p_b = pool["p_b"].to_numpy()
    best_a = first_of(pool["ecpm"].to_numpy())
    best_b = first_of(pool["ecpm_b"].to_numpy())
    truth = float(true_1[best_b].mean())
    rows = []
    for eps in SHARES:
        for seed in range(REPLAYS):
            rng = np.random.default_rng(seed)
            explore = rng.random(len(start)) < eps
            drawn = start + (rng.random(len(start)) * size).astype(int)
            pick = np.where(explore, drawn, best_a)
            reward = (rng.random(len(start)) < true_1[pick]).astype(float)
            logging = eps / size + (1 - eps) * (pick == best_a)
            args = (reward, logging, (pick == best_b).astype(float))
            rows.append({"eps": eps, "ips": offpolicy.ips(*args),
                         "snips": offpolicy.snips(*args),
                         "doubly_robust": offpolicy.doubly_robust(*args, p_b[pick],
                                                                  p_b[best_b]),
                         "direct method": float(p_b[best_b].mean())})
    return truth, pd.DataFrame(rows)


def main() -> None:
    env = setup()
    runs = {eps: play(env, env["a"].heavy, eps) for eps in (0.0, 0.05, 0.2)}
    day_b = play(env, env["b"].heavy, 0.0)
    expected = {eps: float((r.impressions["true_p"] * r.impressions["price"]).sum())
                for eps, r in runs.items()}
    slot1 = {name: float(r.impressions.query("position == 1")["true_p"].mean())
             for name, r in (("A", runs[0.0]), ("B", day_b))}
    truth_b = slot1["B"]
    real_logs, pool_20 = {}, None
    for eps in (0.05, 0.2):
        values, pool = estimates_from_log(runs[eps], env["b"])
        real_logs[str(eps)] = {name: {"estimate": round(v, 6),
                                      "relative_error": round(v / truth_b - 1, 4)}
                               for name, v in values.items()}
        pool_20 = pool if eps == 0.2 else pool_20
    replay_truth, draws = replays(env, runs[0.2], pool_20)
    error = draws.set_index("eps") / replay_truth - 1
    summary = {
        str(eps): {name: {"bias": round(float(group[name].mean()), 4),
                          "spread": round(float(group[name].std()), 4),
                          "rmse": round(float(np.sqrt((group[name] ** 2).mean())), 4)}
                   for name in error.columns}
        for eps, group in error.groupby(level=0)}
    save("offpolicy", {
        "requests_per_day": N,
        "exploration_cost": {str(eps): {"expected_revenue": round(v, 2),
                                        "relative_cost": round(1 - v / expected[0.0], 4)}
                             for eps, v in expected.items()},
        "truth": {"slot1_ctr_A_serving": round(slot1["A"], 6),
                  "slot1_ctr_B_serving": round(truth_b, 6),
                  "slot1_ctr_B_replay": round(replay_truth, 6)},
        "one_real_log": real_logs,
        "replays_per_share": REPLAYS,
        "decisions_per_replay": int(len(pool_20["request_id"].unique())),
        "relative_error_by_share": summary,
    })


if __name__ == "__main__":
    main()
