"""Auto-checks for Lab 6.2 (``notebooks/06_evaluation``): evaluate a new click model.

Two checks recompute the answer from the same inputs the learner used (the
epsilon-greedy propensities, an inverse-propensity estimate with
:func:`adsys.offpolicy.ips`) and recognise the usual mistakes. The third is a
judgment check: from an experiment's result table it works out which decisions
(launch, iterate, rebuild) a senior reviewer would accept, and what each must cite.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.checks import (
    CheckFailed,
    as_number,
    explain_known_mistake,
    passed,
    require,
    require_answer,
)
from adsys.offpolicy import ips

__all__ = ["DECISIONS", "RESULT_COLUMNS", "failed_guardrails", "ips_estimate",
           "launch_decision", "primary_outcome", "slot1_propensity"]

EPSILON_GREEDY = ("propensity = eps / n_eligible for every eligible ad, plus (1 - eps) for "
                  "the auction's winner")


def _close(a: ArrayLike, b: ArrayLike) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-12))


def _as_array(answer: object, name: str, n: int) -> np.ndarray:
    require_answer(answer, name)
    try:
        values = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed(f"`{name}` should hold numbers, one per logged impression.") \
            from None
    require(values.shape == (n,), f"`{name}` should have one value per slot-1 impression "
            f"({n}); got shape {values.shape}.")
    return values


def slot1_propensity(propensity: object, n_eligible: ArrayLike, is_winner: ArrayLike,
                     eps: float, n_candidates: ArrayLike | None = None) -> None:
    """Check the logging policy's probability of each slot-1 ad, computed by hand.

    Parameters
    ----------
    propensity : array
        The learner's probability that the epsilon-greedy policy put each logged
        slot-1 ad there.
    n_eligible : array of int
        Candidates of that request whose eCPM reached the reserve (those exploration
        draws from).
    is_winner : array of bool
        Whether the logged ad is the auction's winner (the greedy choice).
    eps : float
        The exploration share.
    n_candidates : array of int, optional
        All candidates the click model scored for the request (eligible or not), to
        recognise a division by the wrong count.
    """
    n = np.asarray(n_eligible, dtype=float)
    winner = np.asarray(is_winner, dtype=bool)
    got = _as_array(propensity, "propensity", len(n))
    want = eps / n + (1 - eps) * winner
    if _close(got, want):
        passed(f"the winner was shown with probability 1 - eps + eps / n (here up to "
               f"{want.max():.3f}) and any other eligible ad with eps / n (as low as "
               f"{want.min():.4f}): these are the numbers the server logged, and every one "
               "is positive, which is what off-policy estimates need.")
        return
    mistakes = [
        ((1 - eps) * winner, "every ad that exploration showed got 0 here, yet it was "
         f"shown: a logged action always has a positive probability. {EPSILON_GREEDY}."),
        (eps / n + (1 - eps), "you gave every ad the winner's probability. Only the "
         f"auction's winner gets the extra 1 - eps: {EPSILON_GREEDY}."),
        (np.broadcast_to(eps, n.shape), "exploration draws one ad among n_eligible, so each "
         f"gets eps / n_eligible, not eps. {EPSILON_GREEDY}."),
        (eps * ~winner + (1 - eps) * winner, "the exploration share is split among the "
         f"n_eligible ads (eps / n each), and the winner can also be drawn by exploration. "
         f"{EPSILON_GREEDY}."),
        (eps / n, "you left out the greedy part: with probability 1 - eps the policy shows "
         f"the auction's winner. {EPSILON_GREEDY}."),
        (1 / n, "that is uniform random serving (eps = 1); this policy explores only a share "
         f"eps of requests. {EPSILON_GREEDY}."),
        (1 - (eps / n + (1 - eps) * winner), "this is the probability of *not* showing the "
         f"logged ad. {EPSILON_GREEDY}."),
    ]
    if n_candidates is not None:
        k = np.asarray(n_candidates, dtype=float)
        mistakes.append((eps / k + (1 - eps) * winner, "you divided by all the candidates the "
                         "click model scored; exploration only draws among those whose eCPM "
                         f"reaches the reserve (n_eligible). {EPSILON_GREEDY}."))
    explain_known_mistake("propensity", got, mistakes, _close)
    bad = int(np.argmax(~np.isclose(got, want, rtol=1e-6, atol=1e-12)))
    raise CheckFailed(f"`propensity` differs from the policy's probability, e.g. row {bad}: "
                      f"{got[bad]:.4f} instead of {want[bad]:.4f} (n_eligible = {n[bad]:.0f}, "
                      f"winner = {bool(winner[bad])}). {EPSILON_GREEDY}.")


def ips_estimate(estimate: object, reward: ArrayLike, logging_propensity: ArrayLike,
                 target_propensity: ArrayLike) -> None:
    """Check an inverse-propensity estimate of a new policy's mean reward per decision.

    Parameters
    ----------
    estimate : float
        The learner's IPS estimate.
    reward, logging_propensity, target_propensity : arrays, one per logged decision
        As for :func:`adsys.offpolicy.ips`: the reward seen (a slot-1 click), the logging
        policy's probability of the logged ad, the new policy's (1 if it would have
        shown the same ad, else 0).
    """
    got = as_number(estimate, "estimate")
    r = np.asarray(reward, dtype=float)
    p = np.asarray(logging_propensity, dtype=float)
    t = np.asarray(target_propensity, dtype=float)
    want = ips(r, p, t)
    if np.isclose(got, want, rtol=1e-6, atol=1e-12):
        weights = t / p
        passed(f"IPS = {want:.5f}: the {int((t > 0).sum()):,} decisions where the new policy "
               f"agrees with the log count with weight 1 / propensity (from "
               f"{weights[t > 0].min():.2f} to {weights.max():.0f}), the others count 0, "
               f"and the sum is divided by all {len(r):,} decisions.")
        return
    agree = t > 0
    w = t / p
    mistakes = [
        (float(np.sum(r * w) / np.sum(w)), "this is SNIPS, the self-normalized estimate "
         "(divided by the sum of the weights). It is a fine estimator, but the exercise asks "
         "for IPS: divide the weighted sum by the number of decisions."),
        (float(np.mean((r * w)[agree])), "you averaged over the decisions where the new policy "
         "agrees with the log only. IPS averages over *every* logged decision: where the new "
         "policy would have shown another ad, the term is 0, and the weights 1 / propensity "
         "make up for it."),
        (float(np.mean(r[agree])), "this is the click rate of the decisions where both "
         "policies agree, without weights. Those decisions are mostly the ones the old model "
         "liked (propensity near 1); the rare explored ones stand for many more. Weight each "
         "by 1 / propensity and divide by all decisions."),
        (float(np.mean(r * t)), "you forgot to divide by the logging propensity: rows where "
         "the new policy agrees must count 1 / propensity times."),
        (float(np.mean(r * t * p)), "you multiplied by the propensity; IPS divides by it."),
        (float(np.mean(r)), "this is the logged policy's own click rate, not the new "
         "policy's: weight each row by target / logging propensity."),
    ]
    explain_known_mistake("estimate", got, mistakes,
                          lambda a, b: bool(np.isclose(a, b, rtol=1e-6, atol=1e-12)))
    raise CheckFailed(f"`estimate` = {got:.5f} is too {'high' if got > want else 'low'}. "
                      "IPS = mean over all logged decisions of reward x target_propensity / "
                      "logging_propensity.")


DECISIONS = ("launch", "iterate", "rebuild")
RESULT_COLUMNS = ("role", "better", "change", "ci_low", "ci_high", "tolerance")


def _read_results(results: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a DataFrame; got {type(results).__name__}")
    missing = [c for c in RESULT_COLUMNS if c not in results]
    if missing:
        raise ValueError(f"results is missing columns {missing}")
    roles = results["role"]
    if (roles == "primary").sum() != 1:
        raise ValueError("results must have exactly one row with role 'primary'")
    if not roles.isin(["primary", "guardrail", "secondary"]).all():
        raise ValueError("results role must be 'primary', 'guardrail' or 'secondary'")
    if not results["better"].isin(["up", "down"]).all():
        raise ValueError("results better must be 'up' or 'down'")
    return results


def _worse(row: pd.Series) -> tuple[float, float, float]:
    """Change and interval turned so that positive always means worse."""
    sign = -1.0 if row["better"] == "up" else 1.0
    low, high = sorted((sign * row["ci_low"], sign * row["ci_high"]))
    return sign * row["change"], low, high


def failed_guardrails(results: pd.DataFrame) -> list[str]:
    """Guardrails that moved the wrong way by more than their tolerance, significantly."""
    failed = []
    for name, row in _read_results(results).iterrows():
        if row["role"] != "guardrail":
            continue
        change, low, _ = _worse(row)
        if change > row["tolerance"] and low > 0:
            failed.append(str(name))
    return failed


def primary_outcome(results: pd.DataFrame) -> str:
    """``'better'``, ``'worse'`` or ``'unclear'``: the primary metric's interval against 0."""
    row = _read_results(results).query("role == 'primary'").iloc[0]
    _, low, high = _worse(row)
    return "worse" if low > 0 else "better" if high < 0 else "unclear"


def _percent(row: pd.Series) -> str:
    return f"{row['change']:+.1%} (95% CI {row['ci_low']:+.1%} to {row['ci_high']:+.1%})"


def launch_decision(decision: object, reasons: object, results: pd.DataFrame) -> None:
    """Judgment check: is ``decision`` defensible from the experiment ``results``?

    Parameters
    ----------
    decision : str
        ``'launch'``, ``'iterate'`` (fix or test longer, then test again) or
        ``'rebuild'`` (go back to modelling).
    reasons : str or list of str
        The metric(s) of ``results`` that drive the decision.
    results : pandas.DataFrame
        One row per metric (the index names it), with :data:`RESULT_COLUMNS`: ``role``
        (``'primary'``, ``'guardrail'`` or ``'secondary'``), ``better`` (``'up'`` or
        ``'down'``), ``change`` (relative change, treatment against control), the 95%
        interval ``ci_low``, ``ci_high``, and ``tolerance`` (for a guardrail, the
        relative change in the wrong direction the team accepts).

    The primary metric is better, worse or unclear by its interval; a guardrail fails
    when it moves the wrong way by more than its tolerance and its interval excludes 0.
    Launch is defensible only with a better primary and no failed guardrail; rebuild
    when the primary is worse, or unclear next to a failed guardrail; iterate unless
    the result is a clean win. Each needs a reason that actually decides it.
    """
    require_answer(decision, "decision")
    require_answer(reasons, "reasons")
    table = _read_results(results)
    require(isinstance(decision, str),
            f"`decision` should be one of {list(DECISIONS)}; got {type(decision).__name__}.")
    choice = decision.strip().lower()
    require(choice in DECISIONS,
            f"`decision` = {decision!r}: answer one of {list(DECISIONS)}.")
    cited = [reasons] if isinstance(reasons, str) else list(reasons) \
        if isinstance(reasons, Iterable) else None
    require(bool(cited) and all(isinstance(r, str) for r in cited),
            "`reasons` should be the name of a metric of the table, or a list of names.")
    unknown = [r for r in cited if r not in table.index]
    require(not unknown, f"`reasons` names {unknown}, which are not rows of the table; "
            f"pick from {list(table.index)}.")

    primary = str(table.index[table["role"] == "primary"][0])
    outcome = primary_outcome(table)
    failed = failed_guardrails(table)
    p_row = table.loc[primary]
    p_text = f"{primary} moved {_percent(p_row)}"
    f_text = "; ".join(f"{g} moved {_percent(table.loc[g])} against a tolerance of "
                       f"{table.loc[g, 'tolerance']:.0%}" for g in failed)

    if outcome == "better" and not failed:
        defensible = {"launch": {primary}}
    elif outcome == "better":
        defensible = {"iterate": set(failed)}
    elif outcome == "unclear" and not failed:
        defensible = {"iterate": {primary}}
    elif outcome == "unclear":
        defensible = {"iterate": {primary, *failed}, "rebuild": set(failed)}
    else:
        defensible = {"rebuild": {primary}, "iterate": {primary}}

    if choice not in defensible:
        why = {
            "launch": (f"launching needs the primary metric to be better with its whole "
                       f"interval above 0 and no guardrail broken. Here {p_text}"
                       + (f", and {f_text}." if failed else ".")),
            "iterate": (f"the result is a clean win: {p_text}, and every guardrail held. "
                        "The rule written before the test says launch; testing again "
                        "delays a measured gain (keep watching it after launch)."),
            "rebuild": (f"nothing says the approach is wrong: {p_text}"
                        + (f", and the failed guardrail ({f_text}) is a specific problem to "
                           "fix and test again." if failed else
                           ". An interval across 0 means the test could not tell; more "
                           "traffic or a longer test answers that, not a new model.")),
        }[choice]
        raise CheckFailed(f"`decision` = {choice!r} is hard to defend: {why}")
    deciding = defensible[choice]
    secondary = [r for r in cited if table.loc[r, "role"] == "secondary"]
    require(bool(deciding & set(cited)),
            f"{choice!r} can be defended here, but not by {cited}: "
            + (f"{secondary} are secondary metrics, which explain a result but do not "
               "decide it. " if secondary else "those metrics did not decide it. ")
            + f"Cite {sorted(deciding)}: {p_text}" + (f"; {f_text}." if failed else "."))
    others = sorted(set(defensible) - {choice})
    alternatives = {
        ("iterate", "worse"): "the primary metric got worse, but if the cause is known and "
                              "fixable (for example a calibration error) a fixed model can be "
                              "tested again.",
        ("iterate", "unclear"): "with a specific, fixable cause for the broken guardrail, fix "
                                "it and test again.",
        ("rebuild", "unclear"): "the model showed no gain and broke a guardrail; going back "
                                "to modelling is a fair call.",
        ("rebuild", "worse"): "the model lost on the metric the test was for; going back to "
                              "modelling is a fair call.",
    }
    also = "".join(f" {other.capitalize()} would also be defensible: "
                   f"{alternatives[other, outcome]}" for other in others)
    text = {
        "launch": f"launch: {p_text} and every guardrail held, which is what the rule "
                  "written before the test asked for.",
        "iterate": f"iterate: {p_text}"
                   + (f"; {f_text}" if failed else "")
                   + (". The interval includes 0, so the test could not tell: size a longer "
                      "or larger test for the lift you care about" if outcome == "unclear"
                      else ". Fix the cause and test again")
                   + (", and fix what broke the guardrail first." if failed else "."),
        "rebuild": f"rebuild: {p_text}" + (f"; {f_text}" if failed else "")
                   + ". Go back to the model (its features, its objective, its calibration) "
                     "and find out why before spending more traffic.",
    }[choice]
    passed(text + also)
