"""The random server fills slots with distinct, eligible ads in position order."""

import numpy as np
import pytest

from adsys.baseline import prior_exposures, serve_random
from adsys.history import ExposureCounter
from adsys.index import AdIndex
from adsys.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


def test_random_server_log_is_valid(world):
    view = world.view
    log = serve_random(world, day=0, n_requests=5000, rng=np.random.default_rng(0))
    assert not log.duplicated(["request_id", "ad_id"]).any()
    assert AdIndex(view).matches(log["user_id"], log["ad_id"]).all()
    assert view.active_ads(0)[log["ad_id"]].all()
    per_request = log.groupby("request_id")["position"]
    assert (per_request.max() == per_request.count()).all()  # positions 1..k, no gaps
    assert (per_request.count() == view.n_slots).mean() > 0.99
    assert set(log.columns) >= {"clicked", "true_p", "max_cpc", "campaign_id", "hour",
                                "exposures"}
    assert 0.002 < log["clicked"].mean() < 0.03
    without = serve_random(world, 0, 500, np.random.default_rng(0), with_truth=False)
    assert "true_p" not in without.columns


def test_random_server_is_reproducible_and_uniform(world):
    a = serve_random(world, 0, 3000, np.random.default_rng(5))
    b = serve_random(world, 0, 3000, np.random.default_rng(5))
    assert a.equals(b)
    # Every position sees the same mix of ads: mean true relevance is flat by position.
    log = serve_random(world, 0, 30_000, np.random.default_rng(6))
    relevance = log["true_p"] / world.examine(log["position"].to_numpy())
    by_position = relevance.groupby(log["position"]).mean()
    assert by_position.max() / by_position.min() < 1.1


def test_random_server_counts_exposures_within_its_log(world):
    log = serve_random(world, 0, 30_000, np.random.default_rng(7))
    pairs = log.groupby(["user_id", "ad_id"])["exposures"]
    # Each repeat of a (user, ad) pair has seen it 0, 1, 2, ... times before, in time order.
    assert (pairs.min() == 0).all()
    assert (pairs.max() == pairs.count() - 1).all()
    assert (log["exposures"] > 0).any()
    assert log["time"].is_monotonic_increasing


def test_prior_exposures_add_the_counter_to_repeats_in_the_batch():
    users, ads = np.array([3, 3, 4, 3, 4]), np.array([1, 1, 1, 2, 1])
    assert prior_exposures(users, ads).tolist() == [0, 1, 0, 0, 1]
    counter = ExposureCounter(5)
    counter.record([3, 3], [1, 1])
    assert prior_exposures(users, ads, counter).tolist() == [2, 3, 0, 0, 1]
    assert prior_exposures(np.zeros(0, int), np.zeros(0, int)).size == 0


@pytest.mark.parametrize("kwargs, error, name", [
    ({"n_requests": 0}, ValueError, "n_requests"),
    ({"n_requests": 10.0}, TypeError, "n_requests"),
    ({"day": -1}, ValueError, "day"),
    ({"day": 1.5}, TypeError, "day"),
])
def test_random_server_rejects_bad_input(world, kwargs, error, name):
    args = {"day": 0, "n_requests": 10, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(error, match=name):
        serve_random(world, **args)
