"""Auto-checks for the Step 4 lab (``notebooks/04_blueprint``).

Each check recomputes the answer with the package (:func:`adsys.auction.run_auction`,
the pacing plan, :func:`adsys.events.join_clicks`) from the same inputs the learner
used, and when the answer is wrong recognises the usual mistakes and explains them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.auction import run_auction
from adsys.checks import (
    CheckFailed,
    as_number,
    explain_known_mistake,
    passed,
    require,
    require_answer,
)
from adsys.events import join_clicks

GSP_RULE = ("price of slot s = max(eCPM of the next eligible ad, reserve) / own pCTR, "
            "with eCPM = bid x pCTR")


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-9))


def _money(values: np.ndarray) -> str:
    return ", ".join(f"${v:.3f}" for v in values)


def _gsp_mistakes(bids: np.ndarray, pctr: np.ndarray, n_slots: int,
                  reserve: float) -> list[tuple[np.ndarray, str]]:
    """Prices a learner gets from the usual wrong rules, each with its explanation."""
    ecpm = bids * pctr
    result = run_auction(bids, pctr, n_slots, reserve)
    slots, want = result.slots, result.prices
    eligible = np.flatnonzero((ecpm > 0) & (ecpm >= reserve))
    ranked = eligible[np.argsort(-ecpm[eligible], kind="stable")]
    everyone = np.flatnonzero(ecpm > 0)
    everyone = everyone[np.argsort(-ecpm[everyone], kind="stable")]

    def next_of(order: np.ndarray, s: int) -> int | None:
        return int(order[s + 1]) if s + 1 < len(order) else None

    def floor(value: float, s: int) -> float:
        return max(value, reserve) / pctr[slots[s]]

    n = len(slots)
    next_bid = [bids[j] if (j := next_of(ranked, s)) is not None else floor(0.0, s)
                for s in range(n)]
    next_bid_any = [bids[j] if (j := next_of(everyone, s)) is not None else 0.0
                    for s in range(n)]
    next_ecpm = [max(ecpm[j] if (j := next_of(ranked, s)) is not None else 0.0, reserve)
                 for s in range(n)]
    no_floor = [(ecpm[j] if (j := next_of(ranked, s)) is not None else 0.0) / pctr[slots[s]]
                for s in range(n)]
    no_reserve = run_auction(bids, pctr, n_slots, 0.0).prices[:n]
    order = np.argsort(slots, kind="stable")
    return [
        (bids[slots], "each winner pays its own bid: that is a first-price auction. GSP "
         "charges the least the winner could have bid and kept its slot: "
         f"{GSP_RULE}."),
        (np.asarray(next_bid), "you charged each winner the next ad's *bid*. Ads are ranked by "
         "eCPM, not by bid, so the threshold is the next ad's eCPM (bid x pCTR), converted "
         "back to a price per click with the winner's own pCTR: "
         f"{GSP_RULE}."),
        (np.asarray(next_bid_any), "you charged each winner the next ad's *bid*. Ads are "
         "ranked by eCPM, not by bid, so the threshold is the next ad's eCPM (bid x pCTR), "
         f"converted back to a price per click with the winner's own pCTR: {GSP_RULE}."),
        (np.asarray(next_ecpm), "these are eCPMs (dollars per impression), not prices per "
         "click. Divide the threshold eCPM by the winner's own pCTR to get what it pays per "
         "click."),
        (1000 * want, "these are 1000 times the prices: the price is per click, not per "
         "thousand impressions. Drop the factor 1000."),
        (no_reserve, "you forgot the reserve. Candidates whose eCPM is below the reserve "
         "cannot be shown and cannot set a price either; a winner with no eligible ad "
         "below it pays the floor, reserve / own pCTR."),
        (np.asarray(no_floor), "the reserve removed the right ads, but the floor is "
         "missing: a winner never pays less than reserve / own pCTR, which is what the "
         "last filled slot pays when no eligible ad is left below it."),
        (want[order], "the prices are right but in candidate order; list them in slot order, "
         "slot 1 (the highest eCPM) first."),
    ]


def gsp_prices(prices: object, bids: ArrayLike, pctr: ArrayLike, n_slots: int,
               reserve: float = 0.0) -> None:
    """Check generalized-second-price prices computed by hand against ``run_auction``.

    Parameters
    ----------
    prices : list of float
        The learner's cost per click of each filled slot, slot 1 first.
    bids, pctr : array-like
        Maximum cost per click and position-1 pCTR of each candidate.
    n_slots : int
        Slots on the page.
    reserve : float
        Minimum eCPM (bid x pCTR) to be shown.
    """
    require_answer(prices, "prices")
    bids_arr = np.asarray(bids, dtype=float)
    pctr_arr = np.asarray(pctr, dtype=float)
    result = run_auction(bids_arr, pctr_arr, n_slots, reserve)
    want, slots = result.prices, result.slots
    require(np.ndim(prices) == 1,
            f"`prices` should be a list with one price per filled slot, slot 1 first; got "
            f"{prices!r}.")
    try:
        got = np.asarray(prices, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed("`prices` should hold numbers (dollars per click).") from None
    if len(got) != len(want):
        require(len(got) != len(bids_arr),
                f"`prices` has one value per candidate ({len(got)}); give one per *filled "
                f"slot* ({len(want)}), in slot order. Ads that do not win a slot pay nothing.")
        ecpm = bids_arr * pctr_arr
        n_eligible = int(np.count_nonzero((ecpm > 0) & (ecpm >= reserve)))
        require(len(want) == n_slots or len(got) != n_slots,
                f"`prices` has {n_slots} values, but only {n_eligible} candidate(s) reach "
                f"the reserve eCPM of {reserve:g}: the other slots stay empty. Give "
                f"{len(want)} price(s).")
        raise CheckFailed(f"`prices` has {len(got)} values; {len(want)} slot(s) are filled, "
                          "so give one price per filled slot, slot 1 first.")
    if _close(got, want):
        passed(f"slots go to candidates {slots.tolist()} at {_money(want)} per click: "
               "each winner pays the least it could have bid and kept its slot.")
        return
    for values, explanation in _gsp_mistakes(bids_arr, pctr_arr, n_slots, reserve):
        if len(values) == len(got) and _close(got, values):
            raise CheckFailed(f"`prices`: {explanation}")
    raise CheckFailed(
        f"`prices` should be {_money(want)} (slots {slots.tolist()}); got {_money(got)}. "
        f"Rank the candidates whose eCPM reaches the reserve by eCPM; then {GSP_RULE}.")


def pacing_plan(planned_spend: object, budget: float, hourly_traffic: ArrayLike,
                by_hour: int) -> None:
    """Check the spend a campaign's pacing plan allows by ``by_hour``:00.

    Parameters
    ----------
    planned_spend : float
        The learner's planned cumulative spend, in dollars, at ``by_hour``:00 (the end
        of hour ``by_hour - 1``).
    budget : float
        The campaign's daily budget.
    hourly_traffic : array-like
        Expected share of the day's requests in each hour 0-23 (sums to 1).
    by_hour : int
        Clock hour, 1-24: the plan counts the hours 0 to ``by_hour - 1``.
    """
    got = as_number(planned_spend, "planned_spend")
    traffic = np.asarray(hourly_traffic, dtype=float)
    if traffic.shape != (24,) or not np.isclose(traffic.sum(), 1.0):
        raise ValueError("hourly_traffic must hold 24 shares that sum to 1")
    if not 1 <= by_hour <= 24:
        raise ValueError(f"by_hour must be in [1, 24]; got {by_hour}")
    share = float(traffic[:by_hour].sum())
    want = budget * share
    if np.isclose(got, want, rtol=1e-6):
        passed(f"by {by_hour}:00 the plan allows ${want:.2f} of the ${budget:.2f} budget "
               f"({share:.1%}): the share of the day's traffic that has arrived by then.")
        return
    mistakes = [
        (budget * by_hour / 24, "this spreads the budget evenly over the clock (hours / 24). "
         "The plan follows *traffic*: budget x the share of the day's requests that arrive "
         f"before {by_hour}:00, so quiet night hours get little and the evening peak a lot."),
        (budget * traffic[by_hour % 24], f"this is the plan for one hour only, and the "
         f"wrong one (hour {by_hour % 24}). The plan is cumulative: add up the shares of "
         f"every hour from 0 to {by_hour - 1}."),
        (budget * traffic[by_hour - 1], f"this is the plan for hour {by_hour - 1} alone. The "
         f"plan is cumulative: add up the shares of every hour from 0 to {by_hour - 1}."),
        (budget * traffic[: by_hour + 1].sum(), f"you counted hour {by_hour} as well. By "
         f"{by_hour}:00 only hours 0 to {by_hour - 1} have passed: "
         f"`hourly_traffic[:{by_hour}]`."),
        (budget * traffic[: by_hour - 1].sum(), f"you stopped one hour short. By {by_hour}:00 "
         f"hours 0 to {by_hour - 1} have passed, {by_hour} hours: "
         f"`hourly_traffic[:{by_hour}]`."),
        (share, "this is the share of the day's traffic, not dollars: multiply it by the "
         "campaign's daily budget."),
        (100 * share, "this is the share of traffic in percent, not dollars: multiply the "
         "share (a fraction) by the campaign's daily budget."),
        (budget * (1 - share), "this is the budget left for the rest of the day; the plan is "
         "what should have been spent so far."),
    ]
    explain_known_mistake("planned_spend", got, mistakes,
                          lambda a, b: bool(np.isclose(a, b, rtol=1e-6)))
    raise CheckFailed(
        f"`planned_spend` should be ${want:.2f}; got {got:.2f}. Multiply the daily budget "
        f"by the share of the day's traffic in hours 0 to {by_hour - 1}.")


def _positives(impressions: pd.DataFrame, clicks: pd.DataFrame, window: float, as_of: float,
               *, arrived_only: bool = True, closed_only: bool = True,
               first: bool = True) -> int:
    """Positives of a training job at ``as_of``, with parts of the rule switched off."""
    known = clicks[clicks["click_time"] <= as_of] if arrived_only else clicks
    arrival = known.groupby("impression_id")["click_time"]
    arrival = arrival.min() if first else arrival.max()
    delay = impressions["impression_id"].map(arrival) - impressions["time"]
    positive = delay <= window
    if closed_only:
        positive &= impressions["time"] + window <= as_of
    return int(positive.sum())


def window_positives(n_positives: object, impressions: pd.DataFrame, clicks: pd.DataFrame,
                     window_seconds: float, as_of: float) -> None:
    """Check the number of positive labels a training job at ``as_of`` writes.

    Parameters
    ----------
    n_positives : int
        The learner's count of impressions labelled clicked.
    impressions : pandas.DataFrame
        The impression log: ``impression_id``, ``time`` (seconds).
    clicks : pandas.DataFrame
        Click events as received: ``impression_id``, ``click_time``; late, out of order,
        some duplicated.
    window_seconds : float
        Attribution window: a click counts if it arrives at most this long after the
        impression.
    as_of : float
        When the job runs: only clicks received by then are known, and only impressions
        whose window has closed (``time + window_seconds <= as_of``) are labelled.
    """
    got = as_number(n_positives, "n_positives")
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive; got {window_seconds}")
    labelled, _ = join_clicks(impressions, clicks[clicks["click_time"] <= as_of],
                              window_seconds)
    closed = labelled["time"] + window_seconds <= as_of
    want = int(labelled.loc[closed, "clicked"].sum())
    if got == want:
        held = int((~closed).sum())
        passed(f"{want:,} positives among {int(closed.sum()):,} labelled impressions; "
               f"{held:,} impressions wait for their window to close.")
        return
    require(bool(np.isfinite(got)) and got == int(got),
            f"`n_positives` is a count, a whole number; got {got:g}.")
    arrived = clicks[clicks["click_time"] <= as_of]
    shown_at = arrived["impression_id"].map(impressions.set_index("impression_id")["time"])
    in_window = (arrived["click_time"] - shown_at <= window_seconds) & (
        shown_at + window_seconds <= as_of)
    minutes = window_seconds / 60
    mistakes = [
        (int(in_window.sum()), "you counted click *events*, so an impression whose click "
         "was reported twice counted twice. Count impressions: keep the first arrival of "
         "each impression_id."),
        (_positives(impressions, clicks, window_seconds, as_of, closed_only=False),
         "you labelled impressions whose window is still open at `as_of` (shown in the "
         f"last {minutes:g} minutes). Their label is not final: leave them out until "
         "time + window <= as_of."),
        (_positives(impressions, clicks, window_seconds, as_of, arrived_only=False,
                    closed_only=False),
         "you used clicks that arrive after `as_of` and labelled impressions whose window "
         "is still open. A job running at `as_of` has not received those clicks yet: keep "
         "clicks with click_time <= as_of and impressions with time + window <= as_of."),
        (int(clicks["impression_id"].nunique()), "this counts every clicked impression, "
         "late clicks included and with no cut-off. A positive needs its first click "
         f"within {minutes:g} minutes of the impression, and the job at `as_of` only "
         "labels impressions whose window has closed."),
        (int(arrived["impression_id"].nunique()), "this counts every impression clicked "
         f"before `as_of`, late clicks included. A click more than {minutes:g} minutes "
         "after its impression makes a negative label."),
        (_positives(impressions, clicks, 3600, as_of), "you used a one-hour window; this "
         f"exercise's window is {minutes:g} minutes ({window_seconds:g} seconds)."),
        (_positives(impressions, clicks, minutes, as_of), f"you used a window of "
         f"{minutes:g} *seconds*: times are in seconds, so {minutes:g} minutes is "
         f"{window_seconds:g}."),
        (_positives(impressions, clicks, window_seconds, as_of, first=False),
         "you timed each click by its last report. A duplicate report arrives later than "
         "the click; use the first arrival of each impression_id."),
        (int(closed.sum()), "this is the number of labelled impressions; count only those "
         "labelled 1 (clicked within the window)."),
        (len(clicks), "this is the number of click events received, duplicates and late "
         "clicks included."),
    ]
    explain_known_mistake("n_positives", got, mistakes, lambda a, b: a == b)
    raise CheckFailed(
        f"`n_positives` should be {want:,}; got {int(got):,}. Keep clicks received by "
        "`as_of`, take each impression's first click, label it positive if the delay is at "
        "most the window, and count only impressions whose window has closed.")
