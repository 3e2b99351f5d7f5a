"""Position bias: how much of a click belongs to the slot, measured and taken out.

Users look at the first ad slot more often than at the third, so an ad shown first
gets more clicks whatever it is. In the course's world (and in the position-based
click model of the literature) ``P(click) = examination(position) x relevance``. A
platform does not know the examination curve; it measures it with a small
randomized-slot experiment: show the ads of some requests in random slots, so that
every slot sees the same ads on average, and the click rate of each slot divided
by that of slot 1 is its relative examination probability,
:func:`relative_examination`.

A log served by the auction mixes the two effects: the best ads sat on top. Two
corrections let a model learn relevance from such a log:

- **position as a feature**, fixed at serving: the model learns the slot's effect
  apart from the ad's, and scores every candidate as if it were shown in the same
  slot (:data:`adsys.features.SERVING_POSITION`; :class:`FixedPositionModel`
  serves a model at another slot, :func:`at_position` rewrites a feature table);
- **inverse-propensity weights**: each click counts ``1 / examination(position)``
  times, so that a click in a rarely seen slot weighs as much as the several
  clicks the same ad would have had on top (:func:`inverse_propensity_weights`).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.prediction import ClickModel
from adsys.validation import (
    as_1d,
    as_integers,
    check_int,
    check_labels,
    check_range,
    check_same_length,
)

__all__ = [
    "FixedPositionModel",
    "at_position",
    "inverse_propensity_weights",
    "relative_examination",
    "relative_examination_interval",
]


def _clicks_by_slot(positions: ArrayLike, clicked: ArrayLike,
                    n_slots: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Impressions and clicks per slot (index 0 is position 1)."""
    pos = as_integers("positions", as_1d("positions", positions, dtype=None), 1,
                      np.iinfo(np.int64).max)
    y = check_labels("clicked", as_1d("clicked", clicked))
    check_same_length(positions=pos, clicked=y)
    n = int(pos.max()) if n_slots is None else check_int("n_slots", n_slots, 1)
    if pos.max() > n:
        raise ValueError(f"positions must be at most n_slots ({n}); got {pos.max()}")
    shown = np.bincount(pos - 1, minlength=n).astype(float)
    clicks = np.bincount(pos - 1, weights=y, minlength=n)
    if shown[0] == 0 or clicks[0] == 0:
        raise ValueError("positions must include position 1 with at least one click: "
                         "every slot is measured relative to it")
    empty = np.flatnonzero(shown == 0) + 1
    if len(empty):
        raise ValueError(f"positions has no impression in slot(s) {empty.tolist()}")
    return shown, clicks


def relative_examination(positions: ArrayLike, clicked: ArrayLike,
                         n_slots: int | None = None) -> np.ndarray:
    """Examination probability of each slot relative to slot 1, from randomized traffic.

    Parameters
    ----------
    positions : array-like of int
        Slot of each impression, 1-based. The ads must have been placed in slots at
        random (a randomized-slot experiment, or the random server): then every slot
        sees ads of the same relevance on average and CTR(slot k) / CTR(slot 1) =
        examination(k) / examination(1). On a log served by the auction the ratio
        also carries the auction's choice (the best ads on top) and overstates the
        position effect.
    clicked : array-like of 0/1
        Whether each impression was clicked.
    n_slots : int, optional
        Number of slots (default: the largest position seen).

    Returns
    -------
    np.ndarray
        One value per slot, position 1 first; the first value is 1.0.
    """
    shown, clicks = _clicks_by_slot(positions, clicked, n_slots)
    ctr = clicks / shown
    return ctr / ctr[0]


def relative_examination_interval(positions: ArrayLike, clicked: ArrayLike,
                                  level: float = 0.95,
                                  n_slots: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval of :func:`relative_examination`, slot by slot.

    Uses the normal approximation on the log of the ratio of two click rates,
    ``Var(log r_k) ~ (1 - c_k) / clicks_k + (1 - c_1) / clicks_1``, treating
    impressions as independent (slots of one request are nearly so in a randomized
    log). The interval of slot 1 is exactly 1.

    Returns
    -------
    (low, high) : two np.ndarray
        Bounds per slot, position 1 first.
    """
    level = check_range("level", level, 0, 1, low_open=True, high_open=True)
    shown, clicks = _clicks_by_slot(positions, clicked, n_slots)
    ctr = clicks / shown
    if np.any(clicks == 0):
        raise ValueError("every slot needs at least one click for an interval")
    var = (1 - ctr) / clicks + (1 - ctr[0]) / clicks[0]
    var[0] = 0.0
    z = _normal_quantile(0.5 + level / 2)
    ratio = ctr / ctr[0]
    return ratio * np.exp(-z * np.sqrt(var)), ratio * np.exp(z * np.sqrt(var))


def _normal_quantile(q: float) -> float:
    """The standard normal quantile."""
    return NormalDist().inv_cdf(q)


def inverse_propensity_weights(positions: ArrayLike, clicked: ArrayLike,
                               examination: ArrayLike,
                               max_weight: float | None = None) -> np.ndarray:
    """Training weights that undo position bias: ``1 / examination(position)`` per click.

    A click in slot k is the visible part of the ``1 / examination(k)`` clicks the
    same ad would have had where it is always seen; non-clicks keep weight 1. A
    model trained with these weights (and without the position as a feature)
    estimates the click rate where the user always looks, i.e. at slot 1 with
    ``examination[0] = 1``. The correction is exact for the clicks; counting the
    unseen non-clicks at full weight leaves a relative error of about
    ``CTR x (1 - examination)``, a percent or two at ad click rates.

    Parameters
    ----------
    positions : array-like of int
        Slot of each training row, 1-based.
    clicked : array-like of 0/1
        Label of each row.
    examination : array-like of float in (0, 1]
        Examination probability of each slot relative to slot 1 (e.g. from
        :func:`relative_examination`), position 1 first.
    max_weight : float, optional
        Cap on the weights (>= 1): trades a little bias for less variance when a
        slot is rarely examined.

    Returns
    -------
    np.ndarray of float
        One weight per row.
    """
    exam = as_1d("examination", examination)
    if np.any((exam <= 0) | (exam > 1)):
        raise ValueError(f"examination must lie in (0, 1]; got {exam.tolist()}")
    pos = as_integers("positions", as_1d("positions", positions, dtype=None), 1, len(exam))
    y = check_labels("clicked", as_1d("clicked", clicked))
    check_same_length(positions=pos, clicked=y)
    weight = np.where(y == 1, 1.0 / exam[pos - 1], 1.0)
    if max_weight is not None:
        weight = np.minimum(weight, check_range("max_weight", max_weight, 1, np.inf))
    return weight


def at_position(features: pd.DataFrame, position: int) -> pd.DataFrame:
    """A copy of a feature table with every row's ``position`` set to ``position``.

    The categories of the column are kept, so the table still fits the models.
    """
    if not isinstance(features, pd.DataFrame) or "position" not in features:
        raise TypeError("features must be a feature table from make_features "
                        "(a DataFrame with a position column)")
    column = features["position"]
    if not isinstance(column.dtype, pd.CategoricalDtype):
        raise ValueError("features column 'position' must be categorical, as make_features "
                         "returns it")
    categories = column.cat.categories
    position = check_int("position", position, int(categories.min()), int(categories.max()))
    codes = np.full(len(features), categories.get_loc(position), dtype=np.int8)
    out = features.copy()
    out["position"] = pd.Categorical.from_codes(codes, dtype=column.dtype)
    return out


class FixedPositionModel:
    """A click model trained with the logged slot, served as if every ad were in one slot.

    ``fit`` passes the rows (with the slot each was shown in) to ``model``;
    ``predict`` rewrites every row's position to ``position`` first. Serving at
    position 1 (the package's default, :data:`adsys.features.SERVING_POSITION`)
    gives each candidate its pCTR in the top slot. For a model additive in the
    logit (logistic regression) another fixed slot scales every candidate's odds by
    the same factor and keeps the ranking; a tree model can rank differently at
    another slot, and every pCTR, hence every eCPM against the reserve, changes.

    Parameters
    ----------
    model : ClickModel
        The model to train and serve.
    position : int
        The slot (1-based) at which candidates are scored.
    """

    def __init__(self, model: ClickModel, position: int = 1) -> None:
        if not (hasattr(model, "fit") and hasattr(model, "predict")):
            raise TypeError(f"model must be a click model with fit and predict; "
                            f"got {type(model).__name__}")
        self.model = model
        self.position = check_int("position", position, 1)

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> FixedPositionModel:
        """Train the wrapped model on rows with their logged slots; return ``self``."""
        self.model.fit(features, clicked, sample_weight=sample_weight)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """pCTR of each row as if shown in slot :attr:`position`."""
        return self.model.predict(at_position(features, self.position))

