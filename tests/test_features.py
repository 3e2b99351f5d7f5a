"""One feature function for training and serving: same rows, same features, no leaks."""

import numpy as np
import pandas as pd
import pytest

from adsys.features import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    NUMERIC_COLUMNS,
    SERVING_POSITION,
    dtypes,
    feature_arrays,
    make_features,
    to_frame,
)
from adsys.history import PRIOR_CTR, PRIOR_STRENGTH, ExposureCounter, History
from adsys.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="module")
def view(world):
    return world.view


@pytest.fixture(scope="module")
def rows(world, view) -> dict[str, np.ndarray]:
    """Impression-like rows: random users, active ads, pages, hours and slots."""
    rng = np.random.default_rng(0)
    n = 5000
    requests = world.requests(4, rng, n=n)
    return {
        "users": requests.user,
        "ads": rng.choice(np.flatnonzero(view.active_ads(4)), size=n),
        "publishers": requests.publisher,
        "hours": requests.hour,
        "positions": rng.integers(1, view.n_slots + 1, size=n),
    }


@pytest.fixture(scope="module")
def history(world, view) -> History:
    """Closed-window counts of earlier days for the ads of the first 40 campaigns, and the
    page views of a day."""
    rng = np.random.default_rng(1)
    ads = view.ads.loc[view.ads["campaign_id"] < 40, "ad_id"].to_numpy()
    shown = rng.choice(ads, size=50_000)
    users = rng.integers(0, view.n_users, size=len(shown))
    history = History(view).add(users, shown, rng.random(len(shown)) < 0.05)
    pages = world.requests(3, rng, n=50_000)
    return history.add_views(pages.user, pages.publisher)


def logit(p):
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def test_columns_dtypes_and_shape(view, rows, history):
    features = make_features(view, **rows, history=history)
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert len(features) == len(rows["users"])
    for column in FEATURE_COLUMNS:
        dtype = features[column].dtype
        if column in CATEGORICAL_COLUMNS:
            assert isinstance(dtype, pd.CategoricalDtype), column
            assert dtype == dtypes(view)[column], column
            assert features[column].notna().all(), column
        else:
            assert np.issubdtype(dtype, np.number), column
            assert np.isfinite(features[column]).all(), column
    assert features["user_topic_view_share"].between(0, 1).all()
    assert set(features["declared_interest"].unique()) <= {0, 1}
    np.testing.assert_array_equal(features["position"].astype(int), rows["positions"])
    np.testing.assert_array_equal(features["hour"].astype(int), rows["hours"])


def test_feature_arrays_and_to_frame_give_make_features(view, rows, history):
    arrays = feature_arrays(view, **rows, history=history)
    assert set(arrays) == set(FEATURE_COLUMNS)
    pd.testing.assert_frame_equal(to_frame(view, arrays),
                                  make_features(view, **rows, history=history))


def test_row_by_row_equals_batch(view, rows, history):
    """The no-skew property: a row's features do not depend on the batch around it."""
    batch = make_features(view, **rows, history=history, exposures=2)
    picked = np.random.default_rng(2).choice(len(batch), size=40, replace=False)
    one_by_one = pd.concat(
        [make_features(view, **{k: v[[i]] for k, v in rows.items()}, history=history,
                       exposures=2)
         for i in picked], ignore_index=True)
    pd.testing.assert_frame_equal(one_by_one, batch.iloc[picked].reset_index(drop=True))


def test_no_hidden_column_reaches_the_features(view, rows):
    features = make_features(view, **rows)
    hidden = {"true_quality", "quality", "interest", "user_topic_interest", "true_p",
              "relevance", "user_bias"}
    assert not hidden & set(features.columns)


def test_cold_start_ads_get_the_base_rate(view, rows, history):
    """CTR features are log-odds relative to the platform's overall CTR: an ad without
    history sits at 0 (as good as the average impression)."""
    features = make_features(view, **rows, history=history)
    campaign = view.ads["campaign_id"].to_numpy()[rows["ads"]]
    new = campaign >= 40                              # no logged history
    assert new.any() and (~new).any()
    for column in ("ad_ctr_logit", "campaign_ctr_logit"):
        np.testing.assert_allclose(features.loc[new, column], 0, atol=1e-12)
        assert features.loc[~new, column].std() > 0
    assert (features.loc[new, "ad_log_impressions"] == 0).all()
    assert (features.loc[~new, "ad_log_impressions"] > 0).all()
    no_history = make_features(view, **rows)
    for column in ("ad_ctr_logit", "campaign_ctr_logit", "user_ctr_logit",
                   "user_topic_ctr_logit"):
        np.testing.assert_allclose(no_history[column], 0, atol=1e-12)
    n_topics = len(view.topics)
    np.testing.assert_allclose(no_history["user_topic_view_share"], 1 / n_topics)
    for column in ("ad_log_impressions", "user_log_impressions", "user_log_views",
                   "user_topic_log_impressions", "log_exposures"):
        assert (no_history[column] == 0).all(), column


def test_historical_ctrs_are_smoothed_counts_relative_to_the_base_rate(view):
    m = PRIOR_STRENGTH
    ad_topic = view.ads["topic"].to_numpy()
    campaign = view.ads["campaign_id"].to_numpy()
    assert History(view).base_rate == pytest.approx(PRIOR_CTR)   # nothing logged yet
    # Two nights of counts add up: user 0 saw ad 0 1000 times (100 clicks), user 1 saw
    # ad 1 50 times (no click).
    history = History(view)
    for _ in range(2):
        history.add(np.r_[np.zeros(500, int), np.ones(25, int)],
                    np.r_[np.zeros(500, int), np.ones(25, int)],
                    np.r_[np.ones(50), np.zeros(475)])
    base = (100 + m * PRIOR_CTR) / (1050 + m)
    assert history.base_rate == pytest.approx(base)

    def relative(clicks, shown):
        return logit((np.asarray(clicks) + m * base) / (np.asarray(shown) + m)) - logit(base)

    np.testing.assert_allclose(history.ad_ctr()[:2],
                               (np.r_[100, 0] + m * base) / (np.r_[1000, 50] + m))
    features = make_features(view, [0, 1], [0, 1], [0, 0], [12, 12], 1, history)
    np.testing.assert_allclose(features["ad_ctr_logit"], relative([100, 0], [1000, 50]))
    np.testing.assert_allclose(features["ad_log_impressions"], np.log1p([1000, 50]))
    np.testing.assert_allclose(features["user_ctr_logit"], relative([100, 0], [1000, 50]))
    np.testing.assert_allclose(features["user_log_impressions"], np.log1p([1000, 50]))
    assert campaign[0] == campaign[1] and ad_topic[0] == ad_topic[1]   # in the seeded world
    np.testing.assert_allclose(features["campaign_ctr_logit"], relative(100, 1050))
    np.testing.assert_allclose(features["user_topic_ctr_logit"],
                               relative([100, 0], [1000, 50]))
    np.testing.assert_allclose(features["user_topic_log_impressions"], np.log1p([1000, 50]))
    # The better ad is above the average, the never-clicked one below it.
    assert features["ad_ctr_logit"].iloc[0] > 0 > features["ad_ctr_logit"].iloc[1]
    # A topic the user was never shown an ad of stays at the base rate.
    other = np.flatnonzero(ad_topic != ad_topic[0])[0]
    cold = make_features(view, [0], [other], [0], [12], 1, history)
    np.testing.assert_allclose(cold["user_topic_ctr_logit"], 0, atol=1e-12)


def test_view_share_is_the_smoothed_share_of_page_views(view):
    page_topic = view.publishers["topic"].to_numpy()
    n_topics = len(view.topics)
    on_topic = np.flatnonzero(page_topic == 2)[0]
    off_topic = np.flatnonzero(page_topic == 5)[0]
    history = History(view).add_views([7] * 8 + [7] * 2, [on_topic] * 8 + [off_topic] * 2)
    ad_of_topic = lambda t: int(np.flatnonzero(view.ads["topic"].to_numpy() == t)[0])  # noqa: E731
    ads = [ad_of_topic(2), ad_of_topic(5), ad_of_topic(9)]
    features = make_features(view, [7, 7, 7], ads, [0, 0, 0], [1, 1, 1], 1, history)
    np.testing.assert_allclose(features["user_topic_view_share"],
                               np.array([9, 3, 1]) / (10 + n_topics))
    np.testing.assert_allclose(features["user_log_views"], np.log1p(10))


def test_serving_position_broadcasts(view, rows):
    fixed = make_features(view, **{**rows, "positions": SERVING_POSITION})
    ones = make_features(view, **{**rows, "positions": np.ones(len(rows["users"]), int)})
    pd.testing.assert_frame_equal(fixed, ones)
    assert (fixed["position"] == 1).all()


def test_exposures_give_the_frequency_feature(view, rows):
    counter = ExposureCounter(view.n_ads)
    counter.record(rows["users"][:10], rows["ads"][:10])
    counter.record(rows["users"][:3], rows["ads"][:3])
    seen = counter.counts(rows["users"][:10], rows["ads"][:10])
    assert seen.tolist() == [2, 2, 2] + [1] * 7
    features = make_features(view, **{k: v[:10] for k, v in rows.items()}, exposures=seen)
    np.testing.assert_allclose(features["log_exposures"], np.log1p(seen))
    assert len(counter) == len(set(zip(rows["users"][:10], rows["ads"][:10], strict=True)))
    counter.reset()
    assert counter.counts(rows["users"][:3], rows["ads"][:3]).tolist() == [0, 0, 0]


def test_context_features_come_from_the_view(view, rows):
    features = make_features(view, **rows)
    ad_topic = view.ads["topic"].to_numpy()[rows["ads"]]
    page_topic = view.publishers["topic"].to_numpy()[rows["publishers"]]
    np.testing.assert_array_equal(features["page_topic_match"], ad_topic == page_topic)
    np.testing.assert_array_equal(features["declared_interest"],
                                  view.declared(rows["users"], ad_topic))
    declared = view.users["declared_topics"].to_numpy()[rows["users"]]
    np.testing.assert_array_equal(features["n_declared"],
                                  [bin(d).count("1") for d in declared])
    np.testing.assert_array_equal(features["ad_topic"].astype(str),
                                  view.label("topic", ad_topic))
    np.testing.assert_array_equal(features["age_band"].astype(str),
                                  view.label("age_band",
                                             view.users["age_band"].to_numpy()[rows["users"]]))
    np.testing.assert_array_equal(features["campaign_id"].astype(int),
                                  view.ads["campaign_id"].to_numpy()[rows["ads"]])


def test_every_numeric_column_is_listed_once():
    assert set(NUMERIC_COLUMNS).isdisjoint(CATEGORICAL_COLUMNS)
    assert len(FEATURE_COLUMNS) == len(set(FEATURE_COLUMNS))


@pytest.mark.parametrize(("change", "error", "name"), [
    ({"users": [0, 1]}, ValueError, "same length"),
    ({"hours": [24]}, ValueError, "hours"),
    ({"hours": [1.5]}, ValueError, "hours"),
    ({"positions": [0]}, ValueError, "positions"),
    ({"positions": [4]}, ValueError, "positions"),
    ({"users": [0.5]}, ValueError, "users"),
    ({"users": [0.0]}, ValueError, "users"),
    ({"ads": [-1]}, ValueError, "ads"),
    ({"publishers": [10_000]}, ValueError, "publishers"),
    ({"publishers": [-1]}, ValueError, "publishers"),
    ({"exposures": [-1]}, ValueError, "exposures"),
    ({"exposures": [np.nan]}, ValueError, "exposures"),
    ({"users": "0"}, TypeError, "users"),
])
def test_bad_inputs_raise(view, change, error, name):
    args = {"users": [0], "ads": [0], "publishers": [0], "hours": [0], "positions": [1]}
    with pytest.raises(error, match=name):
        make_features(view, **{**args, **change})


def test_bad_history_raises(world, view):
    args = ([0], [0], [0], [0], 1)
    with pytest.raises(TypeError, match="history"):
        make_features(view, *args, history={"ad_clicks": [1]})
    other = World(seed=1).view
    with pytest.raises(ValueError, match="history"):
        make_features(view, *args, history=History(other))
    with pytest.raises(ValueError, match="clicked"):
        History(view).add([0, 1], [0, 1], [0, 2])
    with pytest.raises(TypeError, match="PlatformView"):
        make_features(world, *args)
