"""The funnel: light stage -> heavy model on the top K -> auction, against scoring every ad.

What Step 5 relies on: with K at least the eligible count the funnel *is* the
reference (nothing the heavy model would rank first is dropped), recall@K agrees
with a brute-force count, the batch and single-request paths serve the same ads
(throttled or not), and the served heavy model predicts what the trained one does.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.features import SERVING_POSITION, make_features
from adsys.funnel import ClockStageTimer, ServedClickModel, batched_stage_seconds, one_at_a_time
from adsys.index import AdIndex
from adsys.metrics import recall_at_k
from adsys.prediction import Calibrator, LightGBMClickModel, LogisticClickModel
from adsys.selection import Selector
from adsys.serving import STAGES, AdServer
from adsys.simulate import bootstrap
from adsys.world import World, WorldConfig

DAY = 0


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig.load(n_users=3000, n_advertisers=80), seed=3)


@pytest.fixture(scope="module")
def trained(world):
    """Bootstrap models, with a small LightGBM as the heavy model."""
    def heavy(downsampling_rate: float = 1.0) -> LightGBMClickModel:
        return LightGBMClickModel(n_estimators=30, min_child_samples=50, n_jobs=1,
                                  downsampling_rate=downsampling_rate)
    models, history, log = bootstrap(world, np.random.default_rng(0), 15_000, heavy,
                                     browsing_days=2)
    return models, history, log


@pytest.fixture(scope="module")
def calibrated(world, trained):
    models, history, log = trained
    features = make_features(world.view, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"], history, log["exposures"])
    calibrator = Calibrator("platt").fit(models.heavy.predict(features), log["clicked"])
    return ServedClickModel(models.heavy, calibrator)


@pytest.fixture(scope="module")
def requests(world):
    return world.requests(DAY, np.random.default_rng(1), n=300)


def server(world, trained, model, k) -> AdServer:
    models, history, _ = trained
    return AdServer(world.view, model, history, light_model=models.light, k=k, reserve=0.5)


# --- K at least every eligible ad: the funnel is the reference ------------------------


def test_k_covering_every_eligible_ad_serves_exactly_the_reference(world, trained, calibrated,
                                                                    requests):
    req, _ = AdIndex(world.view).eligible(requests, DAY)
    k_all = int(np.bincount(req).max())
    reference = server(world, trained, calibrated, None).serve(requests, DAY)
    funnel = server(world, trained, calibrated, k_all).serve(requests, DAY)
    assert len(reference) > 0
    pd.testing.assert_frame_equal(funnel, reference)


def test_light_stage_never_drops_the_heavy_models_first_ad_when_k_covers_all(
        world, trained, calibrated, requests):
    models, history, _ = trained
    view = world.view
    req, ad = AdIndex(view).eligible(requests, DAY)
    k_all = int(np.bincount(req).max())
    kept_req, kept_ad = Selector(view, history, models.light).select(requests, req, ad, k_all)
    assert set(zip(kept_req.tolist(), kept_ad.tolist(), strict=True)) == set(
        zip(req.tolist(), ad.tolist(), strict=True))
    bid = view.campaigns["max_cpc"].to_numpy()[view.ads["campaign_id"].to_numpy()[ad]]
    ecpm = bid * calibrated.predict(make_features(view, requests.user[req], ad,
                                                  requests.publisher[req], requests.hour[req],
                                                  SERVING_POSITION, history))
    order = np.lexsort((-ecpm, req))
    first = order[np.r_[True, req[order][1:] != req[order][:-1]]]
    kept = set(zip(kept_req.tolist(), kept_ad.tolist(), strict=True))
    assert all((int(req[i]), int(ad[i])) in kept for i in first)


# --- recall@K against brute force -------------------------------------------------------


def brute_force_recall(reference, candidate, groups, k, m) -> float:
    """Per group: top m by reference, top k by candidate (ties: earlier row first)."""
    shares = []
    for g in dict.fromkeys(groups.tolist()):
        rows = [i for i in range(len(groups)) if groups[i] == g]
        top_m = sorted(rows, key=lambda i: (-reference[i], i))[:m]
        top_k = set(sorted(rows, key=lambda i: (-candidate[i], i))[:k])
        shares.append(sum(i in top_k for i in top_m) / len(top_m))
    return float(np.mean(shares))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 60), k=st.integers(1, 8), m=st.integers(1, 4))
def test_recall_at_k_matches_brute_force(data, n, k, m):
    groups = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
    # Small integer scores make ties common; ties go to the earlier row.
    reference = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), float)
    candidate = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), float)
    assert recall_at_k(reference, candidate, groups, k, m) == pytest.approx(
        brute_force_recall(reference, candidate, groups, k, m))


def test_recall_of_the_light_stage_counts_what_the_selector_keeps(world, trained, calibrated,
                                                                  requests):
    models, history, _ = trained
    view = world.view
    req, ad = AdIndex(view).eligible(requests, DAY)
    order = np.lexsort((ad, req))              # rows in ad-id order: ties agree with select
    req, ad = req[order], ad[order]
    selector = Selector(view, history, models.light)
    light = selector.score(requests, req, ad)
    bid = view.campaigns["max_cpc"].to_numpy()[view.ads["campaign_id"].to_numpy()[ad]]
    heavy = 1000 * bid * calibrated.predict(make_features(
        view, requests.user[req], ad, requests.publisher[req], requests.hour[req],
        SERVING_POSITION, history))
    for k in (4, 8, 20):
        kept = set(zip(*selector.select(requests, req, ad, k), strict=True))
        shares = []
        for r in np.unique(req):
            rows = np.flatnonzero(req == r)
            top = rows[np.argsort(-heavy[rows], kind="stable")[:3]]
            shares.append(np.mean([(r, ad[i]) in kept for i in top]))
        assert recall_at_k(heavy, light, req, k, 3) == pytest.approx(np.mean(shares), abs=1e-3)
    assert recall_at_k(heavy, light, req, 4, 3) < recall_at_k(heavy, light, req, 20, 3)


# --- batch and single-request paths agree -----------------------------------------------


@pytest.mark.parametrize("k", [5, None])
@pytest.mark.parametrize("throttled", [False, True])
def test_batch_and_single_request_paths_serve_the_same_ads(world, trained, calibrated,
                                                           requests, k, throttled):
    funnel = server(world, trained, calibrated, k)
    n_campaigns = world.view.n_campaigns
    throttle = (np.random.default_rng(4).choice([0.0, 0.3, 0.7, 1.0], size=n_campaigns)
                if throttled else None)
    batch = funnel.serve(requests, DAY, throttle, np.random.default_rng(5))
    assert len(batch) > 0
    for i in range(0, len(requests), 25):
        one, _ = funnel.serve_one(requests.take([i]), DAY, throttle, np.random.default_rng(5))
        expected = batch[batch["request_id"] == requests.request_id[i]].reset_index(drop=True)
        pd.testing.assert_frame_equal(one, expected)
    if throttled:
        shown = np.unique(batch["campaign_id"])
        assert (throttle[shown] > 0).all()


# --- the heavy model as served ----------------------------------------------------------


def test_served_model_predicts_what_the_trained_model_does(world, trained, requests):
    models, history, log = trained
    view = world.view
    req, ad = AdIndex(view).eligible(requests, DAY)
    features = make_features(view, requests.user[req], ad, requests.publisher[req],
                             requests.hour[req], SERVING_POSITION, history)
    np.testing.assert_allclose(ServedClickModel(models.heavy).predict(features),
                               models.heavy.predict(features), rtol=1e-12)
    np.testing.assert_allclose(ServedClickModel(models.heavy).predict(features[:1]),
                               models.heavy.predict(features[:1]), rtol=1e-12)
    # downsampling correction and calibration are applied in the same order
    y = log["clicked"].to_numpy()
    train = make_features(view, log["user_id"], log["ad_id"], log["publisher_id"],
                          log["hour"], log["position"], history, log["exposures"])
    keep = (y == 1) | (np.random.default_rng(0).random(len(y)) < 0.3)
    sampled = LightGBMClickModel(n_estimators=20, n_jobs=1, downsampling_rate=0.3).fit(
        train[keep], y[keep])
    calibrator = Calibrator("isotonic").fit(sampled.predict(train), y)
    for direct in (True, False):
        np.testing.assert_allclose(
            ServedClickModel(sampled, calibrator, direct=direct).predict(features),
            calibrator.transform(sampled.predict(features)), rtol=1e-12)


def test_served_model_wraps_other_click_models_as_they_are(world, trained):
    _, history, log = trained
    view = world.view
    features = make_features(view, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"], history)
    logistic = LogisticClickModel().fit(features, log["clicked"])
    served = ServedClickModel(logistic)
    assert not served.direct
    np.testing.assert_array_equal(served.predict(features), logistic.predict(features))


def test_served_model_rejects_bad_inputs(world, trained, calibrated, requests):
    models, history, _ = trained
    with pytest.raises(TypeError, match="model"):
        ServedClickModel("trees")
    with pytest.raises(TypeError, match="calibrator"):
        ServedClickModel(models.heavy, calibrator="platt")
    with pytest.raises(ValueError, match="calibrator must be fitted"):
        ServedClickModel(models.heavy, Calibrator())
    with pytest.raises(TypeError, match="direct"):
        ServedClickModel(models.heavy, direct="yes")
    with pytest.raises(ValueError, match="fitted"):
        ServedClickModel(LightGBMClickModel())
    view = world.view
    features = make_features(view, requests.user[:5], np.arange(5), requests.publisher[:5],
                             requests.hour[:5], SERVING_POSITION, history)
    with pytest.raises(TypeError, match="DataFrame"):
        calibrated.predict(features.to_numpy())
    with pytest.raises(ValueError, match="missing columns"):
        calibrated.predict(features.drop(columns="hour"))
    with pytest.raises(ValueError, match="empty"):
        calibrated.predict(features[:0])
    with pytest.raises(ValueError, match="categorical"):
        calibrated.predict(features.assign(region=features["region"].cat.codes))
    broken = features.copy()
    broken.loc[0, "ad_ctr_logit"] = np.nan
    with pytest.raises(ValueError, match="finite"):
        calibrated.predict(broken)


# --- stage timers -----------------------------------------------------------------------


def test_clock_stage_timer_adds_up_what_its_clock_says():
    ticks = iter([0.0, 1.5, 2.0, 2.25, 10.0, 13.0])
    timer = ClockStageTimer(lambda: next(ticks))
    for name in ("select", "predict", "select"):
        with timer.stage(name):
            pass
    assert timer.seconds == {"select": 1.5 + 3.0, "predict": 0.25}
    with pytest.raises(TypeError, match="clock"):
        ClockStageTimer(clock=3)


def test_stage_timings_cover_every_stage_and_request(world, trained, calibrated, requests):
    funnel = server(world, trained, calibrated, 6)
    batched = batched_stage_seconds(funnel, requests.take(slice(0, 50)), DAY, repeats=2)
    assert list(batched) == list(STAGES)
    assert all(np.isfinite(v) and v >= 0 for v in batched.values())
    alone = one_at_a_time(funnel, requests.take(slice(0, 20)), DAY,
                          clock=time.perf_counter)
    assert len(alone) == 20
    assert list(alone.columns) == [*STAGES, "total", "impressions"]
    np.testing.assert_allclose(alone["total"], alone[list(STAGES)].sum(axis=1))
    log = funnel.serve(requests.take(slice(0, 20)), DAY)
    shown = log.groupby("request_id").size().reindex(requests.request_id[:20], fill_value=0)
    np.testing.assert_array_equal(alone["impressions"], shown.to_numpy())


def test_one_at_a_time_serves_an_exploring_server_with_the_callers_rng(world, trained,
                                                                       calibrated, requests):
    models, history, _ = trained
    exploring = AdServer(world.view, calibrated, history, light_model=models.light, k=6,
                         reserve=0.5, exploration=0.5)
    alone = one_at_a_time(exploring, requests.take(slice(0, 10)), DAY,
                          rng=np.random.default_rng(0))
    assert len(alone) == 10 and (alone["impressions"] > 0).any()


def test_stage_timings_reject_bad_inputs(world, trained, calibrated, requests):
    funnel = server(world, trained, calibrated, 6)
    with pytest.raises(TypeError, match="server"):
        batched_stage_seconds("server", requests, DAY)
    with pytest.raises(TypeError, match="requests"):
        one_at_a_time(funnel, requests.to_frame(), DAY)
    with pytest.raises(ValueError, match="empty"):
        one_at_a_time(funnel, requests.take(slice(0, 0)), DAY)
    with pytest.raises(ValueError, match="repeats"):
        batched_stage_seconds(funnel, requests, DAY, repeats=0)
