"""One feature function for training and serving: no training/serving skew.

:func:`make_features` turns aligned arrays of (user, ad, page, hour, position), one
entry per (request, ad) pair, into a feature table. The trainer calls it on logged
impressions (or reads the features logged at serving time); the server calls it on
the candidates of a request. Both go through the same code with the same fixed
category lists, so a row gets the same features in a training batch, a serving
batch or alone.

Only what the platform observes goes in: the :class:`~adsys.observable.PlatformView`
tables, the request, the platform's own counts (:class:`~adsys.history.History`,
from closed attribution windows) and today's exposures
(:class:`~adsys.history.ExposureCounter`). The world's true interests, ad quality
and click probabilities never do.

Columns (categoricals use pandas ``category`` dtype with fixed categories):

- ``age_band``, ``gender``, ``region``, ``device``: the user's profile.
- ``ad_topic``, ``campaign_id``, ``advertiser_id``: the ad and who runs it (every id
  of the view is a category; ids unseen in training act as cold start).
- ``page_topic``: the topic of the publisher's page; ``hour``: hour of day (0-23).
- ``position`` (1..n_slots): the slot. Training rows carry the logged slot so the
  model learns the position effect apart from relevance; serving passes
  :data:`SERVING_POSITION` for every candidate, so pCTRs compare across ads and the
  auction ranks by position-1 eCPM.
- ``page_topic_match`` (0/1): the page topic equals the ad topic.
- ``declared_interest`` (0/1): the user declared an interest in the ad's topic;
  ``n_declared``: how many topics the user declared.
- ``user_topic_view_share``, ``user_log_views``: the user's inferred interest from
  what they read: the share of their page views on the ad's topic (smoothed towards
  1 / n_topics) and ``log(1 + page views)`` it rests on.
- ``user_topic_ctr_logit``, ``user_topic_log_impressions``: their inferred interest
  from the ads they clicked: log-odds of their smoothed CTR on that topic's ads,
  relative to the platform's overall CTR, and ``log(1 + impressions)`` it rests on.
- ``user_ctr_logit``, ``user_log_impressions``: the same over all topics (how much
  this user clicks at all).
- ``ad_ctr_logit``, ``campaign_ctr_logit``, ``ad_log_impressions``: the ad's and its
  campaign's historical CTR (relative log-odds, smoothed) and the ad's
  ``log(1 + impressions)``, 0 for a new ad (cold start).
- ``log_exposures``: ``log(1 + times this ad was shown to this user today)``.

With no history every relative CTR feature is 0 (see :meth:`History.tables`).
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.history import History
from adsys.observable import AGE_BANDS, DEVICES, GENDERS, REGIONS, PlatformView, require_view
from adsys.validation import as_integers, check_same_length

__all__ = [
    "CATEGORICAL_COLUMNS",
    "FEATURE_COLUMNS",
    "NUMERIC_COLUMNS",
    "SERVING_POSITION",
    "dtypes",
    "feature_arrays",
    "from_log",
    "make_features",
    "to_frame",
]

CATEGORICAL_COLUMNS = (
    "age_band", "gender", "region", "device", "ad_topic", "campaign_id", "advertiser_id",
    "page_topic", "hour", "position",
)
NUMERIC_COLUMNS = (
    "page_topic_match", "declared_interest", "n_declared", "user_topic_view_share",
    "user_log_views", "user_topic_ctr_logit",
    "user_topic_log_impressions", "user_ctr_logit", "user_log_impressions", "ad_ctr_logit",
    "campaign_ctr_logit", "ad_log_impressions", "log_exposures",
)
FEATURE_COLUMNS = CATEGORICAL_COLUMNS + NUMERIC_COLUMNS
SERVING_POSITION = 1


_DTYPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dtypes(view: PlatformView) -> dict[str, pd.CategoricalDtype]:
    """The fixed categorical dtype of each categorical column for ``view``."""
    view = require_view(view)
    if view not in _DTYPES:
        _DTYPES[view] = {column: pd.CategoricalDtype(values) for column, values in {
            "age_band": AGE_BANDS, "gender": GENDERS, "region": REGIONS, "device": DEVICES,
            "ad_topic": view.topics, "campaign_id": pd.RangeIndex(view.n_campaigns),
            "advertiser_id": pd.RangeIndex(len(view.advertisers)),
            "page_topic": view.topics, "hour": pd.RangeIndex(24),
            "position": pd.RangeIndex(1, view.n_slots + 1)}.items()}
    return _DTYPES[view]


def make_features(view: PlatformView, users: ArrayLike, ads: ArrayLike, publishers: ArrayLike,
                  hours: ArrayLike, positions: ArrayLike | int, history: History | None = None,
                  exposures: ArrayLike | int = 0) -> pd.DataFrame:
    """Features of (request, ad) pairs, identical for training and serving.

    Parameters
    ----------
    view : PlatformView
        The platform's tables: user profiles, ads, campaigns, publishers.
    users, ads, publishers, hours : array-like of int
        Aligned, one entry per pair: user id, ad id, publisher id, hour (0-23).
    positions : array-like of int or int
        Slot of each pair (1..n_slots), or one slot for all; at serving pass
        :data:`SERVING_POSITION`.
    history : History, optional
        Counts from closed attribution windows *before* these rows; ``None`` treats
        every ad and user as new. Counts that include the rows' own clicks leak the label.
    exposures : array-like of int or int
        Times each ad was already shown to its user today (one value for all rows, or
        one per row).

    Returns
    -------
    pd.DataFrame
        One row per pair, columns :data:`FEATURE_COLUMNS` (see the module docstring).
    """
    return to_frame(view, feature_arrays(view, users, ads, publishers, hours, positions,
                                         history, exposures))


def to_frame(view: PlatformView, arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """The feature table of :func:`feature_arrays` output (category codes become
    categoricals with the view's fixed categories)."""
    return pd.DataFrame(to_columns(view, arrays), copy=False)


def to_columns(view: PlatformView, arrays: dict[str, np.ndarray],
               prefix: str = "") -> dict[str, np.ndarray | pd.Categorical]:
    """The columns of :func:`to_frame`, named ``prefix + column``, for a larger table."""
    types = dtypes(require_view(view))
    return {prefix + column: (pd.Categorical.from_codes(arrays[column], dtype=types[column],
                                                        validate=False)
                              if column in types else arrays[column])
            for column in FEATURE_COLUMNS}


def feature_arrays(view: PlatformView, users: ArrayLike, ads: ArrayLike,
                   publishers: ArrayLike, hours: ArrayLike, positions: ArrayLike | int,
                   history: History | None = None,
                   exposures: ArrayLike | int = 0) -> dict[str, np.ndarray]:
    """The features of :func:`make_features` as plain arrays, one per column, with
    categoricals as codes: the serving path slices them before building tables."""
    view = require_view(view)
    user = as_integers("users", users, 0, view.n_users - 1)
    ad = as_integers("ads", ads, 0, view.n_ads - 1)
    page = as_integers("publishers", publishers, 0, view.n_publishers - 1)
    hour = as_integers("hours", hours, 0, 23)
    position = as_integers("positions", np.broadcast_to(positions, user.shape), 1, view.n_slots)
    seen = as_integers("exposures", np.broadcast_to(exposures, user.shape), 0,
                       np.iinfo(np.int64).max)
    check_same_length(users=user, ads=ad, publishers=page, hours=hour)
    if history is not None and not isinstance(history, History):
        raise TypeError(f"history must be a History; got {type(history).__name__}")
    history = history if history is not None else History(view)
    if history.view is not view:
        raise ValueError("history must be built from the same PlatformView as view")

    tables, columns = history.tables(), _view_columns(view)
    topic = columns["ad_topic"][ad]
    campaign = columns["ad_campaign"][ad]
    page_topic = columns["page_topic"][page]
    declared = columns["declared_topics"][user]
    cell = user * len(view.topics) + topic     # index into the (user, topic) tables, flattened

    def per_user_topic(name: str) -> np.ndarray:
        return tables[name].ravel()[cell]

    return {
        "age_band": columns["age_band"][user],
        "gender": columns["gender"][user],
        "region": columns["region"][user],
        "device": columns["device"][user],
        "ad_topic": topic,
        "campaign_id": campaign,
        "advertiser_id": columns["ad_advertiser"][ad],
        "page_topic": page_topic,
        "hour": hour,
        "position": position - 1,
        "page_topic_match": (page_topic == topic).astype(np.int8),
        "declared_interest": (declared >> topic & 1).astype(np.int8),
        "n_declared": columns["n_declared"][user],
        "user_topic_view_share": per_user_topic("user_topic_view_share"),
        "user_log_views": tables["user_log_views"][user],
        "user_topic_ctr_logit": per_user_topic("user_topic_ctr_logit"),
        "user_topic_log_impressions": per_user_topic("user_topic_log_impressions"),
        "user_ctr_logit": tables["user_ctr_logit"][user],
        "user_log_impressions": tables["user_log_impressions"][user],
        "ad_ctr_logit": tables["ad_ctr_logit"][ad],
        "campaign_ctr_logit": tables["campaign_ctr_logit"][campaign],
        "ad_log_impressions": tables["ad_log_impressions"][ad],
        "log_exposures": np.log1p(seen),
    }


def from_log(view: PlatformView, logged: pd.DataFrame, prefix: str = "f_") -> pd.DataFrame:
    """The feature table of logged rows: their ``prefix`` columns, renamed, with the
    categorical columns restored to the view's fixed categories.

    Impressions and candidates log the features as served (``f_`` columns). Read back
    from Parquet or SQL, categoricals come back as their values (``"mobile"``, a
    topic name, a campaign id); a model needs them as the categoricals of
    :func:`make_features`, and this gives them back. A value outside the view's
    categories raises ValueError naming its column.
    """
    view = require_view(view)
    if not isinstance(logged, pd.DataFrame):
        raise TypeError(f"logged must be a DataFrame; got {type(logged).__name__}")
    missing = [prefix + c for c in FEATURE_COLUMNS if prefix + c not in logged]
    if missing:
        raise ValueError(f"logged is missing feature columns {missing}")
    types = dtypes(view)
    columns = {}
    for column in FEATURE_COLUMNS:
        values = logged[prefix + column]
        if column not in types:
            columns[column] = values.to_numpy()
        elif values.dtype == types[column]:
            columns[column] = values.array
        else:
            codes = types[column].categories.get_indexer(values)
            if (codes < 0).any():
                raise ValueError(f"logged column {prefix + column!r} holds values outside "
                                 f"the view's categories: "
                                 f"{list(pd.unique(values[codes < 0])[:5])}")
            columns[column] = pd.Categorical.from_codes(codes, dtype=types[column])
    return pd.DataFrame(columns, index=logged.index, copy=False)


_COLUMNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _view_columns(view: PlatformView) -> dict[str, np.ndarray]:
    """The view's columns the features read, as arrays (cached per view)."""
    if view not in _COLUMNS:
        users, ads = view.users, view.ads
        declared = users["declared_topics"].to_numpy()
        _COLUMNS[view] = {
            **{c: users[c].to_numpy() for c in ("age_band", "gender", "region", "device")},
            "declared_topics": declared,
            "n_declared": np.bitwise_count(declared.astype(np.uint64)).astype(np.int8),
            "ad_topic": ads["topic"].to_numpy(), "ad_campaign": ads["campaign_id"].to_numpy(),
            "ad_advertiser": ads["advertiser_id"].to_numpy(),
            "page_topic": view.publishers["topic"].to_numpy(),
        }
    return _COLUMNS[view]
