"""Serving and measuring the funnel: the heavy model as served, and stage timings.

The serving path (:class:`adsys.serving.AdServer`) is a funnel: the selector's light
model scores every eligible ad, the heavy click model scores the ``k`` best, and the
auction prices the winners. What the funnel saves depends on two things, which this
module serves and measures:

- **Cost per candidate** and **cost per call.** :class:`ServedClickModel` packs a
  fitted click model and its :class:`~adsys.prediction.Calibrator` the way a server
  calls them. For LightGBM it hands the booster a float matrix directly: the
  scikit-learn wrapper converts a pandas table first, which costs milliseconds per
  call whatever the number of rows, and the predictions are identical.
- **Time per request by stage**, batched and one request at a time:
  :func:`batched_stage_seconds` (CPU seconds per request: the marginal work, which
  sizes the fleet of a server that batches requests) and :func:`one_at_a_time`
  (seconds of each request alone: the latency a caller waits for and, in CPU time,
  what a server answering each request alone pays, fixed costs per call included).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from adsys.features import CATEGORICAL_COLUMNS, FEATURE_COLUMNS
from adsys.observable import Requests
from adsys.prediction import (
    Calibrator,
    ClickModel,
    LightGBMClickModel,
    _check_features,
    recalibrate_downsampled,
)
from adsys.serving import STAGES, AdServer, StageTimer
from adsys.validation import check_int

__all__ = ["ClockStageTimer", "ServedClickModel", "batched_stage_seconds", "one_at_a_time"]


class ServedClickModel:
    """A fitted click model, then an optional fitted calibrator: what the server calls.

    Parameters
    ----------
    model : ClickModel
        A fitted click model (its ``predict`` takes a ``make_features`` table).
    calibrator : Calibrator, optional
        Fitted on held-out predictions of ``model``; ``None`` serves ``model`` as is.
    direct : bool
        For a :class:`~adsys.prediction.LightGBMClickModel`, call its booster on a float
        matrix (category codes and numbers, the representation it was trained on)
        instead of going through the scikit-learn wrapper's pandas conversion. Same
        predictions, a much smaller cost per call. Ignored for other models.
    """

    def __init__(self, model: ClickModel, calibrator: Calibrator | None = None,
                 direct: bool = True) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must be a fitted click model; got {type(model).__name__}")
        if calibrator is not None and not isinstance(calibrator, Calibrator):
            raise TypeError(f"calibrator must be a Calibrator; got {type(calibrator).__name__}")
        if calibrator is not None and calibrator.model is None:
            raise ValueError("calibrator must be fitted")
        if not isinstance(direct, bool):
            raise TypeError(f"direct must be True or False; got {direct!r}")
        self.model = model
        self.calibrator = calibrator
        self.direct = direct and isinstance(model, LightGBMClickModel)
        if self.direct and model.estimator is None:
            raise ValueError("model must be fitted before it is served")

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated pCTR of each row of a ``make_features`` table."""
        if self.direct:
            p = recalibrate_downsampled(self._booster_predict(features),
                                        self.model.downsampling_rate)
        else:
            p = self.model.predict(features)
        return p if self.calibrator is None else self.calibrator.transform(p)

    def _booster_predict(self, features: pd.DataFrame) -> np.ndarray:
        _check_features(features)   # the click models' checks: columns, types, finite
        x = np.column_stack([features[c].array.codes if c in CATEGORICAL_COLUMNS
                             else features[c].to_numpy(float) for c in FEATURE_COLUMNS])
        threads = self.model.params["n_jobs"]    # the booster forgets it: pass it again
        return self.model.estimator.booster_.predict(x, num_threads=threads)


class ClockStageTimer(StageTimer):
    """A :class:`~adsys.serving.StageTimer` on another clock.

    The default, :func:`time.process_time`, counts the CPU seconds of the process (all
    its threads): the cost a capacity plan needs, and less disturbed than wall-clock
    time by other programs sharing the machine.
    """

    def __init__(self, clock: Callable[[], float] = time.process_time) -> None:
        super().__init__()
        if not callable(clock):
            raise TypeError(f"clock must be callable; got {type(clock).__name__}")
        self.clock = clock

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = self.clock()
        try:
            yield
        finally:
            self.seconds[name] += self.clock() - start


def _check_batch(server: AdServer, requests: Requests) -> None:
    if not isinstance(server, AdServer):
        raise TypeError(f"server must be an AdServer; got {type(server).__name__}")
    if not isinstance(requests, Requests):
        raise TypeError(f"requests must be a Requests batch; got {type(requests).__name__}")
    if len(requests) == 0:
        raise ValueError("requests must not be empty")


def batched_stage_seconds(server: AdServer, requests: Requests, day: int,
                          throttle: np.ndarray | None = None,
                          rng: np.random.Generator | None = None, repeats: int = 1,
                          clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Seconds per request spent in each stage when the whole batch is served at once.

    Serves ``requests`` ``repeats`` times in one call each and keeps, per stage, the
    fastest repeat (the one least disturbed by other load), divided by the number
    of requests. Same arguments as :meth:`AdServer.serve`; ``clock`` as in
    :class:`ClockStageTimer` (CPU time by default).

    Returns
    -------
    dict
        Seconds per request for each stage of :data:`adsys.serving.STAGES`.
    """
    _check_batch(server, requests)
    repeats = check_int("repeats", repeats, 1)
    best = dict.fromkeys(STAGES, np.inf)
    for _ in range(repeats):
        timer = ClockStageTimer(clock)
        server.serve(requests, day, throttle, rng, timer)
        best = {stage: min(best[stage], timer.seconds[stage]) for stage in STAGES}
    return {stage: seconds / len(requests) for stage, seconds in best.items()}


def one_at_a_time(server: AdServer, requests: Requests, day: int,
                  throttle: np.ndarray | None = None,
                  rng: np.random.Generator | None = None,
                  clock: Callable[[], float] = time.perf_counter) -> pd.DataFrame:
    """Serve each request alone, as :meth:`AdServer.serve_one` does, and time its stages.

    ``clock`` defaults to wall-clock time: the latency a caller waits for. A first,
    untimed request warms the caches. ``rng`` is passed to every call as it is, so a
    fresh generator per call (as the batch path gets one per batch) is up to the
    caller.

    Returns
    -------
    pd.DataFrame
        One row per request: seconds in each stage of :data:`adsys.serving.STAGES`,
        their sum ``total``, and ``impressions`` (ads shown).
    """
    _check_batch(server, requests)
    server.serve(requests.take([0]), day, throttle, rng)
    rows = []
    for i in range(len(requests)):
        timer = ClockStageTimer(clock)
        log = server.serve(requests.take([i]), day, throttle, rng, timer)
        rows.append({**{stage: timer.seconds[stage] for stage in STAGES},
                     "impressions": len(log)})
    frame = pd.DataFrame(rows, columns=[*STAGES, "impressions"])
    frame.insert(len(STAGES), "total", frame[list(STAGES)].sum(axis=1))
    return frame
