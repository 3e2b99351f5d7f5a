"""Counterfactual replay: what another click model would have shown, and earned, on the
same requests.

A simulator's privilege. The logged candidates of a request (the K ads the selector
passed to the click model, with the features as served) go through the auction again
with another model's pCTRs; the world's truth then says how likely each ad shown is to
be clicked at its slot, so expected clicks and revenue need no click draw. Every
model faces the same requests and candidates: a paired comparison without the noise
of clicks. A real platform cannot know the truth; it estimates the same quantity
off-policy (Step 6) or A/B tests it.

What the replay leaves out: the candidates were chosen by the logged selector,
budgets and pacing are those of the logged run, exposures are those the logged
features saw (a repeat within one serving step is not counted), and the replayed
model's choices do not feed back into the logs it would have trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adsys.auction import run_auctions
from adsys.validation import as_1d, check_int, check_probabilities, check_range
from adsys.world import World

__all__ = ["replay_auction"]

_CANDIDATE_COLUMNS = ("request_id", "ad_id", "bid", "f_log_exposures")
_REQUEST_COLUMNS = ("request_id", "user", "publisher", "hour")


def replay_auction(world: World, candidates: pd.DataFrame, requests: pd.DataFrame,
                   pctr: ArrayLike, day: int, reserve: float) -> pd.DataFrame:
    """Run the auction on logged candidates with new pCTRs; value the result with truth.

    Parameters
    ----------
    world : World
        The truth that values each ad shown.
    candidates : DataFrame
        Logged candidates (``DayResult.candidates`` or the store's ``candidates``
        table) of requests of ``day``, grouped by request: ``request_id``, ``ad_id``,
        ``bid`` and the ``f_`` features (``f_log_exposures`` gives the exposures).
    requests : DataFrame
        The day's request log (``request_id``, ``user``, ``publisher``, ``hour``).
    pctr : array of floats
        The replayed model's position-1 pCTR of each candidate.
    day : int
        The day of the requests.
    reserve : float
        Minimum eCPM, dollars per thousand impressions.

    Returns
    -------
    DataFrame
        One row per ad shown: ``request_id``, ``ad_id``, ``position``, ``price`` (GSP
        cost per click), ``true_p`` (the world's click probability at that slot) and
        ``expected_revenue`` (``price x true_p``).
    """
    for name, frame, columns in (("candidates", candidates, _CANDIDATE_COLUMNS),
                                 ("requests", requests, _REQUEST_COLUMNS)):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{name} must be a DataFrame; got {type(frame).__name__}")
        missing = [c for c in columns if c not in frame]
        if missing:
            raise ValueError(f"{name} is missing columns {missing}")
    p = check_probabilities("pctr", as_1d("pctr", pctr, allow_empty=True))
    if len(p) != len(candidates):
        raise ValueError(f"pctr must give one value per candidate ({len(candidates)}); "
                         f"got {len(p)}")
    day = check_int("day", day, 0)
    reserve = check_range("reserve", reserve, 0, np.inf)
    request_id = candidates["request_id"].to_numpy()
    if np.any(np.diff(request_id) < 0):
        raise ValueError("candidates must be grouped by request, in request order")
    ids, start, counts = np.unique(request_id, return_index=True, return_counts=True)
    row = np.repeat(np.arange(len(ids)), counts)
    column = np.arange(len(request_id)) - np.repeat(start, counts)
    width = int(counts.max(initial=0))
    bids, scores = np.zeros((len(ids), width)), np.zeros((len(ids), width))
    bids[row, column] = candidates["bid"].to_numpy(float)
    scores[row, column] = p
    result = run_auctions(bids, scores, world.view.n_slots, reserve)
    won_row, slot = np.nonzero(result.slots >= 0)
    pick = start[won_row] + result.slots[won_row, slot]
    context = requests.set_index("request_id").loc[ids[won_row]]
    exposures = np.rint(np.expm1(candidates["f_log_exposures"].to_numpy(float)[pick]))
    ads = candidates["ad_id"].to_numpy()[pick]
    true_p = world.click_probability(context["user"].to_numpy(), ads,
                                     context["publisher"].to_numpy(),
                                     context["hour"].to_numpy(), slot + 1, day,
                                     exposures.astype(np.int64))
    price = result.prices[won_row, slot]
    return pd.DataFrame({"request_id": ids[won_row], "ad_id": ads, "position": slot + 1,
                         "price": price, "true_p": true_p,
                         "expected_revenue": price * true_p})
