"""Shared bits of the benchmark scripts: pin to one core, time repeats, save JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def pin_one_core() -> None:
    """Run on a single core, as the quality bars are stated per core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def best_seconds(run: Callable[[], object], repeats: int = 5) -> float:
    """The fastest of ``repeats`` timed runs (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def save(name: str, results: dict) -> Path:
    """Write ``results`` with the machine description to ``results/NAME.json``.

    The description includes the load average over the run's last minute: timings
    taken while other work shares the machine come out slower (on 2 cores a load
    near 2 means the benchmark did not have its core to itself).
    """
    RESULTS.mkdir(exist_ok=True)
    record = {"machine": {"python": platform.python_version(), "cpu": platform.processor()
                          or platform.machine(), "cores_available": os.cpu_count(),
                          "load_average_last_minute": round(os.getloadavg()[0], 2)},
              **results}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path
