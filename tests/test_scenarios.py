"""Step 7's scenarios change exactly what they say, from the day they say, and nothing else.

- Seasons: each topic's appeal swings with period ``drift_period_days`` and amplitude
  ``drift_amplitude``.
- A sudden shift on ``shift_day``: topic appeal moves from that day on, not before.
- A segment failure (:class:`~adsys.serving.FeatureFault`): from its day on, requests
  from one device get one numeric feature set to a value, in the model's input and in
  the logged features; other devices and other features are untouched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.events import FEATURE_PREFIX
from adsys.features import NUMERIC_COLUMNS
from adsys.history import ExposureCounter
from adsys.observable import DEVICES
from adsys.serving import AdServer, FeatureFault
from adsys.simulate import SimulationConfig, bootstrap, simulate
from adsys.world import World, WorldConfig

SHIFT_DAY = 5


@pytest.fixture(scope="module")
def worlds() -> tuple[World, World]:
    """The same world (same seed) without and with a sudden shift."""
    return World(seed=3), World(WorldConfig.load(shift_day=SHIFT_DAY), seed=3)


def test_the_shift_moves_topic_appeal_from_its_day_on_and_not_before(worlds):
    calm, shifted = worlds
    for day in range(SHIFT_DAY):
        np.testing.assert_array_equal(calm.topic_drift(day), shifted.topic_drift(day))
    jumps = [shifted.topic_drift(day) - calm.topic_drift(day) for day in range(SHIFT_DAY, 40)]
    for jump in jumps:                        # one jump, the same on every later day
        np.testing.assert_allclose(jump, jumps[0])
    assert np.abs(jumps[0]).max() > 0.3 and np.std(jumps[0]) == pytest.approx(1.0, abs=0.5)


def test_the_shift_is_its_mean_plus_its_size_times_one_draw_per_topic(worlds):
    calm, shifted = worlds
    shock = World(WorldConfig.load(shift_day=SHIFT_DAY, shift_mean=-0.4, shift_size=0.5),
                  seed=3)
    unit = shifted.topic_drift(SHIFT_DAY) - calm.topic_drift(SHIFT_DAY)   # mean 0, size 1
    jump = shock.topic_drift(SHIFT_DAY) - calm.topic_drift(SHIFT_DAY)
    np.testing.assert_allclose(jump, -0.4 + 0.5 * unit, atol=1e-12)
    np.testing.assert_array_equal(shock.topic_drift(SHIFT_DAY - 1),
                                  calm.topic_drift(SHIFT_DAY - 1))


def test_the_shift_changes_click_probabilities_only_through_the_topic(worlds):
    calm, shifted = worlds
    rng = np.random.default_rng(0)
    n = 5000
    users = rng.integers(0, calm.config.n_users, n)
    ads = rng.integers(0, calm.view.n_ads, n)
    pages = rng.integers(0, calm.config.n_publishers, n)
    hours = rng.integers(0, 24, n)
    positions = rng.integers(1, calm.config.n_slots + 1, n)
    topic = calm.view.ads["topic"].to_numpy()[ads]
    for day in (0, SHIFT_DAY - 1):
        np.testing.assert_array_equal(
            calm.click_probability(users, ads, pages, hours, positions, day),
            shifted.click_probability(users, ads, pages, hours, positions, day))
    before = calm.click_probability(users, ads, pages, hours, positions, SHIFT_DAY)
    after = shifted.click_probability(users, ads, pages, hours, positions, SHIFT_DAY)
    logit = np.log(after / calm.examine(positions) / (1 - after / calm.examine(positions)))
    base = np.log(before / calm.examine(positions) / (1 - before / calm.examine(positions)))
    jump = shifted.topic_drift(SHIFT_DAY) - calm.topic_drift(SHIFT_DAY)
    np.testing.assert_allclose(logit - base, jump[topic], atol=1e-6)


def test_seasons_swing_each_topic_with_the_configured_period_and_amplitude():
    world = World(WorldConfig.load(drift_amplitude=0.5, drift_period_days=10.0), seed=1)
    drift = np.array([world.topic_drift(day) for day in range(40)])
    np.testing.assert_allclose(drift[:30], drift[10:40], atol=1e-9)     # period 10 days
    assert np.abs(drift).max() <= 0.5 + 1e-12 and np.abs(drift).max() > 0.45
    assert not np.allclose(drift[0], drift[0][0])       # topics peak on different days
    still = World(WorldConfig.load(drift_amplitude=0.0), seed=1)
    assert all(np.all(still.topic_drift(day) == 0) for day in range(30))


@pytest.mark.parametrize("field, value, error", [
    ("shift_day", -2, ValueError), ("shift_day", 3.0, TypeError),
    ("shift_size", -0.5, ValueError), ("shift_size", float("nan"), ValueError),
    ("shift_mean", -6.0, ValueError), ("shift_mean", "down", TypeError),
    ("drift_amplitude", -1.0, ValueError), ("drift_period_days", 0.5, ValueError),
    ("drift_period_days", "weekly", TypeError),
])
def test_bad_scenario_settings_are_rejected_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        WorldConfig.load(**{field: value})


# ---- the segment failure -----------------------------------------------------------

FAULT = FeatureFault(day=2, device="tablet", feature="user_topic_view_share", value=0.0)


@pytest.fixture(scope="module")
def served() -> dict[tuple[bool, int], tuple[pd.DataFrame, pd.DataFrame]]:
    """The same requests served by a healthy and a faulty server, before and on the
    fault's day: (impressions, candidates) for each (faulty, day)."""
    world = World(seed=0)
    view = world.view
    rng = np.random.default_rng(0)
    models, history, _ = bootstrap(world, rng, 20_000, browsing_days=2,
                                   requests_per_day=5000)
    out = {}
    for faulty in (False, True):
        server = AdServer(view, models.heavy, history, ExposureCounter(view.n_ads),
                          models.light, k=10, reserve=1.0, log_candidates=True,
                          fault=FAULT if faulty else None)
        for day in (FAULT.day - 1, FAULT.day):
            requests = world.requests(day, np.random.default_rng(day), n=3000)
            log = server.serve(requests, day)
            out[faulty, day] = log, server.candidates
    return out


def test_before_its_day_the_fault_changes_nothing(served):
    for table in (0, 1):
        pd.testing.assert_frame_equal(served[True, FAULT.day - 1][table],
                                      served[False, FAULT.day - 1][table])


def test_the_fault_touches_only_its_device_and_feature(served):
    healthy, faulty = served[False, FAULT.day][1], served[True, FAULT.day][1]
    # Same candidates (the selector does not read the feature), same order.
    pd.testing.assert_frame_equal(healthy[["request_id", "ad_id"]],
                                  faulty[["request_id", "ad_id"]])
    hit = (faulty[FEATURE_PREFIX + "device"] == FAULT.device).to_numpy()
    assert 0 < hit.mean() < 0.3
    column = FEATURE_PREFIX + FAULT.feature
    assert (faulty.loc[hit, column] == FAULT.value).all()
    assert (healthy.loc[hit, column] > 0).all()           # a smoothed share is never 0
    others = [c for c in faulty.columns if c.startswith(FEATURE_PREFIX) and c != column]
    pd.testing.assert_frame_equal(faulty[others], healthy[others])
    pd.testing.assert_frame_equal(faulty[~hit], healthy[~hit])       # pCTR included
    assert (faulty.loc[hit, "pctr"] != healthy.loc[hit, "pctr"]).mean() > 0.9


def test_the_logged_impressions_carry_the_bad_value_on_that_device_only(served):
    for faulty in (False, True):
        log = served[faulty, FAULT.day][0]
        hit = log["device"] == DEVICES.index(FAULT.device)
        value = log[FEATURE_PREFIX + FAULT.feature]
        assert (value[hit] == FAULT.value).all() == faulty
        assert (value[~hit] > 0).all()
    healthy, faulty = served[False, FAULT.day][0], served[True, FAULT.day][0]
    other = DEVICES.index("mobile")
    pd.testing.assert_frame_equal(faulty[faulty["device"] == other].reset_index(drop=True),
                                  healthy[healthy["device"] == other].reset_index(drop=True))


def test_a_simulated_fault_starts_on_its_day():
    world = World(seed=0)
    config = SimulationConfig(bootstrap_requests=5000, browsing_days=1, fault=FAULT)
    days = list(simulate(world, 3, seed=1, config=config, n_requests=2000))
    calm = next(simulate(world, 1, seed=1, config=SimulationConfig(
        bootstrap_requests=5000, browsing_days=1), n_requests=2000))
    pd.testing.assert_frame_equal(days[0].impressions, calm.impressions)
    for result in days:
        imp = result.impressions
        hit = imp["device"] == DEVICES.index(FAULT.device)
        zero = imp[FEATURE_PREFIX + FAULT.feature] == FAULT.value
        assert (zero == (hit & (result.day >= FAULT.day))).all()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"day": -1}, ValueError, "day"),
    ({"day": 1.5}, TypeError, "day"),
    ({"device": "phone"}, ValueError, "device"),
    ({"feature": "age_band"}, ValueError, "feature"),
    ({"feature": "clicks"}, ValueError, "feature"),
    ({"value": "zero"}, TypeError, "value"),
    ({"value": float("nan")}, ValueError, "value"),
    ({"value": float("inf")}, ValueError, "value"),
])
def test_a_bad_fault_is_rejected_naming_the_parameter(kwargs, error, message):
    args = {"day": 1, "device": "tablet", "feature": "ad_ctr_logit", **kwargs}
    with pytest.raises(error, match=message):
        FeatureFault(**args)


def test_the_simulation_takes_only_a_fault_object():
    with pytest.raises(TypeError, match="fault"):
        SimulationConfig(fault="tablet")
    assert set(NUMERIC_COLUMNS) >= {FAULT.feature}
