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
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from adsys.features import CATEGORICAL_COLUMNS, FEATURE_COLUMNS, NUMERIC_COLUMNS
from adsys.validation import (
    as_1d,
    check_int,
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


def _check_features(features: pd.DataFrame) -> np.ndarray:
    """Validate a feature table; return its numeric columns as a float matrix."""
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a DataFrame from make_features; "
                        f"got {type(features).__name__}")
    missing = [c for c in FEATURE_COLUMNS if c not in features]
    if missing:
        raise ValueError(f"features is missing columns {missing}")
    if len(features) == 0:
        raise ValueError("features must not be empty")
    types = features.dtypes
    for column in CATEGORICAL_COLUMNS:
        if not isinstance(types[column], pd.CategoricalDtype):
            raise ValueError(
                f"features column {column!r} must be categorical, as make_features returns "
                f"it; got {types[column]} (features read back from a file lose their "
                f"dtypes: rebuild them with make_features)")
        _categorical(features, column)   # no missing values
    numeric = np.empty((len(NUMERIC_COLUMNS), len(features)))   # filled a column at a time
    for row, column in zip(numeric, NUMERIC_COLUMNS, strict=True):
        row[:] = features[column].to_numpy(float)
    numeric = numeric.T
    if not np.isfinite(numeric).all():
        bad = [c for c, ok in zip(NUMERIC_COLUMNS, np.isfinite(numeric).all(axis=0),
                                  strict=True) if not ok]
        raise ValueError(f"features must be finite; columns {bad} hold NaN or inf")
    return numeric


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

    def inputs(self, features: pd.DataFrame) -> pd.DataFrame:
        """The columns the estimator sees (the feature columns, plus any crosses)."""
        return features[list(FEATURE_COLUMNS)]

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> _BaseClickModel:
        """Fit on ``features`` (from ``make_features``) and 0/1 labels ``clicked``.

        ``sample_weight`` (non-negative, one per row) carries e.g. inverse-propensity
        weights. Rows must already be downsampled at ``downsampling_rate`` if < 1.
        """
        y, weight = _check_training(features, clicked, sample_weight)
        estimator = self._make_estimator()
        fit_params = {} if weight is None else {self._weight_param: weight}
        estimator.fit(self.inputs(features), y, **fit_params)
        self.estimator = estimator
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """pCTR of each row, corrected for negative downsampling."""
        if self.estimator is None:
            raise ValueError(f"{type(self).__name__} must be fitted before predict")
        numeric = _check_features(features)
        return recalibrate_downsampled(self._predict_proba(features, numeric),
                                       self.downsampling_rate)

    def _predict_proba(self, features: pd.DataFrame, numeric: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(self.inputs(features))[:, 1]


def _cross(features: pd.DataFrame, left: str, right: str) -> pd.Categorical:
    """The cross of two categorical columns: one category per pair of their categories."""
    n_right = len(features[right].cat.categories)
    n_cells = len(features[left].cat.categories) * n_right
    codes = (features[left].cat.codes.to_numpy(np.int64) * n_right
             + features[right].cat.codes.to_numpy(np.int64))
    return pd.Categorical.from_codes(codes, categories=pd.RangeIndex(n_cells))


class CategoricalOneHot(TransformerMixin, BaseEstimator):
    """One-hot encoding of pandas categorical columns, read from their codes.

    The matrix of scikit-learn's ``OneHotEncoder(handle_unknown="ignore")`` (a column
    per category seen in training, in sorted order; an unseen category encodes as
    zeros) and the same ``categories_``, without the encoder's conversion of every
    value to a Python object: about ten times faster on the course's tables, which
    matters when a model is retrained every night.
    """

    def fit(self, X: pd.DataFrame, y: ArrayLike | None = None) -> CategoricalOneHot:
        self.categories_ = []
        for name in X.columns:
            column, codes = _categorical(X, name)
            seen = column.categories[np.flatnonzero(
                np.bincount(codes, minlength=len(column.categories)))].to_numpy()
            self.categories_.append(seen[np.argsort(seen, kind="stable")])
        return self

    def transform(self, X: pd.DataFrame) -> sparse.csr_matrix:
        offset, columns = 0, []
        for name, seen in zip(X.columns, self.categories_, strict=True):
            column, codes = _categorical(X, name)
            position = pd.Index(seen).get_indexer(column.categories)  # -1: not seen in fit
            at = position[codes]
            columns.append(np.where(at >= 0, at + offset, -1))
            offset += len(seen)
        at = np.column_stack(columns).ravel()
        known = at >= 0
        indptr = np.r_[0, np.cumsum(known.reshape(len(X), -1).sum(axis=1))]
        return sparse.csr_matrix((np.ones(int(known.sum())), at[known], indptr),
                                 shape=(len(X), offset))


def _categorical(X: pd.DataFrame, name: str) -> tuple[pd.Categorical, np.ndarray]:
    """Column ``name`` of ``X`` and its category codes; it must be categorical, with
    no missing values."""
    column = X[name].array
    if not isinstance(column, pd.Categorical):
        raise ValueError(f"column {name!r} must be categorical; got {X[name].dtype}")
    if (column.codes < 0).any():
        raise ValueError(f"column {name!r} holds missing values")
    return column, column.codes


class LogisticClickModel(_BaseClickModel):
    """Logistic regression on one-hot categoricals and standardized numerics.

    Parameters
    ----------
    C : float
        Inverse L2 regularization strength (> 0). The default 0.1 is a prior on the
        campaign and advertiser weights: with a weight per id and C = 1, a sparse
        ad's lucky day became a weight that won it the next day's auctions at several
        times its true click rate (the winner's curse). On held-out days 0.1 is also
        as good or better than 1 in log loss, and L-BFGS converges in fewer steps.
    max_iter : int
        L-BFGS iterations; the default converges on the course's data.
    downsampling_rate : float in (0, 1]
        Rate at which negatives were kept in the training data.
    crosses : sequence of (column, column)
        Pairs of categorical feature columns to cross: each pair becomes one more
        categorical column with a weight per combination (e.g. ``("age_band",
        "ad_topic")``), the logistic model's way to learn an interaction.
    """

    _weight_param = "logisticregression__sample_weight"

    def __init__(self, C: float = 0.1, max_iter: int = 2000, downsampling_rate: float = 1.0,
                 crosses: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(downsampling_rate)
        self.C = check_range("C", C, 0, np.inf, low_open=True)
        self.max_iter = check_int("max_iter", max_iter, 1)
        self.crosses = tuple(tuple(pair) for pair in crosses)
        for pair in self.crosses:
            if len(pair) != 2 or not set(pair) <= set(CATEGORICAL_COLUMNS):
                raise ValueError(f"crosses must be pairs of categorical columns "
                                 f"{list(CATEGORICAL_COLUMNS)}; got {pair!r}")
        self.categorical = CATEGORICAL_COLUMNS + tuple(f"{a} x {b}" for a, b in self.crosses)

    def inputs(self, features: pd.DataFrame) -> pd.DataFrame:
        columns = features[list(FEATURE_COLUMNS)]
        if not self.crosses:
            return columns
        crossed = {f"{a} x {b}": _cross(features, a, b) for a, b in self.crosses}
        return pd.concat([columns, pd.DataFrame(crossed, index=features.index)], axis=1)

    def _make_estimator(self) -> Pipeline:
        encode = ColumnTransformer([
            ("categorical", CategoricalOneHot(), list(self.categorical)),
            ("numeric", StandardScaler(), list(NUMERIC_COLUMNS)),
        ])
        return make_pipeline(encode, LogisticRegression(C=self.C, max_iter=self.max_iter))

    def fit(self, features: pd.DataFrame, clicked: ArrayLike,
            sample_weight: ArrayLike | None = None) -> LogisticClickModel:
        super().fit(features, clicked, sample_weight)
        self._tables = self._lookup_tables(self.inputs(features))
        return self

    def _lookup_tables(self, inputs: pd.DataFrame) -> dict:
        """The fitted model as tables: a weight per category, a slope per numeric.

        Serving a linear model is then a sum of lookups, much faster than one-hot
        encoding every row; tests check it equals the pipeline's own prediction.
        """
        encode, regression = self.estimator[0], self.estimator[-1]
        coef = regression.coef_[0]
        onehot = encode.named_transformers_["categorical"]
        scaler = encode.named_transformers_["numeric"]
        tables, start = {}, 0
        for column, seen in zip(self.categorical, onehot.categories_, strict=True):
            categories = inputs[column].cat.categories
            weight = np.zeros(len(categories))
            weight[categories.get_indexer(seen)] = coef[start:start + len(seen)]
            tables[column] = weight
            start += len(seen)
        slope = coef[start:] / scaler.scale_
        intercept = regression.intercept_[0] - slope @ scaler.mean_
        return {"categorical": tables, "slope": slope, "intercept": intercept}

    def _predict_proba(self, features: pd.DataFrame, numeric: np.ndarray) -> np.ndarray:
        tables = self._tables
        logit = tables["intercept"] + numeric @ tables["slope"]
        for column, weight in tables["categorical"].items():
            if " x " in column:
                left, right = column.split(" x ")
                codes = np.asarray(_cross(features, left, right).codes)
            else:
                codes = features[column].array.codes
            logit = logit + weight[codes]
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
