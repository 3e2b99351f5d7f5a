"""Bad input, everywhere: one matrix of public calls, each answered by a named error.

Every row calls a public function or method with one bad argument and expects
``ValueError`` (a bad value) or ``TypeError`` (a wrong type) whose message names the
parameter (DESIGN 4: "Public functions validate their inputs and raise ValueError
naming the bad parameter"). The command line is in the matrix too: there a bad input
must end the program with exit code 2 and a message naming it, never a traceback.

Rows marked ``xfail`` are holes still open in ``src/``; they are listed in the report.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from adsys import experiment, metrics, monitoring, offpolicy
from adsys.__main__ import main
from adsys.auction import run_auction, run_auctions
from adsys.baseline import serve_random
from adsys.events import closed_labels, join_clicks, training_data
from adsys.features import dtypes, make_features, to_frame
from adsys.history import ExposureCounter, History, smoothed_ctr
from adsys.index import AdIndex
from adsys.pacing import Pacer, charge, traffic_forecast
from adsys.prediction import (
    Calibrator,
    LightGBMClickModel,
    LogisticClickModel,
    downsample_negatives,
    recalibrate_downsampled,
)
from adsys.report import day_report
from adsys.selection import LightModel, Selector, top_k_per_group
from adsys.serving import AdServer
from adsys.simulate import SimulationConfig, bootstrap, simulate, simulate_day
from adsys.world import World, WorldConfig


@dataclass(frozen=True)
class Case:
    """One bad call: what it does, the error it must raise, the name its message gives."""

    label: str
    call: Callable[[SimpleNamespace], object]
    error: type[Exception]
    name: str               # a regular expression the message must match
    bug: str | None = field(default=None)


class CliError(Exception):
    """The command line ended with exit code 2 (the message is what it printed)."""


def cli(*argv: str) -> None:
    """Run the command line; turn "exit 2 with a message, no traceback" into CliError."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(["simulate", *argv])
    except SystemExit as exit_info:        # argparse rejects the argument itself
        code = exit_info.code
    text = err.getvalue()
    assert "Traceback" not in text
    if code == 2:
        raise CliError(text)
    raise AssertionError(f"the command line exited with {code}, not 2: {text}")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> SimpleNamespace:
    """Small working objects of every kind, so that each row changes one argument only."""
    world = World(seed=0)
    view = world.view
    rng = np.random.default_rng(0)
    log = serve_random(world, 0, 3000, rng)
    features = make_features(view, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"], exposures=log["exposures"])
    model = LogisticClickModel().fit(features, log["clicked"])
    history = History(view).add(log["user_id"], log["ad_id"], log["clicked"])
    server = AdServer(view, model, history, k=5, reserve=1.0)
    requests = world.requests(0, np.random.default_rng(1), n=50)
    day = simulate_day(world, server, 0, np.random.default_rng(2), n_requests=300)
    buffer = io.StringIO()
    features.to_csv(buffer, index=False)
    buffer.seek(0)
    nan_feature = features.copy()
    nan_feature.loc[nan_feature.index[3], "ad_ctr_logit"] = np.nan
    impressions = pd.DataFrame({"impression_id": [1, 2, 3], "time": [0.0, 10.0, 20.0]})
    clicks = pd.DataFrame({"impression_id": [1, 3], "click_time": [5.0, 40.0]})
    folder = tmp_path_factory.mktemp("bad_input")
    float_count = folder / "float_count.toml"
    float_count.write_text("[users]\nn_users = 3000.0\n")
    float_slots = folder / "float_slots.toml"
    float_slots.write_text("[publishers]\nn_slots = 3.0\n")
    return SimpleNamespace(
        world=world, view=view, log=log, features=features, model=model, history=history,
        server=server, requests=requests, day=day, from_csv=pd.read_csv(buffer),
        nan_feature=nan_feature, impressions=impressions, clicks=clicks,
        pacer=lambda: Pacer([10.0, 10.0], [0.5, 0.5]), out=str(folder / "out"),
        float_count=str(float_count), float_slots=str(float_slots),
        index=AdIndex(view), selector=Selector(view, history),
    )


def finished_pacer() -> Pacer:
    pacer = Pacer([10.0], [0.5, 0.5])
    pacer.record(0, [1.0])
    pacer.record(1, [1.0])
    return pacer


def with_nan(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(float)
    frame.loc[frame.index[0], column] = np.nan
    return frame


def relevance(c, **change):
    args = {"users": [0], "ads": [0], "publishers": [0], "hours": [0], "day": 0} | change
    return c.world.relevance(**args)


def features_of(c, **change):
    args = {"users": [0], "ads": [0], "publishers": [0], "hours": [0], "positions": 1} | change
    return make_features(c.view, **args)


def serve(c, throttle, rng=None):
    return c.server.serve(c.requests, 0, throttle, rng)


def throttle_with(c, value):
    throttle = np.ones(c.view.n_campaigns)
    throttle[0] = value
    return throttle


HOLE_ADSERVER = "BUG: AdServer does not check {0}: {1}"
Y, P = [0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6]

CASES = [
    # ----- auction ---------------------------------------------------------------------
    Case("run_auction reserve=None", lambda c: run_auction([1.0], [0.1], reserve=None),
         TypeError, "reserve"),
    Case("run_auction reserve='1'", lambda c: run_auction([1.0], [0.1], reserve="1"),
         TypeError, "reserve"),
    Case("run_auction reserve<0", lambda c: run_auction([1.0], [0.1], reserve=-1.0),
         ValueError, "reserve"),
    Case("run_auction reserve=nan", lambda c: run_auction([1.0], [0.1], reserve=np.nan),
         ValueError, "reserve"),
    Case("run_auction n_slots=1.5", lambda c: run_auction([1.0], [0.1], n_slots=1.5),
         TypeError, "n_slots"),
    Case("run_auction n_slots=0", lambda c: run_auction([1.0], [0.1], n_slots=0),
         ValueError, "n_slots"),
    Case("run_auction n_slots=True", lambda c: run_auction([1.0], [0.1], n_slots=True),
         TypeError, "n_slots"),
    Case("run_auction bids nan", lambda c: run_auction([1.0, np.nan], [0.1, 0.1]),
         ValueError, "bids"),
    Case("run_auction bids str", lambda c: run_auction("1.0", [0.1]), TypeError, "bids"),
    Case("run_auction pctr>1", lambda c: run_auction([1.0], [1.5]), ValueError, "pctr"),
    Case("run_auction lengths", lambda c: run_auction([1.0, 2.0], [0.1]), ValueError,
         "pctr"),
    Case("run_auctions 1-D bids", lambda c: run_auctions([1.0], [[0.1]], 1), ValueError,
         "bids"),
    Case("run_auctions reserve=None", lambda c: run_auctions([[1.0]], [[0.1]], 1, None),
         TypeError, "reserve"),
    # ----- pacing ----------------------------------------------------------------------
    Case("Pacer.record float step", lambda c: c.pacer().record(0.0, [1.0, 1.0]), TypeError,
         "step"),
    Case("Pacer.record step past the last", lambda c: finished_pacer().record(2, [1.0]),
         ValueError, "step"),
    Case("Pacer.record out of order", lambda c: c.pacer().record(1, [1.0, 1.0]), ValueError,
         "step"),
    Case("Pacer.record spend<0", lambda c: c.pacer().record(0, [1.0, -1.0]), ValueError,
         "spend"),
    Case("Pacer.record spend nan", lambda c: c.pacer().record(0, [1.0, np.nan]), ValueError,
         "spend"),
    Case("Pacer budgets<0", lambda c: Pacer([-1.0], [1.0]), ValueError, "budgets"),
    Case("Pacer traffic sum", lambda c: Pacer([1.0], [0.5, 0.6]), ValueError,
         "traffic_curve"),
    Case("Pacer gain str", lambda c: Pacer([1.0], [1.0], gain="high"), TypeError, "gain"),
    Case("Pacer catch_up_steps float", lambda c: Pacer([1.0], [1.0], catch_up_steps=2.0),
         TypeError, "catch_up_steps"),
    Case("Pacer min_rate=0", lambda c: Pacer([1.0], [1.0], min_rate=0.0), ValueError,
         "min_rate"),
    Case("Pacer safety_factor<0", lambda c: Pacer([1.0], [1.0], safety_factor=-1.0),
         ValueError, "safety_factor"),
    Case("charge prices nan", lambda c: charge([0.0], [1.0], [0], [np.nan]), ValueError,
         "prices"),
    Case("charge float campaign_ids", lambda c: charge([0.0], [1.0], [0.5], [1.0]),
         ValueError, "campaign_ids"),
    Case("traffic_forecast steps=30", lambda c: traffic_forecast([0.0], 30), ValueError,
         "steps_per_day"),
    Case("traffic_forecast steps=48.0", lambda c: traffic_forecast([0.0], 48.0), TypeError,
         "steps_per_day"),
    Case("traffic_forecast times nan", lambda c: traffic_forecast([np.nan], 24), ValueError,
         "request_times"),
    # ----- events ----------------------------------------------------------------------
    Case("join_clicks NaN impression time",
         lambda c: join_clicks(with_nan(c.impressions, "time"), c.clicks, 60), ValueError,
         r"impressions\.time"),
    Case("join_clicks NaN click time",
         lambda c: join_clicks(c.impressions, with_nan(c.clicks, "click_time"), 60),
         ValueError, r"clicks\.click_time"),
    Case("join_clicks NaN impression_id",
         lambda c: join_clicks(c.impressions, with_nan(c.clicks, "impression_id"), 60),
         ValueError, r"clicks\.impression_id"),
    Case("join_clicks window list", lambda c: join_clicks(c.impressions, c.clicks, [60]),
         TypeError, "window_seconds"),
    Case("join_clicks window str", lambda c: join_clicks(c.impressions, c.clicks, "60"),
         TypeError, "window_seconds"),
    Case("join_clicks window=0", lambda c: join_clicks(c.impressions, c.clicks, 0),
         ValueError, "window_seconds"),
    Case("join_clicks impressions dict",
         lambda c: join_clicks(c.impressions.to_dict(), c.clicks, 60), TypeError,
         "impressions"),
    Case("join_clicks clicks missing a column",
         lambda c: join_clicks(c.impressions, c.clicks[["impression_id"]], 60), ValueError,
         "clicks"),
    Case("closed_labels as_of nan",
         lambda c: closed_labels(c.impressions, c.clicks, 60, as_of=np.nan), ValueError,
         "as_of"),
    Case("closed_labels closed_after > as_of",
         lambda c: closed_labels(c.impressions, c.clicks, 60, 100.0, closed_after=200.0),
         ValueError, "closed_after"),
    Case("training_data window<0",
         lambda c: training_data(c.impressions, c.clicks, -1, as_of=100.0), ValueError,
         "window_seconds"),
    # ----- prediction ------------------------------------------------------------------
    Case("logistic predict on CSV features", lambda c: c.model.predict(c.from_csv),
         ValueError, "'age_band'"),
    Case("logistic predict NaN feature", lambda c: c.model.predict(c.nan_feature),
         ValueError, "'ad_ctr_logit'"),
    Case("lightgbm fit on CSV features",
         lambda c: LightGBMClickModel(n_estimators=5).fit(c.from_csv, c.log["clicked"]),
         ValueError, "'age_band'"),
    Case("logistic fit NaN feature",
         lambda c: LogisticClickModel().fit(c.nan_feature, c.log["clicked"]), ValueError,
         "'ad_ctr_logit'"),
    Case("logistic fit labels 0/2",
         lambda c: LogisticClickModel().fit(c.features, 2 * c.log["clicked"]), ValueError,
         "clicked"),
    Case("logistic fit sample_weight<0",
         lambda c: LogisticClickModel().fit(c.features, c.log["clicked"],
                                            -np.ones(len(c.features))), ValueError,
         "sample_weight"),
    Case("LogisticClickModel C=0", lambda c: LogisticClickModel(C=0), ValueError, "C"),
    Case("LogisticClickModel C str", lambda c: LogisticClickModel(C="1"), TypeError, "C"),
    Case("LogisticClickModel max_iter float", lambda c: LogisticClickModel(max_iter=10.0),
         TypeError, "max_iter"),
    Case("LogisticClickModel bad cross",
         lambda c: LogisticClickModel(crosses=[("age_band", "nope")]), ValueError, "crosses"),
    Case("LightGBMClickModel downsampling_rate=2",
         lambda c: LightGBMClickModel(downsampling_rate=2.0), ValueError, "downsampling_rate"),
    Case("recalibrate_downsampled w=0", lambda c: recalibrate_downsampled(0.5, 0.0),
         ValueError, "w"),
    Case("recalibrate_downsampled p>1", lambda c: recalibrate_downsampled([1.5], 0.5),
         ValueError, "p"),
    Case("downsample_negatives w=None",
         lambda c: downsample_negatives([0, 1], None, np.random.default_rng(0)), TypeError,
         "w"),
    Case("Calibrator method", lambda c: Calibrator("beta"), ValueError, "method"),
    Case("Calibrator.fit p>1", lambda c: Calibrator().fit([0.5, 1.5], [0, 1]), ValueError,
         "p"),
    Case("Calibrator.fit y=2", lambda c: Calibrator().fit([0.5, 0.5], [0, 2]), ValueError,
         "y"),
    # ----- the world ---------------------------------------------------------------------
    Case("relevance negative publisher", lambda c: relevance(c, publishers=[-1]), ValueError,
         "publishers"),
    Case("relevance fractional hour", lambda c: relevance(c, hours=[12.5]), ValueError,
         "hours"),
    Case("relevance float user id", lambda c: relevance(c, users=[1.0]), ValueError, "users"),
    Case("relevance float ad id", lambda c: relevance(c, ads=[2.0]), ValueError, "ads"),
    Case("relevance exposures<0", lambda c: relevance(c, exposures=-1), ValueError,
         "exposures"),
    Case("relevance day float", lambda c: relevance(c, day=1.0), TypeError, "day"),
    Case("click_probability position 0",
         lambda c: c.world.click_probability([0], [0], [0], [0], [0], 0), ValueError,
         "position"),
    Case("World.requests n float", lambda c: c.world.requests(0, np.random.default_rng(0),
                                                              n=10.0), TypeError, "^n "),
    Case("World.requests day float", lambda c: c.world.requests(1.0, np.random.default_rng(0)),
         TypeError, "day"),
    Case("World seed<0", lambda c: World(seed=-1), ValueError, "seed"),
    Case("World config dict", lambda c: World({"n_users": 10}), TypeError, "config"),
    Case("WorldConfig n_users=3000.0", lambda c: WorldConfig(n_users=3000.0), TypeError,
         "n_users"),
    Case("WorldConfig n_slots=0", lambda c: WorldConfig(n_slots=0), ValueError, "n_slots"),
    Case("WorldConfig base_logit str", lambda c: WorldConfig(base_logit="low"), TypeError,
         "base_logit"),
    Case("WorldConfig examine", lambda c: WorldConfig(examine=(1.0, 0.5)), ValueError,
         "examine"),
    Case("WorldConfig.load unknown field", lambda c: WorldConfig.load(n_userz=10),
         ValueError, "n_userz"),
    Case("WorldConfig.load float count", lambda c: WorldConfig.load(c.float_count),
         TypeError, "n_users"),
    Case("World.delay_cdf<0", lambda c: c.world.delay_cdf(-1.0), ValueError, "seconds"),
    Case("World.click_stream NaN time",
         lambda c: c.world.click_stream([0], [np.nan], [True], np.random.default_rng(0)),
         ValueError, "impression_time"),
    Case("World.draw_clicks p>1",
         lambda c: c.world.draw_clicks([1.5], np.random.default_rng(0)), ValueError, "^p "),
    # ----- serving -----------------------------------------------------------------------
    Case("AdServer.serve NaN throttle", lambda c: serve(c, throttle_with(c, np.nan),
                                                         np.random.default_rng(0)),
         ValueError, "throttle"),
    Case("AdServer.serve throttle>1", lambda c: serve(c, throttle_with(c, 1.5)), ValueError,
         "throttle"),
    Case("AdServer.serve throttle length", lambda c: serve(c, np.ones(3)), ValueError,
         "throttle"),
    Case("AdServer.serve partial throttle without rng",
         lambda c: serve(c, throttle_with(c, 0.5)), ValueError, "rng"),
    Case("AdServer.serve requests frame",
         lambda c: c.server.serve(c.requests.to_frame(), 0), TypeError, "requests"),
    Case("AdServer.serve day float", lambda c: c.server.serve(c.requests, 0.0), TypeError,
         "day"),
    Case("AdServer.serve_one two requests",
         lambda c: c.server.serve_one(c.requests.take([0, 1]), 0), ValueError, "requests"),
    Case("AdServer k=n_slots", lambda c: AdServer(c.view, c.model, k=3), ValueError,
         r"k must be greater than n_slots"),
    Case("AdServer k float", lambda c: AdServer(c.view, c.model, k=5.0), TypeError, "k"),
    Case("AdServer reserve=None", lambda c: AdServer(c.view, c.model, reserve=None),
         TypeError, "reserve"),
    Case("AdServer reserve<0", lambda c: AdServer(c.view, c.model, reserve=-1.0), ValueError,
         "reserve"),
    Case("AdServer model_version<0", lambda c: AdServer(c.view, c.model, model_version=-1),
         ValueError, "model_version"),
    Case("AdServer given a World", lambda c: AdServer(c.world, c.model), TypeError, "view"),
    Case("AdServer model=None", lambda c: AdServer(c.view, None).serve(c.requests, 0),
         TypeError, "model"),
    Case("AdServer history dict", lambda c: AdServer(c.view, c.model, history={}),
         TypeError, "history"),
    Case("AdServer light_model str", lambda c: AdServer(c.view, c.model, light_model="x"),
         TypeError, "light_model"),
    Case("AdServer exposures int",
         lambda c: AdServer(c.view, c.model, exposures=5).serve(c.requests, 0), TypeError,
         "exposures"),
    # ----- features ----------------------------------------------------------------------
    Case("make_features float user id", lambda c: features_of(c, users=[0.0]), ValueError,
         "users"),
    Case("make_features hour 24", lambda c: features_of(c, hours=[24]), ValueError, "hours"),
    Case("make_features position 0", lambda c: features_of(c, positions=0), ValueError,
         "positions"),
    Case("make_features negative publisher", lambda c: features_of(c, publishers=[-1]),
         ValueError, "publishers"),
    Case("make_features exposures<0", lambda c: features_of(c, exposures=-1), ValueError,
         "exposures"),
    Case("make_features fractional exposures", lambda c: features_of(c, exposures=0.5),
         ValueError, "exposures"),
    Case("make_features users str", lambda c: features_of(c, users="0"), TypeError, "users"),
    Case("make_features history dict",
         lambda c: make_features(c.view, [0], [0], [0], [0], 1, history={}), TypeError,
         "history"),
    Case("make_features history of another view",
         lambda c: make_features(c.view, [0], [0], [0], [0], 1,
                                 History(World(seed=1).view)), ValueError, "history"),
    Case("make_features given a World",
         lambda c: make_features(c.world, [0], [0], [0], [0], 1), TypeError, "view"),
    Case("dtypes given a World", lambda c: dtypes(c.world), TypeError, "view"),
    Case("to_frame given a World", lambda c: to_frame(c.world, {}), TypeError, "view"),
    # ----- history -----------------------------------------------------------------------
    Case("History.add clicked=2", lambda c: History(c.view).add([0], [0], [2]), ValueError,
         "clicked"),
    Case("History.add ad out of range",
         lambda c: History(c.view).add([0], [c.view.n_ads], [1]), ValueError, "ads"),
    Case("History.add lengths", lambda c: History(c.view).add([0, 1], [0], [1]), ValueError,
         "users"),
    Case("History.add_views negative publisher",
         lambda c: History(c.view).add_views([0], [-1]), ValueError, "publishers"),
    Case("History given a World", lambda c: History(c.world), TypeError, "view"),
    Case("ExposureCounter n_ads=0", lambda c: ExposureCounter(0), ValueError, "n_ads"),
    Case("ExposureCounter.record ad out of range",
         lambda c: ExposureCounter(5).record([0], [5]), ValueError, "ads"),
    Case("smoothed_ctr prior_ctr=0", lambda c: smoothed_ctr([1], [10], prior_ctr=0.0),
         ValueError, "prior_ctr"),
    Case("smoothed_ctr prior_strength<0",
         lambda c: smoothed_ctr([1], [10], prior_strength=-1.0), ValueError, "prior_strength"),
    Case("smoothed_ctr negative clicks", lambda c: smoothed_ctr([-5], [10]), ValueError,
         "clicks"),
    Case("smoothed_ctr nan impressions", lambda c: smoothed_ctr([1], [np.nan]), ValueError,
         "impressions"),
    Case("smoothed_ctr clicks > impressions", lambda c: smoothed_ctr([5], [2]), ValueError,
         "clicks"),
    Case("smoothed_ctr shapes differ", lambda c: smoothed_ctr([1, 2], [10]), ValueError,
         "clicks"),
    Case("smoothed_ctr text", lambda c: smoothed_ctr("abc", [10]), TypeError, "clicks"),
    Case("PlatformView.label negative code", lambda c: c.view.label("region", [-1]),
         ValueError, "codes"),
    Case("PlatformView.label code past the end", lambda c: c.view.label("gender", [99]),
         ValueError, "codes"),
    Case("top_k_per_group negative score",
         lambda c: top_k_per_group([0, 0], [-1.0, 0.5], [0, 1], 1), ValueError, "scores"),
    Case("top_k_per_group nan score",
         lambda c: top_k_per_group([0, 0], [np.nan, 0.5], [0, 1], 1), ValueError, "scores"),
    Case("top_k_per_group k=0", lambda c: top_k_per_group([0], [0.5], [0], 0), ValueError,
         "k"),
    # ----- index and selection --------------------------------------------------------------
    Case("AdIndex.eligible has_budget shape",
         lambda c: c.index.eligible(c.requests, 0, np.ones(3, bool)), ValueError,
         "has_budget"),
    Case("AdIndex.eligible other day", lambda c: c.index.eligible(c.requests, 1), ValueError,
         "day"),
    Case("AdIndex.eligible_for float user", lambda c: c.index.eligible_for(1.5, 0),
         ValueError, "user_id"),
    Case("AdIndex.matches negative user", lambda c: c.index.matches([-1], [0]), ValueError,
         "users"),
    Case("AdIndex given a World", lambda c: AdIndex(c.world), TypeError, "view"),
    Case("Selector.select k=0", lambda c: c.selector.select(c.requests, [0], [0], 0),
         ValueError, "k"),
    Case("Selector.select k float", lambda c: c.selector.select(c.requests, [0], [0], 2.5),
         TypeError, "k"),
    Case("Selector.select request_pos out of range",
         lambda c: c.selector.select(c.requests, [len(c.requests)], [0], 3), ValueError,
         "request_pos"),
    Case("Selector unfitted light model", lambda c: Selector(c.view, c.history, LightModel()),
         ValueError, "model"),
    Case("Selector history dict", lambda c: Selector(c.view, {}), TypeError, "history"),
    Case("LightModel C<0", lambda c: LightModel(C=-1.0), ValueError, "C"),
    Case("LightModel crosses str", lambda c: LightModel(crosses="hour"), TypeError, "crosses"),
    Case("LightModel.fit missing columns",
         lambda c: LightModel().fit(c.features.drop(columns="ad_ctr_logit"),
                                    c.log["clicked"]), ValueError, "features"),
    # ----- metrics ----------------------------------------------------------------------------
    Case("log_loss y=2", lambda c: metrics.log_loss([0, 2], [0.1, 0.2]), ValueError, "^y "),
    Case("log_loss p nan", lambda c: metrics.log_loss([0, 1], [0.1, np.nan]), ValueError,
         "^p "),
    Case("log_loss eps", lambda c: metrics.log_loss(Y, P, eps=0.6), ValueError, "eps"),
    Case("log_loss lengths", lambda c: metrics.log_loss([0, 1], [0.1]), ValueError, "p has"),
    Case("normalized_entropy one class", lambda c: metrics.normalized_entropy([0, 0], P[:2]),
         ValueError, "^y "),
    Case("roc_auc one class", lambda c: metrics.roc_auc([1, 1], P[:2]), ValueError, "^y "),
    Case("calibration_ratio no clicks", lambda c: metrics.calibration_ratio([0, 0], P[:2]),
         ValueError, "^y "),
    Case("precision_recall_f1 threshold", lambda c: metrics.precision_recall_f1(Y, P, 2.0),
         ValueError, "threshold"),
    Case("ndcg_at_k k=0", lambda c: metrics.ndcg_at_k([1, 0], 0), ValueError, "^k "),
    Case("mean_ndcg_at_k lengths", lambda c: metrics.mean_ndcg_at_k([1, 0], [0.5], [1, 1], 2),
         ValueError, "scores"),
    Case("recall_at_k m=0", lambda c: metrics.recall_at_k([1.0], [1.0], [0], 1, 0),
         ValueError, "^m "),
    Case("reliability_curve bins=0", lambda c: metrics.reliability_curve(Y, P, bins=0),
         ValueError, "bins"),
    Case("reliability_curve strategy", lambda c: metrics.reliability_curve(Y, P, strategy="x"),
         ValueError, "strategy"),
    Case("online_metrics n_requests=0",
         lambda c: metrics.online_metrics(c.log.assign(price=0.0), 0), ValueError,
         "n_requests"),
    Case("spend_by_campaign missing campaign_id",
         lambda c: metrics.spend_by_campaign(c.log.assign(price=0.0).drop(
             columns="campaign_id")), ValueError, "campaign_id"),
    # ----- experiment -----------------------------------------------------------------------
    Case("assign_arm treatment_share", lambda c: experiment.assign_arm([1, 2], "s", 1.5),
         ValueError, "treatment_share"),
    Case("two_proportion_test clicks > n",
         lambda c: experiment.two_proportion_test(20, 10, 5, 10), ValueError, "clicks_a"),
    Case("sample_size_per_arm base_rate=0",
         lambda c: experiment.sample_size_per_arm(0.0, 0.1), ValueError, "base_rate"),
    Case("power n_per_arm=0", lambda c: experiment.power(0.02, 0.1, 0), ValueError,
         "n_per_arm"),
    Case("ratio_delta_interval lengths",
         lambda c: experiment.ratio_delta_interval([1, 2, 3], [5, 5], [1, 2], [5, 5]),
         ValueError, "numerator_a"),
    # ----- off-policy estimates and monitoring ------------------------------------------------
    Case("ips logging_propensity=0", lambda c: offpolicy.ips([1, 0], [0.0, 0.5], [0.5, 0.5]),
         ValueError, "logging_propensity"),
    Case("ips reward nan", lambda c: offpolicy.ips([np.nan, 0], [0.5, 0.5], [0.5, 0.5]),
         ValueError, "reward"),
    Case("snips target_propensity>1",
         lambda c: offpolicy.snips([1, 0], [0.5, 0.5], [1.5, 0.5]), ValueError,
         "target_propensity"),
    Case("doubly_robust lengths",
         lambda c: offpolicy.doubly_robust([1, 0], [0.5, 0.5], [0.5, 0.5], [0.1], [0.1, 0.1]),
         ValueError, "predicted_reward has 1"),
    Case("psi bins=0", lambda c: monitoring.psi([1.0, 2.0, 3.0], [1.0, 2.0], bins=0),
         ValueError, "bins"),
    Case("psi bins float", lambda c: monitoring.psi([1.0, 2.0, 3.0], [1.0, 2.0], bins=2.5),
         TypeError, "bins"),
    Case("psi expected nan", lambda c: monitoring.psi([1.0, np.nan], [1.0, 2.0]), ValueError,
         "expected"),
    Case("ks_test expected str", lambda c: monitoring.ks_test("abc", [1.0, 2.0]), TypeError,
         "expected"),
    # ----- the loop -------------------------------------------------------------------------
    Case("SimulationConfig k float", lambda c: SimulationConfig(k=10.0), TypeError, "k"),
    Case("SimulationConfig steps_per_day=30", lambda c: SimulationConfig(steps_per_day=30),
         ValueError, "steps_per_day"),
    Case("SimulationConfig reserve=None", lambda c: SimulationConfig(reserve=None),
         TypeError, "reserve"),
    Case("SimulationConfig light_crosses unknown",
         lambda c: SimulationConfig(light_crosses=("device",)), ValueError, "crosses"),
    Case("simulate k=n_slots", lambda c: next(simulate(c.world, 1, 0, SimulationConfig(k=3))),
         ValueError, r"k must be greater than n_slots"),
    Case("simulate days=0", lambda c: next(simulate(c.world, 0, 0)), ValueError, "days"),
    Case("simulate_day server model",
         lambda c: simulate_day(c.world, c.model, 0, np.random.default_rng(0)), TypeError,
         "server"),
    Case("bootstrap browsing_days<0",
         lambda c: bootstrap(c.world, np.random.default_rng(0), 10, browsing_days=-1),
         ValueError, "browsing_days"),
    Case("serve_random n_requests=0",
         lambda c: serve_random(c.world, 0, 0, np.random.default_rng(0)), ValueError,
         "n_requests"),
    Case("day_report window=0", lambda c: day_report(c.day, 0.0), ValueError,
         "window_seconds"),
    # ----- the command line -------------------------------------------------------------------
    Case("CLI world file float count", lambda c: cli("--out", c.out, "--world", c.float_count),
         CliError, "n_users"),
    Case("CLI world file float n_slots",
         lambda c: cli("--out", c.out, "--world", c.float_slots), CliError, "n_slots"),
    Case("CLI --k 3", lambda c: cli("--out", c.out, "--k", "3"), CliError,
         r"k must be greater than n_slots \(3\)"),
    Case("CLI --days 0", lambda c: cli("--out", c.out, "--days", "0"), CliError, "--days"),
    Case("CLI --reserve -1", lambda c: cli("--out", c.out, "--reserve", "-1"), CliError,
         "--reserve"),
    Case("CLI --requests 2.5", lambda c: cli("--out", c.out, "--requests", "2.5"), CliError,
         "--requests"),
]


def params() -> list:
    return [pytest.param(case, id=case.label,
                         marks=[pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug
                         else [])
            for case in CASES]


def test_the_matrix_is_large_and_every_label_is_unique():
    labels = [case.label for case in CASES]
    assert len(labels) == len(set(labels))
    assert len(CASES) >= 100


@pytest.mark.parametrize("case", params())
def test_bad_input_is_answered_with_a_named_error(ctx, case):
    with pytest.raises((ValueError, TypeError, CliError)) as info:
        case.call(ctx)
    assert isinstance(info.value, case.error), (
        f"{case.label}: expected {case.error.__name__}, got {type(info.value).__name__}: "
        f"{info.value}")
    assert re.search(case.name, str(info.value), re.MULTILINE), (
        f"{case.label}: the message does not name {case.name!r}: {info.value}")


# ----- edge values that are valid: they must work, not crash ----------------------------------

@pytest.mark.parametrize("call", [
    lambda c: run_auction([1.0, 2.0], [0.1, 0.1], n_slots=10**12),
    lambda c: run_auctions([[1.0, 2.0]], [[0.1, 0.1]], n_slots=2**62),
    lambda c: AdServer(c.view, c.model, k=np.int64(5)),
    lambda c: Selector(c.view).select(c.requests, [0], [0], np.int64(5)),
    lambda c: c.world.requests(np.int64(0), np.random.default_rng(0), n=np.int32(5)),
    lambda c: WorldConfig(n_users=np.int64(3000)),
    lambda c: c.server.serve(c.requests.take(np.zeros(len(c.requests), bool)), 0),
    lambda c: c.server.serve(c.requests, 0, np.zeros(c.view.n_campaigns)),
    lambda c: join_clicks(c.impressions, c.clicks.iloc[:0], 60),
    lambda c: Pacer([10.0], [1.0]).record(np.int64(0), [1.0]),
], ids=["huge n_slots", "huge batch n_slots", "AdServer numpy k", "Selector numpy k",
        "requests numpy day and n", "WorldConfig numpy count", "empty batch",
        "every campaign throttled", "no clicks", "numpy step"])
def test_edge_values_are_accepted(ctx, call):
    call(ctx)
