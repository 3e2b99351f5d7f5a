"""The naive random server: the baseline every later chapter improves on.

It shows each request ``n_slots`` ads drawn uniformly at random among the active
ads whose targeting accepts the user (the platform's :class:`~adsys.index.AdIndex`
decides), with no model and no auction, and lets the world draw the clicks. Its logs
are unbiased by any model (every eligible ad had the same chance), which makes them
the cleanest data for looking at position and interest effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adsys.history import ExposureCounter
from adsys.index import AdIndex
from adsys.observable import Requests
from adsys.serving import AdServer
from adsys.validation import check_int, check_range
from adsys.world import World

CANDIDATE_DRAWS = 60  # random ads tried per request; enough to fill the slots almost always


def prior_exposures(users: np.ndarray, ads: np.ndarray,
                    counter: ExposureCounter | None = None) -> np.ndarray:
    """Times each impression's user had already seen its ad today, impressions in time order.

    ``counter`` holds the exposures before this batch (``None``: none); repeats of a
    (user, ad) pair inside the batch count too.
    """
    keys = np.asarray(users, np.int64) * (int(np.max(ads, initial=0)) + 1) + np.asarray(ads)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    start = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if len(keys) else np.zeros(0, bool)
    index = np.arange(len(keys))
    within = np.empty(len(keys), np.int64)
    within[order] = index - np.maximum.accumulate(np.where(start, index, 0))
    before = 0 if counter is None else counter.counts(users, ads)
    return before + within


def serve_random(world: World, day: int, n_requests: int, rng: np.random.Generator,
                 with_truth: bool = True) -> pd.DataFrame:
    """Serve ``n_requests`` requests of ``day`` at random; return the impression log.

    One row per impression with request_id, time, hour, user_id, publisher_id,
    device, ad_id, campaign_id, position (1-based), max_cpc, exposures (times the user
    already saw the ad in this log) and clicked. With ``with_truth`` the row also
    carries ``true_p``, the world's click probability, which no real log has.
    """
    view = world.view
    req = world.requests(day, rng, n=check_int("n_requests", n_requests, 1))
    slots = view.n_slots
    active = np.flatnonzero(view.active_ads(day))
    draws = rng.choice(active, size=(len(req), CANDIDATE_DRAWS))
    users = np.repeat(req.user[:, None], CANDIDATE_DRAWS, axis=1)
    ok = AdIndex(view).matches(users.ravel(), draws.ravel()).reshape(draws.shape)
    # Drop repeats of an ad within a request, then keep the first `slots` matches.
    sorted_draws = np.sort(draws, axis=1)
    repeat = np.zeros_like(ok)
    repeat[:, 1:] = sorted_draws[:, 1:] == sorted_draws[:, :-1]
    order = np.argsort(draws, axis=1, kind="stable")
    np.put_along_axis(ok, order, np.take_along_axis(ok, order, axis=1) & ~repeat, axis=1)
    rank = np.cumsum(ok, axis=1)
    row, col = np.nonzero(ok & (rank <= slots))
    ads = draws[row, col]
    campaign = view.ads["campaign_id"].to_numpy()[ads]
    log = pd.DataFrame({
        "request_id": req.request_id[row],
        "time": req.time[row],
        "hour": req.hour[row],
        "user_id": req.user[row],
        "publisher_id": req.publisher[row],
        "device": req.device[row],
        "ad_id": ads,
        "campaign_id": campaign,
        "position": rank[row, col],
        "max_cpc": view.campaigns["max_cpc"].to_numpy()[campaign],
        "exposures": prior_exposures(req.user[row], ads),
    })
    p = world.click_probability(log["user_id"], log["ad_id"], log["publisher_id"],
                                log["hour"], log["position"], day, log["exposures"])
    log["clicked"] = world.draw_clicks(p, rng).astype(np.int8)
    if with_truth:
        log["true_p"] = p
    return log


def serve_shuffled(world: World, server: AdServer, requests: Requests, day: int,
                   rng: np.random.Generator, share: float = 1.0, steps: int = 24,
                   with_truth: bool = True) -> pd.DataFrame:
    """A randomized-slot experiment: serve as usual, then shuffle the slots of some requests.

    Every request goes through ``server`` (index, selector, click model, auction;
    no pacing), in ``steps`` batches in time order. For a random ``share`` of the
    requests, the experiment, the ads that won are shown in a random order of the
    slots they filled; the other requests keep the auction's order. The world then
    draws the clicks at the slots shown. In the experiment every slot sees the same
    ads on average, so its click rates measure the position effect alone
    (:func:`adsys.position.relative_examination`), at the price of the clicks lost
    when a good ad lands low.

    Impressions are counted into ``server.exposures`` after each batch, as in
    :func:`adsys.simulate.simulate_day`, so that the frequency feature of later
    batches sees them; a server without an ``ExposureCounter`` scores every
    candidate as a first exposure, while the world's clicks still feel the fatigue.

    Returns
    -------
    pandas.DataFrame
        The impression log of :meth:`AdServer.serve` (one row per impression, in
        request order) with ``position`` the slot shown (``f_position`` too), plus
        ``auction_position`` (the slot the auction gave), ``shuffled`` (the request
        is in the experiment), ``slots_filled`` (ads shown in the request: only
        requests that fill every slot give every slot the same mix of ads),
        ``exposures``, ``clicked`` and, with ``with_truth``, ``true_p``. Prices are
        the auction's, per click: generalized second prices computed from
        position-1 pCTRs do not depend on the slot.
    """
    share = check_range("share", share, 0, 1)
    day = check_int("day", day, 0)
    steps = check_int("steps", steps, 1)
    counter = server.exposures if server.exposures is not None else ExposureCounter(
        server.view.n_ads)
    bounds = np.linspace(0, len(requests), steps + 1).astype(np.int64)
    logs = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        log = server.serve(requests.take(slice(start, stop)), day)
        users, ads = log["user_id"].to_numpy(), log["ad_id"].to_numpy()
        log["exposures"] = prior_exposures(users, ads, counter)
        counter.record(users, ads)
        logs.append(log)
    log = pd.concat(logs, ignore_index=True)
    request = log["request_id"].to_numpy()
    n = len(log)
    starts = np.r_[True, request[1:] != request[:-1]] if n else np.zeros(0, bool)
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    in_experiment = rng.random(len(first)) < share
    order = np.lexsort((rng.random(n), group))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - first[group[order]]
    auction_position = log["position"].to_numpy()
    position = np.where(in_experiment[group], rank + 1, auction_position)
    log["auction_position"] = auction_position
    log["position"] = position
    log["f_position"] = pd.Categorical.from_codes(position - 1,
                                                  dtype=log["f_position"].dtype)
    log["shuffled"] = in_experiment[group]
    log["slots_filled"] = np.diff(np.r_[first, n])[group]
    p = world.click_probability(log["user_id"].to_numpy(), log["ad_id"].to_numpy(),
                                log["publisher_id"].to_numpy(), log["hour"].to_numpy(),
                                position, day, log["exposures"].to_numpy())
    log["clicked"] = world.draw_clicks(p, rng).astype(np.int8)
    if with_truth:
        log["true_p"] = p
    return log
