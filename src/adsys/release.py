"""The release job: train the funnel's models on simulated traffic, package them to serve.

In production a training pipeline reads the logs, fits the models each night and
pushes an artifact to a model registry; serving pulls the artifact and loads it.
Here the logs come from the simulator: :func:`train_bundle` runs the same loop as
:func:`adsys.simulate.simulate` (bootstrap on random traffic, then days of serving
with a nightly retrain) and, after the last night, packages the models and the
platform's history as a :class:`~adsys.service.ServingBundle` for the next day.
``python -m adsys train --out DIR`` writes it with :func:`adsys.service.save_bundle`.
"""

from __future__ import annotations

import numpy as np

from adsys.history import ExposureCounter
from adsys.pacing import traffic_forecast
from adsys.prediction import LightGBMClickModel
from adsys.service import ServingBundle
from adsys.serving import AdServer
from adsys.simulate import ModelFactory, SimulationConfig, bootstrap, retrain, simulate_day
from adsys.validation import check_int
from adsys.world import World

__all__ = ["train_bundle"]


def train_bundle(world: World, days: int = 1, seed: int = 0,
                 config: SimulationConfig | None = None,
                 make_model: ModelFactory = LightGBMClickModel,
                 n_requests: int | None = None) -> ServingBundle:
    """Play ``days`` days through the platform and package the models of the last night.

    The loop is :func:`adsys.simulate.simulate`'s, step for step (same seed, same
    logs); the difference is the end: after the last day the nightly job runs once
    more, and its models (version ``days``) and history are what the bundle serves on
    day ``days``. The platform learns from its own logs only; the world supplies the
    traffic and the clicks, and nothing of it goes into the bundle but ``world.view``.
    ``config`` defaults to ``SimulationConfig()``.
    """
    config = SimulationConfig() if config is None else config
    if not isinstance(world, World):
        raise TypeError(f"world must be a World; got {type(world).__name__}")
    days = check_int("days", days, 1)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    view = world.view
    models, history, log = bootstrap(world, rng, config.bootstrap_requests, make_model,
                                     config.browsing_days, n_requests)
    forecast = traffic_forecast(log["time"].drop_duplicates(), config.steps_per_day)
    exposures = ExposureCounter(view.n_ads)
    recent, first_request, first_impression, daily = [], 0, 0, []
    for day in range(days):
        server = AdServer(view, models.heavy, history, exposures, models.light, k=config.k,
                          reserve=config.reserve, model_version=day,
                          exploration=config.exploration, fault=config.fault)
        result = simulate_day(world, server, day, rng, config, forecast, n_requests,
                              first_request, first_impression)
        first_request += result.n_requests
        first_impression += len(result.impressions)
        recent = [*recent, result][-(config.training_days + 1):]
        daily.append({"day": day, "requests": result.n_requests,
                      "impressions": len(result.impressions),
                      "revenue": round(float(result.impressions["charged"].sum()), 2)})
        forecast = traffic_forecast(result.requests.time, config.steps_per_day)
        models, history = retrain(recent, config, make_model, history, rng, models)
    training = {"seed": seed, "days": days, "heavy_model": type(models.heavy).__name__,
                "requests_per_day": n_requests, "daily": daily}
    return ServingBundle(view, models.heavy, models.light, history, day=days,
                         model_version=days, k=config.k, reserve=config.reserve,
                         training=training)
