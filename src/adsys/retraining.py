"""Retraining policies: when the nightly job trains a new click model, and on which days.

A policy is two numbers: how often it retrains (``every_days``) and how many of the
latest days of logs it trains on (``window_days``). The simulator's loop retrains
every night on a sliding window (:class:`~adsys.simulate.SimulationConfig`'s
``training_days``); :data:`POLICIES` names the usual alternatives, and
:func:`fit_on_days` trains a model from the log store exactly as the nightly job
would have on a given night, so a team can backtest a policy on its own logs before
changing the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adsys.features import FEATURE_COLUMNS, from_log
from adsys.observable import SECONDS_PER_DAY, PlatformView
from adsys.prediction import ClickModel, downsample_negatives
from adsys.store import LogStore
from adsys.validation import check_int, check_range

__all__ = ["POLICIES", "RetrainingPolicy", "fit_on_days"]


@dataclass(frozen=True)
class RetrainingPolicy:
    """When to retrain and on what.

    Parameters
    ----------
    name : str
        For tables and figures.
    every_days : int
        Retrain after every ``every_days`` days (1: nightly, 7: weekly); 0 retrains
        only once, after the first day of traffic, and never again.
    window_days : int
        Train on the logs of the last ``window_days`` days (a sliding window).
    """

    name: str
    every_days: int
    window_days: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string; got {self.name!r}")
        check_int("every_days", self.every_days, 0)
        check_int("window_days", self.window_days, 1)

    def trains_after(self, day: int) -> bool:
        """Whether the job trains a new model on the night after ``day``."""
        day = check_int("day", day, 0)
        return day == 0 or (self.every_days > 0 and day % self.every_days == 0)

    def training_days(self, day: int) -> tuple[int, ...]:
        """The days of logs behind the model that serves ``day`` (at least 1; day 0
        is served by the launch model, trained before any traffic)."""
        day = check_int("day", day, 1)
        night = max(n for n in range(day) if self.trains_after(n))
        return tuple(range(max(0, night - self.window_days + 1), night + 1))


POLICIES = {
    "never": RetrainingPolicy("never", every_days=0, window_days=1),
    "weekly": RetrainingPolicy("weekly", every_days=7, window_days=7),
    "daily": RetrainingPolicy("daily", every_days=1, window_days=1),
    "sliding window": RetrainingPolicy("sliding window", every_days=1, window_days=3),
}
"""The four policies Step 7 compares: train once after launch and never again; every
week on the last week; every night on the last day; every night on the last three
days (the simulator's default nightly job)."""


def fit_on_days(store: LogStore, view: PlatformView, days: tuple[int, ...] | list[int],
                make_model: Callable[..., ClickModel], window_seconds: float,
                downsampling_rate: float, rng: np.random.Generator) -> ClickModel:
    """Train a click model on the store's logs of ``days``, as the nightly job would
    on the night after the last of them.

    The labels are those known at midnight after the last day (see
    :meth:`LogStore.join_clicks` with ``as_of``); non-clicks are kept at
    ``downsampling_rate`` and the model corrects for it; the features are the ones
    logged at serving time. ``make_model(downsampling_rate=w)`` builds the model.
    """
    days = sorted({check_int("days", d, 0) for d in days})
    if not days:
        raise ValueError("days must name at least one day")
    if not isinstance(store, LogStore):
        raise TypeError(f"store must be a LogStore; got {type(store).__name__}")
    w = check_range("downsampling_rate", downsampling_rate, 0, 1, low_open=True)
    closed = store.join_clicks(window_seconds, days=days,
                               as_of=(days[-1] + 1) * SECONDS_PER_DAY,
                               columns=["time", *(f"f_{c}" for c in FEATURE_COLUMNS)])
    if closed["clicked"].nunique() < 2:
        raise ValueError(f"days {days} hold no clicks (or only clicks) to learn from")
    closed = closed[downsample_negatives(closed["clicked"], w, rng)]
    return make_model(downsampling_rate=w).fit(from_log(view, closed), closed["clicked"])
