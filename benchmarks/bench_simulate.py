"""Benchmark one simulated day through the full loop on one core (bar: under 10 s).

Also times the single-request path. Run: python benchmarks/bench_simulate.py
(writes benchmarks/results/simulate.json).
"""

from __future__ import annotations

import time

import numpy as np
from _common import best_seconds, pin_one_core, save

from adsys.serving import STAGES, AdServer
from adsys.simulate import SimulationConfig, bootstrap_model, simulate_day
from adsys.world import World


def main() -> None:
    pin_one_core()
    world = World(seed=0)
    start = time.perf_counter()
    model, stats = bootstrap_model(world, np.random.default_rng(0), 50_000)
    bootstrap = time.perf_counter() - start
    server = AdServer(world, model, stats)
    config = SimulationConfig()
    day = best_seconds(
        lambda: simulate_day(world, server, 0, np.random.default_rng(1), config), repeats=3)
    result = simulate_day(world, server, 0, np.random.default_rng(1), config)

    requests = world.requests(0, np.random.default_rng(2), n=2000)
    per_stage = {stage: [] for stage in (*STAGES, "total")}
    for i in range(len(requests)):
        started = time.perf_counter()
        _, seconds = server.serve_one(requests.take([i]), day=0)
        per_stage["total"].append(time.perf_counter() - started)
        for stage in STAGES:
            per_stage[stage].append(seconds[stage])
    latency = {stage: {"p50_ms": round(1000 * float(np.percentile(v, 50)), 3),
                       "p99_ms": round(1000 * float(np.percentile(v, 99)), 3)}
               for stage, v in per_stage.items()}
    save("simulate", {
        "requests_per_day": result.n_requests,
        "impressions_per_day": len(result.impressions),
        "steps_per_day": config.steps_per_day,
        "day_seconds": round(day, 3),
        "bootstrap_training_seconds": round(bootstrap, 3),
        "stage_seconds_of_a_day": {k: round(v, 3) for k, v in result.stage_seconds.items()},
        "single_request_latency": latency,
    })


if __name__ == "__main__":
    main()
