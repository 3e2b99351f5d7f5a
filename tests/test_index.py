"""The ads index returns exactly the ads allowed by targeting, start day and budget."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.index import AdIndex
from adsys.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="module")
def index(world) -> AdIndex:
    return AdIndex(world)


def brute_force(world: World, users: np.ndarray, day: int,
                has_budget: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Every (request position, ad) pair checked one by one against the world's rules."""
    n_ads = len(world.ads)
    pos = np.repeat(np.arange(len(users)), n_ads)
    ads = np.tile(np.arange(n_ads), len(users))
    ok = world.matches_targeting(users[pos], ads) & world.active_ads(day)[ads]
    if has_budget is not None:
        ok &= has_budget[world.ads["campaign_id"].to_numpy()[ads]]
    return set(zip(pos[ok].tolist(), ads[ok].tolist(), strict=True))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), day=st.integers(0, 59), with_budget=st.booleans())
def test_eligible_equals_brute_force(world, index, seed, day, with_budget):
    rng = np.random.default_rng(seed)
    requests = world.requests(day, rng, n=int(rng.integers(1, 120)))
    has_budget = rng.random(len(world.campaigns)) < 0.7 if with_budget else None
    request_pos, ad_id = index.eligible(requests, day, has_budget)
    pairs = list(zip(request_pos.tolist(), ad_id.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)), "duplicate pairs"
    assert set(pairs) == brute_force(world, requests.user, day, has_budget)
    assert np.all(np.diff(request_pos * len(world.ads) + ad_id) > 0), "not sorted by request, ad"


def test_interest_targeting_is_enforced(world, index):
    """Some eligible pairs come from interest-targeted ads, and they all fit the user."""
    requests = world.requests(0, np.random.default_rng(1), n=2000)
    request_pos, ad_id = index.eligible(requests, 0)
    targeted = index.ad_topic_mask[ad_id] != 0
    assert targeted.any()
    users, ads = requests.user[request_pos[targeted]], ad_id[targeted]
    interest = world.interests[users, world.ads["topic"].to_numpy()[ads]]
    assert np.all(interest >= world.config.interest_threshold)


def test_campaign_without_budget_disappears(world, index):
    requests = world.requests(3, np.random.default_rng(2), n=500)
    _, before = index.eligible(requests, 3)
    campaign = world.ads["campaign_id"].to_numpy()[before]
    broke = np.bincount(campaign).argmax()
    has_budget = np.ones(len(world.campaigns), dtype=bool)
    has_budget[broke] = False
    _, after = index.eligible(requests, 3, has_budget)
    assert not np.any(world.ads["campaign_id"].to_numpy()[after] == broke)
    assert len(after) == np.sum(campaign != broke)


def test_new_campaigns_become_eligible_on_their_start_day(world, index):
    requests = world.requests(10, np.random.default_rng(3), n=2000)
    start = world.ads["start_day"].to_numpy()
    _, today = index.eligible(requests, 10)
    assert start[today].max() == 10
    assert np.all(start[today] <= 10)


def test_single_request_path_matches_batch(world, index):
    requests = world.requests(5, np.random.default_rng(4), n=50)
    request_pos, ad_id = index.eligible(requests, 5)
    for i, user in enumerate(requests.user):
        np.testing.assert_array_equal(index.eligible_for(int(user), 5), ad_id[request_pos == i])


def test_empty_batch_gives_no_pairs(world, index):
    requests = world.requests(0, np.random.default_rng(5), n=10).take(np.zeros(10, dtype=bool))
    request_pos, ad_id = index.eligible(requests, 0)
    assert len(request_pos) == len(ad_id) == 0


def test_bad_inputs_raise(world, index):
    requests = world.requests(2, np.random.default_rng(6), n=10)
    with pytest.raises(ValueError, match="requests must all be of day 3"):
        index.eligible(requests, 3)
    with pytest.raises(ValueError, match="has_budget"):
        index.eligible(requests, 2, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="has_budget"):
        index.eligible(requests, 2, np.ones(len(world.campaigns)))
    with pytest.raises(ValueError, match="requests"):
        index.eligible(requests.to_frame(), 2)
    with pytest.raises(ValueError, match="user_id"):
        index.eligible_for(world.config.n_users, 2)
    with pytest.raises(ValueError, match="day"):
        index.eligible_for(0, -1)
