"""Budget pacing: a synthetic market day, plus properties of the click charger."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.pacing import Pacer, charge, traffic_forecast

STEPS_PER_HOUR = 12  # 5-minute steps
SEEDS = (0, 1, 2)

# Campaigns of the market day. With rate 1 a campaign's daily spend is about
# clicks_per_day (unit price), so demand / budget is 2, 5, 10, 30 for the first four:
# unpaced, they would all run out of budget. Campaign 4 cannot spend its budget
# (demand 0.5x) and campaign 5 has no budget at all.
BUDGETS = np.array([250.0, 100.0, 100.0, 100.0, 100.0, 0.0])
CLICKS_PER_DAY = np.array([500.0, 500.0, 1000.0, 3000.0, 50.0, 500.0])
OVER_DEMAND = np.arange(4)


def uneven_traffic() -> np.ndarray:
    """Expected traffic share of each 5-minute step of a day.

    A 9x day/night swing (trough at 04:00, peak at 16:00) and a one-hour spike with
    three times the traffic at 12:00-13:00.
    """
    hours = (np.arange(24 * STEPS_PER_HOUR) + 0.5) / STEPS_PER_HOUR
    curve = 1.0 - 0.8 * np.cos(2 * np.pi * (hours - 4) / 24)
    curve[(hours >= 12) & (hours < 13)] *= 3.0
    return curve / curve.sum()


def play_day(pacer: Pacer, clicks_per_day: np.ndarray, seed: int,
             traffic: np.ndarray | None = None) -> np.ndarray:
    """Play one day of a synthetic market under ``pacer``; return unbilled spend per campaign.

    In step t a campaign throttled to rate m takes part in a share m of its auctions,
    so it gets Poisson(traffic[t] x clicks_per_day x m) clicks, each priced
    lognormal noise of mean 1.
    ``traffic`` (one curve, or a column per campaign) defaults to the pacer's own
    forecast. Clicks reach :func:`charge` in random order and the charged spend is recorded.
    """
    rng = np.random.default_rng(seed)
    n = len(pacer.budgets)
    unbilled_total = np.zeros(n)
    for step, share in enumerate(pacer.traffic_curve if traffic is None else traffic):
        m = pacer.rates()
        n_clicks = rng.poisson(share * clicks_per_day * m)
        ids = rng.permutation(np.repeat(np.arange(n), n_clicks))
        prices = rng.lognormal(-0.045, 0.3, len(ids))
        charged, unbilled = charge(pacer.spent, pacer.budgets, ids, prices)
        pacer.record(step, np.bincount(ids, charged, minlength=n))
        unbilled_total += np.bincount(ids, unbilled, minlength=n)
    return unbilled_total


@pytest.fixture(scope="module")
def paced_days() -> list[Pacer]:
    days = []
    for seed in SEEDS:
        pacer = Pacer(BUDGETS, uneven_traffic())
        play_day(pacer, CLICKS_PER_DAY, seed)
        days.append(pacer)
    return days


@pytest.fixture(scope="module")
def unpaced_days() -> list[Pacer]:
    days = []
    for seed in SEEDS:
        pacer = Pacer.unpaced(BUDGETS, uneven_traffic())
        play_day(pacer, CLICKS_PER_DAY, seed)
        days.append(pacer)
    return days


def test_paced_campaigns_end_the_day_at_95_to_100_percent_of_budget(paced_days):
    for pacer in paced_days:
        share = pacer.spent[OVER_DEMAND] / BUDGETS[OVER_DEMAND]
        assert np.all(share >= 0.95), share
        assert np.all(share <= 1.0 + 1e-12), share


def test_paced_spend_follows_traffic(paced_days):
    for pacer in paced_days:
        cumulative = np.cumsum(pacer.spend_by_step, axis=0)[:, OVER_DEMAND]
        deviation = np.abs(cumulative - pacer.planned_spend[:, OVER_DEMAND]).max(axis=0)
        assert np.all(deviation < 0.10 * BUDGETS[OVER_DEMAND]), deviation / BUDGETS[OVER_DEMAND]


def test_pacer_leaves_campaigns_without_enough_demand_at_full_bid(paced_days):
    # After the ramp-up the controller bids in full nearly all day (a burst of clicks
    # in one step can still dip the rate briefly), and the campaign stays under budget.
    for pacer in paced_days:
        after_ramp_up = pacer.rates_by_step[2 * STEPS_PER_HOUR :, 4]
        assert np.mean(after_ramp_up == 1.0) > 0.85
        assert pacer.spent[4] < 0.7 * BUDGETS[4]


def test_pacer_never_serves_a_zero_budget(paced_days, unpaced_days):
    for pacer in paced_days + unpaced_days:
        assert np.all(pacer.rates_by_step[:, 5] == 0.0)
        assert pacer.spent[5] == 0.0


def test_rates_stay_in_unit_interval(paced_days):
    for pacer in paced_days:
        assert np.all((pacer.rates_by_step >= 0.0) & (pacer.rates_by_step <= 1.0))


def test_unpaced_baseline_exhausts_budgets_early(unpaced_days, paced_days):
    cumulative_traffic = np.cumsum(uneven_traffic())
    for unpaced, paced in zip(unpaced_days, paced_days, strict=True):
        spent = np.cumsum(unpaced.spend_by_step, axis=0)[:, OVER_DEMAND]
        assert np.all(spent[-1] >= BUDGETS[OVER_DEMAND] * (1 - 1e-12))
        exhausted = np.argmax(spent >= BUDGETS[OVER_DEMAND] * (1 - 1e-12), axis=0)
        # Out of budget before 60% of the day's traffic has been seen ...
        assert np.all(cumulative_traffic[exhausted] < 0.6)
        paced_spent = np.cumsum(paced.spend_by_step, axis=0)[exhausted, OVER_DEMAND]
        assert np.all(paced_spent < 0.7 * BUDGETS[OVER_DEMAND])
        for campaign, step in zip(OVER_DEMAND, exhausted, strict=True):
            # ... after bidding in full all along, and nothing is shown after that.
            assert np.all(unpaced.rates_by_step[: step + 1, campaign] == 1.0)
            assert np.all(unpaced.rates_by_step[step + 1 :, campaign] == 0.0)


def test_pacer_follows_each_campaigns_own_traffic_curve():
    # Campaign 1 targets an audience that only shows up from 17:00 to midnight. Paced on
    # its own curve it spreads its budget over the evening (after ramping up from the
    # cautious initial rate for about an hour). Paced on the average curve it is
    # far behind plan at 17:00 and rushes a third of its budget out early in the evening.
    traffic = uneven_traffic()
    evening = np.where(np.arange(len(traffic)) >= 17 * STEPS_PER_HOUR, traffic, 0.0)
    curves = np.column_stack([traffic, evening / evening.sum()])
    budgets = np.array([100.0, 100.0])
    clicks_per_day = np.array([500.0, 500.0])
    for seed in SEEDS:
        own = Pacer(budgets, curves)
        play_day(own, clicks_per_day, seed)
        share = own.spent / budgets
        assert np.all((share >= 0.95) & (share <= 1.0 + 1e-12)), share
        assert np.all(own.planned_spend[: 17 * STEPS_PER_HOUR, 1] == 0.0)
        deviation = np.abs(np.cumsum(own.spend_by_step, axis=0) - own.planned_spend).max(axis=0)
        assert deviation[0] < 0.10 * budgets[0] and deviation[1] < 0.20 * budgets[1]

        average = Pacer(budgets, traffic)
        play_day(average, clicks_per_day, seed, traffic=curves)
        rushed = np.cumsum(average.spend_by_step[:, 1]) - own.planned_spend[:, 1]
        assert np.abs(rushed).max() > 0.30 * budgets[1]


def test_rates_are_zero_once_the_day_is_over():
    pacer = Pacer([10.0], [0.5, 0.5])
    pacer.record(0, [1.0])
    pacer.record(1, [1.0])
    assert pacer.rates().tolist() == [0.0]


def test_controller_raises_the_rate_when_behind_and_lowers_it_when_ahead():
    behind, ahead = Pacer([100.0], [0.25] * 4), Pacer([100.0], [0.25] * 4)
    start = behind.rates()[0]
    behind.record(0, [0.0])
    ahead.record(0, [30.0])
    assert behind.rates()[0] > start > ahead.rates()[0] > 0.0


def test_rate_is_capped_so_the_worst_step_fits_the_budget_left():
    pacer = Pacer([10.0], [0.25] * 4, safety_factor=1.0, initial_rate=0.1)
    pacer.record(0, [3.0])  # 3 dollars at rate 0.1 and traffic 0.25: 120 per unit
    assert pacer.rates()[0] == pytest.approx(min(pacer._rates[0], 7.0 / (120 * 0.25)))
    pacer.record(1, [5.0])  # 2 left
    per_unit = 8.0 / (pacer.rates_by_step[:2, 0] * 0.25).sum()
    assert pacer.rates()[0] == pytest.approx(min(pacer._rates[0], 2.0 / (per_unit * 0.25)))
    stopped = Pacer([10.0], [0.25] * 4, safety_factor=1.0, min_rate=0.05, initial_rate=0.1)
    stopped.record(0, [9.5])  # 0.5 left / 95 per unit of rate is below min_rate
    assert stopped.rates()[0] == 0.0
    stopped.record(1, [0.0])  # a step without spend does not resume it
    assert stopped.rates()[0] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"budgets": [10.0, -1.0]}, "budgets"),
        ({"budgets": [np.nan]}, "budgets"),
        ({"traffic_curve": [0.5, 0.6]}, "traffic_curve"),
        ({"traffic_curve": [1.5, -0.5]}, "traffic_curve"),
        ({"traffic_curve": [[0.5, 0.5], [0.5, 0.5]]}, "traffic_curve"),
        ({"traffic_curve": [[0.5], [0.4]]}, "traffic_curve"),
        ({"gain": -1.0}, "gain"),
        ({"min_rate": 0.0}, "min_rate"),
        ({"initial_rate": 1.5}, "initial_rate"),
        ({"safety_factor": -1.0}, "safety_factor"),
        ({"catch_up_steps": 0}, "catch_up_steps"),
    ],
)
def test_pacer_rejects_bad_parameters(kwargs, name):
    args = {"budgets": [10.0], "traffic_curve": [0.5, 0.5]} | kwargs
    with pytest.raises(ValueError, match=name):
        Pacer(**args)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"catch_up_steps": 1.5}, "catch_up_steps"),
        ({"catch_up_steps": 2.0}, "catch_up_steps"),
        ({"gain": None}, "gain"),
        ({"safety_factor": "2"}, "safety_factor"),
        ({"budgets": "10"}, "budgets"),
    ],
)
def test_pacer_rejects_parameters_of_the_wrong_type(kwargs, name):
    args = {"budgets": [10.0], "traffic_curve": [0.5, 0.5]} | kwargs
    with pytest.raises(TypeError, match=name):
        Pacer(**args)


@pytest.mark.parametrize(
    ("step", "spend", "name"),
    [(1, [1.0, 1.0], "step"), (-1, [1.0, 1.0], "step"), (0, [1.0, -1.0], "spend"),
     (0, [1.0], "spend"), (0, [1.0, np.nan], "spend")],
)
def test_record_rejects_bad_input(step, spend, name):
    pacer = Pacer([10.0, 10.0], [0.5, 0.5])
    with pytest.raises(ValueError, match=name):
        pacer.record(step, spend)


@pytest.mark.parametrize("step", [0.0, 1.5, np.float64(0), "0", None, True])
def test_record_rejects_a_step_that_is_not_an_integer(step):
    pacer = Pacer([10.0, 10.0], [0.5, 0.5])
    with pytest.raises(TypeError, match="step"):
        pacer.record(step, [1.0, 1.0])
    assert pacer.step == 0                          # nothing was recorded


def test_record_rejects_a_step_past_the_last():
    pacer = Pacer([10.0], [0.5, 0.5])
    pacer.record(0, [1.0])
    pacer.record(np.int64(1), [1.0])                # NumPy integers are fine
    with pytest.raises(ValueError, match="step must be below 2"):
        pacer.record(2, [1.0])
    assert pacer.rates().tolist() == [0.0]          # the day is over


@st.composite
def deterministic_markets(draw):
    """Budgets, cost per unit of rate and traffic: the spend of a step is known exactly."""
    n_campaigns = draw(st.integers(1, 4))
    n_steps = draw(st.integers(2, 30))
    budgets = draw(st.lists(st.floats(0.5, 100), min_size=n_campaigns, max_size=n_campaigns))
    # Dollars a campaign would spend over the whole day at rate 1: up to 50x its budget.
    demand = draw(st.lists(st.floats(0.1, 50), min_size=n_campaigns, max_size=n_campaigns))
    per_campaign = draw(st.booleans())
    shape = (n_steps, n_campaigns) if per_campaign else (n_steps,)
    weights = np.array(draw(st.lists(st.floats(0.05, 1), min_size=int(np.prod(shape)),
                                     max_size=int(np.prod(shape))))).reshape(shape)
    traffic = weights / weights.sum(axis=0)
    return (np.array(budgets), np.array(budgets) * np.array(demand), traffic,
            draw(st.floats(1, 4)), draw(st.floats(0, 3)), draw(st.floats(0.01, 1)))


@settings(max_examples=60, deadline=None)
@given(deterministic_markets())
def test_cap_keeps_the_next_step_within_the_budget_left(market):
    """With spend = cost per unit x rate x traffic share, no capped step spends more than
    the budget left before it (DESIGN 7: never above budget)."""
    budgets, cost_per_unit, traffic, safety_factor, gain, initial_rate = market
    pacer = Pacer(budgets, traffic, safety_factor=safety_factor, gain=gain,
                  min_rate=min(0.01, initial_rate), initial_rate=initial_rate)
    for step in range(pacer.n_steps):
        remaining = pacer.remaining
        spend = cost_per_unit * pacer.rates() * traffic[step]
        if step > 0:   # from the second step on the pacer knows the cost of a unit of rate
            assert np.all(spend <= remaining / safety_factor * (1 + 1e-9) + 1e-12)
        pacer.record(step, spend)
    first = cost_per_unit * initial_rate * traffic[0]
    assert np.all(pacer.spent <= np.maximum(budgets, first) * (1 + 1e-9))


def test_traffic_forecast_follows_the_request_log():
    times = np.r_[np.full(98, 3600 * 20 + 5.0), np.full(2, 86_400 + 3600 * 3.0)]
    forecast = traffic_forecast(times, 48)
    assert forecast.shape == (48,) and forecast.sum() == pytest.approx(1)
    # 98 requests at 20:00 plus one pseudo-request per hour, split over two steps.
    assert forecast[40] == pytest.approx(99 / 124 / 2)
    assert forecast[6] == pytest.approx(3 / 124 / 2)
    assert traffic_forecast([], 24) == pytest.approx(np.full(24, 1 / 24))


# --- charge ---


def charge_reference(spend_so_far, budgets, campaign_ids, prices):
    """Slow reference: bill the clicks one by one."""
    spent = np.array(spend_so_far, dtype=float)
    charged = np.zeros(len(prices))
    for i, (campaign, price) in enumerate(zip(campaign_ids, prices, strict=True)):
        charged[i] = min(price, max(budgets[campaign] - spent[campaign], 0.0))
        spent[campaign] += charged[i]
    return charged, np.asarray(prices) - charged


@st.composite
def billing(draw):
    n_campaigns = draw(st.integers(1, 5))
    money = st.floats(0, 20, allow_subnormal=False)
    budgets = draw(st.lists(money, min_size=n_campaigns, max_size=n_campaigns))
    spent = draw(st.lists(money, min_size=n_campaigns, max_size=n_campaigns))
    n_clicks = draw(st.integers(0, 30))
    ids = draw(st.lists(st.integers(0, n_campaigns - 1), min_size=n_clicks, max_size=n_clicks))
    prices = draw(st.lists(st.floats(0, 5, allow_subnormal=False), min_size=n_clicks,
                           max_size=n_clicks))
    return np.array(spent), np.array(budgets), np.array(ids, dtype=int), np.array(prices)


@given(billing())
def test_charge_matches_a_click_by_click_reference(case):
    charged, unbilled = charge(*case)
    expected_charged, expected_unbilled = charge_reference(*case)
    np.testing.assert_allclose(charged, expected_charged, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(unbilled, expected_unbilled, rtol=1e-9, atol=1e-9)


@given(billing())
def test_charge_never_exceeds_budgets_and_conserves_money(case):
    spent, budgets, ids, prices = case
    charged, unbilled = charge(*case)
    assert np.all(charged >= 0) and np.all(unbilled >= 0)
    np.testing.assert_allclose(charged + unbilled, prices, rtol=1e-12, atol=0)
    total = spent + np.bincount(ids, charged, minlength=len(budgets))
    assert np.all(total <= np.maximum(budgets, spent) + 1e-9)


def test_charge_worked_example():
    # Campaign 0 has 5 of 10 left: it pays 3, then 2 of the next 4; its last click is free.
    charged, unbilled = charge([5.0, 0.0], [10.0, 100.0], [0, 1, 0, 0], [3.0, 7.0, 4.0, 1.0])
    assert charged.tolist() == [3.0, 7.0, 2.0, 0.0]
    assert unbilled.tolist() == [0.0, 0.0, 2.0, 1.0]


def test_charge_accepts_a_step_without_clicks():
    charged, unbilled = charge([0.0], [1.0], [], [])
    assert charged.size == 0 and unbilled.size == 0


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (([0.0], [-1.0], [0], [1.0]), "budgets"),
        (([-1.0], [1.0], [0], [1.0]), "spend_so_far"),
        (([0.0, 0.0], [1.0], [0], [1.0]), "spend_so_far"),
        (([0.0], [1.0], [0], [-1.0]), "prices"),
        (([0.0], [1.0], [0], [np.nan]), "prices"),
        (([0.0], [1.0], [0, 0], [1.0]), "campaign_ids"),
        (([0.0], [1.0], [1], [1.0]), "campaign_ids"),
        (([0.0], [1.0], [0.5], [1.0]), "campaign_ids"),
    ],
)
def test_charge_rejects_bad_input(args, name):
    with pytest.raises(ValueError, match=name):
        charge(*args)
