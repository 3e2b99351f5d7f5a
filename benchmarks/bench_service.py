"""Benchmark the HTTP service under concurrent load, against a real uvicorn server.

Trains a bundle (``python -m adsys train``, the default world, one day, LightGBM;
or reuses one with ``--bundle DIR``), starts ``python -m adsys serve`` on
127.0.0.1 pinned to one core (one replica = one core), and sends it realistic
requests (the world's traffic: active users come back more often) from this
process, pinned to the other core:

- closed loop: N clients, each sending its next request when the last one is
  answered, for N = 1, 2, 4, ...: throughput and latency percentiles;
- open loop: requests arriving at random (Poisson) at a fixed rate, a share of the
  measured capacity, latency counted from the moment each request was due, so a
  server that falls behind is charged for the wait (no coordinated omission).

Every loop is bounded in requests and seconds; the server is stopped at the end.
Run: python benchmarks/bench_service.py (writes benchmarks/results/service.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import numpy as np
from _common import save

from adsys.observable import DEVICES
from adsys.world import World

CLIENTS = (1, 2, 4, 8, 16, 32)
SHARES = (0.25, 0.5, 0.75, 0.9)
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def request_bodies(n: int, seed: int = 0) -> list[dict]:
    """``n`` requests of the default world's traffic, as JSON bodies."""
    requests = World(seed=0).requests(1, np.random.default_rng(seed), n=n)
    return [{"user_id": int(u), "publisher_id": int(p), "hour": int(h),
             "device": DEVICES[int(d)]}
            for u, p, h, d in zip(requests.user, requests.publisher, requests.hour,
                                  requests.device, strict=True)]


def percentiles(seconds: list[float]) -> dict:
    ms = 1000 * np.asarray(seconds)
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}


async def closed_loop(url: str, bodies: list[dict], clients: int, seconds: float,
                      max_requests: int) -> dict:
    """``clients`` concurrent clients, each waiting for its answer before the next."""
    latencies, serving, stages, errors = [], [], [], 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(max_requests))
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx2.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            response = await http.post(url, json=bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1
            else:
                stages.append(response.json()["stage_ms"])
                serving.append(sum(stages[-1].values()))

    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies), "errors": errors,
            "throughput_rps": round(len(latencies) / elapsed, 1),
            "serving_path_ms": round(float(np.median(serving)), 2),
            "stage_p50_ms": {stage: round(float(np.median([s[stage] for s in stages])), 2)
                             for stage in stages[0]},
            **percentiles(latencies)}


async def open_loop(url: str, bodies: list[dict], rate: float, seconds: float,
                    seed: int) -> dict:
    """Poisson arrivals at ``rate`` per second for ``seconds``; latency from due time."""
    rng = np.random.default_rng(seed)
    due = np.cumsum(rng.exponential(1 / rate, size=int(rate * seconds * 1.5) + 10))
    due = due[due < seconds]
    latencies, errors = [], 0
    limits = httpx2.Limits(max_connections=256, max_keepalive_connections=64)

    async def one(http: httpx2.AsyncClient, body: dict, due_at: float) -> None:
        nonlocal errors
        response = await http.post(url, json=body)
        latencies.append(time.perf_counter() - due_at)
        errors += response.status_code != 200

    async with httpx2.AsyncClient(limits=limits, timeout=60) as http:
        start = time.perf_counter()
        tasks = []
        for i, offset in enumerate(due):
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, bodies[i % len(bodies)],
                                                 start + offset)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"offered_rps": round(rate, 1), "requests": len(latencies), "errors": errors,
            "achieved_rps": round(len(latencies) / elapsed, 1), **percentiles(latencies)}


def start_server(bundle: Path, port: int, core: int | None) -> subprocess.Popen:
    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    command = [sys.executable, "-m", "adsys", "serve", "--bundle", str(bundle), "--host", HOST,
               "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, preexec_fn=pin)


def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 180) -> float:
    """Seconds until ``/health`` answers 200 (the model is loaded)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"{base}/health", timeout=2).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"the server did not become healthy within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="reuse a bundle (default: train one)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="seconds per load level (a p99 rests on the slowest 1%% "
                             "of its requests: longer levels, steadier tails)")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = (cores[0], cores[1]) if len(cores) > 1 else (None, None)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        train_seconds = None
        if bundle is None:
            bundle = Path(tmp) / "model"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "adsys", "train", "--out", str(bundle)],
                           check=True)
            train_seconds = round(time.perf_counter() - started, 1)
        manifest = json.loads((bundle / "manifest.json").read_text())
        if client_core is not None:
            os.sched_setaffinity(0, {client_core})
        port = free_port()
        base = f"http://{HOST}:{port}"
        server = start_server(bundle, port, server_core)
        try:
            startup = wait_healthy(base, server)
            bodies = request_bodies(5000)
            url = f"{base}/ads"
            asyncio.run(closed_loop(url, bodies, 2, 3.0, 500))          # warm up
            closed = [asyncio.run(closed_loop(url, bodies, c, args.seconds, 20_000))
                      for c in CLIENTS]
            capacity = max(level["throughput_rps"] for level in closed)
            opened = []
            for i, share in enumerate(SHARES):
                level = asyncio.run(open_loop(url, bodies, share * capacity, args.seconds, i))
                opened.append({"share_of_capacity": share, **level})
        finally:
            server.terminate()
            server.wait(timeout=30)
    save("service", {
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "bundle": {k: manifest[k] for k in ("model_version", "heavy_model", "k", "reserve",
                                            "bytes")},
        "train_seconds": train_seconds,
        "startup_seconds": round(startup, 2),
        "server": {"processes": 1, "pinned_to_one_core": server_core is not None},
        "seconds_per_level": args.seconds,
        "capacity_rps": capacity,
        "closed_loop": closed,
        "open_loop": opened,
    })


if __name__ == "__main__":
    main()
