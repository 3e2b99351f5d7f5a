"""The Step 1 auto-checks accept the reference answers and explain the usual mistakes."""

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed, step1

# ----- CTR by position ---------------------------------------------------------


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """A small impression log whose CTR falls with position."""
    rng = np.random.default_rng(0)
    n = 6000
    position = np.tile([1, 2, 3], n // 3)
    true_p = rng.uniform(0.01, 0.08, size=n) * np.array([1.0, 0.6, 0.4])[position - 1]
    return pd.DataFrame({
        "impression_id": np.arange(n),
        "time": np.sort(rng.uniform(0, 86_400, size=n)),
        "position": position,
        "true_p": true_p,
        "clicked": rng.random(n) < true_p,
    })


def reference_ctr(log: pd.DataFrame) -> pd.Series:
    return log.groupby("position")["clicked"].mean()


def test_position_ctr_accepts_the_reference_in_several_shapes(log, capsys):
    ref = reference_ctr(log)
    step1.position_ctr(ref, log)
    assert "Correct" in capsys.readouterr().out
    step1.position_ctr(ref.to_frame(), log)
    step1.position_ctr(ref.to_dict(), log)
    step1.position_ctr(ref.to_list(), log)  # a plain list is read as positions 1, 2, 3


def test_position_ctr_placeholder_is_still_empty(log):
    with pytest.raises(CheckFailed, match="still empty"):
        step1.position_ctr(..., log)


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda log: log["clicked"].mean(), "single number"),
    (lambda log: reference_ctr(log) * 100, "percentages"),
    (lambda log: log.groupby("position")["true_p"].mean(), "true_p"),
    (lambda log: log.groupby("position")["clicked"].sum(), "click counts"),
    (lambda log: log.groupby("position")["clicked"].sum() / len(log), "all impressions"),
    (lambda log: log.groupby("position")["clicked"].sum() / log["clicked"].sum(),
     "share of all clicks"),
    (lambda log: reference_ctr(log).reset_index(drop=True), "indexed 0, 1, 2"),
    (lambda log: reference_ctr(log).iloc[:2], "one CTR per position"),
    (lambda log: reference_ctr(log).rename(index=lambda p: f"pos{p}"), "indexed by"),
    (lambda log: reference_ctr(log) + 0.001, "mean of `clicked`"),
])
def test_position_ctr_explains_typical_mistakes(log, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step1.position_ctr(wrong(log), log)


def test_position_ctr_says_how_far_off_without_giving_the_answer_away(log):
    ref = reference_ctr(log)
    wrong = ref * np.array([1.0, 1.3, 1.0])
    with pytest.raises(CheckFailed, match=r"position 2: about 1.3x too high") as failure:
        step1.position_ctr(wrong, log)
    assert "position 1" not in str(failure.value)
    assert f"{ref[2]:.4f}" not in str(failure.value) and f"{ref[2]:.2%}" not in str(failure.value)
    with pytest.raises(CheckFailed, match=r"position 3: about 2x too low"):
        step1.position_ctr(ref * np.array([1.0, 1.0, 0.5]), log)
    with pytest.raises(CheckFailed, match=r"slightly too low \(rounded\?\)"):
        step1.position_ctr(ref * 0.997, log)


# ----- eCPM ranking --------------------------------------------------------------

# Ranked by pCTR: 10, 11, 12; by bid: 13, 14, 17; by eCPM = bid x pCTR: 15, 16, 17.
CANDIDATES = pd.DataFrame({
    "ad_id": [10, 11, 12, 13, 14, 15, 16, 17],
    "bid": [0.5, 0.4, 0.3, 3.0, 2.5, 1.2, 1.0, 1.5],
    "pctr": [0.20, 0.18, 0.16, 0.01, 0.014, 0.10, 0.11, 0.07],
})


def test_ecpm_slots_accepts_the_reference(capsys):
    step1.ecpm_slots([15, 16, 17], CANDIDATES)
    assert "Correct" in capsys.readouterr().out
    step1.ecpm_slots(np.array([15, 16, 17]), CANDIDATES)
    step1.ecpm_slots(pd.Series([15, 16]), CANDIDATES, n_slots=2)


def test_ecpm_slots_placeholder_is_still_empty():
    with pytest.raises(CheckFailed, match="still empty"):
        step1.ecpm_slots(..., CANDIDATES)


@pytest.mark.parametrize(("wrong", "message"), [
    ([10, 11, 12], "pCTR alone"),
    ([13, 14, 17], "bid alone"),
    ([13, 14, 12], "lowest eCPM"),
    ([16, 15, 17], "wrong order"),
    ([5, 6, 7], "row numbers"),
    ([15, 16, 99], "not candidates"),
    ([15, 16], "exactly 3"),
    (15, "list of 3 ad ids"),
    ([15, 16, 10], "not the eCPM ranking"),
])
def test_ecpm_slots_explains_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step1.ecpm_slots(wrong, CANDIDATES)


def test_ecpm_slots_rejects_an_impossible_number_of_slots():
    with pytest.raises(ValueError, match="n_slots"):
        step1.ecpm_slots([15], CANDIDATES, n_slots=0)


# ----- labels under an attribution window -----------------------------------------

# Impression i is shown at time 1000 * i; the clicks cover every case a window meets.
LABEL_LOG = pd.DataFrame({
    "impression_id": np.arange(8),
    "time": 1000.0 * np.arange(8),
    "clicked": [True, True, True, True, True, False, False, True],
})
DELAYS = [  # (impression, delay in seconds)
    (0, 30.0),        # fast click: positive under any window
    (1, 600.0),       # within the hour, but after a minute
    (2, 5_000.0),     # late: after the hour, within the day
    (3, 200_000.0),   # after a day
    (4, 100.0),       # reported twice: the second report comes after the hour
    (4, 4_000.0),
    (7, 50.0),        # reported twice, both within a minute
    (7, 55.0),
]
CLICKS = pd.DataFrame({
    "impression_id": [i for i, _ in DELAYS],
    "click_time": [1000.0 * i + d for i, d in DELAYS],
}).sort_values("click_time", ignore_index=True)
REFERENCE_LABELS = np.array([1, 1, 0, 0, 1, 0, 0, 1])


def test_attribution_labels_accept_the_reference(capsys):
    step1.attribution_labels(REFERENCE_LABELS, LABEL_LOG, CLICKS)
    assert "Correct: 4 positives" in capsys.readouterr().out
    step1.attribution_labels(REFERENCE_LABELS.astype(bool), LABEL_LOG, CLICKS)
    step1.attribution_labels(pd.Series(REFERENCE_LABELS), LABEL_LOG, CLICKS)


def test_attribution_labels_match_the_lab_solution():
    first = CLICKS.groupby("impression_id")["click_time"].min()
    delay = LABEL_LOG["impression_id"].map(first) - LABEL_LOG["time"]
    np.testing.assert_array_equal((delay <= 3600).astype(int), REFERENCE_LABELS)


def test_attribution_labels_placeholder_is_still_empty():
    with pytest.raises(CheckFailed, match="still empty"):
        step1.attribution_labels(..., LABEL_LOG, CLICKS)


@pytest.mark.parametrize(("wrong", "message"), [
    (LABEL_LOG["clicked"].astype(int), "equals the `clicked` column"),
    ([1, 0, 0, 0, 0, 0, 0, 1], "60 seconds"),
    ([1, 1, 1, 0, 1, 0, 0, 1], "one day"),
    ([1, 1, 0, 0, 0, 0, 0, 1], "last report"),
    ([1, 1, 0, 0, 2, 0, 0, 2], "duplicate"),
    ([1, 1, 0, 0, 1, 1, 0, 0, 1, 1], "Merging"),
    ([1, 1, 0], "one per row"),
    ([1, 1, 0, 0, 1, np.nan, np.nan, 1], "NaN"),
    (["1", "1", "0", "0", "1", "0", "0", "1"], "numbers 0 and 1"),
    ([0, 0, 0, 0, 0, 0, 0, 0], "should be 4"),
])
def test_attribution_labels_explain_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step1.attribution_labels(wrong, LABEL_LOG, CLICKS)


def test_attribution_labels_reject_a_non_positive_window():
    with pytest.raises(ValueError, match="window_seconds"):
        step1.attribution_labels(REFERENCE_LABELS, LABEL_LOG, CLICKS, window_seconds=0)


# ----- judgment: choosing the attribution window ------------------------------------


@pytest.fixture(scope="module")
def day() -> tuple[np.ndarray, np.ndarray]:
    """Lognormal click delays (median 2 minutes) and a day of impressions, busier late."""
    rng = np.random.default_rng(3)
    delays = rng.lognormal(np.log(120.0), 1.5, size=20_000)
    times = 86_400 * np.sqrt(rng.random(50_000))   # density grows through the day
    return delays, times


def test_attribution_window_accepts_a_range_of_defensible_windows(day, capsys):
    delays, times = day
    for window in (1200, 1800, 3600, 2 * 3600):
        step1.attribution_window(window, delays, times)
    out = capsys.readouterr().out
    assert out.count("Correct") == 4
    assert "become negatives" in out and "tomorrow night" in out


def test_attribution_window_edges_follow_the_curves(day):
    delays, times = day
    shortest = float(np.quantile(delays, 0.9, method="higher"))
    step1.attribution_window(shortest, delays, times)
    with pytest.raises(CheckFailed, match="too short"):
        step1.attribution_window(0.9 * shortest, delays, times)
    # Impressions before 86,400 * sqrt(0.8) make up 80% of the day.
    longest = 86_400 * (1 - np.sqrt(0.8))
    step1.attribution_window(0.98 * longest, delays, times)
    with pytest.raises(CheckFailed, match="too long"):
        step1.attribution_window(1.05 * longest, delays, times)


@pytest.mark.parametrize(("window", "message"), [
    (60, "defensible in minutes"),
    (1, "defensible in hours"),
    (300, "too short"),
    (86_400, "too long"),
    (6 * 3600, "too long"),
    (-5, "positive number of seconds"),
    ("one hour", "single number"),
    (..., "still empty"),
])
def test_attribution_window_rejects_indefensible_windows(day, window, message):
    delays, times = day
    with pytest.raises(CheckFailed, match=message):
        step1.attribution_window(window, delays, times)


def test_attribution_window_rejects_bad_inputs(day):
    delays, times = day
    with pytest.raises(ValueError, match="delays"):
        step1.attribution_window(3600, [], times)
    with pytest.raises(ValueError, match="impression_times"):
        step1.attribution_window(3600, delays, times + 86_400)
    with pytest.raises(ValueError, match="min_captured"):
        step1.attribution_window(3600, delays, times, min_captured=1.5)
    with pytest.raises(ValueError, match="no window meets both"):
        step1.attribution_window(3600, delays, times, min_captured=0.999, min_labelled=0.99)
