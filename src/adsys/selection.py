"""The selector: the cheap first stage of the funnel, keeping the top K ads per request.

The index returns a couple of hundred eligible ads per request, too many for the
heavy click model within the latency budget. The selector scores every eligible
(request, ad) pair with a :class:`LightModel`, a logistic regression on a handful of
features that are each one table lookup away: the ad's historical CTR, the user's
inferred interest in the ad's topic (page views, clicks, declared interests), how
much the user clicks at all, and whether the page is about the ad's topic. Its
score is a light eCPM, ``1000 x bid x light pCTR`` (per thousand impressions, as the
auction's), and the K best per request go on to the heavy model.

Scoring is two lookups and an add per pair: the model's weights are folded into a
table per ad and a table per (user, topic), recomputed only when the model or the
history changes. Optional crosses of the ad's topic with the user's age band or
gender, the hour or the page's topic (:data:`LIGHT_CROSSES`) fold into the same
tables (per (user, topic), or per (request, topic) built once per request), so they
make the light model sharper at the same cost per pair. Keeping the K best of each
request is one integer sort of packed keys (request, score, ad), see
:func:`top_k_per_group`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from adsys.history import PRIOR_CTR, History
from adsys.observable import PlatformView, Requests, require_view
from adsys.validation import (
    as_1d,
    as_integers,
    check_int,
    check_labels,
    check_nonnegative,
    check_range,
    check_same_length,
)

__all__ = ["LIGHT_CROSSES", "LIGHT_FEATURES", "LightModel", "Selector", "top_k_per_group"]

LIGHT_FEATURES = (
    "ad_ctr_logit", "user_topic_view_share", "user_topic_ctr_logit", "declared_interest",
    "user_ctr_logit", "page_topic_match",
)
"""The light model's inputs, columns of :func:`adsys.features.make_features`."""

LIGHT_CROSSES = ("age_band", "gender", "hour", "page_topic")
"""Request-side columns the light model may cross with the ad's topic: one weight per
(value, topic), folded into the per-(user, topic) or per-(request, topic) table."""


class LightModel:
    """A logistic regression on :data:`LIGHT_FEATURES` (and optional crosses of the
    ad's topic, :data:`LIGHT_CROSSES`): cheap, user-aware pCTR.

    Trained on the same feature tables as the heavy model (the logged slot enters as
    a one-hot so that the position effect is not credited to the ads); it scores at
    position 1. ``LightModel.ad_only()`` is the user-blind baseline: the ad's
    smoothed historical CTR and nothing else.

    Parameters
    ----------
    C : float
        Inverse L2 regularization strength (> 0).
    downsampling_rate : float in (0, 1]
        Rate at which non-clicks were kept in the training data; the fitted intercept
        is shifted by ``log(downsampling_rate)``, which undoes it exactly for a
        logistic model (the same map as :func:`adsys.prediction.recalibrate_downsampled`).
    crosses : sequence of str
        Columns of :data:`LIGHT_CROSSES` to cross with the ad's topic (default none).

    Attributes
    ----------
    intercept : float
    weights : dict
        One weight per column of :data:`LIGHT_FEATURES`.
    cross_weights : dict
        Per crossed column, an array (its number of values, number of topics) of
        logit offsets.
    """

    def __init__(self, C: float = 1.0, downsampling_rate: float = 1.0,
                 crosses: Sequence[str] = ()) -> None:
        self.C = check_range("C", C, 0, np.inf, low_open=True)
        self.downsampling_rate = check_range("downsampling_rate", downsampling_rate, 0, 1,
                                             low_open=True)
        if isinstance(crosses, str) or not isinstance(crosses, Sequence) or not all(
                isinstance(c, str) for c in crosses):
            raise TypeError(f"crosses must be a sequence of column names; got {crosses!r}")
        unknown = [c for c in crosses if c not in LIGHT_CROSSES]
        if unknown or len(set(crosses)) != len(crosses):
            raise ValueError(f"crosses must be distinct columns of {list(LIGHT_CROSSES)}; "
                             f"got {list(crosses)}")
        self.crosses = tuple(crosses)
        self.intercept: float | None = None
        self.weights: dict[str, float] = {}
        self.cross_weights: dict[str, np.ndarray] = {}

    @classmethod
    def ad_only(cls, base_rate: float = PRIOR_CTR) -> LightModel:
        """The user-blind score: light pCTR = the ad's smoothed CTR, from its relative
        log-odds (weight 1) and the platform's overall CTR ``base_rate``."""
        model = cls()
        model.intercept = float(np.log(base_rate) - np.log1p(-check_range(
            "base_rate", base_rate, 0, 1, low_open=True, high_open=True)))
        model.weights = {name: float(name == "ad_ctr_logit") for name in LIGHT_FEATURES}
        return model

    def fit(self, features: pd.DataFrame, clicked: ArrayLike) -> LightModel:
        """Fit on a feature table (from ``make_features``) and 0/1 labels; return ``self``."""
        if not isinstance(features, pd.DataFrame):
            raise TypeError(f"features must be a DataFrame; got {type(features).__name__}")
        crossed = (*self.crosses, "ad_topic") if self.crosses else ()
        missing = [c for c in (*LIGHT_FEATURES, "position", *crossed) if c not in features]
        if missing:
            raise ValueError(f"features is missing columns {missing}")
        y = check_labels("clicked", as_1d("clicked", clicked))
        check_same_length(features=features, clicked=y)
        if len(np.unique(y)) < 2:
            raise ValueError("clicked must contain both clicks (1) and non-clicks (0)")
        slots = features["position"].cat.codes.to_numpy()
        one_hot = np.eye(slots.max() + 1)[slots][:, 1:]      # slot 1 is the reference
        x = np.column_stack([features[c].to_numpy(float) for c in LIGHT_FEATURES] + [one_hot])
        shapes = [(len(features[c].cat.categories), len(features["ad_topic"].cat.categories))
                  for c in self.crosses]
        if self.crosses:   # one indicator column per (value, topic) cell of each cross
            topic, rows = features["ad_topic"].cat.codes.to_numpy(np.int64), np.arange(len(y))
            blocks = [sparse.csr_matrix(x)]
            for column, (n_values, n_topics) in zip(self.crosses, shapes, strict=True):
                cell = features[column].cat.codes.to_numpy(np.int64) * n_topics + topic
                blocks.append(sparse.csr_matrix((np.ones(len(y)), (rows, cell)),
                                                shape=(len(y), n_values * n_topics)))
            x = sparse.hstack(blocks, format="csr")
        regression = LogisticRegression(C=self.C, solver="newton-cholesky").fit(x, y)
        coef = regression.coef_[0]
        self.intercept = float(regression.intercept_[0]) + float(np.log(self.downsampling_rate))
        self.weights = dict(zip(LIGHT_FEATURES, map(float, coef), strict=False))
        start = len(LIGHT_FEATURES) + one_hot.shape[1]
        for column, (n_values, n_topics) in zip(self.crosses, shapes, strict=True):
            self.cross_weights[column] = coef[start:start + n_values * n_topics].reshape(
                n_values, n_topics)
            start += n_values * n_topics
        return self


class Selector:
    """Score (request, ad) pairs with a light model and bids; keep the top K.

    Parameters
    ----------
    view : PlatformView
        Supplies the ads, their campaigns' ``max_cpc`` bids, topics and declarations.
    history : History, optional
        The platform's counts from closed windows (``None``: no history yet).
    model : LightModel, optional
        A fitted light model; ``None`` uses :meth:`LightModel.ad_only`.
    """

    def __init__(self, view: PlatformView, history: History | None = None,
                 model: LightModel | None = None) -> None:
        self.view = require_view(view)
        if history is not None and not isinstance(history, History):
            raise TypeError(f"history must be a History; got {type(history).__name__}")
        if model is not None and not isinstance(model, LightModel):
            raise TypeError(f"model must be a LightModel; got {type(model).__name__}")
        self.history = history if history is not None else History(view)
        self.model = model if model is not None else LightModel.ad_only(self.history.base_rate)
        if self.model.intercept is None:
            raise ValueError("model must be fitted (or LightModel.ad_only())")
        self.ad_campaign = view.ads["campaign_id"].to_numpy()
        self.max_cpc = view.campaigns["max_cpc"].to_numpy()
        self._ad_topic = view.ads["topic"].to_numpy()
        self._page_topic = view.publishers["topic"].to_numpy()
        # Fold the weights into one table per ad and one per (user, topic).
        w, tables = self.model.weights, self.history.tables()
        n_topics = len(view.topics)
        declared = (view.users["declared_topics"].to_numpy()[:, None]
                    >> np.arange(n_topics)) & 1
        self._ad_part = (self.model.intercept + w["ad_ctr_logit"] * tables["ad_ctr_logit"]
                         ).astype(np.float32)
        crossed = self.model.cross_weights
        users = view.users
        self._user_topic_part = (
            w["user_topic_view_share"] * tables["user_topic_view_share"]
            + w["user_topic_ctr_logit"] * tables["user_topic_ctr_logit"]
            + w["declared_interest"] * declared
            + w["user_ctr_logit"] * tables["user_ctr_logit"][:, None]
            + sum(crossed[c][users[c].to_numpy()] for c in ("age_band", "gender")
                  if c in crossed)).astype(np.float32).ravel()
        # Per (page topic, ad topic): the page-match weight, plus the cross if fitted.
        page_topics = np.arange(len(view.topics))
        self._page_part = (np.float32(w["page_topic_match"])
                           * (page_topics[:, None] == page_topics))
        if "page_topic" in crossed:
            self._page_part = (self._page_part + crossed["page_topic"]).astype(np.float32)
        self._hour_part = crossed["hour"].astype(np.float32) if "hour" in crossed else None
        self._bid = self.max_cpc[self.ad_campaign].astype(np.float32)

    def light_ctr(self, requests: Requests, request_pos: ArrayLike,
                  ad_id: ArrayLike) -> np.ndarray:
        """The light model's position-1 pCTR of each (request, ad) pair (float32)."""
        req, ads = self._pairs(requests, request_pos, ad_id)
        return self._light_ctr(requests, req, ads)

    def score(self, requests: Requests, request_pos: ArrayLike, ad_id: ArrayLike) -> np.ndarray:
        """Light eCPM of each pair, in dollars per thousand impressions (float32)."""
        req, ads = self._pairs(requests, request_pos, ad_id)
        return np.float32(1000) * self._bid[ads] * self._light_ctr(requests, req, ads)

    def select(self, requests: Requests, request_pos: ArrayLike, ad_id: ArrayLike,
               k: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep the ``k`` best pairs of each request by light eCPM.

        Parameters
        ----------
        requests : Requests
            The batch the pairs refer to.
        request_pos, ad_id : array-like of int
            Aligned candidate pairs, e.g. from :meth:`adsys.index.AdIndex.eligible`.
        k : int
            Ads to keep per request (>= 1); requests with fewer candidates keep all.

        Returns
        -------
        request_pos, ad_id : np.ndarray
            The kept pairs, ``min(k, n_candidates)`` per request, sorted by request,
            then by light eCPM (highest first; equal scores go to the lower ad id).
        """
        k = check_int("k", k, 1)
        req, ads = self._pairs(requests, request_pos, ad_id)
        score = np.float32(1000) * self._bid[ads] * self._light_ctr(requests, req, ads)
        return top_k_per_group(req, score, ads, k)

    def _pairs(self, requests: Requests, request_pos: ArrayLike,
               ad_id: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(requests, Requests):
            raise TypeError(f"requests must be a Requests batch; got {type(requests).__name__}")
        req = as_integers("request_pos", request_pos, 0, max(len(requests) - 1, 0))
        ads = as_integers("ad_id", ad_id, 0, self.view.n_ads - 1)
        check_same_length(request_pos=req, ad_id=ads)
        return req, ads

    def _light_ctr(self, requests: Requests, req: np.ndarray, ads: np.ndarray) -> np.ndarray:
        # Per request and topic: the user's part plus the page's (and the hour's), then
        # one lookup per pair in that small table and one in the ad table.
        n_topics = len(self.view.topics)
        request_topic = (self._user_topic_part.reshape(-1, n_topics)[requests.user]
                         + self._page_part[self._page_topic[requests.publisher]])
        if self._hour_part is not None:
            request_topic += self._hour_part[requests.hour]
        z = self._ad_part[ads] + request_topic.ravel()[req * n_topics + self._ad_topic[ads]]
        return 1 / (1 + np.exp(-z))


def top_k_per_group(groups: np.ndarray, scores: np.ndarray, items: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items of each group: (group, item) pairs sorted by group, best first.

    One integer sort does it: each pair becomes a key ``group | reversed score |
    item`` (the score's float32 bits, which order non-negative floats, cut to their
    top 24 bits, a relative precision of about 3e-5), so sorting the keys orders the
    pairs by group, then by score, highest first, then by item, and the sorted keys
    decode back to (group, item). Falls back to a lexicographic sort when the three
    parts do not fit in 63 bits.

    Parameters
    ----------
    groups, items : np.ndarray of non-negative int
        The group (e.g. request) and item (e.g. ad id) of each pair; pairs are distinct.
    scores : np.ndarray of float
        Non-negative scores, higher is better.
    k : int
        Pairs to keep per group.
    """
    k = check_int("k", k, 1)
    groups, items = np.asarray(groups, np.int64), np.asarray(items, np.int64)
    if len(groups) == 0:
        return groups, items
    scores = check_nonnegative("scores", as_1d("scores", scores, dtype=None))  # and finite
    score_bits = (scores.astype(np.float32, copy=False).view(np.uint32) >> 8).astype(np.int64)
    item_bits = max(int(items.max()).bit_length(), 1)
    shift = 24 + item_bits
    if int(groups.max()).bit_length() + shift <= 63:
        keys = np.sort(groups << shift | (0xFFFFFF - score_bits) << item_bits | items)
        groups, items = keys >> shift, keys & ((1 << item_bits) - 1)
    else:
        order = np.lexsort((items, -score_bits, groups))
        groups, items = groups[order], items[order]
    counts = np.bincount(groups)
    rank = np.arange(len(groups)) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = rank < k
    return groups[kept], items[kept]
