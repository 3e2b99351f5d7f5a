"""Exploration traffic logs the right propensities; user-split experiments are stable.

The server's epsilon-greedy slot 1: with probability ``1 - eps`` the auction's winner,
with probability ``eps`` a uniform draw among the auction-eligible candidates, so a
candidate's chance of slot 1 is ``eps / n_eligible``, plus ``1 - eps`` for the winner.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from adsys.auction import run_auction
from adsys.experiment import assign_arm
from adsys.history import ExposureCounter
from adsys.serving import AdServer, SplitServer
from adsys.simulate import SimulationConfig, simulate_day
from adsys.world import World

RESERVE = 1.0


class ScoreModel:
    """A fixed click model: a deterministic pCTR from a few features (no training)."""

    def __init__(self, tilt: float = 0.0) -> None:
        self.tilt = tilt

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        campaign = features["campaign_id"].cat.codes.to_numpy()
        logit = (-4.5 + 0.8 * features["page_topic_match"].to_numpy()
                 + 0.7 * features["declared_interest"].to_numpy()
                 + 0.4 * np.sin(campaign * (1.3 + self.tilt)))
        return 1 / (1 + np.exp(-logit))


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


def _server(world: World, eps: float, **kwargs) -> AdServer:
    return AdServer(world.view, ScoreModel(), k=10, reserve=RESERVE, exploration=eps,
                    log_candidates=True, **kwargs)


def _expected_propensity(candidates: pd.DataFrame, eps: float) -> np.ndarray:
    """The epsilon-greedy formula, with the winner found by the single-request auction."""
    expected = np.zeros(len(candidates))
    for _, rows in candidates.groupby("request_id", sort=False).indices.items():
        bids = candidates["bid"].to_numpy()[rows]
        pctr = candidates["pctr"].to_numpy()[rows]
        ecpm = 1000 * bids * pctr
        eligible = (ecpm > 0) & (ecpm >= RESERVE)
        if not eligible.any():
            continue
        winner = run_auction(bids, pctr, n_slots=1, reserve=RESERVE).slots[0]
        p = np.where(eligible, eps / eligible.sum(), 0.0)
        p[winner] += 1 - eps
        expected[rows] = p
    return expected


@pytest.fixture(scope="module")
def served(world: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    requests = world.requests(0, np.random.default_rng(1), n=1_500)
    server = _server(world, 0.2)
    log = server.serve(requests, day=0, rng=np.random.default_rng(2))
    return log, server.candidates


def test_candidate_propensities_follow_the_epsilon_greedy_formula(served: tuple) -> None:
    _, candidates = served
    np.testing.assert_allclose(candidates["propensity"], _expected_propensity(candidates, 0.2),
                               atol=1e-12)


def test_propensities_are_a_distribution_over_eligible_candidates(served: tuple) -> None:
    _, candidates = served
    eligible = (candidates["ecpm"] > 0) & (candidates["ecpm"] >= RESERVE)
    assert (candidates.loc[eligible, "propensity"] > 0).all()
    assert (candidates.loc[~eligible, "propensity"] == 0).all()
    total = candidates.groupby("request_id")["propensity"].sum()
    has_eligible = eligible.groupby(candidates["request_id"]).any()
    np.testing.assert_allclose(total[has_eligible], 1.0)


def test_slot1_impressions_log_their_candidate_propensity(served: tuple) -> None:
    log, candidates = served
    first = log[log["position"] == 1]
    assert len(first) > 1_000
    assert (first["propensity"] > 0).all() and (first["propensity"] <= 1).all()
    assert log.loc[log["position"] > 1, "propensity"].isna().all()
    joined = first.merge(candidates, on=["request_id", "ad_id"], suffixes=("", "_cand"))
    assert len(joined) == len(first)
    np.testing.assert_allclose(joined["propensity"], joined["propensity_cand"])


def test_greedy_requests_show_the_auction_winner(served: tuple) -> None:
    log, candidates = served
    first = log[(log["position"] == 1) & ~log["explored"]]
    joined = first.merge(candidates, on=["request_id", "ad_id"], suffixes=("", "_cand"))
    assert (joined["propensity_cand"] >= 1 - 0.2).all()   # only the winner has that much


def test_explored_share_and_price(served: tuple) -> None:
    log, _ = served
    first = log[log["position"] == 1]
    share = first["explored"].mean()
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(first))
    explored = first[first["explored"]]
    floor = np.minimum(RESERVE / (1000 * explored["pctr"]), explored["bid"])
    np.testing.assert_allclose(explored["price"], floor)   # sold at the reserve price


def test_empirical_slot1_frequencies_match_the_propensities(world: World) -> None:
    """Serve the same 8 requests 4,000 times each: slot-1 shares match the logged odds."""
    base = world.requests(0, np.random.default_rng(3), n=8)
    copies = 4_000
    requests = dataclasses.replace(base.take(np.repeat(np.arange(len(base)), copies)),
                                   request_id=np.arange(len(base) * copies))
    eps = 0.3
    server = _server(world, eps)
    log = server.serve(requests, day=0, rng=np.random.default_rng(4))
    origin = pd.Series(np.repeat(np.arange(len(base)), copies), index=requests.request_id)
    first = log[log["position"] == 1]
    counts = first.groupby([origin[first["request_id"]].to_numpy(), first["ad_id"]]).size()
    candidates = server.candidates.assign(origin=origin[server.candidates["request_id"]].values)
    odds = candidates.groupby(["origin", "ad_id"])["propensity"].first()
    odds = odds[odds > 0]
    shares = counts.reindex(odds.index, fill_value=0) / copies
    tolerance = 5 * np.sqrt(odds * (1 - odds) / copies) + 1e-9
    assert len(odds) > 3 * len(base)                   # several candidates per request
    assert (np.abs(shares - odds) <= tolerance).all()
    assert counts.index.isin(odds.index).all()         # never an ad with propensity 0


def test_no_exploration_logs_propensity_one(world: World) -> None:
    requests = world.requests(0, np.random.default_rng(5), n=500)
    log = _server(world, 0.0).serve(requests, day=0)
    first = log[log["position"] == 1]
    assert (first["propensity"] == 1).all() and not first["explored"].any()


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_exploration_share_is_rejected_by_name(world: World, eps: float) -> None:
    with pytest.raises(ValueError, match="exploration"):
        _server(world, eps)
    with pytest.raises(ValueError, match="exploration"):
        SimulationConfig(exploration=eps)


def test_exploration_share_must_be_a_number(world: World) -> None:
    with pytest.raises(TypeError, match="exploration"):
        _server(world, "0.1")


def test_exploration_needs_an_rng(world: World) -> None:
    requests = world.requests(0, np.random.default_rng(6), n=50)
    with pytest.raises(ValueError, match="rng"):
        _server(world, 0.1).serve(requests, day=0)


def test_a_day_keeps_every_step_s_candidates(world: World) -> None:
    config = SimulationConfig(steps_per_day=24, candidate_share=1.0)
    server = _server(world, 0.1, exposures=ExposureCounter(world.view.n_ads))
    day = simulate_day(world, server, 0, np.random.default_rng(7), config, n_requests=2_000)
    first = day.impressions[day.impressions["position"] == 1]
    assert day.candidates["request_id"].nunique() >= first["request_id"].nunique()
    pairs = first.merge(day.candidates, on=["request_id", "ad_id"], suffixes=("", "_cand"))
    assert len(pairs) == len(first)
    np.testing.assert_allclose(pairs["propensity"], pairs["propensity_cand"])
    quiet = AdServer(world.view, ScoreModel(), k=10, reserve=RESERVE)
    assert simulate_day(world, quiet, 0, np.random.default_rng(7), config,
                        n_requests=500).candidates is None


# --- The online experiment: users, not requests, are split ---------------------------

def _split(world: World, salt: str = "test", share: float = 0.5) -> SplitServer:
    exposures = ExposureCounter(world.view.n_ads)
    control = AdServer(world.view, ScoreModel(), exposures=exposures, k=10, reserve=RESERVE)
    treatment = AdServer(world.view, ScoreModel(tilt=0.5), exposures=exposures, k=10,
                         reserve=RESERVE, model_version=1)
    return SplitServer(control, treatment, salt, share)


def test_arms_are_stable_per_user_over_days(world: World) -> None:
    split = _split(world)
    config = SimulationConfig(steps_per_day=24)
    rng = np.random.default_rng(8)
    logs = [simulate_day(world, split, day, rng, config, n_requests=2_000,
                         first_request_id=2_000 * day).impressions for day in range(3)]
    log = pd.concat(logs, ignore_index=True)
    arms_per_user = log.groupby("user_id")["arm"].nunique()
    assert (arms_per_user == 1).all()
    returning = log.groupby("user_id")["day"].nunique() > 1
    assert returning.sum() > 100                      # users seen on several days
    treated = log["arm"] == "treatment"
    np.testing.assert_array_equal(treated, assign_arm(log["user_id"].to_numpy(), "test"))
    versions = log.groupby("arm")["model_version"].unique()
    assert list(versions["control"]) == [0] and list(versions["treatment"]) == [1]


def test_the_split_share_and_a_new_salt(world: World) -> None:
    users = np.arange(world.view.n_users)
    treated = _split(world, share=0.3).arm(users)
    assert abs(treated.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / len(users))
    other = _split(world, salt="another experiment", share=0.3).arm(users)
    both = (treated & other).mean()
    assert abs(both - 0.09) < 4 * np.sqrt(0.09 * 0.91 / len(users))   # independent splits
    np.testing.assert_array_equal(treated, _split(world, share=0.3).arm(users))


def test_split_server_rejects_bad_input(world: World) -> None:
    good = _split(world)
    with pytest.raises(TypeError, match="treatment"):
        SplitServer(good.control, ScoreModel(), "salt")
    with pytest.raises(TypeError, match="control"):
        SplitServer(None, good.treatment, "salt")
    alone = AdServer(world.view, ScoreModel(), exposures=ExposureCounter(world.view.n_ads),
                     k=10, reserve=RESERVE)
    with pytest.raises(ValueError, match="exposure"):
        SplitServer(good.control, alone, "salt")
    for share in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="treatment_share"):
            SplitServer(good.control, good.treatment, "salt", share)
