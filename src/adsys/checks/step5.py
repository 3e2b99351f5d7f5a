"""Auto-checks for the Step 5 lab (``notebooks/05_funnel``).

Each check recomputes the answer from the learner's inputs (recall with
:func:`adsys.metrics.recall_at_k`, machines with the capacity formula of Step 2) and
recognises the usual mistakes. :func:`choose_k` is a judgment check: it accepts any K
that fits the budget without giving away revenue for nothing, and explains the trade.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.checks import CheckFailed, as_number, explain_known_mistake, passed, require
from adsys.metrics import recall_at_k

NOISE = 0.10
"""Relative slack on measured costs: a K within 10% of the budget is not ruled out."""

REVENUE_SLACK = 0.005
"""Revenue a defensible K may leave on the table against the best affordable K."""


def _close(a: float, b: float, rtol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)


def recall_by_hand(blind_recall: object, reference_scores: ArrayLike,
                   candidate_scores: ArrayLike, groups: ArrayLike, k: int, m: int) -> None:
    """Check a recall@K computed without :func:`adsys.metrics.recall_at_k`.

    Parameters
    ----------
    blind_recall : float
        The learner's mean, over groups, of the share of each group's top ``m`` items
        by ``reference_scores`` found in its top ``k`` by ``candidate_scores``.
    reference_scores, candidate_scores, groups : array-like
        One entry per (group, item) row.
    k, m : int
        Items the cheap stage keeps, and items of the reference that matter.
    """
    got = as_number(blind_recall, "blind_recall")
    reference = np.asarray(reference_scores, dtype=float)
    candidate = np.asarray(candidate_scores, dtype=float)
    group = np.asarray(groups)
    want = recall_at_k(reference, candidate, group, k, m)
    if _close(got, want, rtol=1e-6):
        passed(f"recall@{k} = {want:.1%}: on average {want * m:.2f} of each request's "
               f"top {m} by the heavy model survive the cheap stage's top {k}.")
        return
    frame = pd.DataFrame({"group": group, "reference": reference, "candidate": candidate})
    by_group = frame.groupby("group")
    ref_rank = by_group["reference"].rank(ascending=False, method="first")
    cand_rank = by_group["candidate"].rank(ascending=False, method="first")
    top = ref_rank <= m
    found = (cand_rank <= k) & top
    pooled = float(found.sum() / top.sum())
    mistakes = [
        (100 * want, "this is the recall in percent; give a fraction between 0 and 1."),
        (1 - want, "this is the share of the heavy top items the cheap stage *loses*; "
         "recall is the share it keeps."),
        (recall_at_k(reference, candidate, group, m, k), f"k and m are swapped: keep the top "
         f"{k} by the cheap score, and look for the top {m} of the heavy score in them."),
        (recall_at_k(candidate, reference, group, k, m), "the two scores are swapped: the "
         "reference (what should be found) is the heavy model's eCPM; the cheap stage's "
         "score decides what is kept."),
        (float(found.groupby(frame["group"]).sum().mean() / k), f"this divides by k: that is "
         f"precision@{k} (the share of kept items that are top {m}), not recall."),
        (float(found.sum() / len(frame)), "this divides by every row; divide each request's "
         f"hits by its top {m} (or fewer when it has fewer items), then average."),
        (pooled, "this pools the hits of every request before dividing; recall@K is "
         "averaged over requests, each request counting once."),
    ]
    explain_known_mistake("blind_recall", got, mistakes, lambda a, b: _close(a, b, 1e-6))
    require(0 <= got <= 1, f"`blind_recall` = {got:.6g} is not a share: recall is between "
            "0 and 1.")
    likely = (f"a cheap top of more than {k} pairs?" if got > want else
              f"a cheap top of fewer than {k} pairs, or a request with fewer than {m} "
              f"pairs divided by {m}?")
    raise CheckFailed(
        f"`blind_recall` = {got:.6g} is too {'high' if got > want else 'low'} ({likely}). "
        f"For each request, rank its pairs by the heavy score and by the cheap "
        f"score (ties by position), count how many of the heavy top {m} have a cheap rank "
        f"of at most {k}, divide by the size of that top (at most {m}), and average over "
        "requests.")


def machines_needed(machines_1m: object, cpu_ms_per_request: float, avg_qps: float,
                    peak_to_mean: float, utilization: float, cores_per_machine: int) -> None:
    """Check the machines needed to serve a load, from a measured CPU cost per request.

    The reference is ``ceil(avg_qps * peak_to_mean * cpu_ms / 1000 / utilization /
    cores_per_machine)``; one spare machine on top is accepted too.
    """
    got = as_number(machines_1m, "machines_1m")
    for name, value in (("cpu_ms_per_request", cpu_ms_per_request), ("avg_qps", avg_qps),
                        ("peak_to_mean", peak_to_mean), ("utilization", utilization),
                        ("cores_per_machine", cores_per_machine)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number; got {value!r}")
    if peak_to_mean < 1 or utilization > 1:
        raise ValueError("peak_to_mean must be >= 1 and utilization in (0, 1]")
    cores = avg_qps * peak_to_mean * cpu_ms_per_request / 1000 / utilization
    exact = cores / cores_per_machine
    want = math.ceil(exact - 1e-9)
    if want - 1e-9 <= got <= want + 1 + 1e-9 and got == math.floor(got):
        spare = " (with one spare machine for failures)" if got == want + 1 else ""
        passed(f"{got:,.0f} machines{spare}: {avg_qps * peak_to_mean:,.0f} requests per "
               f"second at peak x {cpu_ms_per_request:.4g} ms each = "
               f"{cores * utilization:,.1f} busy cores, {cores:,.1f} at {utilization:.0%} "
               f"utilization, over {cores_per_machine} cores per machine.")
        return
    require(not _close(got, exact, 1e-3) or exact == want,
            f"`machines_1m` = {got:,.2f}: round up to whole machines; part of a machine "
            "cannot be bought, and rounding down leaves the peak unserved.")
    require(got != math.floor(exact) or exact == want,
            f"`machines_1m` = {got:,.0f} is rounded down: {exact:,.2f} machines of work do not "
            f"fit in {got:,.0f}. Round up.")
    mistakes = [
        (math.ceil(exact / peak_to_mean - 1e-9), "this sizes the fleet for the average load; "
         f"the evening peak is {peak_to_mean:.2f} times higher. Multiply by the peak-to-mean "
         "ratio."),
        (math.ceil(exact * utilization - 1e-9), f"this runs every core at 100%; divide by "
         f"the target utilization ({utilization:g}) to keep headroom for spikes and failures."),
        (math.ceil(exact * 1000 - 1e-9), "the cost was used as seconds, not milliseconds: "
         "divide milliseconds by 1000 to get CPU-seconds per request."),
        (math.ceil(cores - 1e-9), f"this is the number of cores; divide by "
         f"{cores_per_machine} cores per machine."),
        (math.ceil(exact * utilization * utilization - 1e-9), "the utilization was multiplied "
         "instead of divided."),
    ]
    explain_known_mistake("machines_1m", got, mistakes, lambda a, b: a in (b, b + 1))
    raise CheckFailed(
        f"`machines_1m` = {got:,.6g} is too {'many' if got > want else 'few'} machines of "
        f"{cores_per_machine} cores. Cores = average QPS x peak-to-mean x CPU-seconds per "
        "request / utilization; machines = cores / cores per machine, rounded up.")


def choose_k(chosen_k: object, options: pd.DataFrame, budget_ms: float) -> None:
    """Judge a K chosen under a per-request budget for the scoring stages.

    Parameters
    ----------
    chosen_k : int
        The learner's K; must be a row of ``options``.
    options : pd.DataFrame
        Indexed by K, with columns ``"scoring ms"`` (measured cost per request) and
        ``"revenue ratio"`` (revenue kept, as a share of scoring every eligible ad).
    budget_ms : float
        The budget for ``"scoring ms"``.

    Any K whose cost is within the budget (or within :data:`NOISE` above it: the costs
    are noisy measurements) and whose revenue is within :data:`REVENUE_SLACK` of the
    best K within the budget is defensible. When no K is strictly within the budget,
    the cheapest K is defensible too; when none is even within the noise, only the
    cheapest is.
    """
    got = as_number(chosen_k, "chosen_k")
    if not isinstance(options, pd.DataFrame) or not {"scoring ms", "revenue ratio"} <= set(
            options.columns):
        raise ValueError("options must be a DataFrame with columns 'scoring ms' and "
                         "'revenue ratio', indexed by K")
    if not (isinstance(budget_ms, int | float | np.number) and budget_ms > 0):
        raise ValueError(f"budget_ms must be a positive number; got {budget_ms!r}")
    ks = [int(k) for k in options.index]
    require(got == int(got) and int(got) in ks,
            f"`chosen_k` = {got:g} was not measured; choose one of the K in `options`: {ks}.")
    k = int(got)
    cost = options["scoring ms"].astype(float)
    revenue = options["revenue ratio"].astype(float)
    cost.index, revenue.index = ks, ks
    strict = cost <= budget_ms
    fits = cost <= budget_ms * (1 + NOISE)
    cheapest = int(cost.idxmin())
    if not fits.any():
        require(k == cheapest,
                f"no K fits a budget of {budget_ms:.4f} ms; the defensible move is the "
                f"cheapest K ({cheapest}) and a conversation about the budget or a cheaper "
                "model, not a K that breaks it.")
        passed(f"K = {k}: nothing fits the budget, so you took the cheapest option "
               f"({cost[k]:.4f} ms, {revenue[k]:.1%} of the revenue). Say so, and ask for a "
               "larger budget or cheaper code.")
        return
    best = int(revenue[strict if strict.any() else fits].idxmax())
    require(bool(fits[k]),
            f"K = {k} costs {cost[k]:.4f} ms per request, {cost[k] / budget_ms:.1f} times the "
            f"budget of {budget_ms:.4f} ms. It keeps {revenue[k]:.1%} of the revenue, but "
            f"the budget is a constraint, not a target: within it, K = {best} keeps "
            f"{revenue[best]:.1%}.")
    require(revenue[k] >= revenue[best] - REVENUE_SLACK or (k == cheapest and not strict.any()),
            f"K = {k} fits the budget ({cost[k]:.4f} of {budget_ms:.4f} ms) but keeps only "
            f"{revenue[k]:.1%} of the revenue; K = {best} also fits and keeps "
            f"{revenue[best]:.1%}. Leaving {revenue[best] - revenue[k]:.1%} of the revenue "
            "to save compute you already paid for is hard to defend.")
    over = " (slightly over the budget: within measurement noise, but say so)" \
        if cost[k] > budget_ms else ""
    passed(f"K = {k}: {cost[k]:.4f} ms of scoring per request{over} against a budget of "
           f"{budget_ms:.4f} ms, keeping {revenue[k]:.1%} of the revenue of scoring every "
           f"ad. A larger K buys revenue with latency and machines; a smaller one saves "
           f"compute the budget already allows and gives up revenue.")
