"""A/B tests: assign users to arms, test the difference, plan the sample size.

Users, not impressions, are randomized: :func:`assign_arm` hashes user ids so a user
stays in one arm for the whole experiment. Metrics such as CTR are then ratios over
impressions, which are correlated within a user; :func:`ratio_delta_interval` gives
their standard error by the delta method, where the per-impression binomial formula
of :func:`two_proportion_test` would be too optimistic.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.validation import as_1d, check_nonnegative, check_range, check_same_length

__all__ = [
    "RatioDeltaResult",
    "TwoProportionResult",
    "assign_arm",
    "design_effect",
    "power",
    "ratio_delta_interval",
    "sample_size_per_arm",
    "two_proportion_test",
]

_STANDARD_NORMAL = NormalDist()
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 step on a uint64 array: a bijective, well-avalanching integer hash."""
    z = x + _GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


def _salt_key(salt: str | int) -> np.uint64:
    """64-bit key derived from the experiment salt with BLAKE2b."""
    digest = hashlib.blake2b(str(salt).encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def assign_arm(user_ids: ArrayLike, salt: str | int, treatment_share: float = 0.5) -> np.ndarray:
    """Deterministically assign users to treatment by hashing ``(salt, user_id)``.

    Parameters
    ----------
    user_ids : array of integers or strings
        One id per row; the same id always gets the same arm for a given salt.
    salt : str or int
        Experiment name. Different salts give independent splits, so a user's arm in
        one experiment says nothing about their arm in another.
    treatment_share : float
        Expected share of users in treatment, in [0, 1].

    Returns
    -------
    numpy.ndarray of bool
        True where the user is in treatment.

    Notes
    -----
    Integer ids are hashed with two vectorized SplitMix64 rounds after XOR with a
    BLAKE2b key of the salt; string ids are first reduced to 64 bits with
    ``pandas.util.hash_array`` (a fixed-key SipHash). The top 53 bits of the hash,
    read as a uniform number in [0, 1), are compared with ``treatment_share``.
    """
    ids = np.asarray(user_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"user_ids must be a non-empty 1-D array; got shape {ids.shape}")
    if ids.dtype.kind in "iu":
        keys = ids.astype(np.uint64)
    elif ids.dtype.kind in "OUS":
        keys = pd.util.hash_array(ids.astype(str).astype(object))
    else:
        raise ValueError(f"user_ids must hold integers or strings; got dtype {ids.dtype}")
    check_range("treatment_share", treatment_share, 0.0, 1.0)
    hashed = _splitmix64(_splitmix64(keys ^ _salt_key(salt)))
    uniform = (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return uniform < treatment_share


def _z_quantile(q: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(q)


def _two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic: P(|Z| >= |z|)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def _count(name: str, value: int, low: int = 0, high: float = math.inf) -> int:
    """Raise unless ``value`` is an integer in [low, high]; return it as int."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    check_range(name, int(value), low, high)
    return int(value)


@dataclass(frozen=True)
class TwoProportionResult:
    """Outcome of a two-proportion z-test of arm B (treatment) against arm A (control).

    Attributes
    ----------
    rate_a, rate_b : float
        Observed proportions clicks / n in each arm.
    difference : float
        ``rate_b - rate_a``.
    relative_lift : float
        ``difference / rate_a`` (``inf`` if ``rate_a`` is 0 and ``rate_b`` is not).
    z, p_value : float
        Pooled z statistic and its two-sided p-value.
    ci_low, ci_high : float
        Confidence interval of ``difference`` (unpooled Wald).
    """

    rate_a: float
    rate_b: float
    difference: float
    relative_lift: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float


def two_proportion_test(
    clicks_a: int, n_a: int, clicks_b: int, n_b: int, alpha: float = 0.05
) -> TwoProportionResult:
    """Two-sided z-test that two binomial proportions are equal.

    The test statistic uses the pooled rate (the variance under the null hypothesis);
    the ``1 - alpha`` confidence interval uses each arm's own rate. Both treat every
    trial as independent: for CTR with users as the randomization unit, use
    :func:`ratio_delta_interval` instead.

    Raises
    ------
    ValueError
        If a count is negative or not an integer, ``clicks > n``, or both arms have
        a rate of 0 (or both of 1), leaving no variance to test with.
    """
    n_a, n_b = _count("n_a", n_a, low=1), _count("n_b", n_b, low=1)
    clicks_a = _count("clicks_a", clicks_a, high=n_a)
    clicks_b = _count("clicks_b", clicks_b, high=n_b)
    check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    rate_a, rate_b = clicks_a / n_a, clicks_b / n_b
    pooled = (clicks_a + clicks_b) / (n_a + n_b)
    if pooled in (0.0, 1.0):
        raise ValueError("clicks_a and clicks_b are both 0 (or both n): the test is undefined")
    difference = rate_b - rate_a
    z = difference / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    se = math.sqrt(rate_a * (1 - rate_a) / n_a + rate_b * (1 - rate_b) / n_b)
    half_width = _z_quantile(1 - alpha / 2) * se
    return TwoProportionResult(
        rate_a=rate_a,
        rate_b=rate_b,
        difference=difference,
        relative_lift=difference / rate_a if rate_a else math.inf,
        z=z,
        p_value=_two_sided_p(z),
        ci_low=difference - half_width,
        ci_high=difference + half_width,
    )


@dataclass(frozen=True)
class RatioDeltaResult:
    """Difference of two ratio metrics with a delta-method standard error.

    Attributes
    ----------
    ratio_a, ratio_b : float
        ``sum(numerator) / sum(denominator)`` in each arm (e.g. CTR).
    difference : float
        ``ratio_b - ratio_a``.
    std_error : float
        Delta-method standard error of ``difference``.
    z, p_value : float
        ``difference / std_error`` and its two-sided p-value.
    ci_low, ci_high : float
        ``1 - alpha`` normal confidence interval of ``difference``.
    """

    ratio_a: float
    ratio_b: float
    difference: float
    std_error: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float


def _ratio_and_variance(
    suffix: str, numerator: ArrayLike, denominator: ArrayLike
) -> tuple[float, float]:
    """Ratio of means of one arm and its delta-method variance (parameters are named
    ``numerator<suffix>`` and ``denominator<suffix>`` in errors)."""
    num_name, den_name = f"numerator{suffix}", f"denominator{suffix}"
    num = as_1d(num_name, numerator)
    den = as_1d(den_name, denominator)
    check_same_length(**{num_name: num, den_name: den})
    if num.size < 2:
        raise ValueError(f"{num_name} must have at least 2 users; got {num.size}")
    if check_nonnegative(den_name, den).sum() == 0:
        raise ValueError(f"{den_name} must have a positive sum")
    n = num.size
    mean_num, mean_den = num.mean(), den.mean()
    cov = np.cov(num, den)  # ddof=1: [[var_num, cov], [cov, var_den]]
    ratio = mean_num / mean_den
    variance = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * mean_den**2)
    return float(ratio), float(variance)


def ratio_delta_interval(
    numerator_a: ArrayLike,
    denominator_a: ArrayLike,
    numerator_b: ArrayLike,
    denominator_b: ArrayLike,
    alpha: float = 0.05,
) -> RatioDeltaResult:
    """Compare a ratio metric between arms randomized by user, by the delta method.

    For CTR the numerator is each user's clicks and the denominator their
    impressions. A user's impressions are correlated (some users click a lot), so
    the impression is not an independent trial; the delta method linearizes
    ``R = mean(X) / mean(Y)`` over independent users (Deng et al. 2018)::

        Var(R) ~ (Var(X) - 2 R Cov(X, Y) + R**2 Var(Y)) / (n_users * mean(Y)**2)

    and the arms are independent, so their variances add.

    Parameters
    ----------
    numerator_a, denominator_a : arrays, one value per user of arm A (control)
    numerator_b, denominator_b : arrays, one value per user of arm B (treatment)
        Denominators must be non-negative with a positive total; users with a zero
        denominator still count as users.
    alpha : float
        One minus the confidence level, in (0, 1).
    """
    ratio_a, var_a = _ratio_and_variance("_a", numerator_a, denominator_a)
    ratio_b, var_b = _ratio_and_variance("_b", numerator_b, denominator_b)
    check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    difference = ratio_b - ratio_a
    std_error = math.sqrt(var_a + var_b)
    if std_error == 0.0:
        raise ValueError("numerator_a and numerator_b show no variation: the test is undefined")
    z = difference / std_error
    half_width = _z_quantile(1 - alpha / 2) * std_error
    return RatioDeltaResult(
        ratio_a=ratio_a,
        ratio_b=ratio_b,
        difference=difference,
        std_error=std_error,
        z=z,
        p_value=_two_sided_p(z),
        ci_low=difference - half_width,
        ci_high=difference + half_width,
    )


def _check_design(base_rate: float, relative_lift: float, alpha: float) -> tuple[float, float]:
    """Validate a planned test; return the control and treatment rates."""
    check_range("base_rate", base_rate, 0.0, 1.0, low_open=True, high_open=True)
    check_range(
        "relative_lift", relative_lift, -1.0, 1.0 / base_rate - 1.0, low_open=True, high_open=True
    )
    if relative_lift == 0:
        raise ValueError("relative_lift must be non-zero")
    check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    return base_rate, base_rate * (1.0 + relative_lift)


def _design_sds(p1: float, p2: float) -> tuple[float, float]:
    """Per-user standard deviations of the difference under the null and the alternative."""
    p_bar = (p1 + p2) / 2
    return math.sqrt(2 * p_bar * (1 - p_bar)), math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))


def design_effect(numerator: ArrayLike, denominator: ArrayLike) -> float:
    """How much clustering by user inflates the variance of a ratio metric such as CTR.

    The delta-method variance of ``sum(numerator) / sum(denominator)`` over users
    divided by the binomial variance that treats every unit of the denominator (every
    impression) as an independent trial. Multiply :func:`sample_size_per_arm` (which
    counts independent impressions) by it to size a user-randomized test.

    Parameters
    ----------
    numerator, denominator : arrays, one value per user
        E.g. each user's clicks and impressions; at least 2 users, a positive total
        denominator, and a ratio strictly between 0 and 1.
    """
    ratio, variance = _ratio_and_variance("", numerator, denominator)
    if not 0 < ratio < 1:
        raise ValueError(f"numerator / denominator must be strictly between 0 and 1; "
                         f"got {ratio:g}")
    total = float(np.sum(as_1d("denominator", denominator)))
    return variance / (ratio * (1 - ratio) / total)


def sample_size_per_arm(
    base_rate: float, relative_lift: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Independent trials per arm to detect a relative lift of a proportion with a
    two-sided z-test: users when the proportion is per user (did they click at all),
    impressions when it is a CTR, to be multiplied by :func:`design_effect` when the
    test randomizes users.

    Uses the normal approximation with the pooled variance under the null and the
    unpooled variance under the alternative (Fleiss, no continuity correction)::

        n = (z_{1-alpha/2} sqrt(2 p(1-p)) + z_{power} sqrt(p1 q1 + p2 q2))**2 / (p2 - p1)**2

    with ``p1 = base_rate``, ``p2 = base_rate * (1 + relative_lift)`` and
    ``p = (p1 + p2) / 2``. For example, base rate 0.1, lift +10%, alpha 0.05 and
    power 0.8 need 14,751 per arm.

    Parameters
    ----------
    base_rate : float
        Control proportion, in (0, 1).
    relative_lift : float
        Lift to detect, relative to ``base_rate`` (0.1 means +10%); non-zero and
        keeping the treatment rate inside (0, 1).
    alpha : float
        Two-sided significance level, in (0, 1).
    power : float
        Probability of detecting the lift, in (alpha / 2, 1).

    Returns
    -------
    int
        The required number per arm, rounded up.
    """
    p1, p2 = _check_design(base_rate, relative_lift, alpha)
    check_range("power", power, alpha / 2, 1.0, low_open=True, high_open=True)
    sd_null, sd_alt = _design_sds(p1, p2)
    root_n = (_z_quantile(1 - alpha / 2) * sd_null + _z_quantile(power) * sd_alt) / abs(p2 - p1)
    return math.ceil(root_n**2)


def power(base_rate: float, relative_lift: float, n_per_arm: int, alpha: float = 0.05) -> float:
    """Probability that a two-sided z-test with ``n_per_arm`` per arm is significant.

    The inverse of :func:`sample_size_per_arm` (same approximation), counting both
    rejection regions, so it tends to ``alpha`` as the lift shrinks.
    """
    p1, p2 = _check_design(base_rate, relative_lift, alpha)
    n = _count("n_per_arm", n_per_arm, low=1)
    sd_null, sd_alt = _design_sds(p1, p2)
    critical = _z_quantile(1 - alpha / 2) * sd_null
    shift = abs(p2 - p1) * math.sqrt(n)
    return _STANDARD_NORMAL.cdf((shift - critical) / sd_alt) + _STANDARD_NORMAL.cdf(
        (-shift - critical) / sd_alt
    )
