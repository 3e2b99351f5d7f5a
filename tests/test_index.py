"""The ads index returns exactly the ads allowed by targeting, start day and budget."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.index import AdIndex
from adsys.observable import PlatformView
from adsys.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="module")
def view(world) -> PlatformView:
    return world.view


@pytest.fixture(scope="module")
def index(view) -> AdIndex:
    return AdIndex(view)


def targeting_reference(view: PlatformView, users: np.ndarray, ads: np.ndarray) -> np.ndarray:
    """The targeting rule read straight from the view's tables, pair by pair."""
    user = view.users.iloc[users]
    campaign = view.campaigns.iloc[view.ads["campaign_id"].to_numpy()[ads]]

    def accepts(mask_column: str, user_column: str) -> np.ndarray:
        return (campaign[mask_column].to_numpy() >> user[user_column].to_numpy() & 1) == 1

    topic_mask = campaign["topic_mask"].to_numpy()
    return (accepts("region_mask", "region") & accepts("age_mask", "age_band")
            & accepts("device_mask", "device")
            & ((topic_mask == 0) | (topic_mask & user["declared_topics"].to_numpy() != 0)))


def brute_force(view: PlatformView, users: np.ndarray, day: int,
                has_budget: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Every (request position, ad) pair checked one by one against the targeting rules."""
    n_ads = view.n_ads
    pos = np.repeat(np.arange(len(users)), n_ads)
    ads = np.tile(np.arange(n_ads), len(users))
    ok = targeting_reference(view, users[pos], ads) & view.active_ads(day)[ads]
    if has_budget is not None:
        ok &= has_budget[view.ads["campaign_id"].to_numpy()[ads]]
    return set(zip(pos[ok].tolist(), ads[ok].tolist(), strict=True))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), day=st.integers(0, 59), with_budget=st.booleans())
def test_eligible_equals_brute_force(world, view, index, seed, day, with_budget):
    rng = np.random.default_rng(seed)
    requests = world.requests(day, rng, n=int(rng.integers(1, 120)))
    has_budget = rng.random(view.n_campaigns) < 0.7 if with_budget else None
    request_pos, ad_id = index.eligible(requests, day, has_budget)
    assert request_pos.dtype == ad_id.dtype == np.int32
    pairs = list(zip(request_pos.tolist(), ad_id.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)), "duplicate pairs"
    assert set(pairs) == brute_force(view, requests.user, day, has_budget)


def test_matches_is_the_targeting_rule(world, view, index):
    rng = np.random.default_rng(8)
    users = rng.integers(0, view.n_users, 20_000)
    ads = rng.integers(0, view.n_ads, 20_000)
    match = index.matches(users, ads)
    np.testing.assert_array_equal(match, targeting_reference(view, users, ads))
    assert 0.05 < match.mean() < 0.9
    assert index.matches([], []).size == 0


def test_interest_targeting_uses_declared_interests(world, view, index):
    """Some eligible pairs come from interest-targeted ads, and every one of them goes to a
    user who declared the topic: the index sees the profile, never the true interests."""
    requests = world.requests(0, np.random.default_rng(1), n=2000)
    request_pos, ad_id = index.eligible(requests, 0)
    targeted = index.ad_topic_mask[ad_id] != 0
    assert targeted.any()
    users, ads = requests.user[request_pos[targeted]], ad_id[targeted]
    topics = view.ads["topic"].to_numpy()[ads]
    assert view.declared(users, topics).all()
    # Declarations are noisy: some of those users are not really interested in the topic.
    assert (world.interests[users, topics] < world.config.interest_threshold).any()


def test_campaign_without_budget_disappears(view, world, index):
    requests = world.requests(3, np.random.default_rng(2), n=500)
    _, before = index.eligible(requests, 3)
    ad_campaign = view.ads["campaign_id"].to_numpy()
    campaign = ad_campaign[before]
    broke = np.bincount(campaign).argmax()
    has_budget = np.ones(view.n_campaigns, dtype=bool)
    has_budget[broke] = False
    _, after = index.eligible(requests, 3, has_budget)
    assert not np.any(ad_campaign[after] == broke)
    assert len(after) == np.sum(campaign != broke)
    _, none = index.eligible(requests, 3, np.zeros(view.n_campaigns, dtype=bool))
    assert none.size == 0


def test_new_campaigns_become_eligible_on_their_start_day(view, world, index):
    requests = world.requests(10, np.random.default_rng(3), n=2000)
    start = view.ads["start_day"].to_numpy()
    _, today = index.eligible(requests, 10)
    assert start[today].max() == 10
    assert np.all(start[today] <= 10)


def test_single_request_path_matches_batch(world, index):
    requests = world.requests(5, np.random.default_rng(4), n=50)
    request_pos, ad_id = index.eligible(requests, 5)
    for i, user in enumerate(requests.user):
        np.testing.assert_array_equal(index.eligible_for(int(user), 5),
                                      np.sort(ad_id[request_pos == i]))


def test_empty_batch_gives_no_pairs(world, index):
    requests = world.requests(0, np.random.default_rng(5), n=10).take(np.zeros(10, dtype=bool))
    request_pos, ad_id = index.eligible(requests, 0)
    assert len(request_pos) == len(ad_id) == 0


def test_results_do_not_depend_on_the_cache(world, view, index):
    """The per-segment lists are cached while the live ads stay the same: switching budgets
    back and forth gives the same pairs as a fresh index."""
    requests = world.requests(1, np.random.default_rng(9), n=300)
    has_budget = np.random.default_rng(10).random(view.n_campaigns) < 0.5
    first = index.eligible(requests, 1, has_budget)
    index.eligible(requests, 1)
    again = index.eligible(requests, 1, has_budget)
    fresh = AdIndex(view).eligible(requests, 1, has_budget)
    for pairs in (again, fresh):
        assert set(zip(*map(np.ndarray.tolist, pairs), strict=True)) == set(
            zip(*map(np.ndarray.tolist, first), strict=True))


def test_bad_inputs_raise(world, view, index):
    requests = world.requests(2, np.random.default_rng(6), n=10)
    with pytest.raises(ValueError, match="requests must all be of day 3"):
        index.eligible(requests, 3)
    with pytest.raises(ValueError, match="has_budget"):
        index.eligible(requests, 2, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="has_budget"):
        index.eligible(requests, 2, np.ones(view.n_campaigns))
    with pytest.raises(TypeError, match="requests"):
        index.eligible(requests.to_frame(), 2)
    with pytest.raises(ValueError, match="user_id"):
        index.eligible_for(view.n_users, 2)
    with pytest.raises(ValueError, match="user_id"):
        index.eligible_for(1.0, 2)
    with pytest.raises(ValueError, match="day"):
        index.eligible_for(0, -1)
    with pytest.raises(TypeError, match="day"):
        index.eligible(requests, 2.0)
    with pytest.raises(ValueError, match="same length"):
        index.matches([0, 1], [0])
    with pytest.raises(TypeError, match="PlatformView"):
        AdIndex(world)
