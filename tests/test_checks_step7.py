"""The Step 7 auto-checks accept the reference answers and explain the usual mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed
from adsys.checks import step7 as check
from adsys.monitoring import psi
from adsys.store import LogStore


# ----- the SQL exercise ------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> LogStore:
    """Two days of impressions on three devices, with duplicate clicks."""
    rng = np.random.default_rng(0)
    store = LogStore(tmp_path_factory.mktemp("store"))
    first = 0
    for day in range(2):
        n = 600
        ids = first + np.arange(n)
        first += n
        clicked = rng.random(n) < 0.1
        price = rng.uniform(0.1, 1.0, n)
        impressions = pd.DataFrame({
            "impression_id": ids, "time": day * 86_400 + np.sort(rng.uniform(0, 86_000, n)),
            "f_device": pd.Categorical(rng.choice(["mobile", "desktop", "tablet"], n)),
            "price": price, "charged": np.where(clicked, price, 0.0)})
        clicks = pd.DataFrame({"impression_id": ids[clicked],
                               "click_time": impressions["time"][clicked] + 60})
        clicks = pd.concat([clicks, clicks.iloc[::3].assign(click_time=lambda c:
                                                            c["click_time"] + 5)])
        store.write_day(day, impressions=impressions, clicks=clicks)
    return store


def test_daily_by_device_accepts_the_reference_query(store, capsys):
    check.daily_by_device(store.sql(check.DAILY_BY_DEVICE_SQL), store)
    with_ctr = store.sql(check.DAILY_BY_DEVICE_SQL).sample(frac=1, random_state=1)
    check.daily_by_device(with_ctr.assign(ctr=0.1), store)   # any order, extra columns
    as_logged = store.sql(check.DAILY_BY_DEVICE_SQL).rename(columns={"device": "f_device"})
    check.daily_by_device(as_logged, store)                  # the column as logged
    assert capsys.readouterr().out.count("Correct:") == 3


@pytest.mark.parametrize("query, message", [
    ("""SELECT i.day, i.f_device AS device, COUNT(*) AS impressions,
               COUNT(c.impression_id) AS clicks, SUM(i.charged) AS revenue
        FROM impressions AS i LEFT JOIN clicks AS c USING (impression_id)
        GROUP BY ALL""", "impressions` should count impression rows"),
    ("""SELECT i.day, i.f_device AS device, COUNT(DISTINCT i.impression_id) AS impressions,
               COUNT(c.impression_id) AS clicks, SUM(DISTINCT i.charged) AS revenue
        FROM impressions AS i LEFT JOIN clicks AS c USING (impression_id)
        GROUP BY ALL""", "click \\*events\\*"),
    ("""SELECT i.day, i.f_device AS device, COUNT(*) AS impressions,
               COUNT(c.impression_id) AS clicks, SUM(i.price) AS revenue
        FROM impressions AS i
        LEFT JOIN (SELECT DISTINCT impression_id FROM clicks) AS c USING (impression_id)
        GROUP BY ALL""", "sums `price`"),
    ("""SELECT day, f_device AS device, COUNT(*) AS impressions, 0 AS clicks,
               SUM(charged) AS revenue FROM impressions GROUP BY ALL""", "at least one click"),
    ("""SELECT day, 'all' AS device, COUNT(*) AS impressions, 0 AS clicks,
               SUM(charged) AS revenue FROM impressions GROUP BY day""", "Group by both"),
    ("""SELECT day, f_device AS device, COUNT(*) AS n FROM impressions GROUP BY ALL""",
     "`by_device` is missing the columns"),
])
def test_daily_by_device_explains_typical_mistakes(store, query, message):
    with pytest.raises(CheckFailed, match=message):
        check.daily_by_device(store.sql(query), store)


def test_daily_by_device_needs_an_answer(store):
    with pytest.raises(CheckFailed, match="still empty"):
        check.daily_by_device(..., store)
    with pytest.raises(CheckFailed, match="DataFrame"):
        check.daily_by_device([1, 2], store)


# ----- PSI by hand -----------------------------------------------------------------
def reference_psi(expected, actual, bins=10):
    return psi(expected, actual, bins)


def bins_from_actual(expected, actual, bins=10):
    return psi(actual, expected, bins)


def no_floor(expected, actual, bins=10):
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1))[1:-1])
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    e, a = e / len(expected), a / len(actual)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum((a - e) * np.log(a / e)))


def equal_width(expected, actual, bins=10):
    edges = np.linspace(np.min(expected), np.max(expected), bins + 1)[1:-1]
    e = np.maximum(np.bincount(np.searchsorted(edges, expected), minlength=bins)
                   / len(expected), 1e-4)
    a = np.maximum(np.bincount(np.searchsorted(edges, actual), minlength=bins)
                   / len(actual), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def no_spike_bin(expected, actual, bins=10):
    """What the exercise asked before the spike rule: repeated edges merged, nothing more."""
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1))[1:-1])
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    e, a = np.maximum(e / len(expected), 1e-4), np.maximum(a / len(actual), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def with_spike_bin(expected, actual, bins=10):
    """The lab's solution: a repeated edge also gets an edge just above it."""
    edges, repeats = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1))[1:-1],
                               return_counts=True)
    edges = np.union1d(edges, np.nextafter(edges[repeats > 1], np.inf))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    e, a = np.maximum(e / len(expected), 1e-4), np.maximum(a / len(actual), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def crashes(expected, actual, bins=10):
    raise KeyError("oops")


def test_psi_by_hand_accepts_the_reference(capsys):
    check.psi_by_hand(reference_psi)
    check.psi_by_hand(with_spike_bin)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 2 and "a spike of zeros" in out


@pytest.mark.parametrize("function, message", [
    (bins_from_actual, "quantiles of the \\*expected\\*"),
    (no_floor, "log\\(0\\)"),
    (equal_width, "inner deciles"),
    (crashes, "raised KeyError"),
    (no_spike_bin, "'a spike of zeros'.*a bin of its own"),
    (lambda e, a, bins=10: -psi(e, a), "negative"),
    ("psi", "should be a function"),
    (..., "still empty"),
])
def test_psi_by_hand_explains_typical_mistakes(function, message):
    with pytest.raises(CheckFailed, match=message):
        check.psi_by_hand(function)


# ----- detection delays ------------------------------------------------------------
ALERTS = pd.DataFrame({"day": [5, 14, 14, 15, 22, 23]})
EVENTS = {"shift": 14, "fault": 21}


def test_detection_delays_accept_the_reference(capsys):
    check.detection_delays({"shift": 0, "fault": 1}, ALERTS, EVENTS)
    check.detection_delays({"shift": 0, "fault": None}, ALERTS[ALERTS["day"] < 20], EVENTS)
    assert capsys.readouterr().out.count("Correct:") == 2


@pytest.mark.parametrize("delays, message", [
    ({"shift": 0, "fault": 2}, "one day too many"),
    ({"shift": 1, "fault": 1}, "one day too many"),
    ({"shift": -9, "fault": 1}, "from before the event"),
    ({"shift": 0, "fault": -1}, "from before the event|cannot be negative"),
    ({"shift": 0, "fault": 5}, "is too long"),
    ({"shift": 0}, "one entry per event"),
    ({"shift": "zero", "fault": 1}, "single number"),
])
def test_detection_delays_explain_typical_mistakes(delays, message):
    with pytest.raises(CheckFailed, match=message):
        check.detection_delays(delays, ALERTS, EVENTS)


def test_an_event_never_caught_has_no_delay():
    with pytest.raises(CheckFailed, match="None"):
        check.detection_delays({"shift": 0, "fault": 3}, ALERTS[ALERTS["day"] < 20], EVENTS)


# ----- the judgment: an alert threshold ---------------------------------------------
@pytest.fixture(scope="module")
def measured():
    """PSI with and without a break at 150 rows a day, as the lab measures it."""
    rng = np.random.default_rng(1)
    values = rng.beta(2, 20, 50_000)
    null, shifted = [], []
    for broken, out in ((0.0, null), (0.3, shifted)):
        for _ in range(300):
            sample = rng.choice(values, 600)
            today = np.where(rng.random(150) < broken, 0.0, sample[:150])
            out.append(psi(sample[150:], today))
    return np.array(null), np.array(shifted)


def test_the_threshold_check_accepts_every_defensible_threshold(measured, capsys):
    null, shifted = measured
    low, high = np.quantile(null, 1 - 1 / 30), np.quantile(shifted, 0.1)
    assert low < high
    for t in np.linspace(low + 1e-6, high - 1e-6, 5):
        check.psi_threshold(t, null, shifted)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 5 and "defensible" in out


@pytest.mark.parametrize("threshold, message", [
    (0.1, "false alarms a month"),          # the textbook "worth a look" level
    (0.01, "false alarms a month"),
    (5.0, "catch only"),
    (-0.1, "never negative"),
    ("0.25", None),                         # a number given as text is still a number
])
def test_the_threshold_check_explains_the_trade_off(measured, threshold, message):
    null, shifted = measured
    if message is None:
        low, high = np.quantile(null, 1 - 1 / 30), np.quantile(shifted, 0.1)
        if low < 0.25 < high:
            check.psi_threshold(threshold, null, shifted)
        return
    with pytest.raises(CheckFailed, match=message):
        check.psi_threshold(threshold, null, shifted)


def test_the_threshold_check_says_when_no_threshold_works():
    rng = np.random.default_rng(2)
    noisy = rng.exponential(0.3, 200)
    with pytest.raises(CheckFailed, match="no threshold meets both"):
        check.psi_threshold(0.3, noisy, noisy * 1.1)
    with pytest.raises(ValueError, match="at least 10"):
        check.psi_threshold(0.3, noisy[:5], noisy)
