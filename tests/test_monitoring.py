"""Monitoring: PSI and KS against known distributions, segment metrics by hand, alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from adsys import metrics
from adsys.monitoring import alerts, drift_table, ks_test, psi, segment_metrics


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_psi_is_near_zero_for_two_samples_of_one_distribution(rng):
    for draw in (rng.normal, rng.exponential, lambda size: rng.integers(0, 5, size)):
        assert psi(draw(size=20_000), draw(size=20_000)) < 0.01


def test_psi_is_above_the_alert_level_for_a_shifted_distribution(rng):
    reference = rng.normal(size=20_000)
    assert psi(reference, rng.normal(1.0, 1.0, 20_000)) > 0.25       # a one-sd mean shift
    assert psi(reference, rng.normal(0.0, 2.0, 20_000)) > 0.25       # a doubled spread
    assert 0.1 < psi(reference, rng.normal(0.4, 1.0, 20_000)) < 0.25  # "worth a look"


def test_psi_matches_its_formula_on_a_hand_example():
    expected = np.repeat([1.0, 2.0, 3.0, 4.0], 25)          # quartile bins, 25% each
    actual = np.repeat([1.0, 2.0, 3.0, 4.0], [10, 20, 30, 40])
    a, e = np.array([0.1, 0.2, 0.3, 0.4]), np.full(4, 0.25)
    assert psi(expected, actual, bins=4) == pytest.approx(np.sum((a - e) * np.log(a / e)))
    assert psi(expected, expected, bins=4) == 0.0


def test_psi_is_unchanged_by_a_monotone_transform_and_finite_with_empty_bins(rng):
    x, y = rng.normal(size=5000), rng.normal(0.3, 1.0, 5000)
    assert psi(np.exp(x), np.exp(y)) == pytest.approx(psi(x, y))
    # Every value of today below the reference's range: one bin holds all of today.
    broken = psi(x, np.full(1000, -10.0))
    assert np.isfinite(broken) and broken > 5


def test_psi_false_alarms_more_often_on_small_samples(rng):
    # The reason the alert threshold depends on the sample size (Step 7 measures it).
    def alarm_rate(n: int) -> float:
        return np.mean([psi(rng.normal(size=5000), rng.normal(size=n)) > 0.1
                        for _ in range(200)])
    assert alarm_rate(50) > 0.3 > 0.0 == alarm_rate(5000)


@pytest.mark.parametrize("call, error, message", [
    (lambda: psi([], [1.0]), ValueError, "expected"),
    (lambda: psi([1.0, 2.0], [np.nan]), ValueError, "actual"),
    (lambda: psi("abc", [1.0]), TypeError, "expected"),
    (lambda: psi([[1.0, 2.0]], [1.0]), ValueError, "expected"),
    (lambda: psi([1.0, 2.0], [1.0], bins=1), ValueError, "bins"),
    (lambda: psi([1.0, 2.0], [1.0], bins=2.5), TypeError, "bins"),
    (lambda: ks_test([1.0], []), ValueError, "actual"),
    (lambda: ks_test([np.inf], [1.0]), ValueError, "expected"),
])
def test_bad_input_is_rejected_naming_the_parameter(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_ks_test_agrees_with_scipy(rng):
    for shift in (0.0, 0.1, 0.5):
        x, y = rng.normal(size=400), rng.normal(shift, 1.0, 300)
        ours, theirs = ks_test(x, y), stats.ks_2samp(x, y, method="asymp")
        assert ours.statistic == pytest.approx(theirs.statistic)
        assert ours.p_value == pytest.approx(theirs.pvalue, abs=0.02)
    assert ks_test(x, x).statistic == 0.0 and ks_test(x, x).p_value == 1.0


def test_ks_test_rejects_at_about_its_level_under_the_null(rng):
    p = np.array([ks_test(rng.normal(size=300), rng.normal(size=300)).p_value
                  for _ in range(400)])
    assert 0.01 < np.mean(p < 0.05) < 0.10
    assert ks_test(rng.normal(size=300), rng.normal(0.5, 1, 300)).p_value < 1e-4


@pytest.fixture
def labelled() -> pd.DataFrame:
    return pd.DataFrame({
        "day": [0, 0, 0, 0, 1, 1, 1, 1],
        "device": ["a", "a", "b", "b", "a", "a", "b", "b"],
        "pctr_shown": [0.5, 0.5, 0.2, 0.4, 0.1, 0.3, 0.5, 0.5],
        "clicked": [1, 0, 0, 1, 0, 0, 1, 1],
    })


def test_segment_metrics_match_the_metrics_module_group_by_group(labelled):
    table = segment_metrics(labelled, ["day", "device"])
    assert list(table.columns) == ["impressions", "clicks", "ctr", "mean_prediction",
                                   "calibration", "ne"]
    for key, group in labelled.groupby(["day", "device"]):
        row = table.loc[key]
        y, p = group["clicked"].to_numpy(), group["pctr_shown"].to_numpy()
        assert row["impressions"] == len(y) and row["clicks"] == y.sum()
        assert row["mean_prediction"] == pytest.approx(p.mean())
        if 0 < y.sum() < len(y):
            assert row["calibration"] == pytest.approx(metrics.calibration_ratio(y, p))
            assert row["ne"] == pytest.approx(metrics.normalized_entropy(y, p))
    assert np.isnan(table.loc[(1, "a"), "calibration"])     # no clicks: undefined
    assert np.isnan(table.loc[(1, "b"), "ne"])              # all clicked: no entropy
    assert segment_metrics(labelled, ["day"])["impressions"].tolist() == [4, 4]


def test_segment_metrics_reject_missing_columns(labelled):
    with pytest.raises(ValueError, match="region"):
        segment_metrics(labelled, ["region"])
    with pytest.raises(ValueError, match="pctr"):
        segment_metrics(labelled.drop(columns="pctr_shown"), ["day"])


def test_a_segment_failure_hides_in_the_total_but_not_in_its_segment(rng):
    # One device in ten loses a feature (set to 0): the overall PSI stays under the
    # alert level, the device's own PSI is far above it.
    n = 20_000
    device = rng.choice(["mobile", "desktop", "tablet"], n, p=[0.6, 0.3, 0.1])
    reference = pd.DataFrame({"device": device, "share": rng.beta(2, 20, n) + 0.01,
                              "other": rng.normal(size=n)})
    current = reference.assign(share=rng.beta(2, 20, n) + 0.01, other=rng.normal(size=n))
    current.loc[current["device"] == "tablet", "share"] = 0.0
    overall = drift_table(reference, current, ["share", "other"])
    assert list(overall.columns) == ["column", "n", "psi", "ks"]
    assert overall.set_index("column").loc["share", "psi"] < 0.25
    by_device = drift_table(reference, current, ["share", "other"], by="device")
    flagged = by_device[by_device["psi"] > 0.25]
    assert flagged[["segment", "column"]].values.tolist() == [["tablet", "share"]]
    messages = alerts(by_device, segment_metrics(pd.DataFrame(
        {"device": ["x"], "pctr_shown": [0.1], "clicked": [1]}), ["device"]))
    assert messages[0].startswith("drift: share on tablet PSI")


def test_alerts_flag_drift_and_calibration_outside_the_range(labelled):
    drift = pd.DataFrame({"column": ["x", "y"], "n": [10, 10], "psi": [0.3, 0.05],
                          "ks": [0.2, 0.1]})
    quality = segment_metrics(labelled, ["day"])      # calibration 1.6/2 = 0.8, 1.4/2 = 0.7
    messages = alerts(drift, quality)
    assert messages[0] == "drift: x PSI 0.30 > 0.25"
    assert len(messages) == 3 and all("outside [0.9, 1.1]" in m for m in messages[1:])
    assert alerts(drift, quality, psi_threshold=0.5, calibration_range=(0.5, 2.0)) == []
    with pytest.raises(ValueError, match="psi_threshold"):
        alerts(drift, quality, psi_threshold=0)
