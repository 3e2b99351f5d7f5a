"""Benchmark the world's click draws per second on one core (quality bar: >= 1,000,000).

Run: python benchmarks/bench_world.py  (writes benchmarks/results/world.json)
"""

from __future__ import annotations

import numpy as np
from _common import best_seconds, pin_one_core, save

from adsys.world import World

N = 1_000_000


def main() -> None:
    pin_one_core()
    world = World(seed=0)
    rng = np.random.default_rng(0)
    req = world.requests(0, rng, n=N // world.config.n_slots + 1)
    slots = world.config.n_slots
    users = np.repeat(req.user, slots)[:N]
    pubs = np.repeat(req.publisher, slots)[:N]
    hours = np.repeat(req.hour, slots)[:N]
    positions = np.tile(np.arange(1, slots + 1), len(req))[:N]
    ads = rng.choice(np.flatnonzero(world.view.active_ads(0)), size=N)

    def draw() -> np.ndarray:
        p = world.click_probability(users, ads, pubs, hours, positions, day=0)
        return world.draw_clicks(p, rng)

    seconds = best_seconds(draw)
    build = best_seconds(lambda: World(seed=0), repeats=3)
    day = best_seconds(lambda: world.requests(0, rng), repeats=3)
    save("world", {
        "click_draws": N,
        "click_draw_seconds": round(seconds, 4),
        "click_draws_per_second": round(N / seconds),
        "world_build_seconds": round(build, 4),
        "requests_per_day": world.config.requests_per_day,
        "day_of_requests_seconds": round(day, 4),
    })


if __name__ == "__main__":
    main()
