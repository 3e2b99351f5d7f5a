"""The log store: Parquet partitions by day, DuckDB SQL, and the click join in SQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adsys.events import closed_labels, join_clicks
from adsys.simulate import SimulationConfig, simulate
from adsys.store import TABLES, LogStore
from adsys.world import World


def synthetic_day(day: int, n: int, rng: np.random.Generator, first_id: int
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Impressions and click events with every case of the join: no click, a click in
    the window, a late click, a duplicate (re-sent after the original), a click
    exactly at the window's end, and clicks arriving out of order."""
    ids = first_id + np.arange(n)
    time = day * 86_400 + np.sort(rng.uniform(0, 86_400, n))
    impressions = pd.DataFrame({
        "impression_id": ids, "time": time, "day": day,
        "device": pd.Categorical(rng.choice(["mobile", "desktop"], n)),
        "pctr_shown": rng.uniform(0.001, 0.1, n),
    })
    clicked = rng.random(n) < 0.3
    delay = rng.lognormal(np.log(600), 1.5, clicked.sum())
    delay[:3] = 3600.0                                   # on the window's edge: counts
    events = pd.DataFrame({"impression_id": ids[clicked], "click_time": time[clicked] + delay})
    again = events.sample(frac=0.2, random_state=int(rng.integers(1000)))
    again = again.assign(click_time=again["click_time"] + rng.exponential(30, len(again)))
    clicks = pd.concat([events, again]).sample(frac=1.0, random_state=1)   # out of order
    return impressions, clicks.reset_index(drop=True)


@pytest.fixture
def store(tmp_path) -> tuple[LogStore, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    store = LogStore(tmp_path / "store")
    all_imp, all_clicks, first = [], [], 0
    for day in range(3):
        impressions, clicks = synthetic_day(day, 400, rng, first)
        first += len(impressions)
        store.write_day(day, impressions=impressions, clicks=clicks)
        all_imp.append(impressions)
        all_clicks.append(clicks)
    return store, pd.concat(all_imp, ignore_index=True), pd.concat(all_clicks,
                                                                   ignore_index=True)


def assert_same_labels(sql: pd.DataFrame, pandas: pd.DataFrame) -> None:
    pandas = pandas.sort_values("impression_id", ignore_index=True)
    assert sql["impression_id"].tolist() == pandas["impression_id"].tolist()
    for column in ("clicked", "late_click"):
        np.testing.assert_array_equal(sql[column].to_numpy(int), pandas[column].to_numpy(int))
    np.testing.assert_allclose(sql["click_time"].to_numpy(float),
                               pandas["click_time"].to_numpy(float), equal_nan=True)


@pytest.mark.parametrize("window", [60.0, 3600.0, 86_400.0])
def test_sql_join_equals_the_pandas_join(store, window):
    store, impressions, clicks = store
    expected, report = join_clicks(impressions, clicks, window)
    joined = store.join_clicks(window)
    assert_same_labels(joined, expected)
    assert joined["clicked"].sum() == report.attributed
    assert joined["late_click"].sum() == report.late
    assert report.duplicates > 0 and (report.late > 0) == (window < 86_400)


@pytest.mark.parametrize("as_of", [0.5 * 86_400, 86_400.0, 2 * 86_400 + 1800.0, 1e7])
def test_sql_join_as_of_a_time_equals_the_closed_labels(store, as_of):
    # The nightly job's view: only clicks received by then, only closed windows.
    store, impressions, clicks = store
    expected = closed_labels(impressions, clicks, 3600, as_of)
    assert_same_labels(store.join_clicks(3600, as_of=as_of), expected)
    day1 = store.join_clicks(3600, days=[1], as_of=as_of)
    assert_same_labels(day1, expected[expected["day"] == 1])


def test_sql_join_returns_the_columns_asked_for(store):
    store, impressions, clicks = store
    picked = store.join_clicks(3600, columns=["device", "time"])
    assert list(picked.columns) == ["impression_id", "device", "time", "click_time",
                                    "clicked", "late_click"]
    assert_same_labels(picked, join_clicks(impressions, clicks, 3600)[0])
    with pytest.raises(TypeError, match="columns"):
        store.join_clicks(3600, columns="device")
    with pytest.raises(TypeError, match="columns"):
        store.join_clicks(3600, columns=["device; DROP TABLE clicks"])


def test_sql_join_of_chosen_days_keeps_clicks_stored_on_other_days(tmp_path):
    # A click filed under day 1 (it arrived after midnight) still labels its day-0
    # impression; the day filter applies to impressions only.
    store = LogStore(tmp_path)
    impressions = pd.DataFrame({"impression_id": [0, 1], "time": [86_000.0, 100.0]})
    store.write_day(0, impressions=impressions.iloc[:1],
                    clicks=pd.DataFrame({"impression_id": [1], "click_time": [130.0]}))
    store.write_day(1, impressions=impressions.iloc[1:].assign(time=86_500.0),
                    clicks=pd.DataFrame({"impression_id": [0], "click_time": [86_500.0]}))
    day0 = store.join_clicks(3600, days=[0])
    assert day0["impression_id"].tolist() == [0] and day0["clicked"].tolist() == [1]
    assert store.join_clicks(3600, days=[]).empty
    assert store.join_clicks(3600, days=[0, 1])["impression_id"].tolist() == [0, 1]


def test_sql_join_equals_the_pandas_join_on_simulated_logs(tmp_path):
    world = World(seed=1)
    config = SimulationConfig(bootstrap_requests=5000, browsing_days=1)
    store = LogStore(tmp_path)
    impressions, clicks = [], []
    for result in simulate(world, days=2, seed=3, config=config, n_requests=3000):
        store.write_day(result.day, impressions=result.impressions, clicks=result.clicks,
                        requests=result.requests.to_frame())
        impressions.append(result.impressions)
        clicks.append(result.clicks)
    expected, _ = join_clicks(pd.concat(impressions, ignore_index=True),
                              pd.concat(clicks, ignore_index=True), 3600)
    joined = store.join_clicks(3600)
    assert_same_labels(joined, expected)
    # The features come back with their values (categories as their labels).
    assert set(joined["f_device"]) <= {"mobile", "desktop", "tablet"}
    np.testing.assert_allclose(joined["f_user_topic_view_share"],
                               expected.sort_values("impression_id")["f_user_topic_view_share"])
    # The world's truth is not in the platform's log: it sits apart, one join away.
    assert "true_p" not in joined and "true_p" not in store.sql(
        "SELECT * FROM impressions LIMIT 1")
    truth = store.sql("SELECT impression_id, true_p FROM truth ORDER BY impression_id")
    np.testing.assert_array_equal(truth["impression_id"], joined["impression_id"])
    np.testing.assert_allclose(truth["true_p"],
                               expected.sort_values("impression_id")["true_p"])
    store.write_day(1, impressions=impressions[1].drop(columns="true_p"))
    assert store.days("truth") == [0]   # a day rewritten without truth keeps none


def test_partitions_give_the_day_and_a_rewrite_replaces(tmp_path):
    store = LogStore(tmp_path)
    assert store.days() == []
    frame = pd.DataFrame({"impression_id": [1, 2], "time": [1.0, 2.0], "day": [9, 9]})
    store.write_day(4, impressions=frame)
    store.write_day(2, impressions=frame.assign(impression_id=[3, 4]))
    store.write_day(4, impressions=frame.iloc[:1])           # replaces day 4's file
    assert store.days("impressions") == [2, 4]
    assert store.days("clicks") == []
    got = store.sql("SELECT day, COUNT(*) AS n FROM impressions GROUP BY day ORDER BY day")
    assert got.to_dict("list") == {"day": [2, 4], "n": [2, 1]}   # day from the partition
    picked = store.sql("SELECT impression_id FROM impressions WHERE day = $d", d=2)
    assert picked["impression_id"].tolist() == [3, 4]
    assert sorted(p.name for p in (tmp_path / "impressions").iterdir()) == ["day=002",
                                                                            "day=004"]


def test_a_fresh_store_object_reads_what_another_wrote(tmp_path):
    LogStore(tmp_path).write_day(0, requests=pd.DataFrame({"request_id": [5, 6]}))
    assert LogStore(tmp_path).sql("SELECT SUM(request_id) AS s FROM requests")["s"][0] == 11


@pytest.mark.parametrize("call, error, message", [
    (lambda s: s.write_day(-1, impressions=pd.DataFrame({"a": [1]})), ValueError, "day"),
    (lambda s: s.write_day(1.0, impressions=pd.DataFrame({"a": [1]})), TypeError, "day"),
    (lambda s: s.write_day(0, views=pd.DataFrame({"a": [1]})), ValueError, "tables"),
    (lambda s: s.write_day(0, truth=pd.DataFrame({"a": [1]})), ValueError, "tables"),
    (lambda s: s.write_day(0, impressions=pd.DataFrame({"true_p": [0.1]})), ValueError,
     "impression_id"),
    (lambda s: s.write_day(0, clicks=[1, 2]), TypeError, "clicks"),
    (lambda s: s.days("views"), ValueError, "table"),
    (lambda s: s.sql(3), TypeError, "query"),
    (lambda s: s.sql("SELECT * FROM nowhere"), ValueError, "query"),
    (lambda s: s.sql("SELEC 1"), ValueError, "query"),
    (lambda s: s.join_clicks(0), ValueError, "window_seconds"),
    (lambda s: s.join_clicks(float("nan")), ValueError, "window_seconds"),
    (lambda s: s.join_clicks(np.inf), ValueError, "window_seconds"),
    (lambda s: s.join_clicks("3600"), TypeError, "window_seconds"),
    (lambda s: s.join_clicks(60, days=[-1]), ValueError, "days"),
    (lambda s: s.join_clicks(60, days=[0.5]), TypeError, "days"),
    (lambda s: s.join_clicks(60, as_of=-1.0), ValueError, "as_of"),
    (lambda s: s.join_clicks(60, as_of=np.nan), ValueError, "as_of"),
])
def test_bad_input_is_rejected_naming_the_parameter(tmp_path, call, error, message):
    store = LogStore(tmp_path)
    store.write_day(0, impressions=pd.DataFrame({"impression_id": [0], "time": [0.0]}),
                    clicks=pd.DataFrame({"impression_id": [0], "click_time": [5.0]}))
    with pytest.raises(error, match=message):
        call(store)


def test_a_join_without_clicks_says_so(tmp_path):
    store = LogStore(tmp_path)
    store.write_day(0, impressions=pd.DataFrame({"impression_id": [0], "time": [0.0]}))
    with pytest.raises(ValueError, match="no clicks"):
        store.join_clicks(60)
    assert set(TABLES) == {"impressions", "clicks", "requests", "candidates", "truth"}
