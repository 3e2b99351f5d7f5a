"""The selector keeps the top-K candidates of every request by bid x smoothed CTR."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.features import PRIOR_CTR, PRIOR_STRENGTH, count_ad_stats
from adsys.index import AdIndex
from adsys.selection import Selector
from adsys.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="module")
def candidates(world) -> tuple[np.ndarray, np.ndarray]:
    requests = world.requests(0, np.random.default_rng(0), n=100)
    return AdIndex(world).eligible(requests, 0)


@pytest.fixture(scope="module")
def logged_stats(world) -> pd.DataFrame:
    """A fake impression log: every ad shown a random number of times."""
    rng = np.random.default_rng(1)
    ads = rng.integers(0, len(world.ads), size=200_000)
    return count_ad_stats(ads, rng.random(len(ads)) < 0.03)


def reference_top_k(request_pos, ad_id, score, k) -> pd.DataFrame:
    """Slow reference: sort each request's candidates by score (ties by ad id), take k."""
    frame = pd.DataFrame({"request_pos": request_pos, "ad_id": ad_id, "score": score})
    frame = frame.sort_values(["request_pos", "score", "ad_id"], ascending=[True, False, True])
    return frame.groupby("request_pos").head(k)


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_select_keeps_the_top_k_of_every_request(world, candidates, logged_stats, k, seed):
    rng = np.random.default_rng(seed)
    selector = Selector(world, logged_stats)
    request_pos, ad_id = candidates
    shuffle = rng.permutation(len(ad_id))          # the result must not depend on input order
    request_pos, ad_id = request_pos[shuffle], ad_id[shuffle]
    kept_pos, kept_ad = selector.select(request_pos, ad_id, k)

    n_candidates = np.bincount(request_pos)
    np.testing.assert_array_equal(np.bincount(kept_pos, minlength=len(n_candidates)),
                                  np.minimum(k, n_candidates))
    score = selector.score(ad_id)
    expected = reference_top_k(request_pos, ad_id, score, k)
    np.testing.assert_array_equal(kept_pos, expected["request_pos"])
    np.testing.assert_array_equal(kept_ad, expected["ad_id"])
    # the kept scores are each request's k largest (pandas nlargest, ties aside)
    largest = (pd.Series(score).groupby(request_pos).nlargest(k)
               .groupby(level=0).sum().to_numpy())
    kept_score = np.bincount(kept_pos, weights=selector.score(kept_ad))
    np.testing.assert_allclose(kept_score, largest)


def test_k_at_least_the_candidates_keeps_all(world, candidates):
    request_pos, ad_id = candidates
    kept_pos, kept_ad = Selector(world).select(request_pos, ad_id, k=10_000)
    assert sorted(zip(kept_pos, kept_ad, strict=True)) == sorted(
        zip(request_pos, ad_id, strict=True))


def test_without_history_every_ad_gets_the_prior(world):
    selector = Selector(world, prior_ctr=0.03)
    np.testing.assert_allclose(selector.ctr, 0.03)
    ads = np.arange(len(world.ads))
    np.testing.assert_allclose(selector.score(ads),
                               0.03 * world.campaigns["max_cpc"].to_numpy()[
                                   world.ads["campaign_id"].to_numpy()])


def test_ctr_is_beta_smoothed_and_update_adds_counts(world):
    day = pd.DataFrame({"ad_id": [0, 1], "impressions": [1000, 10], "clicks": [100, 10]})
    selector = Selector(world, day).update(day)
    m, p0 = PRIOR_STRENGTH, PRIOR_CTR
    np.testing.assert_allclose(selector.ctr[:3], [(200 + m * p0) / (2000 + m),
                                                  (20 + m * p0) / (20 + m), p0])
    # many impressions: close to the observed rate; few: close to the prior
    assert abs(selector.ctr[0] - 0.1) < 0.01 and selector.ctr[1] < 0.5


def test_bad_inputs_raise(world, candidates):
    request_pos, ad_id = candidates
    selector = Selector(world)
    with pytest.raises(ValueError, match="k must"):
        selector.select(request_pos, ad_id, k=0)
    with pytest.raises(ValueError, match="same length"):
        selector.select(request_pos[:-1], ad_id, k=3)
    with pytest.raises(ValueError, match="ad_id"):
        selector.select(request_pos, ad_id + len(world.ads), k=3)
    with pytest.raises(ValueError, match="request_pos"):
        selector.select(request_pos - 1, ad_id, k=3)
    with pytest.raises(ValueError, match="prior_ctr"):
        Selector(world, prior_ctr=1.5)
    with pytest.raises(ValueError, match="ad_stats"):
        Selector(world, pd.DataFrame({"ad_id": [0], "impressions": [1], "clicks": [2]}))
