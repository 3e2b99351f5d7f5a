"""The Step 2 auto-checks accept the reference answers and explain the usual mistakes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed, step2

# --- p99_latency -------------------------------------------------------------


@pytest.fixture
def timings_ns() -> np.ndarray:
    """Skewed request timings in nanoseconds: mostly ~2 ms, a long right tail."""
    rng = np.random.default_rng(0)
    return rng.lognormal(np.log(2e6), 0.5, size=1000)


def test_p99_accepts_the_reference_and_other_interpolations(timings_ns, capsys):
    ms = timings_ns / 1e6
    for method in ("linear", "lower", "higher", "nearest", "inverted_cdf"):
        step2.p99_latency(float(np.percentile(ms, 99, method=method)), timings_ns)
    step2.p99_latency(float(pd.Series(ms).quantile(0.99)), list(timings_ns))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda ms: ms.mean(), "mean hides the slow requests"),
    (lambda ms: np.median(ms), "median"),
    (lambda ms: ms.max(), "maximum"),
    (lambda ms: np.percentile(ms, 99) * 1e6, "nanoseconds"),
    (lambda ms: np.percentile(ms, 99) * 1e3, "microseconds"),
    (lambda ms: np.percentile(ms, 99) / 1e3, "seconds"),
    (lambda ms: np.percentile(ms, 0.99), "takes percent"),
    (lambda ms: np.percentile(ms, 1), "1st percentile"),
    (lambda ms: ms.mean() + 2.326 * ms.std(), "normally distributed"),
    (lambda ms: 123.0, r"x too high for the 99th percentile"),
    (lambda ms: np.percentile(ms, 99) / 1.3, r"about 1.3x too low"),
])
def test_p99_explains_typical_mistakes(timings_ns, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        step2.p99_latency(float(wrong(timings_ns / 1e6)), timings_ns)


def test_p99_does_not_give_the_answer_away(timings_ns):
    want = np.percentile(timings_ns / 1e6, 99)
    with pytest.raises(CheckFailed) as failure:
        step2.p99_latency(want * 1.5, timings_ns)
    assert f"{want:.3f}" not in str(failure.value) and f"{want:.2f}" not in str(failure.value)


def test_p99_placeholder_and_bad_inputs(timings_ns):
    with pytest.raises(CheckFailed, match="still empty"):
        step2.p99_latency(..., timings_ns)
    with pytest.raises(CheckFailed, match="single number"):
        step2.p99_latency("fast", timings_ns)
    with pytest.raises(ValueError, match="timings_ns"):
        step2.p99_latency(1.0, [1.0])
    with pytest.raises(ValueError, match="timings_ns"):
        step2.p99_latency(1.0, [1.0, -2.0])


# --- cores_needed ------------------------------------------------------------

LOAD = dict(avg_qps=1_000_000, cpu_ms_per_request=4.2, peak_to_mean=1.6, utilization=0.6)
CORES = 1_000_000 * 1.6 * 4.2e-3 / 0.6  # 11,200 cores


def test_cores_accepts_the_exact_value_and_rounding_up(capsys):
    step2.cores_needed(CORES, **LOAD)
    step2.cores_needed(math.ceil(CORES + 0.5), **dict(LOAD, cpu_ms_per_request=4.2003))
    step2.cores_needed(np.float64(CORES), **LOAD)
    assert "machines of 16 cores" in capsys.readouterr().out


@pytest.mark.parametrize("factor, message", [
    (1 / 1.6, "average load was used instead of the peak"),
    (0.6, "no utilization headroom"),
    (0.36, "multiplied instead of divided"),
    (1000, "used as seconds"),
    (1e-3, "converted to seconds twice"),
    (0.6 / 1.6, "instead of the peak.*no utilization headroom"),
    (1000 / 1.6, "used as seconds.*instead of the peak"),
    (1.37, "about 1.37x too high"),
    (0.8, "about 1.25x too low"),
])
def test_cores_explains_typical_mistakes(factor, message):
    with pytest.raises(CheckFailed, match=message):
        step2.cores_needed(CORES * factor, **LOAD)


def test_cores_rejects_rounding_down():
    load = dict(LOAD, cpu_ms_per_request=4.2003)  # 11,200.8 cores
    with pytest.raises(CheckFailed, match="rounded down"):
        step2.cores_needed(11_200, **load)


def test_cores_placeholder_and_bad_inputs():
    with pytest.raises(CheckFailed, match="still empty"):
        step2.cores_needed(..., **LOAD)
    with pytest.raises(ValueError, match="utilization"):
        step2.cores_needed(1.0, **dict(LOAD, utilization=1.5))
    with pytest.raises(ValueError, match="peak_to_mean"):
        step2.cores_needed(1.0, **dict(LOAD, peak_to_mean=0.5))
    with pytest.raises(ValueError, match="avg_qps"):
        step2.cores_needed(1.0, **dict(LOAD, avg_qps=-1))


# --- max_candidates ----------------------------------------------------------


def make_runs(tail_ms: dict[int, float], typical_ms: dict[int, float],
              model: str = "big") -> pd.DataFrame:
    """100 timed requests per count: 97 at the typical latency, 3 at the tail."""
    rows = []
    for count, typical in typical_ms.items():
        wall = [typical] * 97 + [tail_ms[count]] * 3
        rows += [{"model": model, "candidates": count, "wall_ms": w} for w in wall]
    return pd.DataFrame(rows)


@pytest.fixture
def runs() -> pd.DataFrame:
    # p99 of "big" fits 10 ms up to 100 candidates; its median fits up to 300.
    big = make_runs({10: 4.0, 100: 9.0, 300: 14.0, 1000: 40.0},
                    {10: 3.0, 100: 6.0, 300: 8.0, 1000: 25.0})
    # A faster model: it fits up to 1000 alone, but pooled with "big" only up to 100.
    small = make_runs({10: 1.0, 100: 1.5, 300: 2.0, 1000: 3.0},
                      {10: 0.5, 100: 0.8, 300: 1.0, 1000: 1.5}, model="small")
    return pd.concat([big, small], ignore_index=True)


def test_max_candidates_accepts_the_reference(runs, capsys):
    step2.max_candidates(100, runs, model="big", budget_ms=10)
    step2.max_candidates(np.int64(1000), runs, model="small", budget_ms=10)
    step2.max_candidates(0, runs, model="big", budget_ms=2)
    out = capsys.readouterr().out
    assert "100 candidates" in out and "no measured count fits" in out


@pytest.mark.parametrize("answer, message", [
    (1000, "breaks the budget"),
    (10, "but 100 candidates fit too"),
    (9.0, "is a latency in ms"),
    (50, "not one of the measured counts"),
])
def test_max_candidates_explains_typical_mistakes(runs, answer, message):
    with pytest.raises(CheckFailed, match=message):
        step2.max_candidates(answer, runs, model="big", budget_ms=10)


def test_max_candidates_recognises_median_and_pooled_answers(runs):
    with pytest.raises(CheckFailed, match="median"):
        step2.max_candidates(300, runs, model="big", budget_ms=10)
    with pytest.raises(CheckFailed, match="every model together"):
        step2.max_candidates(100, runs, model="small", budget_ms=10)


def test_max_candidates_accepts_either_reading_of_a_non_monotone_tail():
    # A noisy spike at 100 candidates: 300 is the largest that fits, 30 the last
    # before the first miss; both are defensible answers.
    runs = make_runs({30: 5.0, 100: 12.0, 300: 9.5}, {30: 3.0, 100: 4.0, 300: 6.0})
    step2.max_candidates(300, runs, model="big", budget_ms=10)
    step2.max_candidates(30, runs, model="big", budget_ms=10)


def test_max_candidates_placeholder_and_bad_inputs(runs):
    with pytest.raises(CheckFailed, match="still empty"):
        step2.max_candidates(..., runs, model="big", budget_ms=10)
    with pytest.raises(ValueError, match="model must be one of"):
        step2.max_candidates(100, runs, model="huge", budget_ms=10)
    with pytest.raises(ValueError, match="budget_ms"):
        step2.max_candidates(100, runs, model="big", budget_ms=0)
    with pytest.raises(ValueError, match="runs must be a DataFrame"):
        step2.max_candidates(100, runs.drop(columns="wall_ms"), model="big", budget_ms=10)


# --- model_and_candidates (judgment) -------------------------------------------


@pytest.fixture
def menu() -> tuple[pd.DataFrame, dict[str, float]]:
    """Three models; with a 10 ms budget the frontier is fast at 1000, mid at 300,
    slow at 100 (each fits up to there), and a fourth model is beaten on both counts."""
    runs = pd.concat([
        make_runs({100: 2.0, 300: 3.0, 1000: 6.0}, {100: 1.0, 300: 1.5, 1000: 3.0}, "fast"),
        make_runs({100: 4.0, 300: 9.0, 1000: 25.0}, {100: 2.0, 300: 5.0, 1000: 12.0}, "mid"),
        make_runs({100: 8.0, 300: 30.0, 1000: 90.0}, {100: 4.0, 300: 9.5, 1000: 40.0},
                  "slow"),
        make_runs({100: 5.0, 300: 11.0, 1000: 30.0}, {100: 2.0, 300: 6.0, 1000: 15.0},
                  "worse"),
    ], ignore_index=True)
    return runs, {"fast": 0.031, "mid": 0.0302, "slow": 0.0300, "worse": 0.0305}


@pytest.mark.parametrize("choice", [("fast", 1000), ("mid", 300), ["slow", 100],
                                    ("mid", np.int64(300))])
def test_model_and_candidates_accepts_every_defensible_choice(menu, choice, capsys):
    runs, log_loss = menu
    step2.model_and_candidates(choice, runs, log_loss, budget_ms=10)
    out = capsys.readouterr().out
    assert "is defensible" in out
    for option in ("fast at 1,000", "mid at 300", "slow at 100"):
        assert option in out
    assert "worse at" not in out


def test_model_and_candidates_explains_the_trade_off(menu, capsys):
    runs, log_loss = menu
    step2.model_and_candidates(("fast", 1000), runs, log_loss, budget_ms=10)
    assert "scores the most candidates" in capsys.readouterr().out
    step2.model_and_candidates(("slow", 100), runs, log_loss, budget_ms=10)
    assert "cheap first stage" in capsys.readouterr().out


@pytest.mark.parametrize(("choice", "message"), [
    (("slow", 1000), "over the 10 ms budget"),
    (("slow", 300), "fits at the median, but the budget is on the p99"),
    (("fast", 300), "fast itself still fits at 1,000"),
    (("fast", 100), "fast itself still fits"),
    (("worse", 100), "mid fits at 300 candidates with a lower log loss"),
    (("huge", 100), "pick one of"),
    (("mid", 250), "measured counts"),
    ((300, "mid"), "wrong order"),
    ("mid", "should be a pair"),
    (("mid", "many"), "single number"),
    (..., "still empty"),
])
def test_model_and_candidates_rejects_indefensible_choices(menu, choice, message):
    runs, log_loss = menu
    with pytest.raises(CheckFailed, match=message):
        step2.model_and_candidates(choice, runs, log_loss, budget_ms=10)


def test_model_and_candidates_rejects_bad_inputs(menu):
    runs, log_loss = menu
    with pytest.raises(ValueError, match="log_loss has no value"):
        step2.model_and_candidates(("fast", 100), runs, {"fast": 0.03}, budget_ms=10)
    with pytest.raises(ValueError, match="budget_ms"):
        step2.model_and_candidates(("fast", 100), runs, log_loss, budget_ms=-1)
    with pytest.raises(ValueError, match="runs must be a DataFrame"):
        step2.model_and_candidates(("fast", 100), runs.drop(columns="wall_ms"), log_loss,
                                   budget_ms=10)


def test_model_and_candidates_accepts_a_p99_on_the_edge(capsys):
    # 99 requests at 9.9 ms and one at 20 ms: the interpolated p99 is just over 10 ms,
    # the "lower" one just under; a learner may have used either.
    edge = pd.DataFrame({"model": "edge", "candidates": 100, "wall_ms": [9.9] * 99 + [20.0]})
    step2.model_and_candidates(("edge", 100), edge, {"edge": 0.03}, budget_ms=10)
    assert "on the edge" in capsys.readouterr().out


def test_model_and_candidates_does_not_let_an_edge_pair_dominate(capsys):
    # "edge" fits at 300 only by a lenient percentile (linear p99 just over 10 ms), and
    # plainly at 100: both choices are defensible, neither rejects the other.
    runs = pd.DataFrame({"model": "edge", "candidates": [100] * 100 + [300] * 100,
                         "wall_ms": [5.0] * 100 + [9.9] * 99 + [20.0]})
    step2.model_and_candidates(("edge", 100), runs, {"edge": 0.03}, budget_ms=10)
    out = capsys.readouterr().out
    assert "edge at 100 candidates is defensible" in out
    assert "edge at 300 (p99 10.0 ms, on the edge" in out
    step2.model_and_candidates(("edge", 300), runs, {"edge": 0.03}, budget_ms=10)
    assert "on the edge of" in capsys.readouterr().out


def test_model_and_candidates_does_not_let_an_edge_pair_of_another_model_dominate(capsys):
    # "strong" at 300 barely fits (edge) with a lower log loss than "weak" at 300, which is
    # plainly within budget: "weak" at 300 stays defensible; "weak" at 100 is still beaten
    # by "weak" at 300, a pair that truly fits.
    runs = pd.DataFrame({
        "model": ["strong"] * 100 + ["weak"] * 200,
        "candidates": [300] * 100 + [100] * 100 + [300] * 100,
        "wall_ms": [9.9] * 99 + [20.0] + [2.0] * 100 + [4.0] * 100})
    log_loss = {"strong": 0.02, "weak": 0.03}
    step2.model_and_candidates(("weak", 300), runs, log_loss, budget_ms=10)
    assert "weak at 300 candidates is defensible" in capsys.readouterr().out
    step2.model_and_candidates(("strong", 300), runs, log_loss, budget_ms=10)
    assert "on the edge of" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="weak itself still fits at 300"):
        step2.model_and_candidates(("weak", 100), runs, log_loss, budget_ms=10)
