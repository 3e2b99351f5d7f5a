"""Auto-checks for the Step 1 lab (``notebooks/01_clarify``).

Each check recomputes the answer from the same inputs the learner used, compares,
and when the answer is wrong recognises the usual mistakes and explains them.
"""

from __future__ import annotations

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

HOUR = 3600.0


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-12))


def _by_position(answer: object, n_slots: int) -> pd.Series:
    """The answer as a float Series indexed by position, or a CheckFailed saying why not."""
    if isinstance(answer, dict):
        answer = pd.Series(answer)
    if np.ndim(answer) == 0:
        raise CheckFailed(
            "`ctr_by_position` is a single number: that is the CTR of the whole log (the "
            "mean of `clicked` over every row). Group the impressions by `position` first, "
            "so there is one CTR per slot.")
    if isinstance(answer, pd.DataFrame):
        require(answer.shape[1] == 1,
                "`ctr_by_position` is a table with several columns; keep only the CTR column "
                "(a Series indexed by position).")
        answer = answer.iloc[:, 0]
    if not isinstance(answer, pd.Series):
        values = np.asarray(answer, dtype=float).ravel()
        answer = pd.Series(values, index=np.arange(1, len(values) + 1))
    require(len(answer) == n_slots,
            f"`ctr_by_position` has {len(answer)} values; the log has {n_slots} positions "
            f"(1 to {n_slots}), so give one CTR per position.")
    try:
        index = [int(i) for i in answer.index]
    except (TypeError, ValueError):
        raise CheckFailed(f"`ctr_by_position` should be indexed by the positions 1 to {n_slots}; "
                          f"got index {list(answer.index)}.") from None
    require(index != list(range(n_slots)),
            "`ctr_by_position` is indexed 0, 1, 2...: positions in the log start at 1 (slot 1 "
            "is the top of the page). Keep the `position` values as the index (no "
            "`reset_index(drop=True)`, no counting from 0).")
    require(sorted(index) == list(range(1, n_slots + 1)),
            f"`ctr_by_position` should be indexed by position 1 to {n_slots}; got index "
            f"{index}.")
    return pd.Series(answer.to_numpy(dtype=float), index=index).sort_index()


def position_ctr(ctr_by_position: object, log: pd.DataFrame) -> None:
    """Check the click-through rate of each position computed from the impression log.

    Parameters
    ----------
    ctr_by_position : pandas.Series
        CTR (a fraction) indexed by position 1..n_slots.
    log : pandas.DataFrame
        The impression log, with columns ``position``, ``clicked`` and ``true_p``.
    """
    require_answer(ctr_by_position, "ctr_by_position")
    grouped = log.groupby("position")
    reference = grouped["clicked"].mean().astype(float)
    answer = _by_position(ctr_by_position, len(reference))
    got, want = answer.to_numpy(), reference.to_numpy()
    if _close(got, want):
        ratio = ", ".join(f"{got[k] / got[0]:.2f}" for k in range(1, len(got)))
        passed(f"CTR by position is {', '.join(f'{v:.2%}' for v in got)}. Relative to the "
               f"top slot, the lower slots get {ratio} of its CTR: that is the position effect.")
        return
    clicks = grouped["clicked"].sum().to_numpy(dtype=float)
    mistakes = [
        (want * 100, "these look like percentages. Give CTR as a fraction (0.02, not 2)."),
        (grouped["true_p"].mean().to_numpy(), "you averaged `true_p`, the world's hidden click "
         "probability. A real log never has it: measure CTR from what happened, `clicked`."),
        (clicks, "these are click counts. CTR is clicks divided by impressions in that position."),
        (clicks / len(log), "you divided each position's clicks by all impressions of the log; "
         "divide by the impressions shown in that position (the mean of `clicked` per group)."),
        (clicks / clicks.sum(), "this is each position's share of all clicks, not its CTR: divide "
         "by that position's impressions, not by the total number of clicks."),
    ]
    explain_known_mistake("ctr_by_position", got, mistakes, _close)
    off = [f"position {p}: {how_far(g, w)}"
           for p, g, w in zip(reference.index, got, want, strict=True)
           if not _close(np.array([g]), np.array([w]))]
    raise CheckFailed(
        f"`ctr_by_position` is not the CTR of each position ({'; '.join(off)}). Check the "
        "denominator: group `log` by `position` and take the mean of `clicked` in each "
        "group, the clicks in that position divided by the impressions shown there.")


def ecpm_slots(slot_order: object, candidates: pd.DataFrame, n_slots: int = 3) -> None:
    """Check which candidate ads fill the slots, best first, when ranked by eCPM.

    Parameters
    ----------
    slot_order : list of int
        The ``ad_id`` of the ad in slot 1, slot 2, ... (``n_slots`` of them).
    candidates : pandas.DataFrame
        One request's candidates, with columns ``ad_id``, ``bid`` and ``pctr``.
    n_slots : int
        Number of slots on the page.
    """
    require_answer(slot_order, "slot_order")
    if n_slots < 1 or n_slots > len(candidates):
        raise ValueError(f"n_slots must be in [1, {len(candidates)}]; got {n_slots}")
    require(np.ndim(slot_order) == 1,
            f"`slot_order` should be a list of {n_slots} ad ids, best slot first; got "
            f"{slot_order!r}.")
    got = [int(a) for a in np.asarray(slot_order).ravel()]
    require(len(got) == n_slots,
            f"`slot_order` has {len(got)} ad ids; the page has {n_slots} slots, so give "
            f"exactly {n_slots}, best slot first.")
    ids = candidates["ad_id"].to_numpy()
    bid, pctr = candidates["bid"].to_numpy(float), candidates["pctr"].to_numpy(float)

    def top(score: np.ndarray) -> list[int]:
        return [int(i) for i in ids[np.argsort(-score, kind="stable")[:n_slots]]]

    want = top(bid * pctr)
    if got == want:
        passed(f"slots 1-{n_slots} go to ads {want}, the highest expected revenue per "
               "impression (eCPM = 1000 x bid x pCTR, dollars per thousand impressions).")
        return
    if not set(got) <= set(ids.tolist()):
        row_numbers = set(range(len(candidates)))
        require(not set(got) <= row_numbers,
                "`slot_order` looks like row numbers of `candidates`; give the `ad_id` values "
                "of those rows instead.")
        raise CheckFailed(f"`slot_order` contains ids that are not candidates: "
                          f"{sorted(set(got) - set(ids.tolist()))}. Use the `ad_id` column.")
    require(got != top(pctr),
            "`slot_order` ranks the ads by pCTR alone. The auction ranks by expected revenue "
            "per impression, eCPM = 1000 x bid x pCTR: a likely click on an ad that pays "
            "little can be worth less than a less likely click on an ad that pays a lot.")
    require(got != top(bid),
            "`slot_order` ranks the ads by bid alone. A high bid earns nothing if nobody "
            "clicks: multiply each bid by the ad's pCTR and rank by that product (eCPM is "
            "1000 times it).")
    require(got != top(-bid * pctr),
            "`slot_order` starts from the lowest eCPM. Sort in descending order: the best ad "
            "takes slot 1.")
    require(set(got) != set(want),
            "`slot_order` has the right ads in the wrong order: slot 1 goes to the highest "
            "eCPM = 1000 x bid x pCTR, slot 2 to the next, and so on.")
    raise CheckFailed(
        "`slot_order` is not the eCPM ranking. Compute `1000 * bid * pctr` for every "
        f"candidate, sort it from high to low and take the `ad_id` of the first {n_slots} rows.")


def _labels(log: pd.DataFrame, clicks: pd.DataFrame, window: float, first: bool) -> np.ndarray:
    arrival = clicks.groupby("impression_id")["click_time"]
    arrival = arrival.min() if first else arrival.max()
    delay = arrival.reindex(log["impression_id"]).to_numpy() - log["time"].to_numpy()
    return (delay <= window).astype(int)  # NaN (no click) compares False


def attribution_labels(label_1h: object, log: pd.DataFrame, clicks: pd.DataFrame,
                       window_seconds: float = HOUR) -> None:
    """Check the 0/1 label of every impression under an attribution window.

    Parameters
    ----------
    label_1h : array-like of int or bool
        One label per row of ``log``, in the same order: 1 when a click on that
        impression arrived at most ``window_seconds`` after it, else 0.
    log : pandas.DataFrame
        The impression log, with columns ``impression_id``, ``time`` and ``clicked``.
    clicks : pandas.DataFrame
        The click stream (``World.click_stream``): ``impression_id``, ``click_time``.
    window_seconds : float
        Length of the attribution window in seconds.
    """
    require_answer(label_1h, "label_1h")
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive; got {window_seconds}")
    got = np.asarray(label_1h).ravel()
    require(got.dtype.kind in "biuf",
            f"`label_1h` should hold numbers 0 and 1 (or True/False); got values of type "
            f"{got.dtype}.")
    if len(got) > len(log):
        raise CheckFailed(
            f"`label_1h` has {len(got):,} labels for {len(log):,} impressions. Merging the "
            "log with the click stream duplicates the impressions that were clicked twice: "
            "drop duplicate clicks first (keep the first arrival of each impression_id).")
    require(len(got) == len(log),
            f"`label_1h` has {len(got):,} labels; give one per row of `log` ({len(log):,}), in "
            "the same order, with 0 for impressions that got no click.")
    require(not np.isnan(got.astype(float)).any(),
            "`label_1h` contains NaN: impressions without a click (no match in the click "
            "stream) are negatives, label 0.")
    require(set(np.unique(got).tolist()) <= {0, 1},
            "`label_1h` should only hold 0 and 1. A count of clicks above 1 means duplicate "
            "clicks were counted: a clicked impression is one positive, however many times the "
            "click was reported.")
    got = got.astype(int)
    want = _labels(log, clicks, window_seconds, first=True)
    if np.array_equal(got, want):
        late = int(log["clicked"].sum() - want.sum())
        passed(f"{int(want.sum()):,} positives out of {len(want):,} impressions; {late} "
               "true clicks arrived after the window and are labelled 0 here.")
        return
    require(not np.array_equal(got, log["clicked"].to_numpy(dtype=int)),
            "`label_1h` equals the `clicked` column: the world's truth, which includes clicks "
            "that arrive after the window. Label from the click stream: positive only if "
            "the click arrived within the window after the impression's time.")
    confusions = [
        (_labels(log, clicks, window_seconds / 60, True),
         "you used a window of 60 seconds: times are in seconds, so one hour is 3600."),
        (_labels(log, clicks, 24 * window_seconds, True),
         "you used a window of one day; this exercise's window is one hour (3600 seconds)."),
        (_labels(log, clicks, window_seconds, False),
         "you timed each click by its last report. A duplicate report arrives later than "
         "the click; use the first arrival of each impression_id."),
    ]
    for labels, explanation in confusions:
        require(not np.array_equal(got, labels), f"`label_1h`: {explanation}")
    raise CheckFailed(
        f"`label_1h` has {int(got.sum()):,} positives; with a {window_seconds:g}-second "
        f"window there should be {int(want.sum()):,} ({int((got != want).sum()):,} labels "
        "differ). Delay = first click_time of the impression minus its `time`; positive when "
        "the delay is at most the window.")


def _shares(window: float, delays: np.ndarray, times: np.ndarray,
            day_end: float) -> tuple[float, float]:
    """Share of clicks within ``window`` and share of impressions labelled by ``day_end``."""
    return float(np.mean(delays <= window)), float(np.mean(times + window <= day_end))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def attribution_window(window_seconds: object, delays: object, impression_times: object,
                       day_end: float = 86_400.0, min_captured: float = 0.9,
                       min_labelled: float = 0.8) -> None:
    """Judge a chosen attribution window against the measured delay curve.

    Any window is defensible if it captures at least ``min_captured`` of the clicks
    and leaves at least ``min_labelled`` of the day's impressions with a final label
    by ``day_end`` (when the nightly training job runs). The check says what the
    chosen window trades away on both sides.

    Parameters
    ----------
    window_seconds : float
        The learner's window, in seconds.
    delays : array-like of float
        Measured delay (seconds) from each clicked impression to its first click.
    impression_times : array-like of float
        Time (seconds) of every impression of the day.
    day_end : float
        Time of the nightly training job (end of the day), in seconds.
    min_captured, min_labelled : float in (0, 1)
        The team's requirements.
    """
    got = as_number(window_seconds, "window_seconds")
    delays = np.asarray(delays, dtype=float).ravel()
    times = np.asarray(impression_times, dtype=float).ravel()
    if delays.size == 0 or not np.all(np.isfinite(delays)) or np.any(delays < 0):
        raise ValueError("delays must be a non-empty array of finite, non-negative seconds")
    if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times > day_end):
        raise ValueError("impression_times must be a non-empty array of finite times before "
                         "day_end")
    for name, value in (("min_captured", min_captured), ("min_labelled", min_labelled)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1); got {value}")
    require(np.isfinite(got) and got > 0,
            f"`window_seconds` should be a positive number of seconds; got {got:g}.")
    shortest = float(np.quantile(delays, min_captured, method="higher"))
    ordered = np.sort(times)
    longest = float(day_end - ordered[int(np.ceil(min_labelled * len(ordered))) - 1])
    if shortest > longest:
        raise ValueError(f"no window meets both requirements on these data: capturing "
                         f"{min_captured:.0%} of clicks takes {_duration(shortest)}, but "
                         f"labelling {min_labelled:.0%} of impressions by the end of the day "
                         f"allows at most {_duration(longest)}")
    captured, labelled = _shares(got, delays, times, day_end)
    span = f"on this day, any window from about {_duration(shortest)} to {_duration(longest)}"
    costs = (f"{1 - captured:.1%} of clicks arrive later and become negatives (the model "
             f"learns a CTR about that much too low), and {1 - labelled:.0%} of the day's "
             "impressions, the last ones, wait for tomorrow night's training")
    if captured >= min_captured and labelled >= min_labelled:
        passed(f"a window of {_duration(got)} is defensible: {captured:.1%} of clicks arrive "
               f"within it and {labelled:.0%} of impressions are labelled by midnight. Its "
               f"cost: {costs}. A shorter window gives fresher labels and loses more clicks; "
               f"a longer one the reverse. Defensible {span}.")
        return
    for unit, name in ((60, "minutes"), (3600, "hours")):
        scaled = _shares(got * unit, delays, times, day_end)
        require(not (got < shortest and scaled[0] >= min_captured
                     and scaled[1] >= min_labelled),
                f"`window_seconds` = {got:g} would be defensible in {name}; the window is in "
                f"seconds ({got:g} {name} = {got * unit:g} s).")
    require(captured >= min_captured,
            f"`window_seconds` = {got:g} ({_duration(got)}) is too short: only {captured:.1%} "
            f"of clicks arrive within it, so {1 - captured:.1%} of real clicks would be "
            f"labelled negatives and the model would under-predict CTR by about that much. "
            f"Read the clicks curve: it reaches {min_captured:.0%} at about "
            f"{_duration(shortest)}. Defensible {span}.")
    raise CheckFailed(
        f"`window_seconds` = {got:g} ({_duration(got)}) is too long: only {labelled:.0%} of "
        f"the day's impressions have a final label by midnight, so tonight's model learns "
        f"from a day without its evening, and the rest waits a day longer to be used. "
        f"Read the labelled curve: it stays above {min_labelled:.0%} up to about "
        f"{_duration(longest)}. Defensible {span}.")
