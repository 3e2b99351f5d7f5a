"""Command line: ``python -m adsys COMMAND`` (``--help`` lists the commands)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
DEFAULT_WORLD = Path(__file__).resolve().parents[2] / "data" / "world.toml"


def _student_notebooks(args: argparse.Namespace) -> None:
    from adsys.student import write_student_notebooks

    for path in write_student_notebooks(args.source, args.out):
        print(f"wrote {path}")


def _simulate(args: argparse.Namespace) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    from tqdm import tqdm

    from adsys.prediction import LightGBMClickModel, LogisticClickModel
    from adsys.report import ctr_figure, day_report, spend_figure
    from adsys.serving import FeatureFault
    from adsys.simulate import SimulationConfig, simulate
    from adsys.store import LogStore
    from adsys.world import World, WorldConfig

    fault = (FeatureFault(args.fault_day, args.fault_device, args.fault_feature)
             if args.fault_day is not None else None)
    config = SimulationConfig(k=args.k, reserve=args.reserve, pacing=not args.no_pacing,
                              exploration=args.exploration, fault=fault)
    overrides = {name: value for name, value in (("shift_day", args.shift_day),
                                                 ("shift_mean", args.shift_mean),
                                                 ("shift_size", args.shift_size))
                 if value is not None}
    world = World(WorldConfig.load(args.world, **overrides), seed=args.seed)
    make_model = {"logistic": LogisticClickModel, "lightgbm": LightGBMClickModel}[args.model]
    args.out.mkdir(parents=True, exist_ok=True)
    store = LogStore(args.out / "store")
    summary = {"seed": args.seed, "days": args.days, "model": args.model,
               "config": {k: (str(v) if k == "fault" else v) for k, v in vars(config).items()},
               "daily": []}
    days = simulate(world, args.days, args.seed, config, make_model, n_requests=args.requests)
    last = None
    for result in tqdm(days, total=args.days, desc="simulated days", unit="day"):
        # Each day is written as it ends, so a failure keeps the days before it.
        store.write_day(result.day, impressions=result.impressions, clicks=result.clicks,
                        requests=result.requests.to_frame())
        summary["daily"].append(day_report(result, config.attribution_window))
        (args.out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
        last = result
    spend_figure(last).savefig(args.out / "spend.png", dpi=120)
    ctr_figure([last]).savefig(args.out / "ctr.png", dpi=120)
    alerts = _monitor(args, store, config, world.config.shift_day, fault)
    day = summary["daily"][-1]
    quality = ("no model metrics (see notes)" if day["model_log_loss"] is None else
               f"model log loss {day['model_log_loss']:.4f} (oracle {day['oracle_log_loss']:.4f})")
    print(f"day {day['day']}: {day['impressions']:,} impressions, CTR {day['ctr']:.2%}, "
          f"revenue ${day['revenue']:,.0f}, {quality}")
    print(f"monitoring: {len(alerts)} alert(s)" + "".join(
        f"\n  {message}" for message in alerts["message"][:10])
        + ("\n  ..." if len(alerts) > 10 else ""))
    print(f"wrote the log store (store/: Parquet by day), report.json, spend.png, ctr.png, "
          f"monitoring.json, monitoring_quality.png and monitoring_drift.png to {args.out}")


def _monitor(args: argparse.Namespace, store, config, shift_day: int, fault):
    """The morning-after monitor over every stored day: monitoring.json and two figures.

    The report also lists the events the world injected (the simulator knows them) and
    how many days each took to raise its first alert, so a run checks its own monitor.
    """
    import json

    from tqdm import tqdm

    from adsys.monitoring import WATCHED_COLUMNS, Monitor, drift_figure, quality_figure

    segments = ["f_device", "f_ad_topic"]
    monitor = Monitor(list(WATCHED_COLUMNS), quality_by=segments, drift_by="f_device",
                      reference_days=config.training_days)
    columns = [*WATCHED_COLUMNS, *segments, "pctr_shown"]
    for day in tqdm(store.days(), desc="monitoring", unit="day"):
        monitor.observe(day, store.join_clicks(config.attribution_window, days=[day],
                                               columns=columns))
    alerts = monitor.alerts
    events = {name: day for name, day in (("shift", shift_day),
                                          ("fault", None if fault is None else fault.day))
              if day is not None and 0 <= day < args.days}
    delays = {name: (None if (after := alerts.loc[alerts["day"] >= day, "day"]).empty
                     else int(after.min()) - day) for name, day in events.items()}
    report = {"events": events, "detection_delay_days": delays,
              "fault": None if fault is None else vars(fault), **monitor.to_dict()}
    (args.out / "monitoring.json").write_text(json.dumps(report, indent=2) + "\n")
    marks = {f"{name} (day {day})": day for name, day in events.items()}
    quality_figure(monitor.quality, "f_device", marks).savefig(
        args.out / "monitoring_quality.png", dpi=120)
    drift_figure(monitor.drift, monitor.psi_threshold, marks).savefig(
        args.out / "monitoring_drift.png", dpi=120)
    return alerts


def _train(args: argparse.Namespace) -> None:
    from adsys.prediction import LightGBMClickModel, LogisticClickModel
    from adsys.release import train_bundle
    from adsys.service import BUNDLE_FILE, MANIFEST_FILE, save_bundle
    from adsys.simulate import SimulationConfig
    from adsys.world import World, WorldConfig

    config = SimulationConfig(k=args.k, reserve=args.reserve)
    world = World(WorldConfig.load(args.world), seed=args.seed)
    make_model = {"logistic": LogisticClickModel, "lightgbm": LightGBMClickModel}[args.model]
    print(f"training on {args.days} simulated day(s), seed {args.seed} ...")
    bundle = train_bundle(world, args.days, args.seed, config, make_model, args.requests)
    save_bundle(bundle, args.out)
    size = (args.out / BUNDLE_FILE).stat().st_size / 2**20
    print(f"wrote {args.out / BUNDLE_FILE} ({size:.1f} MiB: {type(bundle.heavy).__name__} "
          f"version {bundle.model_version}, light model, history) and {MANIFEST_FILE}")
    print(f"serve it with: python -m adsys serve --bundle {args.out}")


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from adsys.service import create_app, load_bundle

    bundle = load_bundle(args.bundle)   # once, before the server accepts connections
    uvicorn.run(create_app(bundle), host=args.host, port=args.port,
                log_level=args.log_level, access_log=args.access_log)


def _at_least(low: float, kind: type = int):
    """An argparse type: a number of ``kind`` that is at least ``low``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}; got {text!r}") \
                from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}; got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    from adsys.simulate import SimulationConfig

    parser = argparse.ArgumentParser(prog="python -m adsys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser(
        "student-notebooks", help="write the labs with their solutions removed")
    student.add_argument("--out", type=Path, default=Path("student"),
                         help="folder for the student notebooks (default: student)")
    student.add_argument("--source", type=Path, default=NOTEBOOKS,
                         help="folder of lab sources NN_name.py (default: the course's)")
    student.set_defaults(run=_student_notebooks)

    sim = commands.add_parser(
        "simulate", help="run the ad system for some days; write its logs and a report")
    sim.add_argument("--days", type=_at_least(1), default=1, help="days to simulate (>= 1)")
    sim.add_argument("--seed", type=_at_least(0), default=0, help="random seed (>= 0)")
    sim.add_argument("--out", type=Path, required=True, help="folder for logs and report")
    sim.add_argument("--requests", type=_at_least(1), default=None,
                     help="requests per day (default: the world config's)")
    sim.add_argument("--k", type=_at_least(2), default=SimulationConfig.k,
                     help="candidates the selector passes to the click model; more than the "
                          f"page's slots (default {SimulationConfig.k})")
    sim.add_argument("--reserve", type=_at_least(0.0, float), default=SimulationConfig.reserve,
                     help="minimum eCPM in dollars per thousand impressions "
                          f"(default {SimulationConfig.reserve:g})")
    sim.add_argument("--model", choices=("logistic", "lightgbm"), default="logistic",
                     help="the click model retrained every night (default logistic)")
    sim.add_argument("--no-pacing", action="store_true", help="bid until budgets run out")
    sim.add_argument("--exploration", type=_at_least(0.0, float), default=0.0,
                     help="share of requests whose slot-1 ad is random, with logged "
                          "propensities (default 0)")
    sim.add_argument("--shift-day", type=_at_least(0), default=None,
                     help="day of a sudden shift in topic appeal (the world's scenario)")
    sim.add_argument("--shift-mean", type=float, default=None,
                     help="average jump of the topics' appeal at the shift, logit scale "
                          "(default: the world config's; below 0 most topics lose appeal)")
    sim.add_argument("--shift-size", type=_at_least(0.0, float), default=None,
                     help="spread of that jump across topics (default: the world config's)")
    sim.add_argument("--fault-day", type=_at_least(0), default=None,
                     help="day a serving bug starts (with --fault-device, --fault-feature)")
    sim.add_argument("--fault-device", choices=("mobile", "desktop", "tablet"),
                     default="tablet", help="device the bug hits (default tablet)")
    sim.add_argument("--fault-feature", default="user_topic_view_share",
                     help="numeric feature the bug sets to 0 (default user_topic_view_share)")
    sim.add_argument("--world", type=Path, default=DEFAULT_WORLD,
                     help="world config TOML (default: data/world.toml)")
    sim.set_defaults(run=_simulate)

    train = commands.add_parser(
        "train", help="train the funnel's models on simulated days; write the service's bundle")
    train.add_argument("--out", type=Path, required=True,
                       help="folder for bundle.joblib and manifest.json")
    train.add_argument("--days", type=_at_least(1), default=1,
                       help="simulated days of logs to learn from (>= 1, default 1)")
    train.add_argument("--seed", type=_at_least(0), default=0, help="random seed (>= 0)")
    train.add_argument("--requests", type=_at_least(1), default=None,
                       help="requests per day (default: the world config's)")
    train.add_argument("--model", choices=("logistic", "lightgbm"), default="lightgbm",
                       help="the heavy click model (default lightgbm)")
    train.add_argument("--k", type=_at_least(2), default=SimulationConfig.k,
                       help=f"candidates the selector keeps (default {SimulationConfig.k})")
    train.add_argument("--reserve", type=_at_least(0.0, float), default=SimulationConfig.reserve,
                       help="minimum eCPM in dollars per thousand impressions "
                            f"(default {SimulationConfig.reserve:g})")
    train.add_argument("--world", type=Path, default=DEFAULT_WORLD,
                       help="world config TOML (default: data/world.toml)")
    train.set_defaults(run=_train)

    serve = commands.add_parser(
        "serve", help="serve a trained bundle over HTTP (POST /ads, GET /health)")
    serve.add_argument("--bundle", type=Path, required=True,
                       help="folder written by `python -m adsys train`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    serve.add_argument("--port", type=_at_least(1), default=8000, help="port (default 8000)")
    serve.add_argument("--log-level", default="info",
                       choices=("critical", "error", "warning", "info", "debug"),
                       help="uvicorn's log level (default info)")
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                       help="log one line per request (default on)")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
