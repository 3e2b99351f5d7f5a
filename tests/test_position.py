"""Position bias: the examination curve is recovered from randomized slots, and the
corrections give calibrated position-1 predictions where naive training does not."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from adsys.baseline import serve_random, serve_shuffled
from adsys.events import FEATURE_PREFIX
from adsys.history import ExposureCounter
from adsys.position import (
    FixedPositionModel,
    at_position,
    inverse_propensity_weights,
    relative_examination,
    relative_examination_interval,
)
from adsys.prediction import LogisticClickModel
from adsys.serving import AdServer
from adsys.simulate import bootstrap
from adsys.world import World, WorldConfig

SLOTS = np.arange(1, 4)


@pytest.fixture(scope="module")
def world() -> World:
    """A small world with more clicks per impression than the default, for tight tests."""
    return World(WorldConfig.load(n_users=5000, n_advertisers=100, base_logit=-5.0), seed=1)


@pytest.fixture(scope="module")
def platform(world):
    """A bootstrapped platform: the first models and history, from random traffic."""
    rng = np.random.default_rng(0)
    models, history, _ = bootstrap(world, rng, 20_000,
                                   functools.partial(LogisticClickModel, max_iter=300),
                                   browsing_days=1)
    return models, history


def served(world, platform, day: int, n: int, seed: int, share: float = 0.0) -> pd.DataFrame:
    models, history = platform
    server = AdServer(world.view, models.heavy, history, ExposureCounter(world.view.n_ads),
                      models.light, k=10, reserve=1.0)
    rng = np.random.default_rng(seed)
    return serve_shuffled(world, server, world.requests(day, rng, n), day, rng, share=share)


def features(log: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in log if c.startswith(FEATURE_PREFIX)]
    return log[columns].rename(columns=lambda c: c[len(FEATURE_PREFIX):])


def true_at_slot_1(world, log: pd.DataFrame, day: int) -> np.ndarray:
    return world.click_probability(log["user_id"].to_numpy(), log["ad_id"].to_numpy(),
                                   log["publisher_id"].to_numpy(), log["hour"].to_numpy(), 1,
                                   day, log["exposures"].to_numpy())


# ----- relative_examination -----------------------------------------------------------
def test_relative_examination_is_the_ctr_of_each_slot_over_slot_1():
    positions = np.repeat([1, 2, 3], 100)
    clicked = np.r_[np.ones(10), np.zeros(90), np.ones(6), np.zeros(94), np.ones(3),
                    np.zeros(97)]
    np.testing.assert_allclose(relative_examination(positions, clicked), [1.0, 0.6, 0.3])
    padded = relative_examination(positions[:200], clicked[:200], n_slots=2)
    np.testing.assert_allclose(padded, [1.0, 0.6])


def test_relative_examination_recovers_the_world_curve_from_random_slots(world):
    """The random server places ads in slots at random: the estimate is within 10%."""
    log = serve_random(world, 0, 100_000, np.random.default_rng(2))
    estimate = relative_examination(log["position"], log["clicked"])
    truth = world.examine(SLOTS)
    assert estimate[0] == 1.0
    np.testing.assert_allclose(estimate, truth, rtol=0.10)
    low, high = relative_examination_interval(log["position"], log["clicked"])
    assert np.all(low <= estimate) and np.all(estimate <= high)
    assert np.all(low[1:] <= truth[1:]) and np.all(truth[1:] <= high[1:])
    assert low[0] == high[0] == 1.0


@pytest.fixture(scope="module")
def experiment(world, platform) -> pd.DataFrame:
    """Half of 60,000 requests shuffled, half in auction order."""
    return served(world, platform, 1, 60_000, seed=3, share=0.5)


def test_shuffled_slots_recover_the_curve_and_auction_order_overstates_it(world, experiment):
    log = experiment
    assert set(log["position"]) == set(SLOTS)
    shuffled = log[log["shuffled"] & (log["slots_filled"] == 3)]
    # Within sampling error: the world's curve lies in the 99% interval of each slot.
    low, high = relative_examination_interval(shuffled["position"], shuffled["clicked"],
                                              level=0.99)
    truth = world.examine(SLOTS)
    assert np.all(low <= truth + 1e-12) and np.all(truth <= high + 1e-12), (low, high)
    # In auction order the best ads sit on top: the lower slots look worse than they are.
    kept = log[~log["shuffled"] & (log["slots_filled"] == 3)]
    by_truth = kept.groupby("position")["true_p"].mean()
    assert by_truth[3] / by_truth[1] < 0.9 * world.examine(3)
    naive = relative_examination(kept["position"], kept["clicked"])
    assert naive[2] < world.examine(3)


def test_shuffling_keeps_each_request_ads_and_moves_only_the_experiment(world, platform):
    log = served(world, platform, 1, 5_000, seed=4, share=0.5)
    assert (log.loc[~log["shuffled"], "position"]
            == log.loc[~log["shuffled"], "auction_position"]).all()
    moved = log[log["shuffled"]]
    assert (moved["position"] != moved["auction_position"]).any()
    # Every request still fills slots 1..n once each.
    slots = log.groupby("request_id")["position"].agg(lambda s: tuple(sorted(s)))
    assert all(s == tuple(range(1, len(s) + 1)) for s in slots)
    assert (log["f_position"].cat.codes.to_numpy() + 1 == log["position"].to_numpy()).all()
    np.testing.assert_array_equal(
        log.groupby("request_id")["slots_filled"].first(),
        log.groupby("request_id").size())


def test_shuffled_requests_lose_clicks(experiment):
    by_arm = experiment.groupby("shuffled")["true_p"].mean()
    assert by_arm[True] < by_arm[False]


@pytest.mark.parametrize("call, message", [
    (lambda: relative_examination([1, 2], [1, 0, 1]), "same length"),
    (lambda: relative_examination([0, 1], [1, 0]), "positions"),
    (lambda: relative_examination([1, 2], [0, 1]), "at least one click"),
    (lambda: relative_examination([1, 3], [1, 0]), r"slot\(s\) \[2\]"),
    (lambda: relative_examination([1, 2], [1, 2]), "clicked"),
    (lambda: relative_examination([1, 2, 3], [1, 0, 0], n_slots=2), "at most n_slots"),
    (lambda: relative_examination_interval([1, 2], [1, 1], level=1.0), "level"),
    (lambda: relative_examination_interval([1, 2], [1, 0]), "at least one click"),
])
def test_relative_examination_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----- corrections -----------------------------------------------------------------------
def test_inverse_propensity_weights_scale_clicks_only():
    weights = inverse_propensity_weights([1, 2, 3, 3], [1, 1, 1, 0], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(weights, [1.0, 2.0, 4.0, 1.0])
    capped = inverse_propensity_weights([3], [1], [1.0, 0.5, 0.25], max_weight=3)
    np.testing.assert_allclose(capped, [3.0])
    with pytest.raises(ValueError, match="examination"):
        inverse_propensity_weights([1], [1], [1.0, 0.0])
    with pytest.raises(ValueError, match="positions"):
        inverse_propensity_weights([4], [1], [1.0, 0.5, 0.25])
    with pytest.raises(ValueError, match="max_weight"):
        inverse_propensity_weights([1], [1], [1.0], max_weight=0.5)


def test_at_position_rewrites_the_slot_and_keeps_the_categories(world):
    log = serve_random(world, 0, 200, np.random.default_rng(6))
    from adsys.features import make_features
    table = make_features(world.view, log["user_id"], log["ad_id"], log["publisher_id"],
                          log["hour"], log["position"])
    moved = at_position(table, 3)
    assert (moved["position"] == 3).all()
    assert moved["position"].dtype == table["position"].dtype
    assert (table["position"] == log["position"].to_numpy()).all()   # the input is untouched
    with pytest.raises(ValueError, match="position"):
        at_position(table, 4)
    with pytest.raises(TypeError, match="feature table"):
        at_position(log[["user_id"]], 1)


@pytest.fixture(scope="module")
def position_data(world, platform):
    """Two served logs of the same day and size: one to train on, one to test."""
    return served(world, platform, 1, 40_000, seed=7), served(world, platform, 1, 40_000, seed=8)


def test_position_feature_served_at_slot_1_is_calibrated_at_slot_1(world, position_data):
    """Trained on served logs with the slot as a feature and served at slot 1, the model
    predicts the position-1 truth; a position-blind model under-predicts it."""
    train, test = position_data
    truth = true_at_slot_1(world, test, 1)
    model = FixedPositionModel(LogisticClickModel(max_iter=500), 1).fit(
        features(train), train["clicked"])
    assert model.predict(features(test)).sum() / truth.sum() == pytest.approx(1.0, abs=0.05)
    blind = LogisticClickModel(max_iter=500).fit(at_position(features(train), 1),
                                                 train["clicked"])
    assert blind.predict(at_position(features(test), 1)).sum() / truth.sum() < 0.85


def test_inverse_propensity_weights_calibrate_a_position_blind_model(world, position_data):
    train, test = position_data
    truth = true_at_slot_1(world, test, 1)
    weights = inverse_propensity_weights(train["position"], train["clicked"],
                                         world.examine(SLOTS))
    model = LogisticClickModel(max_iter=500).fit(at_position(features(train), 1),
                                                 train["clicked"], sample_weight=weights)
    assert model.predict(at_position(features(test), 1)).sum() / truth.sum() == pytest.approx(
        1.0, abs=0.06)


def test_a_logistic_model_ranks_the_same_at_every_fixed_slot(position_data):
    train, test = position_data
    fitted = LogisticClickModel(max_iter=500).fit(features(train), train["clicked"])
    top, low = (FixedPositionModel(fitted, s).predict(features(test)) for s in (1, 3))
    assert np.all(low < top)
    np.testing.assert_array_equal(np.argsort(top, kind="stable"), np.argsort(low, kind="stable"))
    with pytest.raises(TypeError, match="click model"):
        FixedPositionModel(object(), 1)
