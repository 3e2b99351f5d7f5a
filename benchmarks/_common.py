"""Shared bits of the benchmark scripts: pin to one core, time repeats, time a fixed
reference workload, save JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import sparse

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


def reference_seconds(repeats: int = 5) -> float:
    """Seconds this machine takes for a fixed workload, the fastest of ``repeats``.

    The workload is the simulator's mix in small: a sort of packed integer keys (the
    selector), sparse matrix-vector products (the logistic fit) and a Python loop over
    small numpy calls (the per-step bookkeeping). It does not depend on the course's
    code, so the same machine gives the same figure before and after a change: a
    timing that moves with it is the host, one that moves alone is the code.
    """
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**62, 2_000_000)
    rows, per_row = 200_000, 20
    matrix = sparse.csr_matrix((rng.random(rows * per_row), rng.integers(0, 2_000, rows * per_row),
                                np.arange(0, rows * per_row + 1, per_row)), shape=(rows, 2_000))
    vector = rng.random(2_000)

    def workload() -> None:
        np.sort(keys)
        for _ in range(10):
            matrix.T @ (matrix @ vector)
        for i in range(20_000):
            np.add(vector[i % 100], 1.0)

    return best_seconds(workload, repeats)


def save(name: str, results: dict) -> Path:
    """Write ``results`` with the machine description to ``results/NAME.json``.

    The description includes the load average over the run's last minute: timings
    taken while other work shares the machine come out slower (on 2 cores a load
    near 2 means the benchmark did not have its core to itself); and the seconds of
    :func:`reference_seconds`, timed now on the same core, to tell a slow host from
    slow code.
    """
    RESULTS.mkdir(exist_ok=True)
    record = {"machine": {"python": platform.python_version(), "cpu": platform.processor()
                          or platform.machine(), "cores_available": os.cpu_count(),
                          "load_average_last_minute": round(os.getloadavg()[0], 2),
                          "reference_workload_seconds": round(reference_seconds(), 3)},
              **results}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path
