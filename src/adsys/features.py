"""One feature function for training and serving: no training/serving skew.

:func:`make_features` turns aligned arrays of (user, ad, page, hour, position), one
entry per (request, ad) pair, into a feature table. The trainer calls it on logged
impressions; the predictor calls it on the selector's candidates. Because both go
through the same code, with the same fixed category lists, a row gets the same
features in a training batch, a serving batch or alone.

Only what a real platform observes goes in. The world's hidden ``true_quality`` and
the true relevance never do; the ad's quality reaches the model only through its
logged click history (``ad_ctr_logit``) and its campaign and advertiser ids.

Columns (categoricals use pandas ``category`` dtype with fixed categories):

- ``age_band``, ``gender``, ``region``, ``device`` (categorical): the user's
  profile (in the toy world a user always browses from the same device).
- ``ad_topic`` (categorical): the topic of the ad.
- ``campaign_id``, ``advertiser_id`` (categorical, every id of the world): who runs
  the ad; ids unseen in training act as cold start.
- ``page_topic`` (categorical): the topic of the publisher's page.
- ``position`` (categorical, 1..n_slots): the slot the ad was shown in. Training
  rows carry the logged slot so the model learns the position bias separately from
  relevance; serving passes :data:`SERVING_POSITION` (slot 1) for every candidate,
  which removes the position effect and makes the pCTR comparable across ads (the
  auction then ranks by position-1 eCPM).
- ``hour`` (int), ``hour_sin``, ``hour_cos`` (float): hour of day, raw and on the
  24-hour circle so 23:00 and 00:00 are neighbours.
- ``page_topic_match`` (0/1): the page topic equals the ad topic.
- ``user_topic_interest`` (float in [0, 1]): the user's interest in the ad's topic,
  read from ``world.interests``. It stands for the platform's inferred interest
  profile (in production, estimated from browsing and past clicks); the toy world
  lets the platform see the profile itself, not the relevance built from it.
- ``user_top_topic_match`` (0/1): the ad topic is the user's strongest interest.
- ``ad_ctr_logit``, ``campaign_ctr_logit`` (float): log-odds of the historical
  click-through rate of the ad and of its campaign, from ``ad_stats`` counts smoothed
  towards :data:`PRIOR_CTR` with :data:`PRIOR_STRENGTH` pseudo-impressions; with no
  history both equal the prior's log-odds.
- ``ad_log_impressions`` (float): ``log(1 + impressions)`` of the ad in ``ad_stats``,
  0 for a new ad: tells the model how much to trust ``ad_ctr_logit`` (cold start).

``ad_stats`` must come from logs before the rows being featurized (for example the
previous days); counts that include the rows' own clicks leak the label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.validation import (
    as_1d,
    as_integers,
    check_nonnegative,
    check_range,
    check_same_length,
)
from adsys.world import AGE_BANDS, DEVICES, GENDERS, REGIONS, World

__all__ = [
    "CATEGORICAL_COLUMNS",
    "FEATURE_COLUMNS",
    "NUMERIC_COLUMNS",
    "PRIOR_CTR",
    "PRIOR_STRENGTH",
    "SERVING_POSITION",
    "ad_counts",
    "count_ad_stats",
    "make_features",
    "smoothed_ctr",
]

CATEGORICAL_COLUMNS = (
    "age_band", "gender", "region", "device", "ad_topic", "campaign_id", "advertiser_id",
    "page_topic", "position",
)
NUMERIC_COLUMNS = (
    "hour", "hour_sin", "hour_cos", "page_topic_match", "user_topic_interest",
    "user_top_topic_match", "ad_ctr_logit", "campaign_ctr_logit", "ad_log_impressions",
)
FEATURE_COLUMNS = CATEGORICAL_COLUMNS + NUMERIC_COLUMNS
PRIOR_CTR = 0.02
PRIOR_STRENGTH = 100.0
SERVING_POSITION = 1
AD_STATS_COLUMNS = ("ad_id", "impressions", "clicks")


def smoothed_ctr(clicks: np.ndarray, impressions: np.ndarray, prior_ctr: float = PRIOR_CTR,
                 prior_strength: float = PRIOR_STRENGTH) -> np.ndarray:
    """Posterior-mean CTR under a Beta prior: ``(clicks + m p0) / (impressions + m)``.

    Parameters
    ----------
    clicks, impressions : np.ndarray
        Logged counts, aligned.
    prior_ctr : float
        Prior mean ``p0`` in (0, 1), what an ad with no history gets.
    prior_strength : float
        Pseudo-impressions ``m`` > 0: how many impressions it takes for the ad's own
        data to weigh as much as the prior.
    """
    check_range("prior_ctr", prior_ctr, 0, 1, low_open=True, high_open=True)
    check_range("prior_strength", prior_strength, 0, np.inf, low_open=True)
    return (clicks + prior_strength * prior_ctr) / (impressions + prior_strength)


def count_ad_stats(ad_id: ArrayLike, clicked: ArrayLike) -> pd.DataFrame:
    """Aggregate an impression log into ``ad_stats``: one row per ad shown.

    Parameters
    ----------
    ad_id : array-like of int
        The ad of each logged impression.
    clicked : array-like of bool or 0/1
        Whether that impression was clicked.

    Returns
    -------
    pd.DataFrame
        Columns ``ad_id``, ``impressions``, ``clicks``, sorted by ``ad_id``.
    """
    ads = as_integers("ad_id", ad_id, 0, np.iinfo(np.int64).max)
    clicks = as_1d("clicked", clicked, dtype=float, allow_empty=True)
    check_same_length(ad_id=ads, clicked=clicks)
    if not np.all((clicks == 0) | (clicks == 1)):
        raise ValueError("clicked must hold only 0/1 or booleans")
    shown, inverse = np.unique(ads, return_inverse=True)
    return pd.DataFrame({
        "ad_id": shown,
        "impressions": np.bincount(inverse, minlength=len(shown)).astype(np.int64),
        "clicks": np.bincount(inverse, weights=clicks, minlength=len(shown)).astype(np.int64),
    })


def ad_counts(ad_stats: pd.DataFrame | None, n_ads: int) -> tuple[np.ndarray, np.ndarray]:
    """Impressions and clicks of every ad id 0..n_ads-1, summed over ``ad_stats`` rows.

    ``ad_stats`` has columns ``ad_id``, ``impressions``, ``clicks`` (several rows per
    ad, e.g. one per day, add up); ``None`` means no history (all zeros).
    """
    if ad_stats is None:
        return np.zeros(n_ads), np.zeros(n_ads)
    if not isinstance(ad_stats, pd.DataFrame) or not set(AD_STATS_COLUMNS) <= set(ad_stats):
        raise ValueError(f"ad_stats must be a DataFrame with columns {list(AD_STATS_COLUMNS)}")
    ads = as_integers("ad_stats.ad_id", ad_stats["ad_id"].to_numpy(), 0, n_ads - 1)
    shown = check_nonnegative("ad_stats.impressions", as_1d(
        "ad_stats.impressions", ad_stats["impressions"].to_numpy(), allow_empty=True))
    clicks = check_nonnegative("ad_stats.clicks", as_1d(
        "ad_stats.clicks", ad_stats["clicks"].to_numpy(), allow_empty=True))
    if np.any(clicks > shown):
        raise ValueError("ad_stats.clicks must not exceed ad_stats.impressions")
    return (np.bincount(ads, weights=shown, minlength=n_ads),
            np.bincount(ads, weights=clicks, minlength=n_ads))


def _categorical(codes: np.ndarray, categories: ArrayLike) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def make_features(world: World, users: ArrayLike, ads: ArrayLike, publishers: ArrayLike,
                  hours: ArrayLike, positions: ArrayLike | int,
                  ad_stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features of (request, ad) pairs, identical for training and serving.

    Parameters
    ----------
    world : World
        Supplies the platform's tables: user profiles, ads, campaigns, publishers.
    users, ads, publishers, hours : array-like of int
        Aligned, one entry per pair: user id, ad id, publisher id, hour (0-23).
    positions : array-like of int or int
        Slot of each pair (1..n_slots), or one slot for all; at serving pass
        :data:`SERVING_POSITION`.
    ad_stats : pd.DataFrame, optional
        Logged counts (``ad_id``, ``impressions``, ``clicks``) from before these rows;
        ``None`` treats every ad as new.

    Returns
    -------
    pd.DataFrame
        One row per pair, columns :data:`FEATURE_COLUMNS` (described in the module
        docstring), index 0..n-1.
    """
    n_ads = len(world.ads)
    user = as_integers("users", users, 0, world.config.n_users - 1)
    ad = as_integers("ads", ads, 0, n_ads - 1)
    page = as_integers("publishers", publishers, 0, world.config.n_publishers - 1)
    hour = as_integers("hours", hours, 0, 23)
    if np.ndim(positions) == 0:
        positions = np.full(len(user), positions)
    position = as_integers("positions", positions, 1, world.config.n_slots)
    check_same_length(users=user, ads=ad, publishers=page, hours=hour, positions=position)

    u, a = world.users, world.ads
    ad_campaign = a["campaign_id"].to_numpy()
    topic = a["topic"].to_numpy()[ad]
    page_topic = world.publishers["topic"].to_numpy()[page]
    shown, clicks = ad_counts(ad_stats, n_ads)
    n_campaigns = len(world.campaigns)
    campaign_shown = np.bincount(ad_campaign, weights=shown, minlength=n_campaigns)
    campaign_clicks = np.bincount(ad_campaign, weights=clicks, minlength=n_campaigns)
    angle = 2 * np.pi * hour / 24
    return pd.DataFrame({
        "age_band": _categorical(u["age_band"].to_numpy()[user], AGE_BANDS),
        "gender": _categorical(u["gender"].to_numpy()[user], GENDERS),
        "region": _categorical(u["region"].to_numpy()[user], REGIONS),
        "device": _categorical(u["device"].to_numpy()[user], DEVICES),
        "ad_topic": _categorical(topic, world.topics),
        "campaign_id": _categorical(ad_campaign[ad], np.arange(n_campaigns)),
        "advertiser_id": _categorical(a["advertiser_id"].to_numpy()[ad],
                                      np.arange(len(world.advertisers))),
        "page_topic": _categorical(page_topic, world.topics),
        "position": _categorical(position - 1, np.arange(1, world.config.n_slots + 1)),
        "hour": hour,
        "hour_sin": np.sin(angle),
        "hour_cos": np.cos(angle),
        "page_topic_match": (page_topic == topic).astype(np.int8),
        "user_topic_interest": world.interests[user, topic],
        "user_top_topic_match": (u["top_topic"].to_numpy()[user] == topic).astype(np.int8),
        "ad_ctr_logit": _logit(smoothed_ctr(clicks, shown))[ad],
        "campaign_ctr_logit": _logit(smoothed_ctr(campaign_clicks, campaign_shown))[
            ad_campaign[ad]],
        "ad_log_impressions": np.log1p(shown)[ad],
    })
