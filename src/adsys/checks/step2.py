"""Auto-checks for the Step 2 lab (``notebooks/02_scale``).

Each check recomputes the answer from the same measurements the learner used
(they differ from machine to machine), compares, and when the answer is wrong
recognises the usual mistakes: a mean instead of a percentile, milliseconds
mixed with seconds, the average load instead of the peak, no utilization headroom.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from adsys.checks import (
    CheckFailed,
    as_number,
    explain_known_mistake,
    how_far,
    passed,
    require,
    require_answer,
)

PERCENTILE_METHODS = ("linear", "lower", "higher", "nearest", "midpoint", "inverted_cdf")


def _close(a: float, b: float, rtol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)


def _timings(name: str, values: object) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 timings; got shape "
                         f"{array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must hold finite, non-negative timings")
    return array


def p99_latency(p99_ms: object, timings_ns: object) -> None:
    """Check the 99th-percentile latency, in milliseconds, of repeated timings.

    Parameters
    ----------
    p99_ms : float
        The learner's p99, in milliseconds.
    timings_ns : array-like of float
        Time of each repeated request, in nanoseconds (wall clock from
        ``time.perf_counter_ns`` or CPU time from ``time.thread_time_ns``).
    """
    got = as_number(p99_ms, "p99_ms")
    ms = _timings("timings_ns", timings_ns) / 1e6
    low, high = (float(np.percentile(ms, 99, method=m)) for m in ("lower", "higher"))
    want = float(np.percentile(ms, 99))
    if low * (1 - 1e-9) <= got <= high * (1 + 1e-9):
        passed(f"p99 = {got:.2f} ms: 99% of these requests finished within it. The median is "
               f"{np.median(ms):.2f} ms and the mean {ms.mean():.2f} ms; a caller's timeout "
               "is set on the tail, not on either of those.")
        return
    mistakes = [
        (ms.mean(), "this is the mean. The mean hides the slow requests that cause timeouts; "
         "take the 99th percentile, `np.percentile(x, 99)`."),
        (float(np.median(ms)), "this is the median (p50), the typical request. The budget is "
         "about the slow ones: take the 99th percentile, `np.percentile(x, 99)`."),
        (ms.max(), "this is the maximum (the slowest single run), which depends on one unlucky "
         "request. Take the 99th percentile, `np.percentile(x, 99)`."),
        (want * 1e6, "this looks like nanoseconds: the `_ns` clocks count nanoseconds, so "
         "divide by 1e6 to get milliseconds."),
        (want * 1e3, "this looks like microseconds: divide nanoseconds by 1e6 (not 1e3) to get "
         "milliseconds."),
        (want / 1e3, "this looks like seconds: give the answer in milliseconds (nanoseconds "
         "divided by 1e6)."),
        (float(np.percentile(ms, 0.99)), "`np.percentile(x, 0.99)` is the 0.99th percentile, "
         "almost the fastest run: `np.percentile` takes percent (99), `np.quantile` takes a "
         "fraction (0.99)."),
        (float(np.percentile(ms, 1)), "this is the 1st percentile, the fast end. p99 is the "
         "value that 99% of the timings are below."),
        (ms.mean() + 2.326 * ms.std(), "you assumed the timings are normally distributed "
         "(mean + 2.33 standard deviations). Latency has a long right tail, so the normal "
         "formula misplaces it: take the empirical percentile of the timings."),
    ]
    explain_known_mistake("p99_ms", got, mistakes, lambda a, b: _close(a, b, rtol=1e-3))
    raise CheckFailed(
        f"`p99_ms` = {got:.6g} is {how_far(got, want)} for the 99th percentile of these "
        "timings. Convert `timings_ns` to milliseconds (divide by 1e6), then take "
        "`np.percentile(..., 99)`.")


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return float(value)


def cores_needed(cores_1m: object, avg_qps: float, cpu_ms_per_request: float,
                 peak_to_mean: float, utilization: float) -> None:
    """Check the cores needed to serve a load at a target utilization.

    The reference is ``avg_qps * peak_to_mean * cpu_ms_per_request / 1000 /
    utilization``; rounding up to a whole core is accepted too.

    Parameters
    ----------
    cores_1m : float
        The learner's answer: cores for the given load.
    avg_qps : float
        Average requests per second (> 0).
    cpu_ms_per_request : float
        CPU time per request, in milliseconds (> 0).
    peak_to_mean : float
        Ratio of the busiest hour's traffic to the day's average (>= 1).
    utilization : float
        Target CPU utilization at peak, in (0, 1].
    """
    got = as_number(cores_1m, "cores_1m")
    qps = _positive("avg_qps", avg_qps)
    cpu_s = _positive("cpu_ms_per_request", cpu_ms_per_request) / 1000
    peak = _positive("peak_to_mean", peak_to_mean)
    if peak < 1:
        raise ValueError(f"peak_to_mean must be >= 1 (the peak is at least the mean); got {peak}")
    util = _positive("utilization", utilization)
    if util > 1:
        raise ValueError(f"utilization must be in (0, 1]; got {util}")
    want = qps * peak * cpu_s / util
    if want * (1 - 1e-6) <= got <= math.ceil(want * (1 - 1e-12)) + 1e-9:
        passed(f"{want:,.1f} cores: {qps * peak:,.0f} requests per second at peak x "
               f"{cpu_s * 1000:.3g} ms of CPU each = {qps * peak * cpu_s:,.1f} busy cores, "
               f"divided by {util:.0%} utilization to leave headroom. That is "
               f"{math.ceil(want / 16):,} machines of 16 cores.")
        return
    require(not (got < want and _close(got, math.floor(want), rtol=1e-9)),
            f"`cores_1m` = {got:g} is rounded down: with {want:.2f} cores of work, {got:g} cores "
            "cannot keep up. Round up (or keep the fraction).")
    units = [(1.0, None), (1000.0, "the cost was used as seconds, not milliseconds (divide "
                                    "ms by 1000 to get CPU-seconds)"),
             (1e-3, "milliseconds were converted to seconds twice (the answer is 1000x too "
                    "small)")]
    peaks = [(1.0, None), (1 / peak, f"the average load was used instead of the peak "
                                     f"(multiply by the peak-to-mean ratio, {peak:g})")]
    utils = [(1.0, None), (util, f"there is no utilization headroom (divide by the target "
                                 f"utilization, {util:g}; machines run at 100% only on paper)"),
             (util * util, f"the utilization was multiplied instead of divided (dividing by "
                           f"{util:g} adds headroom; multiplying removes capacity)")]
    for u_factor, u_text in units:
        for p_factor, p_text in peaks:
            for t_factor, t_text in utils:
                texts = [t for t in (u_text, p_text, t_text) if t]
                if not texts:
                    continue
                wrong = want * u_factor * p_factor * t_factor
                if _close(got, wrong, rtol=1e-3) or got == math.ceil(wrong):
                    raise CheckFailed(f"`cores_1m` = {got:,.6g}: " + "; and ".join(texts) + ".")
    raise CheckFailed(
        f"`cores_1m` = {got:,.6g} is {how_far(got, want)}. Cores = average QPS x "
        "peak-to-mean ratio x CPU-seconds per request / target utilization.")


def _by_count(runs: pd.DataFrame, model: str | None, column: str,
              statistic: str = "linear") -> pd.Series:
    """Latency per candidate count: p99 with a percentile method, or the median or mean."""
    rows = runs if model is None else runs[runs["model"] == model]
    grouped = rows.groupby("candidates")[column]
    if statistic == "median":
        return grouped.median()
    if statistic == "mean":
        return grouped.mean()
    return grouped.apply(lambda x: float(np.percentile(x, 99, method=statistic)))


def _largest_fitting(latency: pd.Series, budget: float) -> set[int]:
    """Largest count within budget, and the last count before the first violation."""
    fits = latency <= budget
    counts = [int(c) for c in latency.index]
    largest = max((c for c, ok in zip(counts, fits, strict=True) if ok), default=0)
    before_first_miss = 0
    for count, ok in zip(counts, fits, strict=True):
        if not ok:
            break
        before_first_miss = count
    return {largest, before_first_miss}


def max_candidates(max_candidates: object, runs: pd.DataFrame, model: str,
                   budget_ms: float, column: str = "wall_ms") -> None:
    """Check the largest measured candidate count whose p99 latency fits a budget.

    Parameters
    ----------
    max_candidates : int
        The learner's answer: a candidate count from ``runs`` (0 if none fits).
    runs : pandas.DataFrame
        One row per timed request, with columns ``model``, ``candidates`` and
        ``column`` (latency in milliseconds).
    model : str
        The model the question is about.
    budget_ms : float
        The p99 latency budget in milliseconds.
    column : str
        The latency column of ``runs``.
    """
    got = as_number(max_candidates, "max_candidates")
    budget = _positive("budget_ms", budget_ms)
    if not isinstance(runs, pd.DataFrame) or not {"model", "candidates", column} <= set(runs):
        raise ValueError(f"runs must be a DataFrame with columns model, candidates, {column}")
    if model not in set(runs["model"]):
        raise ValueError(f"model must be one of {sorted(set(runs['model']))}; got {model!r}")
    p99 = _by_count(runs, model, column)
    accepted = set().union(*(_largest_fitting(_by_count(runs, model, column, m), budget)
                             for m in PERCENTILE_METHODS))
    table = ", ".join(f"{int(c)}: {v:.2f} ms" for c, v in p99.items())
    want = max(_largest_fitting(p99, budget))
    if got in accepted:
        if got == 0:
            passed(f"no measured count fits: even {int(p99.index[0])} candidates take "
                   f"{p99.iloc[0]:.2f} ms at p99, over the {budget:g} ms budget. This model "
                   "needs a faster machine, a smaller model or fewer features.")
        else:
            passed(f"{int(got)} candidates: p99 by count is {table}, so {int(got)} is the "
                   f"largest count within {budget:g} ms. Scoring more needs a funnel (Step 5) "
                   "or a cheaper model.")
        return
    counts = [int(c) for c in p99.index]
    if got not in counts and got != 0:
        near_latency = any(_close(got, v, rtol=1e-3) for v in p99)
        require(not near_latency,
                f"`max_candidates` = {got:g} is a latency in ms; the answer is a candidate "
                f"count, one of {counts}.")
        raise CheckFailed(f"`max_candidates` = {got:g} is not one of the measured counts "
                          f"{counts}; pick the largest of them whose p99 is at most "
                          f"{budget:g} ms (or 0 if none is).")
    for statistic, name in (("median", "median (p50)"), ("mean", "mean")):
        typical = _by_count(runs, model, column, statistic)
        require(got not in _largest_fitting(typical, budget) - accepted,
                f"`max_candidates` = {int(got)} fits the budget with the {name} latency, but "
                f"the budget applies to the p99: {table}.")
    pooled = _by_count(runs, None, column)
    require(got not in _largest_fitting(pooled, budget) - accepted,
            f"`max_candidates` = {int(got)} comes from the timings of every model together; "
            f"keep only the rows of model {model!r}.")
    if got > 0 and p99.loc[int(got)] > budget:
        raise CheckFailed(f"`max_candidates` = {int(got)} breaks the budget: its p99 is "
                          f"{p99.loc[int(got)]:.2f} ms > {budget:g} ms. p99 by count: {table}.")
    raise CheckFailed(f"`max_candidates` = {int(got)}, but {want} candidates fit too. p99 by "
                      f"count: {table}; the budget is {budget:g} ms.")


def _options(runs: pd.DataFrame, log_loss: pd.Series, budget: float,
             column: str) -> pd.DataFrame:
    """Every measured (model, candidates) pair: its p99, its median, whether it fits the
    budget (by the linear p99, or only by some other percentile method: "on the
    edge"), and whether another pair that fits by the linear p99 dominates it. Edge
    pairs are accepted when nothing dominates them, but never dominate another pair:
    a pair plainly within budget must not be rejected for one that barely fits."""
    rows = []
    for (model, count), wall in runs.groupby(["model", "candidates"])[column]:
        p99s = [float(np.percentile(wall, 99, method=m)) for m in PERCENTILE_METHODS]
        rows.append({"model": model, "candidates": int(count), "p99": p99s[0],
                     "fits": p99s[0] <= budget, "fits_any": min(p99s) <= budget,
                     "median": float(wall.median()), "log_loss": float(log_loss[model])})
    options = pd.DataFrame(rows)
    # Most candidates first, then the lowest log loss: the strongest dominating pair.
    fitting = options[options["fits"]].sort_values(["candidates", "log_loss"],
                                                       ascending=[False, True])
    options["dominated_by"] = [
        next(((o.model, o.candidates) for o in fitting.itertuples()
              if o.candidates >= row.candidates and o.log_loss <= row.log_loss
              and (o.candidates > row.candidates or o.log_loss < row.log_loss)), None)
        for row in options.itertuples()]
    return options


def model_and_candidates(choice: object, runs: pd.DataFrame, log_loss: object,
                         budget_ms: float, column: str = "wall_ms") -> None:
    """Judge a (model, candidate count) choice against a p99 latency budget.

    Defensible: the pair's measured p99 fits the budget (by any usual percentile
    method), and no other pair that fits (by the linear p99) scores at least as many
    candidates with a log loss at least as low (one of the two strictly better).
    Between defensible pairs the choice is a trade-off (more candidates with a weaker
    model, or fewer with a stronger one behind a cheap first stage); the check names
    them all.

    Parameters
    ----------
    choice : (str, int)
        The learner's model name and candidate count (one of the measured counts).
    runs : pandas.DataFrame
        One row per timed request: ``model``, ``candidates`` and ``column`` (ms).
    log_loss : pandas.Series or dict
        Held-out log loss of each model in ``runs``.
    budget_ms : float
        The p99 latency budget in milliseconds.
    column : str
        The latency column of ``runs``.
    """
    require_answer(choice, "choice")
    budget = _positive("budget_ms", budget_ms)
    if not isinstance(runs, pd.DataFrame) or not {"model", "candidates", column} <= set(runs):
        raise ValueError(f"runs must be a DataFrame with columns model, candidates, {column}")
    log_loss = pd.Series(log_loss, dtype=float)
    missing = sorted(set(runs["model"]) - set(log_loss.index))
    if missing:
        raise ValueError(f"log_loss has no value for models {missing}")
    models = sorted(set(runs["model"]))
    counts = sorted(int(c) for c in set(runs["candidates"]))
    require(isinstance(choice, tuple | list) and len(choice) == 2,
            f"`choice` should be a pair (model name, candidates), e.g. ({models[0]!r}, "
            f"{counts[0]}); got {choice!r}.")
    model, count = choice
    if model not in models and isinstance(count, str) and count in models:
        raise CheckFailed(f"`choice` is in the wrong order: write ({count!r}, {model}), the "
                          "model name first, then the candidate count.")
    require(model in models, f"`choice` names model {model!r}; pick one of {models}.")
    count = as_number(count, "candidates")
    require(count in counts, f"`choice` scores {count:g} candidates; pick one of the measured "
                             f"counts {counts}.")
    options = _options(runs, log_loss, budget, column)
    frontier = options[options["fits_any"] & options["dominated_by"].isna()]
    menu = "; ".join(f"{o.model} at {o.candidates:,} (p99 {o.p99:.1f} ms"
                     f"{'' if o.fits else ', on the edge'}, log loss {o.log_loss:.5f})"
                     for o in frontier.itertuples())
    mine = options[(options["model"] == model) & (options["candidates"] == count)].iloc[0]
    if not mine["fits_any"]:
        largest = options[(options["model"] == model) & options["fits"]]["candidates"]
        reach = (f"{model} fits up to {largest.max():,} candidates" if len(largest)
                 else f"{model} fits at no measured count")
        median_note = (" It fits at the median, but the budget is on the p99: one request "
                       "in a hundred would time out." if mine["median"] <= budget else "")
        raise CheckFailed(f"{model} at {int(count):,} candidates has a p99 of "
                          f"{mine['p99']:.1f} ms, over the {budget:g} ms budget: its "
                          f"timeouts would show no ad.{median_note} {reach}. Defensible "
                          f"choices on this machine: {menu}.")
    better = mine["dominated_by"]
    if better is not None:
        other, other_count = better
        why = (f"{model} itself still fits at {other_count:,} candidates: scoring fewer "
               "than the budget allows drops ads for nothing" if other == model else
               f"{other} fits at {other_count:,} candidates with a lower log loss "
               f"({log_loss[other]:.5f} against {mine['log_loss']:.5f})")
        raise CheckFailed(f"{model} at {int(count):,} candidates fits the budget, but "
                          f"{why}. Defensible choices on this machine: {menu}.")
    most = frontier["candidates"].max()
    if count == most:
        trade = ("it scores the most candidates, so no good ad is left unscored, at the "
                 "price of a weaker model than the alternatives")
    else:
        trade = (f"a stronger model on fewer candidates: someone must pick which "
                 f"{int(count):,} of them it scores, a cheap first stage (the funnel of "
                 "Step 5), and ads that stage drops are lost")
    within = ("within" if mine["fits"] else "on the edge of (it fits by another percentile "
              "method)")
    passed(f"{model} at {int(count):,} candidates is defensible: p99 {mine['p99']:.1f} ms "
           f"{within} {budget:g} ms, log loss {mine['log_loss']:.5f}; {trade}. Every "
           f"defensible choice on this machine: {menu}. The rest either break the budget "
           "or are beaten on both counts.")
