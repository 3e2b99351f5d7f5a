"""Properties of the ground-truth world (DESIGN section 4.1) and of the view it publishes."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from adsys.observable import SECONDS_PER_DAY, PlatformView, Requests
from adsys.world import DEFAULT_CONFIG, World, WorldConfig


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


def served_random(world: World, seed: int, n: int = 30_000):
    """Serve uniformly random active ads in every slot; return (users, ads, pubs, hours, pos)."""
    rng = np.random.default_rng(seed)
    req = world.requests(0, rng, n=n)
    slots = world.config.n_slots
    ads = rng.choice(np.flatnonzero(world.view.active_ads(0)), size=(n, slots))
    rep = lambda a: np.repeat(a[:, None], slots, axis=1).ravel()  # noqa: E731
    pos = np.tile(np.arange(1, slots + 1), n)
    return rep(req.user), ads.ravel(), rep(req.publisher), rep(req.hour), pos


def test_default_config_file_matches_dataclass_defaults():
    assert WorldConfig.load(DEFAULT_CONFIG) == WorldConfig()


def test_the_world_publishes_a_platform_view(world):
    view = world.view
    assert isinstance(view, PlatformView)
    assert view.n_users == world.config.n_users == len(world.interests)
    assert view.n_ads == len(world.ad_quality)
    assert view.n_publishers == world.config.n_publishers
    assert view.n_slots == world.config.n_slots
    assert view.topics == world.topics and len(view.topics) == world.config.n_topics


def test_same_seed_gives_identical_world_and_draws():
    a, b = World(seed=7), World(seed=7)
    for table in ("users", "advertisers", "campaigns", "ads", "publishers"):
        pd.testing.assert_frame_equal(getattr(a.view, table), getattr(b.view, table))
    for hidden in ("interests", "user_bias", "ad_quality", "age_topic", "hour_topic"):
        np.testing.assert_array_equal(getattr(a, hidden), getattr(b, hidden))
    ra = a.requests(2, np.random.default_rng(3), n=5000)
    rb = b.requests(2, np.random.default_rng(3), n=5000)
    pd.testing.assert_frame_equal(ra.to_frame(), rb.to_frame())
    args = served_random(a, seed=4)
    pa = a.click_probability(*args, day=2)
    np.testing.assert_array_equal(pa, b.click_probability(*args, day=2))
    np.testing.assert_array_equal(a.draw_clicks(pa, np.random.default_rng(5)),
                                  b.draw_clicks(pa, np.random.default_rng(5)))


def test_different_seeds_give_different_worlds():
    one, two = World(seed=1), World(seed=2)
    assert not np.array_equal(one.ad_quality[:100], two.ad_quality[:100])
    assert not one.view.users.equals(two.view.users)


def test_declared_interests_are_a_noisy_incomplete_view_of_the_true_ones(world):
    c = world.config
    declared = (world.view.users["declared_topics"].to_numpy()[:, None]
                >> np.arange(c.n_topics) & 1).astype(bool)
    strong = world.interests >= c.interest_threshold
    assert declared[strong].mean() == pytest.approx(c.declare_rate, abs=0.02)        # incomplete
    assert declared[~strong].mean() == pytest.approx(c.false_declare_rate, abs=0.01)  # noisy
    users = np.arange(200)
    np.testing.assert_array_equal(world.view.declared(users, np.full(200, 3)), declared[:200, 3])


def test_examination_strictly_decreases_with_position(world):
    e = world.examine(np.arange(1, world.config.n_slots + 1))
    assert np.all(np.diff(e) < 0) and e[0] <= 1
    assert world.examine(1) == e[0]
    with pytest.raises(ValueError, match="position"):
        world.examine(0)


def test_click_probability_factorizes(world):
    users, ads, pubs, hours, pos = served_random(world, seed=3, n=1000)
    rel = world.relevance(users, ads, pubs, hours, day=5)
    assert np.all((rel > 0) & (rel < 1))
    np.testing.assert_allclose(world.click_probability(users, ads, pubs, hours, pos, day=5),
                               world.examine(pos) * rel)
    seen = np.arange(len(users)) % 4
    np.testing.assert_allclose(
        world.click_probability(users, ads, pubs, hours, pos, day=5, exposures=seen),
        world.examine(pos) * world.relevance(users, ads, pubs, hours, 5, exposures=seen))


def test_interest_raises_relevance(world):
    """A user strongly interested in an ad's topic clicks more than an uninterested one."""
    users, ads, pubs, hours, _ = served_random(world, seed=6)
    interest = world.interests[users, world.view.ads["topic"].to_numpy()[ads]]
    rel = world.relevance(users, ads, pubs, hours, day=0)
    assert rel[interest > 0.3].mean() > 2 * rel[interest < 0.01].mean()


def test_requests_follow_the_diurnal_curve(world):
    req = world.requests(1, np.random.default_rng(0))
    assert isinstance(req, Requests)
    assert len(req) == world.config.requests_per_day
    assert np.all(np.diff(req.time) >= 0)
    assert np.all(req.time // SECONDS_PER_DAY == 1)
    np.testing.assert_array_equal(req.hour, req.time % SECONDS_PER_DAY // 3600)
    observed = np.bincount(req.hour, minlength=24) / len(req)
    np.testing.assert_allclose(observed, world.hourly_traffic(), atol=0.003)
    assert world.hourly_traffic().argmax() == world.config.peak_hour
    np.testing.assert_array_equal(req.device, world.view.users["device"].to_numpy()[req.user])
    np.testing.assert_array_equal(req.request_id, np.arange(len(req)))
    assert world.requests(1, np.random.default_rng(0), n=5, first_id=40).request_id.tolist() \
        == [40, 41, 42, 43, 44]


def test_pages_follow_the_users_interests():
    """Half of the page views are on a topic the user likes: readers are drawn to their
    interests, so the page topic says something about the user (and is observable)."""
    world = World(seed=0)
    req = world.requests(0, np.random.default_rng(1), n=40_000)
    page_topic = world.view.publishers["topic"].to_numpy()
    interest = world.interests[req.user, page_topic[req.publisher]]
    shuffled = world.interests[req.user, page_topic[np.random.default_rng(2).permutation(
        req.publisher)]]
    assert interest.mean() > 2 * shuffled.mean()
    popular = World(WorldConfig.load(interest_browsing=0.0), seed=0)
    req = popular.requests(0, np.random.default_rng(1), n=40_000)
    interest = popular.interests[req.user, page_topic[req.publisher]]
    assert interest.mean() == pytest.approx(shuffled.mean(), rel=0.1)


def test_spike_hour_gets_more_traffic():
    spiky = World(WorldConfig(spike_hour=9, spike_multiplier=3.0), seed=0).hourly_traffic()
    calm = World(seed=0).hourly_traffic()
    assert spiky[9] / spiky[8] == pytest.approx(3 * calm[9] / calm[8])


def test_new_campaigns_arrive_over_time(world):
    c, view = world.config, world.view
    assert view.active_ads(1).sum() > view.active_ads(0).sum()
    arrived = view.campaigns.query("start_day == 3")
    assert len(arrived) == c.new_campaigns_per_day
    assert view.active_ads(c.horizon_days).all()
    np.testing.assert_array_equal(
        view.ads["start_day"].to_numpy(),
        view.campaigns["start_day"].to_numpy()[view.ads["campaign_id"].to_numpy()])


def test_topic_appeal_drifts_and_shifts():
    calm = World(seed=0)
    assert not np.allclose(calm.topic_drift(0), calm.topic_drift(7))
    shifted = World(WorldConfig(shift_day=10, shift_size=1.0), seed=0)
    np.testing.assert_allclose(shifted.topic_drift(9), calm.topic_drift(9))
    assert np.abs(shifted.topic_drift(10) - calm.topic_drift(10)).mean() > 0.3


def test_targeting_masks_are_well_formed(world):
    campaigns = world.view.campaigns
    for column, n_options in (("region_mask", 6), ("age_mask", 6), ("device_mask", 3)):
        masks = campaigns[column].to_numpy()
        assert np.all((masks > 0) & (masks < 1 << n_options)), column
        assert (masks == (1 << n_options) - 1).mean() < 0.9, column   # some campaigns target
    topic_mask = campaigns["topic_mask"].to_numpy()
    targeted = topic_mask != 0
    assert 0.3 < targeted.mean() < 0.9
    np.testing.assert_array_equal(topic_mask[targeted],
                                  1 << campaigns["topic"].to_numpy()[targeted])


def test_click_stream_delays_duplicates_and_order(world):
    rng = np.random.default_rng(0)
    n = 50_000
    clicked = rng.random(n) < 0.5
    times = rng.uniform(0, 1000, n)
    events = world.click_stream(np.arange(n), times, clicked, rng)
    assert set(events["impression_id"]) == set(np.flatnonzero(clicked))
    dup_share = events["impression_id"].duplicated().sum() / clicked.sum()
    assert dup_share == pytest.approx(world.config.duplicate_click_rate, abs=0.005)
    assert events["click_time"].is_monotonic_increasing
    delay = events["click_time"].to_numpy() - times[events["impression_id"]]
    assert (delay > 0).all()
    first = ~events["impression_id"].duplicated()
    assert np.median(delay[first]) == pytest.approx(world.config.delay_median_seconds, rel=0.05)
    assert (delay > 3600).mean() > 0.001  # some arrive hours later


def test_a_duplicate_click_arrives_after_its_original(world):
    """A re-send names the same impression and always arrives after the first event."""
    rng = np.random.default_rng(1)
    n = 200_000
    events = world.click_stream(np.arange(n), np.zeros(n), np.ones(n, bool), rng)
    repeated = events["impression_id"].duplicated(keep=False)
    assert repeated.sum() > 1000
    groups = events[repeated].groupby("impression_id")["click_time"]
    # The stream is in arrival order, so the original is the first row of each id; the
    # re-send comes strictly later, after the extra delay of duplicate_delay_seconds.
    gap = groups.last() - groups.first()
    assert (gap > 0).all()
    assert gap.mean() == pytest.approx(world.config.duplicate_delay_seconds, rel=0.1)


def test_no_clicks_no_events(world):
    events = world.click_stream(np.arange(5), np.zeros(5), np.zeros(5, bool),
                                np.random.default_rng(0))
    assert events.empty and list(events.columns) == ["impression_id", "click_time"]


@pytest.mark.parametrize("name, value", [
    ("n_users", 0), ("n_users", -5), ("n_topics", 99), ("interest_concentration", 0.0),
    ("budget_median", -1.0), ("bid_median", 0), ("target_region_share", 1.5),
    ("n_slots", 0), ("requests_per_day", 0), ("peak_hour", 24), ("spike_hour", -2),
    ("diurnal_amplitude", 1.2), ("duplicate_click_rate", -0.1), ("shift_day", -3),
    ("base_logit", float("nan")), ("declare_rate", 1.5), ("fatigue_weight", -1.0),
    ("interest_browsing", 2.0),
])
def test_invalid_config_names_field_and_range(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be"):
        WorldConfig(**{name: value})


@pytest.mark.parametrize("name, value", [
    ("n_users", 2.5), ("n_users", 3000.0), ("n_slots", True), ("requests_per_day", "100"),
    ("base_logit", "low"), ("quality_sd", None),
])
def test_wrong_type_in_config_names_field(name, value):
    with pytest.raises(TypeError, match=rf"{name} must be"):
        WorldConfig(**{name: value})


def test_numpy_numbers_are_accepted_in_config():
    config = WorldConfig(n_users=np.int64(3000), quality_sd=np.float64(0.4))
    assert config.n_users == 3000 and config.quality_sd == 0.4


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


def test_float_count_in_file_is_rejected(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text("[users]\nn_users = 3000.0\n")
    with pytest.raises(TypeError, match="n_users must be an integer"):
        WorldConfig.load(path)
    path.write_text("[users\nn_users = 3000\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        WorldConfig.load(path)


def test_overrides_and_bad_calls(world):
    assert WorldConfig.load(n_users=500).n_users == 500
    assert dataclasses.replace(world.config, n_slots=3) == world.config
    with pytest.raises(ValueError, match="seed"):
        World(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        World(seed=1.0)
    with pytest.raises(TypeError, match="config"):
        World({"n_users": 100})
    with pytest.raises(ValueError, match="day"):
        world.requests(-1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="same length"):
        world.relevance(np.arange(3), np.arange(2), np.arange(3), np.zeros(3, int), 0)
    with pytest.raises(ValueError, match="ads must be integers"):
        world.relevance(np.zeros(1, int), np.array([10**7]), np.zeros(1, int),
                        np.zeros(1, int), 0)
    with pytest.raises(ValueError, match="kind"):
        world.view.label("colour", [0])


@pytest.mark.parametrize("change, error, name", [
    ({"publishers": [-1]}, ValueError, "publishers"),          # not silently the last one
    ({"publishers": [60]}, ValueError, "publishers"),
    ({"hours": [12.5]}, ValueError, "hours"),
    ({"hours": [24]}, ValueError, "hours"),
    ({"users": [0.0]}, ValueError, "users"),                   # float ids
    ({"ads": [1.0]}, ValueError, "ads"),
    ({"users": [np.nan]}, ValueError, "users"),
    ({"users": "0"}, TypeError, "users"),
    ({"day": 1.0}, TypeError, "day"),
    ({"day": -1}, ValueError, "day"),
    ({"exposures": -1}, ValueError, "exposures"),
    ({"exposures": [np.nan]}, ValueError, "exposures"),
])
def test_world_methods_reject_bad_rows_naming_them(world, change, error, name):
    args = {"users": [0], "ads": [0], "publishers": [0], "hours": [0], "day": 0} | change
    with pytest.raises(error, match=name):
        world.relevance(**args)
    with pytest.raises(error, match=name):
        world.click_probability(**args, positions=[1])


@pytest.mark.parametrize("call, error, name", [
    (lambda w: w.requests(0.0, np.random.default_rng(0)), TypeError, "day"),
    (lambda w: w.requests(0, np.random.default_rng(0), n=10.0), TypeError, "^n must"),
    (lambda w: w.requests(0, np.random.default_rng(0), n=0), ValueError, "^n must"),
    (lambda w: w.requests(0, np.random.default_rng(0), first_id=-1), ValueError, "first_id"),
    (lambda w: w.examine([1.0]), ValueError, "position"),
    (lambda w: w.topic_drift(2.0), TypeError, "day"),
    (lambda w: w.delay_cdf(-1.0), ValueError, "seconds"),
    (lambda w: w.delay_cdf("60"), TypeError, "seconds"),
    (lambda w: w.draw_clicks([0.5, 1.5], np.random.default_rng(0)), ValueError, "^p "),
    (lambda w: w.draw_clicks([np.nan], np.random.default_rng(0)), ValueError, "^p "),
    (lambda w: w.click_stream([0.5], [0.0], [True], np.random.default_rng(0)), ValueError,
     "impression_id"),
    (lambda w: w.click_stream([0], [np.nan], [True], np.random.default_rng(0)), ValueError,
     "impression_time"),
    (lambda w: w.click_stream([0, 1], [0.0], [True, True], np.random.default_rng(0)),
     ValueError, "same length"),
])
def test_other_world_calls_reject_bad_input(world, call, error, name):
    with pytest.raises(error, match=name):
        call(world)


def test_delay_cdf_is_the_share_of_clicks_within_a_window(world):
    assert world.delay_cdf(0) == 0.0
    assert world.delay_cdf(world.config.delay_median_seconds) == pytest.approx(0.5)
    rng = np.random.default_rng(2)
    n = 100_000
    events = world.click_stream(np.arange(n), np.zeros(n), np.ones(n, bool), rng)
    first = events.drop_duplicates("impression_id")
    assert (first["click_time"] <= 600).mean() == pytest.approx(world.delay_cdf(600), abs=0.01)
