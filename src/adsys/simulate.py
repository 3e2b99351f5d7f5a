"""The day loop: requests -> serving -> clicks -> billing -> pacing, then retraining.

A day is played in equal time steps (``steps_per_day``, a multiple of 24). In
each step the pacer sets throttle rates, the server runs the step's requests
through the funnel, the world draws clicks at the slots shown, and click events
that have arrived by the end of the step are billed: each impression at most once
(duplicates count once), never above the campaign's budget (the rest is logged as
unbilled overdelivery). Each night the model is retrained on the logged features
and the attribution-window labels of every closed impression.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adsys.baseline import serve_random
from adsys.events import join_clicks, training_data
from adsys.features import count_ad_stats, make_features
from adsys.pacing import Pacer, charge
from adsys.prediction import ClickModel, LogisticClickModel
from adsys.serving import AdServer, StageTimer
from adsys.world import SECONDS_PER_DAY, World

ModelFactory = Callable[[], ClickModel]


@dataclass(frozen=True)
class SimulationConfig:
    """How the system is run; the world's own knobs live in ``WorldConfig``."""

    steps_per_day: int = 96                 # pacing and billing steps (15 minutes each)
    k: int = 10                             # candidates scored by the click model
    reserve: float = 0.0                    # minimum eCPM, dollars per impression
    pacing: bool = True                     # False: bid in full until the budget runs out
    attribution_window: float = 3600.0      # seconds a click may take to count as a label
    bootstrap_requests: int = 50_000        # random-server traffic the first model learns from
    history_features: bool = False          # give the model the ads' logged CTRs (Step 6)

    def __post_init__(self) -> None:
        if self.steps_per_day < 24 or self.steps_per_day % 24:
            raise ValueError(f"steps_per_day must be a positive multiple of 24; "
                             f"got {self.steps_per_day}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1; got {self.k}")
        if self.reserve < 0:
            raise ValueError(f"reserve must be >= 0; got {self.reserve}")
        if self.attribution_window <= 0:
            raise ValueError(f"attribution_window must be > 0; got {self.attribution_window}")
        if self.bootstrap_requests < 1:
            raise ValueError(f"bootstrap_requests must be >= 1; got {self.bootstrap_requests}")


@dataclass
class DayResult:
    """Everything one simulated day logged.

    ``impressions`` has one row per impression (see :meth:`AdServer.serve`) plus
    ``true_p`` (the world's click probability: for the course's analysis only,
    never a feature), ``charged`` and ``unbilled`` (dollars billed for its click
    and the part above the budget). ``clicks`` holds every click event received
    for the day's impressions, duplicates and late arrivals included.
    """

    day: int
    impressions: pd.DataFrame
    clicks: pd.DataFrame
    pacer: Pacer
    n_requests: int
    model: ClickModel
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def spend(self) -> np.ndarray:
        """Dollars charged to each campaign for the day's impressions."""
        return np.bincount(self.impressions["campaign_id"], self.impressions["charged"],
                           minlength=len(self.pacer.budgets))


def step_traffic(world: World, steps_per_day: int) -> np.ndarray:
    """Expected share of a day's requests in each step (each hour split evenly)."""
    per_hour = steps_per_day // 24
    return np.repeat(world.hourly_traffic() / per_hour, per_hour)


class _Billing:
    """Bills click events as they arrive: once per impression, never above budget.

    Impressions are numbered from ``first_id`` in the order they are added.
    """

    def __init__(self, budgets: np.ndarray, first_id: int) -> None:
        self.budgets = budgets
        self.first_id = first_id
        self.spent = np.zeros_like(budgets)
        self.pending = pd.DataFrame({"impression_id": np.zeros(0, np.int64),
                                     "click_time": np.zeros(0)})
        self.campaign = np.zeros(0, np.int64)
        self.price = np.zeros(0)
        self.charged = np.zeros(0)
        self.unbilled = np.zeros(0)
        self.billed = np.zeros(0, bool)

    def add(self, campaign: np.ndarray, price: np.ndarray, events: pd.DataFrame) -> None:
        """Register a step's impressions (in id order) and their click events."""
        self.campaign = np.concatenate([self.campaign, campaign])
        self.price = np.concatenate([self.price, price])
        self.charged = np.concatenate([self.charged, np.zeros(len(price))])
        self.unbilled = np.concatenate([self.unbilled, np.zeros(len(price))])
        self.billed = np.concatenate([self.billed, np.zeros(len(price), bool)])
        self.pending = pd.concat([self.pending, events], ignore_index=True)

    def bill_until(self, until: float) -> np.ndarray:
        """Bill events that arrived before ``until``; return the spend per campaign."""
        due = (self.pending["click_time"] < until).to_numpy()
        events = self.pending[due].sort_values("click_time", kind="stable")
        self.pending = self.pending[~due]
        rows = events["impression_id"].to_numpy(dtype=np.int64) - self.first_id
        rows = rows[~pd.Series(rows).duplicated().to_numpy()]   # duplicates count once
        rows = rows[~self.billed[rows]]
        campaign = self.campaign[rows]
        charged, unbilled = charge(self.spent, self.budgets, campaign, self.price[rows])
        self.billed[rows] = True
        self.charged[rows] = charged
        self.unbilled[rows] = unbilled
        spend = np.bincount(campaign, charged, minlength=len(self.budgets))
        self.spent += spend
        return spend


def simulate_day(world: World, server: AdServer, day: int, rng: np.random.Generator,
                 config: SimulationConfig = SimulationConfig(), n_requests: int | None = None,
                 first_request_id: int = 0, first_impression_id: int = 0) -> DayResult:
    """Play one day of traffic through the server with pacing and billing.

    Request and impression ids start at the given values, so that ids stay unique
    over a run of several days.
    """
    requests = world.requests(day, rng, n=n_requests, first_id=first_request_id)
    budgets = world.campaigns["daily_budget"].to_numpy(dtype=float)
    curve = step_traffic(world, config.steps_per_day)
    pacer = Pacer(budgets, curve) if config.pacing else Pacer.unpaced(budgets, curve)
    edges = day * SECONDS_PER_DAY + np.linspace(0, SECONDS_PER_DAY, config.steps_per_day + 1)
    bounds = np.searchsorted(requests.time, edges)
    billing = _Billing(budgets, first_impression_id)
    timer = StageTimer()
    logs, events, next_id = [], [], first_impression_id
    for step in range(config.steps_per_day):
        batch = requests.take(slice(bounds[step], bounds[step + 1]))
        log = server.serve(batch, day, pacer.rates(), rng, timer)
        with timer.stage("clicks"):
            log.insert(0, "impression_id", np.arange(next_id, next_id + len(log)))
            next_id += len(log)
            log["true_p"] = world.click_probability(log["user_id"], log["ad_id"],
                                                    log["publisher_id"], log["hour"],
                                                    log["position"], day)
            clicked = world.draw_clicks(log["true_p"].to_numpy(), rng)
            step_events = world.click_stream(log["impression_id"], log["time"], clicked, rng)
            billing.add(log["campaign_id"].to_numpy(), log["price"].to_numpy(), step_events)
            pacer.record(step, billing.bill_until(edges[step + 1]))
        logs.append(log)
        events.append(step_events)
    billing.bill_until(np.inf)  # clicks arriving after midnight are billed to the same day
    impressions = pd.concat(logs, ignore_index=True)
    impressions["charged"] = billing.charged
    impressions["unbilled"] = billing.unbilled
    clicks = pd.concat(events, ignore_index=True).sort_values("click_time", kind="stable")
    return DayResult(day, impressions, clicks.reset_index(drop=True), pacer, len(requests),
                     server.model, dict(timer.seconds))


def bootstrap_model(world: World, rng: np.random.Generator, n_requests: int,
                    make_model: ModelFactory = LogisticClickModel) -> tuple[ClickModel,
                                                                             pd.DataFrame]:
    """Train the first model on random-server traffic (no model exists yet to serve).

    Returns the model and the ad statistics of that traffic, the history the
    first day is served with.
    """
    log = serve_random(world, day=0, n_requests=n_requests, rng=rng, with_truth=False)
    features = make_features(world, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"])
    model = make_model().fit(features, log["clicked"])
    return model, count_ad_stats(log["ad_id"], log["clicked"])


def simulate(world: World, days: int, seed: int,
             config: SimulationConfig = SimulationConfig(),
             make_model: ModelFactory = LogisticClickModel,
             n_requests: int | None = None) -> Iterator[DayResult]:
    """Run ``days`` days, retraining the model each night on the logs so far.

    Yields one :class:`DayResult` per day. Day d is served by model version d,
    trained on every impression whose attribution window closed by the end of
    day d - 1 (version 0 on bootstrap random traffic).
    """
    if days < 1:
        raise ValueError(f"days must be >= 1; got {days}")
    rng = np.random.default_rng(seed)
    model, ad_stats = bootstrap_model(world, rng, config.bootstrap_requests, make_model)
    history: list[DayResult] = []
    first_request, first_impression = 0, 0
    for day in range(days):
        server = AdServer(world, model, ad_stats, k=config.k, reserve=config.reserve,
                          model_version=day, history_features=config.history_features)
        result = simulate_day(world, server, day, rng, config, n_requests, first_request,
                              first_impression)
        first_request += result.n_requests
        first_impression += len(result.impressions)
        history.append(result)
        yield result
        if day + 1 < days:
            model, ad_stats = retrain(history, config, make_model, ad_stats)


def retrain(history: list[DayResult], config: SimulationConfig, make_model: ModelFactory,
            ad_stats: pd.DataFrame) -> tuple[ClickModel, pd.DataFrame]:
    """Fit a new model on every closed impression of ``history``; extend the ad stats.

    Runs at the end of the last day of ``history``: only clicks received by then
    count, and impressions whose attribution window is still open wait a night.
    """
    as_of = (history[-1].day + 1) * SECONDS_PER_DAY
    impressions = pd.concat([h.impressions for h in history], ignore_index=True)
    clicks = pd.concat([h.clicks for h in history], ignore_index=True)
    features, clicked = training_data(impressions, clicks, config.attribution_window, as_of)
    model = make_model().fit(features, clicked)
    last = history[-1]
    known = last.clicks[last.clicks["click_time"] <= as_of]
    labelled, _ = join_clicks(last.impressions, known, config.attribution_window)
    day_stats = count_ad_stats(labelled["ad_id"], labelled["clicked"])
    return model, pd.concat([ad_stats, day_stats], ignore_index=True)
