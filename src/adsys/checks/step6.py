"""Auto-checks for the Step 6 labs (``notebooks/06_features`` and ``notebooks/06_models``).

Each check recomputes the answer with the package from the inputs the learner
used (:func:`adsys.position.relative_examination`,
:func:`adsys.position.inverse_propensity_weights`,
:func:`adsys.prediction.recalibrate_downsampled`) and, when the answer is wrong,
recognises the usual mistakes and explains them. The two judgment checks
(:func:`attribution_window`, :func:`keep_rate`) accept any choice on the measured
curve that meets the requirements the exercise states, and say what it trades.
"""

from __future__ import annotations

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
from adsys.position import inverse_propensity_weights, relative_examination
from adsys.prediction import recalibrate_downsampled

# The team's requirements, stated in the exercises. The window's are Lab 1's
# (``step1.attribution_window``): capture at least 90% of the clicks, and label at
# least 80% of the day's impressions by the nightly job at midnight.
MIN_CAPTURED = 0.9              # share of the eventual clicks the window must capture
MIN_LABELLED = 0.8              # share of the day's impressions labelled by midnight
LOG_LOSS_LIMIT = 1.0            # % more log loss that downsampling may cost, at most
MAX_ROWS_SHARE = 0.5            # share of today's training rows the job may keep, at most


def _array(answer: object, name: str, length: int | None = None) -> np.ndarray:
    """The answer as a float array, or a CheckFailed explaining what was expected."""
    require_answer(answer, name)
    try:
        values = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed(f"`{name}` should be an array of numbers; got "
                          f"{type(answer).__name__}") from None
    require(values.ndim == 1, f"`{name}` should be one-dimensional; got shape {values.shape}.")
    if length is not None:
        require(len(values) == length, f"`{name}` should hold {length} values; got "
                f"{len(values)}.")
    require(bool(np.all(np.isfinite(values))), f"`{name}` holds NaN or inf values.")
    return values


def _close(a: object, b: object, rtol: float = 1e-6) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=1e-12))


def _numbers(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


# ----- Lab 6.1: position bias ------------------------------------------------------------
def examination_by_hand(examination: object, log: pd.DataFrame) -> None:
    """Check a relative examination curve computed from a randomized-slot log.

    Parameters
    ----------
    examination : array-like
        The learner's examination probability of each slot relative to slot 1.
    log : pandas.DataFrame
        The experiment's log, from :func:`adsys.baseline.serve_shuffled`: columns
        ``position``, ``clicked``, ``shuffled`` and ``slots_filled``.
    """
    missing = {"position", "clicked", "shuffled", "slots_filled"} - set(log)
    if missing:
        raise ValueError(f"log must have the columns of serve_shuffled; missing {missing}")
    n_slots = int(log["position"].max())
    got = _array(examination, "examination", n_slots)
    full = log[log["shuffled"] & (log["slots_filled"] == n_slots)]
    want = relative_examination(full["position"], full["clicked"], n_slots)
    if _close(got, want):
        passed(f"relative examination {_numbers(want)}: the CTR of each slot in the shuffled, "
               "full pages, divided by the CTR of slot 1. Because the experiment placed the "
               "same ads in every slot on average, the ratio is the position effect alone.")
        return
    ctr = full.groupby("position")["clicked"].mean().to_numpy()
    shuffled = log[log["shuffled"]]
    mistakes = [
        (ctr, "these are the click rates of the slots; divide each by the click rate of "
              "slot 1 so that slot 1 is 1.0."),
        (ctr[0] / ctr, "the ratio is upside down: divide each slot's CTR by slot 1's, not "
                       "slot 1's by each slot's (the values should fall with the position)."),
        (100 * want, "these are percentages; give the ratios as fractions (slot 1 = 1.0)."),
        (relative_examination(log["position"], log["clicked"], n_slots),
         "you used every request, including those the auction ordered: there the best ads "
         "sit on top and the lower slots look worse than their position alone makes them. "
         "Keep the rows with `shuffled` true."),
        (relative_examination(log.loc[~log["shuffled"], "position"],
                              log.loc[~log["shuffled"], "clicked"], n_slots),
         "you used the requests the auction ordered (`shuffled` false): that ratio mixes the "
         "position effect with the auction's choice of the best ads for the top."),
        (relative_examination(shuffled["position"], shuffled["clicked"], n_slots),
         "close, but pages with fewer ads than slots only ever fill the first slots, so the "
         "last slot sees a different mix of requests. Keep the pages where `slots_filled` "
         f"equals the number of slots ({n_slots})."),
    ]
    explain_known_mistake("examination", got, mistakes, _close)
    off = [f"slot {k} too {'high' if g > v else 'low'}"
           for k, (g, v) in enumerate(zip(got, want, strict=True), start=1)
           if not np.isclose(g, v, rtol=1e-6, atol=1e-12)]
    raise CheckFailed(f"`examination` is not right yet ({', '.join(off)}). Take the shuffled "
                      "requests that filled every slot, compute the CTR of each position, and "
                      "divide by the CTR of position 1.")


def propensity_weights(weights: object, positions: ArrayLike, clicked: ArrayLike,
                       examination: ArrayLike) -> None:
    """Check inverse-propensity weights for training on a position-biased log.

    Parameters
    ----------
    weights : array-like
        The learner's weight for each row.
    positions, clicked : array-like
        Slot (1-based) and 0/1 label of each row.
    examination : array-like
        Examination probability of each slot relative to slot 1, slot 1 first.
    """
    pos = np.asarray(positions)
    y = np.asarray(clicked)
    exam = np.asarray(examination, dtype=float)
    got = _array(weights, "weights", len(pos))
    want = inverse_propensity_weights(pos, y, exam)
    if _close(got, want):
        clicks = y == 1
        passed(f"each click in slot k counts 1 / examination(k) times (up to "
               f"{want[clicks].max():.2f} in the last slot) and each non-click once: the "
               "clicks an ad would have had where users always look.")
        return
    per_row = 1.0 / exam[pos - 1]
    mistakes = [
        (per_row, "every row got 1 / examination, non-clicks included. Scaling a slot's clicks "
                  "and non-clicks alike leaves its click rate unchanged; only the clicks need "
                  "scaling up (a non-click in a low slot is mostly an ad nobody looked at)."),
        (np.where(y == 1, exam[pos - 1], 1.0),
         "the clicks were multiplied by the examination probability; divide by it instead, so "
         "that a click in a rarely seen slot counts more, not less."),
        (np.where(y == 1, 1.0, per_row),
         "the weights went to the non-clicks; they belong to the clicks."),
        (want / want.mean(), "the weights are normalized to a mean of 1; that rescales every "
                             "row, including the non-clicks, and undoes the correction of the "
                             "click rate. Keep 1 / examination on clicks and 1 elsewhere."),
    ]
    explain_known_mistake("weights", got, mistakes, _close)
    raise CheckFailed("`weights` should be 1 / examination[position - 1] for clicked rows and "
                      "1 for the others.")


def attribution_window(window_seconds: object, curve: pd.DataFrame,
                       min_captured: float = MIN_CAPTURED,
                       min_labelled: float = MIN_LABELLED) -> None:
    """Judge a chosen attribution window against the team's requirements.

    A window meets them if at most ``1 - min_captured`` of the clicks arrive after it
    and at most ``1 - min_labelled`` of the day's impressions are still inside it at
    midnight, when the nightly training job runs (Lab 1's rule). The check says what
    the chosen window trades on both sides.

    Parameters
    ----------
    window_seconds : float
        The learner's window, in seconds.
    curve : pandas.DataFrame
        Indexed by window in seconds (increasing), with columns ``clicks missed``
        (share of the eventual clicks that arrive after the window) and
        ``impressions waiting`` (share of a day's impressions whose window is
        still open at the nightly training job). Values between the measured
        windows are interpolated on a log scale.
    min_captured, min_labelled : float in (0, 1)
        The team's requirements.
    """
    got = as_number(window_seconds, "window_seconds")
    if not {"clicks missed", "impressions waiting"} <= set(curve):
        raise ValueError("curve must have columns 'clicks missed' and 'impressions waiting'")
    require(got > 0, f"`window_seconds` must be positive; got {got:g}.")
    windows = curve.index.to_numpy(dtype=float)
    require(windows.min() <= got <= windows.max(),
            f"`window_seconds` = {got:g} is outside the measured curve ({windows.min():g} to "
            f"{windows.max():g} seconds). Is it in seconds? An hour is 3600.")
    x = np.log(windows)

    def shares(seconds: float) -> tuple[float, float]:
        """Clicks missed and impressions waiting with a window of ``seconds``."""
        return (float(np.interp(np.log(seconds), x, curve["clicks missed"].to_numpy(float))),
                float(np.interp(np.log(seconds), x,
                                curve["impressions waiting"].to_numpy(float))))

    def meets(seconds: float) -> bool:
        missed, waiting = shares(seconds)
        return 1 - missed >= min_captured and 1 - waiting >= min_labelled

    missed, waiting = shares(got)
    trade = (f"With a window of {got / 60:g} min, {missed:.1%} of the clicks arrive too late "
             f"to count and {waiting:.1%} of a day's impressions are still unlabelled at "
             "midnight.")
    if meets(got):
        passed(f"{trade} That meets both requirements (at least {min_captured:.0%} of the "
               f"clicks captured, at least {min_labelled:.0%} of the day labelled by "
               f"midnight). The labels are within {missed:.1%} of the truth (a bias a "
               "calibrator fitted on the same windowed labels keeps, since it learns the "
               "windowed rate), and most of the day trains tonight. Shorter windows give "
               "fresher but more biased labels; longer ones, complete but older labels.")
        return
    require(not (60 * got <= windows.max() and meets(60 * got)),
            f"`window_seconds` = {got:g} would meet the requirements in minutes; the window "
            f"is in seconds ({got:g} minutes = {60 * got:g} s).")
    if 1 - missed < min_captured:
        raise CheckFailed(
            f"{trade} That window is too short: only {1 - missed:.1%} of the clicks arrive "
            f"within it, and the team asks for at least {min_captured:.0%}. Every "
            "impression whose click comes later is labelled a non-click, so the labels (and "
            "a model trained on them) under-state the click rate by that share, unevenly "
            "across ads and users whose clicks come late. Read the `clicks missed` column.")
    raise CheckFailed(
        f"{trade} That window is longer than it needs to be: only {1 - waiting:.0%} of the "
        f"day's impressions are labelled by midnight, and the team asks for at least "
        f"{min_labelled:.0%}. The labels barely improve, but the evening's traffic waits "
        "another night before it can train, so tonight's model learns from older data; "
        "billing and reporting wait too. Read the `impressions waiting` column.")


# ----- Lab 6.2: calibration and downsampling ----------------------------------------------
def slice_calibration(ratio: object, clicked: ArrayLike, p: ArrayLike,
                      in_slice: ArrayLike) -> None:
    """Check the calibration ratio (predicted clicks / clicks) of one slice.

    Parameters
    ----------
    ratio : float
        The learner's ratio.
    clicked, p : array-like
        Labels and predictions of every row.
    in_slice : array-like of bool
        Which rows belong to the slice.
    """
    got = as_number(ratio, "new_ad_ratio")
    y = np.asarray(clicked, dtype=float)
    q = np.asarray(p, dtype=float)
    mask = np.asarray(in_slice, dtype=bool)
    require(y[mask].sum() > 0, "the slice has no clicks: its calibration ratio is undefined.")
    want = q[mask].sum() / y[mask].sum()
    if _close(got, want):
        passed(f"the slice's predictions add up to {want:.3f} times its clicks "
               f"({int(y[mask].sum())} clicks: judge the ratio with its noise, about "
               f"+-{1.96 / np.sqrt(y[mask].sum()):.0%}).")
        return
    mistakes = [
        (1 / want, "the ratio is upside down: predicted clicks (sum of pCTR) divided by "
                   "observed clicks, not the other way round."),
        (q.sum() / y.sum(), "that is the ratio of all the traffic; compute it on the slice "
                            "only (the rows where the mask is true)."),
        (100 * want, "that is a percentage; give the ratio as a plain number (1.0 means "
                     "calibrated)."),
        (q[mask].sum() - y[mask].sum(), "that is a difference; the calibration ratio divides "
                                        "predicted clicks by observed clicks."),
        (q[mask].mean() / y.mean(), "the predictions are the slice's but the clicks are "
                                    "everyone's: take both from the slice."),
        (q[~mask].sum() / y[~mask].sum(), "that is the ratio of every row *outside* the "
                                          "slice."),
    ]
    explain_known_mistake("new_ad_ratio", got, mistakes, lambda a, b: _close(a, b, 1e-4))
    raise CheckFailed(f"`new_ad_ratio` = {got:.3f} is too {'high' if got > want else 'low'}. "
                      "It is the sum of the slice's predictions divided by its number of "
                      "clicks, both over the rows of the slice only.")


def recalibrated(q: object, raw_p: ArrayLike, w: float) -> None:
    """Check predictions recalibrated by hand after negative downsampling at rate ``w``."""
    raw = np.asarray(raw_p, dtype=float)
    got = _array(q, "q_by_hand", len(raw))
    want = recalibrate_downsampled(raw, w)
    if _close(got, want):
        passed(f"q = p / (p + (1 - p) / w) with w = {w:g}: the odds of the raw prediction "
               f"times w. The mean pCTR goes from {raw.mean():.4f} to {want.mean():.4f}.")
        return
    mistakes = [
        (raw, "these are the raw predictions, unchanged: a model trained on downsampled "
              "negatives predicts the click rate of the downsampled data, too high."),
        (raw * w, "multiplying p by w is close for tiny p but wrong: it is the *odds* "
                  "p / (1 - p) that scale by w. Use q = p / (p + (1 - p) / w)."),
        (raw / w, "dividing by w makes the predictions even higher; the correction lowers "
                  "them, since the data kept only a share w of the non-clicks."),
        (raw / (raw + (1 - raw) * w), "that is the map in the other direction (from the "
                                      "true rate to the downsampled one). Divide (1 - p) "
                                      "by w instead of multiplying."),
        (100 * want, "these are percentages; keep probabilities in [0, 1]."),
    ]
    explain_known_mistake("q_by_hand", got, mistakes, _close)
    raise CheckFailed("`q_by_hand` should be raw_p / (raw_p + (1 - raw_p) / w).")


def keep_rate(keep_rate: object, curve: pd.DataFrame, max_increase: float = LOG_LOSS_LIMIT,
              max_rows_share: float = MAX_ROWS_SHARE) -> None:
    """Judge a chosen negative keep rate against the team's requirements.

    A keep rate meets them if the job trains on at most ``max_rows_share`` of the rows
    it trains on with every non-click (the training time follows the rows; unlike a
    timing, the row count does not vary from run to run) and the recalibrated model's
    log loss grows by at most ``max_increase`` percent.

    Parameters
    ----------
    keep_rate : float
        The learner's keep rate w of non-clicks, in (0, 1].
    curve : pandas.DataFrame
        Indexed by keep rate, 1 included, with columns ``rows`` (training rows kept)
        and ``log loss increase (%)`` (against w = 1). Between measured rates, the rows
        are interpolated linearly (they grow linearly with w) and the log loss on a
        log scale.
    max_increase, max_rows_share : float
        The team's requirements.
    """
    got = as_number(keep_rate, "keep_rate")
    if not {"rows", "log loss increase (%)"} <= set(curve):
        raise ValueError("curve must have columns 'rows' and 'log loss increase (%)'")
    if 1.0 not in curve.index:
        raise ValueError("curve must include the keep rate 1 (every non-click kept)")
    require(0 < got <= 1, f"`keep_rate` is the share of non-clicks kept, in (0, 1]; got "
            f"{got:g}." + (" Percentages? 10% is 0.1." if 1 < got <= 100 else ""))
    ordered = curve.sort_index()
    rates = ordered.index.to_numpy(dtype=float)
    require(rates.min() <= got, f"`keep_rate` = {got:g} is below the measured curve (the "
            f"smallest rate measured is {rates.min():g}); choose from what was measured.")
    rows = ordered["rows"].to_numpy(dtype=float)
    share = float(np.interp(got, rates, rows)) / float(ordered.loc[1.0, "rows"])
    cost = float(np.interp(np.log(got), np.log(rates),
                           ordered["log loss increase (%)"].to_numpy(dtype=float)))
    trade = (f"At w = {got:g} the job trains on {share:.0%} of the rows it trains on with "
             f"every non-click, for {cost:+.2f}% log loss.")
    if cost > max_increase:
        raise CheckFailed(
            f"{trade} Too aggressive: the team allows at most {max_increase:+g}%. With so "
            "few non-clicks left the model no longer learns what does not get clicked, and "
            "the loss shows it. Keep more of them.")
    require(share <= max_rows_share,
            f"{trade} That leaves most of the saving on the table: the job's budget needs "
            f"it to train on at most {max_rows_share:.0%} of the rows, and the curve shows "
            "that smaller keep rates cost little log loss once the predictions are "
            "recalibrated.")
    passed(f"{trade} That meets both requirements (at most {max_rows_share:.0%} of the "
           f"rows, at most {max_increase:+g}% log loss). Remember the recalibration "
           "q = p / (p + (1 - p) / w), and that rare slices (new ads, small advertisers) "
           "lose examples first: check their calibration after changing w.")
