"""The click join: no click lost or double-counted under delays, duplicates, disorder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adsys.events import join_clicks, training_data


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


@pytest.mark.parametrize("kwargs, message", [
    ({"window_seconds": 0}, "window_seconds"),
    ({"window_seconds": -5}, "window_seconds"),
])
def test_bad_window(kwargs, message):
    imps, clicks = impressions_and_clicks(0)
    with pytest.raises(ValueError, match=message):
        join_clicks(imps, clicks, **kwargs)


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
