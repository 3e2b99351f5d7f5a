"""The click join: no click lost or double-counted under delays, duplicates, disorder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.events import closed_labels, join_clicks, training_data


def impressions_and_clicks(seed: int, n: int = 200, dup_rate: float = 0.3):
    rng = np.random.default_rng(seed)
    imps = pd.DataFrame({"impression_id": np.arange(100, 100 + n),
                         "time": np.sort(rng.uniform(0, 10_000, n)),
                         "f_hour": rng.integers(0, 24, n)})
    clicked = rng.random(n) < 0.4
    ids = imps["impression_id"].to_numpy()[clicked]
    times = imps["time"].to_numpy()[clicked] + rng.exponential(600, clicked.sum())
    dup = rng.random(len(ids)) < dup_rate
    ids = np.concatenate([ids, ids[dup]])
    times = np.concatenate([times, times[dup] + rng.exponential(30, dup.sum())])
    clicks = pd.DataFrame({"impression_id": ids, "click_time": times})
    return imps, clicks.sample(frac=1, random_state=seed).reset_index(drop=True)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), window=st.floats(1, 5000))
def test_every_click_is_accounted_once(seed, window):
    imps, clicks = impressions_and_clicks(seed)
    labelled, report = join_clicks(imps, clicks, window)
    assert report.click_events == len(clicks)
    assert report.duplicates == len(clicks) - clicks["impression_id"].nunique()
    assert report.attributed + report.late == clicks["impression_id"].nunique()
    first = clicks.groupby("impression_id")["click_time"].min()
    delay = first - imps.set_index("impression_id")["time"].reindex(first.index)
    assert report.attributed == int((delay <= window).sum()) == labelled["clicked"].sum()
    assert len(labelled) == len(imps)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_order_and_duplicates_do_not_change_labels(seed):
    imps, clicks = impressions_and_clicks(seed)
    first_only = clicks.sort_values("click_time").drop_duplicates("impression_id")
    base, _ = join_clicks(imps, first_only, 900)
    shuffled = pd.concat([clicks, clicks.head(5)]).sample(frac=1, random_state=1)
    again, _ = join_clicks(imps, shuffled, 900)
    pd.testing.assert_series_equal(base["clicked"], again["clicked"])


def test_worked_example():
    imps = pd.DataFrame({"impression_id": [1, 2, 3, 4], "time": [0.0, 10.0, 20.0, 30.0]})
    clicks = pd.DataFrame({"impression_id": [2, 2, 3, 99], "click_time": [50.0, 60.0, 500.0, 1.0]})
    labelled, report = join_clicks(imps, clicks, window_seconds=100)
    assert labelled["clicked"].tolist() == [0, 1, 0, 0]
    assert labelled["late_click"].tolist() == [0, 0, 1, 0]
    assert (report.duplicates, report.late, report.orphans, report.attributed) == (1, 1, 1, 1)


def test_training_data_waits_for_the_window_to_close():
    imps = pd.DataFrame({"impression_id": [1, 2, 3], "time": [0.0, 100.0, 900.0],
                         "f_position": [1, 2, 1], "price": [0.0, 0.0, 0.0]})
    clicks = pd.DataFrame({"impression_id": [1, 3], "click_time": [30.0, 950.0]})
    features, labels = training_data(imps, clicks, window_seconds=600, as_of=1000.0)
    assert list(features.columns) == ["position"]
    assert labels.tolist() == [1, 0]  # impression 3's window is still open: left out


def test_closed_labels_count_each_impression_once_on_the_night_its_window_closes():
    # Window 600 s. Impression 2 (t = 500) closes at 1100, after the first night (1000):
    # it is left out then, not labelled a non-click, and counted the next night with
    # the click that arrived at 1050.
    imps = pd.DataFrame({"impression_id": [1, 2, 3], "time": [0.0, 500.0, 1500.0]})
    clicks = pd.DataFrame({"impression_id": [1, 2], "click_time": [30.0, 1050.0]})
    first = closed_labels(imps, clicks, 600, as_of=1000.0)
    assert first["impression_id"].tolist() == [1] and first["clicked"].tolist() == [1]
    second = closed_labels(imps, clicks, 600, as_of=2000.0, closed_after=1000.0)
    assert second["impression_id"].tolist() == [2] and second["clicked"].tolist() == [1]
    third = closed_labels(imps, clicks, 600, as_of=3000.0, closed_after=2000.0)
    assert third["impression_id"].tolist() == [3] and third["clicked"].tolist() == [0]
    # Only clicks received by as_of are known: at 1100 the click of 1050 counts.
    assert closed_labels(imps, clicks, 600, as_of=1100.0)["clicked"].tolist() == [1, 1]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), window=st.floats(10, 3000), nights=st.integers(1, 6))
def test_nightly_closed_labels_partition_the_impressions(seed, window, nights):
    """Night after night, every impression is labelled exactly once, with its final label."""
    imps, clicks = impressions_and_clicks(seed)
    edges = np.linspace(0, 10_000 + window, nights + 1)[1:]
    labelled = [closed_labels(imps, clicks, window, as_of=edge,
                              closed_after=None if i == 0 else edges[i - 1])
                for i, edge in enumerate(edges)]
    together = pd.concat(labelled).sort_values("impression_id", ignore_index=True)
    assert together["impression_id"].tolist() == imps["impression_id"].tolist()
    final, _ = join_clicks(imps, clicks, window)
    assert together["clicked"].tolist() == final["clicked"].tolist()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"window_seconds": 0}, ValueError, "window_seconds"),
    ({"window_seconds": -5}, ValueError, "window_seconds"),
    ({"window_seconds": np.nan}, ValueError, "window_seconds"),
    ({"window_seconds": np.inf}, ValueError, "window_seconds"),
    ({"window_seconds": [600]}, TypeError, "window_seconds"),
    ({"window_seconds": "600"}, TypeError, "window_seconds"),
    ({"window_seconds": None}, TypeError, "window_seconds"),
])
def test_bad_window(kwargs, error, message):
    imps, clicks = impressions_and_clicks(0)
    with pytest.raises(error, match=message):
        join_clicks(imps, clicks, **kwargs)


@pytest.mark.parametrize("table, column", [
    ("impressions", "time"), ("clicks", "click_time"), ("impressions", "impression_id"),
    ("clicks", "impression_id"),
])
def test_nan_times_or_ids_are_rejected_naming_the_column(table, column):
    imps, clicks = impressions_and_clicks(0)
    frames = {"impressions": imps.copy(), "clicks": clicks.copy()}
    frames[table][column] = frames[table][column].astype(float)
    frames[table].loc[3, column] = np.nan
    with pytest.raises(ValueError, match=rf"{table}\.{column}"):
        join_clicks(frames["impressions"], frames["clicks"], 600)


def test_bad_tables():
    imps, clicks = impressions_and_clicks(0)
    with pytest.raises(ValueError, match="clicks is missing"):
        join_clicks(imps, clicks.drop(columns="click_time"), 60)
    with pytest.raises(ValueError, match="duplicate impression_id"):
        join_clicks(pd.concat([imps, imps]), clicks, 60)
    early = clicks.assign(click_time=-1.0)
    with pytest.raises(ValueError, match="before its impression"):
        join_clicks(imps, early, 60)
    with pytest.raises(ValueError, match="no logged feature columns"):
        training_data(imps.drop(columns="f_hour"), clicks, 60, as_of=1e6)
    with pytest.raises(TypeError, match="impressions"):
        join_clicks(imps.to_dict(), clicks, 60)
    with pytest.raises(ValueError, match="as_of"):
        closed_labels(imps, clicks, 60, as_of=-1.0)
    with pytest.raises(ValueError, match="closed_after"):
        closed_labels(imps, clicks, 60, as_of=100.0, closed_after=200.0)
