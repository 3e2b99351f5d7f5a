"""The event log: impressions as served, clicks as they arrive, and the join.

Clicks arrive late, out of order, and sometimes twice. The join attributes each
click to the one impression it names, counts duplicates once, and labels an
impression positive only if its first click arrived within the attribution
window. Training data is generated only from impressions whose window has
closed, so a label never changes after it is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from adsys.validation import as_1d, check_range

IMPRESSION_COLUMNS = (
    "impression_id", "request_id", "time", "day", "hour", "user_id", "publisher_id",
    "device", "ad_id", "campaign_id", "position", "bid", "pctr", "price", "model_version",
    "explored", "propensity",
)
"""The columns of an impression log as served (the ``f_`` feature columns follow)."""
CLICK_COLUMNS = ("impression_id", "click_time")
FEATURE_PREFIX = "f_"


@dataclass(frozen=True)
class JoinReport:
    """What the join saw: every click event is accounted for exactly once."""

    click_events: int       # events received
    duplicates: int         # events for an impression that already had one
    late: int               # first clicks that arrived after the window
    orphans: int            # events naming no known impression (dropped)
    attributed: int         # impressions labelled clicked within the window

    def __post_init__(self) -> None:
        accounted = self.duplicates + self.late + self.orphans + self.attributed
        if accounted != self.click_events:
            raise AssertionError(f"join lost clicks: {accounted} != {self.click_events}")


def _require_columns(name: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}")
    for column in columns:
        as_1d(f"{name}.{column}", frame[column].to_numpy(), allow_empty=True)


def join_clicks(impressions: pd.DataFrame, clicks: pd.DataFrame,
                window_seconds: float) -> tuple[pd.DataFrame, JoinReport]:
    """Label impressions with the clicks that arrived within ``window_seconds``.

    Returns a copy of ``impressions`` with ``clicked`` (0/1, first click within the
    window), ``click_time`` (of the first click, NaN if none) and ``late_click``
    (a first click that came after the window), plus a :class:`JoinReport`.
    Clicks may be in any order and may repeat; times must be finite numbers.
    """
    _require_columns("impressions", impressions, ("impression_id", "time"))
    _require_columns("clicks", clicks, CLICK_COLUMNS)
    check_range("window_seconds", window_seconds, 0, np.inf, low_open=True, high_open=True)
    if impressions["impression_id"].duplicated().any():
        raise ValueError("impressions has duplicate impression_id values")
    known = clicks["impression_id"].isin(impressions["impression_id"])
    first = clicks[known].groupby("impression_id")["click_time"].min()
    labelled = impressions.copy(deep=False)    # copy-on-write: the input stays untouched
    click_time = labelled["impression_id"].map(first)
    delay = click_time - labelled["time"]
    if (delay < 0).any():
        raise ValueError("clicks has a click_time before its impression's time")
    labelled["click_time"] = click_time
    labelled["clicked"] = (delay <= window_seconds).astype(np.int8)
    labelled["late_click"] = (delay > window_seconds).astype(np.int8)
    report = JoinReport(
        click_events=len(clicks),
        duplicates=int(known.sum() - len(first)),
        late=int(labelled["late_click"].sum()),
        orphans=int((~known).sum()),
        attributed=int(labelled["clicked"].sum()),
    )
    return labelled, report


def closed_labels(impressions: pd.DataFrame, clicks: pd.DataFrame, window_seconds: float,
                  as_of: float, closed_after: float | None = None) -> pd.DataFrame:
    """Labelled impressions whose attribution window closed in ``(closed_after, as_of]``.

    ``closed_after=None`` takes every impression closed by ``as_of``. Only clicks
    received by ``as_of`` are known. Impressions still inside their window are left
    out rather than labelled negative too early; a nightly job passes the previous
    night as ``closed_after`` to count each impression exactly once, on the first
    night its label is final.
    """
    as_of = check_range("as_of", as_of, 0, np.inf, high_open=True)
    closed_after = -np.inf if closed_after is None else check_range(
        "closed_after", closed_after, -np.inf, as_of)
    _require_columns("clicks", clicks, CLICK_COLUMNS)
    labelled, _ = join_clicks(impressions, clicks[clicks["click_time"] <= as_of],
                              window_seconds)
    closes = labelled["time"] + window_seconds
    return labelled[(closes > closed_after) & (closes <= as_of)].reset_index(drop=True)


def training_data(impressions: pd.DataFrame, clicks: pd.DataFrame, window_seconds: float,
                  as_of: float) -> tuple[pd.DataFrame, pd.Series]:
    """Features as served and labels, for impressions whose window closed by ``as_of``.

    Returns ``(features, clicked)``: the ``f_``-prefixed columns logged at serving
    time (prefix removed) and the 0/1 label (see :func:`closed_labels`).
    """
    closed = closed_labels(impressions, clicks, window_seconds, as_of)
    feature_columns = [c for c in closed.columns if c.startswith(FEATURE_PREFIX)]
    if not feature_columns:
        raise ValueError(f"impressions has no logged feature columns ({FEATURE_PREFIX}*)")
    features = closed[feature_columns].rename(columns=lambda c: c[len(FEATURE_PREFIX):])
    return features, closed["clicked"]
