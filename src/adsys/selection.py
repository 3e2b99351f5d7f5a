"""The selector: the cheap first stage of the funnel, keeping the top K ads per request.

The index returns hundreds of eligible ads per request, too many for the heavy click
model. The selector scores every (request, ad) pair with a number that costs two
array lookups, ``max_cpc x smoothed CTR of the ad``, and keeps the K best per
request. The smoothed CTR is the ad's logged clicks / impressions shrunk towards a
prior (see :func:`adsys.history.smoothed_ctr`), so a new ad starts at the prior
instead of at 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from adsys.history import History
from adsys.observable import PlatformView, require_view
from adsys.validation import as_integers, check_int, check_same_length

__all__ = ["Selector"]


class Selector:
    """Score (request, ad) pairs by expected revenue from logged counts; keep the top K.

    Parameters
    ----------
    view : PlatformView
        Supplies the ads and their campaigns' ``max_cpc`` bids.
    history : History, optional
        The platform's counts from closed windows; ``None`` means no history, so every
        ad gets the prior CTR.
    """

    def __init__(self, view: PlatformView, history: History | None = None) -> None:
        self.view = require_view(view)
        self.history = history if history is not None else History(view)
        self.ad_campaign = view.ads["campaign_id"].to_numpy()
        self.max_cpc = view.campaigns["max_cpc"].to_numpy()
        self._score = self.max_cpc[self.ad_campaign] * self.history.ad_ctr()

    @property
    def ctr(self) -> np.ndarray:
        """Smoothed CTR of every ad id."""
        return self.history.ad_ctr()

    def score(self, ad_id: ArrayLike) -> np.ndarray:
        """Cheap expected revenue per impression of each ad: ``max_cpc x ctr``."""
        return self._score[as_integers("ad_id", ad_id, 0, len(self.ad_campaign) - 1)]

    def select(self, request_pos: ArrayLike, ad_id: ArrayLike,
               k: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep the ``k`` highest-scoring ads of each request.

        Parameters
        ----------
        request_pos, ad_id : array-like of int
            Aligned candidate pairs, e.g. from :meth:`adsys.index.AdIndex.eligible`.
        k : int
            Ads to keep per request (>= 1); requests with fewer candidates keep all.

        Returns
        -------
        request_pos, ad_id : np.ndarray of int64
            The kept pairs, ``min(k, n_candidates)`` per request, sorted by request,
            then by score (highest first); equal scores go to the lower ad id.
        """
        k = check_int("k", k, 1)
        n_ads = len(self.ad_campaign)
        bits = max(n_ads - 1, 1).bit_length()
        requests = as_integers("request_pos", request_pos, 0, np.iinfo(np.int64).max >> bits)
        ads = as_integers("ad_id", ad_id, 0, n_ads - 1)
        check_same_length(request_pos=requests, ad_id=ads)
        # The score depends on the ad only: rank the ads once, then one integer sort
        # of (request, ad rank) packed in one key orders every request's candidates
        # best first.
        best_first = np.argsort(-self._score, kind="stable")
        ad_rank = np.empty(n_ads, dtype=np.int64)
        ad_rank[best_first] = np.arange(n_ads)
        dtype = np.int32 if len(requests) == 0 or requests.max() < 1 << (31 - bits) else np.int64
        keys = np.sort(requests.astype(dtype) << bits | ad_rank.astype(dtype)[ads])
        requests = keys >> bits
        counts = np.bincount(requests) if len(keys) else np.zeros(0, np.int64)
        start = np.cumsum(counts) - counts
        kept = np.arange(len(keys)) - np.repeat(start, counts) < k
        return requests[kept], best_first[keys[kept] & ((1 << bits) - 1)]
