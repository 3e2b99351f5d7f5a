"""The ads index: which ads may be shown to a request, by targeting and budget.

Advertisers target campaigns by region, age band, device and, optionally, one
interest topic. The index turns that targeting into posting lists, one per targeting
value: the ads that accept users of region r, of age band a, of device d. A posting
list is stored as a bitmap over ad ids (a boolean row), so intersecting lists is a
bitwise AND.

A user's region, age band and device put each request in one of
``6 x 6 x 3 = 108`` segments. :meth:`AdIndex.eligible` computes once per call each
segment's candidates (the AND of its three posting lists, of the ads active on the
day and of the ads whose campaign has budget left), split into the ads without
interest targeting and, per topic, the ads that target it. A request then gets its
segment's untargeted ads plus the targeted ads of each topic its user declared, so
no pair is built only to be thrown away; the segment lists are rebuilt only when the
set of live ads changes. The batch path and the single-request path
(:meth:`AdIndex.eligible_for`) share that code.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from adsys.observable import AGE_BANDS, DEVICES, REGIONS, PlatformView, Requests, require_view
from adsys.validation import as_integers, check_same_length

__all__ = ["AdIndex"]


class AdIndex:
    """Inverted index of the platform's ads by targeting.

    Parameters
    ----------
    view : PlatformView
        Supplies the ads, their campaigns' targeting and the user profiles. Interest
        targeting matches the topics a user declared.

    Attributes
    ----------
    region_postings, age_postings, device_postings : np.ndarray of bool
        Shape ``(n_values, n_ads)``: row v marks the ads that accept targeting value v.
    ad_topic_mask : np.ndarray of int64
        Per ad, the bit mask of interest topics it targets; 0 for no interest targeting.
    """

    def __init__(self, view: PlatformView) -> None:
        self.view = require_view(view)
        campaigns = view.campaigns
        self.ad_campaign = view.ads["campaign_id"].to_numpy()

        def postings(column: str, n_values: int) -> np.ndarray:
            masks = campaigns[column].to_numpy()[self.ad_campaign]
            return (masks[None, :] >> np.arange(n_values)[:, None] & 1).astype(bool)

        self.region_postings = postings("region_mask", len(REGIONS))
        self.age_postings = postings("age_mask", len(AGE_BANDS))
        self.device_postings = postings("device_mask", len(DEVICES))
        self.ad_topic_mask = campaigns["topic_mask"].to_numpy()[self.ad_campaign]
        if np.any(np.bitwise_count(self.ad_topic_mask.astype(np.uint64)) > 1):
            raise ValueError("campaigns.topic_mask must target at most one interest topic")
        users = view.users
        self._user_region = users["region"].to_numpy()
        self._user_age = users["age_band"].to_numpy()
        self._user_device = users["device"].to_numpy()
        self._user_topics = users["declared_topics"].to_numpy()
        # Targeting of every segment (region, age band, device), computed once.
        region, rest = np.divmod(np.arange(len(REGIONS) * len(AGE_BANDS) * len(DEVICES)),
                                 len(AGE_BANDS) * len(DEVICES))
        age, device = np.divmod(rest, len(DEVICES))
        self._segment_ads = (self.region_postings[region] & self.age_postings[age]
                             & self.device_postings[device])
        targeted = self.ad_topic_mask != 0
        self._n_topics = len(view.topics)
        ad_topic = view.ads["topic"].to_numpy()
        target_topic = np.where(targeted, np.log2(np.maximum(self.ad_topic_mask, 1)), 0)
        # Targeted ads in order of the topic they target, so each topic's ads are a run.
        self._targeted = np.flatnonzero(targeted)[np.argsort(
            target_topic[targeted].astype(np.int64) * len(ad_topic) + np.flatnonzero(targeted))]
        self._target_topic = target_topic.astype(np.int64)
        self._cached_key: bytes | None = None

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
            One flag per campaign (``view.n_campaigns``); ads of campaigns marked
            False are dropped. ``None`` keeps every campaign.

        Returns
        -------
        request_pos, ad_id : np.ndarray of int32
            Aligned pairs: the position of the request in the batch and an eligible
            ad id, each pair once, in no particular order.
        """
        if not isinstance(requests, Requests):
            raise TypeError(f"requests must be a Requests batch; got {type(requests).__name__}")
        live = self._live(day, has_budget)
        if np.any(requests.day != day):
            raise ValueError(f"requests must all be of day {day}; got days "
                             f"{np.unique(requests.day)[:5].tolist()}")
        users = as_integers("requests.user", requests.user, 0, self.view.n_users - 1)
        devices = as_integers("requests.device", requests.device, 0, len(DEVICES) - 1)
        return self._pairs(users, devices, live)

    def eligible_for(self, user_id: int, day: int,
                     has_budget: ArrayLike | None = None) -> np.ndarray:
        """Eligible ad ids (sorted) for one request of ``user_id`` on ``day``.

        The single-request path: same code as :meth:`eligible`, on the user's device.
        """
        user = as_integers("user_id", [user_id], 0, self.view.n_users - 1)
        return np.sort(self._pairs(user, self._user_device[user],
                                   self._live(day, has_budget))[1])

    def _live(self, day: int, has_budget: ArrayLike | None) -> np.ndarray:
        """Ads active on ``day`` whose campaign has budget left."""
        live = self.view.active_ads(day)
        if has_budget is None:
            return live
        budget = np.asarray(has_budget)
        n_campaigns = self.view.n_campaigns
        if budget.dtype != bool or budget.shape != (n_campaigns,):
            raise ValueError(f"has_budget must be a boolean array with one flag per campaign "
                             f"(shape ({n_campaigns},)); got dtype {budget.dtype}, "
                             f"shape {budget.shape}")
        return live & budget[self.ad_campaign]

    def matches(self, users: ArrayLike, ads: ArrayLike) -> np.ndarray:
        """Whether each aligned (user, ad) pair satisfies the ad's targeting.

        Ignores start days and budgets: the targeting rule alone, as advertisers set it.
        """
        users = as_integers("users", users, 0, self.view.n_users - 1)
        ads = as_integers("ads", ads, 0, self.view.n_ads - 1)
        check_same_length(users=users, ads=ads)
        topic_mask = self.ad_topic_mask[ads]
        return (self.region_postings[self._user_region[users], ads]
                & self.age_postings[self._user_age[users], ads]
                & self.device_postings[self._user_device[users], ads]
                & ((topic_mask == 0) | (topic_mask & self._user_topics[users] != 0)))

    def _lists(self, live: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each segment's live candidates: untargeted ads per segment, targeted ads per
        (segment, topic), as flat arrays with counts. Cached while ``live`` is unchanged."""
        key = live.tobytes()
        if self._cached_key != key:
            candidates = self._segment_ads & live
            segment, ads = np.nonzero(candidates & (self.ad_topic_mask == 0))
            untargeted_count = np.bincount(segment, minlength=len(candidates))
            untargeted = ads.astype(np.int32)
            segment, column = np.nonzero(candidates[:, self._targeted])
            targeted = self._targeted[column].astype(np.int32)
            targeted_count = np.bincount(segment * self._n_topics + self._target_topic[targeted],
                                         minlength=len(candidates) * self._n_topics)
            self._cached_key = key
            self._cached_lists = (untargeted, untargeted_count, targeted, targeted_count)
        return self._cached_lists

    def _pairs(self, users: np.ndarray, devices: np.ndarray,
               live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eligible (position in ``users``, ad id) pairs among the ``live`` ads, as int32.

        First the untargeted ads of every request, then the interest-targeted ones.
        """
        n_age, n_device, n_topics = len(AGE_BANDS), len(DEVICES), self._n_topics
        segment = (self._user_region[users] * n_age + self._user_age[users]) * n_device + devices
        untargeted, untargeted_count, targeted, targeted_count = self._lists(live)
        positions = np.arange(len(users), dtype=np.int32)
        u_request, u_ad = _expand(positions, segment, untargeted_count, untargeted)
        # Targeted ads: the (segment, topic) list of each topic the user declared.
        declared = (self._user_topics[users][:, None] >> np.arange(n_topics)) & 1
        request, topic = np.nonzero(declared)
        t_request, t_ad = _expand(positions[request], segment[request] * n_topics + topic,
                                  targeted_count, targeted)
        return np.concatenate([u_request, t_request]), np.concatenate([u_ad, t_ad])


def _expand(owner: np.ndarray, key: np.ndarray, count: np.ndarray,
            items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give each ``owner`` the run of ``items`` of its ``key`` (runs of ``count[k]`` items,
    in key order); return aligned (owner, item) arrays."""
    start = np.cumsum(count) - count
    n = count[key]
    owners = np.repeat(owner, n)
    return owners, items[np.repeat(start[key], n) + _rank_in_run(n)]


def _rank_in_run(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ..., n-1 for each run length n, concatenated (int32)."""
    lengths = lengths.astype(np.int32)
    return (np.arange(lengths.sum(), dtype=np.int32)
            - np.repeat(np.cumsum(lengths, dtype=np.int32) - lengths, lengths))
