"""Auto-checks for the Step 7 lab (``notebooks/07_iterate``).

Each check recomputes the answer from the same inputs the learner used (the log
store, :func:`adsys.monitoring.psi`, the monitor's alerts, measured PSI samples) and,
when the answer is wrong, recognises the usual mistakes and explains them. The
judgment check (:func:`psi_threshold`) accepts any threshold the measurements
defend and explains the trade-off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.checks import CheckFailed, as_number, passed, require, require_answer
from adsys.monitoring import psi
from adsys.store import LogStore

DAILY_BY_DEVICE_SQL = """
SELECT i.day, i.f_device AS device, COUNT(*) AS impressions,
       COUNT(c.impression_id) AS clicks, SUM(i.charged) AS revenue
FROM impressions AS i
LEFT JOIN (SELECT DISTINCT impression_id FROM clicks) AS c USING (impression_id)
GROUP BY i.day, i.f_device
ORDER BY i.day, device
"""
"""The reference answer of the SQL exercise (clicks counted once per impression)."""

_COLUMNS = ("day", "device", "impressions", "clicks", "revenue")


def _table(answer: object) -> pd.DataFrame:
    require_answer(answer, "by_device")
    require(isinstance(answer, pd.DataFrame),
            f"`by_device` should be the DataFrame your query returns (store.sql(...)); got "
            f"{type(answer).__name__}.")
    if "device" not in answer and "f_device" in answer:   # the column as logged is fine
        answer = answer.rename(columns={"f_device": "device"})
    missing = [c for c in _COLUMNS if c not in answer]
    require(not missing, f"`by_device` is missing the columns {missing}: name them with AS "
            f"(for example COUNT(*) AS impressions); expected {list(_COLUMNS)}.")
    table = answer[list(_COLUMNS)].copy()
    table["device"] = table["device"].astype(str)
    return table.sort_values(["day", "device"], ignore_index=True)


def daily_by_device(daily: object, store: LogStore) -> None:
    """Check a day x device table of impressions, clicks and revenue from the store.

    ``daily`` (the lab's ``by_device``) has the columns ``day``, ``device`` (or
    ``f_device``), ``impressions``, ``clicks`` and ``revenue``. ``clicks`` counts the
    impressions that received at least one click event (a duplicate counts once, a late
    click counts); ``revenue`` is the dollars charged.
    """
    got = _table(daily)
    want = store.sql(DAILY_BY_DEVICE_SQL)
    want["device"] = want["device"].astype(str)
    require(len(got) == len(want),
            f"`by_device` has {len(got)} rows; one per (day, device) gives {len(want)}. "
            "Group by both day and device (GROUP BY i.day, i.f_device).")
    require((got[["day", "device"]].to_numpy() == want[["day", "device"]].to_numpy()).all(),
            "the (day, device) pairs differ from the store's: group by the day partition "
            "column and the device as logged (f_device holds its name).")
    require(np.array_equal(got["impressions"], want["impressions"]),
            "`impressions` should count impression rows per group (COUNT(*) over the "
            "impressions, before any join multiplies them). Joined to every click event, "
            "an impression with a duplicate click counts twice.")
    raw = store.sql("""SELECT i.day, i.f_device AS device, COUNT(c.impression_id) AS clicks
                       FROM impressions AS i LEFT JOIN clicks AS c USING (impression_id)
                       GROUP BY ALL ORDER BY ALL""")
    if np.array_equal(got["clicks"], raw["clicks"]) and not np.array_equal(
            raw["clicks"], want["clicks"]):
        raise CheckFailed("`clicks` counts click *events*: a client that re-sends a click "
                          "counts it twice. Count each impression once (SELECT DISTINCT "
                          "impression_id FROM clicks, or COUNT(DISTINCT ...)).")
    require(np.array_equal(got["clicks"], want["clicks"]),
            "`clicks` should count the impressions with at least one click event (a LEFT "
            "JOIN to the distinct clicked impression ids, then COUNT of the joined id).")
    priced = store.sql("SELECT day, f_device AS device, SUM(price) AS revenue FROM "
                       "impressions GROUP BY ALL ORDER BY ALL")
    if np.allclose(got["revenue"], priced["revenue"]):
        raise CheckFailed("`revenue` sums `price`, the cost per click each impression *would* "
                          "pay if clicked. Advertisers pay only for clicks: sum `charged`.")
    require(np.allclose(got["revenue"], want["revenue"], rtol=1e-9),
            "`revenue` should be the dollars charged: SUM(charged) per group.")
    top = want.assign(ctr=want["clicks"] / want["impressions"])
    passed(f"{len(want)} (day, device) rows; CTR by device over the run: " + ", ".join(
        f"{d} {g['clicks'].sum() / g['impressions'].sum():.2%}"
        for d, g in top.groupby("device")) + ". The same GROUP BY runs unchanged on a "
        "warehouse over billions of rows.")


_PSI_CASES = (
    ("same distribution", lambda r: (r.normal(size=4000), r.normal(size=3000))),
    ("shifted mean", lambda r: (r.normal(size=4000), r.normal(0.5, 1.0, 3000))),
    ("wider spread", lambda r: (r.exponential(size=4000), r.exponential(2.0, 3000))),
    ("empty bins today", lambda r: (r.normal(size=4000), np.full(500, -9.0))),
    ("a discrete feature", lambda r: (r.integers(0, 4, 4000).astype(float),
                                      r.integers(0, 3, 3000).astype(float))),
    ("a spike of zeros", lambda r: (np.where(r.random(4000) < 0.3, 0.0, r.beta(2, 8, 4000)),
                                    np.where(r.random(3000) < 0.45, 0.0, r.beta(2, 8, 3000)))),
)
"""The cases :func:`psi_by_hand` tries; the last is the lab's kind of feature, a share
that is often exactly 0."""


def _psi_without_spike_bins(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI with repeated edges merged but no bin of its own for a repeated value: the
    usual slip on a feature with a spike (its bin also holds the values just above)."""
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1))[1:-1])
    shares = [np.maximum(np.bincount(np.searchsorted(edges, x, side="right"),
                                     minlength=len(edges) + 1) / len(x), 1e-4)
              for x in (expected, actual)]
    e, a = shares
    return float(np.sum((a - e) * np.log(a / e)))


def psi_by_hand(psi_function: object) -> None:
    """Check a learner's ``psi_function(expected, actual, bins=10)`` against
    :func:`adsys.monitoring.psi` on cases that catch the usual slips."""
    require_answer(psi_function, "my_psi")
    require(callable(psi_function), "`my_psi` should be a function of (expected, actual, "
            f"bins); got {type(psi_function).__name__}.")
    rng = np.random.default_rng(7)
    for name, draw in _PSI_CASES:
        expected, actual = draw(rng)
        want = psi(expected, actual)
        try:
            got = float(psi_function(expected, actual, 10))
        except Exception as error:     # the learner's code: report, do not crash
            raise CheckFailed(f"`my_psi` raised {type(error).__name__}: {error} on the case "
                              f"'{name}'.") from None
        if np.isclose(got, want, rtol=1e-6, atol=1e-9):
            continue
        require(np.isfinite(got),
                f"on '{name}' `my_psi` returned {got}: an empty bin gives log(0). Floor each "
                "share at 1e-4 before taking logs, as the industry's PSI does.")
        mirrored = psi(actual, expected)
        require(not np.isclose(got, mirrored, rtol=1e-6),
                f"on '{name}' you get the PSI of expected against actual: the bins come from "
                "the quantiles of the *expected* (reference) sample.")
        require(got >= 0, f"on '{name}' `my_psi` is negative ({got:.4f}): each term is "
                "(a - e) x ln(a / e), which is never negative.")
        require(not np.isclose(got, _psi_without_spike_bins(expected, actual), rtol=1e-6),
                f"on '{name}' `my_psi` gives {got:.4f}, the reference {want:.4f}: 0 fills "
                "several deciles, and its bin also holds the small values just above it, so "
                "a change in the share of zeros is diluted. Give a repeated edge a bin of "
                "its own: add an edge just above it (np.nextafter(edge, np.inf)).")
        raise CheckFailed(f"on '{name}' `my_psi` gives {got:.4f}, the reference {want:.4f}. "
                          "Bins: the inner deciles of `expected` (np.quantile at 0.1 ... 0.9, "
                          "repeated edges merged with np.unique, plus an edge just above each "
                          "repeated one); shares of each sample per bin "
                          "(np.searchsorted(edges, x, side='right')), floored at 1e-4; then "
                          "sum((a - e) * ln(a / e)).")
    cases = ", ".join(name for name, _ in _PSI_CASES)
    passed(f"your PSI matches adsys.monitoring.psi on all {len(_PSI_CASES)} cases ({cases}).")


def _first_alerts(alerts: pd.DataFrame, events: dict[str, int]) -> dict[str, int | None]:
    days = np.sort(alerts["day"].unique())
    return {name: next((int(d) - day for d in days if d >= day), None)
            for name, day in events.items()}


def detection_delays(delays: object, alerts: pd.DataFrame, events: dict[str, int]) -> None:
    """Check the days from each event to the first alert raised on or after its day.

    Parameters
    ----------
    delays : dict
        The learner's answer: event name -> delay in days (0: caught the same day).
    alerts : DataFrame
        The monitor's alerts (a ``day`` column).
    events : dict
        Event name -> the day it started.
    """
    require_answer(delays, "delays")
    require(isinstance(delays, dict) and set(delays) == set(events),
            f"`delays` should be a dict with one entry per event {sorted(events)}; got "
            f"{delays!r}.")
    want = _first_alerts(alerts, events)
    for name, day in events.items():
        if want[name] is None:
            require(delays[name] is None, f"no alert came on or after day {day}: the delay "
                    f"of '{name}' is None (never caught).")
            continue
        got = as_number(delays[name], f"delays['{name}']")
        if got == want[name]:
            continue
        earlier = alerts.loc[alerts["day"] < day, "day"]
        require(not (len(earlier) and got == int(earlier.max()) - day),
                f"delays['{name}'] = {got:g} counts an alert from before the event. Only "
                f"alerts on or after day {day} can be caused by it.")
        require(got != want[name] + 1, f"delays['{name}'] = {got:g} is one day too many: "
                f"an alert on the event's own day is a delay of 0.")
        require(got >= 0, f"delays['{name}'] = {got:g}: a delay cannot be negative.")
        direction = "long" if got > want[name] else "short"
        raise CheckFailed(f"delays['{name}'] = {got:g} is too {direction}: the delay is the "
                          f"first (smallest) alert day on or after day {day}, minus {day}.")
    passed("delays " + ", ".join(f"{k}: {v} day(s)" for k, v in want.items()) + ". A delay "
           "of 0 means the morning-after report flags the change the day it starts; the "
           "attribution window and the nightly batch set that floor.")


def psi_threshold(threshold: object, null_psi: ArrayLike, shifted_psi: ArrayLike,
                  false_alarms_per_month: float = 1.0, power: float = 0.9) -> None:
    """Judgment: an alert threshold for PSI on a segment of a given daily size.

    Parameters
    ----------
    threshold : float
        The learner's PSI alert threshold.
    null_psi : array
        PSI of a day against its reference when nothing changed, measured at the
        segment's size (one value per simulated day).
    shifted_psi : array
        PSI at the same size when the change one must catch happened.
    false_alarms_per_month, power :
        The budget: at most this many false alarms per 30 days for the column, and at
        least this share of shifted days caught.

    Any threshold that meets both is accepted; the message explains the trade-off.
    """
    t = as_number(threshold, "threshold")
    null = np.asarray(null_psi, dtype=float)
    shifted = np.asarray(shifted_psi, dtype=float)
    if null.size < 10 or shifted.size < 10:
        raise ValueError("null_psi and shifted_psi need at least 10 measurements each")
    rate = false_alarms_per_month / 30
    require(t > 0, f"`threshold` = {t:g}: PSI is never negative, so every day would alert.")
    false_alarm = float(np.mean(null > t))
    caught = float(np.mean(shifted > t))
    low = float(np.quantile(null, 1 - rate))
    high = float(np.quantile(shifted, 1 - power))
    if low >= high:
        raise CheckFailed(
            f"at this sample size no threshold meets both goals: keeping false alarms under "
            f"{false_alarms_per_month:g} a month needs PSI > {low:.3f}, but catching "
            f"{power:.0%} of the shifted days needs {high:.3f} or less. Pool more days or a "
            "larger segment, or accept one of the two costs explicitly.")
    require(false_alarm <= rate + 1e-12,
            f"`threshold` = {t:g} would alert on {false_alarm:.1%} of days with no change: "
            f"about {30 * false_alarm:.0f} false alarms a month for this one column, far over "
            f"the budget of {false_alarms_per_month:g}. On small samples PSI is noisy; the "
            f"textbook 0.1 or 0.25 is a rule for large samples. Thresholds from {low:.3f} "
            f"to {high:.3f} meet both goals here.")
    require(caught >= power,
            f"`threshold` = {t:g} is quiet, but it would catch only {caught:.0%} of the "
            f"shifted days (the goal is {power:.0%}). Thresholds from {low:.3f} to "
            f"{high:.3f} meet both goals here.")
    passed(f"threshold {t:g}: {false_alarm:.1%} of quiet days alert (about "
           f"{30 * false_alarm:.1f} a month, budget {false_alarms_per_month:g}) and "
           f"{caught:.0%} of shifted days are caught. Anything from {low:.3f} to {high:.3f} "
           "is defensible; lower catches smaller shifts sooner at the cost of more pages at "
           "night, higher the reverse. The right number moves with the segment's size: "
           "re-derive it when traffic changes.")


__all__ = ["DAILY_BY_DEVICE_SQL", "daily_by_device", "detection_delays", "psi_by_hand",
           "psi_threshold"]
