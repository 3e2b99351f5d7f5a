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

import numpy as np
import pandas as pd

from adsys.auction import run_auctions
from adsys.events import FEATURE_PREFIX
from adsys.features import SERVING_POSITION, feature_arrays, to_columns, to_frame
from adsys.history import ExposureCounter, History
from adsys.index import AdIndex
from adsys.observable import PlatformView, Requests, require_view
from adsys.prediction import ClickModel
from adsys.selection import LightModel, Selector
from adsys.validation import as_1d, check_int, check_probabilities, check_range

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
    """

    def __init__(self, view: PlatformView, model: ClickModel, history: History | None = None,
                 exposures: ExposureCounter | None = None, light_model: LightModel | None = None,
                 k: int | None = 10, reserve: float = 0.0, model_version: int = 0) -> None:
        self.view = require_view(view)
        self.k = None if k is None else check_int("k", k, 1)
        if self.k is not None and self.k <= view.n_slots:
            raise ValueError(f"k must be greater than n_slots ({view.n_slots}): the auction "
                             f"needs a runner-up to price the last slot; got k={k}")
        self.model = model
        self.reserve = check_range("reserve", reserve, 0.0, np.inf)
        self.model_version = check_int("model_version", model_version, 0)
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
        click, model version and the features the model saw (``f_`` columns, with
        ``f_position`` set to the slot shown).
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
        with timer.stage("retrieve"):
            req, ad = self.index.eligible(requests, day, has_budget=throttle > 0)
            if partial.any():
                campaign = self._ad_campaign[ad]
                salt = int(rng.integers(2**32))
                coin = uniform_hash(requests.request_id[req], campaign, salt)
                takes_part = coin < throttle[campaign]
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
            bids[req, column] = self._max_cpc[campaign]
            scores[req, column] = pctr
            result = run_auctions(bids, scores, self.view.n_slots, self.reserve)
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
                **to_columns(self.view, served, prefix=FEATURE_PREFIX),
            }, copy=False)
        return log

    def serve_one(self, requests: Requests, day: int, throttle: np.ndarray | None = None,
                  rng: np.random.Generator | None = None) -> tuple[pd.DataFrame, dict]:
        """Serve a single request; return its impressions and seconds per stage."""
        if len(requests) != 1:
            raise ValueError(f"requests must hold exactly one request; got {len(requests)}")
        timer = StageTimer()
        log = self.serve(requests, day, throttle, rng, timer)
        return log, {stage: timer.seconds[stage] for stage in STAGES}
