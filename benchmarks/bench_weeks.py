"""Benchmark four simulated weeks at full size, and the monitor that watches them.

Step 7's quality bar: 28 days of 100k requests with nightly retraining in under 60 s
on one core, with a retraining cost that stays flat as days accumulate (a sliding
window, not all history); the monitor flags the injected shift and segment failure
on the day they start and raises no alarm on days without a change.

The run: the default world with Step 7's scenario (a shift in topic appeal on day 14,
a mobile bug that zeroes ``user_topic_view_share`` from day 21), pinned to one core
with one BLAS thread; each day is written to a Parquet log store (timed apart from the
bar) and monitored the morning after. A second run without events measures the
false-alarm rate. The retraining cost is also measured against the window size, to
show what training on all history would cost.

Run: python benchmarks/bench_weeks.py [--days 28] [--requests 100000] [--no-clean-run]
(writes benchmarks/results/weeks.json).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import pin_one_core, save
from threadpoolctl import threadpool_limits

import adsys.simulate as loop
from adsys.monitoring import WATCHED_COLUMNS, Monitor, segment_metrics
from adsys.prediction import LogisticClickModel
from adsys.retraining import fit_on_days
from adsys.serving import FeatureFault
from adsys.simulate import SimulationConfig
from adsys.store import LogStore
from adsys.world import World, WorldConfig

SHIFT_DAY, FAULT_DAY = 14, 21
LAUNCH_DAYS = 4      # the first nights train on one or two days: a burn-in, not counted


class Clock:
    """Wall and CPU seconds of each call of a wrapped function, in order."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def wrap(self, function):
        def timed(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            result = function(*args, **kwargs)
            self.wall.append(time.perf_counter() - wall)
            self.cpu.append(time.process_time() - cpu)
            return result
        return timed


def run(world: World, config: SimulationConfig, days: int, requests: int,
        store: LogStore) -> dict:
    """Simulate, timing each day's serving and each night's retrain; store every day."""
    serve, retrain = Clock(), Clock()
    originals = loop.simulate_day, loop.retrain
    loop.simulate_day, loop.retrain = serve.wrap(loop.simulate_day), retrain.wrap(loop.retrain)
    per_day, write_seconds = [], 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        for result in loop.simulate(world, days, seed=0, config=config, n_requests=requests):
            pause = time.perf_counter()
            store.write_day(result.day, impressions=result.impressions, clicks=result.clicks,
                            requests=result.requests.to_frame())
            write_seconds += time.perf_counter() - pause
            per_day.append({"day": result.day, "impressions": len(result.impressions),
                            "revenue": round(float(result.impressions["charged"].sum()), 2)})
            print(f"day {result.day}: serve {serve.wall[-1]:.2f} s"
                  + (f", retrain before it {retrain.wall[-1]:.2f} s" if result.day else ""),
                  flush=True)
    finally:
        loop.simulate_day, loop.retrain = originals
    total = time.perf_counter() - started - write_seconds
    cpu_total = time.process_time() - cpu_started
    for i, row in enumerate(per_day):
        row.update(serve_seconds=round(serve.wall[i], 3), serve_cpu_seconds=round(serve.cpu[i], 3))
        if i < len(retrain.wall):   # the retrain after day i (none after the last day)
            row.update(retrain_after_seconds=round(retrain.wall[i], 3),
                       retrain_after_cpu_seconds=round(retrain.cpu[i], 3))
    first_week, last_week = retrain.wall[3:7], retrain.wall[-7:]
    startup = total - sum(serve.wall) - sum(retrain.wall)
    parts = {"serving (incl. clicks and billing)": sum(serve.wall),
             "nightly retraining": sum(retrain.wall),
             "bootstrap before day 0": startup}
    return {
        "seconds_total": round(total, 1),
        "cpu_seconds_total_incl_store_writes": round(cpu_total, 1),
        "store_write_seconds_total": round(write_seconds, 1),
        "meets_60_s_bar": total < 60,
        "seconds_by_part": {k: round(v, 1) for k, v in parts.items()},
        "dominant_part": max(parts, key=parts.get),
        "serve_seconds_per_day_mean": round(float(np.mean(serve.wall)), 3),
        "retrain_seconds_per_night_mean": round(float(np.mean(retrain.wall)), 3),
        "retrain_seconds_nights_3_to_6_mean": round(float(np.mean(first_week)), 3),
        "retrain_seconds_last_7_nights_mean": round(float(np.mean(last_week)), 3),
        "retrain_cost_flat": bool(np.mean(last_week) < 1.25 * np.mean(first_week)),
        "per_day": per_day,
    }


def monitor(store: LogStore, config: SimulationConfig, events: dict[str, int],
            days: int) -> dict:
    """The morning-after monitor over the stored days: delays and false alarms."""
    segments = ["f_device", "f_ad_topic"]
    watch = Monitor(list(WATCHED_COLUMNS), quality_by=segments, drift_by="f_device",
                    reference_days=config.training_days)
    started = time.perf_counter()
    for day in store.days():
        watch.observe(day, store.join_clicks(config.attribution_window, days=[day],
                                             columns=[*WATCHED_COLUMNS, *segments,
                                                      "pctr_shown"]))
    seconds = time.perf_counter() - started
    alerts = watch.alerts
    # After an event, the model needs training_days nights to learn it and the
    # reference as many days to fill with it: alerts then are its after-effects.
    settle = 2 * config.training_days
    echo = {d for start in events.values() for d in range(start, start + settle + 1)}
    quiet = [d for d in range(LAUNCH_DAYS, days) if d not in echo]
    false_days = sorted(int(d) for d in set(alerts["day"]) & set(quiet))
    delays = {name: (None if (after := alerts.loc[alerts["day"] >= day, "day"]).empty
                     else int(after.min()) - day) for name, day in events.items()}
    first = {name: alerts.loc[alerts["day"] == day, "message"].tolist()
             for name, day in events.items()}
    checks = len(quiet) * (len(WATCHED_COLUMNS) * 4 + 1 + 3 + 16)
    quiet_alerts = alerts[alerts["day"].isin(false_days)]
    traced = [top_ad(store, config, row) for row in quiet_alerts.to_dict("records")
              if row["kind"] == "calibration" and row["segment"] != "all"]
    return {
        "seconds_per_day": round(seconds / max(len(store.days()), 1), 3),
        # moves are measured from the second day on; calibration alerts wait for
        # min_noise_days of them
        "calibration_alerts_from_day": min(store.days()) + 1 + watch.min_noise_days,
        "alerts_total": len(alerts),
        "detection_delay_days": delays,
        "alerts_on_the_event_days": first,
        "quiet_days": quiet,
        "false_alarm_days": false_days,
        "false_alarm_day_rate": round(len(false_days) / max(len(quiet), 1), 3),
        "false_alarm_messages": quiet_alerts["message"].tolist(),
        "false_calibration_alarms_by_top_ad": traced,
        "checks_on_quiet_days_approx": checks,
    }


def top_ad(store: LogStore, config: SimulationConfig, alert: dict) -> dict:
    """The drill-down behind a segment's calibration alert: the ad whose predicted
    clicks miss its clicks the most, in the alert's direction, in that segment that
    day, and its share of the segment's miss. One ad carrying most of it is a model
    error on that ad (an id weight fitted to a lucky day, say), not a change in the
    world."""
    day, segment, value = alert["day"], alert["segment"], alert["value"]
    log = store.join_clicks(config.attribution_window, days=[day],
                            columns=["ad_id", segment, "pctr_shown"])
    per_ad = segment_metrics(log[log[segment].astype(str) == str(value)], ["ad_id"])
    excess = per_ad["mean_prediction"] * per_ad["impressions"] - per_ad["clicks"]
    excess *= 1 if alert["observed"] > 1 else -1      # over- or under-prediction
    ad = excess.idxmax()
    return {"day": int(day), "segment": segment, "value": str(value), "ad_id": int(ad),
            "share_of_excess": round(float(excess[ad] / excess.sum()), 3),
            "impressions": int(per_ad.loc[ad, "impressions"]),
            "calibration": round(float(per_ad.loc[ad, "calibration"]), 2)}


def window_scaling(store: LogStore, world: World, config: SimulationConfig,
                   last_day: int) -> list[dict]:
    """Seconds to fit the nightly model on the last 1, 3 and 7 days: the cost of a
    growing window, against the flat cost of a sliding one."""
    rows = []
    for window in (w for w in (1, 3, 7) if w <= last_day + 1):
        days = list(range(last_day - window + 1, last_day + 1))
        started = time.perf_counter()
        fit_on_days(store, world.view, days, LogisticClickModel, config.attribution_window,
                    config.downsampling_rate, np.random.default_rng(0))
        rows.append({"window_days": window, "fit_seconds": round(time.perf_counter() - started,
                                                                  2)})
        print(f"fit on {window} day(s): {rows[-1]['fit_seconds']} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--no-clean-run", action="store_true",
                        help="skip the run without events (false alarms on quiet weeks)")
    args = parser.parse_args()
    pin_one_core()
    threadpool_limits(1)
    load_before = os.getloadavg()
    fault = FeatureFault(FAULT_DAY, "mobile", "user_topic_view_share")
    config = SimulationConfig(fault=fault)
    world = World(WorldConfig.load(shift_day=SHIFT_DAY, shift_mean=-0.3, shift_size=0.7),
                  seed=0)
    events = {"shift": SHIFT_DAY, "fault": FAULT_DAY}
    results = {"requests_per_day": args.requests, "days": args.days,
               "scenario": {"shift_day": SHIFT_DAY, "shift_mean": -0.3, "shift_size": 0.7,
                            "fault": vars(fault)},
               "training_days": config.training_days, "steps_per_day": config.steps_per_day}
    with tempfile.TemporaryDirectory() as root:
        store = LogStore(root)
        results["simulation"] = run(world, config, args.days, args.requests, store)
        results["monitoring"] = monitor(store, config, events, args.days)
        results["retrain_fit_seconds_by_window"] = window_scaling(
            store, world, config, args.days - 1)
    if not args.no_clean_run:
        with tempfile.TemporaryDirectory() as root:
            store = LogStore(root)
            calm = SimulationConfig()
            results["clean_run"] = {
                "simulation_seconds": run(World(seed=0), calm, args.days, args.requests,
                                          store)["seconds_total"],
                "monitoring": monitor(store, calm, {}, args.days)}
    results["load_average_before_and_after"] = [round(load_before[0], 2),
                                                round(os.getloadavg()[0], 2)]
    save("weeks", results)


if __name__ == "__main__":
    main()
