"""Properties of the ground-truth world (DESIGN section 4.1)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from adsys.world import DEFAULT_CONFIG, World, WorldConfig


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


def served_random(world: World, seed: int, n: int = 30_000):
    """Serve uniformly random active ads in every slot; return (users, ads, pubs, hours, pos)."""
    rng = np.random.default_rng(seed)
    req = world.requests(0, rng, n=n)
    slots = world.config.n_slots
    ads = rng.choice(np.flatnonzero(world.active_ads(0)), size=(n, slots))
    rep = lambda a: np.repeat(a[:, None], slots, axis=1).ravel()  # noqa: E731
    pos = np.tile(np.arange(1, slots + 1), n)
    return rep(req.user), ads.ravel(), rep(req.publisher), rep(req.hour), pos


def test_default_config_file_matches_dataclass_defaults():
    assert WorldConfig.load(DEFAULT_CONFIG) == WorldConfig()


def test_same_seed_gives_identical_world_and_draws():
    a, b = World(seed=7), World(seed=7)
    pd.testing.assert_frame_equal(a.ads, b.ads)
    pd.testing.assert_frame_equal(a.campaigns, b.campaigns)
    ra = a.requests(2, np.random.default_rng(3), n=5000)
    rb = b.requests(2, np.random.default_rng(3), n=5000)
    pd.testing.assert_frame_equal(ra.to_frame(), rb.to_frame())
    args = served_random(a, seed=4)
    pa = a.click_probability(*args, day=2)
    np.testing.assert_array_equal(pa, b.click_probability(*args, day=2))
    np.testing.assert_array_equal(a.draw_clicks(pa, np.random.default_rng(5)),
                                  b.draw_clicks(pa, np.random.default_rng(5)))


def test_different_seeds_give_different_worlds():
    assert not World(seed=1).ads["true_quality"].equals(World(seed=2).ads["true_quality"])


def test_default_world_ctr_is_a_few_percent(world):
    p = world.click_probability(*served_random(world, seed=1), day=0)
    clicks = world.draw_clicks(p, np.random.default_rng(2))
    assert 0.01 <= clicks.mean() <= 0.04
    assert 0.01 <= p.mean() <= 0.04


def test_examination_strictly_decreases_with_position(world):
    e = world.examine(np.arange(1, world.config.n_slots + 1))
    assert np.all(np.diff(e) < 0) and e[0] <= 1
    with pytest.raises(ValueError, match="position"):
        world.examine(0)


def test_click_probability_factorizes(world):
    users, ads, pubs, hours, pos = served_random(world, seed=3, n=1000)
    rel = world.relevance(users, ads, pubs, hours, day=5)
    assert np.all((rel > 0) & (rel < 1))
    np.testing.assert_allclose(world.click_probability(users, ads, pubs, hours, pos, day=5),
                               world.examine(pos) * rel)


def test_interest_raises_relevance(world):
    """A user strongly interested in an ad's topic clicks more than an uninterested one."""
    users, ads, pubs, hours, _ = served_random(world, seed=6)
    interest = world.interests[users, world.ads["topic"].to_numpy()[ads]]
    rel = world.relevance(users, ads, pubs, hours, day=0)
    assert rel[interest > 0.3].mean() > 2 * rel[interest < 0.01].mean()


def test_requests_follow_the_diurnal_curve(world):
    req = world.requests(1, np.random.default_rng(0))
    assert len(req) == world.config.requests_per_day
    assert np.all(np.diff(req.time) >= 0)
    assert np.all(req.time // 86_400 == 1)
    observed = np.bincount(req.hour, minlength=24) / len(req)
    np.testing.assert_allclose(observed, world.hourly_traffic(), atol=0.003)
    assert world.hourly_traffic().argmax() == world.config.peak_hour


def test_spike_hour_gets_more_traffic():
    spiky = World(WorldConfig(spike_hour=9, spike_multiplier=3.0), seed=0).hourly_traffic()
    calm = World(seed=0).hourly_traffic()
    assert spiky[9] / spiky[8] == pytest.approx(3 * calm[9] / calm[8])


def test_new_campaigns_arrive_over_time(world):
    c = world.config
    assert world.active_ads(1).sum() > world.active_ads(0).sum()
    arrived = world.campaigns.query("start_day == 3")
    assert len(arrived) == c.new_campaigns_per_day
    assert world.active_ads(c.horizon_days).all()


def test_topic_appeal_drifts_and_shifts():
    calm = World(seed=0)
    assert not np.allclose(calm.topic_drift(0), calm.topic_drift(7))
    shifted = World(WorldConfig(shift_day=10, shift_size=1.0), seed=0)
    np.testing.assert_allclose(shifted.topic_drift(9), calm.topic_drift(9))
    assert np.abs(shifted.topic_drift(10) - calm.topic_drift(10)).mean() > 0.3


def test_targeting_matches_the_masks(world):
    users, ads, *_ = served_random(world, seed=8, n=2000)
    match = world.matches_targeting(users, ads)
    camp = world.campaigns.iloc[world.ads["campaign_id"].to_numpy()[ads]]
    region = world.users["region"].to_numpy()[users]
    wrong_region = (camp["region_mask"].to_numpy() & (1 << region)) == 0
    assert not match[wrong_region].any()
    untargeted = ((camp["region_mask"] == 63) & (camp["age_mask"] == 63)
                  & (camp["device_mask"] == 7) & (camp["topic_mask"] == 0)).to_numpy()
    assert match[untargeted].all()
    assert 0.1 < match.mean() < 0.9


def test_click_stream_delays_duplicates_and_order(world):
    rng = np.random.default_rng(0)
    n = 50_000
    clicked = rng.random(n) < 0.5
    events = world.click_stream(np.arange(n), np.zeros(n), clicked, rng)
    assert set(events["impression_id"]) == set(np.flatnonzero(clicked))
    dup_share = events["impression_id"].duplicated().sum() / clicked.sum()
    assert dup_share == pytest.approx(world.config.duplicate_click_rate, abs=0.005)
    assert (events["click_time"] > 0).all() and events["click_time"].is_monotonic_increasing
    assert np.median(events["click_time"]) == pytest.approx(
        world.config.delay_median_seconds, rel=0.05)
    assert (events["click_time"] > 3600).mean() > 0.001  # some arrive hours later


@pytest.mark.parametrize("name, value", [
    ("n_users", 0), ("n_users", -5), ("n_topics", 99), ("interest_concentration", 0.0),
    ("budget_median", -1.0), ("bid_median", 0), ("target_region_share", 1.5),
    ("n_slots", 0), ("requests_per_day", 0), ("peak_hour", 24), ("spike_hour", -2),
    ("diurnal_amplitude", 1.2), ("duplicate_click_rate", -0.1), ("shift_day", -3),
    ("n_users", 2.5), ("base_logit", float("nan")),
])
def test_invalid_config_names_field_and_range(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be"):
        WorldConfig(**{name: value})


@pytest.mark.parametrize("examine, message", [
    ((1.0, 0.6), "one probability per slot"),
    ((1.0, 0.6, 0.7), "strictly decrease"),
    ((1.2, 0.6, 0.4), r"\(0, 1\]"),
])
def test_invalid_examine(examine, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(examine=examine)


def test_unknown_field_in_file_is_rejected(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text("[users]\nn_userz = 10\n")
    with pytest.raises(ValueError, match="n_userz"):
        WorldConfig.load(path)


def test_overrides_and_bad_calls(world):
    assert WorldConfig.load(n_users=500).n_users == 500
    assert dataclasses.replace(world.config, n_slots=3) == world.config
    with pytest.raises(ValueError, match="seed"):
        World(seed=-1)
    with pytest.raises(ValueError, match="day"):
        world.requests(-1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="users and ads"):
        world.relevance(np.arange(3), np.arange(2), np.arange(3), np.zeros(3, int), 0)
    with pytest.raises(ValueError, match="ads must be ids"):
        world.relevance(np.zeros(1, int), np.array([10**7]), np.zeros(1, int),
                        np.zeros(1, int), 0)
    with pytest.raises(ValueError, match="kind"):
        world.label("colour", [0])
