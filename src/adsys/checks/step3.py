"""Auto-checks for the Step 3 lab (``notebooks/03_metrics``).

Each check recomputes the answer with :mod:`adsys.metrics` or :mod:`adsys.experiment`
from the same inputs the learner used, and when the answer is wrong recognises the
usual mistakes and explains them.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

from adsys import experiment, metrics
from adsys.checks import (
    CheckFailed,
    as_number,
    explain_known_mistake,
    how_far,
    passed,
    require,
    require_answer,
)

LN2 = math.log(2.0)
LN10 = math.log(10.0)


def _close(a: float, b: float, rtol: float = 1e-6) -> bool:
    return bool(np.isfinite(a) and np.isfinite(b) and math.isclose(a, b, rel_tol=rtol,
                                                                   abs_tol=1e-12))


def _entropy(q: float) -> float:
    """Entropy in nats of a Bernoulli(q) variable."""
    return float(-(q * np.log(q) + (1 - q) * np.log1p(-q)))


def normalized_entropy_by_hand(ne_by_hand: object, y: ArrayLike, p: ArrayLike) -> None:
    """Check a normalized entropy computed by hand against :func:`metrics.normalized_entropy`.

    Parameters
    ----------
    ne_by_hand : float
        The learner's NE of predictions ``p`` for clicks ``y``.
    y, p : arrays
        Observed clicks (0/1) and predicted click probabilities.
    """
    got = as_number(ne_by_hand, "ne_by_hand")
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    want = metrics.normalized_entropy(y_arr, p_arr)
    require(np.isfinite(got),
            "`ne_by_hand` is not a finite number: a log of 0 crept in. Use log(p) for clicks "
            "and log(1 - p) for non-clicks (np.where on y), and the base rate strictly "
            "between 0 and 1.")
    if _close(got, want):
        passed(f"NE = {want:.4f}: the model's log loss is {want:.1%} of the log loss of "
               f"always predicting the base rate, so it removes {1 - want:.1%} of the "
               "uncertainty a constant prediction leaves.")
        return
    loss = metrics.log_loss(y_arr, p_arr)
    base_rate = float(y_arr.mean())
    h_mean_p = _entropy(float(np.clip(p_arr.mean(), 1e-15, 1 - 1e-15)))
    h_half_term = float(-base_rate * np.log(base_rate))
    mistakes = [
        (loss, "this is the log loss itself. NE divides it by the entropy of the base rate "
         "(the log loss of always predicting mean(y))."),
        (-want, "the sign is flipped: log loss is minus the mean log-likelihood, a positive "
         "number, and so is NE."),
        (1 / want, "this is the inverse: entropy of the base rate divided by the log loss. NE "
         "is the model's log loss over the base-rate entropy (lower is better, 1 = no better "
         "than a constant)."),
        (1 - want, "this is 1 - NE (the relative information gain). NE itself is the ratio "
         "log loss / base-rate entropy."),
        (100 * want, "this looks like a percentage; give NE as a plain ratio (0.9, not 90)."),
        (loss / h_mean_p, "you divided by the entropy of the mean prediction, mean(p). The "
         "reference is the entropy of the observed base rate, mean(y): the log loss of the "
         "best constant prediction. With mean(p) a miscalibrated model moves its own "
         "yardstick."),
        (loss / LN2, "you divided by ln 2 (the entropy of a fair coin). The reference is the "
         "entropy of the base rate, a few percent here, which is far below ln 2."),
        (loss / h_half_term, "the base-rate entropy is missing its second term: "
         "H(q) = -(q ln q + (1 - q) ln(1 - q)). With a CTR of a few percent the (1 - q) term "
         "is small but not negligible."),
        (want * LN2, "the logs have mixed bases: log loss in nats (np.log) but the entropy in "
         "bits (np.log2). Use the same base for both; the ratio is then base-free."),
        (want / LN2, "the logs have mixed bases: log loss in bits (np.log2) but the entropy in "
         "nats (np.log). Use the same base for both; the ratio is then base-free."),
        (want * LN10, "the logs have mixed bases: natural log in the log loss, log10 in the "
         "entropy. Use the same base for both."),
        (want / LN10, "the logs have mixed bases: log10 in the log loss, natural log in the "
         "entropy. Use the same base for both."),
    ]
    explain_known_mistake("ne_by_hand", got, mistakes, _close)
    raise CheckFailed(
        f"`ne_by_hand` = {got:.4f} is {how_far(got, want)}. Compute the log loss "
        "-mean(y log p + (1 - y) log(1 - p)), then divide it by the entropy of q = mean(y), "
        "-(q log q + (1 - q) log(1 - q)), with the same log base in both.")


METRIC_NAMES = ("auc", "log_loss", "calibration_ratio")
_ALIASES = {
    "auc": "auc", "roc_auc": "auc", "roc": "auc",
    "log_loss": "log_loss", "logloss": "log_loss", "cross_entropy": "log_loss",
    "ne": "log_loss", "normalized_entropy": "log_loss",
    "calibration_ratio": "calibration_ratio", "calibration": "calibration_ratio",
    "precision": "threshold", "recall": "threshold", "f1": "threshold",
}


def _metric_values(bug_metrics: object) -> dict[str, float]:
    """The answer as {metric name: float}, or a CheckFailed saying what is missing."""
    require(isinstance(bug_metrics, dict),
            "`bug_metrics` should be a dict like {'auc': ..., 'log_loss': ..., "
            f"'calibration_ratio': ...}}; got {type(bug_metrics).__name__}.")
    missing = [name for name in METRIC_NAMES if name not in bug_metrics]
    require(not missing, f"`bug_metrics` is missing the key(s) {missing}; give all of "
            f"{list(METRIC_NAMES)}.")
    return {name: as_number(bug_metrics[name], f"bug_metrics['{name}']")
            for name in METRIC_NAMES}


def calibration_bug(bug_metrics: object, bug_detector: object, y: ArrayLike,
                    p_buggy: ArrayLike, p_good: ArrayLike) -> None:
    """Check the metrics of a miscalibrated model and the metric chosen to catch the bug.

    Parameters
    ----------
    bug_metrics : dict
        ``{'auc': ..., 'log_loss': ..., 'calibration_ratio': ...}`` of ``p_buggy``.
    bug_detector : str
        Name of the metric that flags the bug: ``'calibration_ratio'`` (or
        ``'log_loss'``), not ``'auc'``.
    y : array
        Observed clicks (0/1).
    p_buggy, p_good : arrays
        Predictions with the bug (a monotone distortion of ``p_good``) and without it.
    """
    require_answer(bug_metrics, "bug_metrics")
    require_answer(bug_detector, "bug_detector")
    got = _metric_values(bug_metrics)
    functions = {"auc": metrics.roc_auc, "log_loss": metrics.log_loss,
                 "calibration_ratio": metrics.calibration_ratio}
    want = {name: f(y, p_buggy) for name, f in functions.items()}
    good = {name: f(y, p_good) for name, f in functions.items()}
    for name in METRIC_NAMES:
        if _close(got[name], want[name]):
            continue
        require(not (_close(got[name], good[name]) and name != "auc"),
                f"`bug_metrics['{name}']` is the value of the good predictions "
                f"({good[name]:.4f}); compute it on `p_buggy`.")
        if name == "calibration_ratio":
            require(not _close(got[name], 1 / want[name]),
                    "`bug_metrics['calibration_ratio']` is upside down: it is the sum of the "
                    "predictions divided by the number of clicks (above 1 = over-prediction).")
            require(not _close(got[name], float(np.mean(p_buggy))),
                    "`bug_metrics['calibration_ratio']` is the mean prediction; divide it by "
                    "the observed CTR (equivalently: sum of predictions / clicks).")
        if name == "auc":
            require(not _close(got[name], 1 - want[name]),
                    "`bug_metrics['auc']` is 1 - AUC: the scores are ranked the wrong way "
                    "round. Higher predictions should mean more likely clicks.")
        raise CheckFailed(f"`bug_metrics['{name}']` = {got[name]:.4f} is "
                          f"{how_far(got[name], want[name])}. Use the functions of "
                          "adsys.metrics on (y, p_buggy).")
    require(isinstance(bug_detector, str),
            f"`bug_detector` should be the name of a metric, a string such as "
            f"'calibration_ratio'; got {type(bug_detector).__name__}.")
    key = bug_detector.strip().lower().replace(" ", "_").replace("-", "_")
    require(key in _ALIASES,
            f"`bug_detector` = {bug_detector!r} is not one of the metrics computed here; "
            "answer 'auc', 'log_loss' or 'calibration_ratio'.")
    kind = _ALIASES[key]
    require(kind != "auc",
            f"AUC cannot see this bug: it is {want['auc']:.4f} with the bug and "
            f"{good['auc']:.4f} without. The bug is a monotone distortion, it keeps every "
            "pair of impressions in the same order, and AUC only looks at the order. Pick "
            "the metric that compares predictions with observed click rates.")
    require(kind != "threshold",
            "Precision, recall and F1 move only because more (or fewer) predictions cross "
            "a fixed threshold; retune the threshold and the bug disappears from them. They "
            "never say that predictions are too high. Pick the metric that compares "
            "predictions with observed click rates.")
    direction = "over" if want["calibration_ratio"] > 1 else "under"
    if kind == "calibration_ratio":
        passed(f"the calibration ratio is {want['calibration_ratio']:.2f} (it was "
               f"{good['calibration_ratio']:.2f}): the model predicts "
               f"{want['calibration_ratio']:.2f} times as many clicks as happened, while AUC "
               f"stays at {want['auc']:.4f}. In the auction every eCPM, and so every bid "
               "the model makes for the advertiser, is off by that factor.")
        return
    passed(f"log loss rises from {good['log_loss']:.4f} to {want['log_loss']:.4f}, so it "
           "flags the bug, while AUC does not move. The calibration ratio "
           f"({want['calibration_ratio']:.2f}) says more: which way and by how much the "
           f"model {direction}-predicts, so check it next to log loss.")


def _z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def shortcut_sizes(base_rate: float, relative_lift: float, alpha: float = 0.05,
                   power: float = 0.8) -> dict[str, float]:
    """Per-arm sizes from the common one-variance shortcuts of the textbook formula.

    ``n = (z_{1-alpha/2} + z_{power})**2 * V / (p2 - p1)**2`` with V taken as
    ``2 p1 (1 - p1)`` (the control's variance twice), ``2 pbar (1 - pbar)`` (the
    pooled variance twice) or ``p1 q1 + p2 q2`` (each arm's own). The package
    (:func:`adsys.experiment.sample_size_per_arm`) uses the pooled variance under
    the null and the unpooled one under the alternative.
    """
    p1, p2 = base_rate, base_rate * (1 + relative_lift)
    p_bar = (p1 + p2) / 2
    z2 = (_z(1 - alpha / 2) + _z(power)) ** 2
    delta2 = (p2 - p1) ** 2
    return {
        "2 p (1 - p), p the base rate": z2 * 2 * p1 * (1 - p1) / delta2,
        "2 pbar (1 - pbar), pbar the mean of the two rates": z2 * 2 * p_bar * (1 - p_bar)
        / delta2,
        "p1 q1 + p2 q2, each arm's own variance": z2 * (p1 * (1 - p1) + p2 * (1 - p2))
        / delta2,
    }


def sample_size(n_per_arm: object, base_rate: float, relative_lift: float,
                alpha: float = 0.05, power: float = 0.8) -> None:
    """Check the impressions per arm needed to detect a relative CTR lift.

    Accepts :func:`adsys.experiment.sample_size_per_arm` (pooled variance under the
    null, unpooled under the alternative) and the common shortcuts that use one
    variance for both (:func:`shortcut_sizes`), explaining the difference.

    Parameters
    ----------
    n_per_arm : int
        The learner's answer: impressions per arm, counted as independent trials.
    base_rate : float
        Control CTR, as a fraction.
    relative_lift : float
        Lift to detect, relative to ``base_rate`` (0.05 means +5%).
    alpha, power : float
        Two-sided significance level and power of the planned test.
    """
    got = as_number(n_per_arm, "n_per_arm")
    want = experiment.sample_size_per_arm(base_rate, relative_lift, alpha, power)
    require(np.isfinite(got) and got > 0,
            f"`n_per_arm` should be a positive number of impressions; got {got!r}.")

    def near(a: float, b: float) -> bool:
        return abs(a - b) <= max(1.0, 0.002 * b)

    unit = ("That counts impressions as independent trials. Users are randomized, and "
            "one user's impressions are correlated, so multiply by the design effect "
            "measured in the A/A tests to get the impressions a user-randomized test needs.")
    if near(got, want):
        passed(f"{want:,} impressions per arm ({2 * want:,} in all) to detect CTR moving from "
               f"{base_rate:.3%} to {base_rate * (1 + relative_lift):.3%} "
               f"({relative_lift:+.0%} relative) with {power:.0%} power at alpha = {alpha}. "
               + unit)
        return
    for formula, size in shortcut_sizes(base_rate, relative_lift, alpha, power).items():
        if near(got, size):
            passed(f"{got:,.0f} impressions per arm, from the shortcut with the variance "
                   f"{formula}. The package's sample_size_per_arm uses the pooled variance "
                   f"under 'no difference' and each arm's own under the lift, and gives "
                   f"{want:,} ({want / got - 1:+.1%}); at a CTR this small both are fine for "
                   "planning, since the base rate you plug in is itself uncertain. " + unit)
            return

    def size(**changes: float) -> float | None:
        design = {"base_rate": base_rate, "relative_lift": relative_lift, "alpha": alpha,
                  "power": power, **changes}
        try:
            return float(experiment.sample_size_per_arm(**design))
        except ValueError:
            return None

    absolute = base_rate + relative_lift
    mistakes = [
        (size(relative_lift=relative_lift / base_rate),
         f"you treated the lift as absolute: {relative_lift:.0%} relative means CTR goes from "
         f"{base_rate:.2%} to {base_rate * (1 + relative_lift):.3%}, not to {absolute:.2%}. "
         "A relative lift multiplies the base rate; pass it as relative_lift."),
        (size(relative_lift=100 * relative_lift),
         f"the lift is in percent: pass {relative_lift} for {relative_lift:.0%}, not "
         f"{100 * relative_lift:g}."),
        (2.0 * want, "this is the total for both arms; the question asks per arm (half of it)."),
        (size(alpha=2 * alpha),
         f"this is a one-sided test (alpha {2 * alpha:g} two-sided). Plan a two-sided test at "
         f"alpha = {alpha}: a launch can also make CTR worse."),
        (size(power=0.5), "this has 50% power: a test that size misses a real lift half of "
         f"the time. Use power = {power}."),
        (size(power=0.9), f"this has 90% power; the question asks for {power:.0%}."),
    ]
    explain_known_mistake("n_per_arm", got, mistakes, near)
    raise CheckFailed(
        f"`n_per_arm` = {got:,.0f} is {how_far(got, want, 'small', 'large')}. Use "
        "experiment.sample_size_per_arm(base_rate, relative_lift) with the measured CTR as "
        "the base rate and the lift as a relative fraction (0.05 for +5%), or the concept "
        "page's formula.")


def _power_after(days: float, base_rate: float, relative_lift: float,
                 impressions_per_day: float, design_effect: float, alpha: float) -> float:
    """Power of a 50/50 user-randomized test that runs ``days`` days."""
    n = max(int(days * impressions_per_day / 2 / design_effect), 1)
    return experiment.power(base_rate, relative_lift, n, alpha)


def experiment_days(test_days: object, base_rate: float, relative_lift: float,
                    impressions_per_day: float, design_effect: float, alpha: float = 0.05,
                    power: float = 0.8) -> None:
    """Judge a chosen test length (a judgment call: a range of answers is defensible).

    Defensible: at least the days a 50/50 user-randomized test needs for ``power``
    (impressions per arm times the design effect, over half a day's impressions), and
    at most twice that, rounded up to whole weeks. The shortest length accepted comes
    from the smallest per-arm size :func:`sample_size` accepts (the package's
    :func:`adsys.experiment.sample_size_per_arm` or a textbook shortcut), less 1% for
    rounding, so an answer built on an accepted ``n_per_arm`` is accepted too; the
    longest from the package's size.

    Parameters
    ----------
    test_days : float
        The learner's choice, in days.
    base_rate, relative_lift : float
        Control CTR and the relative lift to detect.
    impressions_per_day : float
        Impressions a day of traffic brings, both arms together.
    design_effect : float
        Variance of CTR per user-randomized test over the binomial variance (>= 1 in
        practice), measured from A/A tests.
    alpha, power : float
        Two-sided significance level and the power the test must reach.
    """
    got = as_number(test_days, "test_days")
    if impressions_per_day <= 0 or design_effect <= 0:
        raise ValueError("impressions_per_day and design_effect must be positive")
    require(np.isfinite(got) and got > 0,
            f"`test_days` should be a positive number of days; got {got!r}.")
    n = experiment.sample_size_per_arm(base_rate, relative_lift, alpha, power)
    independent = 2 * n / impressions_per_day
    needed = independent * design_effect
    weeks = 7 * math.ceil(needed / 7)
    longest = 7 * math.ceil(2 * needed / 7)
    smallest_n = min(n, *shortcut_sizes(base_rate, relative_lift, alpha, power).values())
    shortest = 0.99 * 2 * smallest_n * design_effect / impressions_per_day
    reached = _power_after(got, base_rate, relative_lift, impressions_per_day, design_effect,
                           alpha)
    if got < shortest:
        short = f"At {got:g} days its power is {reached:.1%}, not {power:.0%}."
        mistakes = [
            (independent, f"`test_days` = {got:g} would do if impressions were independent "
             f"({independent:.1f} days), but users are randomized and one user's "
             f"impressions are correlated: the variance is {design_effect:.2f} times the "
             "binomial one (the design effect of the A/A tests), so the test needs "
             f"{needed:.1f} days. " + short),
            (needed / 2, f"`test_days` = {got:g} gives each arm a full day's impressions, "
             "but a 50/50 test gives each arm half. Count both arms: days = 2 x impressions "
             "per arm x design effect / impressions per day. " + short),
            (independent / 2, f"`test_days` = {got:g} counts a full day's impressions per "
             "arm (a 50/50 test gives each arm half) and leaves out the design effect. "
             "days = 2 x impressions per arm x design effect / impressions per day. " + short),
        ]
        for wrong, explanation in mistakes:
            if abs(got - wrong) <= 0.03 * wrong or abs(got - math.ceil(wrong)) < 1e-9:
                raise CheckFailed(explanation)
        raise CheckFailed(
            f"`test_days` = {got:g} is too short: the test would detect a {relative_lift:+.0%} "
            f"lift only {reached:.1%} of the time (target {power:.0%}). A test that misses "
            "real lifts most of the time wastes its traffic and, worse, gets read as 'no "
            f"effect'. It needs at least {needed:.1f} days: 2 x impressions per arm x "
            "design effect / impressions per day.")
    if got > longest * (1 + 1e-9):
        at_weeks = _power_after(weeks, base_rate, relative_lift, impressions_per_day,
                                design_effect, alpha)
        raise CheckFailed(
            f"`test_days` = {got:g} is longer than the measurements defend: {needed:.1f} days "
            f"already give {power:.0%} power, and {weeks} days (whole weeks) {at_weeks:.1%}. "
            f"At {got:g} days power is {reached:.1%}: the extra days buy almost nothing "
            "and cost a later decision and traffic other experiments could use. Choose "
            f"between {needed:.1f} and {longest} days (twice the minimum, rounded up to "
            "whole weeks).")
    whole_weeks = math.isclose(got / 7, round(got / 7))
    advice = ("Whole weeks cover weekday and weekend users alike." if whole_weeks else
              f"Consider rounding to whole weeks ({weeks} days): weekday and weekend users "
              "differ, and a test that covers part of a week over-weights some days.")
    margin = ("" if reached >= power - 5e-4 else   # as printed, to one decimal
              f" That is a shade under {power:.0%}: your per-arm size came from a shortcut "
              "formula (or was rounded) a little below the package's; at a CTR this small "
              "it is close enough for planning, and rounding up to whole weeks settles it.")
    passed(f"{got:g} days give the test {reached:.1%} power to detect a {relative_lift:+.0%} "
           f"lift (the package's size needs {needed:.1f} days for {power:.0%}: "
           f"{independent:.1f} days of independent impressions times the design effect of "
           f"{design_effect:.2f}).{margin} {advice} Longer buys power and room for novelty "
           "effects to fade; shorter frees traffic and decides sooner. Fix the length before "
           "starting and do not stop at the first significant peek.")
