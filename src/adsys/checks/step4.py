"""Auto-checks for the Step 4 labs (``notebooks/04_blueprint`` and ``notebooks/04_day``).

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

GSP_RULE = ("price of slot s = max(eCPM of the next eligible ad, reserve) / (1000 x own "
            "pCTR), with eCPM = 1000 x bid x pCTR in dollars per thousand impressions")


CENT = 0.005 + 1e-9     # prices rounded to whole cents still match


def _close(a: np.ndarray, b: np.ndarray, atol: float = 1e-9) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=atol))


def _money(values: np.ndarray) -> str:
    return ", ".join(f"${v:.3f}" for v in values)


def _gsp_mistakes(bids: np.ndarray, pctr: np.ndarray, n_slots: int,
                  reserve: float) -> list[tuple[np.ndarray, str]]:
    """Prices a learner gets from the usual wrong rules, each with its explanation."""
    ecpm = 1000 * bids * pctr
    result = run_auction(bids, pctr, n_slots, reserve)
    slots, want = result.slots, result.prices
    eligible = np.flatnonzero((ecpm > 0) & (ecpm >= reserve))
    ranked = eligible[np.argsort(-ecpm[eligible], kind="stable")]
    everyone = np.flatnonzero(ecpm > 0)
    everyone = everyone[np.argsort(-ecpm[everyone], kind="stable")]

    def next_of(order: np.ndarray, s: int) -> int | None:
        return int(order[s + 1]) if s + 1 < len(order) else None

    def floor(value: float, s: int) -> float:
        return max(value, reserve) / (1000 * pctr[slots[s]])

    n = len(slots)
    next_bid = [bids[j] if (j := next_of(ranked, s)) is not None else floor(0.0, s)
                for s in range(n)]
    next_bid_any = [bids[j] if (j := next_of(everyone, s)) is not None else 0.0
                    for s in range(n)]
    next_ecpm = [max(ecpm[j] if (j := next_of(ranked, s)) is not None else 0.0, reserve)
                 for s in range(n)]
    no_floor = [(ecpm[j] if (j := next_of(ranked, s)) is not None else 0.0)
                / (1000 * pctr[slots[s]]) for s in range(n)]
    no_reserve = run_auction(bids, pctr, n_slots, 0.0).prices[:n]
    order = np.argsort(slots, kind="stable")
    return [
        (bids[slots], "each winner pays its own bid: that is a first-price auction. GSP "
         "charges the least the winner could have bid and kept its slot: "
         f"{GSP_RULE}."),
        (np.asarray(next_bid), "you charged each winner the next ad's *bid*. Ads are ranked by "
         "eCPM, not by bid, so the threshold is the next ad's eCPM, converted back to a "
         f"price per click with the winner's own pCTR: {GSP_RULE}."),
        (np.asarray(next_bid_any), "you charged each winner the next ad's *bid*. Ads are "
         "ranked by eCPM, not by bid, so the threshold is the next ad's eCPM, converted "
         f"back to a price per click with the winner's own pCTR: {GSP_RULE}."),
        (np.asarray(next_ecpm), "these are eCPMs (dollars per thousand impressions), not "
         "prices per click. Divide the threshold eCPM by 1000 x the winner's own pCTR to "
         "get what it pays per click."),
        (1000 * want, "these are 1000 times the prices: eCPM is per thousand impressions, "
         "so the price per click is the threshold eCPM divided by 1000 x own pCTR."),
        (want / 1000, "these are the prices divided by 1000: eCPM = 1000 x bid x pCTR "
         "already carries the 1000, so divide the threshold eCPM by 1000 x own pCTR "
         "once, not twice."),
        (no_reserve, "you forgot the reserve. Candidates whose eCPM is below the reserve "
         "cannot be shown and cannot set a price either; a winner with no eligible ad "
         "below it pays the floor, reserve / (1000 x own pCTR)."),
        (np.asarray(no_floor), "the reserve removed the right ads, but the floor is "
         "missing: a winner never pays less than reserve / (1000 x own pCTR), which is "
         "what the last filled slot pays when no eligible ad is left below it."),
        (want[order], "the prices are right but in candidate order; list them in slot order, "
         "slot 1 (the highest eCPM) first."),
    ]


def gsp_prices(prices: object, bids: ArrayLike, pctr: ArrayLike, n_slots: int,
               reserve: float = 0.0) -> None:
    """Check generalized-second-price prices computed by hand against ``run_auction``.

    Parameters
    ----------
    prices : list of float
        The learner's cost per click of each filled slot, slot 1 first; prices rounded
        to whole cents are accepted.
    bids, pctr : array-like
        Maximum cost per click and position-1 pCTR of each candidate.
    n_slots : int
        Slots on the page.
    reserve : float
        Minimum eCPM (1000 x bid x pCTR, dollars per thousand impressions) to be shown.
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
        require(len(got) > 0 or reserve <= 0,
                "`prices` is empty, but some candidates reach the reserve. The reserve is "
                "an eCPM in dollars per *thousand* impressions: compare it with "
                "eCPM = 1000 x bid x pCTR, not with bid x pCTR.")
        ecpm = 1000 * bids_arr * pctr_arr
        n_eligible = int(np.count_nonzero((ecpm > 0) & (ecpm >= reserve)))
        require(len(want) == n_slots or len(got) != n_slots,
                f"`prices` has {n_slots} values, but only {n_eligible} candidate(s) reach "
                f"the reserve eCPM of ${reserve:g}: the other slots stay empty. Give "
                f"{len(want)} price(s).")
        raise CheckFailed(f"`prices` has {len(got)} values; {len(want)} slot(s) are filled, "
                          "so give one price per filled slot, slot 1 first.")
    if _close(got, want, CENT):
        passed(f"slots go to candidates {slots.tolist()} at {_money(want)} per click: "
               "each winner pays the least it could have bid and kept its slot.")
        return
    for values, explanation in _gsp_mistakes(bids_arr, pctr_arr, n_slots, reserve):
        if len(values) == len(got) and _close(got, values, CENT):
            raise CheckFailed(f"`prices`: {explanation}")
    off = [f"too {'high' if g > w else 'low'} in slot {s + 1}"
           for s, (g, w) in enumerate(zip(got, want, strict=True))
           if not _close(g, w, CENT)]
    raise CheckFailed(
        f"`prices` = {_money(got)}: {' and '.join(off)}. Rank the candidates whose eCPM "
        f"reaches the reserve by eCPM; then {GSP_RULE}.")


def pacing_plan(planned_spend: object, budget: float, traffic_curve: ArrayLike,
                by_hour: int) -> None:
    """Check the spend a campaign's pacing plan allows by ``by_hour``:00.

    Parameters
    ----------
    planned_spend : float
        The learner's planned cumulative spend, in dollars, at ``by_hour``:00.
    budget : float
        The campaign's daily budget.
    traffic_curve : array-like
        Forecast share of the day's requests in each of T equal steps (T a multiple of
        24, summing to 1), step 0 starting at midnight: 24 hourly shares, or the
        pacer's 48 half-hour steps.
    by_hour : int
        Clock hour, 1-24: the plan counts the steps before ``by_hour``:00.
    """
    got = as_number(planned_spend, "planned_spend")
    traffic = np.asarray(traffic_curve, dtype=float)
    if traffic.ndim != 1 or len(traffic) % 24 or not len(traffic) \
            or not np.isclose(traffic.sum(), 1.0):
        raise ValueError("traffic_curve must hold 24 x k shares (k steps per hour) that "
                         "sum to 1")
    if not 1 <= by_hour <= 24:
        raise ValueError(f"by_hour must be in [1, 24]; got {by_hour}")
    per_hour = len(traffic) // 24
    steps = by_hour * per_hour
    share = float(traffic[:steps].sum())
    want = budget * share
    if np.isclose(got, want, rtol=1e-6):
        passed(f"by {by_hour}:00 the plan allows ${want:.2f} of the ${budget:.2f} budget "
               f"({share:.1%}): the share of the day's forecast traffic that has arrived by "
               f"then (the first {steps} of {len(traffic)} steps).")
        return
    unit = "step" if per_hour > 1 else "hour"
    mistakes = [
        (budget * by_hour / 24, "this spreads the budget evenly over the clock (hours / 24). "
         "The plan follows *traffic*: budget x the share of the day's requests forecast "
         f"before {by_hour}:00, so quiet night hours get little and the evening peak a lot."),
        (budget * traffic[steps % len(traffic)], f"this is the plan for one {unit} only, and "
         f"the wrong one (the {unit} starting at {by_hour % 24}:00). The plan is cumulative: "
         f"add up the shares of every {unit} before {by_hour}:00."),
        (budget * traffic[steps - 1], f"this is the plan for the last {unit} before "
         f"{by_hour}:00 alone. The plan is cumulative: add up the shares of every {unit} "
         f"before {by_hour}:00."),
        (budget * traffic[: steps + 1].sum(), f"you counted the {unit} starting at "
         f"{by_hour}:00 as well. By {by_hour}:00 only the first {steps} {unit}s have "
         f"passed: `traffic_curve[:{steps}]`."),
        (budget * traffic[: steps - 1].sum(), f"you stopped one {unit} short. By "
         f"{by_hour}:00 the first {steps} {unit}s have passed: `traffic_curve[:{steps}]`."),
        (budget * traffic[:by_hour].sum() if per_hour > 1 else None,
         f"you summed the first {by_hour} shares, but the curve has {per_hour} steps per "
         f"hour: {by_hour}:00 is the end of step {steps}, so sum `traffic_curve[:{steps}]`."),
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
        f"`planned_spend` = ${got:.2f} is too {'high' if got > want else 'low'}. Multiply "
        f"the daily budget by the forecast share of the day's traffic before {by_hour}:00 "
        f"(the first {steps} steps of the curve).")


def _interpolate(curve: pd.DataFrame, column: str, x: float) -> float:
    return float(np.interp(x, curve["reserve"].to_numpy(float), curve[column].to_numpy(float)))


def choose_reserve(reserve: object, curve: pd.DataFrame, max_revenue_loss: float = 0.01,
                   min_fill: float = 0.98) -> None:
    """Judge a chosen reserve price against a revenue and fill curve (measured in an
    experiment, or in the labs computed from the simulated world).

    A judgment call: every reserve whose revenue is within ``max_revenue_loss`` of the
    best reserve on the curve and whose fill rate is at least ``min_fill`` is
    defensible. Values between the curve's reserves are interpolated linearly.

    Parameters
    ----------
    reserve : float
        The learner's reserve, in dollars per thousand impressions (eCPM).
    curve : pandas.DataFrame
        One row per reserve, sorted by ``reserve``, with columns ``reserve``,
        ``rpm`` (revenue per thousand requests) and ``fill_rate`` (share of requests
        that showed an ad); optional ``ctr`` (CTR of the shown ads) and
        ``ads_per_request``.
    max_revenue_loss : float
        Revenue the team will give up, as a share of the best reserve's.
    min_fill : float
        Smallest acceptable share of requests that show at least one ad.
    """
    got = as_number(reserve, "reserve")
    missing = [c for c in ("reserve", "rpm", "fill_rate") if c not in curve]
    if missing:
        raise ValueError(f"curve is missing columns {missing}")
    grid = curve["reserve"].to_numpy(float)
    if len(grid) < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError("curve must have at least two rows sorted by increasing reserve")
    require(np.isfinite(got) and got >= 0,
            f"`reserve` should be a non-negative eCPM in dollars per thousand impressions; "
            f"got {got!r}.")
    require(grid[0] <= got <= grid[-1],
            f"`reserve` = ${got:g} is outside the curve (${grid[0]:g} to ${grid[-1]:g} "
            "per thousand impressions): choose a reserve within its range.")
    best = int(np.argmax(curve["rpm"].to_numpy(float)))
    best_reserve, best_rpm = grid[best], float(curve["rpm"].iloc[best])
    rpm, fill = _interpolate(curve, "rpm", got), _interpolate(curve, "fill_rate", got)
    loss = 1 - rpm / best_rpm
    quality = ""
    if "ctr" in curve:
        quality = (f" The shown ads' CTR is {_interpolate(curve, 'ctr', got):.2%} against "
                   f"{float(curve['ctr'].iloc[0]):.2%} at ${grid[0]:g}: fewer, better ads.")
    require(fill >= min_fill,
            f"at ${got:g} only {fill:.1%} of requests show an ad (the team asked for at "
            f"least {min_fill:.0%}): publishers lose pages they could have monetized, and "
            f"advertisers lose volume. Revenue is {loss:.1%} below the best reserve on the "
            f"curve (${best_reserve:g}). Choose a lower reserve.")
    if loss > max_revenue_loss:
        side = "high" if got > best_reserve else "low"
        raise CheckFailed(
            f"at ${got:g} revenue per thousand requests is ${rpm:.2f}, {loss:.1%} below the "
            f"best reserve on the curve (${best_reserve:g}: ${best_rpm:.2f}); the team gives "
            f"up at most {max_revenue_loss:.0%}. The reserve is too {side}: "
            + ("it removes more paying ads than the price floor earns back." if side == "high"
               else "the floor is too low to lift the prices of thin auctions."))
    passed(f"${got:g} per thousand impressions keeps revenue within {loss:.1%} of the best "
           f"reserve on the curve and shows an ad on {fill:.1%} of requests.{quality} A "
           "higher reserve trades revenue and fill for fewer, better ads; a lower one sells "
           "more impressions. Where competition is thick, as here, the floor rarely sets a "
           "price, and the reserve mainly insures the thin auctions an average hides (night "
           "hours, narrow targeting, new campaigns); advertisers priced out also react over "
           "weeks, which one day cannot measure.")


def attribution_window(window_seconds: object, click_delays: ArrayLike,
                       impression_times: ArrayLike, as_of: float, min_captured: float = 0.9,
                       min_labelled: float = 0.8) -> None:
    """Judge a chosen attribution window against the measured click delays.

    A judgment call, by Lab 1's rule (:func:`adsys.checks.step1.attribution_window`,
    with the same defaults): the window is defensible when the labels capture at
    least ``min_captured`` of the clicks that eventually arrive (each missed click is
    a false negative) and a nightly job at ``as_of`` labels at least ``min_labelled``
    of the day's impressions, the others still waiting for their window to close.

    Parameters
    ----------
    window_seconds : float
        The learner's window, in seconds.
    click_delays : array-like
        Seconds from impression to first click, one per clicked impression.
    impression_times : array-like
        Times (seconds) of the day's impressions.
    as_of : float
        When the nightly job runs (seconds).
    min_captured, min_labelled : float in (0, 1)
        The team's requirements, as stated in the exercise.
    """
    got = as_number(window_seconds, "window_seconds")
    delays = np.asarray(click_delays, dtype=float)
    times = np.asarray(impression_times, dtype=float)
    if not len(delays) or not len(times):
        raise ValueError("click_delays and impression_times must not be empty")
    for name, value in (("min_captured", min_captured), ("min_labelled", min_labelled)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1); got {value}")
    require(np.isfinite(got) and got > 0,
            f"`window_seconds` should be a positive number of seconds; got {got!r}.")
    captured = float(np.mean(delays <= got))
    labelled = float(np.mean(times + got <= as_of))
    sizes = f"{got / 60:g}-minute" if got < 7200 else f"{got / 3600:g}-hour"
    if captured < min_captured:
        hint = (" Times are in seconds: a window of a few minutes is a few hundred."
                if got < 60 else "")
        raise CheckFailed(
            f"with a {sizes} window the labels capture only {captured:.1%} of the clicks "
            f"that do arrive (the team asks for at least {min_captured:.0%}): the other "
            f"{1 - captured:.1%} become negatives, and a model trained on them "
            f"under-predicts by about that much. Lengthen the window.{hint}")
    if labelled < min_labelled:
        raise CheckFailed(
            f"with a {sizes} window the nightly job labels only {labelled:.1%} of the day's "
            f"impressions (the team asks for at least {min_labelled:.0%}): the others' "
            "windows are still open, so the newest traffic reaches the model a day late, "
            "and a longer window also credits clicks that have little to do with the ad. "
            f"It captures {captured:.1%} of clicks. Shorten the window.")
    passed(f"a {sizes} window captures {captured:.1%} of the clicks that arrive and labels "
           f"{labelled:.1%} of the day's impressions at the nightly run, holding back "
           f"{1 - labelled:.1%}. Longer windows label more clicks correctly (less bias) but "
           "label later and hold back more of the freshest traffic; shorter ones are "
           "fresher and biased low. Whatever you choose, train and evaluate with the same "
           "window, and wait for it to close.")


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
        f"`n_positives` = {int(got):,} is too {'many' if got > want else 'few'}. Keep clicks "
        "received by `as_of`, take each impression's first click, label it positive if the "
        "delay is at most the window, and count only impressions whose window has closed.")
