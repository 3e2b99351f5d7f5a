"""The release job: train the funnel's models on simulated traffic, package them to serve.

In production a training pipeline reads the logs, fits the models each night and
pushes an artifact to a model registry; serving pulls the artifact and loads it.
Here the logs come from the simulator: :func:`train_bundle` drives the loop of
:func:`adsys.simulate.simulate` (a :class:`~adsys.simulate.Simulation`: bootstrap on
random traffic, then days of serving with a nightly retrain) and, after the last
night, packages the models and the
platform's history as a :class:`~adsys.service.ServingBundle` for the next day.
``python -m adsys train --out DIR`` writes it with :func:`adsys.service.save_bundle`.
"""

from __future__ import annotations

from adsys.prediction import LightGBMClickModel
from adsys.service import ServingBundle
from adsys.simulate import ModelFactory, Simulation, SimulationConfig
from adsys.validation import check_int
from adsys.world import World

__all__ = ["train_bundle"]


def train_bundle(world: World, days: int = 1, seed: int = 0,
                 config: SimulationConfig | None = None,
                 make_model: ModelFactory = LightGBMClickModel,
                 n_requests: int | None = None) -> ServingBundle:
    """Play ``days`` days through the platform and package the models of the last night.

    The loop is :func:`adsys.simulate.simulate`'s (same seed, same logs); the
    difference is the end: after the last day the nightly job runs once more, and its
    models (version ``days``) and history are what the bundle serves on day ``days``.
    The platform learns from its own logs only; the world supplies the traffic and the
    clicks, and nothing of it goes into the bundle but ``world.view``.
    ``config`` defaults to ``SimulationConfig()``.
    """
    config = SimulationConfig() if config is None else config
    days = check_int("days", days, 1)
    simulation = Simulation(world, seed, config, make_model, n_requests)
    daily = []
    for _ in range(days):
        result = simulation.play_day()
        daily.append({"day": result.day, "requests": result.n_requests,
                      "impressions": len(result.impressions),
                      "revenue": round(float(result.impressions["charged"].sum()), 2)})
        simulation.learn()
    models, history = simulation.models, simulation.history
    training = {"seed": seed, "days": days, "heavy_model": type(models.heavy).__name__,
                "requests_per_day": n_requests, "daily": daily}
    return ServingBundle(world.view, models.heavy, models.light, history, day=days,
                         model_version=days, k=config.k, reserve=config.reserve,
                         training=training)
