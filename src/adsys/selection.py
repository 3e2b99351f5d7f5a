"""The selector: the cheap first stage of the funnel, keeping the top K ads per request.

The index returns hundreds of eligible ads per request, too many for the heavy click
model. The selector scores every (request, ad) pair with a number that costs two
array lookups, ``max_cpc x smoothed CTR of the ad``, and keeps the K best per
request. The smoothed CTR is the
ad's logged clicks / impressions shrunk towards a prior (see
:func:`adsys.features.smoothed_ctr`), so a new ad starts at the prior instead of at 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.features import PRIOR_CTR, PRIOR_STRENGTH, ad_counts, smoothed_ctr
from adsys.validation import as_integers, check_range, check_same_length
from adsys.world import World

__all__ = ["Selector"]


class Selector:
    """Score (request, ad) pairs by expected revenue from logged counts; keep the top K.

    Parameters
    ----------
    world : World
        Supplies the ads and their campaigns' ``max_cpc`` bids.
    ad_stats : pd.DataFrame, optional
        Logged counts with columns ``ad_id``, ``impressions``, ``clicks``; ``None``
        means no history, so every ad gets ``prior_ctr``.
    prior_ctr : float
        Prior mean CTR in (0, 1), the global rate each ad is shrunk towards.
    prior_strength : float
        Pseudo-impressions of the prior (> 0).
    """

    def __init__(self, world: World, ad_stats: pd.DataFrame | None = None,
                 prior_ctr: float = PRIOR_CTR, prior_strength: float = PRIOR_STRENGTH) -> None:
        self.prior_ctr = check_range("prior_ctr", prior_ctr, 0, 1, low_open=True, high_open=True)
        self.prior_strength = check_range("prior_strength", prior_strength, 0, np.inf,
                                          low_open=True)
        self.ad_campaign = world.ads["campaign_id"].to_numpy()
        self.max_cpc = world.campaigns["max_cpc"].to_numpy()
        self.impressions, self.clicks = ad_counts(ad_stats, len(self.ad_campaign))

    def update(self, ad_stats: pd.DataFrame) -> Selector:
        """Add newly logged counts (same columns as ``ad_stats``); return ``self``."""
        impressions, clicks = ad_counts(ad_stats, len(self.ad_campaign))
        self.impressions = self.impressions + impressions
        self.clicks = self.clicks + clicks
        return self

    @property
    def ctr(self) -> np.ndarray:
        """Smoothed CTR of every ad id."""
        return smoothed_ctr(self.clicks, self.impressions, self.prior_ctr, self.prior_strength)

    def score(self, ad_id: ArrayLike) -> np.ndarray:
        """Cheap expected revenue per impression of each ad: ``max_cpc x ctr``."""
        ads = as_integers("ad_id", ad_id, 0, len(self.ad_campaign) - 1)
        return self.max_cpc[self.ad_campaign[ads]] * self.ctr[ads]

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
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}")
        n_ads = len(self.ad_campaign)
        requests = as_integers("request_pos", request_pos, 0, np.iinfo(np.int64).max // n_ads)
        ads = as_integers("ad_id", ad_id, 0, n_ads - 1)
        check_same_length(request_pos=requests, ad_id=ads)
        # The score depends on the ad only: rank the ads once, then one integer sort
        # by (request, ad rank) orders every request's candidates best first.
        best_first = np.argsort(-self.score(np.arange(n_ads)), kind="stable")
        ad_rank = np.empty(n_ads, dtype=np.int64)
        ad_rank[best_first] = np.arange(n_ads)
        requests, rank = np.divmod(np.sort(requests * n_ads + ad_rank[ads]), n_ads)
        index = np.arange(len(requests))
        new_request = np.r_[True, requests[1:] != requests[:-1]] if len(index) else index > 0
        within = index - np.maximum.accumulate(np.where(new_request, index, 0))
        kept = within < k
        return requests[kept], best_first[rank[kept]]
