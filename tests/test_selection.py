"""The selector keeps the top-K candidates of every request by a cheap light eCPM."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.baseline import serve_random
from adsys.features import make_features
from adsys.history import PRIOR_CTR, PRIOR_STRENGTH, History
from adsys.index import AdIndex
from adsys.selection import (
    LIGHT_CROSSES,
    LIGHT_FEATURES,
    LightModel,
    Selector,
    top_k_per_group,
)
from adsys.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="module")
def requests(world):
    return world.requests(0, np.random.default_rng(0), n=100)


@pytest.fixture(scope="module")
def candidates(world, requests) -> tuple[np.ndarray, np.ndarray]:
    return AdIndex(world.view).eligible(requests, 0)


@pytest.fixture(scope="module")
def history(world) -> History:
    """A fake closed-window log: every ad shown a random number of times, plus page views."""
    rng = np.random.default_rng(1)
    view = world.view
    ads = rng.integers(0, view.n_ads, size=200_000)
    users = rng.integers(0, view.n_users, size=len(ads))
    history = History(view).add(users, ads, rng.random(len(ads)) < 0.03)
    views = world.requests(0, rng, n=50_000)
    return history.add_views(views.user, views.publisher)


@pytest.fixture(scope="module")
def random_log(world, history) -> tuple[pd.DataFrame, pd.Series]:
    """Features (with the history) and clicks of random-server traffic."""
    log = serve_random(world, 1, 20_000, np.random.default_rng(2), with_truth=False)
    features = make_features(world.view, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"], history, log["exposures"])
    return features, log["clicked"]


@pytest.fixture(scope="module")
def light(random_log) -> LightModel:
    """A light model fitted on random-server traffic."""
    return LightModel().fit(*random_log)


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 60), seed=st.integers(0, 2**32 - 1), fitted=st.booleans())
def test_select_keeps_the_top_k_of_every_request(world, requests, candidates, history, light,
                                                 k, seed, fitted):
    rng = np.random.default_rng(seed)
    selector = Selector(world.view, history, light if fitted else None)
    request_pos, ad_id = candidates
    shuffle = rng.permutation(len(ad_id))          # the result must not depend on input order
    request_pos, ad_id = request_pos[shuffle], ad_id[shuffle]
    kept_pos, kept_ad = selector.select(requests, request_pos, ad_id, k)

    n_candidates = np.bincount(request_pos)
    np.testing.assert_array_equal(np.bincount(kept_pos, minlength=len(n_candidates)),
                                  np.minimum(k, n_candidates))
    assert np.all(np.diff(kept_pos) >= 0)                          # sorted by request
    kept = set(zip(kept_pos.tolist(), kept_ad.tolist(), strict=True))
    assert len(kept) == len(kept_pos)
    assert kept <= set(zip(request_pos.tolist(), ad_id.tolist(), strict=True))
    # Within a request the kept ads come best first, and no dropped ad scores higher
    # than a kept one (scores are compared to about 1e-5, the precision of the sort key).
    score = pd.Series(selector.score(requests, request_pos, ad_id).astype(float),
                      index=pd.MultiIndex.from_arrays([request_pos, ad_id]))
    kept_score = score.loc[list(zip(kept_pos, kept_ad, strict=True))].to_numpy()
    same_request = kept_pos[1:] == kept_pos[:-1]
    assert np.all(np.diff(kept_score)[same_request] <= 1e-4 * kept_score[1:][same_request])
    is_kept = np.array([pair in kept for pair in score.index])
    lowest_kept = pd.Series(kept_score).groupby(kept_pos).min()
    highest_dropped = score[~is_kept].groupby(level=0).max()
    common = highest_dropped.index
    assert np.all(highest_dropped.to_numpy() <= lowest_kept[common].to_numpy() * (1 + 1e-4))


def test_k_at_least_the_candidates_keeps_all(world, requests, candidates):
    request_pos, ad_id = candidates
    kept_pos, kept_ad = Selector(world.view).select(requests, request_pos, ad_id, k=10_000)
    assert sorted(zip(kept_pos, kept_ad, strict=True)) == sorted(
        zip(request_pos, ad_id, strict=True))


def test_numpy_integer_k_and_no_candidates(world, requests):
    selector = Selector(world.view)
    kept_pos, kept_ad = selector.select(requests, np.zeros(0, np.int32), np.zeros(0, np.int32),
                                        k=np.int64(5))
    assert kept_pos.size == kept_ad.size == 0


def test_without_history_every_ad_gets_the_prior(world, requests, candidates):
    view = world.view
    selector = Selector(view)
    request_pos, ad_id = candidates
    np.testing.assert_allclose(selector.light_ctr(requests, request_pos, ad_id), PRIOR_CTR,
                               rtol=1e-5)
    bids = view.campaigns["max_cpc"].to_numpy()[view.ads["campaign_id"].to_numpy()[ad_id]]
    np.testing.assert_allclose(selector.score(requests, request_pos, ad_id),
                               1000 * PRIOR_CTR * bids, rtol=1e-5)


def test_the_user_blind_score_is_the_smoothed_ad_ctr(world, requests, candidates):
    view = world.view
    history = History(view)
    # Ad 0: 2000 impressions, 200 clicks in two nights; ad 1: 20 impressions, all clicked.
    for _ in range(2):
        history.add(np.zeros(1010, int), np.r_[np.zeros(1000, int), np.ones(10, int)],
                    np.r_[np.ones(100), np.zeros(900), np.ones(10)])
    m = PRIOR_STRENGTH
    base = (220 + m * PRIOR_CTR) / (2020 + m)          # the platform's overall CTR
    assert history.base_rate == pytest.approx(base)
    expected = [(200 + m * base) / (2000 + m), (20 + m * base) / (20 + m), base]
    np.testing.assert_allclose(history.ad_ctr()[:3], expected)
    selector = Selector(view, history)                  # no light model: user-blind
    np.testing.assert_allclose(selector.light_ctr(requests, [0, 0, 0], [0, 1, 2]), expected,
                               rtol=1e-5)
    # many impressions: close to the observed rate; few: close to the base rate
    assert abs(history.ad_ctr()[0] - 0.1) < 0.01 and history.ad_ctr()[1] < 0.7
    request_pos, ad_id = candidates
    np.testing.assert_allclose(selector.light_ctr(requests, request_pos, ad_id),
                               history.ad_ctr()[ad_id], rtol=1e-5)
    explicit = Selector(view, history, LightModel.ad_only(history.base_rate))
    np.testing.assert_allclose(explicit.light_ctr(requests, request_pos, ad_id),
                               selector.light_ctr(requests, request_pos, ad_id))


def test_light_ctr_is_the_logistic_model_on_the_serving_features(world, requests, candidates,
                                                                  history, light):
    """The folded tables give what the light model says about make_features rows at
    position 1, and the model uses the user, not only the ad."""
    request_pos, ad_id = candidates
    selector = Selector(world.view, history, light)
    features = make_features(world.view, requests.user[request_pos], ad_id,
                             requests.publisher[request_pos], requests.hour[request_pos], 1,
                             history)
    logit = light.intercept + sum(light.weights[name] * features[name].to_numpy(float)
                                  for name in LIGHT_FEATURES)
    np.testing.assert_allclose(selector.light_ctr(requests, request_pos, ad_id),
                               1 / (1 + np.exp(-logit)), rtol=1e-4)
    assert set(light.weights) == set(LIGHT_FEATURES)
    assert light.weights["declared_interest"] > 0      # declared interests predict clicks


def test_topic_crosses_fold_into_the_same_two_lookups(world, requests, candidates, history,
                                                      random_log):
    """With every cross, the folded tables still give the model's own logit: its
    numeric weights plus one weight per (value, ad topic) of each crossed column."""
    crossed = LightModel(crosses=LIGHT_CROSSES).fit(*random_log)
    request_pos, ad_id = candidates
    features = make_features(world.view, requests.user[request_pos], ad_id,
                             requests.publisher[request_pos], requests.hour[request_pos], 1,
                             history)
    topic = features["ad_topic"].cat.codes.to_numpy()
    logit = crossed.intercept + sum(crossed.weights[name] * features[name].to_numpy(float)
                                    for name in LIGHT_FEATURES)
    for column in LIGHT_CROSSES:
        logit = logit + crossed.cross_weights[column][features[column].cat.codes, topic]
    np.testing.assert_allclose(Selector(world.view, history, crossed).light_ctr(
        requests, request_pos, ad_id), 1 / (1 + np.exp(-logit)), rtol=1e-4)
    assert {c: w.shape for c, w in crossed.cross_weights.items()} == {
        c: (len(features[c].cat.categories), len(world.view.topics)) for c in LIGHT_CROSSES}


def test_a_topic_cross_is_scikit_learns_logistic_regression_on_one_hot_cells(random_log):
    """The fit equals scikit-learn's on the light features, the slot and an explicit
    one-hot of the (hour, ad topic) cells."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    features, clicked = (part.iloc[:8000] for part in random_log)
    model = LightModel(crosses=("hour",)).fit(features, clicked)
    n_topics = len(features["ad_topic"].cat.categories)
    cell = (features["hour"].cat.codes.to_numpy(np.int64) * n_topics
            + features["ad_topic"].cat.codes.to_numpy(np.int64))
    encoder = OneHotEncoder(categories=[np.arange(24 * n_topics)], sparse_output=False)
    slots = pd.get_dummies(features["position"], drop_first=True, dtype=float).to_numpy()
    x = np.column_stack([features[list(LIGHT_FEATURES)].to_numpy(float), slots,
                         encoder.fit_transform(cell[:, None])])
    reference = LogisticRegression(solver="newton-cholesky").fit(x, clicked)
    assert model.intercept == pytest.approx(reference.intercept_[0], rel=1e-6)
    np.testing.assert_allclose(model.cross_weights["hour"].ravel(),
                               reference.coef_[0][len(LIGHT_FEATURES) + slots.shape[1]:],
                               rtol=1e-5, atol=1e-8)


def test_downsampling_shifts_the_light_intercept(world, history):
    log = serve_random(world, 1, 5000, np.random.default_rng(3), with_truth=False)
    features = make_features(world.view, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"], history)
    full = LightModel().fit(features, log["clicked"])
    shifted = LightModel(downsampling_rate=0.25).fit(features, log["clicked"])
    assert shifted.intercept == pytest.approx(full.intercept + np.log(0.25))
    assert shifted.weights == pytest.approx(full.weights)


def test_top_k_per_group_breaks_ties_by_item():
    groups = np.array([1, 1, 1, 0, 0, 1])
    scores = np.array([0.5, 0.5, 0.9, 0.1, 0.2, 0.5])
    items = np.array([7, 3, 9, 4, 2, 5])
    kept_groups, kept_items = top_k_per_group(groups, scores, items, 3)
    assert kept_groups.tolist() == [0, 0, 1, 1, 1]
    assert kept_items.tolist() == [2, 4, 9, 3, 5]
    empty = top_k_per_group(np.zeros(0, int), np.zeros(0), np.zeros(0, int), 2)
    assert all(part.size == 0 for part in empty)


def test_bad_inputs_raise(world, requests, candidates, history):
    request_pos, ad_id = candidates
    view = world.view
    selector = Selector(view)
    with pytest.raises(ValueError, match="k must"):
        selector.select(requests, request_pos, ad_id, k=0)
    with pytest.raises(TypeError, match="k must"):
        selector.select(requests, request_pos, ad_id, k=2.0)
    with pytest.raises(ValueError, match="same length"):
        selector.select(requests, request_pos[:-1], ad_id, k=3)
    with pytest.raises(ValueError, match="ad_id"):
        selector.select(requests, request_pos, ad_id + view.n_ads, k=3)
    with pytest.raises(ValueError, match="request_pos"):
        selector.select(requests, request_pos - 1, ad_id, k=3)
    with pytest.raises(ValueError, match="request_pos"):
        selector.select(requests, request_pos + len(requests), ad_id, k=3)
    with pytest.raises(TypeError, match="requests"):
        selector.select(requests.to_frame(), request_pos, ad_id, k=3)
    with pytest.raises(ValueError, match="ad_id"):
        selector.score(requests, [0], [0.5])
    with pytest.raises(ValueError, match="model"):
        Selector(view, history, LightModel())
    with pytest.raises(TypeError, match="PlatformView"):
        Selector(world)
    with pytest.raises(ValueError, match="C"):
        LightModel(C=0)
    with pytest.raises(ValueError, match="downsampling_rate"):
        LightModel(downsampling_rate=0)
    with pytest.raises(TypeError, match="features"):
        LightModel().fit(np.zeros((3, 6)), [0, 1, 0])
    with pytest.raises(ValueError, match="crosses"):
        LightModel(crosses=("region",))
    with pytest.raises(ValueError, match="crosses"):
        LightModel(crosses=("hour", "hour"))
    with pytest.raises(TypeError, match="crosses"):
        LightModel(crosses="hour")
    with pytest.raises(TypeError, match="crosses"):
        LightModel(crosses=None)
