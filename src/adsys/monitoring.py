"""Monitoring: is today's traffic, and the model's quality on it, like yesterday's?

- :func:`psi` (population stability index) and :func:`ks_test` (two-sample
  Kolmogorov-Smirnov) compare a feature's or a prediction's distribution today with
  a reference window. PSI is the industry's habit (below 0.1 stable, 0.1-0.25 worth a
  look, above 0.25 shifted); on small samples it is noisy, so a threshold must be
  chosen for the sample size (Step 7 measures its false-alarm rate).
- :func:`segment_metrics` gives impressions, CTR, calibration and normalized
  entropy per day and per segment, from labelled impressions.
- :func:`drift_table` and :func:`alerts` put them together into what an on-call
  engineer reads in the morning.

Everything reads the platform's own logs; nothing here knows what the world changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.validation import as_1d, check_int, check_range

__all__ = ["WATCHED_COLUMNS", "KSResult", "Monitor", "alerts", "calibration_shift",
           "drift_figure", "drift_table", "ks_test", "psi", "quality_figure", "segment_metrics"]

WATCHED_COLUMNS = (
    "f_user_topic_view_share", "f_user_log_views", "f_declared_interest", "f_n_declared",
    "f_page_topic_match", "f_log_exposures", "pctr",
)
"""Columns worth a drift alert by default: profile, page and browsing features and the
prediction. Features built from cumulative click counts (an ad's impressions and CTR
so far) move every night by construction as counts grow, so their PSI against the
days before is high even when nothing happened; Step 7 measures it."""

PSI_ALERT = 0.25
CALIBRATION_RANGE = (0.9, 1.1)
_FLOOR = 1e-4   # share given to an empty bin, so that PSI stays finite


def psi(expected: ArrayLike, actual: ArrayLike, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``.

    ``sum((a - e) * ln(a / e))`` over bins, where ``e`` and ``a`` are the shares of
    each sample in each bin. Bins are the deciles (or ``bins`` quantiles) of
    ``expected``. A value that fills more than one decile (the 0 of a 0/1 feature)
    is a bin of its own, apart from the values above it, so a shift in a discrete
    feature shows. An empty bin counts as a share of 1e-4 so that the index stays
    finite.

    Parameters
    ----------
    expected, actual : array of floats
        The reference sample (e.g. the training window) and today's.
    bins : int
        Number of quantile bins, at least 2.
    """
    e = as_1d("expected", expected)
    a = as_1d("actual", actual)
    bins = check_int("bins", bins, 2)
    edges, repeats = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1))[1:-1],
                               return_counts=True)
    # A value holding more than a decile closes its own bin just above itself.
    edges = np.union1d(edges, np.nextafter(edges[repeats > 1], np.inf))
    e_share = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1)
    a_share = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    e_share = np.maximum(e_share / len(e), _FLOOR)
    a_share = np.maximum(a_share / len(a), _FLOOR)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


@dataclass(frozen=True)
class KSResult:
    """Two-sample Kolmogorov-Smirnov test: the largest gap between the two empirical
    distribution functions, and its asymptotic p-value."""

    statistic: float
    p_value: float


def ks_test(expected: ArrayLike, actual: ArrayLike) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test of ``actual`` against ``expected``.

    The p-value uses the asymptotic Kolmogorov distribution with the usual
    small-sample correction (Stephens 1970); it is conservative for discrete data.
    """
    e = np.sort(as_1d("expected", expected))
    a = np.sort(as_1d("actual", actual))
    values = np.concatenate([e, a])
    gap = np.abs(np.searchsorted(e, values, side="right") / len(e)
                 - np.searchsorted(a, values, side="right") / len(a))
    statistic = float(gap.max())
    n = np.sqrt(len(e) * len(a) / (len(e) + len(a)))
    lam = (n + 0.12 + 0.11 / n) * statistic
    k = np.arange(1, 101)
    p = 2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k**2 * lam**2)) if lam > 0 else 1.0
    return KSResult(statistic, float(np.clip(p, 0.0, 1.0)))


def segment_metrics(labelled: pd.DataFrame, by: list[str], prediction: str = "pctr_shown",
                    label: str = "clicked") -> pd.DataFrame:
    """Impressions, clicks, CTR, mean prediction, calibration and NE per group.

    Parameters
    ----------
    labelled : DataFrame
        Impressions with a 0/1 ``label`` column (e.g. from a click join) and the
        model's ``prediction`` at the slot shown.
    by : list of str
        Columns to group by, e.g. ``["day"]`` or ``["day", "device"]``.

    Returns
    -------
    DataFrame
        One row per group: ``impressions``, ``clicks``, ``ctr``, ``mean_prediction``,
        ``calibration`` (sum of predictions / clicks; NaN without clicks) and ``ne``
        (log loss over the entropy of the group's CTR; NaN when all labels agree).
    """
    missing = [c for c in (*by, prediction, label) if c not in labelled]
    if missing:
        raise ValueError(f"labelled is missing columns {missing}")
    y = labelled[label].to_numpy(float)
    p = np.clip(labelled[prediction].to_numpy(float), 1e-15, 1 - 1e-15)
    frame = labelled[by].assign(_y=y, _p=p, _loss=-(y * np.log(p) + (1 - y) * np.log1p(-p)))
    grouped = frame.groupby(by, observed=True)
    table = grouped.agg(impressions=("_y", "size"), clicks=("_y", "sum"),
                        mean_prediction=("_p", "mean"), log_loss=("_loss", "mean"))
    table["ctr"] = table["clicks"] / table["impressions"]
    table["calibration"] = (table["mean_prediction"] * table["impressions"]
                            / table["clicks"].where(table["clicks"] > 0))
    q = table["ctr"].where((table["ctr"] > 0) & (table["ctr"] < 1))
    table["ne"] = table["log_loss"] / -(q * np.log(q) + (1 - q) * np.log1p(-q))
    return table[["impressions", "clicks", "ctr", "mean_prediction", "calibration", "ne"]]


def drift_table(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str],
                by: str | None = None, bins: int = 10, ks: bool = True) -> pd.DataFrame:
    """PSI and KS statistic of each column of ``current`` against ``reference``.

    With ``by`` (e.g. ``"device"``), one row per (segment, column): a shift in one
    segment can hide in the overall distribution. ``ks=False`` skips the KS
    statistic (NaN), which costs about as much as the PSI.
    """
    missing = [c for c in (*columns, *([by] if by else [])) if c not in reference
               or c not in current]
    if missing:
        raise ValueError(f"reference and current must both have columns {missing}")
    rows = []
    if by is None:
        groups = {None: (slice(None), slice(None))}
    else:
        ref_rows = reference.groupby(by, observed=True, sort=False).indices
        cur_rows = current.groupby(by, observed=True, sort=False).indices
        groups = {segment: (ref_rows[segment], cur_rows[segment])
                  for segment in sorted(set(ref_rows) & set(cur_rows), key=str)}
    for column in columns:
        e_all, a_all = reference[column].to_numpy(float), current[column].to_numpy(float)
        for segment, (ref, cur) in groups.items():
            e, a = e_all[ref], a_all[cur]
            rows.append({"segment": segment, "column": column, "n": len(a),
                         "psi": psi(e, a, bins),
                         "ks": ks_test(e, a).statistic if ks else np.nan})
    table = pd.DataFrame(rows)
    return table.drop(columns="segment") if by is None else table


def alerts(drift: pd.DataFrame, quality: pd.DataFrame, psi_threshold: float = PSI_ALERT,
           calibration_range: tuple[float, float] = CALIBRATION_RANGE) -> list[str]:
    """Human-readable alerts: columns whose PSI crossed the threshold, and groups whose
    calibration left the range (from :func:`drift_table` and :func:`segment_metrics`)."""
    threshold = check_range("psi_threshold", psi_threshold, 0, np.inf, low_open=True)
    low, high = calibration_range
    messages = []
    for row in drift[drift["psi"] > threshold].itertuples():
        where = f" on {row.segment}" if "segment" in drift and row.segment is not None else ""
        messages.append(f"drift: {row.column}{where} PSI {row.psi:.2f} > {threshold:g}")
    off = quality[(quality["calibration"] < low) | (quality["calibration"] > high)]
    for key, row in off.iterrows():
        messages.append(f"calibration: {key} at {row['calibration']:.2f}, outside "
                        f"[{low:g}, {high:g}]")
    return messages


def calibration_shift(clicks: ArrayLike, expected: ArrayLike, reference_clicks: ArrayLike,
                      reference_expected: ArrayLike,
                      day_to_day_variance: ArrayLike = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """How far calibration moved from a reference, and how surprising that is.

    Calibration is predicted clicks over clicks (``expected / clicks``). Returns the
    ratio of today's calibration to the reference's and its z-score, ``ln(ratio) /
    sqrt(1 / clicks + 1 / reference_clicks + day_to_day_variance)``: clicks are close
    to Poisson, so the log of a count has a variance of about one over the count, and
    a segment with few clicks needs a larger move to reach the same z. Days also differ
    by more than coin flips (a new model every night, a new mix of ads):
    ``day_to_day_variance`` (one value, or one per row) adds that spread of
    ``ln(ratio)`` (:class:`Monitor` measures it on the days before). NaN where either
    side has no click.
    """
    arrays = [as_1d(name, values, allow_empty=True) for name, values in (
        ("clicks", clicks), ("expected", expected), ("reference_clicks", reference_clicks),
        ("reference_expected", reference_expected))]
    c, e, rc, re = arrays
    if len({len(a) for a in arrays}) > 1:
        raise ValueError("clicks, expected, reference_clicks and reference_expected must "
                         "have the same length")
    if min(a.min(initial=0.0) for a in arrays) < 0:
        raise ValueError("clicks and expected clicks must be >= 0")
    extra = np.broadcast_to(np.asarray(day_to_day_variance, float), c.shape)
    if np.any(extra < 0):
        raise ValueError("day_to_day_variance must be >= 0")
    ok = (c > 0) & (rc > 0) & (e > 0) & (re > 0)
    ratio = np.full(len(c), np.nan)
    z = np.full(len(c), np.nan)
    ratio[ok] = (e[ok] / c[ok]) / (re[ok] / rc[ok])
    z[ok] = np.log(ratio[ok]) / np.sqrt(1 / c[ok] + 1 / rc[ok] + extra[ok])
    return ratio, z


_QUALITY_SUMS = ("impressions", "clicks", "expected", "loss")


class Monitor:
    """The morning-after monitor: each day's labelled impressions against the days before.

    Feed it one day at a time (:meth:`observe`), as an on-call job would each morning
    once the day's attribution windows have closed. For each day it computes:

    - **quality**, overall and per segment (e.g. device, ad topic): impressions,
      clicks, CTR, mean prediction, calibration and NE (as :func:`segment_metrics`);
    - **drift**: PSI and KS of each monitored column (features as served, the
      prediction), overall and per value of ``drift_by``, against a sample of the
      ``reference_days`` days before;
    - **alerts**: a column whose PSI exceeds ``psi_threshold`` (in a segment with at
      least ``min_rows`` rows today), and a segment whose calibration moved against
      the reference days by at least ``min_change`` (relative) with a z-score of at
      least ``z_threshold`` (see :func:`calibration_shift`).

    The z-score of a calibration move counts two kinds of noise: the clicks' own
    (Poisson) and the day-to-day spread a healthy system shows anyway, because every
    night ships a new model and every day a new mix of ads. The monitor measures the
    second on its own past: the moves of the segments of each column (all traffic,
    each device, each topic...) over the last ``noise_days`` days give a robust spread
    (the median absolute deviation, less the Poisson part). Until it has moves from
    ``min_noise_days`` days, it raises no calibration alert: a new monitor first
    learns what a normal day looks like.

    Alerts compare with the trailing days, not with a fixed target: a model that is
    steadily 10% off raises nothing, a model that moves does. The trailing reference
    also means a change that persists stops alerting once it fills the reference:
    an alert is the start of an incident, not its tracker.

    Parameters
    ----------
    columns : sequence of str
        Numeric columns to watch for drift, e.g. the ``f_`` features and ``pctr``.
    quality_by : sequence of str
        Segment columns for quality, each sliced on its own.
    drift_by : str, optional
        Segment column for drift (``None``: overall only).
    reference_days : int
        Trailing days pooled as the reference (the model's training window is a
        natural choice).
    noise_days, min_noise_days : int
        The days of past calibration moves that measure the day-to-day spread, and
        how many are needed before calibration alerts start.
    prediction, label : str
        The prediction at the slot shown and the 0/1 label.
    sample_size : int
        Rows of each day that drift is measured on (a random sample, also kept as the
        reference of the next days), to bound time and memory.
    seed : int
        Seeds that sample.
    ks : bool
        Also compute the KS statistic of each drift row (the alerts use PSI only).
    """

    def __init__(self, columns: list[str] | tuple[str, ...],
                 quality_by: list[str] | tuple[str, ...] = (), drift_by: str | None = None,
                 reference_days: int = 3, psi_threshold: float = PSI_ALERT,
                 z_threshold: float = 4.0, min_change: float = 0.1, min_rows: int = 100,
                 noise_days: int = 14, min_noise_days: int = 5, bins: int = 10,
                 prediction: str = "pctr_shown", label: str = "clicked",
                 sample_size: int = 20_000, seed: int = 0, ks: bool = True) -> None:
        self.columns = _names("columns", columns, allow_empty=False)
        self.quality_by = _names("quality_by", quality_by)
        if drift_by is not None and not isinstance(drift_by, str):
            raise TypeError(f"drift_by must be a column name or None; got {drift_by!r}")
        self.drift_by = drift_by
        self.reference_days = check_int("reference_days", reference_days, 1)
        self.psi_threshold = check_range("psi_threshold", psi_threshold, 0, np.inf,
                                         low_open=True)
        self.z_threshold = check_range("z_threshold", z_threshold, 0, np.inf, low_open=True)
        self.min_change = check_range("min_change", min_change, 0, 1)
        self.min_rows = check_int("min_rows", min_rows, 1)
        self.noise_days = check_int("noise_days", noise_days, 1)
        self.min_noise_days = check_int("min_noise_days", min_noise_days, 1, self.noise_days)
        self.bins = check_int("bins", bins, 2)
        self.prediction, self.label = _name("prediction", prediction), _name("label", label)
        self.sample_size = check_int("sample_size", sample_size, 1)
        if not isinstance(ks, bool):
            raise TypeError(f"ks must be True or False; got {ks!r}")
        self.ks = ks
        self._rng = np.random.default_rng(check_int("seed", seed, 0))
        self._samples: dict[int, pd.DataFrame] = {}
        self._sums: dict[int, pd.DataFrame] = {}
        self._quality, self._drift, self._alerts = [], [], []
        self._checks: list[pd.DataFrame] = []   # each day's calibration checks

    def observe(self, day: int, labelled: pd.DataFrame) -> pd.DataFrame:
        """Monitor ``day`` from its labelled impressions; return the day's alerts.

        Days must come in increasing order. The reference is the up to
        ``reference_days`` observed days before ``day`` (none on the first day: no
        drift and no alert then).
        """
        day = check_int("day", day, 0)
        if self._sums and day <= max(self._sums):
            raise ValueError(f"day must come after the days already observed (last "
                             f"{max(self._sums)}); got {day}")
        if not isinstance(labelled, pd.DataFrame):
            raise TypeError(f"labelled must be a DataFrame; got {type(labelled).__name__}")
        segments = [*self.quality_by, *([self.drift_by] if self.drift_by else [])]
        needed = [*self.columns, *segments, self.prediction, self.label]
        missing = [c for c in dict.fromkeys(needed) if c not in labelled]
        if missing:
            raise ValueError(f"labelled is missing columns {missing}")
        reference = [d for d in sorted(self._sums) if d < day][-self.reference_days:]
        sums = self._segment_sums(labelled)
        today = labelled[list(dict.fromkeys([*self.columns, *segments]))]
        if len(today) > self.sample_size:   # drift is measured on a sample of each day
            today = today.iloc[np.sort(self._rng.choice(len(today), self.sample_size,
                                                        replace=False))]
        today = today.reset_index(drop=True)
        quality = self._quality_table(sums, day)
        alerts = []
        if reference:
            pooled = pd.concat([self._sums[d] for d in reference]).groupby(
                ["segment", "value"], observed=True).sum()
            alerts += self._calibration_alerts(day, sums, pooled)
            drift = self._drift_rows(day, pd.concat([self._samples[d] for d in reference]),
                                     today)
            alerts += [{"day": day, "kind": "drift", "segment": row["segment"],
                        "value": row["value"], "metric": f"PSI of {row['column']}",
                        "observed": row["psi"], "threshold": self.psi_threshold,
                        "message": f"day {day}: {row['column']} drifted"
                                   f"{_where(row)}: PSI {row['psi']:.2f} > "
                                   f"{self.psi_threshold:g}"}
                       for row in drift if row["psi"] > self.psi_threshold
                       and row["n"] >= self.min_rows]
            self._drift += drift
        self._quality.append(quality)
        self._sums[day] = sums
        self._samples[day] = today
        for old in sorted(self._samples)[:-self.reference_days]:   # kept: the next reference
            del self._samples[old]
        self._alerts += alerts
        return pd.DataFrame(alerts, columns=_ALERT_COLUMNS)

    def _segment_sums(self, labelled: pd.DataFrame) -> pd.DataFrame:
        """Impressions, clicks, predicted clicks and log loss summed per segment."""
        y = labelled[self.label].to_numpy(float)
        p = np.clip(labelled[self.prediction].to_numpy(float), 1e-15, 1 - 1e-15)
        loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        frame = pd.DataFrame({"impressions": 1, "clicks": y, "expected": p, "loss": loss})
        parts = [frame.sum().to_frame().T.assign(segment="all", value="all")]
        for column in self.quality_by:
            grouped = frame.groupby(labelled[column].astype(str).to_numpy()).sum()
            parts.append(grouped.assign(segment=column, value=grouped.index))
        sums = pd.concat(parts, ignore_index=True)
        return sums.set_index(["segment", "value"])[list(_QUALITY_SUMS)]

    @staticmethod
    def _quality_table(sums: pd.DataFrame, day: int) -> pd.DataFrame:
        table = sums.reset_index()
        ctr = table["clicks"] / table["impressions"]
        q = ctr.where((ctr > 0) & (ctr < 1))
        entropy = -(q * np.log(q) + (1 - q) * np.log1p(-q))
        return pd.DataFrame({
            "day": day, "segment": table["segment"], "value": table["value"],
            "impressions": table["impressions"].astype(int), "clicks": table["clicks"],
            "ctr": ctr, "mean_prediction": table["expected"] / table["impressions"],
            "calibration": table["expected"] / table["clicks"].where(table["clicks"] > 0),
            "ne": table["loss"] / table["impressions"] / entropy})

    def _calibration_alerts(self, day: int, sums: pd.DataFrame,
                            pooled: pd.DataFrame) -> list[dict]:
        both = sums.merge(pooled, left_index=True, right_index=True, suffixes=("", "_ref"))
        segment = both.index.get_level_values("segment")
        spread = pd.Series(self._day_to_day_variance(day), dtype=float)
        extra = segment.map(spread).to_numpy(float)   # NaN where not measured yet
        args = both["clicks"], both["expected"], both["clicks_ref"], both["expected_ref"]
        ratio, z = calibration_shift(*args, np.nan_to_num(extra))
        _, z_poisson = calibration_shift(*args)
        with np.errstate(divide="ignore"):   # a segment without clicks: no move today
            poisson = 1 / both["clicks"].to_numpy(float) + 1 / both["clicks_ref"].to_numpy(float)
        checks = pd.DataFrame({"day": day, "segment": segment,
                               "value": both.index.get_level_values("value"),
                               "ratio": ratio, "z": np.where(np.isnan(extra), np.nan, z),
                               "z_poisson_only": z_poisson, "spread": np.sqrt(extra),
                               "poisson_variance": poisson})
        self._checks.append(checks)
        alerts = []
        for row in checks.itertuples():
            if abs(row.z) >= self.z_threshold and abs(row.ratio - 1) >= self.min_change:
                where = "" if row.segment == "all" else f" on {row.segment}={row.value}"
                alerts.append({
                    "day": day, "kind": "calibration", "segment": row.segment,
                    "value": row.value, "metric": "calibration vs reference",
                    "observed": float(row.ratio), "threshold": self.z_threshold,
                    "message": f"day {day}: calibration{where} moved x{row.ratio:.2f} against "
                               f"the {self.reference_days} days before (z = {row.z:+.1f}, "
                               f"with a usual day-to-day spread of {row.spread:.0%})"})
        return alerts

    def _day_to_day_variance(self, day: int) -> dict[str, float]:
        """Per segment column, the variance of healthy days' calibration moves beyond
        Poisson noise, from the last ``noise_days`` days before ``day`` (none until
        there are ``min_noise_days`` of them)."""
        if not self._checks:
            return {}
        past = pd.concat(self._checks, ignore_index=True)
        past = past.assign(move=np.log(past["ratio"]))
        past = past[(past["day"] >= day - self.noise_days) & np.isfinite(past["move"])]
        spread = {}
        for segment, moves in past.groupby("segment", sort=False):
            if moves["day"].nunique() >= self.min_noise_days:
                mad = 1.4826 * np.median(np.abs(moves["move"] - moves["move"].median()))
                spread[segment] = max(mad**2 - float(moves["poisson_variance"].median()), 0.0)
        return spread

    def _drift_rows(self, day: int, reference: pd.DataFrame,
                    current: pd.DataFrame) -> list[dict]:
        rows = [{"day": day, "segment": "all", "value": "all", **row}
                for row in drift_table(reference, current, self.columns, bins=self.bins,
                                       ks=self.ks).to_dict("records")]
        if self.drift_by is not None:
            by = self.drift_by
            table = drift_table(reference.assign(**{by: reference[by].astype(str)}),
                                current.assign(**{by: current[by].astype(str)}),
                                self.columns, by=by, bins=self.bins, ks=self.ks)
            rows += [{"day": day, "segment": by, "value": row.pop("segment"), **row}
                     for row in table.to_dict("records")]
        return rows

    @property
    def quality(self) -> pd.DataFrame:
        """One row per (day, segment, value): impressions, clicks, CTR, mean prediction,
        calibration, NE (segment ``"all"`` is the whole day)."""
        return (pd.concat(self._quality, ignore_index=True) if self._quality else
                pd.DataFrame(columns=["day", "segment", "value", "impressions", "clicks",
                                      "ctr", "mean_prediction", "calibration", "ne"]))

    @property
    def drift(self) -> pd.DataFrame:
        """One row per (day, segment, value, column): rows today ``n``, ``psi``, ``ks``."""
        return pd.DataFrame(self._drift, columns=["day", "segment", "value", "column", "n",
                                                  "psi", "ks"])

    @property
    def calibration_checks(self) -> pd.DataFrame:
        """One row per (day, segment, value) with a reference: the calibration ratio
        against the reference days, its z-score (NaN until the day-to-day spread is
        measured), the z-score with Poisson noise alone, the spread, and the Poisson
        variance of ``ln(ratio)``."""
        columns = ["day", "segment", "value", "ratio", "z", "z_poisson_only", "spread",
                   "poisson_variance"]
        return (pd.concat(self._checks, ignore_index=True) if self._checks
                else pd.DataFrame(columns=columns))

    @property
    def alerts(self) -> pd.DataFrame:
        """Every alert raised so far, in order: day, kind (drift or calibration),
        segment, value, metric, observed value, threshold and a message."""
        return pd.DataFrame(self._alerts, columns=_ALERT_COLUMNS)

    def to_dict(self) -> dict:
        """The report as plain data (for JSON): settings, quality, drift, alerts."""
        def records(frame: pd.DataFrame) -> list[dict]:
            return [{k: (None if isinstance(v, float) and not np.isfinite(v) else
                         round(v, 6) if isinstance(v, float) else v)
                     for k, v in row.items()}
                    for row in frame.astype(object).to_dict("records")]
        settings = {"columns": list(self.columns), "quality_by": list(self.quality_by),
                    "drift_by": self.drift_by, "reference_days": self.reference_days,
                    "psi_threshold": self.psi_threshold, "z_threshold": self.z_threshold,
                    "min_change": self.min_change, "min_rows": self.min_rows,
                    "noise_days": self.noise_days, "min_noise_days": self.min_noise_days}
        return {"settings": settings, "quality": records(self.quality),
                "drift": records(self.drift), "alerts": records(self.alerts)}


def quality_figure(quality: pd.DataFrame, segment: str, events: dict[str, int] | None = None,
                   band: tuple[float, float] | None = None, highlight: str | None = None):
    """Calibration and NE by day, overall and for each value of ``segment`` (from
    :attr:`Monitor.quality`); ``events`` marks known days (e.g. ``{"shift": 14}``).

    ``band`` shades a target range of calibration (e.g. ``(0.97, 1.03)``);
    ``highlight`` draws one value of ``segment`` (e.g. ``"mobile"``) bolder than the
    others. Each value also has its own marker, so the lines differ beyond colour.
    """
    import matplotlib.pyplot as plt

    from adsys import plots

    plots.style()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.0), sharex=True)
    rows = quality[quality["segment"].isin(["all", segment])]
    markers = iter(["o", "s", "^", "D", "v", "P", "X", "*"] * 4)
    if band is not None:
        axes[0].axhspan(*band, color="0.6", alpha=0.3, lw=0,
                        label=f"target {band[0]:g}-{band[1]:g}")
    axes[0].axhline(1.0, color="0.5", lw=0.8, ls=":")
    for (kind, value), part in rows.groupby(["segment", "value"], sort=False):
        if kind == "all":
            style = {"color": "black", "lw": 2}
        else:
            bold = highlight is None or str(value) == str(highlight)
            style = {"marker": next(markers), "ms": 3.5 if bold else 3,
                     "lw": 1.6 if bold else 0.9, "alpha": 1.0 if bold else 0.55}
        label = "all traffic" if kind == "all" else str(value)
        axes[0].plot(part["day"], part["calibration"], label=label, **style)
        axes[1].plot(part["day"], part["ne"], label=label, **style)
    for ax, title, unit in ((axes[0], "Calibration", "predicted / observed clicks"),
                            (axes[1], "Normalized entropy", "NE (lower is better)")):
        ax.set(title=f"{title} by {segment.removeprefix('f_')}", xlabel="day", ylabel=unit)
        _mark(ax, events)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
               ncol=5, fontsize=8)
    return fig


def drift_figure(drift: pd.DataFrame, threshold: float = PSI_ALERT,
                 events: dict[str, int] | None = None):
    """The largest PSI of each column over its segments, by day (from
    :attr:`Monitor.drift`), on a log scale with the alert threshold.

    Columns that cross the threshold on some day get a colour and a legend entry; the
    others are drawn in light grey, together."""
    import matplotlib.pyplot as plt

    from adsys import plots

    plots.style()
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    worst = drift.groupby(["column", "day"])["psi"].max().clip(lower=1e-4)
    peak = worst.groupby(level="column").max().sort_values(ascending=False)
    loud = list(peak.index[peak > threshold])
    quiet = [c for c in peak.index if c not in loud]
    colours = iter(["C0", "C1", "C4", "C2", "C5", "C6", "C8", "C9"] * 2)
    for column in [*loud, *quiet]:          # loud first in the legend, on top by zorder
        series = worst.xs(column, level="column")
        if column in loud:
            style = {"color": next(colours), "lw": 1.5, "ms": 5, "zorder": 3,
                     "label": column.removeprefix("f_")}
        else:
            style = {"color": "0.75", "lw": 0.8, "ms": 3, "zorder": 2,
                     "label": (f"{len(quiet)} other column{'s' * (len(quiet) > 1)}, "
                               f"never above {threshold:g}" if column == quiet[0] else None)}
        ax.plot(series.index, series.to_numpy(), marker=".", **style)
    ax.axhline(threshold, color="C3", ls="--", lw=1, label=f"alert: PSI {threshold:g}")
    ax.set(yscale="log", xlabel="day", ylabel="PSI (largest over segments)",
           title="Drift of each monitored column against the days before")
    _mark(ax, events)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def _mark(ax, events: dict[str, int] | None) -> None:
    """Mark each event's day with a dashed line, its name at the top, in headroom added
    above the data so that the name does not sit on a line."""
    if not events:
        return
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(low, high * (high / low) ** 0.15)
    else:
        ax.set_ylim(low, high + 0.15 * (high - low))
    for name, day in events.items():
        ax.axvline(day, color="0.4", lw=0.8, ls="--")
        ax.annotate(name, (day, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                    ha="left", va="top", xytext=(2, -2), textcoords="offset points")


_ALERT_COLUMNS = ["day", "kind", "segment", "value", "metric", "observed", "threshold",
                  "message"]


def _where(row: dict) -> str:
    return "" if row["segment"] == "all" else f" on {row['segment']}={row['value']}"


def _name(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a column name; got {value!r}")
    return value


def _names(name: str, values: object, allow_empty: bool = True) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a list of column names; got {values!r}")
    if not values and not allow_empty:
        raise ValueError(f"{name} must name at least one column")
    return tuple(values)
