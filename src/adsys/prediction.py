"""Click models: predict the probability that a shown ad is clicked (pCTR).

Every model takes the feature table of :func:`adsys.features.make_features` and
implements the :class:`ClickModel` interface (``fit`` then ``predict``):

- :class:`LogisticClickModel`, the baseline: one-hot categoricals, standardized
  numerics, L2-regularized logistic regression.
- :class:`LightGBMClickModel`, the heavy model: gradient-boosted trees with native
  categorical splits.

Training data is usually *negative-downsampled* (:func:`downsample_negatives` keeps
every click and a fraction ``w`` of non-clicks) to save compute. A model trained that
way over-predicts; :func:`recalibrate_downsampled` maps its output ``p`` back with
``q = p / (p + (1 - p) / w)``. Models given ``downsampling_rate=w`` apply it in
``predict``. Whatever miscalibration remains can be fixed post hoc by a
:class:`Calibrator` fitted on a held-out slice.
"""

from __future__ import annotations

from typing import Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.compose import ColumnTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from adsys.features import CATEGORICAL_COLUMNS, FEATURE_COLUMNS, NUMERIC_COLUMNS
from adsys.validation import (
    as_1d,
    check_labels,
    check_nonnegative,
    check_probabilities,
    check_range,
    check_same_length,
)

__all__ = [
    "Calibrator",
    "ClickModel",
    "LightGBMClickModel",
    "LogisticClickModel",
    "downsample_negatives",
    "recalibrate_downsampled",
]

_EPS = 1e-7


def recalibrate_downsampled(p: ArrayLike, w: float) -> np.ndarray | float:
    """Undo negative downsampling: ``q = p / (p + (1 - p) / w)``.

    Parameters
    ----------
    p : array-like of float in [0, 1]
        Probabilities from a model trained with negatives kept at rate ``w``.
    w : float in (0, 1]
        The rate at which non-clicks were kept (1 means no downsampling).

    Returns
    -------
    np.ndarray or float
        Calibrated probabilities, same shape as ``p`` (a float for a scalar ``p``).
    """
    check_range("w", w, 0, 1, low_open=True)
    p_arr = np.asarray(p, dtype=float)
    if not np.all(np.isfinite(p_arr)):
        raise ValueError("p must hold finite numbers (no NaN or inf)")
    check_probabilities("p", p_arr)
    q = p_arr / (p_arr + (1 - p_arr) / w)
    return float(q) if q.ndim == 0 else q


def downsample_negatives(clicked: ArrayLike, w: float,
                         rng: np.random.Generator) -> np.ndarray:
    """Keep every click and each non-click with probability ``w``.

    Parameters
    ----------
    clicked : array-like of 0/1 or bool
        Labels of the training rows.
    w : float in (0, 1]
        Keep rate of negatives.
    rng : np.random.Generator
        Source of the coin flips.

    Returns
    -------
    np.ndarray of bool
        Mask of the rows to keep.
    """
    check_range("w", w, 0, 1, low_open=True)
    y = check_labels("clicked", as_1d("clicked", clicked))
    return (y == 1) | (rng.random(len(y)) < w)


def _check_training(features: pd.DataFrame, clicked: ArrayLike,
                    sample_weight: ArrayLike | None) -> tuple[np.ndarray, np.ndarray | None]:
    _check_features(features)
    y = check_labels("clicked", as_1d("clicked", clicked))
    check_same_length(features=features, clicked=y)
    if len(np.unique(y)) < 2:
        raise ValueError("clicked must contain both clicks (1) and non-clicks (0)")
    if sample_weight is None:
        return y, None
    weight = check_nonnegative("sample_weight", as_1d("sample_weight", sample_weight))
    check_same_length(features=features, sample_weight=weight)
    return y, weight


def _check_features(features: pd.DataFrame) -> None:
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a DataFrame from make_features; "
                         f"got {type(features).__name__}")
    missing = [c for c in FEATURE_COLUMNS if c not in features]
    if missing:
        raise ValueError(f"features is missing columns {missing}")
    if len(features) == 0:
        raise ValueError("features must not be empty")


class ClickModel(Protocol):
    """What the serving path needs from a click model."""

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> ClickModel:
        """Learn from feature rows and their 0/1 click labels; return ``self``."""
        ...

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Click probability of each feature row."""
        ...


class _BaseClickModel:
    """Shared fit/predict: validation and the downsampling correction."""

    _weight_param: str   # name of the estimator's fit argument for sample weights

    def __init__(self, downsampling_rate: float) -> None:
        self.downsampling_rate = check_range("downsampling_rate", downsampling_rate, 0, 1,
                                             low_open=True)
        self.estimator = None

    def _make_estimator(self) -> Pipeline | lgb.LGBMClassifier:
        raise NotImplementedError

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> _BaseClickModel:
        """Fit on ``features`` (from ``make_features``) and 0/1 labels ``clicked``.

        ``sample_weight`` (non-negative, one per row) carries e.g. inverse-propensity
        weights. Rows must already be downsampled at ``downsampling_rate`` if < 1.
        """
        y, weight = _check_training(features, clicked, sample_weight)
        estimator = self._make_estimator()
        fit_params = {} if weight is None else {self._weight_param: weight}
        estimator.fit(features[list(FEATURE_COLUMNS)], y, **fit_params)
        self.estimator = estimator
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """pCTR of each row, corrected for negative downsampling."""
        if self.estimator is None:
            raise ValueError(f"{type(self).__name__} must be fitted before predict")
        _check_features(features)
        return recalibrate_downsampled(self._predict_proba(features), self.downsampling_rate)

    def _predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(features[list(FEATURE_COLUMNS)])[:, 1]


class LogisticClickModel(_BaseClickModel):
    """Logistic regression on one-hot categoricals and standardized numerics.

    Parameters
    ----------
    C : float
        Inverse L2 regularization strength (> 0).
    max_iter : int
        L-BFGS iterations; the default converges on the course's data.
    downsampling_rate : float in (0, 1]
        Rate at which negatives were kept in the training data.
    """

    _weight_param = "logisticregression__sample_weight"

    def __init__(self, C: float = 1.0, max_iter: int = 2000,
                 downsampling_rate: float = 1.0) -> None:
        super().__init__(downsampling_rate)
        self.C = check_range("C", C, 0, np.inf, low_open=True)
        self.max_iter = max_iter

    def _make_estimator(self) -> Pipeline:
        encode = ColumnTransformer([
            ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_COLUMNS)),
            ("numeric", StandardScaler(), list(NUMERIC_COLUMNS)),
        ])
        return make_pipeline(encode, LogisticRegression(C=self.C, max_iter=self.max_iter))

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> LogisticClickModel:
        super().fit(features, clicked, sample_weight)
        self._tables = self._lookup_tables(features)
        return self

    def _lookup_tables(self, features: pd.DataFrame) -> dict:
        """The fitted model as tables: a weight per category, a slope per numeric.

        Serving a linear model is then a sum of lookups, much faster than one-hot
        encoding every row; tests check it equals the pipeline's own prediction.
        """
        encode, regression = self.estimator[0], self.estimator[-1]
        coef = regression.coef_[0]
        onehot = encode.named_transformers_["categorical"]
        scaler = encode.named_transformers_["numeric"]
        tables, start = {}, 0
        for column, seen in zip(CATEGORICAL_COLUMNS, onehot.categories_, strict=True):
            categories = features[column].cat.categories
            weight = np.zeros(len(categories))
            weight[categories.get_indexer(seen)] = coef[start:start + len(seen)]
            tables[column] = weight
            start += len(seen)
        slope = coef[start:] / scaler.scale_
        intercept = regression.intercept_[0] - slope @ scaler.mean_
        return {"categorical": tables, "slope": slope, "intercept": intercept}

    def _predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        tables = self._tables
        logit = tables["intercept"] + features[list(NUMERIC_COLUMNS)].to_numpy(float) @ tables[
            "slope"]
        for column, weight in tables["categorical"].items():
            logit = logit + weight[features[column].cat.codes.to_numpy()]
        return 1.0 / (1.0 + np.exp(-logit))


class LightGBMClickModel(_BaseClickModel):
    """Gradient-boosted trees (LightGBM) with native categorical features.

    Parameters
    ----------
    n_estimators, num_leaves, learning_rate, min_child_samples :
        The usual LightGBM knobs.
    n_jobs : int
        Threads (2 suits Binder and CI).
    downsampling_rate : float in (0, 1]
        Rate at which negatives were kept in the training data.
    seed : int
        Makes training reproducible.
    **params
        Any other ``lightgbm.LGBMClassifier`` argument. The defaults regularize
        categorical splits hard (``cat_smooth``, ``cat_l2``, ``min_data_per_group``,
        ``max_cat_threshold``): the campaign and advertiser ids have hundreds of levels
        with a few clicks each, and unregularized trees memorize them.
    """

    _weight_param = "sample_weight"

    def __init__(self, n_estimators: int = 300, num_leaves: int = 15,
                 learning_rate: float = 0.05, min_child_samples: int = 200, n_jobs: int = 2,
                 downsampling_rate: float = 1.0, seed: int = 0, **params) -> None:
        super().__init__(downsampling_rate)
        self.params = {
            "n_estimators": n_estimators, "num_leaves": num_leaves,
            "learning_rate": learning_rate, "min_child_samples": min_child_samples,
            "cat_smooth": 200, "cat_l2": 200, "min_data_per_group": 1000, "max_cat_threshold": 4,
            "n_jobs": n_jobs, "random_state": seed, "verbose": -1, **params,
        }

    def _make_estimator(self) -> lgb.LGBMClassifier:
        return lgb.LGBMClassifier(**self.params)


class Calibrator:
    """Post-hoc calibration of predicted probabilities, fitted on a held-out slice.

    Parameters
    ----------
    method : {"isotonic", "platt"}
        ``"isotonic"``: a monotone step function (flexible, needs more data).
        ``"platt"``: logistic regression on the log-odds of ``p`` (two parameters).
    """

    def __init__(self, method: str = "isotonic") -> None:
        if method not in ("isotonic", "platt"):
            raise ValueError(f"method must be 'isotonic' or 'platt'; got {method!r}")
        self.method = method
        self.model = None

    def fit(self, p: ArrayLike, y: ArrayLike) -> Calibrator:
        """Learn the map from predictions ``p`` to observed clicks ``y``; return ``self``."""
        p_arr = check_probabilities("p", as_1d("p", p))
        y_arr = check_labels("y", as_1d("y", y))
        check_same_length(p=p_arr, y=y_arr)
        if self.method == "isotonic":
            self.model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
            self.model.fit(p_arr, y_arr)
        else:
            self.model = LogisticRegression(C=np.inf).fit(_log_odds(p_arr), y_arr)
        return self

    def transform(self, p: ArrayLike) -> np.ndarray:
        """Calibrated probabilities, clipped to [1e-7, 1 - 1e-7] so log loss stays finite."""
        if self.model is None:
            raise ValueError("Calibrator must be fitted before transform")
        p_arr = check_probabilities("p", as_1d("p", p))
        if self.method == "isotonic":
            q = self.model.predict(p_arr)
        else:
            q = self.model.predict_proba(_log_odds(p_arr))[:, 1]
        return np.clip(q, _EPS, 1 - _EPS)


def _log_odds(p: np.ndarray) -> np.ndarray:
    """Log-odds as a one-column matrix, with p clipped away from 0 and 1."""
    q = np.clip(p, _EPS, 1 - _EPS)
    return (np.log(q) - np.log1p(-q))[:, None]
