"""Monitoring: PSI and KS against known distributions, segment metrics by hand, alerts."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from adsys import metrics
from adsys.monitoring import (
    Monitor,
    alerts,
    calibration_shift,
    drift_figure,
    drift_table,
    ks_test,
    psi,
    quality_figure,
    segment_metrics,
)

matplotlib.use("Agg")


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


def test_psi_sees_a_shift_in_a_zero_one_feature(rng):
    # 95% zeros fill every decile edge with 0: the zeros and the ones need bins of
    # their own, or a feature that jumps from 5% to 50% ones scores 0.
    reference = (rng.random(20_000) < 0.05).astype(float)
    assert psi(reference, (rng.random(5_000) < 0.05).astype(float)) < 0.01
    shifted = (rng.random(5_000) < 0.5).astype(float)
    assert psi(reference, shifted) == pytest.approx(
        (0.5 - 0.95) * np.log(0.5 / 0.95) + (0.5 - 0.05) * np.log(0.5 / 0.05), rel=0.1)


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


def test_drift_can_skip_the_ks_statistic(rng):
    reference = pd.DataFrame({"x": rng.normal(size=3000), "d": rng.choice(["a", "b"], 3000)})
    current = reference.assign(x=rng.normal(0.5, 1.0, 3000))
    full = drift_table(reference, current, ["x"], by="d")
    fast = drift_table(reference, current, ["x"], by="d", ks=False)
    pd.testing.assert_series_equal(full["psi"], fast["psi"])
    assert fast["ks"].isna().all() and (full["ks"] > 0.1).all()


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


# ---- the daily monitor ---------------------------------------------------------------

def test_calibration_shift_scales_with_the_clicks_behind_it():
    ratio, z = calibration_shift([100, 10000, 0], [120, 12000, 5], [300, 30000, 30],
                                 [300, 30000, 30])
    np.testing.assert_allclose(ratio[:2], [1.2, 1.2])
    assert z[0] == pytest.approx(np.log(1.2) / np.sqrt(1 / 100 + 1 / 300))
    assert z[1] == pytest.approx(10 * z[0])        # 100x the clicks: 10x the z
    assert np.isnan(ratio[2]) and np.isnan(z[2])   # no click today: undefined
    # The day-to-day spread adds to the Poisson noise, the same for every segment.
    _, z_spread = calibration_shift([100, 10000], [120, 12000], [300, 30000], [300, 30000],
                                    day_to_day_variance=0.01)
    assert z_spread[0] == pytest.approx(np.log(1.2) / np.sqrt(1 / 100 + 1 / 300 + 0.01))
    assert z_spread[1] == pytest.approx(np.log(1.2) / np.sqrt(1 / 10000 + 1 / 30000 + 0.01))
    with pytest.raises(ValueError, match="same length"):
        calibration_shift([1], [1, 2], [1], [1])
    with pytest.raises(ValueError, match=">= 0"):
        calibration_shift([-1], [1], [1], [1])
    with pytest.raises(ValueError, match="day_to_day_variance"):
        calibration_shift([1], [1], [1], [1], day_to_day_variance=-0.1)


def day_of_traffic(rng: np.random.Generator, n: int = 20_000, calibration: float = 1.0,
                   broken: bool = False) -> pd.DataFrame:
    """Labelled impressions whose true CTR is the prediction / ``calibration``; with
    ``broken`` the tablets' ``share`` feature reads 0."""
    device = rng.choice(["mobile", "desktop", "tablet"], n, p=[0.6, 0.3, 0.1])
    p = rng.beta(2, 60, n)
    frame = pd.DataFrame({"device": device, "share": rng.beta(2, 20, n) + 0.01,
                          "pctr": p, "clicked": (rng.random(n) < p / calibration).astype(int)})
    if broken:
        frame.loc[frame["device"] == "tablet", "share"] = 0.0
    return frame


def test_the_monitor_is_quiet_on_steady_days_and_flags_the_day_things_change(rng):
    monitor = Monitor(["share", "pctr"], quality_by=["device"], drift_by="device",
                      prediction="pctr", reference_days=3)
    for day in range(8):
        assert monitor.observe(day, day_of_traffic(rng)).empty, day
    broken = monitor.observe(8, day_of_traffic(rng, broken=True))
    assert broken[["kind", "segment", "value", "metric"]].values.tolist() == [
        ["drift", "device", "tablet", "PSI of share"]]
    assert "day 8: share drifted on device=tablet" in broken["message"][0]
    off = monitor.observe(9, day_of_traffic(rng, calibration=1.5))
    assert "all" in set(off.loc[off["kind"] == "calibration", "segment"])
    # The broken day is now in the reference: its echo flags the healthy tablets.
    echo = off[off["kind"] == "drift"]
    assert echo[["value", "metric"]].values.tolist() == [["tablet", "PSI of share"]]
    assert off.loc[off["segment"] == "all", "observed"].item() == pytest.approx(1.5, rel=0.1)
    assert set(monitor.alerts["day"]) == {8, 9}
    quality = monitor.quality
    assert len(quality) == 10 * 4                   # all traffic + 3 devices, each day
    overall = quality[quality["segment"] == "all"].set_index("day")
    assert overall.loc[9, "calibration"] > 1.3 > overall.loc[8, "calibration"]
    assert set(monitor.drift["day"]) == set(range(1, 10))   # no reference on day 0
    json.dumps(monitor.to_dict())                   # the report serializes as is


def test_a_steady_miscalibration_raises_nothing_but_a_change_does(rng):
    monitor = Monitor(["pctr"], prediction="pctr", reference_days=2)
    for day in range(8):
        assert monitor.observe(day, day_of_traffic(rng, calibration=1.3)).empty
    assert not monitor.observe(8, day_of_traffic(rng, calibration=1.0)).empty


def test_calibration_alerts_wait_until_the_monitor_knows_a_normal_day(rng):
    # Days 1-5 have a reference; the spread needs moves from min_noise_days = 5 of them.
    monitor = Monitor(["pctr"], prediction="pctr", reference_days=1, min_noise_days=5)
    for day in range(6):   # day 5's jump comes before the monitor is armed
        assert monitor.observe(day, day_of_traffic(rng, n=100_000,
                                                   calibration=1.0 + 0.5 * (day == 5))).empty
    assert not monitor.observe(6, day_of_traffic(rng, n=100_000, calibration=3.0)).empty


def test_days_that_differ_more_than_clicks_raise_no_alarm_until_a_real_move(rng):
    # Healthy days whose calibration wanders by about 10% (a new model each night).
    wander = np.exp(rng.normal(0, 0.1, 20))
    monitor = Monitor(["pctr"], prediction="pctr", reference_days=3, z_threshold=4)
    for day, calibration in enumerate(wander):
        assert monitor.observe(day, day_of_traffic(rng, n=200_000,
                                                   calibration=calibration)).empty, day
    # Poisson noise alone would have called several of those moves significant.
    daily = monitor.quality.query("segment == 'all'")
    clicks, expected = daily["clicks"].to_numpy(), daily["mean_prediction"].to_numpy() * \
        daily["impressions"].to_numpy()
    ref_clicks = np.array([clicks[d - 3:d].sum() for d in range(3, 20)])
    ref_expected = np.array([expected[d - 3:d].sum() for d in range(3, 20)])
    ratio, z = calibration_shift(clicks[3:], expected[3:], ref_clicks, ref_expected)
    assert ((np.abs(z) >= 4) & (np.abs(ratio - 1) >= 0.1)).sum() >= 3
    jump = monitor.observe(20, day_of_traffic(rng, n=200_000,
                                              calibration=wander[-3:].mean() * 1.6))
    assert jump["kind"].tolist() == ["calibration"]
    assert "usual day-to-day spread of" in jump["message"].item()


def test_the_calibration_checks_keep_both_z_scores(rng):
    monitor = Monitor(["pctr"], prediction="pctr", reference_days=1, min_noise_days=2)
    for day in range(4):
        monitor.observe(day, day_of_traffic(rng, n=50_000, calibration=1.0 + 0.1 * day))
    checks = monitor.calibration_checks.set_index("day")
    assert list(checks.index) == [1, 2, 3] and checks["z"].isna().tolist() == [
        True, True, False]                     # armed once moves from 2 days exist
    daily = monitor.quality.query("segment == 'all'").set_index("day")
    expected = daily["mean_prediction"] * daily["impressions"]
    ratio, z = calibration_shift(daily["clicks"][1:], expected[1:], daily["clicks"][:-1],
                                 expected[:-1])
    np.testing.assert_allclose(checks["ratio"], ratio)
    np.testing.assert_allclose(checks["z_poisson_only"], z)
    assert (checks["z"].abs() <= checks["z_poisson_only"].abs()).iloc[-1]


def test_a_small_segment_needs_a_larger_move_to_alert(rng):
    # The same 30% move: significant on the whole day, not on a segment of ~150 clicks.
    monitor = Monitor(["pctr"], quality_by=["device"], prediction="pctr")
    for day in range(12):
        monitor.observe(day, day_of_traffic(rng, n=60_000))
    moved = day_of_traffic(rng, n=60_000, calibration=1.3)
    day = 12
    alerts_today = monitor.observe(day, moved)
    assert "all" in set(alerts_today["value"])
    tablet = monitor.quality.query(f"day == {day} and value == 'tablet'")
    assert tablet["clicks"].item() < 300 and "tablet" not in set(alerts_today["value"])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"columns": "share"}, TypeError, "columns"),
    ({"columns": []}, ValueError, "columns"),
    ({"quality_by": [1]}, TypeError, "quality_by"),
    ({"drift_by": ["device"]}, TypeError, "drift_by"),
    ({"reference_days": 0}, ValueError, "reference_days"),
    ({"psi_threshold": -0.1}, ValueError, "psi_threshold"),
    ({"z_threshold": 0}, ValueError, "z_threshold"),
    ({"min_change": 2.0}, ValueError, "min_change"),
    ({"min_rows": 0}, ValueError, "min_rows"),
    ({"noise_days": 0}, ValueError, "noise_days"),
    ({"min_noise_days": 20}, ValueError, "min_noise_days"),
    ({"sample_size": 1.5}, TypeError, "sample_size"),
    ({"prediction": None}, TypeError, "prediction"),
    ({"ks": "no"}, TypeError, "ks"),
])
def test_a_bad_monitor_setting_is_rejected_naming_it(kwargs, error, message):
    with pytest.raises(error, match=message):
        Monitor(**{"columns": ["share"], **kwargs})


def test_the_monitor_takes_days_with_gaps(rng):
    # The reference is the last observed days, not the last calendar days.
    monitor = Monitor(["share"], quality_by=["device"], drift_by="device",
                      prediction="pctr", reference_days=2)
    for day in (0, 10, 11, 30):
        monitor.observe(day, day_of_traffic(rng))
    broken = monitor.observe(31, day_of_traffic(rng, broken=True))
    assert "PSI of share" in set(broken["metric"])
    assert sorted(set(monitor.quality["day"])) == [0, 10, 11, 30, 31]


def test_the_monitor_rejects_days_out_of_order_and_missing_columns(rng):
    monitor = Monitor(["share"], quality_by=["device"], prediction="pctr")
    monitor.observe(3, day_of_traffic(rng, n=500))
    with pytest.raises(ValueError, match="day"):
        monitor.observe(3, day_of_traffic(rng, n=500))
    with pytest.raises(ValueError, match="missing columns \\['share'\\]"):
        monitor.observe(4, day_of_traffic(rng, n=500).drop(columns="share"))
    with pytest.raises(TypeError, match="labelled"):
        monitor.observe(4, [1, 2])
    assert len(monitor.quality) == 4 and monitor.alerts.empty


def test_the_monitoring_figures_draw_every_segment(rng):
    monitor = Monitor(["share", "pctr"], quality_by=["device"], drift_by="device",
                      prediction="pctr")
    for day in range(4):
        monitor.observe(day, day_of_traffic(rng, n=3000, broken=day == 3))
    fig = quality_figure(monitor.quality, "device", events={"fault": 3})
    assert [len(ax.lines) for ax in fig.axes] == [4 + 2, 4 + 1]   # + reference lines
    assert len(fig.legends[0].get_texts()) == 4
    fig = drift_figure(monitor.drift, events={"fault": 3})
    assert len(fig.axes[0].lines) == 2 + 2 and fig.axes[0].get_yscale() == "log"


def test_the_monitoring_figures_show_the_band_the_segment_and_the_crossing_columns(rng):
    monitor = Monitor(["share", "pctr"], quality_by=["device"], drift_by="device",
                      prediction="pctr")
    for day in range(4):
        monitor.observe(day, day_of_traffic(rng, n=3000, broken=day == 3))
    fig = quality_figure(monitor.quality, "device", events={"fault": 3},
                         band=(0.97, 1.03), highlight="mobile")
    calibration = fig.axes[0]
    assert [p.get_label() for p in calibration.patches] == ["target 0.97-1.03"]
    segments = {line.get_label(): line for line in calibration.lines
                if line.get_marker() != "None"}              # the devices, not all traffic
    assert len({line.get_marker() for line in segments.values()}) == len(segments) >= 2
    widths = {label: line.get_linewidth() for label, line in segments.items()}
    assert widths["mobile"] == max(widths.values()) > min(widths.values())
    top = max(np.nanmax(line.get_ydata()) for line in calibration.lines
              if not line.get_label().startswith("_"))
    assert calibration.get_ylim()[1] > top          # headroom for the event's name
    fig = drift_figure(monitor.drift, events={"fault": 3})
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "share" and "pctr" not in legend   # only the broken column crossed
    assert any(t.startswith("1 other column,") for t in legend)
    (share,) = [line for line in ax.lines if line.get_label() == "share"]
    assert ax.get_ylim()[1] > share.get_ydata().max()


def test_the_command_line_writes_a_monitoring_report_that_catches_its_fault(tmp_path,
                                                                            capsys):
    from adsys.__main__ import main

    out = tmp_path / "run"
    assert main(["simulate", "--days", "4", "--seed", "1", "--requests", "2000",
                 "--fault-day", "2", "--fault-device", "mobile", "--out", str(out)]) == 0
    report = json.loads((out / "monitoring.json").read_text())
    assert report["events"] == {"fault": 2} and report["detection_delay_days"] == {"fault": 0}
    first = [a for a in report["alerts"] if a["day"] == 2]
    assert any(a["kind"] == "drift" and a["value"] == "mobile"
               and a["metric"] == "PSI of f_user_topic_view_share" for a in first)
    # No feature drifts before the fault. (pCTR may: each night ships a new model, and
    # the first one replaces the bootstrap model trained on random traffic.)
    assert not [a for a in report["alerts"] if a["day"] < 2 and a["kind"] == "drift"
                and a["metric"].startswith("PSI of f_")]
    days = {row["day"] for row in report["quality"]}
    assert days == {0, 1, 2, 3}
    assert {row["value"] for row in report["quality"] if row["segment"] == "f_device"} == {
        "mobile", "desktop", "tablet"}
    for figure in ("monitoring_quality.png", "monitoring_drift.png"):
        assert (out / figure).stat().st_size > 10_000
    printed = capsys.readouterr()
    assert "monitoring:" in printed.out and "day 2: f_user_topic_view_share drifted" in \
        printed.out
    assert "monitoring" in printed.err             # the progress bar
