"""What the platform learns about users and ads from its own logs.

A real platform does not know how good an ad is or what a user really likes; it
counts. :class:`History` holds impressions and clicks per ad and per (user, topic),
from impressions whose attribution window has closed, so that a label never changes
after it is counted and no click still in flight is counted as a non-click; and the
user's page views per topic, from the request log. From them come the ad's
historical CTR and the user's *inferred* interest in each topic: what they read and
which ads they clicked.

:class:`ExposureCounter` counts how often each ad was shown to each user today,
straight from the impression log (impressions are logged as they are served), for
frequency features.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from adsys.observable import PlatformView, require_view
from adsys.validation import (
    as_1d,
    as_integers,
    check_labels,
    check_nonnegative,
    check_range,
    check_same_length,
)

__all__ = ["PRIOR_CTR", "PRIOR_STRENGTH", "ExposureCounter", "History", "smoothed_ctr"]

PRIOR_CTR = 0.01
PRIOR_STRENGTH = 100.0


def smoothed_ctr(clicks: ArrayLike, impressions: ArrayLike, prior_ctr: float = PRIOR_CTR,
                 prior_strength: float = PRIOR_STRENGTH) -> np.ndarray:
    """Posterior-mean CTR under a Beta prior: ``(clicks + m p0) / (impressions + m)``.

    Parameters
    ----------
    clicks, impressions : array-like
        Logged counts, aligned (same shape, clicks <= impressions).
    prior_ctr : float
        Prior mean ``p0`` in (0, 1), what an ad with no history gets.
    prior_strength : float
        Pseudo-impressions ``m`` > 0: how many impressions it takes for the ad's own
        data to weigh as much as the prior.
    """
    check_range("prior_ctr", prior_ctr, 0, 1, low_open=True, high_open=True)
    check_range("prior_strength", prior_strength, 0, np.inf, low_open=True)
    clicks, impressions = (_counts(name, values) for name, values
                           in (("clicks", clicks), ("impressions", impressions)))
    if clicks.shape != impressions.shape:
        raise ValueError(f"clicks and impressions must have the same shape; got "
                         f"{clicks.shape} and {impressions.shape}")
    if np.any(clicks > impressions):
        raise ValueError("clicks must not exceed impressions")
    return (clicks + prior_strength * prior_ctr) / (impressions + prior_strength)


def _counts(name: str, values: ArrayLike) -> np.ndarray:
    """``values`` as a float array of counts (any shape); raise naming ``name``."""
    try:
        counts = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be counts; got {type(values).__name__}") from None
    if not np.all(np.isfinite(counts)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return check_nonnegative(name, counts)


class History:
    """Impression and click counts per ad and per (user, topic) from closed windows.

    Parameters
    ----------
    view : PlatformView
        Sizes the tables (every ad, user and topic of the view starts at zero).

    Attributes
    ----------
    ad_impressions, ad_clicks : (n_ads,) float arrays
    user_topic_impressions, user_topic_clicks : (n_users, n_topics) float arrays
        Ad impressions and clicks of each user on each topic's ads.
    user_topic_views : (n_users, n_topics) float array
        Page views of each user on each topic's publishers.
    """

    def __init__(self, view: PlatformView) -> None:
        self.view = require_view(view)
        self._ad_topic = view.ads["topic"].to_numpy()
        self._ad_campaign = view.ads["campaign_id"].to_numpy()
        self.ad_impressions = np.zeros(view.n_ads)
        self.ad_clicks = np.zeros(view.n_ads)
        shape = (view.n_users, len(view.topics))
        self.user_topic_impressions = np.zeros(shape)
        self.user_topic_clicks = np.zeros(shape)
        self.user_topic_views = np.zeros(shape)
        self._page_topic = view.publishers["topic"].to_numpy()
        self._tables: dict[str, np.ndarray] | None = None

    def add(self, users: ArrayLike, ads: ArrayLike, clicked: ArrayLike) -> History:
        """Count labelled impressions (closed attribution windows only); return ``self``.

        Parameters
        ----------
        users, ads : array-like of int
            User and ad of each impression.
        clicked : array-like of 0/1
            The impression's attribution-window label.
        """
        view = self.view
        users = as_integers("users", users, 0, view.n_users - 1)
        ads = as_integers("ads", ads, 0, view.n_ads - 1)
        y = check_labels("clicked", as_1d("clicked", clicked, allow_empty=True)).astype(float)
        check_same_length(users=users, ads=ads, clicked=y)
        self.ad_impressions += np.bincount(ads, minlength=view.n_ads)
        self.ad_clicks += np.bincount(ads, weights=y, minlength=view.n_ads)
        cell = users * len(view.topics) + self._ad_topic[ads]
        size = self.user_topic_impressions.size
        self.user_topic_impressions += np.bincount(cell, minlength=size).reshape(
            self.user_topic_impressions.shape)
        self.user_topic_clicks += np.bincount(cell, weights=y, minlength=size).reshape(
            self.user_topic_clicks.shape)
        self._tables = None
        return self

    def add_views(self, users: ArrayLike, publishers: ArrayLike) -> History:
        """Count page views (one per request) from the request log; return ``self``."""
        view = self.view
        users = as_integers("users", users, 0, view.n_users - 1)
        publishers = as_integers("publishers", publishers, 0, view.n_publishers - 1)
        check_same_length(users=users, publishers=publishers)
        cell = users * len(view.topics) + self._page_topic[publishers]
        self.user_topic_views += np.bincount(cell, minlength=self.user_topic_views.size
                                             ).reshape(self.user_topic_views.shape)
        self._tables = None
        return self

    def copy(self) -> History:
        """An independent copy (the nightly job extends a copy, serving keeps its own)."""
        other = History.__new__(History)
        other.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v)
                               for k, v in self.__dict__.items()})
        return other

    @property
    def campaign_impressions(self) -> np.ndarray:
        return np.bincount(self._ad_campaign, self.ad_impressions, self.view.n_campaigns)

    @property
    def campaign_clicks(self) -> np.ndarray:
        return np.bincount(self._ad_campaign, self.ad_clicks, self.view.n_campaigns)

    @property
    def user_impressions(self) -> np.ndarray:
        return self.user_topic_impressions.sum(axis=1)

    @property
    def user_clicks(self) -> np.ndarray:
        return self.user_topic_clicks.sum(axis=1)

    @property
    def base_rate(self) -> float:
        """The platform's overall CTR so far (smoothed towards :data:`PRIOR_CTR`)."""
        return float(smoothed_ctr(self.ad_clicks.sum(), self.ad_impressions.sum()))

    def ad_ctr(self) -> np.ndarray:
        """Smoothed CTR of every ad id: a new ad starts at :attr:`base_rate`."""
        return smoothed_ctr(self.ad_clicks, self.ad_impressions, self.base_rate)

    def tables(self) -> dict[str, np.ndarray]:
        """The feature tables derived from the counts, computed once per change.

        CTRs are smoothed towards the overall CTR :attr:`base_rate` and given as
        log-odds *relative* to it (0: as good as the average impression). Relative
        CTRs keep their meaning when the traffic changes: a platform that starts
        serving better ads raises every raw CTR, which would make a model trained on
        yesterday's counts over-predict today.

        Per ad: ``ad_ctr_logit``, ``ad_log_impressions``; per campaign:
        ``campaign_ctr_logit``; per user: ``user_ctr_logit``, ``user_log_impressions``,
        ``user_log_views``; per (user, topic): ``user_topic_ctr_logit``,
        ``user_topic_log_impressions``, ``user_topic_view_share`` (page views on the
        topic over all page views, smoothed by one view per topic).
        """
        if self._tables is None:
            n_topics = self.user_topic_views.shape[1]
            views = self.user_topic_views.sum(axis=1)
            shown, clicks = self.user_impressions, self.user_clicks
            base = self.base_rate

            def relative(clicks: np.ndarray, impressions: np.ndarray) -> np.ndarray:
                return _logit(smoothed_ctr(clicks, impressions, base)) - _logit(base)

            self._tables = {
                "ad_ctr_logit": relative(self.ad_clicks, self.ad_impressions),
                "ad_log_impressions": np.log1p(self.ad_impressions),
                "campaign_ctr_logit": relative(self.campaign_clicks, self.campaign_impressions),
                "user_ctr_logit": relative(clicks, shown),
                "user_log_impressions": np.log1p(shown),
                "user_log_views": np.log1p(views),
                "user_topic_ctr_logit": relative(self.user_topic_clicks,
                                                 self.user_topic_impressions),
                "user_topic_log_impressions": np.log1p(self.user_topic_impressions),
                "user_topic_view_share": (self.user_topic_views + 1) / (views[:, None]
                                                                        + n_topics),
            }
        return self._tables


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


class ExposureCounter:
    """How many times each ad was shown to each user today, from the impression log.

    Stored sparsely (sorted keys ``user x n_ads + ad`` and their counts), so memory
    grows with the day's distinct (user, ad) pairs, not with users x ads.
    """

    def __init__(self, n_ads: int) -> None:
        self.n_ads = int(as_integers("n_ads", [n_ads], 1, 2**40)[0])
        self.reset()

    def reset(self) -> None:
        """Start a new day: every count back to zero."""
        self._keys = np.zeros(0, np.int64)
        self._counts = np.zeros(0, np.int64)

    def _key(self, users: ArrayLike, ads: ArrayLike) -> np.ndarray:
        users = as_integers("users", users, 0, np.iinfo(np.int64).max // self.n_ads - 1)
        ads = as_integers("ads", ads, 0, self.n_ads - 1)
        check_same_length(users=users, ads=ads)
        return users * self.n_ads + ads

    def counts(self, users: ArrayLike, ads: ArrayLike) -> np.ndarray:
        """Exposures so far today of each aligned (user, ad) pair."""
        keys = self._key(users, ads)
        at = np.minimum(np.searchsorted(self._keys, keys), max(len(self._keys) - 1, 0))
        if not len(self._keys):
            return np.zeros(len(keys), np.int64)
        return np.where(self._keys[at] == keys, self._counts[at], 0)

    def record(self, users: ArrayLike, ads: ArrayLike) -> None:
        """Add impressions just served (one per aligned pair; pairs may repeat)."""
        keys, added = np.unique(self._key(users, ads), return_counts=True)
        at = np.searchsorted(self._keys, keys)
        found = at < len(self._keys)
        found[found] = self._keys[at[found]] == keys[found]
        self._counts[at[found]] += added[found]
        self._keys = np.insert(self._keys, at[~found], keys[~found])
        self._counts = np.insert(self._counts, at[~found], added[~found])

    def __len__(self) -> int:
        """Distinct (user, ad) pairs shown today."""
        return len(self._keys)
