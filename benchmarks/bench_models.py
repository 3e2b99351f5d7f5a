"""Benchmark Step 6's model ladder against the oracle, and negative downsampling.

Plays the default loop (default world, 100k requests a day, nightly retraining) for
four days, trains each rung of the ladder on the closed logs of days 0-2 (negatives
kept at 0.25, recalibrated) and tests on day 3 with 1-hour-window labels, whose
oracle is ``true_p x world.delay_cdf(3600)``. Also measures what the hidden truth
is worth (LightGBM given true interest, ad quality and user bias), the
downsampling curve (keep rate against training time and log loss), and the
examination curve from randomized slots against the world's.

Quality bars (DESIGN 7 and the Step 6 issue): the best rung within 5% of the oracle
in held-out log loss, or the hidden-truth decomposition explains the rest;
calibration within 0.97-1.03 after calibration, overall and for new ads (a
calibrator fitted on the test day's morning, judged on the rest of the day); a
downsampling rate that at least halves training time for under 1% more log loss.

Times are CPU seconds of this process (``time.process_time``) on one core, so that
other load on the machine does not inflate them. Run: python benchmarks/bench_models.py
(a few minutes; writes benchmarks/results/models.json).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import pin_one_core, save  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from adsys import metrics  # noqa: E402
from adsys.baseline import serve_random, serve_shuffled  # noqa: E402
from adsys.events import FEATURE_PREFIX, join_clicks, training_data  # noqa: E402
from adsys.features import NUMERIC_COLUMNS  # noqa: E402
from adsys.history import ExposureCounter  # noqa: E402
from adsys.ladder import CalibratedClickModel, TreeLogisticClickModel  # noqa: E402
from adsys.observable import SECONDS_PER_DAY  # noqa: E402
from adsys.position import relative_examination, relative_examination_interval  # noqa: E402
from adsys.prediction import (  # noqa: E402
    Calibrator,
    LightGBMClickModel,
    LogisticClickModel,
    downsample_negatives,
    recalibrate_downsampled,
)
from adsys.serving import AdServer  # noqa: E402
from adsys.simulate import bootstrap, simulate  # noqa: E402
from adsys.world import World  # noqa: E402

SEED = 0
DAYS = 4                  # days 0-2 train, day 3 tests
WINDOW = 3600.0           # attribution window of the labels, seconds
KEEP = 0.25               # negative keep rate of the ladder's training data
CROSSES = (("age_band", "ad_topic"), ("gender", "ad_topic"), ("hour", "ad_topic"),
           ("page_topic", "ad_topic"))
RATES = (1.0, 0.5, 0.25, 0.1, 0.05, 0.025)
YOUNG = np.log1p(1000)    # "new ads": fewer than 1,000 logged impressions at serving


def ladder() -> dict:
    """The rungs, each a factory taking the keep rate."""
    return {
        "logistic": lambda w: LogisticClickModel(downsampling_rate=w),
        "logistic + crosses": lambda w: LogisticClickModel(downsampling_rate=w,
                                                           crosses=CROSSES),
        "LightGBM": lambda w: LightGBMClickModel(downsampling_rate=w, n_jobs=1),
        "trees -> logistic": lambda w: TreeLogisticClickModel(downsampling_rate=w, C=0.003),
    }


def cpu(run):
    """Result and CPU seconds of ``run()``."""
    start = time.process_time()
    out = run()
    return out, time.process_time() - start


def scores(y: np.ndarray, p: np.ndarray, oracle: np.ndarray, oracle_loss: float) -> dict:
    loss = metrics.log_loss(y, p)
    return {"log_loss": round(loss, 5), "above_oracle": round(loss / oracle_loss - 1, 4),
            "ne": round(metrics.normalized_entropy(y, p), 4),
            "auc": round(metrics.roc_auc(y, p), 4),
            "calibration": round(metrics.calibration_ratio(y, p), 4),
            "calibration_vs_truth": round(float(p.sum() / oracle.sum()), 4)}


def truth_columns(world: World, rows: pd.DataFrame) -> pd.DataFrame:
    """The hidden quantities of each impression (analysis only, never a feature)."""
    user, ad = rows["user_id"].to_numpy(), rows["ad_id"].to_numpy()
    topic = world.view.ads["topic"].to_numpy()[ad]
    return pd.DataFrame({"true_interest": world.interests[user, topic],
                         "ad_quality": world.ad_quality[ad],
                         "user_bias": world.user_bias[user]}, index=rows.index)


def main() -> None:
    pin_one_core()
    world = World(seed=SEED)
    start = time.perf_counter()
    days = list(simulate(world, DAYS, seed=SEED))
    simulate_seconds = time.perf_counter() - start
    impressions = pd.concat([d.impressions for d in days[:-1]], ignore_index=True)
    clicks = pd.concat([d.clicks for d in days], ignore_index=True)
    as_of = (DAYS - 1) * SECONDS_PER_DAY
    X, y = training_data(impressions, clicks, WINDOW, as_of)
    closed = impressions["time"] + WINDOW <= as_of   # the rows of X, for the truth columns
    train_rows = impressions[closed].reset_index(drop=True)
    y = y.to_numpy()
    test, _ = join_clicks(days[-1].impressions, clicks, WINDOW)
    X_test = test[[c for c in test if c.startswith(FEATURE_PREFIX)]].rename(
        columns=lambda c: c[len(FEATURE_PREFIX):])
    y_test = test["clicked"].to_numpy()
    oracle = test["true_p"].to_numpy() * world.delay_cdf(WINDOW)
    oracle_loss = metrics.log_loss(y_test, oracle)
    keep = downsample_negatives(y, KEEP, np.random.default_rng(SEED))
    Xd, yd = X[keep], y[keep]

    morning = test["hour"].to_numpy() < 12      # the calibrators learn on the morning,
    later = ~morning                             # and are judged on the rest of the day

    def new_ads(table: pd.DataFrame) -> np.ndarray:
        return np.where(table["ad_log_impressions"] < YOUNG, "new", "older")

    fresh = new_ads(X_test[later]) == "new"

    def calibration(q: np.ndarray) -> dict:
        """Predicted over true expected clicks, later in the day: overall and new ads."""
        truth = oracle[later]
        return {"overall_vs_truth": round(float(q.sum() / truth.sum()), 4),
                "new_ads_vs_truth": round(float(q[fresh].sum() / truth[fresh].sum()), 4),
                "overall_vs_clicks": round(float(q.sum() / y_test[later].sum()), 4)}

    rungs = {}
    for name, make in ladder().items():
        model, fit_s = cpu(lambda make=make: make(KEEP).fit(Xd, yd))
        p, score_s = cpu(lambda model=model: model.predict(X_test))
        after = {"uncalibrated": calibration(p[later])}
        for label, slices in (("isotonic", None), ("isotonic by ad age", new_ads)):
            calibrated = CalibratedClickModel(model, Calibrator("isotonic"), slice_of=slices)
            calibrated.calibrate(X_test[morning], y_test[morning], downsampling_rate=1.0)
            after[label] = calibration(calibrated.predict(X_test[later]))
        rungs[name] = {
            **scores(y_test, p, oracle, oracle_loss),
            "fit_cpu_seconds": round(fit_s, 2),
            "score_cpu_seconds": round(score_s, 3),
            "score_microseconds_per_row": round(1e6 * score_s / len(X_test), 2),
            "calibration_later_in_the_day": after,
        }
        print(name, rungs[name], flush=True)
    best = min(rungs, key=lambda n: rungs[n]["log_loss"])

    # What the hidden truth is worth: LightGBM given it as extra columns (analysis only).
    base = LightGBMClickModel(n_jobs=1)
    truth_train = truth_columns(world, train_rows)[keep]
    truth_test = truth_columns(world, test)
    hidden = {}
    for added in ([], ["true_interest"], ["true_interest", "ad_quality"],
                  ["true_interest", "ad_quality", "user_bias"]):
        inputs = pd.concat([base.inputs(Xd), truth_train[added]], axis=1)
        model = lgb.LGBMClassifier(**base.params).fit(inputs, yd)
        p = recalibrate_downsampled(model.predict_proba(pd.concat(
            [base.inputs(X_test), truth_test[added]], axis=1))[:, 1], KEEP)
        hidden[" + ".join(["observables", *added])] = scores(y_test, p, oracle, oracle_loss)
        print(added, hidden[" + ".join(["observables", *added])], flush=True)
    # The same for the logistic model with crosses: its inputs plus the truth columns.
    crossed = ladder()["logistic + crosses"](KEEP)
    hidden_crossed = {"observables": rungs["logistic + crosses"]["above_oracle"]}
    for added in (["true_interest"], ["true_interest", "ad_quality"],
                  ["true_interest", "ad_quality", "user_bias"]):
        columns = ColumnTransformer([
            ("categorical", OneHotEncoder(handle_unknown="ignore"),
             list(crossed.categorical)),
            ("numeric", StandardScaler(), [*NUMERIC_COLUMNS, *added])])
        model = make_pipeline(columns, LogisticRegression(max_iter=2000))
        model.fit(pd.concat([crossed.inputs(Xd), truth_train[added]], axis=1), yd)
        p = recalibrate_downsampled(model.predict_proba(pd.concat(
            [crossed.inputs(X_test), truth_test[added]], axis=1))[:, 1], KEEP)
        hidden_crossed[" + ".join(["observables", *added])] = scores(
            y_test, p, oracle, oracle_loss)["above_oracle"]
        print("crossed", added, hidden_crossed, flush=True)

    # ... and with all of it, how the rest shrinks with more training days.
    learning_curve = {}
    all_truth = ["true_interest", "ad_quality", "user_bias"]
    train_day = train_rows["day"].to_numpy()[keep]
    for n_days in (1, 2, 3):
        rows = train_day >= DAYS - 1 - n_days
        inputs = pd.concat([base.inputs(Xd[rows]), truth_train[all_truth][rows]], axis=1)
        model = lgb.LGBMClassifier(**base.params).fit(inputs, yd[rows])
        p = recalibrate_downsampled(model.predict_proba(pd.concat(
            [base.inputs(X_test), truth_test[all_truth]], axis=1))[:, 1], KEEP)
        learning_curve[n_days] = scores(y_test, p, oracle, oracle_loss)["above_oracle"]

    # Negative downsampling: keep rate against training time and log loss.
    curve = {}
    for family, make in (("logistic", ladder()["logistic"]), ("LightGBM", ladder()["LightGBM"])):
        rows = []
        for w in RATES:
            kept = downsample_negatives(y, w, np.random.default_rng(SEED + 1))
            model, fit_s = cpu(lambda make=make, kept=kept, w=w: make(w).fit(X[kept], y[kept]))
            p = model.predict(X_test)
            rows.append({"keep_rate": w, "rows": int(kept.sum()),
                         "fit_cpu_seconds": round(fit_s, 2),
                         **scores(y_test, p, oracle, oracle_loss)})
            print(family, rows[-1], flush=True)
        full = rows[0]
        for row in rows:
            row["speedup"] = round(full["fit_cpu_seconds"] / row["fit_cpu_seconds"], 2)
            row["log_loss_increase"] = round(row["log_loss"] / full["log_loss"] - 1, 4)
        curve[family] = rows

    # Position bias: the examination curve from randomized slots against the world's.
    rng = np.random.default_rng(SEED + 2)
    random_log = serve_random(world, DAYS, 100_000, rng)
    models, history, _ = bootstrap(world, rng, 50_000, LogisticClickModel, browsing_days=14)
    server = AdServer(world.view, models.heavy, history, ExposureCounter(world.view.n_ads),
                      models.light, k=10, reserve=1.0)
    shuffled = serve_shuffled(world, server, world.requests(DAYS, rng, 50_000), DAYS, rng,
                              share=1.0)
    full_pages = shuffled[shuffled["slots_filled"] == world.view.n_slots]
    examination = {}
    for name, log in (("random server, 100k requests", random_log),
                      ("shuffled auction winners, 50k requests", full_pages)):
        low, high = relative_examination_interval(log["position"], log["clicked"])
        examination[name] = {
            "estimate": relative_examination(log["position"], log["clicked"]).round(3).tolist(),
            "low": low.round(3).tolist(), "high": high.round(3).tolist()}
    examination["truth"] = world.examine(np.arange(1, world.view.n_slots + 1)).tolist()

    save("models", {
        "setup": {"days": DAYS, "requests_per_day": days[0].n_requests,
                  "train_impressions": len(X), "train_rows_after_downsampling": int(keep.sum()),
                  "test_impressions": len(X_test), "train_clicks": int(y.sum()),
                  "window_seconds": WINDOW, "keep_rate": KEEP,
                  "oracle_log_loss": round(oracle_loss, 5),
                  "oracle_ne": round(metrics.normalized_entropy(y_test, oracle), 4),
                  "oracle_auc": round(metrics.roc_auc(y_test, oracle), 4),
                  "simulate_wall_seconds": round(simulate_seconds, 1)},
        "ladder": rungs,
        "best_rung": best,
        "hidden_truth": hidden,
        "hidden_truth_logistic_with_crosses": hidden_crossed,
        "hidden_truth_by_training_days": learning_curve,
        "downsampling": curve,
        "examination": examination,
        "bars": {
            "best_within_5_percent_of_oracle": rungs[best]["above_oracle"] <= 0.05,
            "calibrated_after_isotonic": {
                name: {label: 0.97 <= c["overall_vs_truth"] <= 1.03
                       and 0.97 <= c["new_ads_vs_truth"] <= 1.03
                       for label, c in r["calibration_later_in_the_day"].items()
                       if label != "uncalibrated"}
                for name, r in rungs.items()},
            "downsampling_halves_time_for_under_1_percent": {
                family: any(r["speedup"] >= 2 and r["log_loss_increase"] < 0.01 for r in rows)
                for family, rows in curve.items()},
        },
    })


if __name__ == "__main__":
    main()
