"""The HTTP service: the package's serving path behind FastAPI, called in process."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import adsys.service as service
from adsys.__main__ import main
from adsys.index import AdIndex
from adsys.observable import DEVICES, SECONDS_PER_DAY, Requests
from adsys.prediction import LightGBMClickModel
from adsys.release import train_bundle
from adsys.service import (
    BUNDLE_FILE,
    MANIFEST_FILE,
    ServingBundle,
    create_app,
    load_bundle,
    save_bundle,
)
from adsys.serving import STAGES
from adsys.simulate import SimulationConfig, simulate
from adsys.world import World, WorldConfig

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_users": 1500, "n_advertisers": 40}
CONFIG = SimulationConfig(bootstrap_requests=3000, browsing_days=1)
REQUESTS = 3000


def small_world() -> World:
    return World(WorldConfig.load(**SMALL), seed=3)


def small_lightgbm(downsampling_rate: float = 1.0) -> LightGBMClickModel:
    return LightGBMClickModel(n_estimators=40, min_child_samples=50,
                              downsampling_rate=downsampling_rate)


@pytest.fixture(scope="module")
def bundle() -> ServingBundle:
    return train_bundle(small_world(), days=1, seed=0, config=CONFIG,
                        make_model=small_lightgbm, n_requests=REQUESTS)


@pytest.fixture()
def client(bundle):
    with TestClient(create_app(bundle)) as client:
        yield client


def page(client, **body) -> dict:
    response = client.post("/ads", json={"user_id": 7, "publisher_id": 2, "hour": 20, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_request_gets_a_priced_page_from_the_trained_funnel(client, bundle):
    result = page(client)
    ads = result["ads"]
    assert 1 <= len(ads) <= bundle.view.n_slots
    assert [ad["slot"] for ad in ads] == list(range(1, len(ads) + 1))
    ecpm = [ad["ecpm"] for ad in ads]
    assert ecpm == sorted(ecpm, reverse=True)
    index = AdIndex(bundle.view)
    for ad in ads:
        assert ad["ecpm"] == pytest.approx(1000 * ad["bid"] * ad["pctr"])
        assert ad["ecpm"] >= bundle.reserve
        assert 0 < ad["price"] <= ad["bid"] + 1e-12      # second price, never above the bid
        assert index.matches([7], [ad["ad_id"]])[0]      # the ad targets this user
        assert ad["topic"] in bundle.view.topics
    assert result["model_version"] == bundle.model_version == 1
    assert result["day"] == bundle.day
    assert set(result["stage_ms"]) == set(STAGES)
    assert all(ms >= 0 for ms in result["stage_ms"].values())


def test_the_service_answers_what_the_package_server_answers(client, bundle):
    """The endpoint is the package's serving path, not a copy of it."""
    result = page(client, request_id=41, device="desktop", hour=9)
    day = bundle.day
    requests = Requests(request_id=np.array([41]), day=np.array([day]),
                        time=np.array([day * SECONDS_PER_DAY + 9 * 3600.0]),
                        hour=np.array([9]), user=np.array([7]), publisher=np.array([2]),
                        device=np.array([DEVICES.index("desktop")]))
    log, _ = bundle.server().serve_one(requests, day)
    assert [ad["ad_id"] for ad in result["ads"]] == log["ad_id"].tolist()
    assert [ad["price"] for ad in result["ads"]] == pytest.approx(log["price"].tolist())
    assert result["request_id"] == 41


def test_served_ads_count_as_exposures_for_the_frequency_feature(client, bundle):
    first = page(client)
    counter = client.app.state.service.server.exposures
    shown = [ad["ad_id"] for ad in first["ads"]]
    assert counter.counts([7] * len(shown), shown).tolist() == [1] * len(shown)
    page(client)
    assert counter.counts([7] * len(shown), shown).sum() >= len(shown) + 1


def test_health_reports_the_loaded_model(client, bundle):
    page(client)
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["model_version"] == bundle.model_version
    assert body["served"] == 1


@pytest.mark.parametrize("body, field", [
    ({"user_id": 7, "publisher_id": 2, "hour": 24}, "hour"),
    ({"user_id": -1, "publisher_id": 2, "hour": 3}, "user_id"),
    ({"user_id": 10**6, "publisher_id": 2, "hour": 3}, "user_id"),
    ({"user_id": 7, "publisher_id": 999, "hour": 3}, "publisher_id"),
    ({"user_id": "7", "publisher_id": 2, "hour": 3}, "user_id"),
    ({"user_id": 7.5, "publisher_id": 2, "hour": 3}, "user_id"),
    ({"publisher_id": 2, "hour": 3}, "user_id"),
    ({"user_id": 7, "publisher_id": 2, "hour": 3, "device": "watch"}, "device"),
    ({"user_id": 7, "publisher_id": 2, "hour": 3, "request_id": 2**40}, "request_id"),
    ({"user_id": 7, "publisher_id": 2, "hour": 3, "slots": 5}, "slots"),
    ([1, 2, 3], "body"),
])
def test_a_bad_request_gets_a_422_naming_the_field(client, body, field):
    response = client.post("/ads", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert answer["detail"].startswith(f"{field}: ")
    assert [e["field"] for e in answer["errors"]] == [field]


def test_malformed_json_and_wrong_methods_are_client_errors(client):
    response = client.post("/ads", content=b"{not json", headers={"content-type":
                                                                  "application/json"})
    assert response.status_code == 422 and response.json()["detail"].startswith("body: ")
    assert client.get("/ads").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404


def test_the_bundle_is_loaded_once_at_start_up(bundle, tmp_path, monkeypatch):
    save_bundle(bundle, tmp_path)
    calls = []
    real = service.load_bundle
    monkeypatch.setattr(service, "load_bundle", lambda path: calls.append(path) or real(path))
    app = create_app(tmp_path)
    assert calls == []                       # creating the app loads nothing yet
    with TestClient(app) as client:
        assert calls == [tmp_path]           # start-up loaded it
        for hour in range(3):
            page(client, hour=hour)
        assert client.get("/health").json()["model_version"] == bundle.model_version
    assert calls == [tmp_path]               # and never again


def test_a_saved_bundle_loads_and_serves_the_same(bundle, tmp_path):
    save_bundle(bundle, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["model_version"] == bundle.model_version
    assert manifest["heavy_model"] == "LightGBMClickModel"
    assert manifest["libraries"]["lightgbm"]
    loaded = load_bundle(tmp_path)
    assert loaded.history.view is loaded.view
    with TestClient(create_app(bundle)) as a, TestClient(create_app(loaded)) as b:
        assert page(a)["ads"] == page(b)["ads"]


def test_a_changed_or_foreign_bundle_is_refused(bundle, tmp_path):
    save_bundle(bundle, tmp_path)
    manifest_path = tmp_path / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["libraries"]["scikit-learn"] = "0.1"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"scikit-learn 0\.1"):
        load_bundle(tmp_path)
    with (tmp_path / BUNDLE_FILE).open("ab") as file:
        file.write(b"\0")
    with pytest.raises(ValueError, match="SHA-256"):
        load_bundle(tmp_path)
    with pytest.raises(ValueError, match="no manifest.json"):
        load_bundle(tmp_path / "missing")


def test_bundle_checks_its_parts(bundle):
    with pytest.raises(ValueError, match="k must be"):
        ServingBundle(bundle.view, bundle.heavy, bundle.light, bundle.history, day=1,
                      model_version=1, k=bundle.view.n_slots)
    with pytest.raises(TypeError, match="light must be"):
        ServingBundle(bundle.view, bundle.heavy, None, bundle.history, day=1,
                      model_version=1)
    with pytest.raises(TypeError, match="ServingBundle or a folder"):
        create_app(small_world())


def test_training_replays_the_simulation_loop(bundle):
    """train_bundle runs simulate's loop: same seed, same logs, then one more night."""
    world = small_world()
    day0 = next(simulate(world, 1, 0, CONFIG, small_lightgbm, n_requests=REQUESTS))
    assert bundle.training["daily"][0]["impressions"] == len(day0.impressions)
    assert bundle.training["daily"][0]["revenue"] == pytest.approx(
        day0.impressions["charged"].sum(), abs=0.01)


def test_service_is_on_the_platform_side_of_the_contract():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden, layers = config["contracts"]
    assert "adsys.service" in forbidden["source_modules"]
    assert "adsys.world" in forbidden["forbidden_modules"]
    names = [layer.split(" | ") for layer in layers["layers"]]
    position = {name: i for i, group in enumerate(names) for name in group}
    assert position["adsys.world"] < position["adsys.service"] < position["adsys.serving"]


def test_train_and_serve_commands(tmp_path, capsys):
    world = tmp_path / "world.toml"
    world.write_text((ROOT / "data" / "world.toml").read_text()
                     .replace("n_users = 20000", "n_users = 1500")
                     .replace("n_advertisers = 300", "n_advertisers = 40"))
    out = tmp_path / "model"
    assert main(["train", "--out", str(out), "--requests", "1500", "--model", "logistic",
                 "--world", str(world)]) == 0
    assert "python -m adsys serve --bundle" in capsys.readouterr().out
    assert load_bundle(out).model_version == 1
    assert main(["serve", "--bundle", str(tmp_path / "nothing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
