"""Offline metrics against scikit-learn, their invariants, and online metrics by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from adsys import metrics

FLOAT_EPS = float(np.finfo(float).eps)


def tied_sample(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities on a coarse grid (many ties, includes 0 and 1)."""
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 21, n) / 20
    y = (rng.random(n) < p).astype(int)
    y[:2] = [0, 1]
    return y, p


def continuous_sample(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from skewed, CTR-like probabilities."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-3, 1, n)))
    return (rng.random(n) < p).astype(int), p


# Hypothesis data: (label, probability) pairs with ties, both classes present.
labelled = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])),
    min_size=2,
    max_size=60,
).filter(lambda rows: len({label for label, _ in rows}) == 2)


# --- agreement with scikit-learn ------------------------------------------------------


@pytest.mark.parametrize("sample", [tied_sample, continuous_sample])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_loss_matches_sklearn(sample, seed):
    y, p = sample(seed)
    # sklearn clips at machine epsilon; with the same eps the two agree even at p in {0, 1}.
    assert metrics.log_loss(y, p, eps=FLOAT_EPS) == pytest.approx(
        skm.log_loss(y, p, labels=[0, 1]), rel=1e-12
    )


@settings(max_examples=200, deadline=None)
@given(labelled)
def test_roc_auc_matches_sklearn_with_ties(rows):
    y, p = np.array(rows).T
    assert metrics.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_auc_matches_sklearn_on_large_samples(seed):
    y, p = continuous_sample(seed, n=20_000)
    assert metrics.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("sample", [tied_sample, continuous_sample])
def test_precision_recall_f1_matches_sklearn(sample, threshold):
    y, p = sample(3)
    y_hat = (p >= threshold).astype(int)
    got = metrics.precision_recall_f1(y, p, threshold=threshold)
    assert got.precision == pytest.approx(skm.precision_score(y, y_hat, zero_division=0))
    assert got.recall == pytest.approx(skm.recall_score(y, y_hat, zero_division=0))
    assert got.f1 == pytest.approx(skm.f1_score(y, y_hat, zero_division=0))


def test_precision_recall_f1_without_positive_predictions_is_zero():
    precision, recall, f1 = metrics.precision_recall_f1([0, 1, 1], [0.1, 0.2, 0.3], 0.9)
    assert (precision, recall, f1) == (0.0, 0.0, 0.0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=2, max_size=15).filter(any),
    st.integers(1, 20),
)
def test_ndcg_at_k_matches_sklearn_exponential_gain(relevance, k):
    rel = np.array(relevance, dtype=float)
    # sklearn uses the relevance itself as the gain: feed it 2**rel - 1, and scores
    # that rank the items in the given order without ties.
    scores = np.arange(rel.size, 0, -1)
    expected = skm.ndcg_score([2**rel - 1], [scores], k=k)
    assert metrics.ndcg_at_k(rel, k) == pytest.approx(expected, abs=1e-12)


def test_ndcg_at_k_reference_values():
    assert metrics.ndcg_at_k([1, 0], 2) == 1.0
    assert metrics.ndcg_at_k([0, 1], 2) == pytest.approx(1 / math.log2(3))
    assert metrics.ndcg_at_k([0, 1], 1) == 0.0
    assert metrics.ndcg_at_k([0, 0, 0], 3) == 0.0
    # Gain 2**rel - 1: (3 + 7 / log2 3) / (7 + 3 / log2 3).
    assert metrics.ndcg_at_k([2, 3], 5) == pytest.approx(
        (3 + 7 / math.log2(3)) / (7 + 3 / math.log2(3))
    )


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_mean_ndcg_matches_sklearn_on_shuffled_queries(k):
    rng = np.random.default_rng(k)
    n_queries, per_query = 40, 8
    rel = rng.integers(0, 3, (n_queries, per_query)).astype(float)
    rel[:, 0] = np.maximum(rel[:, 0], 1)  # every query has a relevant item
    scores = rng.normal(size=rel.shape)
    groups = np.repeat(1000 + 7 * np.arange(n_queries), per_query)  # request ids
    shuffle = rng.permutation(rel.size)
    got = metrics.mean_ndcg_at_k(
        rel.ravel()[shuffle], scores.ravel()[shuffle], groups[shuffle], k=k
    )
    assert got == pytest.approx(skm.ndcg_score(2**rel - 1, scores, k=k), abs=1e-12)


@pytest.mark.parametrize("metric", ["mean_ndcg_at_k", "recall_at_k"])
def test_grouped_metrics_accept_string_query_ids(metric):
    args = {"mean_ndcg_at_k": ([1, 0, 0, 1], [0.9, 0.1, 0.8, 0.2]),
            "recall_at_k": ([0.9, 0.1, 0.8, 0.2], [0.1, 0.9, 0.8, 0.2])}[metric]
    kwargs = {"mean_ndcg_at_k": {"k": 1}, "recall_at_k": {"k": 1, "m": 1}}[metric]
    function = getattr(metrics, metric)
    numeric = function(*args, [1, 1, 2, 2], **kwargs)
    named = function(*args, ["req-a", "req-a", "req-b", "req-b"], **kwargs)
    assert named == numeric


def test_mean_ndcg_skips_queries_without_relevant_items_and_keeps_tie_order():
    relevance = [1, 0, 0, 0, 0, 1]
    scores = [0.9, 0.1, 0.5, 0.5, 0.5, 0.5]
    groups = [1, 1, 2, 2, 3, 3]
    # Query 1 is ranked perfectly, query 2 has no click (skipped), and in query 3 the
    # tied click stays second: its NDCG is 1 / log2(3).
    got = metrics.mean_ndcg_at_k(relevance, scores, groups, k=2)
    assert got == pytest.approx((1 + 1 / math.log2(3)) / 2)


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
@pytest.mark.parametrize("sample", [tied_sample, continuous_sample])
def test_reliability_curve_matches_sklearn(sample, strategy):
    y, p = sample(4)
    curve = metrics.reliability_curve(y, p, bins=10, strategy=strategy)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy=strategy)
    assert list(curve.columns) == ["mean_predicted", "observed_rate", "count"]
    np.testing.assert_allclose(curve["observed_rate"], observed, atol=1e-12)
    np.testing.assert_allclose(curve["mean_predicted"], predicted, atol=1e-12)
    assert curve["count"].sum() == len(y)
    assert (curve["count"] > 0).all()
    assert curve["mean_predicted"].is_monotonic_increasing


# --- properties -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_is_rank_based_but_log_loss_is_not(seed):
    y, p = continuous_sample(seed)
    squashed = p**3  # strictly increasing on [0, 1]
    assert metrics.roc_auc(y, squashed) == pytest.approx(metrics.roc_auc(y, p), abs=1e-12)
    assert metrics.log_loss(y, squashed) > metrics.log_loss(y, p) + 0.01


@settings(max_examples=100, deadline=None)
@given(labelled)
def test_normalized_entropy_of_base_rate_predictor_is_one(rows):
    y = np.array([label for label, _ in rows])
    assert metrics.normalized_entropy(y, np.full(y.size, y.mean())) == pytest.approx(1.0)


def test_normalized_entropy_is_below_one_for_an_informative_model():
    y, p = continuous_sample(0, n=20_000)
    assert metrics.normalized_entropy(y, p) < 0.95
    base = y.mean()
    entropy = -(base * math.log(base) + (1 - base) * math.log(1 - base))
    assert metrics.normalized_entropy(y, p) == pytest.approx(metrics.log_loss(y, p) / entropy)


@pytest.mark.parametrize("c", [0.25, 0.5, 0.9, 1.0])
def test_calibration_ratio_scales_with_predictions(c):
    y, p = continuous_sample(5)
    assert metrics.calibration_ratio(y, c * p) == pytest.approx(c * metrics.calibration_ratio(y, p))
    assert metrics.calibration_ratio(y, p) == pytest.approx(p.sum() / y.sum())


def test_true_probabilities_are_calibrated_on_average():
    y, p = continuous_sample(6, n=200_000)
    assert metrics.calibration_ratio(y, p) == pytest.approx(1.0, abs=0.03)
    curve = metrics.reliability_curve(y, p, bins=5)
    np.testing.assert_allclose(curve["observed_rate"], curve["mean_predicted"], rtol=0.1)


# --- input validation -----------------------------------------------------------------

LABEL_PROB_FUNCTIONS = [
    metrics.log_loss,
    metrics.normalized_entropy,
    metrics.roc_auc,
    metrics.calibration_ratio,
    metrics.precision_recall_f1,
    metrics.reliability_curve,
]

BAD_INPUTS = [
    pytest.param([], [], r"^y must not be empty", id="empty"),
    pytest.param([0, 1], [0.2, 1.5], r"^p must lie in \[0, 1\]", id="p-above-1"),
    pytest.param([0, 1], [-0.1, 0.5], r"^p must lie in \[0, 1\]", id="p-negative"),
    pytest.param([0, 2], [0.2, 0.5], r"^y must hold only 0 and 1", id="y-not-binary"),
    pytest.param([0, 1, 1], [0.2, 0.5], r"y has 3, p has 2", id="lengths"),
    pytest.param([0, 1], [np.nan, 0.5], r"^p must hold finite", id="p-nan"),
    pytest.param([0, np.inf], [0.2, 0.5], r"^y must hold finite", id="y-inf"),
    pytest.param([[0, 1]], [[0.2, 0.5]], r"^y must be one-dimensional", id="2d"),
]


@pytest.mark.parametrize("y, p, message", BAD_INPUTS)
@pytest.mark.parametrize("function", LABEL_PROB_FUNCTIONS, ids=lambda f: f.__name__)
def test_bad_labels_or_probabilities_raise_naming_the_argument(function, y, p, message):
    with pytest.raises(ValueError, match=message):
        function(y, p)


def test_empty_p_is_named():
    with pytest.raises(ValueError, match=r"^p must not be empty"):
        metrics.log_loss([1], [])


@pytest.mark.parametrize("function", [metrics.normalized_entropy, metrics.roc_auc])
@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1, 1]])
def test_single_class_raises_naming_y(function, y):
    with pytest.raises(ValueError, match=r"^y must contain both 0 and 1"):
        function(y, [0.1, 0.5, 0.9])


def test_calibration_ratio_without_clicks_raises():
    with pytest.raises(ValueError, match=r"^y must contain at least one click"):
        metrics.calibration_ratio([0, 0], [0.1, 0.2])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.log_loss([0, 1], [0.2, 0.5], eps=0.0), r"^eps must be in"),
        (lambda: metrics.precision_recall_f1([0, 1], [0.2, 0.5], 1.2), r"^threshold must be"),
        (lambda: metrics.reliability_curve([0, 1], [0.2, 0.5], bins=0), r"^bins must be"),
        (lambda: metrics.reliability_curve([0, 1], [0.2, 0.5], strategy="x"), r"^strategy"),
        (lambda: metrics.ndcg_at_k([1, -1], 2), r"^relevance must be >= 0"),
        (lambda: metrics.ndcg_at_k([], 2), r"^relevance must not be empty"),
        (lambda: metrics.ndcg_at_k([1, np.nan], 2), r"^relevance must hold finite"),
        (lambda: metrics.ndcg_at_k([1, 0], 0), r"^k must be a positive integer"),
        (lambda: metrics.ndcg_at_k([1, 0], 1.5), r"^k must be a positive integer"),
        (lambda: metrics.mean_ndcg_at_k([1, 0], [0.1], [1, 1], 2), r"scores has 1"),
        (lambda: metrics.mean_ndcg_at_k([1, 0], [0.1, np.inf], [1, 1], 2), r"^scores must"),
        (lambda: metrics.mean_ndcg_at_k([0, 0], [0.1, 0.2], [1, 2], 2), r"^relevance must be"),
    ],
)
def test_other_bad_arguments_raise_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- online metrics -------------------------------------------------------------------


@pytest.fixture
def impressions() -> pd.DataFrame:
    # Four requests with ads (r1 has two slots) out of five served; price is the GSP
    # cost per click set at auction time and is only billed on a click.
    return pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2", "r3", "r4"],
            "user_id": [10, 10, 11, 10, 12],
            "campaign_id": ["c2", "c1", "c1", "c2", "c1"],
            "clicked": [1, 0, 1, 0, 1],
            "price": [0.50, 0.30, 0.20, 0.40, 0.10],
        }
    )


def test_online_metrics_by_hand(impressions):
    got = metrics.online_metrics(impressions, n_requests=5)
    assert got == pytest.approx(
        {
            "impressions": 5,
            "clicks": 3,
            "ctr": 0.6,
            "revenue": 0.8,
            "rpm": 160.0,
            "cpc": 0.8 / 3,
            "fill_rate": 0.8,
            "ads_per_request": 1.0,
            "ads_per_user": 5 / 3,
        }
    )


def test_online_metrics_of_an_empty_log_are_zero(impressions):
    got = metrics.online_metrics(impressions.iloc[:0], n_requests=10)
    assert got["impressions"] == got["clicks"] == 0
    assert got["ctr"] == got["revenue"] == got["rpm"] == got["cpc"] == got["fill_rate"] == 0.0


def test_spend_by_campaign_by_hand(impressions):
    table = metrics.spend_by_campaign(impressions)
    assert table.index.tolist() == ["c1", "c2"]
    assert table["impressions"].tolist() == [3, 2]
    assert table["clicks"].tolist() == [2, 1]
    np.testing.assert_allclose(table["spend"], [0.3, 0.5])
    assert table["spend"].sum() == pytest.approx(
        metrics.online_metrics(impressions, n_requests=5)["revenue"]
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda df: df.drop(columns="price"), r"^impressions is missing columns \['price'\]"),
        (lambda df: df.assign(clicked=[1, 0, 2, 0, 1]), r"^impressions.clicked must hold only"),
        (
            lambda df: df.assign(price=[0.5, -0.1, 0.2, 0.4, 0.1]),
            r"^impressions.price must be >= 0",
        ),
        (lambda df: df.assign(price=[0.5, np.nan, 0.2, 0.4, 0.1]), r"^impressions.price must"),
        (lambda df: df.to_dict(), r"^impressions must be a pandas DataFrame"),
    ],
)
def test_bad_impression_logs_raise(impressions, change, message):
    with pytest.raises(ValueError, match=message):
        metrics.online_metrics(change(impressions), n_requests=5)
    with pytest.raises(ValueError, match=message):
        metrics.spend_by_campaign(change(impressions))


@pytest.mark.parametrize("n_requests", [3, 0, 5.0, True])
def test_online_metrics_rejects_bad_request_counts(impressions, n_requests):
    with pytest.raises(ValueError, match=r"^n_requests must"):
        metrics.online_metrics(impressions, n_requests=n_requests)


def test_spend_by_campaign_needs_campaign_id(impressions):
    with pytest.raises(ValueError, match=r"missing columns \['campaign_id'\]"):
        metrics.spend_by_campaign(impressions.drop(columns="campaign_id"))
