"""GSP auction with a reserve price: worked examples, properties and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from adsys.auction import run_auction, run_auctions

# Values on small grids make ties in eCPM common; the free floats cover the rest.
BIDS = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0]), st.floats(0, 10, allow_subnormal=False)
)
PCTRS = st.one_of(
    st.sampled_from([0.0, 0.01, 0.02, 0.05, 0.1]), st.floats(0, 1, allow_subnormal=False)
)
RESERVES = st.one_of(st.sampled_from([0.0, 0.01, 0.05]), st.floats(0, 0.5, allow_subnormal=False))


@st.composite
def auctions(draw, min_candidates: int = 0):
    n = draw(st.integers(min_candidates, 8))
    bids = np.array(draw(st.lists(BIDS, min_size=n, max_size=n)))
    pctr = np.array(draw(st.lists(PCTRS, min_size=n, max_size=n)))
    return bids, pctr, draw(st.integers(1, 4)), draw(RESERVES)


def reference_gsp(bids, pctr, n_slots, reserve):
    """Slow reference: sort the eligible candidates in Python, then price each slot."""
    ecpm = [b * p for b, p in zip(bids, pctr, strict=True)]
    eligible = [i for i, e in enumerate(ecpm) if e > 0 and e >= reserve]
    ranked = sorted(eligible, key=lambda i: (-ecpm[i], i))
    slots = ranked[:n_slots]
    prices = []
    for s, i in enumerate(slots):
        runner_up = ecpm[ranked[s + 1]] if s + 1 < len(ranked) else 0.0
        prices.append(min(bids[i], max(runner_up, reserve) / pctr[i]))
    return slots, prices


def test_worked_example():
    # eCPM = bid x pCTR: 0.10, 0.20, 0.08, 0.05. Candidate 1 takes slot 1 and pays the
    # eCPM of candidate 0 over its own pCTR, 0.10 / 0.20 = 0.50 per click; candidate 0
    # takes slot 2 and pays 0.08 / 0.05 = 1.60 per click (below its bid of 2.00).
    bids = [2.0, 1.0, 4.0, 0.5]
    pctr = [0.05, 0.20, 0.02, 0.10]
    result = run_auction(bids, pctr, n_slots=2, reserve=0.03)
    assert result.slots.tolist() == [1, 0]
    assert result.prices == pytest.approx([0.50, 1.60])
    assert result.ecpm == pytest.approx([0.20, 0.10])

    # With a reserve eCPM of 0.09 only candidates 1 and 0 qualify, so a third slot stays
    # empty and candidate 0 pays the reserve floor 0.09 / 0.05 = 1.80 per click.
    result = run_auction(bids, pctr, n_slots=3, reserve=0.09)
    assert result.slots.tolist() == [1, 0]
    assert result.prices == pytest.approx([0.50, 1.80])


def test_ties_go_to_the_lower_candidate_index():
    result = run_auction([1.0, 2.0, 1.0, 2.0], [0.2, 0.1, 0.2, 0.1], n_slots=3)
    assert result.slots.tolist() == [0, 1, 2]
    assert result.prices == pytest.approx([1.0, 2.0, 1.0])


def test_zero_bids_and_zero_pctr_are_never_shown():
    result = run_auction([0.0, 3.0, 1.0], [0.5, 0.0, 0.1], n_slots=3)
    assert result.slots.tolist() == [2]
    assert result.prices.tolist() == [0.0]  # no runner-up and no reserve


def test_empty_request_fills_no_slot():
    result = run_auction([], [], n_slots=2)
    assert result.slots.size == 0 and result.prices.size == 0


def test_batch_pads_unfilled_slots():
    batch = run_auctions([[1.0, 2.0], [0.0, 0.0]], [[0.1, 0.1], [0.0, 0.0]], n_slots=3)
    assert batch.slots.tolist() == [[1, 0, -1], [-1, -1, -1]]
    assert batch.prices.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


@given(auctions())
def test_matches_slow_reference(case):
    bids, pctr, n_slots, reserve = case
    result = run_auction(bids, pctr, n_slots, reserve)
    slots, prices = reference_gsp(bids, pctr, n_slots, reserve)
    assert result.slots.tolist() == slots
    np.testing.assert_allclose(result.prices, prices, rtol=1e-12)


@given(auctions())
def test_one_slot_is_a_second_price_auction_on_ecpm(case):
    bids, pctr, _, reserve = case
    ecpm = bids * pctr
    eligible = (ecpm > 0) & (ecpm >= reserve)
    result = run_auction(bids, pctr, n_slots=1, reserve=reserve)
    if not eligible.any():
        assert result.slots.size == 0
        return
    scores = np.where(eligible, ecpm, -1.0)
    winner = int(np.argmax(scores))  # first maximum: lower index wins a tie
    scores[winner] = -1.0
    second = max(scores.max(), reserve)
    assert result.slots.tolist() == [winner]
    assert result.prices[0] == pytest.approx(min(second / pctr[winner], bids[winner]))


@given(auctions())
def test_prices_lie_between_reserve_floor_and_bid(case):
    bids, pctr, n_slots, reserve = case
    result = run_auction(bids, pctr, n_slots, reserve)
    shown_bids, shown_pctr = bids[result.slots], pctr[result.slots]
    assert np.all(result.prices <= shown_bids)
    assert np.all(result.prices >= (reserve / shown_pctr) * (1 - 1e-12))


@given(auctions())
def test_slots_are_in_ecpm_order_and_respect_the_reserve(case):
    bids, pctr, n_slots, reserve = case
    ecpm = bids * pctr
    result = run_auction(bids, pctr, n_slots, reserve)
    assert np.array_equal(result.ecpm, ecpm[result.slots])
    assert np.all(np.diff(result.ecpm) <= 0)
    assert np.all(result.ecpm >= reserve) and np.all(result.ecpm > 0)
    n_eligible = np.count_nonzero((ecpm > 0) & (ecpm >= reserve))
    assert len(result.slots) == min(n_slots, n_eligible)


@given(auctions(min_candidates=1), st.floats(0.01, 1.0), st.data())
def test_winner_price_does_not_depend_on_its_own_bid(case, fraction, data):
    bids, pctr, n_slots, reserve = case
    result = run_auction(bids, pctr, n_slots, reserve)
    assume(result.slots.size > 0)
    slot = data.draw(st.integers(0, result.slots.size - 1))
    winner = result.slots[slot]
    # Raise the bid, but keep the eCPM below that of the slot above to keep the slot.
    ceiling = result.ecpm[slot - 1] / pctr[winner] if slot > 0 else 10 * bids[winner] + 1
    raised = bids.copy()
    raised[winner] = bids[winner] + fraction * (ceiling - bids[winner])
    assume(raised[winner] > bids[winner])
    assume(slot == 0 or raised[winner] * pctr[winner] < result.ecpm[slot - 1])
    again = run_auction(raised, pctr, n_slots, reserve)
    assert again.slots[slot] == winner
    assert again.prices[slot] == pytest.approx(result.prices[slot], rel=1e-12)


@given(st.lists(auctions(), min_size=1, max_size=6), st.integers(1, 4), RESERVES)
def test_batch_equals_single_auctions_row_by_row(rows, n_slots, reserve):
    width = max(len(bids) for bids, *_ in rows)
    bids = np.zeros((len(rows), width))
    pctr = np.zeros((len(rows), width))
    for r, (row_bids, row_pctr, *_) in enumerate(rows):
        bids[r, : len(row_bids)] = row_bids
        pctr[r, : len(row_pctr)] = row_pctr
    batch = run_auctions(bids, pctr, n_slots, reserve)
    assert batch.slots.shape == batch.prices.shape == (len(rows), n_slots)
    for r, (row_bids, row_pctr, *_) in enumerate(rows):
        single = run_auction(row_bids, row_pctr, n_slots, reserve)
        filled = len(single.slots)
        assert batch.slots[r, :filled].tolist() == single.slots.tolist()
        assert batch.prices[r, :filled].tolist() == single.prices.tolist()
        assert np.all(batch.slots[r, filled:] == -1) and np.all(batch.prices[r, filled:] == 0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"bids": [1.0, -0.5]}, "bids"),
        ({"bids": [1.0, np.nan]}, "bids"),
        ({"bids": [[1.0, 2.0]]}, "bids"),
        ({"pctr": [0.1, 1.5]}, "pctr"),
        ({"pctr": [0.1, -0.1]}, "pctr"),
        ({"pctr": [0.1, np.nan]}, "pctr"),
        ({"pctr": [0.1]}, "pctr"),
        ({"n_slots": 0}, "n_slots"),
        ({"n_slots": 1.5}, "n_slots"),
        ({"reserve": -0.1}, "reserve"),
        ({"reserve": np.nan}, "reserve"),
    ],
)
def test_run_auction_rejects_bad_input(kwargs, name):
    args = {"bids": [1.0, 2.0], "pctr": [0.1, 0.2], "n_slots": 1, "reserve": 0.0} | kwargs
    with pytest.raises(ValueError, match=name):
        run_auction(**args)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"bids": [1.0, 2.0]}, "bids"),
        ({"bids": [[1.0, -2.0]]}, "bids"),
        ({"pctr": [[0.1, 0.2, 0.3]]}, "pctr"),
        ({"pctr": [[0.1, 2.0]]}, "pctr"),
    ],
)
def test_run_auctions_rejects_bad_input(kwargs, name):
    args = {"bids": [[1.0, 2.0]], "pctr": [[0.1, 0.2]], "n_slots": 1} | kwargs
    with pytest.raises(ValueError, match=name):
        run_auctions(**args)
