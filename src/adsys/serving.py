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
from adsys.features import SERVING_POSITION, make_features
from adsys.index import AdIndex
from adsys.prediction import ClickModel
from adsys.selection import Selector
from adsys.validation import check_range
from adsys.world import Requests, World

STAGES = ("retrieve", "select", "predict", "auction", "log")


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
    world : World
        The platform's tables (users, ads, campaigns, publishers).
    model : ClickModel
        Predicts position-1 pCTR from :func:`adsys.features.make_features` rows.
    ad_stats : pd.DataFrame, optional
        Logged ``ad_id, impressions, clicks`` counts; the selector ranks with them.
    history_features : bool
        Also give the click model the ads' logged CTRs as features. Off by default:
        counts from traffic the model itself chose drift from day to day, a feedback
        loop that breaks calibration (Step 6 shows it).
    k : int
        Candidates the selector passes to the click model per request.
    reserve : float
        Minimum eCPM (bid x pCTR, dollars per impression) to be shown.
    model_version : int
        Written into every impression so logs say which model served them.
    """

    def __init__(self, world: World, model: ClickModel, ad_stats: pd.DataFrame | None = None,
                 k: int = 10, reserve: float = 0.0, model_version: int = 0,
                 history_features: bool = False) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}")
        self.world = world
        self.model = model
        self.k = k
        self.reserve = check_range("reserve", float(reserve), 0.0, np.inf)
        self.model_version = model_version
        self.feature_stats = ad_stats if history_features else None
        self.index = AdIndex(world)
        self.selector = Selector(world, ad_stats)
        self._ad_campaign = world.ads["campaign_id"].to_numpy()
        self._max_cpc = world.campaigns["max_cpc"].to_numpy()

    def serve(self, requests: Requests, day: int, throttle: np.ndarray | None = None,
              rng: np.random.Generator | None = None,
              timer: StageTimer | None = None) -> pd.DataFrame:
        """Run every request of the batch through the funnel; return its impressions.

        ``throttle`` (one value per campaign in [0, 1], from the pacer) is the chance
        that a campaign takes part in each request: 0 removes it, 1 always keeps it,
        and values in between need ``rng``. The log has one row per impression:
        request context, ad, slot, bid, pCTR, GSP price per click, model version and
        the features the model saw (``f_`` columns, ``f_position`` set to the slot).
        """
        timer = timer or StageTimer()
        n_campaigns = len(self._max_cpc)
        throttle = np.ones(n_campaigns) if throttle is None else np.asarray(throttle, float)
        if throttle.shape != (n_campaigns,) or np.any((throttle < 0) | (throttle > 1)):
            raise ValueError(f"throttle must hold one value in [0, 1] per campaign "
                             f"({n_campaigns}); got shape {throttle.shape}")
        partial = (throttle > 0) & (throttle < 1)
        if partial.any() and rng is None:
            raise ValueError("rng is required when throttle has values strictly between 0 and 1")
        with timer.stage("retrieve"):
            req, ad = self.index.eligible(requests, day, has_budget=throttle > 0)
            chance = throttle[self._ad_campaign[ad]]
            if partial.any():
                takes_part = chance >= 1
                takes_part[~takes_part] = rng.random(int((~takes_part).sum())) < chance[
                    ~takes_part]
                req, ad = req[takes_part], ad[takes_part]
        with timer.stage("select"):
            req, ad = self.selector.select(req, ad, self.k)
        with timer.stage("predict"):
            features = make_features(self.world, requests.user[req], ad, requests.publisher[req],
                                     requests.hour[req], SERVING_POSITION, self.feature_stats)
            pctr = np.asarray(self.model.predict(features), dtype=float)
        with timer.stage("auction"):
            rows = len(requests)
            counts = np.bincount(req, minlength=rows)
            column = np.arange(len(req)) - np.repeat(np.cumsum(counts) - counts, counts)
            bids = np.zeros((rows, self.k))
            scores = np.zeros((rows, self.k))
            campaign = self._ad_campaign[ad]
            bids[req, column] = self._max_cpc[campaign]
            scores[req, column] = pctr
            result = run_auctions(bids, scores, self.world.config.n_slots, self.reserve)
        with timer.stage("log"):
            won_req, slot = np.nonzero(result.slots >= 0)
            pair = (np.cumsum(counts) - counts)[won_req] + result.slots[won_req, slot]
            log = pd.DataFrame({
                "request_id": requests.request_id[won_req],
                "time": requests.time[won_req],
                "day": requests.day[won_req],
                "hour": requests.hour[won_req],
                "user_id": requests.user[won_req],
                "publisher_id": requests.publisher[won_req],
                "device": requests.device[won_req],
                "ad_id": ad[pair],
                "campaign_id": campaign[pair],
                "position": slot + 1,
                "bid": bids[won_req, result.slots[won_req, slot]],
                "pctr": pctr[pair],
                "price": result.prices[won_req, slot],
                "model_version": self.model_version,
            })
            served = features.iloc[pair].reset_index(drop=True)
            served["position"] = pd.Categorical.from_codes(
                slot, categories=served["position"].cat.categories)
            log = pd.concat([log, served.add_prefix(FEATURE_PREFIX)], axis=1)
        return log

    def serve_one(self, requests: Requests, day: int, throttle: np.ndarray | None = None,
                  rng: np.random.Generator | None = None) -> tuple[pd.DataFrame, dict]:
        """Serve a single request; return its impressions and seconds per stage."""
        if len(requests) != 1:
            raise ValueError(f"requests must hold exactly one request; got {len(requests)}")
        timer = StageTimer()
        log = self.serve(requests, day, throttle, rng, timer)
        return log, {stage: timer.seconds[stage] for stage in STAGES}
