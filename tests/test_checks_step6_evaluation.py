"""The Lab 6.2 checks accept the reference answers and explain the usual mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.checks import CheckFailed
from adsys.checks import step6_evaluation as check
from adsys.offpolicy import ips, snips

EPS = 0.2


@pytest.fixture(scope="module")
def slot1() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n_candidates = rng.integers(4, 11, size=500)
    n_eligible = np.maximum(1, n_candidates - rng.integers(0, 3, size=500))
    is_winner = rng.random(500) < 0.85
    return {"n_eligible": n_eligible, "is_winner": is_winner,
            "n_candidates": n_candidates}


def _propensity(s: dict, answer: object) -> None:
    check.slot1_propensity(answer, s["n_eligible"], s["is_winner"], EPS,
                           n_candidates=s["n_candidates"])


def test_propensity_accepts_the_formula(slot1: dict, capsys) -> None:
    _propensity(slot1, EPS / slot1["n_eligible"] + (1 - EPS) * slot1["is_winner"])
    assert capsys.readouterr().out.startswith("Correct")


@pytest.mark.parametrize("wrong, hint", [
    (lambda n, w, k: (1 - EPS) * w, "positive probability"),
    (lambda n, w, k: EPS / n + (1 - EPS), "Only the auction's winner"),
    (lambda n, w, k: EPS * ~w + (1 - EPS) * w, "split among"),
    (lambda n, w, k: EPS / n, "greedy part"),
    (lambda n, w, k: 1 / n, "uniform random"),
    (lambda n, w, k: EPS / k + (1 - EPS) * w, "scored"),
    (lambda n, w, k: 1 - (EPS / n + (1 - EPS) * w), "not"),
])
def test_propensity_explains_typical_mistakes(slot1: dict, wrong, hint: str) -> None:
    answer = wrong(slot1["n_eligible"], slot1["is_winner"], slot1["n_candidates"])
    with pytest.raises(CheckFailed, match=hint):
        _propensity(slot1, answer)


def test_propensity_rejects_placeholder_and_wrong_shape(slot1: dict) -> None:
    with pytest.raises(CheckFailed, match="still empty"):
        _propensity(slot1, ...)
    with pytest.raises(CheckFailed, match="one value per slot-1 impression"):
        _propensity(slot1, np.ones(3))
    with pytest.raises(CheckFailed, match="numbers"):
        _propensity(slot1, ["a"] * 500)
    almost = EPS / slot1["n_eligible"] + (1 - EPS) * slot1["is_winner"]
    almost[7] += 0.1
    with pytest.raises(CheckFailed, match="row 7"):
        _propensity(slot1, almost)


@pytest.fixture(scope="module")
def log() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    n = 2_000
    logging = np.where(rng.random(n) < 0.8, 0.82, 0.02)
    target = (rng.random(n) < 0.4).astype(float)
    reward = (rng.random(n) < 0.3).astype(float)
    return {"reward": reward, "logging": logging, "target": target}


def test_ips_accepts_the_estimate(log: dict, capsys) -> None:
    estimate = np.mean(log["reward"] * log["target"] / log["logging"])
    check.ips_estimate(estimate, log["reward"], log["logging"], log["target"])
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda r, p, t: snips(r, p, t), "SNIPS"),
    (lambda r, p, t: np.mean((r * t / p)[t > 0]), "agrees with the log only"),
    (lambda r, p, t: np.mean(r[t > 0]), "without weights"),
    (lambda r, p, t: np.mean(r * t), "forgot to divide"),
    (lambda r, p, t: np.mean(r * t * p), "multiplied"),
    (lambda r, p, t: np.mean(r), "logged policy's own"),
    (lambda r, p, t: 2 * ips(r, p, t), "too high"),
    (lambda r, p, t: 0.5 * ips(r, p, t), "too low"),
])
def test_ips_explains_typical_mistakes(log: dict, wrong, hint: str) -> None:
    answer = wrong(log["reward"], log["logging"], log["target"])
    with pytest.raises(CheckFailed, match=hint):
        check.ips_estimate(answer, log["reward"], log["logging"], log["target"])


def test_ips_does_not_give_the_answer_away(log: dict) -> None:
    want = ips(log["reward"], log["logging"], log["target"])
    with pytest.raises(CheckFailed) as failure:
        check.ips_estimate(2 * want, log["reward"], log["logging"], log["target"])
    assert f"{want:.5f}" not in str(failure.value)


def test_ips_wants_a_number(log: dict) -> None:
    with pytest.raises(CheckFailed, match="single number"):
        check.ips_estimate([0.03, 0.04], log["reward"], log["logging"], log["target"])


def _results(primary: tuple, cpc: tuple, repeats: tuple = (0.0, -0.05, 0.05),
             ctr: tuple = (0.0, -0.05, 0.05)) -> pd.DataFrame:
    """A result table: (change, ci_low, ci_high) per metric."""
    rows = {"revenue per request": ("primary", "up", 0.0, primary),
            "cost per click": ("guardrail", "down", 0.05, cpc),
            "repeated-ad share": ("guardrail", "down", 0.10, repeats),
            "CTR": ("secondary", "up", 0.0, ctr)}
    return pd.DataFrame({name: {"role": role, "better": better, "tolerance": tol,
                                "change": c[0], "ci_low": c[1], "ci_high": c[2]}
                         for name, (role, better, tol, c) in rows.items()}).T


CLEAN_WIN = _results((0.04, 0.01, 0.07), (0.01, -0.02, 0.04))
WIN_BROKEN = _results((0.04, 0.01, 0.07), (0.09, 0.06, 0.12))
UNCLEAR = _results((0.01, -0.09, 0.11), (0.02, -0.01, 0.05))
UNCLEAR_BROKEN = _results((0.01, -0.09, 0.11), (0.07, 0.03, 0.10))
LOSS = _results((-0.17, -0.27, -0.07), (-0.15, -0.19, -0.11), ctr=(0.6, 0.5, 0.7))
NOT_SIGNIFICANT_GUARDRAIL = _results((0.04, 0.01, 0.07), (0.09, -0.01, 0.19))


@pytest.mark.parametrize("results, decision, reasons", [
    (CLEAN_WIN, "launch", ["revenue per request"]),
    (CLEAN_WIN, "Launch ", "revenue per request"),
    (WIN_BROKEN, "iterate", ["cost per click"]),
    (WIN_BROKEN, "iterate", ["revenue per request", "cost per click"]),
    (UNCLEAR, "iterate", ["revenue per request"]),
    (UNCLEAR_BROKEN, "iterate", ["revenue per request"]),
    (UNCLEAR_BROKEN, "iterate", ["cost per click"]),
    (UNCLEAR_BROKEN, "rebuild", ["cost per click"]),
    (LOSS, "rebuild", ["revenue per request"]),
    (LOSS, "iterate", ["revenue per request", "CTR"]),
    (NOT_SIGNIFICANT_GUARDRAIL, "launch", ["revenue per request"]),
])
def test_decision_accepts_defensible_answers(results: pd.DataFrame, decision: str,
                                             reasons, capsys) -> None:
    check.launch_decision(decision, reasons, results)
    out = capsys.readouterr().out
    assert out.startswith("Correct")


def test_decision_names_the_other_defensible_answer(capsys) -> None:
    check.launch_decision("iterate", ["cost per click"], UNCLEAR_BROKEN)
    assert "Rebuild would also be defensible" in capsys.readouterr().out
    check.launch_decision("rebuild", ["revenue per request"], LOSS)
    assert "Iterate would also be defensible" in capsys.readouterr().out


@pytest.mark.parametrize("results, decision, reasons, hint", [
    (WIN_BROKEN, "launch", ["revenue per request"], "guardrail broken"),
    (UNCLEAR, "launch", ["revenue per request"], "whole interval above 0"),
    (LOSS, "launch", ["CTR"], "launching needs"),
    (CLEAN_WIN, "iterate", ["revenue per request"], "clean win"),
    (CLEAN_WIN, "rebuild", ["revenue per request"], "nothing says the approach is wrong"),
    (UNCLEAR, "rebuild", ["revenue per request"], "more traffic or a longer test"),
    (WIN_BROKEN, "rebuild", ["cost per click"], "specific problem to fix"),
    (WIN_BROKEN, "iterate", ["revenue per request"], "Cite \\['cost per click'\\]"),
    (LOSS, "rebuild", ["CTR"], "secondary metrics"),
    (UNCLEAR_BROKEN, "rebuild", ["revenue per request"], "did not decide"),
])
def test_decision_rejects_indefensible_answers(results: pd.DataFrame, decision: str,
                                               reasons, hint: str) -> None:
    with pytest.raises(CheckFailed, match=hint):
        check.launch_decision(decision, reasons, results)


@pytest.mark.parametrize("decision, reasons, hint", [
    (..., ["revenue per request"], "still empty"),
    ("launch", ..., "still empty"),
    ("ship it", ["revenue per request"], "one of"),
    (3, ["revenue per request"], "one of"),
    ("launch", ["revenue"], "not rows of the table"),
    ("launch", [], "name of a metric"),
    ("launch", 5, "name of a metric"),
])
def test_decision_rejects_malformed_answers(decision, reasons, hint: str) -> None:
    with pytest.raises(CheckFailed, match=hint):
        check.launch_decision(decision, reasons, CLEAN_WIN)


def test_decision_rejects_a_malformed_table() -> None:
    with pytest.raises(TypeError, match="results"):
        check.launch_decision("launch", ["x"], {"x": 1})
    with pytest.raises(ValueError, match="missing columns"):
        check.launch_decision("launch", ["x"], CLEAN_WIN.drop(columns="tolerance"))
    two = CLEAN_WIN.copy()
    two.loc["CTR", "role"] = "primary"
    with pytest.raises(ValueError, match="exactly one"):
        check.launch_decision("launch", ["CTR"], two)


def test_guardrail_and_primary_helpers() -> None:
    assert check.failed_guardrails(WIN_BROKEN) == ["cost per click"]
    assert check.failed_guardrails(NOT_SIGNIFICANT_GUARDRAIL) == []
    assert [check.primary_outcome(r) for r in (CLEAN_WIN, UNCLEAR, LOSS)] == \
        ["better", "unclear", "worse"]
