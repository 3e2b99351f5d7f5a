"""The Step 4 auto-checks accept the reference answers and explain the usual mistakes."""

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed, step1, step4

# ----- GSP prices -----------------------------------------------------------------

# The lab's exercise: eCPM = 1000 x bid x pCTR = $12, $16, $6, $8.80 per thousand
# impressions. With a reserve of $10 only candidates 1 and 0 are eligible: 1 takes slot 1
# and pays 12 / (1000 x 0.032) = 0.375; 0 takes slot 2 with nobody eligible below it and
# pays the floor 10 / (1000 x 0.010) = 1.00.
BIDS = [1.20, 0.50, 2.50, 0.40]
PCTR = [0.010, 0.032, 0.0024, 0.022]
SLOTS, RESERVE = 2, 10.0
REFERENCE_PRICES = [0.375, 1.0]


def lab_solution(bids, pctr, n_slots, reserve):
    """The lab's solution cell, as a function."""
    candidates = pd.DataFrame({"bid": bids, "pctr": pctr})
    ecpm = 1000 * candidates["bid"] * candidates["pctr"]
    ranked = ecpm[ecpm >= reserve].sort_values(ascending=False)
    winners = ranked.index[:n_slots]
    thresholds = [max(ranked.iloc[s + 1] if s + 1 < len(ranked) else 0.0, reserve)
                  for s in range(len(winners))]
    return [t / (1000 * candidates.loc[w, "pctr"])
            for t, w in zip(thresholds, winners, strict=True)]


def test_gsp_prices_accept_the_reference(capsys):
    step4.gsp_prices(REFERENCE_PRICES, BIDS, PCTR, SLOTS, RESERVE)
    assert "Correct: slots go to candidates [1, 0]" in capsys.readouterr().out
    step4.gsp_prices(np.array(REFERENCE_PRICES), BIDS, PCTR, SLOTS, RESERVE)
    step4.gsp_prices(pd.Series(REFERENCE_PRICES), BIDS, PCTR, SLOTS, RESERVE)
    step4.gsp_prices([0.38, 1.0], BIDS, PCTR, SLOTS, RESERVE)      # rounded to cents
    step4.gsp_prices([0.37, 1.0], BIDS, PCTR, SLOTS, RESERVE)


def test_gsp_prices_lab_solution_matches_the_reference():
    np.testing.assert_allclose(lab_solution(BIDS, PCTR, SLOTS, RESERVE), REFERENCE_PRICES)
    # Lab 4.1's worked example: eCPM $20, $30, $16, $10; B pays 20 / 30 = 0.667, A pays
    # 16 / 10 = 1.60 (1.80 with an $18 reserve).
    example = ([2.0, 1.0, 4.0, 0.5], [0.010, 0.030, 0.004, 0.020])
    np.testing.assert_allclose(lab_solution(*example, 2, 0.0), [2 / 3, 1.60])
    step4.gsp_prices([2 / 3, 1.60], *example, n_slots=2)
    step4.gsp_prices([2 / 3, 1.80], *example, n_slots=2, reserve=18.0)
    step4.gsp_prices([2 / 3], *example, n_slots=1)


def test_gsp_prices_placeholder_is_still_empty():
    with pytest.raises(CheckFailed, match="still empty"):
        step4.gsp_prices(..., BIDS, PCTR, SLOTS, RESERVE)


@pytest.mark.parametrize(("wrong", "message"), [
    ([0.50, 1.20], "first-price"),                 # each winner pays its own bid
    ([1.20, 1.00], r"next ad's \*bid\*"),          # next eligible bid, floor for the last
    ([1.20, 0.40], r"next ad's \*bid\*"),          # next bid, reserve ignored
    ([12.0, 10.0], "eCPMs"),                       # threshold eCPM not divided by pCTR
    ([375.0, 1000.0], "1000 times"),               # divided by pCTR, not by 1000 x pCTR
    ([0.000375, 0.001], "divided by 1000"),        # the 1000 applied twice
    ([], "per \\*thousand\\* impressions"),        # reserve compared with bid x pCTR
    ([0.375, 0.88], "forgot the reserve"),         # candidate 3 ($8.80) sets the price
    ([0.375, 0.0], "floor is missing"),
    ([1.0, 0.375], "candidate order"),
    ([0.375, 1.0, 0.0, 0.0], "one value per candidate"),
    ([0.375, 1.0, 0.5], "has 3 values"),
    (0.375, "one price per filled slot"),
    (["a", "b"], "hold numbers"),
    ([0.4, 1.1], "too high in slot 1 and too high in slot 2"),
    ([0.375, 0.9], r"\$0.900: too low in slot 2\."),
])
def test_gsp_prices_explain_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step4.gsp_prices(wrong, BIDS, PCTR, SLOTS, RESERVE)


def test_gsp_prices_do_not_give_the_answer_away():
    with pytest.raises(CheckFailed) as failure:
        step4.gsp_prices([0.4, 1.1], BIDS, PCTR, SLOTS, RESERVE)
    assert "0.375" not in str(failure.value) and "1.000" not in str(failure.value)


def test_gsp_prices_explain_slots_left_empty_by_the_reserve():
    # Three slots, but only two candidates reach the reserve: the third slot stays empty.
    step4.gsp_prices(REFERENCE_PRICES, BIDS, PCTR, 3, RESERVE)
    with pytest.raises(CheckFailed, match="only 2 candidate"):
        step4.gsp_prices([0.375, 1.0, 0.5], BIDS, PCTR, 3, RESERVE)


# ----- pacing plan ------------------------------------------------------------------

HOURS = np.arange(24)
TRAFFIC = (1 + 0.6 * np.cos(2 * np.pi * (HOURS - 20) / 24)) / np.sum(
    1 + 0.6 * np.cos(2 * np.pi * (HOURS - 20) / 24))
BUDGET = 250.0
REFERENCE_PLAN = BUDGET * TRAFFIC[:18].sum()


def test_pacing_plan_accepts_the_reference(capsys):
    step4.pacing_plan(REFERENCE_PLAN, BUDGET, TRAFFIC, by_hour=18)
    assert "Correct: by 18:00" in capsys.readouterr().out
    step4.pacing_plan(np.float64(REFERENCE_PLAN), BUDGET, TRAFFIC, by_hour=18)
    step4.pacing_plan(BUDGET, BUDGET, TRAFFIC, by_hour=24)       # the whole budget by midnight


def test_pacing_plan_placeholder_is_still_empty():
    with pytest.raises(CheckFailed, match="still empty"):
        step4.pacing_plan(..., BUDGET, TRAFFIC, by_hour=18)


@pytest.mark.parametrize(("wrong", "message"), [
    (BUDGET * 18 / 24, "evenly over the clock"),
    (BUDGET * TRAFFIC[18], "one hour only"),
    (BUDGET * TRAFFIC[17], "last hour before 18:00 alone"),
    (BUDGET * TRAFFIC[:19].sum(), "counted the hour starting at 18:00"),
    (BUDGET * TRAFFIC[:17].sum(), "one hour short"),
    (TRAFFIC[:18].sum(), "not dollars: multiply"),
    (100 * TRAFFIC[:18].sum(), "in percent"),
    (BUDGET * (1 - TRAFFIC[:18].sum()), "budget left"),
    ("lots", "single number"),
    (REFERENCE_PLAN + 5, "is too high"),
    (REFERENCE_PLAN - 5, "is too low"),
])
def test_pacing_plan_explains_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step4.pacing_plan(wrong, BUDGET, TRAFFIC, by_hour=18)


# The pacer's own forecast: 48 half-hour steps (here each hour's share split in two).
STEPS = np.repeat(TRAFFIC / 2, 2)


def test_pacing_plan_accepts_a_forecast_in_half_hour_steps(capsys):
    step4.pacing_plan(BUDGET * STEPS[:36].sum(), BUDGET, STEPS, by_hour=18)
    assert "the first 36 of 48 steps" in capsys.readouterr().out
    assert BUDGET * STEPS[:36].sum() == pytest.approx(REFERENCE_PLAN)


@pytest.mark.parametrize(("wrong", "message"), [
    (BUDGET * STEPS[:18].sum(), "2 steps per hour"),
    (BUDGET * STEPS[36], "one step only"),
    (BUDGET * STEPS[:37].sum(), "counted the step starting at 18:00"),
    (BUDGET * STEPS[:35].sum(), "one step short"),
    (BUDGET * 18 / 24, "evenly over the clock"),
])
def test_pacing_plan_explains_step_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step4.pacing_plan(wrong, BUDGET, STEPS, by_hour=18)


def test_pacing_plan_rejects_bad_inputs():
    with pytest.raises(ValueError, match="traffic_curve"):
        step4.pacing_plan(1.0, BUDGET, TRAFFIC[:12], by_hour=6)
    with pytest.raises(ValueError, match="traffic_curve"):
        step4.pacing_plan(1.0, BUDGET, np.full(36, 1 / 36), by_hour=6)
    with pytest.raises(ValueError, match="by_hour"):
        step4.pacing_plan(1.0, BUDGET, TRAFFIC, by_hour=0)


# ----- positives with an attribution window ------------------------------------------

AS_OF, WINDOW = 10_000.0, 600.0
TIMES = [0.0, 1000.0, 2000.0, 3000.0, 9500.0, 9800.0, 5000.0, 6000.0, 4000.0, 7000.0,
         3500.0, 4500.0, 8000.0, 8500.0]
IMPRESSIONS = pd.DataFrame({"impression_id": np.arange(len(TIMES)), "time": TIMES})
EVENTS = [  # (impression, click_time)
    (0, 100.0), (0, 150.0), (0, 180.0), (0, 190.0),   # reported four times, all in the window
    (1, 1900.0),                  # late: 900 s after the impression
    (2, 2005.0),                  # within 10 seconds
    (4, 9600.0),                  # in the window, but the window is still open at as_of
    (5, 10_100.0),                # arrives after as_of (and its window is open)
    (6, 8000.0),                  # late for 10 minutes, within the hour
    (7, 6300.0), (7, 6900.0),     # first report in the window, second after it
    (9, 7050.0), (9, 7100.0),     # reported twice, both in the window
    (10, 5500.0), (11, 6000.0),   # late for 10 minutes, within the hour
    (99, 500.0),                  # names no impression: an orphan
]
CLICKS = pd.DataFrame({"impression_id": [i for i, _ in EVENTS],
                       "click_time": [t for _, t in EVENTS]}).sort_values(
    "click_time", ignore_index=True)
REFERENCE_POSITIVES = 4  # impressions 0, 2, 7 and 9


def test_window_positives_accept_the_reference(capsys):
    step4.window_positives(REFERENCE_POSITIVES, IMPRESSIONS, CLICKS, WINDOW, AS_OF)
    out = capsys.readouterr().out
    assert "Correct: 4 positives among 12 labelled impressions; 2 impressions wait" in out
    step4.window_positives(np.int64(4), IMPRESSIONS, CLICKS, WINDOW, AS_OF)
    step4.window_positives(4.0, IMPRESSIONS, CLICKS, WINDOW, AS_OF)


def test_window_positives_lab_solution_matches_the_reference():
    received = CLICKS[CLICKS["click_time"] <= AS_OF]
    first_click = received.groupby("impression_id")["click_time"].min()
    delay = IMPRESSIONS["impression_id"].map(first_click) - IMPRESSIONS["time"]
    closed = IMPRESSIONS["time"] + WINDOW <= AS_OF
    assert int(((delay <= WINDOW) & closed).sum()) == REFERENCE_POSITIVES


def test_window_positives_placeholder_is_still_empty():
    with pytest.raises(CheckFailed, match="still empty"):
        step4.window_positives(..., IMPRESSIONS, CLICKS, WINDOW, AS_OF)


@pytest.mark.parametrize(("wrong", "message"), [
    (8, r"click \*events\*"),                 # duplicates counted
    (5, "window is still open"),              # impression 4 labelled before its window closed
    (6, "arrive after `as_of`"),              # impression 5's click from the future, too
    (11, "every clicked impression"),         # distinct ids in the whole stream
    (10, "clicked before `as_of`"),           # distinct ids received by as_of
    (7, "one-hour window"),
    (1, r"10 \*seconds\*"),
    (3, "last report"),
    (12, "number of labelled impressions"),
    (16, "number of click events"),
    (4.5, "is a count"),
    (float("nan"), "is a count"),
    ("four", "single number"),
    (2, "is too few"),
    (9, "is too many"),
])
def test_window_positives_explain_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step4.window_positives(wrong, IMPRESSIONS, CLICKS, WINDOW, AS_OF)


def test_window_positives_reject_a_non_positive_window():
    with pytest.raises(ValueError, match="window_seconds"):
        step4.window_positives(4, IMPRESSIONS, CLICKS, 0, AS_OF)


# ----- choose a reserve (a judgment call) -------------------------------------------

# A thick market, like Lab 4.1's: revenue falls as soon as the reserve removes ads.
THICK = pd.DataFrame({
    "reserve": [0, 2, 4, 6, 8, 10, 15, 20, 30],
    "rpm": [61.20, 61.20, 61.18, 61.06, 60.80, 60.38, 58.61, 56.44, 51.63],
    "fill_rate": [1.0, 1.0, 0.9997, 0.9964, 0.9885, 0.9718, 0.9002, 0.8141, 0.6478],
    "ctr": [0.0254, 0.0254, 0.0254, 0.0258, 0.0263, 0.0271, 0.0299, 0.0332, 0.0403]})
# A thin market: the floor lifts prices until it starts removing the winners.
THIN = pd.DataFrame({"reserve": [0, 5, 10, 15, 20, 30],
                     "rpm": [40.0, 44.0, 46.0, 45.0, 42.0, 35.0],
                     "fill_rate": [1.0, 0.99, 0.985, 0.98, 0.90, 0.70]})


@pytest.mark.parametrize(("curve", "reserve"), [
    (THICK, 0), (THICK, 1.0), (THICK, 4), (THICK, 8), (THICK, np.float64(6.5)),
    (THIN, 10), (THIN, 12.0), (THIN, 9.0),
])
def test_choose_reserve_accepts_every_defensible_reserve(curve, reserve, capsys):
    step4.choose_reserve(reserve, curve)
    out = capsys.readouterr().out
    assert out.startswith("Correct:") and "trades revenue and fill" in out


def test_choose_reserve_reports_the_quality_of_the_shown_ads(capsys):
    step4.choose_reserve(8, THICK)
    assert "CTR is 2.63% against 2.54%" in capsys.readouterr().out


@pytest.mark.parametrize(("curve", "reserve", "message"), [
    (THICK, 10, "only 97.2% of requests"),   # and 1.3% of revenue lost
    (THICK, 20, "only 81.4% of requests"),    # fill below the 98% the team asked for
    (THICK, 35, "outside the curve"),
    (THIN, 0, "too low"),                     # 13% below the best reserve
    (THIN, 20, "only 90.0% of requests"),
    (THICK, -1, "non-negative"),
    (THICK, float("nan"), "non-negative"),
    (THICK, "cheap", "single number"),
    (THICK, ..., "still empty"),
])
def test_choose_reserve_rejects_indefensible_reserves(curve, reserve, message):
    with pytest.raises(CheckFailed, match=message):
        step4.choose_reserve(reserve, curve)


def test_choose_reserve_limits_are_parameters():
    step4.choose_reserve(10, THICK, max_revenue_loss=0.02, min_fill=0.95)
    with pytest.raises(CheckFailed, match="too high"):
        step4.choose_reserve(8, THICK, max_revenue_loss=0.005)


def test_choose_reserve_rejects_a_bad_curve():
    with pytest.raises(ValueError, match="missing columns"):
        step4.choose_reserve(1, THICK.drop(columns="fill_rate"))
    with pytest.raises(ValueError, match="sorted"):
        step4.choose_reserve(1, THICK.iloc[::-1])


# ----- choose an attribution window (a judgment call) ----------------------------------

RNG = np.random.default_rng(0)
DELAYS = RNG.lognormal(np.log(120), 1.5, size=20_000)     # seconds to first click
SHOWN = np.sort(RNG.uniform(0, 86_400, size=200_000))      # impression times, one day
DAY_END = 86_400.0


@pytest.mark.parametrize("window", [1200, 1800, 3600, 5400, 2400.0, 4 * 3600])
def test_attribution_window_accepts_defensible_windows(window, capsys):
    step4.attribution_window(window, DELAYS, SHOWN, DAY_END)
    out = capsys.readouterr().out
    assert out.startswith("Correct:") and "less bias" in out and "fresher" in out


@pytest.mark.parametrize(("window", "message"), [
    (600, "Lengthen the window"),           # captures about 86% of the clicks
    (10, "Times are in seconds"),           # ten seconds: minutes meant
    (6 * 3600, "Shorten the window"),       # labels three quarters of the day
    (86_400, "Shorten the window"),
    (0, "positive number of seconds"),
    (float("nan"), "positive number of seconds"),
    ("an hour", "single number"),
    (..., "still empty"),
])
def test_attribution_window_rejects_indefensible_windows(window, message):
    with pytest.raises(CheckFailed, match=message):
        step4.attribution_window(window, DELAYS, SHOWN, DAY_END)


def test_attribution_window_messages_state_the_requirement():
    with pytest.raises(CheckFailed, match=r"10-minute.*capture only 8\d\.\d%.*at least 90%"):
        step4.attribution_window(600, DELAYS, SHOWN, DAY_END)
    with pytest.raises(CheckFailed, match=r"labels only 75\.\d%.*at least 80%"):
        step4.attribution_window(6 * 3600, DELAYS, SHOWN, DAY_END)
    with pytest.raises(CheckFailed, match="at least 95%"):
        step4.attribution_window(1200, DELAYS, SHOWN, DAY_END, min_captured=0.95)
    with pytest.raises(ValueError, match="must not be empty"):
        step4.attribution_window(3600, [], SHOWN, DAY_END)
    with pytest.raises(ValueError, match="min_labelled"):
        step4.attribution_window(3600, DELAYS, SHOWN, DAY_END, min_labelled=80)


@pytest.mark.parametrize("window", [600, 1000, 1200, 1800, 3600, 3 * 3600, 4 * 3600,
                                    4.8 * 3600, 5 * 3600, 6 * 3600])
def test_attribution_window_follows_lab_1s_rule(window):
    """Labs 1 and 4.2 state the same requirements: a window passes in both or in neither."""
    def verdict(check, *args):
        try:
            check(window, DELAYS, SHOWN, *args)
        except CheckFailed:
            return False
        return True

    assert verdict(step4.attribution_window, DAY_END) == verdict(step1.attribution_window,
                                                                 DAY_END)
