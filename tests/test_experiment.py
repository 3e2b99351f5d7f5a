"""A/B testing: assignment, tests, intervals and sample sizes, checked by simulation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from adsys import experiment

Z_975 = NormalDist().inv_cdf(0.975)  # 1.959964...
Z_80 = NormalDist().inv_cdf(0.80)  # 0.841621...

# --- assignment -----------------------------------------------------------------------


def test_assignment_is_deterministic_and_per_user():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 10**9, 5_000)
    arms = experiment.assign_arm(ids, "exp-1")
    assert arms.dtype == bool
    np.testing.assert_array_equal(arms, experiment.assign_arm(ids.copy(), "exp-1"))
    # A user's arm depends only on their id: not on the batch, its order or repeats.
    order = rng.permutation(ids.size)
    np.testing.assert_array_equal(arms[order], experiment.assign_arm(ids[order], "exp-1"))
    np.testing.assert_array_equal(arms[:10], experiment.assign_arm(ids[:10], "exp-1"))
    np.testing.assert_array_equal(experiment.assign_arm(ids.astype(np.int32), "exp-1"), arms)


@pytest.mark.parametrize("share", [0.5, 0.1, 0.9])
@pytest.mark.parametrize("salt", ["exp-1", "exp-2", 7])
def test_assignment_is_balanced_on_sequential_ids(salt, share):
    ids = np.arange(100_000)
    arms = experiment.assign_arm(ids, salt, treatment_share=share)
    se = math.sqrt(share * (1 - share) / ids.size)
    assert abs(arms.mean() - share) < 4 * se
    # No pattern in the low bits of the id (e.g. even ids all in one arm).
    even = arms[ids % 2 == 0].mean()
    odd = arms[ids % 2 == 1].mean()
    assert abs(even - odd) < 4 * se * 2


@pytest.mark.parametrize("salts", [("exp-1", "exp-2"), ("a", "b"), (1, 2)])
def test_different_salts_give_independent_splits(salts):
    ids = np.arange(100_000)
    first, second = (experiment.assign_arm(ids, salt) for salt in salts)
    table = np.array(
        [
            [np.sum(~first & ~second), np.sum(~first & second)],
            [np.sum(first & ~second), np.sum(first & second)],
        ]
    )
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / ids.size
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    assert chi2 < 15.1  # chi-square with 1 df: P(> 15.1) = 1e-4


def test_shares_are_nested_and_extremes_are_exact():
    ids = np.arange(20_000)
    small = experiment.assign_arm(ids, "ramp", treatment_share=0.1)
    large = experiment.assign_arm(ids, "ramp", treatment_share=0.3)
    assert np.all(large[small])  # ramping up keeps everyone already treated
    assert not experiment.assign_arm(ids, "ramp", treatment_share=0.0).any()
    assert experiment.assign_arm(ids, "ramp", treatment_share=1.0).all()


def test_string_ids_are_supported():
    ids = np.array([f"user-{i}" for i in range(20_000)])
    arms = experiment.assign_arm(ids, "exp-1")
    np.testing.assert_array_equal(arms, experiment.assign_arm(list(ids), "exp-1"))
    assert abs(arms.mean() - 0.5) < 4 * math.sqrt(0.25 / ids.size)


@pytest.mark.parametrize(
    "ids, share, message",
    [
        ([1, 2], 1.5, r"^treatment_share must be in \[0.0, 1.0\]"),
        ([1, 2], -0.1, r"^treatment_share"),
        ([1.5, 2.0], 0.5, r"^user_ids must hold integers or strings"),
        ([], 0.5, r"^user_ids must be a non-empty 1-D array"),
        ([[1, 2]], 0.5, r"^user_ids must be a non-empty 1-D array"),
    ],
)
def test_assign_arm_rejects_bad_input(ids, share, message):
    with pytest.raises(ValueError, match=message):
        experiment.assign_arm(ids, "exp", treatment_share=share)


# --- two-proportion test --------------------------------------------------------------


def test_two_proportion_test_by_hand():
    result = experiment.two_proportion_test(100, 1000, 120, 1000)
    pooled_se = math.sqrt(0.11 * 0.89 * (2 / 1000))
    z = 0.02 / pooled_se
    assert result.difference == pytest.approx(0.02)
    assert result.relative_lift == pytest.approx(0.2)
    assert result.z == pytest.approx(z)
    assert result.p_value == pytest.approx(2 * (1 - NormalDist().cdf(z)))
    assert result.p_value == pytest.approx(0.1529, abs=1e-4)
    se = math.sqrt(0.1 * 0.9 / 1000 + 0.12 * 0.88 / 1000)
    assert (result.ci_low, result.ci_high) == pytest.approx((0.02 - Z_975 * se, 0.02 + Z_975 * se))


def test_two_proportion_test_is_antisymmetric():
    forward = experiment.two_proportion_test(50, 900, 70, 1100)
    backward = experiment.two_proportion_test(70, 1100, 50, 900)
    assert backward.z == pytest.approx(-forward.z)
    assert backward.p_value == pytest.approx(forward.p_value)
    assert (backward.ci_low, backward.ci_high) == pytest.approx((-forward.ci_high, -forward.ci_low))


def test_two_proportion_test_p_values_are_uniform_under_the_null():
    rng = np.random.default_rng(42)
    n, rate, runs = 20_000, 0.05, 4_000
    clicks = rng.binomial(n, rate, size=(runs, 2))
    p_values = np.array(
        [experiment.two_proportion_test(int(a), n, int(b), n).p_value for a, b in clicks]
    )
    se = math.sqrt(0.05 * 0.95 / runs)
    assert abs(np.mean(p_values < 0.05) - 0.05) < 4 * se
    deciles = np.histogram(p_values, bins=10, range=(0, 1))[0] / runs
    assert np.all(np.abs(deciles - 0.1) < 4 * math.sqrt(0.1 * 0.9 / runs))


@pytest.mark.parametrize(
    "args, message",
    [
        ((-1, 10, 1, 10), r"^clicks_a must be in \[0, 10\]"),
        ((11, 10, 1, 10), r"^clicks_a must be in \[0, 10\]"),
        ((1, 10, 3, 2), r"^clicks_b must be in \[0, 2\]"),
        ((1, 0, 1, 10), r"^n_a must be in \[1, inf\]"),
        ((1, 10, 1, 10.5), r"^n_b must be an integer"),
        ((0, 10, 0, 10), r"^clicks_a and clicks_b are both 0"),
    ],
)
def test_two_proportion_test_rejects_bad_counts(args, message):
    with pytest.raises(ValueError, match=message):
        experiment.two_proportion_test(*args)


def test_two_proportion_test_rejects_bad_alpha():
    with pytest.raises(ValueError, match=r"^alpha must be in \(0.0, 1.0\)"):
        experiment.two_proportion_test(1, 10, 2, 10, alpha=1.0)


# --- delta method ---------------------------------------------------------------------


def clustered_arm(rng: np.random.Generator, n_users: int, a: float, b: float):
    """Per-user clicks and impressions: heavy users, and a user-level CTR ~ Beta(a, b)."""
    impressions = 1 + rng.poisson(rng.gamma(1.0, 20.0, n_users))
    ctr = rng.beta(a, b, n_users)
    return rng.binomial(impressions, ctr), impressions


def test_delta_interval_covers_the_truth_where_the_naive_one_does_not():
    rng = np.random.default_rng(7)
    runs, n_users = 1_000, 400
    truth = 0.6 / 10 - 0.5 / 10  # user CTR is independent of impressions: E[ctr_b - ctr_a]
    delta_hits = naive_hits = 0
    for _ in range(runs):
        clicks_a, imps_a = clustered_arm(rng, n_users, 0.5, 9.5)
        clicks_b, imps_b = clustered_arm(rng, n_users, 0.6, 9.4)
        delta = experiment.ratio_delta_interval(clicks_a, imps_a, clicks_b, imps_b)
        naive = experiment.two_proportion_test(
            int(clicks_a.sum()), int(imps_a.sum()), int(clicks_b.sum()), int(imps_b.sum())
        )
        delta_hits += delta.ci_low <= truth <= delta.ci_high
        naive_hits += naive.ci_low <= truth <= naive.ci_high
    se = math.sqrt(0.95 * 0.05 / runs)
    assert abs(delta_hits / runs - 0.95) < 4 * se
    assert naive_hits / runs < 0.85  # treats correlated impressions as independent


def test_delta_interval_by_hand_with_one_impression_per_user():
    # With every denominator 1 the ratio is a plain mean and the delta method reduces
    # to the two-sample standard error with ddof=1.
    x_a = np.array([0, 1, 0, 0, 1, 0, 0, 0])
    x_b = np.array([1, 1, 0, 1, 0, 0])
    result = experiment.ratio_delta_interval(x_a, np.ones(8), x_b, np.ones(6), alpha=0.1)
    se = math.sqrt(x_a.var(ddof=1) / 8 + x_b.var(ddof=1) / 6)
    assert result.ratio_a == pytest.approx(0.25)
    assert result.ratio_b == pytest.approx(0.5)
    assert result.difference == pytest.approx(0.25)
    assert result.std_error == pytest.approx(se)
    assert result.z == pytest.approx(0.25 / se)
    assert result.p_value == pytest.approx(2 * (1 - NormalDist().cdf(0.25 / se)))
    half = NormalDist().inv_cdf(0.95) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((0.25 - half, 0.25 + half))


def test_delta_ratio_is_total_clicks_over_total_impressions():
    clicks, imps = np.array([0, 3, 1]), np.array([0, 10, 4])
    result = experiment.ratio_delta_interval(clicks, imps, clicks + 1, imps + 5)
    assert result.ratio_a == pytest.approx(4 / 14)
    assert result.ratio_b == pytest.approx(7 / 29)


@pytest.mark.parametrize(
    "args, message",
    [
        (([1, 0], [2, 2, 2], [1, 0], [2, 2]), r"numerator_a has 2, denominator_a has 3"),
        (([1, 0], [2, -2], [1, 0], [2, 2]), r"^denominator_a must be >= 0"),
        (([1, 0], [2, 2], [1, 0], [0, 0]), r"^denominator_b must have a positive sum"),
        (([1], [2], [1, 0], [2, 2]), r"^numerator_a must have at least 2 users"),
        (([1, 0], [2, 2], [np.nan, 0], [2, 2]), r"^numerator_b must hold finite"),
        (([], [], [1, 0], [2, 2]), r"^numerator_a must not be empty"),
        (([0, 0], [2, 2], [0, 0], [3, 3]), r"^numerator_a and numerator_b show no variation"),
    ],
)
def test_ratio_delta_interval_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        experiment.ratio_delta_interval(*args)


# --- planning -------------------------------------------------------------------------


def test_sample_size_textbook_value():
    # Pooled (Fleiss) formula by hand: p1 = 0.10, p2 = 0.11, mean 0.105.
    by_hand = (
        (Z_975 * math.sqrt(2 * 0.105 * 0.895) + Z_80 * math.sqrt(0.1 * 0.9 + 0.11 * 0.89)) / 0.01
    ) ** 2
    assert by_hand == pytest.approx(14_750.8, abs=0.1)
    assert experiment.sample_size_per_arm(0.1, 0.1) == 14_751


@pytest.mark.parametrize(
    "base_rate, lift, alpha, target",
    [(0.1, 0.1, 0.05, 0.8), (0.02, 0.05, 0.05, 0.9), (0.3, -0.2, 0.01, 0.8), (0.5, 0.5, 0.1, 0.5)],
)
def test_power_inverts_sample_size(base_rate, lift, alpha, target):
    n = experiment.sample_size_per_arm(base_rate, lift, alpha=alpha, power=target)
    assert experiment.power(base_rate, lift, n, alpha=alpha) >= target
    assert experiment.power(base_rate, lift, n - 1, alpha=alpha) < target


def test_sample_size_scales_like_inverse_square_of_lift():
    small = experiment.sample_size_per_arm(0.05, 0.02)
    large = experiment.sample_size_per_arm(0.05, 0.04)
    assert small / large == pytest.approx(4, rel=0.05)
    assert experiment.sample_size_per_arm(0.05, 0.02, power=0.9) > small
    assert experiment.sample_size_per_arm(0.05, 0.02, alpha=0.01) > small


def test_power_grows_from_alpha_to_one():
    powers = [experiment.power(0.1, 0.1, n) for n in (10, 1_000, 10_000, 30_000, 100_000)]
    assert powers == sorted(powers)
    assert experiment.power(0.1, 1e-6, 100) == pytest.approx(0.05, abs=1e-4)
    assert powers[-1] > 0.999


def test_planned_power_matches_simulated_power():
    rng = np.random.default_rng(3)
    n = experiment.sample_size_per_arm(0.1, 0.1)
    runs = 2_000
    clicks_a = rng.binomial(n, 0.10, runs)
    clicks_b = rng.binomial(n, 0.11, runs)
    significant = [
        experiment.two_proportion_test(int(a), n, int(b), n).p_value < 0.05
        for a, b in zip(clicks_a, clicks_b, strict=True)
    ]
    assert np.mean(significant) == pytest.approx(0.8, abs=4 * math.sqrt(0.16 / runs))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"base_rate": 0.0, "relative_lift": 0.1}, r"^base_rate must be in \(0.0, 1.0\)"),
        ({"base_rate": 1.0, "relative_lift": 0.1}, r"^base_rate"),
        ({"base_rate": 0.1, "relative_lift": 0.0}, r"^relative_lift must be non-zero"),
        ({"base_rate": 0.5, "relative_lift": 1.0}, r"^relative_lift must be in \(-1.0, 1.0\)"),
        ({"base_rate": 0.1, "relative_lift": -1.0}, r"^relative_lift must be in"),
        ({"base_rate": 0.1, "relative_lift": 0.1, "alpha": 0.0}, r"^alpha must be"),
        ({"base_rate": 0.1, "relative_lift": 0.1, "power": 1.0}, r"^power must be in"),
        ({"base_rate": 0.1, "relative_lift": 0.1, "power": 0.02}, r"^power must be in"),
        ({"base_rate": 0.1, "relative_lift": math.nan}, r"^relative_lift must be in"),
    ],
)
def test_sample_size_rejects_bad_design(kwargs, message):
    with pytest.raises(ValueError, match=message):
        experiment.sample_size_per_arm(**kwargs)


@pytest.mark.parametrize("n", [0, 2.5, -3])
def test_power_rejects_bad_sample_sizes(n):
    with pytest.raises(ValueError, match=r"^n_per_arm must be"):
        experiment.power(0.1, 0.1, n)


def test_design_effect_is_one_for_independent_impressions_and_grows_with_clustering():
    rng = np.random.default_rng(0)
    shown = rng.integers(1, 30, size=20_000)
    independent = rng.binomial(shown, 0.05)
    assert experiment.design_effect(independent, shown) == pytest.approx(1.0, abs=0.05)
    clustered = rng.binomial(shown, rng.beta(0.5, 9.5, size=len(shown)))   # same mean CTR
    assert experiment.design_effect(clustered, shown) > 1.5


def test_design_effect_names_its_bad_input():
    with pytest.raises(ValueError, match="numerator"):
        experiment.design_effect([1], [2])
    with pytest.raises(ValueError, match="denominator"):
        experiment.design_effect([1, 1], [0, 0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        experiment.design_effect([0, 0], [3, 4])
