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

__all__ = ["KSResult", "alerts", "drift_table", "ks_test", "psi", "segment_metrics"]

PSI_ALERT = 0.25
CALIBRATION_RANGE = (0.9, 1.1)
_FLOOR = 1e-4   # share given to an empty bin, so that PSI stays finite


def psi(expected: ArrayLike, actual: ArrayLike, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``.

    ``sum((a - e) * ln(a / e))`` over bins, where ``e`` and ``a`` are the shares of
    each sample in each bin. Bins are the deciles (or ``bins`` quantiles) of
    ``expected``; repeated edges (a discrete feature) merge, and an empty bin counts as
    a share of 1e-4 so that the index stays finite.

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
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1))[1:-1])
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
                by: str | None = None, bins: int = 10) -> pd.DataFrame:
    """PSI and KS statistic of each column of ``current`` against ``reference``.

    With ``by`` (e.g. ``"device"``), one row per (segment, column): a shift in one
    segment can hide in the overall distribution.
    """
    missing = [c for c in (*columns, *([by] if by else [])) if c not in reference
               or c not in current]
    if missing:
        raise ValueError(f"reference and current must both have columns {missing}")
    rows = []
    segments = [None] if by is None else sorted(set(current[by]) & set(reference[by]))
    for segment in segments:
        ref = reference if by is None else reference[reference[by] == segment]
        cur = current if by is None else current[current[by] == segment]
        for column in columns:
            e, a = ref[column].to_numpy(float), cur[column].to_numpy(float)
            rows.append({"segment": segment, "column": column, "n": len(a),
                         "psi": psi(e, a, bins), "ks": ks_test(e, a).statistic})
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
