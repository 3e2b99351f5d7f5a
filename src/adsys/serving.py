"""The serving path: ads index -> selector -> click model -> auction -> impression log.

:meth:`AdServer.serve` handles a batch of requests (the simulator's path) and
:meth:`AdServer.serve_one` a single request with per-stage timers (the latency
path); both run the same stage code.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adsys.auction import BatchAuctionResult, run_auctions
from adsys.events import FEATURE_PREFIX
from adsys.experiment import assign_arm
from adsys.features import (
    NUMERIC_COLUMNS,
    SERVING_POSITION,
    feature_arrays,
    from_log,
    to_columns,
    to_frame,
)
from adsys.history import ExposureCounter, History
from adsys.index import AdIndex
from adsys.observable import DEVICES, PlatformView, Requests, require_view
from adsys.prediction import ClickModel
from adsys.selection import LightModel, Selector
from adsys.validation import as_1d, check_int, check_number, check_probabilities, check_range

STAGES = ("retrieve", "select", "predict", "auction", "log")


def uniform_hash(request_ids: np.ndarray, campaigns: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) for each (request, campaign) pair, fixed by ``salt``.

    The throttle's coin: every ad of a campaign gets the same coin in a request, and
    the batch and single-request paths agree, at the cost of a few 32-bit integer
    operations per pair (MurmurHash3's finalizer).
    """
    m = np.uint32
    with np.errstate(over="ignore"):
        x = (np.asarray(request_ids).astype(m) * m(0x9E3779B1)
             + np.asarray(campaigns).astype(m) * m(0x85EBCA77) + m(salt & 0xFFFFFFFF))
        x ^= x >> m(16)
        x *= m(0x85EBCA6B)
        x ^= x >> m(13)
        x *= m(0xC2B2AE35)
        x ^= x >> m(16)
    return (x >> m(8)) * np.float32(2.0**-24)   # 24 bits: exact in float32, below 1


def best_of_each_key(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each item is the best of its key: the highest value, the first on ties.

    One stable integer sort groups the keys; the values are compared within each run.
    """
    best = np.zeros(len(keys), bool)
    if not len(keys):
        return best
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_values = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
    top = np.flatnonzero(sorted_values == np.maximum.reduceat(sorted_values, starts)[run])
    first = top[np.r_[True, run[top[1:]] != run[top[:-1]]]]
    best[order[first]] = True
    return best


class StageTimer:
    """Wall-clock seconds spent in each named stage, summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


@dataclass(frozen=True)
class FeatureFault:
    """A serving bug, for the monitoring chapter: from ``day`` on, every request from
    ``device`` gets the numeric feature ``feature`` set to ``value`` (for example a
    client release that stops sending what the feature needs). The bad value reaches
    the model and the logged features alike, as a real bug would."""

    day: int
    device: str
    feature: str
    value: float = 0.0

    def __post_init__(self) -> None:
        check_int("day", self.day, 0)
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}; got {self.device!r}")
        if self.feature not in NUMERIC_COLUMNS:
            raise ValueError(f"feature must be a numeric feature {list(NUMERIC_COLUMNS)}; "
                             f"got {self.feature!r}")
        if not np.isfinite(check_number("value", self.value)):
            raise ValueError(f"value must be a finite number (the click model rejects NaN and "
                             f"inf, so serving would fail); got {self.value!r}")


class AdServer:
    """Serve ads for requests with a given click model.

    Parameters
    ----------
    view : PlatformView
        The platform's tables (users, ads, campaigns, publishers).
    model : ClickModel
        The heavy model: predicts position-1 pCTR from
        :func:`adsys.features.make_features` rows.
    history : History, optional
        The platform's counts from closed windows: the selector ranks with them and
        the click model's history features read them. ``None``: no history yet.
    exposures : ExposureCounter, optional
        Today's exposures of each ad to each user, for the frequency feature; ``None``
        counts every candidate as a first exposure.
    light_model : LightModel, optional
        The selector's model (``None``: the user-blind :meth:`LightModel.ad_only`).
    k : int or None
        Candidates the selector passes to the heavy model per request; more than the
        page's slots, so that the last slot has a runner-up to set its price. ``None``
        skips the selector: the heavy model scores every eligible ad (the reference
        the funnel is measured against).
    reserve : float
        Minimum eCPM to be shown, in dollars per thousand impressions (>= 0).
    model_version : int
        Written into every impression so logs say which model served them.
    exploration : float
        Share of requests (in [0, 1)) whose slot-1 ad is drawn uniformly at random
        among the auction's eligible candidates instead of the best one; that ad is
        sold at the reserve price and the other slots go to the rest by GSP. Every
        slot-1 impression logs its ``propensity``, the chance that this policy put
        that ad there, which off-policy estimates need (:mod:`adsys.offpolicy`).
    log_candidates : bool
        Keep the candidates of the last served batch in :attr:`candidates` (one row
        per candidate: request, ad, bid, pCTR, eCPM, slot-1 propensity and the ``f_``
        features), so a new policy can be evaluated on what this one saw.
    fault : FeatureFault, optional
        A bug to inject (Step 7's segment failure); ``None`` for a healthy server.
    """

    def __init__(self, view: PlatformView, model: ClickModel, history: History | None = None,
                 exposures: ExposureCounter | None = None, light_model: LightModel | None = None,
                 k: int | None = 10, reserve: float = 0.0, model_version: int = 0,
                 exploration: float = 0.0, log_candidates: bool = False,
                 fault: FeatureFault | None = None) -> None:
        self.view = require_view(view)
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must be a fitted click model with a predict method; got "
                            f"{type(model).__name__}")
        if light_model is not None and not isinstance(light_model, LightModel):
            raise TypeError(f"light_model must be a LightModel; got {type(light_model).__name__}")
        if exposures is not None and not isinstance(exposures, ExposureCounter):
            raise TypeError(f"exposures must be an ExposureCounter; got "
                            f"{type(exposures).__name__}")
        self.k = None if k is None else check_int("k", k, 1)
        if self.k is not None and self.k <= view.n_slots:
            raise ValueError(f"k must be greater than n_slots ({view.n_slots}): the auction "
                             f"needs a runner-up to price the last slot; got k={k}")
        self.model = model
        self.reserve = check_range("reserve", reserve, 0.0, np.inf)
        self.model_version = check_int("model_version", model_version, 0)
        self.exploration = check_range("exploration", exploration, 0.0, 1.0, high_open=True)
        self.log_candidates = bool(log_candidates)
        self.candidates: pd.DataFrame | None = None
        if fault is not None and not isinstance(fault, FeatureFault):
            raise TypeError(f"fault must be a FeatureFault; got {type(fault).__name__}")
        self.fault = fault
        if history is not None and not isinstance(history, History):
            raise TypeError(f"history must be a History; got {type(history).__name__}")
        self.history = history if history is not None else History(view)
        self.exposures = exposures
        self.index = AdIndex(view)
        self.selector = Selector(view, self.history, light_model)
        self._ad_campaign = view.ads["campaign_id"].to_numpy()
        self._max_cpc = view.campaigns["max_cpc"].to_numpy()

    def serve(self, requests: Requests, day: int, throttle: np.ndarray | None = None,
              rng: np.random.Generator | None = None,
              timer: StageTimer | None = None) -> pd.DataFrame:
        """Run every request of the batch through the funnel; return its impressions.

        ``throttle`` (one value per campaign in [0, 1], from the pacer) is the chance
        that a campaign takes part in each request, with all its ads: 0 removes it, 1
        always keeps it, and values in between need ``rng`` (one draw per call salts
        the coin of each (request, campaign), see :func:`uniform_hash`). The log has
        one row per impression: request context, ad, slot, bid, pCTR, GSP price per
        click, model version, exploration flag and slot-1 propensity, and the
        features the model saw (``f_`` columns, with ``f_position`` set to the slot
        shown, so :meth:`predict_shown` can score them).
        A batch with no requests, or no eligible ads, gives an empty log.
        """
        timer = timer or StageTimer()
        n_campaigns = self.view.n_campaigns
        throttle = np.ones(n_campaigns) if throttle is None else check_probabilities(
            "throttle", as_1d("throttle", throttle))
        if throttle.shape != (n_campaigns,):
            raise ValueError(f"throttle must hold one value per campaign ({n_campaigns}); "
                             f"got shape {throttle.shape}")
        partial = (throttle > 0) & (throttle < 1)
        if partial.any() and rng is None:
            raise ValueError("rng is required when throttle has values strictly between 0 and 1")
        if self.exploration > 0 and rng is None:
            raise ValueError("rng is required when exploration is above 0")
        with timer.stage("retrieve"):
            req, ad = self.index.eligible(requests, day, has_budget=throttle > 0)
            if partial.any():
                campaign = self._ad_campaign[ad]
                salt = int(rng.integers(2**32))
                # A coin only where the campaign's rate is below 1 (a coin is below 1).
                coin_needed = np.flatnonzero(partial[campaign])
                takes_part = np.ones(len(ad), bool)
                takes_part[coin_needed] = uniform_hash(
                    requests.request_id[req[coin_needed]], campaign[coin_needed],
                    salt) < throttle[campaign[coin_needed]]
                req, ad = req[takes_part], ad[takes_part]
        with timer.stage("select"):
            if self.k is not None:
                req, ad = self.selector.select(requests, req, ad, self.k)
            else:   # group the pairs by request, as the selector would
                order = np.argsort(req, kind="stable")
                req, ad = req[order], ad[order]
        with timer.stage("predict"):
            users = requests.user[req]
            seen = 0 if self.exposures is None else self.exposures.counts(users, ad)
            arrays = feature_arrays(self.view, users, ad, requests.publisher[req],
                                    requests.hour[req], SERVING_POSITION, self.history, seen)
            if self.fault is not None and day >= self.fault.day:
                broken = requests.device[req] == DEVICES.index(self.fault.device)
                arrays[self.fault.feature] = np.where(broken, self.fault.value,
                                                      arrays[self.fault.feature])
            pctr = (np.asarray(self.model.predict(to_frame(self.view, arrays)), dtype=float)
                    if len(ad) else np.zeros(0))
        with timer.stage("auction"):
            rows = len(requests)
            counts = np.bincount(req, minlength=rows)
            column = np.arange(len(req)) - np.repeat(np.cumsum(counts) - counts, counts)
            width = int(counts.max(initial=0))
            bids = np.zeros((rows, width))
            scores = np.zeros((rows, width))
            campaign = self._ad_campaign[ad]
            # One ad per campaign per auction: a campaign's second creative would
            # otherwise set the price of its first.
            best = best_of_each_key(req.astype(np.int64) * self.view.n_campaigns + campaign,
                                    self._max_cpc[campaign] * pctr)
            bids[req, column] = np.where(best, self._max_cpc[campaign], 0.0)
            scores[req, column] = pctr
            result = run_auctions(bids, scores, self.view.n_slots, self.reserve)
            explored, propensity = np.zeros(rows, bool), np.ones((rows, width))
            if self.exploration > 0:
                result, explored, propensity = self._explore(bids, scores, result, rng)
        with timer.stage("log"):
            won_req, slot = np.nonzero(result.slots >= 0)
            pair = (np.cumsum(counts) - counts)[won_req] + result.slots[won_req, slot]
            served = {name: values[pair] for name, values in arrays.items()}
            served["position"] = slot   # the features as they would be for the slot shown
            log = pd.DataFrame({
                "request_id": requests.request_id[won_req],
                "time": requests.time[won_req],
                "day": requests.day[won_req],
                "hour": requests.hour[won_req],
                "user_id": requests.user[won_req],
                "publisher_id": requests.publisher[won_req],
                "device": requests.device[won_req],
                "ad_id": ad[pair].astype(np.int64),
                "campaign_id": campaign[pair],
                "position": slot + 1,
                "bid": bids[won_req, result.slots[won_req, slot]],
                "pctr": pctr[pair],
                "price": result.prices[won_req, slot],
                "model_version": np.full(len(pair), self.model_version),
                "explored": explored[won_req],
                "propensity": np.where(slot == 0, propensity[won_req, result.slots[won_req, slot]],
                                       np.nan),
                **to_columns(self.view, served, prefix=FEATURE_PREFIX),
            }, copy=False)
            if self.log_candidates:
                self.candidates = pd.DataFrame({
                    "request_id": requests.request_id[req], "ad_id": ad.astype(np.int64),
                    "campaign_id": campaign, "bid": bids[req, column], "pctr": pctr,
                    "ecpm": 1000 * bids[req, column] * pctr,
                    "propensity": propensity[req, column],
                    **to_columns(self.view, arrays, prefix=FEATURE_PREFIX)}, copy=False)
        return log

    def predict_shown(self, log: pd.DataFrame) -> np.ndarray:
        """The model's pCTR of each logged impression at the slot it was shown in.

        What monitoring compares with clicks. Not part of serving (it would cost the
        request another model call): the loop scores a step's impressions in one batch.
        """
        if not len(log):
            return np.zeros(0)
        return np.asarray(self.model.predict(from_log(self.view, log, FEATURE_PREFIX)), float)

    def _explore(self, bids: np.ndarray, pctr: np.ndarray, greedy: BatchAuctionResult,
                 rng: np.random.Generator) -> tuple[BatchAuctionResult, np.ndarray, np.ndarray]:
        """Epsilon-greedy slot 1: the auction result with exploration applied, which
        requests explored, and each candidate's probability of being in slot 1."""
        ecpm = 1000 * bids * pctr
        ok = (ecpm > 0) & (ecpm >= self.reserve)
        n_ok = ok.sum(axis=1)
        rows, width = bids.shape
        eps = self.exploration
        best = greedy.slots[:, 0] if greedy.slots.shape[1] else np.full(rows, -1)
        propensity = np.where(ok, eps / np.maximum(n_ok, 1)[:, None], 0.0)
        has_best = best >= 0
        propensity[np.flatnonzero(has_best), best[has_best]] += 1 - eps
        explore = np.flatnonzero((rng.random(rows) < eps) & (n_ok > 0))
        if not len(explore):
            return greedy, np.zeros(rows, bool), propensity
        # The k-th eligible candidate of each exploring request, k uniform.
        pick = (rng.random(len(explore)) * n_ok[explore]).astype(np.int64)
        chosen = np.argmax(np.cumsum(ok[explore], axis=1) > pick[:, None], axis=1)
        slots, prices, values = greedy.slots.copy(), greedy.prices.copy(), greedy.ecpm.copy()
        rest_bids = bids[explore].copy()
        rest_bids[np.arange(len(explore)), chosen] = 0.0   # the others compete for slot 2+
        if slots.shape[1] > 1:
            rest = run_auctions(rest_bids, pctr[explore], slots.shape[1] - 1, self.reserve)
            slots[explore, 1:], prices[explore, 1:] = rest.slots, rest.prices
            values[explore, 1:] = rest.ecpm
        chosen_pctr = pctr[explore, chosen]
        slots[explore, 0] = chosen
        prices[explore, 0] = np.minimum(self.reserve / (1000 * chosen_pctr),
                                        bids[explore, chosen])
        values[explore, 0] = ecpm[explore, chosen]
        explored = np.zeros(rows, bool)
        explored[explore] = True
        return BatchAuctionResult(slots, prices, values), explored, propensity

    def serve_one(self, requests: Requests, day: int, throttle: np.ndarray | None = None,
                  rng: np.random.Generator | None = None) -> tuple[pd.DataFrame, dict]:
        """Serve a single request; return its impressions and seconds per stage."""
        if len(requests) != 1:
            raise ValueError(f"requests must hold exactly one request; got {len(requests)}")
        timer = StageTimer()
        log = self.serve(requests, day, throttle, rng, timer)
        return log, {stage: timer.seconds[stage] for stage in STAGES}


class SplitServer:
    """A user-randomized online experiment: each user is served by one of two servers.

    Users go to ``treatment`` or ``control`` by :func:`adsys.experiment.assign_arm`
    on their id with the experiment's ``salt``, so a user sees one arm for the whole
    experiment. Both servers must share the platform's view and exposure counter
    (budgets and pacing are shared too, as on a real platform). The log gains an
    ``arm`` column ("control" or "treatment").
    """

    def __init__(self, control: AdServer, treatment: AdServer, salt: str,
                 treatment_share: float = 0.5) -> None:
        for name, server in (("control", control), ("treatment", treatment)):
            if not isinstance(server, AdServer):
                raise TypeError(f"{name} must be an AdServer; got {type(server).__name__}")
        if treatment.view is not control.view or treatment.exposures is not control.exposures:
            raise ValueError("control and treatment must share one view and one exposure "
                             "counter")
        self.control, self.treatment = control, treatment
        self.salt = salt
        self.treatment_share = check_range("treatment_share", treatment_share, 0, 1)
        self.view, self.exposures = control.view, control.exposures
        self.model = None   # two models: quality is measured per arm

    def predict_shown(self, log: pd.DataFrame) -> np.ndarray:
        """Each impression's pCTR at its slot, by the model of its arm."""
        shown = np.zeros(len(log))
        for name, server in (("control", self.control), ("treatment", self.treatment)):
            rows = (log["arm"] == name).to_numpy()
            shown[rows] = server.predict_shown(log[rows])
        return shown

    def arm(self, user_ids: np.ndarray) -> np.ndarray:
        """True where the user is in the treatment arm."""
        return assign_arm(np.asarray(user_ids), self.salt, self.treatment_share)

    def serve(self, requests: Requests, day: int, throttle: np.ndarray | None = None,
              rng: np.random.Generator | None = None,
              timer: StageTimer | None = None) -> pd.DataFrame:
        """Serve each request with its user's arm; impressions in time order."""
        treated = self.arm(requests.user) if len(requests) else np.zeros(0, bool)
        logs = []
        for name, server, mask in (("control", self.control, ~treated),
                                   ("treatment", self.treatment, treated)):
            log = server.serve(requests.take(mask), day, throttle, rng, timer)
            logs.append(log.assign(arm=name))
        log = pd.concat(logs, ignore_index=True)
        return log.sort_values(["time", "position"], kind="stable", ignore_index=True)
