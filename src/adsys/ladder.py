"""The rungs of Step 6's model ladder beyond :mod:`adsys.prediction`, and calibration.

:mod:`adsys.prediction` has the logistic model (with optional crosses) and
LightGBM. This module adds:

- :class:`TreeLogisticClickModel`, boosted trees as features for a logistic model
  (He et al. 2014): each tree maps a row to one of its leaves, the leaves become
  one-hot features, and a logistic regression learns a weight per leaf. The trees
  find the interactions; the linear model on top is cheap to retrain and to serve.
- :class:`CalibratedClickModel`, a click model followed by a
  :class:`~adsys.prediction.Calibrator` (Platt or isotonic) fitted on rows the
  model did not train on, aware of negative downsampling.
- :func:`calibration_by_slice`, the calibration ratio of each slice of traffic
  (new ads, devices, positions...), the check the auction's prices depend on.

All models follow :class:`~adsys.prediction.ClickModel` (``fit`` then ``predict``)
and can serve in :class:`~adsys.serving.AdServer`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from adsys.prediction import (
    Calibrator,
    ClickModel,
    LightGBMClickModel,
    _BaseClickModel,
    _check_features,
    _check_training,
    recalibrate_downsampled,
)
from adsys.validation import (
    as_1d,
    check_int,
    check_labels,
    check_probabilities,
    check_range,
    check_same_length,
)

__all__ = ["CalibratedClickModel", "TreeLogisticClickModel", "calibration_by_slice"]

_CHUNK = 50_000   # rows scored at a time: the leaf matrix of a large table is large


class TreeLogisticClickModel(_BaseClickModel):
    """Boosted trees as features for a logistic regression (He et al. 2014).

    Parameters
    ----------
    n_estimators, num_leaves, learning_rate, min_child_samples :
        The trees (a :class:`~adsys.prediction.LightGBMClickModel`); fewer and
        shallower than a stand-alone tree model, since they only build features.
    C : float
        Inverse L2 regularization of the logistic regression on the leaves (> 0).
        The leaves were fitted on the same rows, so they fit them too well: strong
        regularization (the default, tuned on the course's logs) keeps the leaf
        weights from memorizing them.
    n_jobs : int
        LightGBM threads.
    downsampling_rate : float in (0, 1]
        Rate at which negatives were kept in the training data.
    seed : int
        Makes training reproducible.
    **params
        Any other LightGBM argument for the trees.
    """

    def __init__(self, n_estimators: int = 100, num_leaves: int = 15,
                 learning_rate: float = 0.1, min_child_samples: int = 200, C: float = 0.003,
                 n_jobs: int = 1, downsampling_rate: float = 1.0, seed: int = 0,
                 **params) -> None:
        super().__init__(downsampling_rate)
        self.C = check_range("C", C, 0, np.inf, low_open=True)
        self.num_leaves = check_int("num_leaves", num_leaves, 2)
        self.trees = LightGBMClickModel(n_estimators=n_estimators, num_leaves=num_leaves,
                                        learning_rate=learning_rate,
                                        min_child_samples=min_child_samples, n_jobs=n_jobs,
                                        seed=seed, **params)
        self.regression: LogisticRegression | None = None

    def leaves(self, features: pd.DataFrame) -> sparse.csr_matrix:
        """One-hot leaf indicators: one column per (tree, leaf), one 1 per tree and row."""
        if self.trees.estimator is None:
            raise ValueError("TreeLogisticClickModel must be fitted before leaves")
        leaf = np.asarray(self.trees.estimator.predict(self.trees.inputs(features),
                                                       pred_leaf=True), dtype=np.int32)
        leaf = leaf.reshape(len(features), -1)
        n_rows, n_trees = leaf.shape
        leaf += (np.arange(n_trees, dtype=np.int32) * self.num_leaves)[None, :]
        return sparse.csr_matrix((np.ones(leaf.size, np.float32), leaf.ravel(),
                                  np.arange(0, leaf.size + 1, n_trees, dtype=np.int64)),
                                 shape=(n_rows, n_trees * self.num_leaves))

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> TreeLogisticClickModel:
        """Fit the trees, then the logistic regression on their leaves; return ``self``."""
        y, weight = _check_training(features, clicked, sample_weight)
        self.trees.fit(features, y, sample_weight=weight)
        self.regression = LogisticRegression(C=self.C, max_iter=1000)
        self.regression.fit(self.leaves(features), y, sample_weight=weight)
        self.estimator = self.regression
        return self

    def _predict_proba(self, features: pd.DataFrame, numeric: np.ndarray) -> np.ndarray:
        chunks = [self.regression.predict_proba(self.leaves(features.iloc[i:i + _CHUNK]))[:, 1]
                  for i in range(0, len(features), _CHUNK)]
        return np.concatenate(chunks)


def _odds_scale(p: np.ndarray, w: float) -> np.ndarray:
    """Inverse of :func:`recalibrate_downsampled`: the probability on the scale of
    data whose negatives were kept at rate ``w`` (odds divided by ``w``)."""
    q = np.clip(p, 1e-12, 1 - 1e-12)
    odds = q / (1 - q) / w
    return odds / (1 + odds)


class CalibratedClickModel:
    """A click model followed by a calibrator fitted on rows the model did not see.

    Parameters
    ----------
    model : ClickModel
        The model to calibrate (fitted by :meth:`fit`, or already fitted if only
        :meth:`calibrate` is called).
    calibrator : Calibrator, optional
        Default ``Calibrator("isotonic")``.
    holdout : float in (0, 1)
        Share of the rows :meth:`fit` keeps aside, the *last* ones (logs are in
        time order, so the calibrator learns from the most recent traffic).
    slice_of : callable, optional
        Calibration by slice: a function of a feature table returning each row's
        slice (e.g. new ad or not). One calibrator is fitted per slice, a copy of
        ``calibrator``; rows of a slice unseen at calibration use the calibrator
        fitted on every row.

    Negative downsampling is handled: if the model was trained with negatives kept
    at rate ``w`` (its ``downsampling_rate``), the calibration rows usually were
    too; the calibrator then learns on that scale and its output is mapped back with
    :func:`~adsys.prediction.recalibrate_downsampled`.
    """

    def __init__(self, model: ClickModel, calibrator: Calibrator | None = None,
                 holdout: float = 0.2,
                 slice_of: Callable[[pd.DataFrame], ArrayLike] | None = None) -> None:
        if not (hasattr(model, "fit") and hasattr(model, "predict")):
            raise TypeError(f"model must be a click model with fit and predict; "
                            f"got {type(model).__name__}")
        if calibrator is not None and not isinstance(calibrator, Calibrator):
            raise TypeError(f"calibrator must be a Calibrator; got {type(calibrator).__name__}")
        self.model = model
        self.calibrator = calibrator if calibrator is not None else Calibrator("isotonic")
        self.holdout = check_range("holdout", holdout, 0, 1, low_open=True, high_open=True)
        if slice_of is not None and not callable(slice_of):
            raise TypeError("slice_of must be a function of the feature table")
        self.slice_of = slice_of
        self.by_slice: dict = {}
        self.calibration_rate: float | None = None

    @property
    def downsampling_rate(self) -> float:
        return float(getattr(self.model, "downsampling_rate", 1.0))

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> CalibratedClickModel:
        """Train the model on the first rows and the calibrator on the last
        ``holdout`` share; return ``self``. ``sample_weight`` goes to the model only."""
        y, weight = _check_training(features, clicked, sample_weight)
        cut = len(y) - max(int(round(self.holdout * len(y))), 1)
        if cut < 1 or len(np.unique(y[:cut])) < 2 or len(np.unique(y[cut:])) < 2:
            raise ValueError("features must have clicks and non-clicks both before and after "
                             "the holdout cut")
        self.model.fit(features.iloc[:cut], y[:cut],
                       sample_weight=None if weight is None else weight[:cut])
        return self.calibrate(features.iloc[cut:], y[cut:])

    def calibrate(self, features: pd.DataFrame, clicked: ArrayLike,
                  downsampling_rate: float | None = None) -> CalibratedClickModel:
        """Fit only the calibrator, on held-out rows; return ``self``.

        ``downsampling_rate`` is the rate at which these rows' negatives were kept
        (default: the model's ``downsampling_rate``; 1 for an untouched day of logs).
        """
        w = self.downsampling_rate if downsampling_rate is None else check_range(
            "downsampling_rate", downsampling_rate, 0, 1, low_open=True)
        y = check_labels("clicked", as_1d("clicked", clicked))
        check_same_length(features=features, clicked=y)
        p = _odds_scale(np.asarray(self.model.predict(features), dtype=float), w)
        self.calibrator.fit(p, y)
        self.by_slice = {}
        if self.slice_of is not None:
            keys = self._slices(features)
            for key in np.unique(keys):
                rows = keys == key
                if len(np.unique(y[rows])) == 2:
                    self.by_slice[key] = copy.deepcopy(self.calibrator).fit(p[rows], y[rows])
        self.calibration_rate = w
        return self

    def _slices(self, features: pd.DataFrame) -> np.ndarray:
        keys = np.asarray(self.slice_of(features))
        if keys.shape != (len(features),):
            raise ValueError(f"slice_of must return one slice per row ({len(features)}); got "
                             f"shape {keys.shape}")
        return keys

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated pCTR of each row."""
        if self.calibration_rate is None:
            raise ValueError("CalibratedClickModel must be fitted (or calibrated) before predict")
        _check_features(features)
        w = self.calibration_rate
        p = _odds_scale(np.asarray(self.model.predict(features), dtype=float), w)
        q = self.calibrator.transform(p)
        if self.by_slice:
            keys = self._slices(features)
            for key, calibrator in self.by_slice.items():
                rows = keys == key
                if rows.any():
                    q[rows] = calibrator.transform(p[rows])
        return np.asarray(recalibrate_downsampled(q, w))


def calibration_by_slice(clicked: ArrayLike, p: ArrayLike, slices: ArrayLike,
                         min_clicks: int = 0) -> pd.DataFrame:
    """Calibration ratio (sum of pCTR / clicks) of each slice of traffic.

    Parameters
    ----------
    clicked : array-like of 0/1
        Observed labels.
    p : array-like of float in [0, 1]
        Predicted click probabilities.
    slices : array-like
        The slice of each row (a device, a position, "new ad"...).
    min_clicks : int
        Slices with fewer clicks are left out (their ratio is mostly noise).

    Returns
    -------
    pandas.DataFrame
        Indexed by slice: ``impressions``, ``clicks``, ``predicted`` (sum of pCTR),
        ``ratio`` and ``ratio_low``/``ratio_high``, a 95% interval from the Poisson
        noise of the clicks (``predicted / (clicks +- 1.96 sqrt(clicks))``).
    """
    y = check_labels("clicked", as_1d("clicked", clicked)).astype(float)
    q = check_probabilities("p", as_1d("p", p))
    keys = np.asarray(slices)
    check_same_length(clicked=y, p=q, slices=keys)
    min_clicks = check_int("min_clicks", min_clicks, 0)
    table = pd.DataFrame({"slice": keys, "impressions": 1, "clicks": y, "predicted": q})
    table = table.groupby("slice", sort=True)[["impressions", "clicks", "predicted"]].sum()
    table = table[table["clicks"] >= max(min_clicks, 1)].copy()
    noise = 1.96 * np.sqrt(table["clicks"])
    table["ratio"] = table["predicted"] / table["clicks"]
    table["ratio_low"] = table["predicted"] / (table["clicks"] + noise)
    table["ratio_high"] = table["predicted"] / (table["clicks"] - noise).clip(lower=0.5)
    table["impressions"] = table["impressions"].astype(int)
    table["clicks"] = table["clicks"].astype(int)
    return table
