"""The serving path and the day loop: money, clicks and budgets all add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.events import join_clicks
from adsys.history import ExposureCounter, History
from adsys.index import AdIndex
from adsys.pacing import traffic_forecast
from adsys.prediction import LogisticClickModel
from adsys.report import day_report
from adsys.serving import STAGES, AdServer, best_of_each_key, uniform_hash
from adsys.simulate import SimulationConfig, bootstrap, retrain, simulate, simulate_day
from adsys.world import World, WorldConfig

RESERVE = 1.0   # dollars per thousand impressions


@pytest.fixture(scope="module")
def world() -> World:
    # Uneven traffic: the day/night swing plus a noon spike of three times normal.
    return World(WorldConfig.load(spike_hour=12, spike_multiplier=3.0), seed=0)


@pytest.fixture(scope="module")
def boot(world):
    """The bootstrap models and history (a week of page views, then random serving)."""
    models, history, log = bootstrap(world, np.random.default_rng(0), 20_000,
                                     browsing_days=7)
    return models, history, log


@pytest.fixture(scope="module")
def server(world, boot) -> AdServer:
    models, history, _ = boot
    return AdServer(world.view, models.heavy, history, light_model=models.light, k=10,
                    reserve=RESERVE)


@pytest.fixture(scope="module")
def days(world, boot):
    """The same day of traffic, paced and unpaced."""
    models, history, log = boot
    config = SimulationConfig()
    # The platform plans the day on its own request log (here the bootstrap's).
    forecast = traffic_forecast(log["time"].drop_duplicates(), config.steps_per_day)

    def play(pacing: bool):
        server = AdServer(world.view, models.heavy, history, ExposureCounter(world.view.n_ads),
                          light_model=models.light, k=10, reserve=RESERVE)
        return simulate_day(world, server, 0, np.random.default_rng(1),
                            SimulationConfig(pacing=pacing), forecast)

    return {pacing: play(pacing) for pacing in (True, False)}


def test_bootstrap_learns_from_random_traffic_and_logs_it(world, boot):
    models, history, log = boot
    assert history.ad_impressions.sum() == len(log)
    assert history.ad_clicks.sum() == log["clicked"].sum()
    # a week of page views before launch, then the bootstrap's own requests
    assert history.user_topic_views.sum() == 7 * world.config.requests_per_day + log[
        "request_id"].nunique()
    assert "true_p" not in log.columns
    assert models.heavy.predict is not None and models.light.intercept is not None


def test_bootstrap_labels_only_clicks_within_the_attribution_window(world, boot):
    """The first model learns the nightly job's label: a click that arrived after the
    window is a non-click, as it will be in every later training set."""
    _, _, log = boot
    window = SimulationConfig().attribution_window
    delay = log["click_time"] - log["time"]
    assert log["late_click"].sum() > 0                       # some clicks came too late
    assert (log["clicked"] == (delay <= window)).all()
    assert (log.loc[log["late_click"] == 1, "clicked"] == 0).all()
    assert (delay.dropna() > 0).all()                         # clicks follow impressions


def test_served_impressions_respect_targeting_slots_and_prices(world, server):
    requests = world.requests(0, np.random.default_rng(2), n=3000)
    log = server.serve(requests, day=0)
    assert AdIndex(world.view).matches(log["user_id"], log["ad_id"]).all()
    assert not log.duplicated(["request_id", "ad_id"]).any()
    # One ad per campaign per auction: a campaign never sets its own price.
    assert not log.duplicated(["request_id", "campaign_id"]).any()
    slots = log.groupby("request_id")["position"]
    assert (slots.max() == slots.count()).all()        # slots filled from the top
    assert (log["price"] <= log["bid"] + 1e-12).all()
    assert (log["price"] > 0).all()                    # the reserve: nothing sells for $0
    # eCPM per mille: a thousand impressions at this price and pCTR reach the reserve.
    assert (1000 * log["price"] * log["pctr"] >= server.reserve * (1 - 1e-9)).all()
    ecpm = log["bid"] * log["pctr"]
    by_slot = ecpm.groupby([log["request_id"], log["position"]]).first().unstack()
    assert (by_slot.diff(axis=1).fillna(0).to_numpy() <= 1e-12).all()  # best eCPM on top
    assert (log["f_position"].astype(int) == log["position"]).all()
    assert (log["f_hour"] == log["hour"]).all()
    assert (log["position"] <= world.view.n_slots).all()


def test_single_request_path_matches_the_batch_path(world, server):
    requests = world.requests(0, np.random.default_rng(3), n=200)
    batch = server.serve(requests, day=0)
    for i in range(0, 200, 40):
        one, seconds = server.serve_one(requests.take([i]), day=0)
        expected = batch[batch["request_id"] == requests.request_id[i]].reset_index(drop=True)
        pd.testing.assert_frame_equal(one, expected)
        assert set(seconds) == set(STAGES) and all(s >= 0 for s in seconds.values())


def test_throttle_removes_campaigns_and_needs_a_generator(world, server):
    requests = world.requests(0, np.random.default_rng(4), n=2000)
    shown = server.serve(requests, day=0)["campaign_id"].unique()
    throttle = np.ones(world.view.n_campaigns)
    throttle[shown[:5]] = 0.0
    assert not server.serve(requests, 0, throttle)["campaign_id"].isin(shown[:5]).any()
    throttle[shown[5]] = 0.5
    with pytest.raises(ValueError, match="rng"):
        server.serve(requests, 0, throttle)
    with pytest.raises(ValueError, match="throttle"):
        server.serve(requests, 0, np.ones(3))
    throttle[shown[6]] = np.nan
    with pytest.raises(ValueError, match="throttle"):
        server.serve(requests, 0, throttle, np.random.default_rng(0))


def test_throttle_coins_are_one_per_request_and_campaign():
    """A throttled campaign takes part in a request with all its ads or with none: the
    coin depends on (request, campaign, salt) only, and is uniform."""
    requests = np.repeat(np.arange(20_000), 2)
    campaigns = np.tile([3, 8], 20_000)
    coins = uniform_hash(requests, campaigns, salt=11)
    np.testing.assert_array_equal(coins, uniform_hash(requests, campaigns, salt=11))
    assert not np.array_equal(coins, uniform_hash(requests, campaigns, salt=12))
    np.testing.assert_array_equal(uniform_hash(requests[:7], campaigns[:7], 11), coins[:7])
    assert coins.min() >= 0 and coins.max() < 1
    assert np.quantile(coins, [0.1, 0.5, 0.9]) == pytest.approx([0.1, 0.5, 0.9], abs=0.01)
    assert abs(np.corrcoef(coins[::2], coins[1::2])[0, 1]) < 0.03   # campaigns independent


@pytest.mark.parametrize("seed", range(5))
def test_best_of_each_key_is_the_highest_value_and_the_first_on_ties(seed):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 40, size=300)
    values = rng.integers(0, 4, size=300).astype(float)   # many ties
    best = best_of_each_key(keys, values)
    for key in np.unique(keys):
        items = np.flatnonzero(keys == key)
        expected = items[np.argmax(values[items])]        # argmax: the first maximum
        assert best[items].sum() == 1 and best[expected]
    assert not best_of_each_key(np.zeros(0, np.int64), np.zeros(0)).any()


def test_a_half_throttled_campaign_takes_part_about_half_the_time(world, server):
    requests = world.requests(0, np.random.default_rng(5), n=4000)
    throttled = np.arange(world.view.n_campaigns) % 2 == 0
    throttle = np.where(throttled, 0.5, 1.0)
    full = server.serve(requests, 0)
    log = server.serve(requests, 0, throttle, np.random.default_rng(6))
    share = throttled[log["campaign_id"]].sum() / throttled[full["campaign_id"]].sum()
    assert 0.3 < share < 0.8
    assert throttled[log["campaign_id"]].sum() > 0


def test_money_adds_up(days):
    for day in days.values():
        imp = day.impressions
        revenue = imp["charged"].sum()
        assert revenue == pytest.approx(day.spend.sum())          # revenue == advertiser spend
        assert day.pacer.spent.sum() <= revenue + 1e-9            # the rest: after midnight
        billed = (imp["charged"] + imp["unbilled"]) > 0
        np.testing.assert_allclose(imp.loc[billed, "charged"] + imp.loc[billed, "unbilled"],
                                   imp.loc[billed, "price"])
        assert (day.spend <= day.pacer.budgets + 1e-9).all()      # never above budget
        assert (imp["price"] > 0).all()


def test_every_click_is_billed_once(days):
    for day in days.values():
        imp = day.impressions
        clicked = set(day.clicks["impression_id"])
        billed = set(imp.loc[(imp["charged"] + imp["unbilled"]) > 0, "impression_id"])
        free = set(imp.loc[imp["price"] == 0, "impression_id"])   # a zero price bills nothing
        assert billed == clicked - free
        assert day.clicks["impression_id"].duplicated().any()      # duplicates did arrive
        _, report = join_clicks(imp, day.clicks, window_seconds=3600)
        assert report.attributed + report.late == len(clicked)


def test_exposures_are_counted_within_the_day(days):
    imp = days[True].impressions
    pairs = imp.groupby(["user_id", "ad_id"])["exposures"]
    assert (pairs.min() == 0).all()
    assert (pairs.max() == pairs.count() - 1).all()
    # The frequency feature is served from the counter as it stood at the start of the
    # step: it counts the exposures of earlier steps, not those of the same batch.
    step = (imp["time"] % 86_400 // (86_400 / SimulationConfig().steps_per_day)).astype(int)
    same_step = imp.groupby(["user_id", "ad_id", step]).cumcount()
    np.testing.assert_allclose(imp["f_log_exposures"], np.log1p(imp["exposures"] - same_step))


def constrained_shares(world, days) -> tuple[np.ndarray, np.ndarray]:
    """Campaigns whose unpaced demand exhausts the budget, and the share of it they spend
    when paced."""
    budgets = world.view.campaigns["daily_budget"].to_numpy()
    constrained = days[False].spend >= 0.999 * budgets
    return constrained, days[True].spend[constrained] / budgets[constrained]


def test_paced_campaigns_spend_their_budget_smoothly(world, days):
    budgets = world.view.campaigns["daily_budget"].to_numpy()
    paced, unpaced = days[True], days[False]
    constrained, share = constrained_shares(world, days)
    assert constrained.sum() > 30
    assert (share <= 1 + 1e-9).all()                      # never above budget
    assert np.median(share) >= 0.95
    unbilled = np.bincount(paced.impressions["campaign_id"], paced.impressions["unbilled"],
                           minlength=len(budgets))
    assert unbilled.sum() < 0.03 * budgets[constrained].sum()
    # Spend follows traffic: unpaced campaigns run dry early, paced ones track the plan.
    plan = paced.pacer.planned_spend[:, constrained]
    paced_gap = np.abs(np.cumsum(paced.pacer.spend_by_step[:, constrained], 0) - plan)
    unpaced_gap = np.abs(np.cumsum(unpaced.pacer.spend_by_step[:, constrained], 0) - plan)
    paced_gap, unpaced_gap = (np.median(gap.max(0) / budgets[constrained])
                              for gap in (paced_gap, unpaced_gap))
    assert paced_gap < 0.3
    assert unpaced_gap > paced_gap


def test_the_nightly_light_model_takes_the_configured_crosses(world, boot, days):
    """``light_crosses`` reaches the nightly job; without it the light model has none."""
    models, history, _ = boot
    n_topics = len(world.view.topics)
    for crosses in ((), ("hour", "page_topic")):
        config = SimulationConfig(light_crosses=crosses)
        new, _ = retrain([days[True]], config, LogisticClickModel, history,
                         np.random.default_rng(0), models)
        assert {c: w.shape for c, w in new.light.cross_weights.items()} == {
            c: ({"hour": 24, "page_topic": n_topics}[c], n_topics) for c in crosses}


def test_same_seed_same_logs(world):
    config = SimulationConfig(bootstrap_requests=5000, browsing_days=1)
    runs = [list(simulate(world, days=2, seed=7, config=config, n_requests=4000))
            for _ in range(2)]
    for a, b in zip(*runs, strict=True):
        pd.testing.assert_frame_equal(a.impressions, b.impressions)
        pd.testing.assert_frame_equal(a.clicks, b.clicks)
    second_day = runs[0][1].impressions
    assert (second_day["model_version"] == 1).all()
    assert second_day["impression_id"].min() == len(runs[0][0].impressions)
    assert runs[0][1].requests.request_id.min() == 4000
    assert "true_p" in second_day.columns        # for the course's analysis only
    assert not any(c.startswith("f_") and "true" in c for c in second_day.columns)


# ----- k and n_slots ------------------------------------------------------------------

def test_k_must_exceed_the_slots(world, boot):
    models, history, _ = boot
    view = world.view
    for k in (1, 2, view.n_slots):
        with pytest.raises(ValueError, match=rf"k must be greater than n_slots \({view.n_slots}"
                                             rf"\).*k={k}"):
            AdServer(view, models.heavy, history, k=k)
    with pytest.raises(ValueError, match=r"k must be greater than n_slots.*k=3"):
        next(simulate(world, 1, 0, SimulationConfig(k=3)))
    with pytest.raises(TypeError, match="k must be an integer"):
        AdServer(view, models.heavy, history, k=5.0)


def test_numpy_integers_are_accepted_for_k(world, boot):
    models, history, _ = boot
    server = AdServer(world.view, models.heavy, history, k=np.int64(5), model_version=np.int32(2))
    assert server.k == 5 and isinstance(server.k, int)
    assert SimulationConfig(k=np.int64(5)).k == 5
    requests = world.requests(0, np.random.default_rng(7), n=50)
    assert (server.serve(requests, 0)["model_version"] == 2).all()


# ----- quiet traffic --------------------------------------------------------------------

def test_an_empty_batch_serves_an_empty_log(world, server):
    requests = world.requests(0, np.random.default_rng(8), n=20)
    usual = server.serve(requests, 0)
    assert len(usual) > 0
    empty = server.serve(requests.take(np.zeros(20, dtype=bool)), 0)
    assert empty.empty
    assert list(empty.columns) == list(usual.columns)
    one, seconds = server.serve_one(requests.take([0]), 0, np.zeros(world.view.n_campaigns))
    assert one.empty and set(seconds) == set(STAGES)


def test_every_campaign_throttled_serves_an_empty_log(world, server):
    requests = world.requests(0, np.random.default_rng(9), n=200)
    usual = server.serve(requests, 0)
    none = server.serve(requests, 0, np.zeros(world.view.n_campaigns))
    assert none.empty and list(none.columns) == list(usual.columns)
    pd.testing.assert_series_equal(none.dtypes, usual.dtypes)


def test_a_request_without_candidates_is_skipped(world, boot):
    """A reserve no ad reaches leaves every request unfilled, without an error."""
    models, history, _ = boot
    picky = AdServer(world.view, models.heavy, history, k=10, reserve=1e9)
    requests = world.requests(0, np.random.default_rng(10), n=100)
    assert picky.serve(requests, 0).empty


@pytest.mark.parametrize("n_requests", [1, 5, 30])
def test_a_day_with_very_few_requests_works(world, server, n_requests):
    result = simulate_day(world, server, 0, np.random.default_rng(11), SimulationConfig(),
                          n_requests=n_requests)
    assert result.n_requests == n_requests
    assert len(result.impressions) <= n_requests * world.view.n_slots
    assert result.pacer.step == result.pacer.n_steps          # every step was played
    report = day_report(result, 3600.0)
    assert report["requests"] == n_requests


def test_report_of_a_day_without_impressions(world, boot):
    models, history, _ = boot
    picky = AdServer(world.view, models.heavy, history, k=10, reserve=1e9)
    result = simulate_day(world, picky, 0, np.random.default_rng(12), n_requests=500)
    assert result.impressions.empty and result.clicks.empty
    report = day_report(result, 3600.0)
    for metric in ("model_log_loss", "oracle_log_loss", "model_calibration", "model_auc",
                   "model_version"):
        assert report[metric] is None, metric
    assert report["impressions"] == 0 and report["ctr"] == 0.0
    assert "no impressions" in report["notes"]


def test_report_of_a_day_without_clicks(boot):
    """A world where nobody clicks: the log loss is defined, calibration and AUC are not."""
    quiet = World(WorldConfig.load(base_logit=-15.0), seed=0)
    models, _, _ = boot     # the same entities as the test world: the model applies
    server = AdServer(quiet.view, models.heavy, History(quiet.view), k=10, reserve=RESERVE)
    result = simulate_day(quiet, server, 0, np.random.default_rng(13), n_requests=300)
    assert len(result.impressions) > 0 and result.clicks.empty
    report = day_report(result, 3600.0)
    assert report["clicks"] == 0 and report["ctr"] == 0.0
    assert report["model_log_loss"] is not None
    assert report["model_calibration"] is None and report["model_auc"] is None
    assert "every label is the same" in report["notes"]


# ----- configuration ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, name", [
    ({"steps_per_day": 30}, ValueError, "steps_per_day"),
    ({"steps_per_day": 48.0}, TypeError, "steps_per_day"),
    ({"k": 0}, ValueError, "k"),
    ({"k": 10.0}, TypeError, "k"),
    ({"reserve": -1.0}, ValueError, "reserve"),
    ({"reserve": None}, TypeError, "reserve"),
    ({"attribution_window": 0.0}, ValueError, "attribution_window"),
    ({"pacing": "yes"}, TypeError, "pacing"),
    ({"bootstrap_requests": 0}, ValueError, "bootstrap_requests"),
    ({"training_days": 0}, ValueError, "training_days"),
    ({"downsampling_rate": 0.0}, ValueError, "downsampling_rate"),
])
def test_bad_simulation_config(kwargs, error, name):
    with pytest.raises(error, match=name):
        SimulationConfig(**kwargs)


def test_simulate_rejects_bad_arguments(world, server):
    with pytest.raises(ValueError, match="days"):
        next(simulate(world, 0, 0))
    with pytest.raises(TypeError, match="seed"):
        next(simulate(world, 1, 0.5))
    with pytest.raises(TypeError, match="server"):
        simulate_day(world, LogisticClickModel(), 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="traffic_curve"):
        simulate_day(world, server, 0, np.random.default_rng(0), n_requests=10,
                     traffic_curve=np.full(24, 1 / 24))
    with pytest.raises(ValueError, match="first_request_id"):
        simulate_day(world, server, 0, np.random.default_rng(0), n_requests=10,
                     first_request_id=-1)


def test_history_is_only_platform_counts(boot):
    _, history, _ = boot
    assert isinstance(history, History)
    assert not {"interests", "ad_quality", "user_bias"} & set(vars(history))
