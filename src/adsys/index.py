"""The ads index: which ads may be shown to a request, by targeting and budget.

Advertisers target campaigns by region, age band, device and, optionally, interest
topics. The index turns that targeting into posting lists, one per targeting value:
the ads that accept users of region r, of age band a, of device d. A posting list is
stored as a bitmap over ad ids (a boolean row), so intersecting lists is a bitwise AND.

A user's region, age band and device put each request in one of
``6 x 6 x 3 = 108`` segments. :meth:`AdIndex.eligible` computes each segment's
candidates once (the AND of three posting lists, of the ads active on the day and of
the ads whose campaign has budget left), expands them to (request, ad) pairs and
finally drops interest-targeted ads whose topics the user is not interested in. The
batch path and the single-request path (:meth:`AdIndex.eligible_for`) share that code.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from adsys.validation import as_integers
from adsys.world import AGE_BANDS, DEVICES, REGIONS, Requests, World

__all__ = ["AdIndex"]


class AdIndex:
    """Inverted index of the world's ads by targeting.

    Parameters
    ----------
    world : World
        Supplies the ads, their campaigns' targeting and the user profiles. A user's
        interest topics are those with interest at least
        ``world.config.interest_threshold`` (the platform's interest profile).

    Attributes
    ----------
    region_postings, age_postings, device_postings : np.ndarray of bool
        Shape ``(n_values, n_ads)``: row v marks the ads that accept targeting value v.
    ad_topic_mask : np.ndarray of int64
        Per ad, the bit mask of interest topics it targets; 0 for no interest targeting.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        campaigns = world.campaigns
        self.ad_campaign = world.ads["campaign_id"].to_numpy()

        def postings(column: str, n_values: int) -> np.ndarray:
            masks = campaigns[column].to_numpy()[self.ad_campaign]
            return (masks[None, :] >> np.arange(n_values)[:, None] & 1).astype(bool)

        self.region_postings = postings("region_mask", len(REGIONS))
        self.age_postings = postings("age_mask", len(AGE_BANDS))
        self.device_postings = postings("device_mask", len(DEVICES))
        self.ad_topic_mask = campaigns["topic_mask"].to_numpy()[self.ad_campaign]
        users = world.users
        self._user_region = users["region"].to_numpy()
        self._user_age = users["age_band"].to_numpy()
        self._user_device = users["device"].to_numpy()
        self._user_topics = world.user_topic_bits

    def eligible(self, requests: Requests, day: int,
                 has_budget: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All (request, ad) pairs allowed by targeting, start day and budget.

        Parameters
        ----------
        requests : Requests
            A batch of requests of ``day``.
        day : int
            Only ads whose campaign has started by this day are eligible.
        has_budget : array-like of bool, optional
            One flag per campaign (``len(world.campaigns)``); ads of campaigns marked
            False are dropped. ``None`` keeps every campaign.

        Returns
        -------
        request_pos, ad_id : np.ndarray of int64
            Aligned pairs: the position of the request in the batch and an eligible
            ad id, sorted by request then ad id, without duplicates.
        """
        if not isinstance(requests, Requests):
            raise ValueError(f"requests must be a Requests batch; got {type(requests).__name__}")
        live = self._live(day, has_budget)
        if np.any(requests.day != day):
            raise ValueError(f"requests must all be of day {day}; got days "
                             f"{np.unique(requests.day)[:5].tolist()}")
        users = as_integers("requests.user", requests.user, 0, self.world.config.n_users - 1)
        devices = as_integers("requests.device", requests.device, 0, len(DEVICES) - 1)
        return self._pairs(users, devices, live)

    def eligible_for(self, user_id: int, day: int,
                     has_budget: ArrayLike | None = None) -> np.ndarray:
        """Eligible ad ids (sorted) for one request of ``user_id`` on ``day``.

        The single-request path: same code as :meth:`eligible`, on the user's device.
        """
        user = as_integers("user_id", [user_id], 0, self.world.config.n_users - 1)
        return self._pairs(user, self._user_device[user], self._live(day, has_budget))[1]

    def _live(self, day: int, has_budget: ArrayLike | None) -> np.ndarray:
        """Ads active on ``day`` whose campaign has budget left."""
        live = self.world.active_ads(day)
        if has_budget is None:
            return live
        budget = np.asarray(has_budget)
        n_campaigns = len(self.world.campaigns)
        if budget.dtype != bool or budget.shape != (n_campaigns,):
            raise ValueError(f"has_budget must be a boolean array with one flag per campaign "
                             f"(shape ({n_campaigns},)); got dtype {budget.dtype}, "
                             f"shape {budget.shape}")
        return live & budget[self.ad_campaign]

    def _pairs(self, users: np.ndarray, devices: np.ndarray,
               live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eligible (position in ``users``, ad id) pairs among the ``live`` ads."""
        n_age, n_device = len(AGE_BANDS), len(DEVICES)
        segment = (self._user_region[users] * n_age + self._user_age[users]) * n_device + devices
        segments, request_segment = np.unique(segment, return_inverse=True)
        region, rest = np.divmod(segments, n_age * n_device)
        age, device = np.divmod(rest, n_device)
        candidates = (self.region_postings[region] & self.age_postings[age]
                      & self.device_postings[device] & live)
        _, candidate_ad = np.nonzero(candidates)     # row-major: by segment, then ad id
        per_segment = candidates.sum(axis=1)
        segment_start = np.cumsum(per_segment) - per_segment

        per_request = per_segment[request_segment]
        request_pos = np.repeat(np.arange(len(users)), per_request)
        request_start = np.cumsum(per_request) - per_request
        within = np.arange(len(request_pos)) - np.repeat(request_start, per_request)
        ad_id = candidate_ad[np.repeat(segment_start[request_segment], per_request) + within]

        topic_mask = self.ad_topic_mask[ad_id]
        keep = (topic_mask == 0) | (topic_mask & self._user_topics[users][request_pos] != 0)
        return request_pos[keep], ad_id[keep]
