"""One feature function for training and serving: same rows, same features, no leaks."""

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest

from adsys.features import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    PRIOR_CTR,
    PRIOR_STRENGTH,
    SERVING_POSITION,
    count_ad_stats,
    make_features,
)
from adsys.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="module")
def rows(world) -> dict[str, np.ndarray]:
    """Impression-like rows: random users, active ads, pages, hours and slots."""
    rng = np.random.default_rng(0)
    n = 5000
    requests = world.requests(4, rng, n=n)
    return {
        "users": requests.user,
        "ads": rng.choice(np.flatnonzero(world.active_ads(4)), size=n),
        "publishers": requests.publisher,
        "hours": requests.hour,
        "positions": rng.integers(1, world.config.n_slots + 1, size=n),
    }


@pytest.fixture(scope="module")
def stats(world) -> pd.DataFrame:
    """Logged counts of earlier days for the ads of the first 40 campaigns."""
    rng = np.random.default_rng(1)
    ads = world.ads.loc[world.ads["campaign_id"] < 40, "ad_id"].to_numpy()
    shown = rng.choice(ads, size=50_000)
    return count_ad_stats(shown, rng.random(len(shown)) < 0.05)


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_columns_dtypes_and_shape(world, rows, stats):
    features = make_features(world, **rows, ad_stats=stats)
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert len(features) == len(rows["users"])
    for column in FEATURE_COLUMNS:
        dtype = features[column].dtype
        if column in CATEGORICAL_COLUMNS:
            assert isinstance(dtype, pd.CategoricalDtype), column
            assert features[column].notna().all(), column
        else:
            assert np.issubdtype(dtype, np.number), column
            assert np.isfinite(features[column]).all(), column
    assert features["user_topic_interest"].between(0, 1).all()
    np.testing.assert_allclose(features["hour_sin"] ** 2 + features["hour_cos"] ** 2, 1)


def test_row_by_row_equals_batch(world, rows, stats):
    """The no-skew property: a row's features do not depend on the batch around it."""
    batch = make_features(world, **rows, ad_stats=stats)
    picked = np.random.default_rng(2).choice(len(batch), size=40, replace=False)
    one_by_one = pd.concat(
        [make_features(world, **{k: v[[i]] for k, v in rows.items()}, ad_stats=stats)
         for i in picked], ignore_index=True)
    pd.testing.assert_frame_equal(one_by_one, batch.iloc[picked].reset_index(drop=True))


def test_no_feature_depends_on_the_hidden_truth(world, rows, stats):
    """Changing the world's true ad quality and click model leaves the features unchanged."""
    assert "true_quality" not in make_features(world, **rows).columns
    other = copy.deepcopy(world)
    other.ads["true_quality"] = np.random.default_rng(3).normal(0, 5, len(other.ads))
    other.config = dataclasses.replace(world.config, base_logit=-1.0, interest_weight=9.0)
    pd.testing.assert_frame_equal(make_features(other, **rows, ad_stats=stats),
                                  make_features(world, **rows, ad_stats=stats))


def test_cold_start_ads_get_the_prior(world, rows, stats):
    features = make_features(world, **rows, ad_stats=stats)
    campaign = world.ads["campaign_id"].to_numpy()[rows["ads"]]
    new = campaign >= 40                              # no logged history
    assert new.any() and (~new).any()
    for column in ("ad_ctr_logit", "campaign_ctr_logit"):
        np.testing.assert_allclose(features.loc[new, column], logit(PRIOR_CTR))
        assert features.loc[~new, column].std() > 0
    assert (features.loc[new, "ad_log_impressions"] == 0).all()
    assert (features.loc[~new, "ad_log_impressions"] > 0).all()
    no_stats = make_features(world, **rows)
    np.testing.assert_allclose(no_stats["ad_ctr_logit"], logit(PRIOR_CTR))


def test_historical_ctr_is_smoothed_counts(world):
    stats = pd.DataFrame({"ad_id": [0, 0, 1], "impressions": [300, 700, 50],
                          "clicks": [30, 70, 0]})      # rows of the same ad add up
    features = make_features(world, [0, 0], [0, 1], [0, 0], [12, 12], 1, ad_stats=stats)
    m = PRIOR_STRENGTH
    expected_ad = [(100 + m * PRIOR_CTR) / (1000 + m), (0 + m * PRIOR_CTR) / (50 + m)]
    np.testing.assert_allclose(features["ad_ctr_logit"], [logit(p) for p in expected_ad])
    np.testing.assert_allclose(features["ad_log_impressions"], np.log1p([1000, 50]))


def test_serving_position_broadcasts(world, rows):
    fixed = make_features(world, **{**rows, "positions": SERVING_POSITION})
    ones = make_features(world, **{**rows, "positions": np.ones(len(rows["users"]), int)})
    pd.testing.assert_frame_equal(fixed, ones)
    assert (fixed["position"] == 1).all()


def test_context_features(world, rows):
    features = make_features(world, **rows)
    ad_topic = world.ads["topic"].to_numpy()[rows["ads"]]
    page_topic = world.publishers["topic"].to_numpy()[rows["publishers"]]
    np.testing.assert_array_equal(features["page_topic_match"], ad_topic == page_topic)
    np.testing.assert_array_equal(features["user_topic_interest"],
                                  world.interests[rows["users"], ad_topic])
    np.testing.assert_array_equal(
        features["user_top_topic_match"],
        world.users["top_topic"].to_numpy()[rows["users"]] == ad_topic)
    np.testing.assert_array_equal(features["ad_topic"].astype(str),
                                  world.label("topic", ad_topic))


@pytest.mark.parametrize(("change", "name"), [
    ({"users": [0, 1]}, "same length"),
    ({"hours": [24]}, "hours"),
    ({"positions": [0]}, "positions"),
    ({"users": [0.5]}, "users"),
    ({"ads": [-1]}, "ads"),
    ({"publishers": [10_000]}, "publishers"),
])
def test_bad_inputs_raise(world, change, name):
    args = {"users": [0], "ads": [0], "publishers": [0], "hours": [0], "positions": [1]}
    with pytest.raises(ValueError, match=name):
        make_features(world, **{**args, **change})


def test_bad_ad_stats_raise(world):
    args = ([0], [0], [0], [0], 1)
    with pytest.raises(ValueError, match="ad_stats"):
        make_features(world, *args, ad_stats=pd.DataFrame({"ad_id": [0]}))
    with pytest.raises(ValueError, match="ad_stats.clicks"):
        make_features(world, *args, ad_stats=pd.DataFrame(
            {"ad_id": [0], "impressions": [1], "clicks": [2]}))
    with pytest.raises(ValueError, match="clicked"):
        count_ad_stats([0, 1], [0, 2])
