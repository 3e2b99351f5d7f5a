"""The Step 4 auto-checks accept the reference answers and explain the usual mistakes."""

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed, step4

# ----- GSP prices -----------------------------------------------------------------

# The lab's exercise, with eCPM = 1000 x bid x pCTR in dollars per thousand impressions
# (the unit of adsys.auction): eCPM = $60, $80, $30, $44. With a reserve of $50 per mille
# only candidates 1 and 0 are eligible: 1 takes slot 1 and pays 60 / (1000 x 0.16) =
# 0.375; 0 takes slot 2 with nobody eligible below it and pays the floor
# 50 / (1000 x 0.05) = 1.00.
BIDS = [1.20, 0.50, 2.50, 0.40]
PCTR = [0.05, 0.16, 0.012, 0.11]
SLOTS, RESERVE = 2, 50.0
REFERENCE_PRICES = [0.375, 1.0]

# The check builds its explanations of typical mistakes from eCPM = bid x pCTR (dollars
# per impression) and compares that with the reserve, which run_auction now reads in
# dollars per *thousand* impressions: with any non-zero reserve the explanations that
# depend on the reserve are computed in the wrong unit.
UNIT_BUG = pytest.mark.xfail(strict=True, reason=(
    "BUG: adsys.checks.step4 compares eCPM = bid x pCTR (per impression) with a reserve "
    "that run_auction reads per mille; explanations that use the reserve are wrong"))


def lab_solution(bids, pctr, n_slots, reserve):
    """The lab's solution cell, as a function (eCPM and reserve per mille)."""
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


def test_gsp_prices_lab_solution_matches_the_reference():
    np.testing.assert_allclose(lab_solution(BIDS, PCTR, SLOTS, RESERVE), REFERENCE_PRICES)
    # The concept page's worked example: B pays 0.50, A pays 1.60 (1.80 with a reserve
    # of $90 per mille).
    example = ([2.0, 1.0, 4.0, 0.5], [0.05, 0.20, 0.02, 0.10])
    np.testing.assert_allclose(lab_solution(*example, 2, 0.0), [0.50, 1.60])
    np.testing.assert_allclose(lab_solution(*example, 2, 90.0), [0.50, 1.80])
    step4.gsp_prices([0.50, 1.60], *example, n_slots=2)
    step4.gsp_prices([0.50, 1.80], *example, n_slots=2, reserve=90.0)
    step4.gsp_prices([0.50], *example, n_slots=1)


def test_gsp_prices_placeholder_is_still_empty():
    with pytest.raises(CheckFailed, match="still empty"):
        step4.gsp_prices(..., BIDS, PCTR, SLOTS, RESERVE)


@pytest.mark.parametrize(("wrong", "message"), [
    ([0.50, 1.20], "first-price"),                 # each winner pays its own bid
    pytest.param([1.20, 1.00], r"next ad's \*bid\*",  # next eligible bid, floor for the last
                 marks=UNIT_BUG),
    ([1.20, 0.40], r"next ad's \*bid\*"),          # next bid, reserve ignored
    pytest.param([0.06, 0.05], "eCPMs", marks=UNIT_BUG),  # threshold not divided by pCTR
    ([375.0, 1000.0], "1000 times"),
    ([0.375, 0.88], "forgot the reserve"),         # candidate 3 ($44 per mille) sets the price
    pytest.param([0.375, 0.0], "floor is missing", marks=UNIT_BUG),
    ([1.0, 0.375], "candidate order"),
    ([0.375, 1.0, 0.0, 0.0], "one value per candidate"),
    ([0.375, 1.0, 0.5], "has 3 values"),
    (0.375, "one price per filled slot"),
    (["a", "b"], "hold numbers"),
    ([0.4, 1.1], r"should be \$0.375, \$1.000"),
])
def test_gsp_prices_explain_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step4.gsp_prices(wrong, BIDS, PCTR, SLOTS, RESERVE)


def test_gsp_prices_explain_typical_mistakes_without_a_reserve():
    """With no reserve the unit of the reserve does not matter: every explanation holds."""
    # eCPM $60, $80, $30, $44: slots go to 1 and 0; 1 pays 60 / 160 = 0.375 and 0 pays
    # 44 / 50 = 0.88.
    step4.gsp_prices([0.375, 0.88], BIDS, PCTR, SLOTS)
    for wrong, message in [([1.20, 0.40], r"next ad's \*bid\*"), ([0.06, 0.044], "eCPMs"),
                           ([375.0, 880.0], "1000 times"), ([0.88, 0.375], "candidate order")]:
        with pytest.raises(CheckFailed, match=message):
            step4.gsp_prices(wrong, BIDS, PCTR, SLOTS)


def test_gsp_prices_accept_slots_left_empty_by_the_reserve():
    # Three slots, but only two candidates reach the reserve: the third slot stays empty.
    step4.gsp_prices(REFERENCE_PRICES, BIDS, PCTR, 3, RESERVE)
    with pytest.raises(CheckFailed, match="3 values"):
        step4.gsp_prices([0.375, 1.0, 0.5], BIDS, PCTR, 3, RESERVE)


@UNIT_BUG
def test_gsp_prices_explain_slots_left_empty_by_the_reserve():
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
    (BUDGET * TRAFFIC[17], "hour 17 alone"),
    (BUDGET * TRAFFIC[:19].sum(), "counted hour 18 as well"),
    (BUDGET * TRAFFIC[:17].sum(), "one hour short"),
    (TRAFFIC[:18].sum(), "not dollars: multiply"),
    (100 * TRAFFIC[:18].sum(), "in percent"),
    (BUDGET * (1 - TRAFFIC[:18].sum()), "budget left"),
    ("lots", "single number"),
    (REFERENCE_PLAN + 5, r"should be \$"),
])
def test_pacing_plan_explains_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step4.pacing_plan(wrong, BUDGET, TRAFFIC, by_hour=18)


def test_pacing_plan_rejects_bad_inputs():
    with pytest.raises(ValueError, match="hourly_traffic"):
        step4.pacing_plan(1.0, BUDGET, TRAFFIC[:12], by_hour=6)
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
    (2, "should be 4"),
])
def test_window_positives_explain_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step4.window_positives(wrong, IMPRESSIONS, CLICKS, WINDOW, AS_OF)


def test_window_positives_reject_a_non_positive_window():
    with pytest.raises(ValueError, match="window_seconds"):
        step4.window_positives(4, IMPRESSIONS, CLICKS, 0, AS_OF)
