"""The naive random server: the baseline every later chapter improves on.

It shows each request ``n_slots`` ads drawn uniformly at random among the active
ads whose targeting matches the user, with no model and no auction. Its logs are
unbiased by any model (every eligible ad had the same chance), which makes them
the cleanest data for looking at position and interest effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adsys.world import World

CANDIDATE_DRAWS = 40  # random ads tried per request; enough to fill the slots almost always


def serve_random(world: World, day: int, n_requests: int, rng: np.random.Generator,
                 with_truth: bool = True) -> pd.DataFrame:
    """Serve ``n_requests`` requests of ``day`` at random; return the impression log.

    One row per impression with request_id, time, hour, user_id, publisher_id,
    device, ad_id, campaign_id, position (1-based), max_cpc and clicked. With
    ``with_truth`` the row also carries ``true_p``, the world's click probability,
    which no real log has.
    """
    req = world.requests(day, rng, n=n_requests)
    slots = world.config.n_slots
    active = np.flatnonzero(world.active_ads(day))
    draws = rng.choice(active, size=(len(req), CANDIDATE_DRAWS))
    users = np.repeat(req.user[:, None], CANDIDATE_DRAWS, axis=1)
    ok = world.matches_targeting(users.ravel(), draws.ravel()).reshape(draws.shape)
    # Drop repeats of an ad within a request, then keep the first `slots` matches.
    sorted_draws = np.sort(draws, axis=1)
    repeat = np.zeros_like(ok)
    repeat[:, 1:] = sorted_draws[:, 1:] == sorted_draws[:, :-1]
    order = np.argsort(draws, axis=1, kind="stable")
    np.put_along_axis(ok, order, np.take_along_axis(ok, order, axis=1) & ~repeat, axis=1)
    rank = np.cumsum(ok, axis=1)
    row, col = np.nonzero(ok & (rank <= slots))
    ads = draws[row, col]
    position = rank[row, col]
    campaign = world.ads["campaign_id"].to_numpy()[ads]
    log = pd.DataFrame({
        "request_id": req.request_id[row],
        "time": req.time[row],
        "hour": req.hour[row],
        "user_id": req.user[row],
        "publisher_id": req.publisher[row],
        "device": req.device[row],
        "ad_id": ads,
        "campaign_id": campaign,
        "position": position,
        "max_cpc": world.campaigns["max_cpc"].to_numpy()[campaign],
    })
    p = world.click_probability(log["user_id"], log["ad_id"], log["publisher_id"],
                                log["hour"], log["position"], day)
    log["clicked"] = world.draw_clicks(p, rng).astype(np.int8)
    if with_truth:
        log["true_p"] = p
    return log
