"""Offline metrics of a click model and online metrics of the ad system.

Offline metrics compare predicted click probabilities ``p`` with observed clicks ``y``
(0/1): log loss, normalized entropy, ROC AUC, calibration, precision/recall, NDCG and
the reliability curve. Online metrics summarise an impression log: what users saw,
what they clicked and what advertisers paid. Everything is plain numpy (and pandas
for tables); the tests check the offline metrics against scikit-learn.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.validation import (
    as_1d,
    check_labels,
    check_nonnegative,
    check_probabilities,
    check_range,
    check_same_length,
)

__all__ = [
    "PrecisionRecallF1",
    "calibration_ratio",
    "log_loss",
    "mean_ndcg_at_k",
    "ndcg_at_k",
    "normalized_entropy",
    "online_metrics",
    "precision_recall_f1",
    "recall_at_k",
    "reliability_curve",
    "roc_auc",
    "spend_by_campaign",
]

IMPRESSION_COLUMNS = ("request_id", "user_id", "clicked", "price")


def _labels_and_probabilities(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair (labels ``y``, probabilities ``p``) and return them as arrays."""
    y_arr = check_labels("y", as_1d("y", y))
    p_arr = check_probabilities("p", as_1d("p", p))
    check_same_length(y=y_arr, p=p_arr)
    return y_arr, p_arr


def _binary_entropy(q: float) -> float:
    """Entropy in nats of a Bernoulli(q) variable, 0 < q < 1."""
    return float(-(q * np.log(q) + (1 - q) * np.log1p(-q)))


def log_loss(y: ArrayLike, p: ArrayLike, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy (natural log) of predictions ``p`` for labels ``y``.

    Parameters
    ----------
    y : array of 0/1
        Observed clicks.
    p : array of floats in [0, 1]
        Predicted click probabilities; clipped to ``[eps, 1 - eps]`` so that a
        confident wrong prediction costs a large but finite loss.
    eps : float
        Clipping margin, in (0, 0.5).

    Returns
    -------
    float
        ``-mean(y log p + (1 - y) log(1 - p))``; lower is better.
    """
    y_arr, p_arr = _labels_and_probabilities(y, p)
    check_range("eps", eps, 0.0, 0.5, low_open=True, high_open=True)
    q = np.clip(p_arr, eps, 1 - eps)
    return float(-np.mean(np.where(y_arr == 1, np.log(q), np.log1p(-q))))


def normalized_entropy(y: ArrayLike, p: ArrayLike) -> float:
    """Log loss divided by the entropy of the empirical click rate (He et al. 2014).

    The denominator is the log loss of the best constant prediction, ``mean(y)``, so
    NE = 1 means the model is no better than predicting the base rate, and lower is
    better. Unlike raw log loss, NE is comparable across traffic with different CTRs.

    Raises
    ------
    ValueError
        If ``y`` is all 0 or all 1 (the base-rate entropy is zero).
    """
    y_arr, p_arr = _labels_and_probabilities(y, p)
    base_rate = float(y_arr.mean())
    if base_rate in (0.0, 1.0):
        raise ValueError("y must contain both 0 and 1 (the base-rate entropy is zero)")
    return log_loss(y_arr, p_arr) / _binary_entropy(base_rate)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``; tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    return (last_rank - (counts - 1) / 2.0)[inverse]


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve: the chance a random click outscores a random non-click.

    Computed from ranks (Mann-Whitney U); tied scores count one half.

    Raises
    ------
    ValueError
        If ``y`` holds only one class (AUC is undefined).
    """
    y_arr, p_arr = _labels_and_probabilities(y, p)
    n_pos = int(y_arr.sum())
    n_neg = y_arr.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("y must contain both 0 and 1 for ROC AUC to be defined")
    rank_sum = float(_average_ranks(p_arr)[y_arr == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def calibration_ratio(y: ArrayLike, p: ArrayLike) -> float:
    """Sum of predicted probabilities over number of clicks; 1 is calibrated on average.

    Above 1 the model over-predicts clicks (and the auction over-charges in eCPM
    terms); below 1 it under-predicts.

    Raises
    ------
    ValueError
        If ``y`` has no clicks.
    """
    y_arr, p_arr = _labels_and_probabilities(y, p)
    clicks = int(y_arr.sum())
    if clicks == 0:
        raise ValueError("y must contain at least one click (1) for a calibration ratio")
    return float(p_arr.sum()) / clicks


class PrecisionRecallF1(NamedTuple):
    """Precision, recall and their harmonic mean F1 at one threshold."""

    precision: float
    recall: float
    f1: float


def precision_recall_f1(y: ArrayLike, p: ArrayLike, threshold: float = 0.5) -> PrecisionRecallF1:
    """Precision, recall and F1 of the decision ``p >= threshold``.

    A ratio whose denominator is zero (no predicted positives, no actual positives)
    is reported as 0.0, as scikit-learn does with ``zero_division=0``.
    """
    y_arr, p_arr = _labels_and_probabilities(y, p)
    check_range("threshold", threshold, 0.0, 1.0)
    predicted = p_arr >= threshold
    actual = y_arr == 1
    true_pos = int(np.sum(predicted & actual))
    n_predicted, n_actual = int(predicted.sum()), int(actual.sum())
    precision = true_pos / n_predicted if n_predicted else 0.0
    recall = true_pos / n_actual if n_actual else 0.0
    f1 = 2 * true_pos / (n_predicted + n_actual) if n_predicted + n_actual else 0.0
    return PrecisionRecallF1(precision, recall, f1)


def _check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"{name} must be a positive integer; got {k!r}")
    return int(k)


def _discounts(n: int) -> np.ndarray:
    """Position discounts 1 / log2(position + 1) for positions 1..n."""
    return 1.0 / np.log2(np.arange(2, n + 2))


def ndcg_at_k(relevance: ArrayLike, k: int) -> float:
    """Normalized discounted cumulative gain of the top ``k`` of one ranked list.

    Parameters
    ----------
    relevance : array of non-negative floats
        Graded relevance of the items in the order they were ranked (best first).
    k : int
        Cut-off; a list shorter than ``k`` is scored on all its items.

    Returns
    -------
    float
        DCG@k / ideal DCG@k in [0, 1], with gain ``2**rel - 1`` and discount
        ``1 / log2(position + 1)``. A list with no relevant item scores 0.0
        (scikit-learn's convention).
    """
    rel = check_nonnegative("relevance", as_1d("relevance", relevance))
    k = _check_k(k)
    gains = np.exp2(rel) - 1.0
    top = min(k, rel.size)
    ideal = float(np.sort(gains)[::-1][:top] @ _discounts(top))
    if ideal == 0.0:
        return 0.0
    return float(gains[:top] @ _discounts(top)) / ideal


def mean_ndcg_at_k(relevance: ArrayLike, scores: ArrayLike, groups: ArrayLike, k: int) -> float:
    """Mean NDCG@k over queries, ranking each query's items by descending score.

    Parameters
    ----------
    relevance : array of non-negative floats
        Graded relevance of every (query, item) row, e.g. clicks.
    scores : array of floats
        Model scores; within a query, items are ranked by descending score and ties
        keep their input order.
    groups : array
        Query id of every row (e.g. ``request_id``); rows need not be sorted.
    k : int
        Cut-off per query.

    Returns
    -------
    float
        The average of :func:`ndcg_at_k` over queries with at least one relevant
        item. Queries without any are skipped: every ranking of them is equally good,
        so counting them (as 0 or as 1) would only dilute the mean.

    Raises
    ------
    ValueError
        If no query has a relevant item.
    """
    rel = check_nonnegative("relevance", as_1d("relevance", relevance))
    score = as_1d("scores", scores)
    group = as_1d("groups", groups, dtype=None)
    check_same_length(relevance=rel, scores=score, groups=group)
    k = _check_k(k)
    codes = np.unique(group, return_inverse=True)[1].ravel()
    n_groups = int(codes.max()) + 1
    gains = np.exp2(rel) - 1.0

    def discounted_gain(order: np.ndarray) -> np.ndarray:
        sorted_codes = codes[order]
        first_row = np.searchsorted(sorted_codes, sorted_codes)
        position = np.arange(sorted_codes.size) - first_row
        in_top = position < k
        weights = gains[order][in_top] / np.log2(position[in_top] + 2.0)
        return np.bincount(sorted_codes[in_top], weights=weights, minlength=n_groups)

    dcg = discounted_gain(np.lexsort((-score, codes)))
    ideal = discounted_gain(np.lexsort((-gains, codes)))
    has_relevant = ideal > 0
    if not has_relevant.any():
        raise ValueError("relevance must be positive for at least one item of some query")
    return float(np.mean(dcg[has_relevant] / ideal[has_relevant]))


def _rank_within_groups(scores: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Rank 0, 1, ... of each row within its group by descending score (ties: row order)."""
    order = np.lexsort((np.arange(len(scores)), -scores, codes))
    first = np.searchsorted(codes[order], codes[order])
    rank = np.empty(len(scores), np.int64)
    rank[order] = np.arange(len(order)) - first
    return rank


def recall_at_k(reference_scores: ArrayLike, candidate_scores: ArrayLike, groups: ArrayLike,
                k: int, m: int) -> float:
    """How much of the reference's top ``m`` a cheap stage keeps in its top ``k``.

    For each group (a request), the share of its top-``m`` items by
    ``reference_scores`` (e.g. the heavy model's eCPM) that are among its top-``k``
    items by ``candidate_scores`` (e.g. the light model's), averaged over groups. A
    group with at most ``k`` items keeps them all; a group with fewer than ``m`` items
    is scored on the items it has. Ties are broken by position in the arrays.

    Parameters
    ----------
    reference_scores, candidate_scores : array of floats
        Scores of every (group, item) row; higher is better.
    groups : array
        Group id of every row; rows need not be sorted.
    k : int
        Items the cheap stage keeps per group (>= 1).
    m : int
        Items of the reference's ranking that matter per group (>= 1), e.g. the
        page's slots.

    Returns
    -------
    float
        Mean recall in [0, 1]; 1 means the cheap stage never loses a top-``m`` item.
    """
    reference = as_1d("reference_scores", reference_scores)
    candidate = as_1d("candidate_scores", candidate_scores)
    group = as_1d("groups", groups, dtype=None)
    check_same_length(reference_scores=reference, candidate_scores=candidate, groups=group)
    k, m = _check_k(k), _check_k(m, "m")
    codes = np.unique(group, return_inverse=True)[1].ravel()
    top_reference = _rank_within_groups(reference, codes) < m
    kept = _rank_within_groups(candidate, codes) < k
    n_groups = int(codes.max()) + 1
    found = np.bincount(codes, weights=top_reference & kept, minlength=n_groups)
    wanted = np.bincount(codes, weights=top_reference, minlength=n_groups)
    return float(np.mean(found / wanted))


def reliability_curve(
    y: ArrayLike, p: ArrayLike, bins: int = 10, strategy: str = "quantile"
) -> pd.DataFrame:
    """Observed click rate against mean prediction, per bin of predictions.

    Parameters
    ----------
    y, p : arrays
        Clicks (0/1) and predicted probabilities.
    bins : int
        Number of bins (at least 1).
    strategy : {"quantile", "uniform"}
        ``"quantile"`` puts about the same number of predictions in each bin (best
        for skewed CTR predictions); ``"uniform"`` uses equal-width bins on [0, 1].
        Bins are right-closed, as in ``sklearn.calibration.calibration_curve``.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin, in increasing order of prediction, with columns
        ``mean_predicted``, ``observed_rate`` and ``count``. A calibrated model lies
        on the diagonal ``observed_rate == mean_predicted``.
    """
    y_arr, p_arr = _labels_and_probabilities(y, p)
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer; got {bins!r}")
    if strategy == "quantile":
        edges = np.percentile(p_arr, np.linspace(0, 100, bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform'; got {strategy!r}")
    bin_id = np.searchsorted(edges[1:-1], p_arr)
    count = np.bincount(bin_id, minlength=bins)
    filled = count > 0
    return pd.DataFrame(
        {
            "mean_predicted": np.bincount(bin_id, weights=p_arr, minlength=bins)[filled]
            / count[filled],
            "observed_rate": np.bincount(bin_id, weights=y_arr, minlength=bins)[filled]
            / count[filled],
            "count": count[filled],
        }
    )


def _impression_log(impressions: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Validate an impression log's columns and values; return it unchanged."""
    if not isinstance(impressions, pd.DataFrame):
        raise ValueError(f"impressions must be a pandas DataFrame; got {type(impressions)}")
    missing = [c for c in (*IMPRESSION_COLUMNS, *extra) if c not in impressions.columns]
    if missing:
        raise ValueError(f"impressions is missing columns {missing}")
    clicked = as_1d("impressions.clicked", impressions["clicked"], allow_empty=True)
    check_labels("impressions.clicked", clicked)
    price = as_1d("impressions.price", impressions["price"], allow_empty=True)
    check_nonnegative("impressions.price", price)
    return impressions


def online_metrics(impressions: pd.DataFrame, n_requests: int) -> dict[str, float]:
    """Business and user-side metrics of an impression log.

    Parameters
    ----------
    impressions : pandas.DataFrame
        One row per ad shown, with columns ``request_id``, ``user_id``, ``clicked``
        (0/1) and ``price`` (cost per click charged; only clicked rows are billed).
        May be empty if no ad was shown.
    n_requests : int
        Number of ad requests served in the period, including those that showed no
        ad (at least the number of distinct ``request_id`` in the log).

    Returns
    -------
    dict
        - ``impressions``: ads shown.
        - ``clicks``: clicks on them.
        - ``ctr``: clicks / impressions (0.0 if nothing was shown).
        - ``revenue``: sum of ``price`` over clicked impressions (advertiser spend).
        - ``rpm``: revenue per thousand requests, ``1000 * revenue / n_requests``.
        - ``cpc``: average cost per click, revenue / clicks (0.0 without clicks).
        - ``fill_rate``: share of requests that showed at least one ad.
        - ``ads_per_request``: impressions / n_requests, the ad load users see; a
          counter metric that guards against buying revenue with user annoyance.
        - ``ads_per_user``: impressions per distinct user who saw an ad (0.0 if
          none), the exposure behind ad fatigue.
    """
    log = _impression_log(impressions)
    if isinstance(n_requests, bool) or not isinstance(n_requests, int | np.integer):
        raise ValueError(f"n_requests must be an integer; got {n_requests!r}")
    filled_requests = int(log["request_id"].nunique())
    if n_requests < max(filled_requests, 1):
        raise ValueError(
            f"n_requests must be at least 1 and at least the {filled_requests} distinct "
            f"request_id in impressions; got {n_requests}"
        )
    n_impressions = len(log)
    clicked = log["clicked"].to_numpy(dtype=float)
    clicks = int(clicked.sum())
    revenue = float(log["price"].to_numpy(dtype=float) @ clicked) if n_impressions else 0.0
    users = int(log["user_id"].nunique())
    return {
        "impressions": n_impressions,
        "clicks": clicks,
        "ctr": clicks / n_impressions if n_impressions else 0.0,
        "revenue": revenue,
        "rpm": 1000.0 * revenue / n_requests,
        "cpc": revenue / clicks if clicks else 0.0,
        "fill_rate": filled_requests / n_requests,
        "ads_per_request": n_impressions / n_requests,
        "ads_per_user": n_impressions / users if users else 0.0,
    }


def spend_by_campaign(impressions: pd.DataFrame) -> pd.DataFrame:
    """Impressions, clicks and spend per campaign.

    Parameters
    ----------
    impressions : pandas.DataFrame
        Impression log as for :func:`online_metrics`, plus a ``campaign_id`` column.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``campaign_id`` (sorted), with integer columns ``impressions`` and
        ``clicks`` and float column ``spend`` (sum of ``price`` over clicks).
    """
    log = _impression_log(impressions, extra=("campaign_id",))
    clicked = log["clicked"].to_numpy(dtype=float)
    table = pd.DataFrame(
        {
            "campaign_id": log["campaign_id"].to_numpy(),
            "impressions": 1,
            "clicks": clicked.astype(np.int64),
            "spend": log["price"].to_numpy(dtype=float) * clicked,
        }
    )
    return table.groupby("campaign_id", sort=True)[["impressions", "clicks", "spend"]].sum()
