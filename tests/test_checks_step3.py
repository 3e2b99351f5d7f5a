"""The Step 3 auto-checks accept the reference answers and explain the usual mistakes."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from adsys import experiment, metrics
from adsys.checks import CheckFailed
from adsys.checks import step3 as check


@pytest.fixture(scope="module")
def clicks():
    """Predictions around a 2% CTR, clicks drawn from them, and a downsampling bug."""
    rng = np.random.default_rng(7)
    p = rng.beta(0.8, 40.0, size=20_000)
    y = (rng.random(p.size) < p).astype(int)
    w = 0.25
    p_buggy = p / (p + (1 - p) * w)  # forgot the recalibration after downsampling
    return y, p, p_buggy


def entropy(q: float, log=np.log) -> float:
    return float(-(q * log(q) + (1 - q) * log(1 - q)))


# ----- normalized entropy by hand ---------------------------------------------
def test_ne_accepts_the_reference_and_a_base_2_computation(clicks, capsys):
    y, p, _ = clicks
    check.normalized_entropy_by_hand(metrics.normalized_entropy(y, p), y, p)
    loss_bits = -np.mean(y * np.log2(p) + (1 - y) * np.log2(1 - p))
    check.normalized_entropy_by_hand(loss_bits / entropy(y.mean(), np.log2), y, p)
    assert capsys.readouterr().out.count("Correct: NE =") == 2


@pytest.mark.parametrize("wrong, message", [
    (lambda y, p, ne, loss: loss, "log loss itself"),
    (lambda y, p, ne, loss: loss / entropy(p.mean()), "entropy of the mean prediction"),
    (lambda y, p, ne, loss: loss / entropy(y.mean(), np.log2),
     r"nats \(np.log\) but the\s+entropy in bits"),
    (lambda y, p, ne, loss: loss / math.log(2) / entropy(y.mean()),
     r"bits \(np.log2\) but the entropy in nats"),
    (lambda y, p, ne, loss: 1 / ne, "inverse"),
    (lambda y, p, ne, loss: 1 - ne, "1 - NE"),
    (lambda y, p, ne, loss: 100 * ne, "percentage"),
    (lambda y, p, ne, loss: -ne, "sign is flipped"),
    (lambda y, p, ne, loss: loss / math.log(2), "fair coin"),
    (lambda y, p, ne, loss: loss / (-y.mean() * np.log(y.mean())), "second term"),
    (lambda y, p, ne, loss: 0.5, r"x too (high|low)\. Compute the log loss"),
    (lambda y, p, ne, loss: 1.3 * ne, r"about 1\.3x too high"),
])
def test_ne_explains_typical_mistakes(clicks, wrong, message):
    y, p, _ = clicks
    ne, loss = metrics.normalized_entropy(y, p), metrics.log_loss(y, p)
    with pytest.raises(CheckFailed, match=message):
        check.normalized_entropy_by_hand(wrong(y, p, ne, loss), y, p)


def test_ne_does_not_give_the_answer_away(clicks):
    y, p, _ = clicks
    ne = metrics.normalized_entropy(y, p)
    with pytest.raises(CheckFailed) as failure:
        check.normalized_entropy_by_hand(0.5, y, p)
    assert f"{ne:.4f}" not in str(failure.value) and f"{ne:.3f}" not in str(failure.value)


def test_ne_rejects_placeholder_nan_and_non_numbers(clicks):
    y, p, _ = clicks
    with pytest.raises(CheckFailed, match="`ne_by_hand` is still empty"):
        check.normalized_entropy_by_hand(..., y, p)
    with pytest.raises(CheckFailed, match="log of 0"):
        check.normalized_entropy_by_hand(float("nan"), y, p)
    with pytest.raises(CheckFailed, match="single number"):
        check.normalized_entropy_by_hand([0.9, 0.8], y, p)


# ----- the calibration bug -----------------------------------------------------
def buggy_metrics(y, p):
    return {"auc": metrics.roc_auc(y, p), "log_loss": metrics.log_loss(y, p),
            "calibration_ratio": metrics.calibration_ratio(y, p)}


@pytest.mark.parametrize("detector, message", [
    ("calibration_ratio", "times as many clicks"),
    ("Calibration ratio", "times as many clicks"),
    ("log_loss", "log loss rises"),
    ("NE", "log loss rises"),
])
def test_calibration_bug_accepts_the_metrics_that_see_it(clicks, capsys, detector, message):
    y, p, p_buggy = clicks
    check.calibration_bug(buggy_metrics(y, p_buggy), detector, y, p_buggy, p)
    assert message in capsys.readouterr().out


@pytest.mark.parametrize("detector, message", [
    ("auc", "AUC cannot see this bug"),
    ("roc_auc", "monotone distortion"),
    ("f1", "threshold"),
    ("accuracy", "not one of the metrics"),
    (3, "name of a metric"),
])
def test_calibration_bug_rejects_blind_metrics(clicks, detector, message):
    y, p, p_buggy = clicks
    with pytest.raises(CheckFailed, match=message):
        check.calibration_bug(buggy_metrics(y, p_buggy), detector, y, p_buggy, p)


def test_calibration_bug_checks_the_metric_values(clicks):
    y, p, p_buggy = clicks
    right = buggy_metrics(y, p_buggy)
    cases = [
        ({**right, "log_loss": metrics.log_loss(y, p)}, "value of the good predictions"),
        ({**right, "calibration_ratio": 1 / right["calibration_ratio"]}, "upside down"),
        ({**right, "calibration_ratio": p_buggy.mean()}, "mean prediction"),
        ({**right, "auc": 1 - right["auc"]}, "1 - AUC"),
        ({**right, "log_loss": 0.5}, r"x too (high|low)\. Use the functions"),
        ({**right, "auc": right["auc"] / 1.1}, r"about 1\.1x too low"),
        ({"auc": right["auc"]}, "missing the key"),
        ([1, 2, 3], "should be a dict"),
    ]
    for answer, message in cases:
        with pytest.raises(CheckFailed, match=message):
            check.calibration_bug(answer, "calibration_ratio", y, p_buggy, p)


def test_calibration_bug_placeholders(clicks):
    y, p, p_buggy = clicks
    with pytest.raises(CheckFailed, match="`bug_metrics` is still empty"):
        check.calibration_bug(..., ..., y, p_buggy, p)
    with pytest.raises(CheckFailed, match="`bug_detector` is still empty"):
        check.calibration_bug(buggy_metrics(y, p_buggy), ..., y, p_buggy, p)


# ----- sample size ----------------------------------------------------------------
BASE, LIFT = 0.02, 0.05


def test_sample_size_accepts_the_reference(capsys):
    n = experiment.sample_size_per_arm(BASE, LIFT)
    check.sample_size(n, BASE, LIFT)
    check.sample_size(float(n) + 0.4, BASE, LIFT)  # unrounded is fine
    assert capsys.readouterr().out.count("impressions per arm") == 2


@pytest.mark.parametrize("wrong, message", [
    (experiment.sample_size_per_arm(BASE, LIFT / BASE), "treated the lift as absolute"),
    (experiment.sample_size_per_arm(BASE, 100 * LIFT), "in percent"),
    (2 * experiment.sample_size_per_arm(BASE, LIFT), "both arms"),
    (experiment.sample_size_per_arm(BASE, LIFT, alpha=0.1), "one-sided"),
    (experiment.sample_size_per_arm(BASE, LIFT, power=0.5), "50% power"),
    (experiment.sample_size_per_arm(BASE, LIFT, power=0.9), "90% power"),
    (1234, "too small"),
    (10**9, "too large"),
    (-5, "positive number"),
])
def test_sample_size_explains_typical_mistakes(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check.sample_size(wrong, BASE, LIFT)


def test_sample_size_placeholder():
    with pytest.raises(CheckFailed, match="`n_per_arm` is still empty"):
        check.sample_size(..., BASE, LIFT)


@pytest.mark.parametrize("formula", list(check.shortcut_sizes(BASE, LIFT)))
def test_sample_size_accepts_the_textbook_shortcuts(formula, capsys):
    check.sample_size(check.shortcut_sizes(BASE, LIFT)[formula], BASE, LIFT)
    out = capsys.readouterr().out
    assert out.startswith("Correct:") and "design effect" in out


def test_sample_size_explains_the_base_rate_shortcut(capsys):
    # Using the control's variance twice is 2% below the package at a 2% CTR: accepted,
    # with the difference explained (pooled under the null, unpooled under the lift).
    n = check.shortcut_sizes(BASE, LIFT)["2 p (1 - p), p the base rate"]
    assert n < 0.98 * experiment.sample_size_per_arm(BASE, LIFT)
    check.sample_size(n, BASE, LIFT)
    out = capsys.readouterr().out
    assert "shortcut" in out and "pooled variance" in out


def test_sample_size_shortcut_matches_the_issue_example():
    # The concept page's old formula, (z_a + z_b)^2 2p(1-p) / (l p)^2, at p = 2% and +5%.
    z = 1.959963984540054 + 0.8416212335729143
    by_hand = z**2 * 2 * BASE * (1 - BASE) / (LIFT * BASE) ** 2
    assert by_hand == pytest.approx(check.shortcut_sizes(BASE, LIFT)[
        "2 p (1 - p), p the base rate"])


# ----- the test's length (a judgment call) ------------------------------------------
CTR, PER_DAY, EFFECT = 0.0054, 300_000, 1.5
N_ARM = experiment.sample_size_per_arm(CTR, LIFT)
NEEDED = 2 * N_ARM * EFFECT / PER_DAY          # about 11.8 days


def days_check(days):
    check.experiment_days(days, CTR, LIFT, PER_DAY, EFFECT)


@pytest.mark.parametrize("days, message", [
    (math.ceil(NEEDED), "Consider rounding to whole weeks"),
    (14, "Whole weeks cover"),
    (21, "Whole weeks cover"),
    (28, "Whole weeks cover"),          # four weeks: twice the minimum, rounded up
    (2 * NEEDED, "Consider rounding"),
    (NEEDED, "power"),
])
def test_experiment_days_accepts_every_defensible_length(days, message, capsys):
    days_check(days)
    out = capsys.readouterr().out
    assert out.startswith("Correct:") and message in out


@pytest.mark.parametrize("formula", list(check.shortcut_sizes(CTR, LIFT)))
def test_experiment_days_accepts_every_per_arm_size_the_sample_size_check_accepts(
        formula, capsys):
    # An n_per_arm the previous exercise accepted (a textbook shortcut) must not make an
    # exact test length fail, nor one rounded to two decimals.
    n = check.shortcut_sizes(CTR, LIFT)[formula]
    check.sample_size(n, CTR, LIFT)
    assert capsys.readouterr().out.startswith("Correct:")
    days = 2 * n * EFFECT / PER_DAY
    for answer in (days, round(days, 2)):
        days_check(answer)
        out = capsys.readouterr().out
        reached = re.search(r"give the test (\d+\.\d)% power", out)
        assert out.startswith("Correct:") and reached
        assert ("shade under 80%" in out) == (float(reached[1]) < 80.0)


def test_experiment_days_prints_power_with_one_decimal(capsys):
    days_check(NEEDED)
    assert re.search(r"give the test \d+\.\d% power", capsys.readouterr().out)
    with pytest.raises(CheckFailed, match=r"only \d+\.\d% of the time"):
        days_check(0.9 * NEEDED)


@pytest.mark.parametrize("days, message", [
    (2 * N_ARM / PER_DAY, "would do if impressions were independent"),
    (N_ARM * EFFECT / PER_DAY, "each arm a full day's impressions"),
    (N_ARM / PER_DAY, "leaves out the design effect"),
    (3, "too short"),
    (0.5, "too short"),
    (0.95 * NEEDED, "too short"),
    (29, "longer than the measurements defend"),
    (35, "longer than the measurements defend"),
    (60, "longer than the measurements defend"),
    (365, "longer than the measurements defend"),
    (-7, "positive number of days"),
    ("two weeks", "single number"),
])
def test_experiment_days_rejects_indefensible_lengths(days, message):
    with pytest.raises(CheckFailed, match=message):
        days_check(days)


def test_experiment_days_range_follows_the_design_effect():
    # Without clustering 9 days are enough; with a design effect of 1.5 they are not.
    check.experiment_days(9, CTR, LIFT, PER_DAY, 1.0)
    with pytest.raises(CheckFailed, match="independent"):
        check.experiment_days(2 * N_ARM / PER_DAY, CTR, LIFT, PER_DAY, EFFECT)
    with pytest.raises(ValueError, match="design_effect"):
        check.experiment_days(14, CTR, LIFT, PER_DAY, 0.0)


def test_experiment_days_placeholder():
    with pytest.raises(CheckFailed, match="`test_days` is still empty"):
        check.experiment_days(..., CTR, LIFT, PER_DAY, EFFECT)
