"""The loop: the world's traffic through the platform, clicks back into its logs.

This is the one place where the world (truth) and the platform meet. A day is
played in equal time steps (``steps_per_day``, a multiple of 24). In each step the
pacer sets throttle rates, the server runs the step's requests through the funnel,
the world draws clicks at the slots shown (knowing how often each user already saw
each ad today), and click events that have arrived by the end of the step are
billed: each impression at most once (duplicates count once), never above the
campaign's budget (the rest is logged as unbilled overdelivery).

Each night the platform learns from its own logs only: impressions whose
attribution window has closed are labelled and counted into its
:class:`~adsys.history.History`, and a new model is trained on the features logged
at serving time over a sliding window of days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adsys.baseline import prior_exposures, serve_random
from adsys.events import FEATURE_PREFIX, closed_labels, join_clicks
from adsys.features import from_log, make_features
from adsys.history import ExposureCounter, History
from adsys.observable import SECONDS_PER_DAY, Requests
from adsys.pacing import Pacer, charge, traffic_forecast
from adsys.prediction import ClickModel, LogisticClickModel, downsample_negatives
from adsys.selection import LightModel
from adsys.serving import AdServer, FeatureFault, SplitServer, StageTimer, uniform_hash
from adsys.validation import check_int, check_range
from adsys.world import World

CANDIDATE_SALT = 0x5EED   # fixes which requests' candidates are logged (a hash, not the rng)

ModelFactory = Callable[..., ClickModel]
"""Builds an unfitted click model; called as ``make_model(downsampling_rate=w)``."""


@dataclass(frozen=True)
class SimulationConfig:
    """How the platform is run; the world's own knobs live in ``WorldConfig``."""

    steps_per_day: int = 48                 # pacing and billing steps (30 minutes each)
    k: int = 10                             # candidates scored by the click model
    reserve: float = 1.0                    # minimum eCPM, dollars per 1,000 impressions
    pacing: bool = True                     # False: bid in full until the budget runs out
    attribution_window: float = 3600.0      # seconds a click may take to count as a label
    bootstrap_requests: int = 50_000        # random-server traffic the first model learns from
    browsing_days: int = 14                 # days of page views logged before ads launch
    training_days: int = 3                  # nightly retraining window, in days
    downsampling_rate: float = 0.2          # share of non-clicks kept for training
    exploration: float = 0.0                # share of requests with a random slot-1 ad
    fault: FeatureFault | None = None       # a serving bug to inject (Step 7)
    candidate_share: float = 0.0            # share of requests whose candidates are logged
    light_crosses: tuple[str, ...] = ()     # the nightly light model's topic crosses

    def __post_init__(self) -> None:
        steps = check_int("steps_per_day", self.steps_per_day, 24)
        if steps % 24:
            raise ValueError(f"steps_per_day must be a multiple of 24; got {steps}")
        check_int("k", self.k, 2)
        check_range("reserve", self.reserve, 0.0, np.inf)
        if not isinstance(self.pacing, bool):
            raise TypeError(f"pacing must be True or False; got {self.pacing!r}")
        check_range("attribution_window", self.attribution_window, 0, np.inf,
                    low_open=True, high_open=True)
        check_int("bootstrap_requests", self.bootstrap_requests, 1)
        check_int("browsing_days", self.browsing_days, 0)
        check_int("training_days", self.training_days, 1)
        check_range("downsampling_rate", self.downsampling_rate, 0, 1, low_open=True)
        check_range("exploration", self.exploration, 0, 1, high_open=True)
        if self.fault is not None and not isinstance(self.fault, FeatureFault):
            raise TypeError(f"fault must be a FeatureFault; got {type(self.fault).__name__}")
        check_range("candidate_share", self.candidate_share, 0, 1)
        LightModel(crosses=self.light_crosses)   # names a bad cross


@dataclass
class DayResult:
    """Everything one simulated day logged.

    ``impressions`` has one row per impression (see :meth:`AdServer.serve`) plus
    ``pctr_shown`` (the model's pCTR at the slot shown, :meth:`AdServer.predict_shown`),
    ``exposures`` (times the user had already seen the ad today), ``true_p`` (the
    world's click probability: for the course's analysis only, never a feature),
    ``charged`` and ``unbilled`` (dollars billed for its click and the part above the
    budget). ``clicks`` holds every click event received for the day's impressions,
    duplicates and late arrivals included. ``requests`` is the day's request log.
    ``candidates`` holds the candidates the click model scored for a
    ``config.candidate_share`` of the requests, when the server logs candidates (the
    :class:`Simulation` turns that on when the share is above 0; see
    :attr:`AdServer.candidates`): what a counterfactual replay of another model needs.
    Otherwise ``None``.
    """

    day: int
    requests: Requests
    impressions: pd.DataFrame
    clicks: pd.DataFrame
    pacer: Pacer
    model: ClickModel
    stage_seconds: dict[str, float] = field(default_factory=dict)
    candidates: pd.DataFrame | None = None

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    @property
    def spend(self) -> np.ndarray:
        """Dollars charged to each campaign for the day's impressions."""
        return np.bincount(self.impressions["campaign_id"], self.impressions["charged"],
                           minlength=len(self.pacer.budgets))


class _Billing:
    """Bills click events as they arrive: once per impression, never above budget.

    Impressions are numbered from ``first_id`` in the order they are added.
    """

    def __init__(self, budgets: np.ndarray, first_id: int) -> None:
        self.budgets = budgets
        self.first_id = first_id
        self.spent = np.zeros_like(budgets)
        self.pending_ids = np.zeros(0, np.int64)
        self.pending_times = np.zeros(0)
        self.campaign = np.zeros(0, np.int64)
        self.price = np.zeros(0)
        self.charged = np.zeros(0)
        self.unbilled = np.zeros(0)
        self.billed = np.zeros(0, bool)

    def add(self, campaign: np.ndarray, price: np.ndarray, events: pd.DataFrame) -> None:
        """Register a step's impressions (in id order) and their click events."""
        n = len(price)
        self.campaign = np.concatenate([self.campaign, campaign])
        self.price = np.concatenate([self.price, price])
        self.charged = np.concatenate([self.charged, np.zeros(n)])
        self.unbilled = np.concatenate([self.unbilled, np.zeros(n)])
        self.billed = np.concatenate([self.billed, np.zeros(n, bool)])
        self.pending_ids = np.concatenate([self.pending_ids,
                                           events["impression_id"].to_numpy(np.int64)])
        self.pending_times = np.concatenate([self.pending_times,
                                             events["click_time"].to_numpy(float)])

    def bill_until(self, until: float) -> np.ndarray:
        """Bill events that arrived before ``until``; return the spend per campaign."""
        due = self.pending_times < until
        order = np.argsort(self.pending_times[due], kind="stable")
        rows = self.pending_ids[due][order] - self.first_id
        self.pending_ids, self.pending_times = self.pending_ids[~due], self.pending_times[~due]
        _, first = np.unique(rows, return_index=True)       # duplicates count once
        rows = rows[np.sort(first)]
        rows = rows[~self.billed[rows]]
        campaign = self.campaign[rows]
        charged, unbilled = charge(self.spent, self.budgets, campaign, self.price[rows])
        self.billed[rows] = True
        self.charged[rows] = charged
        self.unbilled[rows] = unbilled
        spend = np.bincount(campaign, charged, minlength=len(self.budgets))
        self.spent += spend
        return spend


def simulate_day(world: World, server: AdServer | SplitServer, day: int, rng: np.random.Generator,
                 config: SimulationConfig = SimulationConfig(),
                 traffic_curve: np.ndarray | None = None, n_requests: int | None = None,
                 first_request_id: int = 0, first_impression_id: int = 0) -> DayResult:
    """Play one day of traffic through the server with pacing and billing.

    ``traffic_curve`` is the platform's forecast of the share of the day's requests
    in each step (:func:`adsys.pacing.traffic_forecast` of an earlier request log);
    ``None`` plans a flat day. Request and impression ids start at the given values,
    so that ids stay unique over a run of several days.
    """
    if not isinstance(server, AdServer | SplitServer):
        raise TypeError(f"server must be an AdServer or a SplitServer; got "
                        f"{type(server).__name__}")
    view = server.view
    requests = world.requests(day, rng, n=n_requests,
                              first_id=check_int("first_request_id", first_request_id, 0))
    first_impression_id = check_int("first_impression_id", first_impression_id, 0)
    budgets = view.campaigns["daily_budget"].to_numpy(dtype=float)
    steps = config.steps_per_day
    curve = np.full(steps, 1 / steps) if traffic_curve is None else traffic_curve
    pacer = Pacer(budgets, curve) if config.pacing else Pacer.unpaced(budgets, curve)
    if pacer.n_steps != steps:
        raise ValueError(f"traffic_curve must have one share per step ({steps}); "
                         f"got {pacer.n_steps}")
    seen = server.exposures if server.exposures is not None else ExposureCounter(view.n_ads)
    seen.reset()
    edges = day * SECONDS_PER_DAY + np.linspace(0, SECONDS_PER_DAY, steps + 1)
    bounds = np.searchsorted(requests.time, edges)
    billing = _Billing(budgets, first_impression_id)
    timer = StageTimer()
    logs, events, next_id = [], [], first_impression_id
    candidates = [] if config.candidate_share > 0 and getattr(server, "log_candidates", False) \
        else None
    for step in range(steps):
        batch = requests.take(slice(bounds[step], bounds[step + 1]))
        log = server.serve(batch, day, pacer.rates(), rng, timer)
        if candidates is not None and server.candidates is not None:
            scored = server.candidates
            sampled = uniform_hash(scored["request_id"].to_numpy(), np.zeros(len(scored), int),
                                   CANDIDATE_SALT) < config.candidate_share
            candidates.append(scored[sampled])
        with timer.stage("clicks"):
            # Columns are read before any is added: each added column rebuilds the
            # table's column index, and the next lookup pays for it.
            ids = np.arange(next_id, next_id + len(log))
            next_id += len(log)
            users, ads = log["user_id"].to_numpy(), log["ad_id"].to_numpy()
            exposures = prior_exposures(users, ads, seen)
            seen.record(users, ads)
            true_p = world.click_probability(users, ads, log["publisher_id"].to_numpy(),
                                             log["hour"].to_numpy(),
                                             log["position"].to_numpy(), day, exposures)
            clicked = world.draw_clicks(true_p, rng)
            step_events = world.click_stream(ids, log["time"].to_numpy(), clicked, rng)
            billing.add(log["campaign_id"].to_numpy(), log["price"].to_numpy(), step_events)
            pacer.record(step, billing.bill_until(edges[step + 1]))
            log.insert(0, "impression_id", ids)
            log["exposures"], log["true_p"] = exposures, true_p
        logs.append(log)
        events.append(step_events)
    billing.bill_until(np.inf)  # clicks arriving after midnight are billed to the same day
    impressions = pd.concat(logs, ignore_index=True)
    with timer.stage("clicks"):   # one model call for the day: the model is the day's
        impressions["pctr_shown"] = server.predict_shown(impressions)
    impressions["charged"] = billing.charged
    impressions["unbilled"] = billing.unbilled
    clicks = pd.concat(events, ignore_index=True).sort_values("click_time", kind="stable")
    return DayResult(day, requests, impressions, clicks.reset_index(drop=True), pacer,
                     server.model, dict(timer.seconds),
                     None if candidates is None else pd.concat(candidates, ignore_index=True))


@dataclass(frozen=True)
class Models:
    """The two models of the funnel, retrained together every night."""

    heavy: ClickModel
    light: LightModel


def bootstrap(world: World, rng: np.random.Generator, n_requests: int,
              make_model: ModelFactory = LogisticClickModel, browsing_days: int = 0,
              requests_per_day: int | None = None,
              window_seconds: float = SimulationConfig.attribution_window,
              ) -> tuple[Models, History, pd.DataFrame]:
    """Before launch no model exists: learn the first one from random-server traffic.

    The platform's history starts with ``browsing_days`` days of page views logged
    before ads launched (the publishers' readers were there first; ``requests_per_day``
    each, by default the world's) and the
    bootstrap log's impressions and clicks. The clicks reach the platform as a click
    stream and label an impression only within ``window_seconds`` (the nightly job's
    rule; every window has closed by launch). Returns the model, that history, and
    the bootstrap log, labelled as by :func:`~adsys.events.join_clicks` (its request
    times give the first traffic forecast).
    """
    view = world.view
    history = History(view)
    for _ in range(check_int("browsing_days", browsing_days, 0)):
        before = world.requests(0, rng, n=requests_per_day)
        history.add_views(before.user, before.publisher)
    served = serve_random(world, day=0, n_requests=n_requests, rng=rng, with_truth=False)
    ids = np.arange(len(served))
    stream = world.click_stream(ids, served["time"].to_numpy(),
                                served.pop("clicked").to_numpy(bool), rng)
    served.insert(0, "impression_id", ids)
    log, _ = join_clicks(served, stream, window_seconds)
    features = make_features(view, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"], history, log["exposures"])
    model = make_model(downsampling_rate=1.0).fit(features, log["clicked"])
    light = LightModel().fit(features, log["clicked"])
    history.add(log["user_id"], log["ad_id"], log["clicked"])
    views = log.drop_duplicates("request_id")
    history.add_views(views["user_id"], views["publisher_id"])
    return Models(model, light), history, log


class Simulation:
    """The platform run in the world, day after day: the loop's state between days.

    Built with the bootstrap (random traffic before launch, ``browsing_days`` of page
    views); then :meth:`play_day` serves the next day with today's models, and
    :meth:`learn` runs the nightly job on the last ``config.training_days`` days.
    Attributes ``models``, ``history`` and ``day`` are the platform's state for the
    next day. :func:`simulate` is the usual way to drive it.
    """

    def __init__(self, world: World, seed: int, config: SimulationConfig = SimulationConfig(),
                 make_model: ModelFactory = LogisticClickModel,
                 n_requests: int | None = None) -> None:
        if not isinstance(world, World):
            raise TypeError(f"world must be a World; got {type(world).__name__}")
        self.world, self.config, self.make_model = world, config, make_model
        self.n_requests = n_requests
        self.rng = np.random.default_rng(check_int("seed", seed, 0))
        view = world.view
        if config.k <= view.n_slots:
            raise ValueError(f"k must be greater than n_slots ({view.n_slots}): the auction "
                             f"needs a runner-up to price the last slot; got k={config.k}")
        self.models, self.history, log = bootstrap(
            world, self.rng, config.bootstrap_requests, make_model, config.browsing_days,
            n_requests, config.attribution_window)
        self.forecast = traffic_forecast(log["time"].drop_duplicates(), config.steps_per_day)
        self.exposures = ExposureCounter(view.n_ads)
        self.recent: list[DayResult] = []
        self.day = self.first_request = self.first_impression = 0

    def play_day(self) -> DayResult:
        """Serve the next day with today's models; return what it logged."""
        config = self.config
        server = AdServer(self.world.view, self.models.heavy, self.history, self.exposures,
                          self.models.light, k=config.k, reserve=config.reserve,
                          model_version=self.day, exploration=config.exploration,
                          fault=config.fault, log_candidates=config.candidate_share > 0)
        result = simulate_day(self.world, server, self.day, self.rng, config, self.forecast,
                              self.n_requests, self.first_request, self.first_impression)
        self.first_request += result.n_requests
        self.first_impression += len(result.impressions)
        self.recent = [*self.recent, result][-(config.training_days + 1):]
        self.day += 1
        return result

    def learn(self) -> None:
        """The nightly job: new models and history from the platform's logs, and
        tomorrow's traffic forecast from today's request log."""
        if not self.recent:
            raise ValueError("no day has been played yet: call play_day first")
        self.forecast = traffic_forecast(self.recent[-1].requests.time,
                                         self.config.steps_per_day)
        self.models, self.history = retrain(self.recent, self.config, self.make_model,
                                            self.history, self.rng, self.models)


def simulate(world: World, days: int, seed: int,
             config: SimulationConfig = SimulationConfig(),
             make_model: ModelFactory = LogisticClickModel,
             n_requests: int | None = None) -> Iterator[DayResult]:
    """Run ``days`` days, retraining the model each night on the platform's logs.

    Yields one :class:`DayResult` per day, as soon as the day ends. Day d is served
    by model version d, trained on the closed impressions of the last
    ``config.training_days`` days (version 0 on bootstrap random traffic); pacing
    plans each day on the previous day's request log.
    """
    days = check_int("days", days, 1)
    simulation = Simulation(world, seed, config, make_model, n_requests)
    for day in range(days):
        yield simulation.play_day()
        if day + 1 < days:
            simulation.learn()


def retrain(recent: list[DayResult], config: SimulationConfig, make_model: ModelFactory,
            history: History, rng: np.random.Generator, models: Models) -> tuple[Models, History]:
    """The nightly job, run at the end of the last day of ``recent``.

    Counts the impressions whose attribution window closed since last night (and the
    day's page views) into a copy of ``history``, and fits new heavy and light models
    on the closed impressions of the last ``config.training_days`` days (non-clicks
    kept at ``config.downsampling_rate``). Only clicks received by midnight count;
    impressions still inside their window wait a night. A window without both clicks
    and non-clicks keeps yesterday's ``models``.
    """
    as_of = (recent[-1].day + 1) * SECONDS_PER_DAY
    # Only the columns the job reads: copying whole impression logs costs more than the join.
    needed = ["impression_id", "time", "day", "user_id", "ad_id",
              *(c for c in recent[-1].impressions.columns if c.startswith(FEATURE_PREFIX))]
    impressions = pd.concat([r.impressions[needed] for r in recent], ignore_index=True)
    clicks = pd.concat([r.clicks for r in recent], ignore_index=True)
    closed = closed_labels(impressions, clicks, config.attribution_window, as_of)
    time, clicked = closed["time"].to_numpy(), closed["clicked"].to_numpy()
    fresh = time + config.attribution_window > as_of - SECONDS_PER_DAY
    history = history.copy().add(closed["user_id"].to_numpy()[fresh],
                                 closed["ad_id"].to_numpy()[fresh], clicked[fresh])
    today = recent[-1].requests
    history.add_views(today.user, today.publisher)
    in_window = np.flatnonzero(closed["day"].to_numpy() > recent[-1].day - config.training_days)
    if len(np.unique(clicked[in_window])) < 2:   # too quiet to learn from: keep the old models
        return models, history
    w = config.downsampling_rate
    rows = in_window[downsample_negatives(clicked[in_window], w, rng)]
    features = from_log(history.view, closed.iloc[rows], FEATURE_PREFIX)
    heavy = make_model(downsampling_rate=w).fit(features, clicked[rows])
    light = LightModel(downsampling_rate=w, crosses=config.light_crosses).fit(
        features, clicked[rows])
    return Models(heavy, light), history
