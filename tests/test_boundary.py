"""The truth/platform boundary (DESIGN 4.0): the platform sees only what a platform sees.

Three guards: import-linter keeps the platform modules from importing the world; every
platform entry point refuses a ``World``; the view's tables hold only observable
columns. And the property that makes the boundary matter: features do not change
when only the world's hidden state changes.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adsys
from adsys.features import dtypes, feature_arrays, make_features, to_frame
from adsys.history import ExposureCounter, History
from adsys.index import AdIndex
from adsys.observable import VIEW_COLUMNS, PlatformView, require_view
from adsys.prediction import LogisticClickModel
from adsys.selection import Selector
from adsys.serving import AdServer
from adsys.world import World, WorldConfig

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(adsys.__file__).resolve().parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
# Modules on the truth side or above it: the world, the loop (and the release job and
# counterfactual replay, which run the world), the course.
NOT_PLATFORM = {"adsys.world", "adsys.simulate", "adsys.baseline", "adsys.report",
                "adsys.release", "adsys.replay", "adsys.__main__", "adsys.checks",
                "adsys.student", "adsys.plots", "adsys.validation", "adsys.__init__"}
# What the world knows and a platform does not (attributes and methods of World).
HIDDEN = {"interests", "user_bias", "ad_quality", "activity", "age_topic", "gender_topic",
          "hour_topic", "relevance", "click_probability", "examine", "topic_drift",
          "delay_cdf", "draw_clicks", "click_stream", "publisher_share"}


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


def top_level_modules() -> set[str]:
    names = {f"adsys.{p.stem}" for p in PACKAGE.glob("*.py")}
    return names | {f"adsys.{p.name}" for p in PACKAGE.iterdir()
                    if p.is_dir() and (p / "__init__.py").exists()}


def platform_modules() -> list[str]:
    return sorted(top_level_modules() - NOT_PLATFORM)


# ----- imports -----------------------------------------------------------------------

def test_import_linter_keeps_both_contracts():
    lint_imports = Path(sys.executable).parent / "lint-imports"  # pinned in requirements.txt
    result = subprocess.run([str(lint_imports), "--no-cache", "--no-logo"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert len(CONTRACTS["contracts"]) == 2
    assert "2 kept, 0 broken" in output
    for contract in CONTRACTS["contracts"]:
        assert contract["name"].split()[0] in output


def test_every_platform_module_is_under_the_forbidden_contract():
    """A new platform module (say monitoring or offpolicy) must be added to the contract,
    or nothing stops it from importing the world."""
    forbidden = next(c for c in CONTRACTS["contracts"] if c["type"] == "forbidden")
    assert "adsys.world" in forbidden["forbidden_modules"]
    missing = set(platform_modules()) - set(forbidden["source_modules"])
    assert not missing, f"platform modules outside the contract: {sorted(missing)}"
    layered = {name for layer in next(c for c in CONTRACTS["contracts"]
                                      if c["type"] == "layers")["layers"]
               for name in layer.split(" | ")}
    assert top_level_modules() - {"adsys.__init__"} <= layered


@pytest.mark.parametrize("module", platform_modules())
def test_platform_code_never_reads_hidden_attributes(module):
    """Even handed a world-like object by duck typing, no platform module asks it for
    hidden state: no attribute access of that name appears in its code."""
    path = PACKAGE / (module.split(".", 1)[1] + ".py")
    tree = ast.parse(path.read_text())
    reads = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not reads & HIDDEN, f"{module} reads {sorted(reads & HIDDEN)}"


# ----- entry points refuse a World ------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda w: AdIndex(w),
    lambda w: Selector(w),
    lambda w: History(w),
    lambda w: AdServer(w, LogisticClickModel()),
    lambda w: make_features(w, [0], [0], [0], [0], 1),
    lambda w: feature_arrays(w, [0], [0], [0], [0], 1),
    lambda w: require_view(w),
], ids=["AdIndex", "Selector", "History", "AdServer", "make_features", "feature_arrays",
        "require_view"])
def test_platform_entry_points_refuse_a_world(world, call):
    with pytest.raises(TypeError, match="PlatformView"):
        call(world)


@pytest.mark.parametrize("call", [lambda w: dtypes(w), lambda w: to_frame(w, {})],
                         ids=["dtypes", "to_frame"])
def test_feature_helpers_refuse_a_world(world, call):
    with pytest.raises(TypeError, match="PlatformView"):
        call(world)


# ----- the view holds only observable columns -------------------------------------------

def test_view_tables_hold_only_the_allowed_columns(world):
    view = world.view
    assert {f.name for f in dataclasses.fields(view)} == {"topics", "n_slots", *VIEW_COLUMNS}
    assert set(vars(view)) == {f.name for f in dataclasses.fields(view)}  # nothing else
    for table, columns in VIEW_COLUMNS.items():
        frame = getattr(view, table)
        assert tuple(frame.columns) == columns, table
        assert frame.attrs == {}, table                      # nothing smuggled in metadata
    everything = {c for columns in VIEW_COLUMNS.values() for c in columns}
    assert not everything & {"true_quality", "quality", "interests", "interest",
                             "top_topic", "user_bias", "activity"}
    assert not any("interest" in c or "quality" in c for c in everything)
    # Users' topics are the declared ones, not the true interests.
    declared = (view.users["declared_topics"].to_numpy()[:, None]
                >> np.arange(len(view.topics)) & 1).astype(bool)
    strong = world.interests >= world.config.interest_threshold
    assert (declared != strong).mean() > 0.05


@pytest.mark.parametrize("table, extra", [
    ("ads", "true_quality"), ("users", "interests"), ("users", "user_bias"),
])
def test_a_view_with_a_hidden_column_is_refused(world, table, extra):
    tables = {name: getattr(world.view, name) for name in VIEW_COLUMNS}
    tables[table] = tables[table].assign(**{extra: 0.0})
    with pytest.raises(ValueError, match=table):
        PlatformView(world.view.topics, world.view.n_slots, **tables)


# ----- features do not depend on hidden state -------------------------------------------

SMALL = {"n_users": 2000, "n_advertisers": 40, "n_publishers": 20, "horizon_days": 5,
         "new_campaigns_per_day": 2}
HIDDEN_KNOBS = {
    "quality_sd": st.floats(0, 3), "interest_weight": st.floats(0, 20),
    "user_bias_sd": st.floats(0, 3), "age_topic_sd": st.floats(0, 5),
    "gender_topic_sd": st.floats(0, 5), "hour_topic_amplitude": st.floats(0, 5),
    "interest_page_weight": st.floats(-10, 10), "page_match_weight": st.floats(-5, 5),
    "fatigue_weight": st.floats(0, 5), "base_logit": st.floats(-15, 5),
    "drift_amplitude": st.floats(0, 5), "shift_size": st.floats(0, 10),
    "duplicate_click_rate": st.floats(0, 1), "delay_median_seconds": st.floats(1, 86_400),
}


def observable_inputs(world: World, rng: np.random.Generator):
    """Rows to featurize and a platform log (its own counts), the same for both worlds."""
    view = world.view
    requests = world.requests(1, rng, n=3000)
    ads = rng.choice(np.flatnonzero(view.active_ads(1)), size=len(requests))
    history = History(view).add(rng.integers(0, view.n_users, 5000),
                                rng.integers(0, view.n_ads, 5000), rng.random(5000) < 0.02)
    history.add_views(requests.user, requests.publisher)
    rows = (requests.user, ads, requests.publisher, requests.hour,
            rng.integers(1, view.n_slots + 1, len(requests)))
    return requests, rows, history, rng.integers(0, 4, len(requests))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), knobs=st.fixed_dictionaries(HIDDEN_KNOBS))
def test_features_do_not_depend_on_hidden_state(seed, knobs):
    """Two worlds of the same seed whose configs differ only in hidden click-model knobs
    publish identical views, and make_features gives identical tables for the same rows."""
    base = WorldConfig.load(**SMALL)
    truth = World(base, seed=seed)
    other = World(dataclasses.replace(base, **knobs), seed=seed)
    for table in VIEW_COLUMNS:
        pd.testing.assert_frame_equal(getattr(truth.view, table), getattr(other.view, table))
    assert truth.view.topics == other.view.topics
    # The hidden state does differ, unless hypothesis drew the default values.
    differs = [knob for knob, value in knobs.items() if value != getattr(base, knob)]
    if "quality_sd" in differs and truth.view.n_ads:
        assert not np.array_equal(truth.ad_quality, other.ad_quality)

    requests, rows, history, seen = observable_inputs(truth, np.random.default_rng(seed))
    again, rows_again, history_again, seen_again = observable_inputs(
        other, np.random.default_rng(seed))
    pd.testing.assert_frame_equal(requests.to_frame(), again.to_frame())   # same traffic
    pd.testing.assert_frame_equal(
        make_features(truth.view, *rows, history, seen),
        make_features(other.view, *rows_again, history_again, seen_again))


def test_features_ignore_the_worlds_hidden_arrays(world):
    """Scrambling every hidden array of a world after it is built changes no feature."""
    rng = np.random.default_rng(0)
    _, rows, history, seen = observable_inputs(world, rng)
    scrambled = World(seed=0)
    scrambled.interests = rng.permutation(scrambled.interests)
    scrambled.ad_quality = rng.normal(0, 5, scrambled.ad_quality.shape)
    scrambled.user_bias = rng.normal(0, 5, scrambled.user_bias.shape)
    scrambled.age_topic = rng.normal(0, 5, scrambled.age_topic.shape)
    same_log = History(scrambled.view)
    for name in ("ad_impressions", "ad_clicks", "user_topic_impressions",
                 "user_topic_clicks", "user_topic_views"):
        setattr(same_log, name, getattr(history, name).copy())
    pd.testing.assert_frame_equal(make_features(scrambled.view, *rows, same_log, seen),
                                  make_features(world.view, *rows, history, seen))


def test_serving_never_needs_the_world(world):
    """The whole serving path runs on the view and the platform's own objects."""
    rng = np.random.default_rng(1)
    view = world.view
    requests = world.requests(0, rng, n=2000)
    log_rows = (rng.integers(0, view.n_users, 4000), rng.integers(0, view.n_ads, 4000))
    features = make_features(view, log_rows[0], log_rows[1],
                             rng.integers(0, view.n_publishers, 4000), rng.integers(0, 24, 4000),
                             rng.integers(1, view.n_slots + 1, 4000))
    model = LogisticClickModel().fit(features, rng.random(4000) < 0.05)
    server = AdServer(view, model, History(view), ExposureCounter(view.n_ads), k=5)
    log = server.serve(requests, 0)
    assert len(log) > 0 and "true_p" not in log.columns
