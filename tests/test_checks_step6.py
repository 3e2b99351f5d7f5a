"""The Step 6 auto-checks accept the reference answers and explain the usual mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed
from adsys.checks import step6 as check
from adsys.position import inverse_propensity_weights, relative_examination
from adsys.prediction import recalibrate_downsampled

EXAMINE = np.array([1.0, 0.6, 0.4])


@pytest.fixture(scope="module")
def experiment() -> pd.DataFrame:
    """A randomized-slot log: half the requests shuffled, some pages not full."""
    rng = np.random.default_rng(0)
    n = 30_000
    filled = np.where(rng.random(n) < 0.9, 3, 2)
    shuffled = rng.random(n) < 0.5
    rows = []
    for slots in (2, 3):
        requests = np.flatnonzero(filled == slots)
        for slot in range(1, slots + 1):
            relevance = rng.beta(2, 40, len(requests))
            # Auction order: better ads on top unless the request was shuffled.
            boost = np.where(shuffled[requests], 1.0, 1.6 - 0.3 * slot)
            p = np.clip(EXAMINE[slot - 1] * relevance * boost, 0, 1)
            rows.append(pd.DataFrame({"request_id": requests, "position": slot,
                                      "clicked": (rng.random(len(requests)) < p).astype(int),
                                      "shuffled": shuffled[requests],
                                      "slots_filled": slots}))
    return pd.concat(rows, ignore_index=True)


def reference_examination(log: pd.DataFrame) -> np.ndarray:
    full = log[log["shuffled"] & (log["slots_filled"] == 3)]
    ctr = full.groupby("position")["clicked"].mean()
    return (ctr / ctr.loc[1]).to_numpy()


# ----- examination by hand ---------------------------------------------------------------
def test_examination_accepts_the_reference(experiment, capsys):
    check.examination_by_hand(reference_examination(experiment), experiment)
    check.examination_by_hand(list(reference_examination(experiment)), experiment)
    assert capsys.readouterr().out.count("Correct: relative examination") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda log, want: log[log["shuffled"] & (log["slots_filled"] == 3)].groupby(
        "position")["clicked"].mean().to_numpy(), "click rates of the slots"),
    (lambda log, want: 1 / want, "upside down"),
    (lambda log, want: 100 * want, "percentages"),
    (lambda log, want: relative_examination(log["position"], log["clicked"]),
     "every request"),
    (lambda log, want: relative_examination(log.loc[~log["shuffled"], "position"],
                                            log.loc[~log["shuffled"], "clicked"]),
     "auction ordered"),
    (lambda log, want: relative_examination(log.loc[log["shuffled"], "position"],
                                            log.loc[log["shuffled"], "clicked"]),
     "slots_filled"),
    (lambda log, want: want * [1.0, 1.2, 1.0], r"slot 2 too high\)"),
    (lambda log, want: want * [1.0, 0.8, 0.8], "slot 2 too low, slot 3 too low"),
])
def test_examination_explains_typical_mistakes(experiment, wrong, message):
    want = reference_examination(experiment)
    with pytest.raises(CheckFailed, match=message):
        check.examination_by_hand(wrong(experiment, want), experiment)


def test_examination_does_not_give_the_answer_away(experiment):
    want = reference_examination(experiment)
    with pytest.raises(CheckFailed) as failure:
        check.examination_by_hand(want * [1.0, 1.2, 1.0], experiment)
    assert f"{want[1]:.3f}" not in str(failure.value)


def test_examination_rejects_placeholders_and_shapes(experiment):
    with pytest.raises(CheckFailed, match="still empty"):
        check.examination_by_hand(..., experiment)
    with pytest.raises(CheckFailed, match="3 values"):
        check.examination_by_hand([1.0, 0.6], experiment)
    with pytest.raises(CheckFailed, match="array of numbers"):
        check.examination_by_hand("1, 0.6, 0.4", experiment)
    with pytest.raises(ValueError, match="columns"):
        check.examination_by_hand([1, 0.6, 0.4], experiment[["position", "clicked"]])


# ----- inverse-propensity weights -----------------------------------------------------------
@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(1)
    positions = rng.integers(1, 4, 2_000)
    clicked = (rng.random(2_000) < 0.1).astype(int)
    return positions, clicked


def test_weights_accept_the_reference(rows, capsys):
    positions, clicked = rows
    weights = np.where(clicked == 1, 1 / EXAMINE[positions - 1], 1.0)
    check.propensity_weights(weights, positions, clicked, EXAMINE)
    assert "Correct: each click in slot k" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda pos, y: 1 / EXAMINE[pos - 1], "non-clicks included"),
    (lambda pos, y: np.where(y == 1, EXAMINE[pos - 1], 1.0), "divide by it instead"),
    (lambda pos, y: np.where(y == 1, 1.0, 1 / EXAMINE[pos - 1]), "belong to the clicks"),
    (lambda pos, y: (w := inverse_propensity_weights(pos, y, EXAMINE)) / w.mean(),
     "normalized"),
    (lambda pos, y: np.ones(len(pos)), "should be 1 / examination"),
])
def test_weights_explain_typical_mistakes(rows, wrong, message):
    positions, clicked = rows
    with pytest.raises(CheckFailed, match=message):
        check.propensity_weights(wrong(positions, clicked), positions, clicked, EXAMINE)


def test_weights_reject_a_wrong_length(rows):
    positions, clicked = rows
    with pytest.raises(CheckFailed, match="2000 values"):
        check.propensity_weights(np.ones(10), positions, clicked, EXAMINE)


# ----- the attribution window (judgment) -------------------------------------------------
@pytest.fixture(scope="module")
def window_curve() -> pd.DataFrame:
    windows = np.array([60, 300, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400])
    return pd.DataFrame({
        "clicks missed": [0.67, 0.25, 0.08, 0.03, 0.01, 0.001, 0.0, 0.0, 0.0],
        "impressions waiting": [0.001, 0.005, 0.015, 0.03, 0.06, 0.19, 0.39, 0.66, 1.0],
    }, index=pd.Index(windows, name="window (s)"))


@pytest.mark.parametrize("window", [900, 1800, 3600, 7200, 10_800, 2400])
def test_window_accepts_choices_that_meet_the_requirements(window_curve, window, capsys):
    check.attribution_window(window, window_curve)
    out = capsys.readouterr().out
    assert "meets both requirements" in out and "clicks arrive too late" in out


@pytest.mark.parametrize("window, message", [
    (300, "too short"), (600, "too short"), (14_400, "longer than it needs"),
    (21_600, "longer than it needs"), (86_400, "longer than it needs"),
    (60, "in minutes"), (180, "in minutes"),
    (1, "Is it in seconds"), (100_000, "outside the measured curve"),
    (-5, "positive"), (..., "still empty"), ("an hour", "single number"),
])
def test_window_explains_the_trade_off(window_curve, window, message):
    with pytest.raises(CheckFailed, match=message):
        check.attribution_window(window, window_curve)


def test_window_states_the_requirements(window_curve):
    with pytest.raises(CheckFailed, match="at least 90%"):
        check.attribution_window(300, window_curve)
    with pytest.raises(CheckFailed, match="at least 80%"):
        check.attribution_window(21_600, window_curve)
    # Other requirements move the line: a team content with 70% of the clicks.
    check.attribution_window(300, window_curve, min_captured=0.7)


# ----- calibration of a slice ----------------------------------------------------------------
@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(2)
    p = rng.beta(2, 60, 20_000)
    new = rng.random(20_000) < 0.2
    y = (rng.random(20_000) < np.where(new, 0.8 * p, p)).astype(int)
    return y, p, new


def test_slice_calibration_accepts_the_reference(predictions, capsys):
    y, p, new = predictions
    check.slice_calibration(p[new].sum() / y[new].sum(), y, p, new)
    assert "Correct: the slice's predictions" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda y, p, m: y[m].sum() / p[m].sum(), "upside down"),
    (lambda y, p, m: p.sum() / y.sum(), "all the traffic"),
    (lambda y, p, m: 100 * p[m].sum() / y[m].sum(), "percentage"),
    (lambda y, p, m: p[m].sum() - y[m].sum(), "difference"),
    (lambda y, p, m: p[m].mean() / y.mean(), "everyone's"),
    (lambda y, p, m: p[~m].sum() / y[~m].sum(), "outside"),
    (lambda y, p, m: 0.5, "too low"),
    (lambda y, p, m: 3.0, "too high"),
])
def test_slice_calibration_explains_typical_mistakes(predictions, wrong, message):
    y, p, new = predictions
    with pytest.raises(CheckFailed, match=message):
        check.slice_calibration(wrong(y, p, new), y, p, new)


def test_slice_calibration_does_not_give_the_answer_away(predictions):
    y, p, new = predictions
    with pytest.raises(CheckFailed) as failure:
        check.slice_calibration(0.5, y, p, new)
    assert f"{p[new].sum() / y[new].sum():.3f}" not in str(failure.value)


# ----- recalibration by hand -------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_p():
    return np.random.default_rng(3).beta(2, 20, 1_000)


def test_recalibrated_accepts_equivalent_forms(raw_p, capsys):
    w = 0.1
    check.recalibrated(raw_p / (raw_p + (1 - raw_p) / w), raw_p, w)
    check.recalibrated(w * raw_p / (w * raw_p + 1 - raw_p), raw_p, w)
    check.recalibrated(recalibrate_downsampled(raw_p, w), raw_p, w)
    assert capsys.readouterr().out.count("Correct: q =") == 3


@pytest.mark.parametrize("wrong, message", [
    (lambda p, w: p, "raw predictions"),
    (lambda p, w: p * w, "odds"),
    (lambda p, w: p / w, "even higher"),
    (lambda p, w: p / (p + (1 - p) * w), "other direction"),
    (lambda p, w: 100 * recalibrate_downsampled(p, w), "percentages"),
    (lambda p, w: np.sqrt(p), "should be raw_p"),
])
def test_recalibrated_explains_typical_mistakes(raw_p, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check.recalibrated(wrong(raw_p, 0.1), raw_p, 0.1)


# ----- the keep rate (judgment) -----------------------------------------------------------
@pytest.fixture(scope="module")
def keep_curve() -> pd.DataFrame:
    rates = np.array([1.0, 0.3, 0.1, 0.03, 0.01])
    return pd.DataFrame({"rows": (3_000 + rates * 97_000).astype(int),
                         "speed-up": [1.0, 1.7, 4.0, 7.0, 12.0],
                         "log loss increase (%)": [0.0, 0.1, 0.3, 0.7, 1.8]},
                        index=pd.Index(rates, name="keep rate w"))


@pytest.mark.parametrize("rate", [0.3, 0.1, 0.03, 0.05, 0.2, 0.45])
def test_keep_rate_accepts_choices_that_meet_the_requirements(keep_curve, rate, capsys):
    check.keep_rate(rate, keep_curve)
    assert "meets both requirements" in capsys.readouterr().out


@pytest.mark.parametrize("rate, message", [
    (1.0, "on the table"), (0.9, "on the table"), (0.5, "on the table"),
    (0.01, "Too aggressive"), (0.015, "Too aggressive"), (10, "Percentages"),
    (0, r"\(0, 1\]"), (0.001, "below the measured curve"), (..., "still empty"),
])
def test_keep_rate_explains_the_trade_off(keep_curve, rate, message):
    with pytest.raises(CheckFailed, match=message):
        check.keep_rate(rate, keep_curve)


def test_keep_rate_ignores_the_timing(keep_curve, capsys):
    """The verdict follows the rows, not a CPU timing that varies from run to run."""
    noisy = keep_curve.assign(**{"speed-up": [1.0, 1.1, 1.2, 1.3, 1.4]})
    check.keep_rate(0.3, noisy)
    assert "meets both requirements" in capsys.readouterr().out


def test_judgment_checks_need_their_curves(keep_curve):
    with pytest.raises(ValueError, match="rows"):
        check.keep_rate(0.1, pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="keep rate 1"):
        check.keep_rate(0.1, keep_curve.drop(index=1.0))
    with pytest.raises(ValueError, match="clicks missed"):
        check.attribution_window(3600, pd.DataFrame({"x": [1]}))
