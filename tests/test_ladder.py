"""The ladder's extra rungs learn, calibration wrappers calibrate, and downsampling with
recalibration keeps the calibration of the model trained on everything."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.baseline import serve_random
from adsys.features import make_features
from adsys.history import History
from adsys.ladder import CalibratedClickModel, TreeLogisticClickModel, calibration_by_slice
from adsys.metrics import calibration_ratio, log_loss
from adsys.prediction import (
    Calibrator,
    LightGBMClickModel,
    LogisticClickModel,
    downsample_negatives,
)
from adsys.world import World, WorldConfig


@pytest.fixture(scope="module")
def data():
    """Random traffic of a small world: day 0 fills the history, day 1 trains, day 2 tests."""
    world = World(WorldConfig.load(n_users=5000, n_advertisers=100, base_logit=-5.0), seed=2)
    rng = np.random.default_rng(0)
    logs = [serve_random(world, day, n, rng) for day, n in ((0, 30_000), (1, 40_000),
                                                               (2, 30_000))]
    history = History(world.view).add(logs[0]["user_id"], logs[0]["ad_id"], logs[0]["clicked"])
    history.add_views(logs[0]["user_id"], logs[0]["publisher_id"])

    def table(log: pd.DataFrame) -> pd.DataFrame:
        return make_features(world.view, log["user_id"], log["ad_id"], log["publisher_id"],
                             log["hour"], log["position"], history, log["exposures"])

    train, test = logs[1], logs[2]
    return {"X": table(train), "y": train["clicked"].to_numpy(), "X_test": table(test),
            "y_test": test["clicked"].to_numpy(), "p_test": test["true_p"].to_numpy()}


# ----- trees as features for a logistic model ---------------------------------------
def test_tree_logistic_model_learns_from_its_leaves(data):
    model = TreeLogisticClickModel(n_estimators=40, num_leaves=7, C=0.03).fit(data["X"], data["y"])
    leaves = model.leaves(data["X_test"])
    assert leaves.shape == (len(data["X_test"]), 40 * 7)
    np.testing.assert_array_equal(np.asarray(leaves.sum(axis=1)).ravel(), 40)
    p = model.predict(data["X_test"])
    assert np.all((p > 0) & (p < 1))
    base = log_loss(data["y_test"], np.full(len(p), data["y"].mean()))
    assert log_loss(data["y_test"], p) < 0.97 * base
    assert p.sum() / data["p_test"].sum() == pytest.approx(1.0, abs=0.1)


def test_tree_logistic_model_undoes_negative_downsampling(data):
    keep = downsample_negatives(data["y"], 0.2, np.random.default_rng(1))
    model = TreeLogisticClickModel(n_estimators=40, num_leaves=7, C=0.03,
                                   downsampling_rate=0.2).fit(data["X"][keep], data["y"][keep])
    assert model.predict(data["X_test"]).mean() / data["p_test"].mean() == pytest.approx(
        1.0, abs=0.12)


def test_tree_logistic_model_validates(data):
    with pytest.raises(ValueError, match="fitted"):
        TreeLogisticClickModel().predict(data["X_test"])
    with pytest.raises(ValueError, match="C"):
        TreeLogisticClickModel(C=0)
    with pytest.raises(ValueError, match="both clicks"):
        TreeLogisticClickModel().fit(data["X"][:50], np.zeros(50))


# ----- calibration -----------------------------------------------------------------------
class Doubled:
    """A click model bug: every prediction's odds doubled."""

    def __init__(self, model):
        self.model = model

    def fit(self, features, clicked, sample_weight=None):
        self.model.fit(features, clicked, sample_weight=sample_weight)
        return self

    def predict(self, features):
        p = self.model.predict(features)
        return 2 * p / (1 + p)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrated_model_fixes_a_miscalibrated_one(data, method):
    buggy = Doubled(LogisticClickModel(max_iter=500))
    model = CalibratedClickModel(buggy, Calibrator(method), holdout=0.3).fit(data["X"], data["y"])
    assert calibration_ratio(data["y_test"], buggy.predict(data["X_test"])) > 1.7
    ratio = model.predict(data["X_test"]).sum() / data["p_test"].sum()
    assert ratio == pytest.approx(1.0, abs=0.08)


def test_calibrator_fitted_on_downsampled_rows_calibrates_the_full_traffic(data):
    """Calibration rows downsampled like the training rows: the wrapper maps back."""
    w = 0.2
    keep = downsample_negatives(data["y"], w, np.random.default_rng(3))
    X, y = data["X"][keep], data["y"][keep]
    half = len(y) // 2
    inner = LogisticClickModel(max_iter=500, downsampling_rate=w).fit(X.iloc[:half], y[:half])
    clicks = y[half:].sum()
    for method in ("platt", "isotonic"):
        model = CalibratedClickModel(inner, Calibrator(method)).calibrate(X.iloc[half:], y[half:])
        assert model.calibration_rate == w
        # Mapped back to the downsampled rows' rate, the predictions on the calibration
        # rows add up to their clicks (both calibrators keep the mean they are fitted on).
        p = model.predict(X.iloc[half:])
        assert (p / (p + (1 - p) * w)).sum() == pytest.approx(clicks, rel=1e-3)
        # On the next day's full traffic: the truth, within the noise of those clicks.
        ratio = model.predict(data["X_test"]).sum() / data["p_test"].sum()
        assert ratio == pytest.approx(1.0, abs=3 / np.sqrt(clicks))
    # The same rows without saying they were downsampled: the calibrator learns the
    # downsampled rate and over-predicts.
    wrong = CalibratedClickModel(inner, Calibrator("platt")).calibrate(X.iloc[half:], y[half:],
                                                                        downsampling_rate=1.0)
    assert wrong.predict(data["X_test"]).sum() / data["p_test"].sum() > 2


def test_calibrated_model_validates(data):
    model = CalibratedClickModel(LogisticClickModel())
    with pytest.raises(ValueError, match="fitted"):
        model.predict(data["X_test"])
    with pytest.raises(TypeError, match="click model"):
        CalibratedClickModel(object())
    with pytest.raises(TypeError, match="Calibrator"):
        CalibratedClickModel(LogisticClickModel(), calibrator="isotonic")
    with pytest.raises(ValueError, match="holdout"):
        CalibratedClickModel(LogisticClickModel(), holdout=1.0)


@pytest.mark.parametrize("make, tolerance", [
    (lambda **kw: LogisticClickModel(max_iter=500, **kw), 0.03),
    (lambda **kw: LightGBMClickModel(n_estimators=60, n_jobs=1, **kw), 0.05),
])
def test_downsampled_and_recalibrated_predictions_keep_the_full_models_calibration(
        data, make, tolerance):
    """Negatives kept at w = 0.1 and the output recalibrated: the calibration on the test
    day (predicted clicks over the true expected clicks) matches the same model trained
    on every row, and both are calibrated."""
    truth = data["p_test"].sum()
    full = make().fit(data["X"], data["y"]).predict(data["X_test"]).sum() / truth
    keep = downsample_negatives(data["y"], 0.1, np.random.default_rng(4))
    model = make(downsampling_rate=0.1).fit(data["X"][keep], data["y"][keep])
    downsampled = model.predict(data["X_test"]).sum() / truth
    assert downsampled == pytest.approx(full, abs=tolerance)
    assert full == pytest.approx(1.0, abs=0.06)
    raw = make().fit(data["X"][keep], data["y"][keep]).predict(data["X_test"]).sum() / truth
    assert raw > 3   # without the correction the model learns the downsampled click rate


# ----- calibration by slice --------------------------------------------------------------
def test_calibration_by_slice_counts_each_slice():
    clicked = np.array([1, 0, 0, 0, 1, 1, 0, 0])
    p = np.array([0.5, 0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2])
    table = calibration_by_slice(clicked, p, ["a"] * 4 + ["b"] * 4)
    assert table.loc["a", "impressions"] == 4 and table.loc["a", "clicks"] == 1
    assert table.loc["a", "ratio"] == pytest.approx(2.0)
    assert table.loc["b", "ratio"] == pytest.approx(0.4)
    assert (table["ratio_low"] <= table["ratio"]).all()
    assert (table["ratio"] <= table["ratio_high"]).all()
    assert list(calibration_by_slice(clicked, p, ["a"] * 4 + ["b"] * 4, min_clicks=2).index) \
        == ["b"]
    with pytest.raises(ValueError, match="same length"):
        calibration_by_slice(clicked, p, ["a"])
