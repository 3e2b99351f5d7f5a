"""The serving path and the day loop: money, clicks and budgets all add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.events import join_clicks
from adsys.serving import STAGES, AdServer
from adsys.simulate import SimulationConfig, bootstrap_model, simulate, simulate_day
from adsys.world import World, WorldConfig


@pytest.fixture(scope="module")
def world() -> World:
    # Uneven traffic: the day/night swing plus a noon spike of three times normal.
    return World(WorldConfig.load(spike_hour=12, spike_multiplier=3.0), seed=0)


@pytest.fixture(scope="module")
def server(world) -> AdServer:
    model, stats = bootstrap_model(world, np.random.default_rng(0), 20_000)
    return AdServer(world, model, stats, k=10, reserve=0.001)


@pytest.fixture(scope="module")
def days(world, server):
    """The same day of traffic, paced and unpaced."""
    return {pacing: simulate_day(world, server, 0, np.random.default_rng(1),
                                 SimulationConfig(pacing=pacing))
            for pacing in (True, False)}


def test_served_impressions_respect_targeting_slots_and_prices(world, server):
    requests = world.requests(0, np.random.default_rng(2), n=3000)
    log = server.serve(requests, day=0)
    assert world.matches_targeting(log["user_id"], log["ad_id"]).all()
    assert not log.duplicated(["request_id", "ad_id"]).any()
    slots = log.groupby("request_id")["position"]
    assert (slots.max() == slots.count()).all()        # slots filled from the top
    assert (log["price"] <= log["bid"] + 1e-12).all()
    assert (log["price"] * log["pctr"] >= server.reserve - 1e-12).all()
    ecpm = log["bid"] * log["pctr"]
    by_slot = ecpm.groupby([log["request_id"], log["position"]]).first().unstack()
    assert (by_slot.diff(axis=1).fillna(0).to_numpy() <= 1e-12).all()  # best eCPM on top
    assert (log["f_position"].astype(int) == log["position"]).all()
    assert (log["f_hour"] == log["hour"]).all()


def test_single_request_path_matches_the_batch_path(world, server):
    requests = world.requests(0, np.random.default_rng(3), n=200)
    batch = server.serve(requests, day=0)
    for i in range(0, 200, 40):
        one, seconds = server.serve_one(requests.take([i]), day=0)
        expected = batch[batch["request_id"] == requests.request_id[i]].reset_index(drop=True)
        pd.testing.assert_frame_equal(one, expected)
        assert set(seconds) == set(STAGES) and all(s >= 0 for s in seconds.values())


def test_throttle_removes_campaigns_and_needs_a_generator(world, server):
    requests = world.requests(0, np.random.default_rng(4), n=2000)
    shown = server.serve(requests, day=0)["campaign_id"].unique()
    throttle = np.ones(len(world.campaigns))
    throttle[shown[:5]] = 0.0
    assert not server.serve(requests, 0, throttle)["campaign_id"].isin(shown[:5]).any()
    throttle[shown[5]] = 0.5
    with pytest.raises(ValueError, match="rng"):
        server.serve(requests, 0, throttle)
    with pytest.raises(ValueError, match="throttle"):
        server.serve(requests, 0, np.ones(3))


def test_money_adds_up(days):
    for day in days.values():
        imp = day.impressions
        revenue = imp["charged"].sum()
        assert revenue == pytest.approx(day.spend.sum())          # revenue == advertiser spend
        assert day.pacer.spent.sum() <= revenue + 1e-9            # the rest: after midnight
        billed = (imp["charged"] + imp["unbilled"]) > 0
        np.testing.assert_allclose(imp.loc[billed, "charged"] + imp.loc[billed, "unbilled"],
                                   imp.loc[billed, "price"])
        assert (day.spend <= day.pacer.budgets + 1e-9).all()      # never above budget


def test_every_click_is_billed_once(days):
    for day in days.values():
        imp = day.impressions
        clicked = set(day.clicks["impression_id"])
        billed = set(imp.loc[(imp["charged"] + imp["unbilled"]) > 0, "impression_id"])
        free = set(imp.loc[imp["price"] == 0, "impression_id"])   # a zero price bills nothing
        assert billed == clicked - free
        assert day.clicks["impression_id"].duplicated().any()      # duplicates did arrive
        _, report = join_clicks(imp, day.clicks, window_seconds=3600)
        assert report.attributed + report.late == len(clicked)


def test_paced_campaigns_spend_their_budget_smoothly(world, days):
    budgets = world.campaigns["daily_budget"].to_numpy()
    paced, unpaced = days[True], days[False]
    constrained = unpaced.spend >= 0.999 * budgets        # unpaced demand exhausts the budget
    assert constrained.sum() > 50
    share = paced.spend[constrained] / budgets[constrained]
    assert (share <= 1 + 1e-9).all()
    assert np.mean(share >= 0.95) >= 0.95
    unbilled = np.bincount(paced.impressions["campaign_id"], paced.impressions["unbilled"],
                           minlength=len(budgets))
    assert unbilled.sum() < 0.01 * budgets[constrained].sum()
    # Spend follows traffic: unpaced campaigns run dry early, paced ones track the plan.
    plan = paced.pacer.planned_spend[:, constrained]
    paced_gap = np.abs(np.cumsum(paced.pacer.spend_by_step[:, constrained], 0) - plan)
    unpaced_gap = np.abs(np.cumsum(unpaced.pacer.spend_by_step[:, constrained], 0) - plan)
    assert np.median(paced_gap.max(0) / budgets[constrained]) < 0.15
    assert np.median(unpaced_gap.max(0) / budgets[constrained]) > 0.3


def test_same_seed_same_logs(world):
    config = SimulationConfig(bootstrap_requests=5000)
    runs = [list(simulate(world, days=2, seed=7, config=config, n_requests=4000))
            for _ in range(2)]
    for a, b in zip(*runs, strict=True):
        pd.testing.assert_frame_equal(a.impressions, b.impressions)
        pd.testing.assert_frame_equal(a.clicks, b.clicks)
    second_day = runs[0][1].impressions
    assert (second_day["model_version"] == 1).all()
    assert second_day["impression_id"].min() == len(runs[0][0].impressions)


@pytest.mark.parametrize("kwargs, name", [
    ({"steps_per_day": 30}, "steps_per_day"), ({"k": 0}, "k"), ({"reserve": -1.0}, "reserve"),
    ({"attribution_window": 0.0}, "attribution_window"),
])
def test_bad_simulation_config(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SimulationConfig(**kwargs)
