"""The Step 5 auto-checks accept the reference answers and explain the usual mistakes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed, step5
from adsys.metrics import recall_at_k

# --- recall_by_hand -----------------------------------------------------------------


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heavy and light scores of 40 requests of 5 to 30 candidates, partly correlated."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 30, size=40)
    groups = np.repeat(np.arange(40), sizes)
    heavy = rng.lognormal(size=len(groups))
    light = heavy * rng.lognormal(sigma=1.0, size=len(groups))
    order = rng.permutation(len(groups))          # rows need not be sorted by request
    return heavy[order], light[order], groups[order]


def pandas_recall(heavy, light, groups, k, m) -> float:
    """The lab's reference solution: ranks within requests, then a mean of means."""
    frame = pd.DataFrame({"req": groups, "heavy": heavy, "light": light})
    frame["heavy_rank"] = frame.groupby("req")["heavy"].rank(ascending=False, method="first")
    frame["light_rank"] = frame.groupby("req")["light"].rank(ascending=False, method="first")
    top = frame[frame["heavy_rank"] <= m]
    return (top["light_rank"] <= k).groupby(top["req"]).mean().mean()


def test_recall_accepts_the_reference_solution(scored, capsys):
    heavy, light, groups = scored
    answer = pandas_recall(heavy, light, groups, 8, 3)
    step5.recall_by_hand(answer, heavy, light, groups, k=8, m=3)
    step5.recall_by_hand(np.float64(answer), list(heavy), list(light), list(groups), 8, 3)
    assert "Correct: recall@8" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda h, c, g: 100 * recall_at_k(h, c, g, 8, 3), "in percent"),
    (lambda h, c, g: 1 - recall_at_k(h, c, g, 8, 3), "loses"),
    (lambda h, c, g: recall_at_k(h, c, g, 3, 8), "k and m are swapped"),
    (lambda h, c, g: recall_at_k(c, h, g, 8, 3), "scores are swapped"),
    (lambda h, c, g: 0.123, "is too (high|low)"),
    (lambda h, c, g: 1.7, "not a share"),
])
def test_recall_explains_typical_mistakes(scored, wrong, message):
    heavy, light, groups = scored
    with pytest.raises(CheckFailed, match=message):
        step5.recall_by_hand(wrong(heavy, light, groups), heavy, light, groups, k=8, m=3)


def test_recall_does_not_give_the_answer_away(scored):
    heavy, light, groups = scored
    want = recall_at_k(heavy, light, groups, 8, 3)
    for wrong in (want - 0.05, want + 0.05):
        with pytest.raises(CheckFailed, match="too (high|low)") as failed:
            step5.recall_by_hand(wrong, heavy, light, groups, k=8, m=3)
        assert f"{want:.4f}" not in str(failed.value)


def test_recall_recognises_precision_and_pooling():
    # Request 0 has 2 items (fewer than m), request 1 has 6: pooling and per-request
    # means differ, and so does precision.
    groups = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    heavy = np.array([2.0, 1.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    light = np.array([1.0, 2.0, 1.0, 2.0, 6.0, 5.0, 4.0, 3.0])
    want = recall_at_k(heavy, light, groups, 2, 3)          # (1 + 1/3) / 2
    pooled = 3 / 5
    precision = np.mean([2 / 2, 1 / 2])
    assert len({round(want, 6), pooled, precision}) == 3
    with pytest.raises(CheckFailed, match="pools the hits"):
        step5.recall_by_hand(pooled, heavy, light, groups, k=2, m=3)
    with pytest.raises(CheckFailed, match="precision"):
        step5.recall_by_hand(precision, heavy, light, groups, k=2, m=3)


def test_recall_placeholder():
    with pytest.raises(CheckFailed, match="still empty"):
        step5.recall_by_hand(..., [1.0], [1.0], [0], 1, 1)


# --- machines_needed ----------------------------------------------------------------

LOAD = dict(cpu_ms_per_request=0.0669, avg_qps=1_000_000, peak_to_mean=1.64,
            utilization=0.5, cores_per_machine=16)
CORES = 1_000_000 * 1.64 * 0.0669 / 1000 / 0.5          # 219.4 cores
MACHINES = math.ceil(CORES / 16)                          # 14


def test_machines_accepts_the_rounded_up_count_and_a_spare(capsys):
    step5.machines_needed(MACHINES, **LOAD)
    step5.machines_needed(np.int64(MACHINES + 1), **LOAD)
    out = capsys.readouterr().out
    assert "14 machines" in out and "spare" in out


@pytest.mark.parametrize("answer, message", [
    (CORES / 16, "round up"),
    (math.floor(CORES / 16), "rounded down"),
    (math.ceil(CORES / 16 / 1.64), "average load"),
    (math.ceil(CORES / 16 * 0.5), "100%"),
    (math.ceil(CORES / 16 * 0.25), "multiplied instead of divided"),
    (math.ceil(CORES / 16 * 1000), "seconds, not milliseconds"),
    (math.ceil(CORES), "number of cores"),
    (500, "too many"),
    (3, "too few"),
])
def test_machines_explains_typical_mistakes(answer, message):
    with pytest.raises(CheckFailed, match=message):
        step5.machines_needed(answer, **LOAD)


@pytest.mark.parametrize("answer", [3, 500, CORES / 16, math.floor(CORES / 16)])
def test_machines_does_not_give_the_answer_away(answer):
    with pytest.raises(CheckFailed) as failed:
        step5.machines_needed(answer, **LOAD)
    assert str(MACHINES) not in str(failed.value)


def test_machines_rejects_bad_parameters():
    with pytest.raises(ValueError, match="cpu_ms_per_request"):
        step5.machines_needed(3, **{**LOAD, "cpu_ms_per_request": -1.0})
    with pytest.raises(ValueError, match="peak_to_mean"):
        step5.machines_needed(3, **{**LOAD, "peak_to_mean": 0.5})
    with pytest.raises(CheckFailed, match="single number"):
        step5.machines_needed("twelve", **LOAD)


# --- choose_k (judgment) ------------------------------------------------------------

OPTIONS = pd.DataFrame({
    "scoring ms": [0.037, 0.043, 0.050, 0.061, 0.071, 0.084, 0.101, 0.145, 0.188, 0.313],
    "revenue ratio": [0.909, 0.942, 0.957, 0.978, 0.983, 0.990, 0.998, 1.000, 1.002, 1.001],
}, index=pd.Index([4, 5, 6, 8, 10, 12, 16, 24, 32, 64], name="K"))


def reference_choice(options: pd.DataFrame, budget: float) -> int:
    affordable = options[options["scoring ms"] <= budget]
    return int(affordable["revenue ratio"].idxmax() if len(affordable)
               else options["scoring ms"].idxmin())


@pytest.mark.parametrize("budget, defensible", [
    (0.0362, [4]),              # nothing strictly fits: the cheapest, or K=4 within noise
    (0.065, [8, 10]),           # K=8 fits; K=10 is 9% over, within the noise
    (0.072, [10, 8]),           # K=8 keeps 0.978 vs best 0.983: within the revenue slack
    (0.15, [24, 16]),           # 16 keeps within half a point of 24
    (1.0, [32, 64, 24]),
    (0.18, [24, 32]),           # 32 is 4% over the budget: within the noise
])
def test_choose_k_accepts_the_reference_and_other_defensible_answers(budget, defensible,
                                                                     capsys):
    assert reference_choice(OPTIONS, budget) == defensible[0]
    for k in defensible:
        step5.choose_k(k, OPTIONS, budget)
    assert capsys.readouterr().out.count("Correct: K =") == len(defensible)


@pytest.mark.parametrize("budget, answer, message", [
    (0.065, 64, "times the budget"),
    (0.065, 16, "budget is a constraint"),
    (0.065, 4, "keeps only 90.9%"),
    (0.15, 8, "hard to defend"),
    (0.15, 7, "was not measured"),
    (0.15, 8.5, "was not measured"),
    (0.01, 5, "no K fits"),
])
def test_choose_k_explains_what_an_answer_trades_away(budget, answer, message):
    with pytest.raises(CheckFailed, match=message):
        step5.choose_k(answer, OPTIONS, budget)


def test_choose_k_with_nothing_affordable_accepts_the_cheapest(capsys):
    step5.choose_k(4, OPTIONS, 0.01)
    assert "nothing fits the budget" in capsys.readouterr().out


def test_choose_k_rejects_bad_parameters():
    with pytest.raises(ValueError, match="options"):
        step5.choose_k(8, OPTIONS.rename(columns={"scoring ms": "ms"}), 0.05)
    with pytest.raises(ValueError, match="budget_ms"):
        step5.choose_k(8, OPTIONS, -1.0)
    with pytest.raises(CheckFailed, match="still empty"):
        step5.choose_k(..., OPTIONS, 0.05)
