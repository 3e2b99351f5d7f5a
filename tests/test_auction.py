"""GSP auction with a reserve price: worked examples, properties and input checks.

eCPM is in dollars per thousand impressions, ``1000 x bid x pCTR``, and so is the
reserve; prices are per click.
"""

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
RESERVES = st.one_of(st.sampled_from([0.0, 10.0, 50.0]), st.floats(0, 500, allow_subnormal=False))


@st.composite
def auctions(draw, min_candidates: int = 0):
    n = draw(st.integers(min_candidates, 8))
    bids = np.array(draw(st.lists(BIDS, min_size=n, max_size=n)))
    pctr = np.array(draw(st.lists(PCTRS, min_size=n, max_size=n)))
    return bids, pctr, draw(st.integers(1, 4)), draw(RESERVES)


def reference_gsp(bids, pctr, n_slots, reserve):
    """Slow reference: sort the eligible candidates in Python, then price each slot."""
    ecpm = [1000.0 * b * p for b, p in zip(bids, pctr, strict=True)]
    eligible = [i for i, e in enumerate(ecpm) if e > 0 and e >= reserve]
    ranked = sorted(eligible, key=lambda i: (-ecpm[i], i))
    slots = ranked[:n_slots]
    prices = []
    for s, i in enumerate(slots):
        runner_up = ecpm[ranked[s + 1]] if s + 1 < len(ranked) else 0.0
        prices.append(min(bids[i], max(runner_up, reserve) / (1000.0 * pctr[i])))
    return slots, prices


def test_worked_example():
    # eCPM = 1000 x bid x pCTR: $100, $200, $80, $50 per mille. Candidate 1 takes slot 1
    # and pays the eCPM of candidate 0 over 1000 x its own pCTR, 100 / 200 = 0.50 per
    # click; candidate 0 takes slot 2 and pays 80 / 50 = 1.60 per click (below its bid).
    bids = [2.0, 1.0, 4.0, 0.5]
    pctr = [0.05, 0.20, 0.02, 0.10]
    result = run_auction(bids, pctr, n_slots=2, reserve=30.0)
    assert result.slots.tolist() == [1, 0]
    assert result.prices == pytest.approx([0.50, 1.60])
    assert result.ecpm == pytest.approx([200.0, 100.0])

    # With a reserve of $90 per mille only candidates 1 and 0 qualify, so a third slot
    # stays empty and candidate 0 pays the reserve floor 90 / (1000 x 0.05) = 1.80.
    result = run_auction(bids, pctr, n_slots=3, reserve=90.0)
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
    # Width min(n_slots, candidates) = 2: a third slot no candidate could fill is not stored.
    batch = run_auctions([[1.0, 2.0], [0.0, 0.0]], [[0.1, 0.1], [0.0, 0.0]], n_slots=3)
    assert batch.slots.tolist() == [[1, 0], [-1, -1]]
    assert batch.prices.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert batch.ecpm.tolist() == [[200.0, 100.0], [0.0, 0.0]]
    batch = run_auctions([[1.0, 2.0, 0.5]], [[0.1, 0.1, 0.0]], n_slots=3)
    assert batch.slots.tolist() == [[1, 0, -1]]


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
    ecpm = 1000.0 * bids * pctr
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
    assert result.prices[0] == pytest.approx(min(second / (1000 * pctr[winner]), bids[winner]))


@given(auctions())
def test_prices_lie_between_reserve_floor_and_bid(case):
    bids, pctr, n_slots, reserve = case
    result = run_auction(bids, pctr, n_slots, reserve)
    shown_bids, shown_pctr = bids[result.slots], pctr[result.slots]
    assert np.all(result.prices <= shown_bids)
    assert np.all(result.prices >= (reserve / (1000 * shown_pctr)) * (1 - 1e-12))
    # Per mille: what a thousand impressions of a winner earn reaches the reserve.
    assert np.all(1000 * result.prices * shown_pctr >= reserve * (1 - 1e-12))


@given(auctions())
def test_slots_are_in_ecpm_order_and_respect_the_reserve(case):
    bids, pctr, n_slots, reserve = case
    ecpm = 1000.0 * bids * pctr
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
    ceiling = (result.ecpm[slot - 1] / (1000.0 * pctr[winner]) if slot > 0
               else 10 * bids[winner] + 1)
    raised = bids.copy()
    raised[winner] = bids[winner] + fraction * (ceiling - bids[winner])
    assume(raised[winner] > bids[winner])
    assume(slot == 0 or 1000.0 * raised[winner] * pctr[winner] < result.ecpm[slot - 1])
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
    assert batch.slots.shape == batch.prices.shape == (len(rows), min(n_slots, width))
    for r, (row_bids, row_pctr, *_) in enumerate(rows):
        single = run_auction(row_bids, row_pctr, n_slots, reserve)
        filled = len(single.slots)
        assert batch.slots[r, :filled].tolist() == single.slots.tolist()
        assert batch.prices[r, :filled].tolist() == single.prices.tolist()
        assert np.all(batch.slots[r, filled:] == -1) and np.all(batch.prices[r, filled:] == 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"bids": [1.0, -0.5]}, ValueError, "bids"),
        ({"bids": [1.0, np.nan]}, ValueError, "bids"),
        ({"bids": [[1.0, 2.0]]}, ValueError, "bids"),
        ({"bids": "1.0"}, TypeError, "bids"),
        ({"pctr": [0.1, 1.5]}, ValueError, "pctr"),
        ({"pctr": [0.1, -0.1]}, ValueError, "pctr"),
        ({"pctr": [0.1, np.nan]}, ValueError, "pctr"),
        ({"pctr": [0.1]}, ValueError, "pctr"),
        ({"n_slots": 0}, ValueError, "n_slots"),
        ({"n_slots": 1.5}, TypeError, "n_slots"),
        ({"n_slots": 2.0}, TypeError, "n_slots"),
        ({"n_slots": None}, TypeError, "n_slots"),
        ({"reserve": -0.1}, ValueError, "reserve"),
        ({"reserve": np.nan}, ValueError, "reserve"),
        ({"reserve": np.inf}, ValueError, "reserve"),
        ({"reserve": None}, TypeError, "reserve"),
        ({"reserve": "1.0"}, TypeError, "reserve"),
    ],
)
def test_run_auction_rejects_bad_input(kwargs, error, name):
    args = {"bids": [1.0, 2.0], "pctr": [0.1, 0.2], "n_slots": 1, "reserve": 0.0} | kwargs
    with pytest.raises(error, match=name):
        run_auction(**args)


def test_huge_n_slots_returns_at_most_the_candidates():
    """No slot array is sized by n_slots: a huge value neither raises MemoryError nor
    pads the result beyond the candidates."""
    result = run_auction([1.0, 2.0, 0.5], [0.1, 0.1, 0.2], n_slots=10**12)
    assert result.slots.tolist() == [1, 0, 2]
    batch = run_auctions([[1.0, 2.0, 0.5]] * 4, [[0.1, 0.1, 0.2]] * 4, n_slots=2**62)
    assert batch.slots.shape == batch.prices.shape == batch.ecpm.shape == (4, 3)
    assert run_auction([], [], n_slots=np.iinfo(np.int64).max).slots.size == 0


def test_numpy_integers_are_accepted_for_n_slots():
    for n_slots in (np.int64(2), np.int32(2), np.uint8(2)):
        assert run_auction([1.0, 2.0, 0.5], [0.1, 0.1, 0.2], n_slots=n_slots).slots.size == 2


def test_ecpm_is_per_mille_and_the_reserve_too():
    # One candidate: eCPM = 1000 x 0.50 x 0.02 = $10 per mille. A reserve of $10 per mille
    # is met exactly (price = floor = 10 / (1000 x 0.02) = 0.50 = the bid), $10.01 is not.
    met = run_auction([0.5], [0.02], reserve=10.0)
    assert met.slots.tolist() == [0]
    assert met.ecpm == pytest.approx([10.0])
    assert met.prices == pytest.approx([0.5])
    assert run_auction([0.5], [0.02], reserve=10.01).slots.size == 0
    # A reserve of 0.01 is a cent per thousand impressions, not per impression.
    assert run_auction([0.5], [0.02], reserve=0.01).slots.tolist() == [0]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"bids": [1.0, 2.0]}, ValueError, "bids"),
        ({"bids": [[1.0, -2.0]]}, ValueError, "bids"),
        ({"pctr": [[0.1, 0.2, 0.3]]}, ValueError, "pctr"),
        ({"pctr": [[0.1, 2.0]]}, ValueError, "pctr"),
        ({"pctr": [[0.1, np.nan]]}, ValueError, "pctr"),
        ({"reserve": None}, TypeError, "reserve"),
        ({"n_slots": 1.0}, TypeError, "n_slots"),
    ],
)
def test_run_auctions_rejects_bad_input(kwargs, error, name):
    args = {"bids": [[1.0, 2.0]], "pctr": [[0.1, 0.2]], "n_slots": 1} | kwargs
    with pytest.raises(error, match=name):
        run_auctions(**args)
