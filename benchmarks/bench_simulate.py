"""Benchmark a simulated day through the full loop on one core, and pacing quality.

Quality bars (DESIGN 7): a day of 100k requests through the full loop in under 2 s on
one core; paced campaigns end the day within 95-100% of budget, never above it. Also
times the single-request path by stage. Run: python benchmarks/bench_simulate.py
(writes benchmarks/results/simulate.json).
"""

from __future__ import annotations

import time

import numpy as np
from _common import best_seconds, pin_one_core, save

from adsys.history import ExposureCounter
from adsys.pacing import traffic_forecast
from adsys.serving import STAGES, AdServer
from adsys.simulate import SimulationConfig, bootstrap, simulate_day
from adsys.world import World


def pacing_quality(world: World, paced, unpaced) -> dict:
    """Budget delivery of the campaigns that unpaced demand runs out of budget."""
    budgets = world.view.campaigns["daily_budget"].to_numpy()
    limited = unpaced.spend >= 0.999 * budgets
    steps = unpaced.pacer.n_steps
    ran_out_step = (np.cumsum(unpaced.pacer.spend_by_step, 0) < 0.999 * budgets).sum(0)
    early = limited & (ran_out_step < 18 * steps // 24)   # out of budget before 18:00
    share = paced.spend / np.where(budgets > 0, budgets, 1)

    def within(mask: np.ndarray) -> float:
        return round(float(np.mean((share[mask] >= 0.95) & (share[mask] <= 1 + 1e-9))), 3)

    return {
        "budget_limited_campaigns": int(limited.sum()),
        "share_within_95_100_percent": within(limited),
        "limited_before_18h": int(early.sum()),
        "share_within_95_100_percent_limited_before_18h": within(early),
        "median_share_of_budget_spent": round(float(np.median(share[limited])), 3),
        "any_above_budget": bool((share > 1 + 1e-9).any()),
        "unbilled_overdelivery_share": round(float(
            paced.impressions["unbilled"].sum() / budgets[limited].sum()), 4),
    }


def main() -> None:
    pin_one_core()
    world = World(seed=0)
    config = SimulationConfig()
    start = time.perf_counter()
    models, history, log = bootstrap(world, np.random.default_rng(0), config.bootstrap_requests,
                                     browsing_days=config.browsing_days)
    bootstrap_seconds = time.perf_counter() - start
    forecast = traffic_forecast(log["time"].drop_duplicates(), config.steps_per_day)

    def day(pacing: bool = True):
        server = AdServer(world.view, models.heavy, history, ExposureCounter(world.view.n_ads),
                          models.light, k=config.k, reserve=config.reserve)
        return simulate_day(world, server, 0, np.random.default_rng(1),
                            SimulationConfig(pacing=pacing), forecast)

    seconds = best_seconds(day, repeats=3)
    paced, unpaced = day(True), day(False)

    server = AdServer(world.view, models.heavy, history, None, models.light, k=config.k,
                      reserve=config.reserve)
    requests = world.requests(0, np.random.default_rng(2), n=2000)
    per_stage = {stage: [] for stage in (*STAGES, "total")}
    for i in range(len(requests)):
        started = time.perf_counter()
        _, stage_seconds = server.serve_one(requests.take([i]), day=0)
        per_stage["total"].append(time.perf_counter() - started)
        for stage in STAGES:
            per_stage[stage].append(stage_seconds[stage])
    latency = {stage: {"p50_ms": round(1000 * float(np.percentile(v, 50)), 3),
                       "p99_ms": round(1000 * float(np.percentile(v, 99)), 3)}
               for stage, v in per_stage.items()}
    save("simulate", {
        "requests_per_day": paced.n_requests,
        "impressions_per_day": len(paced.impressions),
        "steps_per_day": config.steps_per_day,
        "day_seconds": round(seconds, 3),
        "bootstrap_seconds": round(bootstrap_seconds, 3),
        "stage_seconds_of_a_day": {k: round(v, 3) for k, v in paced.stage_seconds.items()},
        "pacing": pacing_quality(world, paced, unpaced),
        "single_request_latency": latency,
    })


if __name__ == "__main__":
    main()
