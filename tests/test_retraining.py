"""Retraining policies, training from the log store, logged candidates and their replay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.events import FEATURE_PREFIX, closed_labels
from adsys.features import from_log, make_features
from adsys.observable import SECONDS_PER_DAY
from adsys.prediction import LogisticClickModel, downsample_negatives
from adsys.replay import replay_auction
from adsys.retraining import POLICIES, RetrainingPolicy, fit_on_days
from adsys.simulate import SimulationConfig, simulate
from adsys.store import LogStore
from adsys.world import World

CONFIG = SimulationConfig(bootstrap_requests=5000, browsing_days=1, candidate_share=0.3)


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=2)


@pytest.fixture(scope="module")
def run(world, tmp_path_factory):
    """Three days with candidate logging, written to a store."""
    store = LogStore(tmp_path_factory.mktemp("store"))
    days = list(simulate(world, 3, seed=4, config=CONFIG, n_requests=3000))
    for result in days:
        store.write_day(result.day, impressions=result.impressions, clicks=result.clicks,
                        requests=result.requests.to_frame(), candidates=result.candidates)
    return days, store


def test_policies_name_the_days_behind_each_days_model():
    never, weekly, daily, sliding = (POLICIES[n] for n in
                                     ("never", "weekly", "daily", "sliding window"))
    assert all(never.training_days(d) == (0,) for d in range(1, 30))
    assert [weekly.training_days(d) for d in (1, 7, 8, 14, 15)] == [
        (0,), (0,), tuple(range(1, 8)), tuple(range(1, 8)), tuple(range(8, 15))]
    assert [daily.training_days(d) for d in (1, 2, 9)] == [(0,), (1,), (8,)]
    assert [sliding.training_days(d) for d in (1, 2, 3, 10)] == [(0,), (0, 1), (0, 1, 2),
                                                                 (7, 8, 9)]
    assert [weekly.trains_after(d) for d in range(9)] == [True] + [False] * 6 + [True, False]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"name": 3}, TypeError, "name"), ({"every_days": -1}, ValueError, "every_days"),
    ({"window_days": 0}, ValueError, "window_days"), ({"every_days": 1.0}, TypeError, "every"),
])
def test_a_bad_policy_is_rejected_naming_the_parameter(kwargs, error, message):
    with pytest.raises(error, match=message):
        RetrainingPolicy(**{"name": "p", "every_days": 1, "window_days": 1, **kwargs})
    with pytest.raises(ValueError, match="day"):
        POLICIES["daily"].training_days(0)


def test_fitting_from_the_store_is_the_nightly_job(world, run):
    days, store = run
    impressions = pd.concat([r.impressions for r in days], ignore_index=True)
    clicks = pd.concat([r.clicks for r in days], ignore_index=True)
    as_of = 2 * SECONDS_PER_DAY                       # the night after day 1
    closed = closed_labels(impressions, clicks, 3600, as_of)
    closed = closed[closed["day"] <= 1]
    closed = closed[downsample_negatives(closed["clicked"], 0.3, np.random.default_rng(0))]
    features = closed.filter(like=FEATURE_PREFIX).rename(columns=lambda c: c[2:])
    expected = LogisticClickModel(downsampling_rate=0.3).fit(features, closed["clicked"])
    model = fit_on_days(store, world.view, [1, 0], LogisticClickModel, 3600, 0.3,
                        np.random.default_rng(0))
    test = from_log(world.view, days[2].impressions)
    np.testing.assert_allclose(model.predict(test), expected.predict(test), rtol=1e-9)
    with pytest.raises(ValueError, match="days"):
        fit_on_days(store, world.view, [], LogisticClickModel, 3600, 0.3,
                    np.random.default_rng(0))
    with pytest.raises(TypeError, match="store"):
        fit_on_days("store", world.view, [0], LogisticClickModel, 3600, 0.3,
                    np.random.default_rng(0))


def test_features_read_back_from_the_store_are_the_features_served(world, run):
    days, store = run
    served = days[1].impressions
    back = store.sql("SELECT * FROM impressions WHERE day = 1 ORDER BY impression_id")
    assert back["f_device"].dtype != served["f_device"].dtype      # categories lost ...
    restored = from_log(world.view, back)                          # ... and restored
    expected = served.filter(like=FEATURE_PREFIX).rename(columns=lambda c: c[2:])
    pd.testing.assert_frame_equal(restored, expected.reset_index(drop=True),
                                  check_dtype=True)
    rows = make_features(world.view, served["user_id"][:5], served["ad_id"][:5],
                         served["publisher_id"][:5], served["hour"][:5], 1)
    pd.testing.assert_frame_equal(from_log(world.view, rows.add_prefix("f_")), rows)
    with pytest.raises(ValueError, match="f_device"):
        from_log(world.view, back.assign(f_device="phone"))
    with pytest.raises(ValueError, match="missing"):
        from_log(world.view, back.drop(columns="f_hour"))


def test_candidates_are_logged_for_a_sample_of_requests_without_changing_the_run(world, run):
    days, _ = run
    plain = next(simulate(world, 1, seed=4, config=SimulationConfig(
        bootstrap_requests=5000, browsing_days=1), n_requests=3000))
    pd.testing.assert_frame_equal(plain.impressions, days[0].impressions)
    assert plain.candidates is None
    for result in days:
        logged = result.candidates["request_id"].unique()
        assert 0.2 < len(logged) / result.n_requests < 0.4
        shown = result.impressions[result.impressions["request_id"].isin(logged)]
        pairs = result.candidates.set_index(["request_id", "ad_id"])
        assert pairs.index.is_unique
        np.testing.assert_allclose(pairs.loc[list(zip(shown["request_id"], shown["ad_id"],
                                                      strict=True)), "pctr"],
                                   shown["pctr"])


def test_replaying_the_logged_model_gives_back_the_logged_auction(world, run):
    days, _ = run
    result = days[2]
    candidates = result.candidates
    replayed = replay_auction(world, candidates, result.requests.to_frame(),
                              candidates["pctr"], result.day, CONFIG.reserve)
    logged = result.impressions[result.impressions["request_id"].isin(
        candidates["request_id"])].sort_values(["request_id", "position"])
    assert replayed[["request_id", "ad_id", "position"]].values.tolist() == \
        logged[["request_id", "ad_id", "position"]].values.tolist()
    np.testing.assert_allclose(replayed["price"], logged["price"])
    # Exposures are those the features saw; a user's repeat within one step of
    # serving is not counted yet, so a few truths differ.
    same = np.isclose(replayed["true_p"], logged["true_p"], rtol=1e-9)
    assert same.mean() > 0.98
    np.testing.assert_allclose(replayed["expected_revenue"],
                               replayed["price"] * replayed["true_p"])
    # A model that cannot tell ads apart shows other ads and, here, earns less.
    flat = replay_auction(world, candidates, result.requests.to_frame(),
                          np.full(len(candidates), candidates["pctr"].mean()), result.day,
                          CONFIG.reserve)
    assert flat["true_p"].sum() < replayed["true_p"].sum()


@pytest.mark.parametrize("change, error, message", [
    (lambda c, r, p: (c.drop(columns="bid"), r, p), ValueError, "candidates"),
    (lambda c, r, p: (c, r.drop(columns="user"), p), ValueError, "requests"),
    (lambda c, r, p: (c, r, p[:-1]), ValueError, "pctr"),
    (lambda c, r, p: (c, r, p + 2), ValueError, "pctr"),
    (lambda c, r, p: (c.iloc[::-1], r, p), ValueError, "grouped"),
    (lambda c, r, p: (c.to_numpy(), r, p), TypeError, "candidates"),
])
def test_bad_replay_input_is_rejected_naming_it(world, run, change, error, message):
    result = run[0][2]
    candidates, requests, pctr = change(result.candidates, result.requests.to_frame(),
                                        result.candidates["pctr"].to_numpy())
    with pytest.raises(error, match=message):
        replay_auction(world, candidates, requests, pctr, result.day, 1.0)
