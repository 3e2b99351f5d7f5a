"""The random server fills slots with distinct, eligible ads in position order."""

import numpy as np

from adsys.baseline import serve_random
from adsys.world import World


def test_random_server_log_is_valid():
    world = World(seed=0)
    log = serve_random(world, day=0, n_requests=5000, rng=np.random.default_rng(0))
    assert not log.duplicated(["request_id", "ad_id"]).any()
    assert world.matches_targeting(log["user_id"], log["ad_id"]).all()
    assert world.active_ads(0)[log["ad_id"]].all()
    per_request = log.groupby("request_id")["position"]
    assert (per_request.max() == per_request.count()).all()  # positions 1..k, no gaps
    assert (per_request.count() == world.config.n_slots).mean() > 0.99
    assert set(log.columns) >= {"clicked", "true_p", "max_cpc", "campaign_id", "hour"}
    assert 0.005 < log["clicked"].mean() < 0.05


def test_random_server_is_reproducible_and_uniform():
    world = World(seed=0)
    a = serve_random(world, 0, 3000, np.random.default_rng(5))
    b = serve_random(world, 0, 3000, np.random.default_rng(5))
    assert a.equals(b)
    # Every position sees the same mix of ads: mean true relevance is flat by position.
    log = serve_random(world, 0, 30_000, np.random.default_rng(6))
    relevance = log["true_p"] / world.examine(log["position"])
    by_position = relevance.groupby(log["position"]).mean()
    assert by_position.max() / by_position.min() < 1.1
