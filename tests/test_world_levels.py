"""The default world is realistic (DESIGN 4.1): feed-ad CTR levels, effects a model cannot
learn additively, and a platform that learns only from closed attribution windows.

Levels are asserted as the ranges DESIGN states, never as measured values: the world's
constants may be retuned.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from adsys.baseline import serve_random
from adsys.events import closed_labels, join_clicks
from adsys.history import ExposureCounter
from adsys.observable import SECONDS_PER_DAY
from adsys.prediction import LogisticClickModel
from adsys.report import day_report
from adsys.serving import AdServer
from adsys.simulate import SimulationConfig, bootstrap, retrain, simulate, simulate_day
from adsys.world import World

DAYS, REQUESTS_PER_DAY = 3, 40_000


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="module")
def full_system(world):
    """The full system with the default configuration, three days of traffic."""
    return list(simulate(world, DAYS, seed=0, n_requests=REQUESTS_PER_DAY))


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


# ----- CTR levels -----------------------------------------------------------------------

def test_random_serving_ctr_is_half_to_one_and_a_half_percent(world):
    log = serve_random(world, 0, 50_000, np.random.default_rng(0))
    assert 0.005 <= log["clicked"].mean() <= 0.015
    assert 0.005 <= log["true_p"].mean() <= 0.015


def test_full_system_ctr_is_one_and_a_half_to_three_percent(full_system):
    last = full_system[-1]
    report = day_report(last, SimulationConfig().attribution_window)
    assert 0.015 <= report["ctr"] <= 0.03
    assert 0.015 <= last.impressions["true_p"].mean() <= 0.03


def test_the_full_system_beats_random_serving(world, full_system):
    random = serve_random(world, DAYS - 1, 50_000, np.random.default_rng(1))
    served = full_system[-1].impressions
    assert served["true_p"].mean() > 1.5 * random["true_p"].mean()
    assert (served["model_version"] == DAYS - 1).all()


# ----- effects that are not additive in what the platform observes ------------------------

@pytest.fixture(scope="module")
def pairs(world):
    """Users of all interest levels against ads, each ad on a page of its topic and on a
    page of another topic, at the same hour."""
    rng = np.random.default_rng(2)
    view = world.view
    n = 20_000
    users = rng.integers(0, view.n_users, n)
    ads = rng.choice(np.flatnonzero(view.active_ads(0)), n)
    topic = view.ads["topic"].to_numpy()[ads]
    page_topic = view.publishers["topic"].to_numpy()
    matching = np.array([rng.choice(np.flatnonzero(page_topic == t)) for t in range(
        len(view.topics))])[topic]
    other = np.array([rng.choice(np.flatnonzero(page_topic != t)) for t in range(
        len(view.topics))])[topic]
    hours = rng.integers(0, 24, n)
    return users, ads, matching, other, hours, world.interests[users, topic]


def test_a_page_match_gains_more_the_more_the_user_is_interested(world, pairs):
    """Interest x page match: the gain in logit is page_match_weight +
    interest_page_weight x interest, as the config says, and so grows with interest."""
    users, ads, matching, other, hours, interest = pairs
    c = world.config
    on_page = world.relevance(users, ads, matching, hours, day=0)
    off_page = world.relevance(users, ads, other, hours, day=0)
    gain = logit(on_page) - logit(off_page)
    np.testing.assert_allclose(gain, c.page_match_weight + c.interest_page_weight * interest,
                               rtol=1e-6, atol=1e-9)
    assert c.interest_page_weight > 0
    interested, indifferent = interest > 0.3, interest < 0.01
    assert interested.sum() > 100 and indifferent.sum() > 100
    assert gain[interested].mean() > gain[indifferent].mean() + 0.25 * c.interest_page_weight
    # In probability too: the relative lift of a matching page is larger for fans.
    lift = on_page / off_page
    assert np.median(lift[interested]) > np.median(lift[indifferent])


def test_fatigue_lowers_relevance_less_for_interested_users(world, pairs):
    """Fatigue x interest: each repeat view costs fatigue_weight x log(1 + exposures) x
    (1 - interest) in logit."""
    users, ads, _, other, hours, interest = pairs
    c = world.config
    fresh = world.relevance(users, ads, other, hours, day=0)
    for exposures in (1, 3, 10):
        tired = world.relevance(users, ads, other, hours, day=0, exposures=exposures)
        drop = logit(fresh) - logit(tired)
        np.testing.assert_allclose(drop, c.fatigue_weight * np.log1p(exposures) * (1 - interest),
                                   rtol=1e-6, atol=1e-9)
        assert np.all(tired <= fresh)
    assert c.fatigue_weight > 0
    assert drop[interest > 0.3].mean() < 0.75 * drop[interest < 0.01].mean()


def double_centered(table: np.ndarray) -> np.ndarray:
    """What is left of a two-way table after removing its row and column means: the part
    no sum of a row effect and a column effect can explain."""
    return table - table.mean(axis=0) - table.mean(axis=1, keepdims=True) + table.mean()


def switched_off(world: World, **knobs) -> World:
    return World(dataclasses.replace(world.config, **knobs), seed=world.seed)


def test_each_topic_peaks_at_its_own_hour(world):
    """Hour x topic: switching the term off changes the logit by an (hour, topic) table
    with the configured amplitude that is not a sum of an hour and a topic effect."""
    c = world.config
    assert c.hour_topic_amplitude > 0
    flat = switched_off(world, hour_topic_amplitude=0.0)
    view = world.view
    topic = view.ads["topic"].to_numpy()
    ads = np.array([np.flatnonzero(topic == t)[0] for t in range(len(view.topics))])
    hours, ad = np.meshgrid(np.arange(24), ads, indexing="ij")
    rows = (np.zeros(ad.size, int), ad.ravel(), np.zeros(ad.size, int), hours.ravel())
    effect = (logit(world.relevance(*rows, day=0))
              - logit(flat.relevance(*rows, day=0))).reshape(hours.shape)
    spread = (effect.max(axis=0) - effect.min(axis=0)) / 2      # per topic, over the day
    np.testing.assert_allclose(spread, c.hour_topic_amplitude, rtol=0.02)
    peaks = effect.argmax(axis=0)
    assert len(set(peaks.tolist())) > len(view.topics) // 2     # topics peak at different hours
    assert double_centered(effect).std() > 0.5 * c.hour_topic_amplitude


def test_age_bands_have_their_own_taste_in_topics(world):
    """Demographic x topic: the age-band term is an (age band, topic) table of spread about
    age_topic_sd that no additive age and topic effects explain."""
    c = world.config
    assert c.age_topic_sd > 0
    neutral = switched_off(world, age_topic_sd=0.0)
    view = world.view
    age = view.users["age_band"].to_numpy()
    topic = view.ads["topic"].to_numpy()
    users = np.array([np.flatnonzero(age == a)[0] for a in range(age.max() + 1)])
    ads = np.array([np.flatnonzero(topic == t)[0] for t in range(len(view.topics))])
    user, ad = np.meshgrid(users, ads, indexing="ij")
    rows = (user.ravel(), ad.ravel(), np.zeros(ad.size, int), np.full(ad.size, 12))
    effect = (logit(world.relevance(*rows, day=0))
              - logit(neutral.relevance(*rows, day=0))).reshape(user.shape)
    assert 0.5 * c.age_topic_sd < effect.std() < 1.5 * c.age_topic_sd
    assert double_centered(effect).std() > 0.5 * c.age_topic_sd


def test_the_default_world_has_every_non_additive_effect_switched_on(world):
    c = world.config
    assert min(c.interest_page_weight, c.fatigue_weight, c.hour_topic_amplitude,
               c.age_topic_sd) > 0


# ----- the platform learns only from closed attribution windows --------------------------

@pytest.fixture(scope="module")
def nights(world):
    """Two days of the full loop with the nightly job after each, kept step by step."""
    rng = np.random.default_rng(3)
    config = SimulationConfig()
    models, history, _ = bootstrap(world, rng, 10_000)
    exposures = ExposureCounter(world.view.n_ads)
    histories, results = [history], []
    for day in range(2):
        server = AdServer(world.view, models.heavy, histories[-1], exposures, models.light,
                          k=config.k, reserve=config.reserve, model_version=day)
        first = sum(len(r.impressions) for r in results)
        results.append(simulate_day(world, server, day, rng, config, n_requests=15_000,
                                    first_request_id=15_000 * day, first_impression_id=first))
        models, history = retrain(results, config, LogisticClickModel, histories[-1], rng,
                                  models)
        histories.append(history)
    return config, results, histories


def counted(before, after) -> tuple[np.ndarray, np.ndarray]:
    return after.ad_impressions - before.ad_impressions, after.ad_clicks - before.ad_clicks


def test_the_first_night_counts_only_closed_windows(world, nights):
    config, results, histories = nights
    window, midnight = config.attribution_window, SECONDS_PER_DAY
    day0 = results[0]
    imp = day0.impressions
    closed = imp["time"] + window <= midnight
    assert (~closed).sum() > 100                    # the last hour's windows are still open
    n_ads = world.view.n_ads
    shown, clicked = counted(histories[0], histories[1])
    # Every closed impression is counted once, and no open one: not even as a non-click.
    np.testing.assert_array_equal(shown, np.bincount(imp.loc[closed, "ad_id"],
                                                     minlength=n_ads))
    labelled, _ = join_clicks(imp, day0.clicks[day0.clicks["click_time"] <= midnight], window)
    np.testing.assert_array_equal(
        clicked, np.bincount(labelled.loc[closed, "ad_id"], labelled.loc[closed, "clicked"],
                             minlength=n_ads))
    # A click arriving after its window closed is never a label.
    late = labelled["late_click"] == 1
    assert clicked.sum() == labelled.loc[closed & ~late, "clicked"].sum()
    # The day's page views are counted too: one per request.
    views = histories[1].user_topic_views.sum() - histories[0].user_topic_views.sum()
    assert views == day0.n_requests


def test_open_windows_are_counted_the_next_night_with_their_clicks(world, nights):
    config, results, histories = nights
    window = config.attribution_window
    day0, day1 = results
    impressions = pd.concat([day0.impressions, day1.impressions], ignore_index=True)
    clicks = pd.concat([day0.clicks, day1.clicks], ignore_index=True)
    n_ads = world.view.n_ads
    shown, clicked = counted(histories[1], histories[2])
    second_night = closed_labels(impressions, clicks, window, as_of=2 * SECONDS_PER_DAY,
                                 closed_after=SECONDS_PER_DAY)
    carried = second_night["day"] == 0
    assert carried.sum() == (day0.impressions["time"] + window > SECONDS_PER_DAY).sum()
    np.testing.assert_array_equal(shown, np.bincount(second_night["ad_id"], minlength=n_ads))
    np.testing.assert_array_equal(clicked, np.bincount(second_night["ad_id"],
                                                       second_night["clicked"],
                                                       minlength=n_ads))
    # After two nights every impression of day 0 is counted exactly once, with its final
    # attribution-window label.
    final, _ = join_clicks(day0.impressions, clicks, window)
    total_shown, total_clicked = counted(histories[0], histories[2])
    day1_closed = closed_labels(day1.impressions, clicks, window, as_of=2 * SECONDS_PER_DAY)
    np.testing.assert_array_equal(
        total_shown, np.bincount(final["ad_id"], minlength=n_ads)
        + np.bincount(day1_closed["ad_id"], minlength=n_ads))
    assert total_clicked.sum() == final["clicked"].sum() + day1_closed["clicked"].sum()


def test_counts_never_include_a_click_from_the_future(nights):
    """Nightly counts use only click events received by midnight."""
    config, results, histories = nights
    day0 = results[0]
    in_flight = day0.clicks["click_time"] > SECONDS_PER_DAY
    _, clicked = counted(histories[0], histories[1])
    on_time = closed_labels(day0.impressions, day0.clicks, config.attribution_window,
                            as_of=SECONDS_PER_DAY)
    assert clicked.sum() == on_time["clicked"].sum()
    assert in_flight.any()
