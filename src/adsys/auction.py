"""Auction: rank by eCPM, apply a reserve price, charge generalized second price.

Every candidate is scored by its eCPM = 1000 x bid x pCTR, the expected revenue of a
thousand impressions of it, in dollars (``bid`` is a maximum cost per click and
``pctr`` the position-1 click probability). Under a position-based click model the
position effect multiplies every ad alike, so ranking on the position-1 pCTR gives the
same order in every slot.

Rules, shared by the batch path (:func:`run_auctions`, the simulator) and the
single-request path (:func:`run_auction`, the stable public API):

- A candidate is eligible when its eCPM is positive and at least ``reserve``; a zero
  eCPM earns nothing, so zero bid / zero pCTR cells are never shown (this is also how
  a batch is padded to a common width).
- Eligible candidates fill the slots by eCPM, highest first. Ties go to the lower
  candidate index, so the result is deterministic.
- Generalized second price, per click: the ad in slot s pays the smallest bid that
  keeps its rank, ``max(eCPM of the next eligible candidate, reserve) / (1000 x own
  pCTR)``; with no next candidate that is the reserve floor ``reserve / (1000 x own
  pCTR)``. It is never above the ad's own bid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adsys.validation import (
    as_1d,
    as_2d,
    check_int,
    check_nonnegative,
    check_probabilities,
    check_range,
    check_same_length,
    check_same_shape,
)


@dataclass(frozen=True)
class BatchAuctionResult:
    """Outcome of many auctions, one row per request.

    Attributes
    ----------
    slots : (n_requests, width) int array
        Candidate index shown in each slot, best first; -1 where the slot is unfilled.
        ``width = min(n_slots, max_candidates)``: slots no candidate could fill are
        not stored.
    prices : (n_requests, width) float array
        Cost per click of each slot's ad; 0 where unfilled.
    ecpm : (n_requests, width) float array
        eCPM (1000 x bid x pCTR, dollars per thousand impressions) of each slot's ad;
        0 where unfilled.
    """

    slots: np.ndarray
    prices: np.ndarray
    ecpm: np.ndarray


@dataclass(frozen=True)
class AuctionResult:
    """Outcome of one auction; every array has one entry per filled slot, best first.

    Attributes
    ----------
    slots : 1-D int array
        Candidate indices in slot order (possibly fewer than ``n_slots``).
    prices : 1-D float array
        Cost per click of each filled slot.
    ecpm : 1-D float array
        eCPM (1000 x bid x pCTR, dollars per thousand impressions) of each filled slot.
    """

    slots: np.ndarray
    prices: np.ndarray
    ecpm: np.ndarray


def run_auctions(bids, pctr, n_slots: int, reserve: float = 0.0) -> BatchAuctionResult:
    """Run one GSP auction per row, vectorized over rows.

    Parameters
    ----------
    bids : (n_requests, max_candidates) array_like
        Maximum cost per click, >= 0. Pad short rows with 0.
    pctr : (n_requests, max_candidates) array_like
        Position-1 click probabilities in [0, 1]. Pad short rows with 0.
    n_slots : int
        Number of ad slots per request, >= 1.
    reserve : float
        Minimum eCPM to be shown, in dollars per thousand impressions (>= 0).

    Returns
    -------
    BatchAuctionResult
        Slots, prices and eCPMs, padded with -1 / 0 where fewer ads are eligible.
    """
    bids = check_nonnegative("bids", as_2d("bids", bids))
    pctr = check_probabilities("pctr", as_2d("pctr", pctr))
    check_same_shape(bids=bids, pctr=pctr)
    n_slots = check_int("n_slots", n_slots, 1)
    reserve = check_range("reserve", reserve, 0.0, np.inf)

    # One padding column, so the runner-up of the last slot always exists.
    n_requests, n_candidates = bids.shape
    n_slots = min(n_slots, n_candidates)
    width = n_candidates + 1
    padded_bids = np.zeros((n_requests, width))
    padded_pctr = np.zeros((n_requests, width))
    padded_bids[:, :n_candidates] = bids
    padded_pctr[:, :n_candidates] = pctr

    ecpm = 1000.0 * padded_bids * padded_pctr
    score = np.where((ecpm > 0) & (ecpm >= reserve), ecpm, -np.inf)
    # A stable sort of -score keeps equal eCPMs in index order: lower index wins ties.
    order = np.argsort(-score, axis=1, kind="stable")[:, : n_slots + 1]
    ranked = np.take_along_axis(score, order, axis=1)
    winners = order[:, :n_slots]
    filled = np.isfinite(ranked[:, :n_slots])

    win_bid = np.take_along_axis(padded_bids, winners, axis=1)
    win_pctr = np.take_along_axis(padded_pctr, winners, axis=1)
    threshold = np.maximum(ranked[:, 1:], reserve)  # -inf (no next candidate) -> reserve
    prices = np.divide(threshold, 1000.0 * win_pctr, out=np.zeros_like(threshold),
                       where=filled)
    return BatchAuctionResult(
        slots=np.where(filled, winners, -1),
        prices=np.minimum(prices, win_bid),
        ecpm=np.where(filled, ranked[:, :n_slots], 0.0),
    )


def run_auction(bids, pctr, n_slots: int = 1, reserve: float = 0.0) -> AuctionResult:
    """Run one GSP auction (the single-request path; same rules as :func:`run_auctions`).

    Parameters
    ----------
    bids : 1-D array_like
        Maximum cost per click of each candidate, >= 0.
    pctr : 1-D array_like
        Position-1 click probability of each candidate, in [0, 1].
    n_slots : int
        Number of ad slots, >= 1.
    reserve : float
        Minimum eCPM to be shown, in dollars per thousand impressions (>= 0).

    Returns
    -------
    AuctionResult
        Filled slots only, best first: ``slots``, ``prices`` (cost per click, at least
        ``reserve / (1000 x pctr)`` and never above the bid) and ``ecpm``.
    """
    bids = as_1d("bids", bids, allow_empty=True)
    pctr = as_1d("pctr", pctr, allow_empty=True)
    check_same_length(bids=bids, pctr=pctr)
    batch = run_auctions(bids[np.newaxis], pctr[np.newaxis], n_slots, reserve)
    n_filled = int(np.count_nonzero(batch.slots[0] >= 0))  # filled slots come first
    return AuctionResult(
        slots=batch.slots[0, :n_filled],
        prices=batch.prices[0, :n_filled],
        ecpm=batch.ecpm[0, :n_filled],
    )
