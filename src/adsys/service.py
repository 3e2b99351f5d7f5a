"""The ad server as an HTTP service: a page of ads for each request, over JSON.

The notebooks call :class:`~adsys.serving.AdServer` in-process. A product calls a
service: this module wraps the same serving path (index -> light selector -> heavy
click model -> auction) in a FastAPI application.

- :class:`ServingBundle` is the artifact a training job hands to serving: the
  platform's view, the heavy and light models, the history tables the features read,
  and the serving settings (K, reserve). :func:`save_bundle` writes it with joblib
  next to a ``manifest.json`` (version, library versions, SHA-256 of the file);
  :func:`load_bundle` refuses a file whose hash or library versions do not match,
  because a pickled model is only safe to load into the code that wrote it.
- :func:`create_app` builds the application. It loads the bundle once, at start-up,
  and serves ``POST /ads`` (one request in, up to ``n_slots`` priced ads out) and
  ``GET /health`` (what a load balancer or Kubernetes probes). Requests are
  validated by pydantic models; a bad one gets a 4xx whose message names the field.

The service takes the platform's view and models only, never a ``World``; it is on
the platform side of the import-linter contracts in ``pyproject.toml``. Build a
bundle with ``python -m adsys train`` and serve it with ``python -m adsys serve``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import joblib
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

import adsys
from adsys.history import ExposureCounter, History
from adsys.observable import DEVICES, SECONDS_PER_DAY, PlatformView, Requests, require_view
from adsys.prediction import ClickModel
from adsys.selection import LightModel
from adsys.serving import STAGES, AdServer
from adsys.validation import check_int, check_range

__all__ = [
    "AdPage",
    "AdRequest",
    "BUNDLE_FILE",
    "MANIFEST_FILE",
    "ServedAd",
    "ServingBundle",
    "create_app",
    "load_bundle",
    "save_bundle",
]

BUNDLE_FILE = "bundle.joblib"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- artifact


@dataclass
class ServingBundle:
    """Everything the service needs to serve, as one artifact.

    Attributes
    ----------
    view : PlatformView
        The platform's tables (users, campaigns, ads, publishers).
    heavy : ClickModel
        The calibrated click model that scores the selector's K candidates.
    light : LightModel
        The selector's cheap model.
    history : History
        The counts the features read (historical CTRs, inferred interests), as of the
        night the models were trained: the service's feature store.
    day : int
        The day the bundle serves (ads whose campaign has started by then are live).
    model_version : int
        Written into every response, so logs say which model served a request.
    k : int
        Candidates the selector passes to the heavy model per request.
    reserve : float
        Minimum eCPM to be shown, dollars per thousand impressions.
    training : dict
        How the models were trained (seed, days, requests, model class): provenance
        for the manifest, not used to serve.
    """

    view: PlatformView
    heavy: ClickModel
    light: LightModel
    history: History
    day: int
    model_version: int
    k: int = 10
    reserve: float = 1.0
    training: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_view(self.view)
        if not hasattr(self.heavy, "predict"):
            raise TypeError(f"heavy must be a fitted click model with predict(); got "
                            f"{type(self.heavy).__name__}")
        if not isinstance(self.light, LightModel) or self.light.intercept is None:
            raise TypeError("light must be a fitted LightModel")
        if not isinstance(self.history, History) or self.history.view is not self.view:
            raise ValueError("history must be a History built from the bundle's view")
        check_int("day", self.day, 0)
        check_int("model_version", self.model_version, 0)
        check_int("k", self.k, self.view.n_slots + 1)
        check_range("reserve", self.reserve, 0.0, np.inf)

    def server(self) -> AdServer:
        """A fresh :class:`AdServer` on this bundle (today's exposures start at zero)."""
        _one_thread(self.heavy)
        return AdServer(self.view, self.heavy, self.history, ExposureCounter(self.view.n_ads),
                        self.light, k=self.k, reserve=self.reserve,
                        model_version=self.model_version)


def _one_thread(model: ClickModel) -> None:
    """Score with one thread: a replica serves one request at a time on one core, and a
    model's own worker threads (LightGBM's ``n_jobs``) would only contend for it."""
    estimator = getattr(model, "estimator", None)
    if estimator is not None and "n_jobs" in getattr(estimator, "get_params", dict)():
        estimator.set_params(n_jobs=1)


def _library_versions() -> dict[str, str]:
    """Versions that decide whether a pickled model loads and predicts the same."""
    import lightgbm
    import pandas
    import sklearn

    return {"python": platform.python_version(), "adsys": adsys.__version__,
            "numpy": np.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__, "lightgbm": lightgbm.__version__}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_bundle(bundle: ServingBundle, out_dir: str | Path) -> Path:
    """Write ``bundle.joblib`` and ``manifest.json`` into ``out_dir``; return the folder.

    The manifest records the model version, the serving settings, how the models were
    trained, the library versions and the file's SHA-256: what a model registry keeps
    next to an artifact so that serving can check it loads the right thing.
    """
    if not isinstance(bundle, ServingBundle):
        raise TypeError(f"bundle must be a ServingBundle; got {type(bundle).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / BUNDLE_FILE
    joblib.dump(bundle, path, compress=3)
    manifest = {
        "format": FORMAT_VERSION,
        "file": BUNDLE_FILE,
        "bytes": path.stat().st_size,
        "sha256": _sha256(path),
        "model_version": bundle.model_version,
        "day": bundle.day,
        "heavy_model": type(bundle.heavy).__name__,
        "k": bundle.k,
        "reserve": bundle.reserve,
        "training": bundle.training,
        "libraries": _library_versions(),
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


def load_bundle(bundle_dir: str | Path) -> ServingBundle:
    """Load a bundle written by :func:`save_bundle`, after checking its manifest.

    Raises ``ValueError`` if the file's SHA-256 differs from the manifest's (a partial
    copy, or a file that is not the one registered) or if it was written with other
    versions of the libraries that pickle the models (retrain, or install the pinned
    versions). Only load bundles you built: unpickling runs code.
    """
    bundle_dir = Path(bundle_dir)
    manifest_path = bundle_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(f"bundle_dir {bundle_dir} has no {MANIFEST_FILE}: build one with "
                         f"`python -m adsys train --out {bundle_dir}`")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{manifest_path} has format {manifest.get('format')!r}; this "
                         f"version of adsys reads format {FORMAT_VERSION}")
    path = bundle_dir / manifest["file"]
    if not path.is_file():
        raise ValueError(f"{path} is missing (the manifest names it)")
    if _sha256(path) != manifest["sha256"]:
        raise ValueError(f"{path} does not match the SHA-256 in {manifest_path}: the file "
                         f"was changed or copied only in part")
    here = _library_versions()
    changed = {name: (version, here.get(name)) for name, version in manifest["libraries"].items()
               if name != "python" and here.get(name) != version}
    if changed:
        listed = ", ".join(f"{name} {was} (now {now})" for name, (was, now) in changed.items())
        raise ValueError(f"{path} was written with {listed}: install the versions it was "
                         f"built with, or rebuild it")
    bundle = joblib.load(path)
    if not isinstance(bundle, ServingBundle):
        raise ValueError(f"{path} does not hold a ServingBundle")
    return bundle


# --------------------------------------------------------------------------- HTTP API


class AdRequest(BaseModel):
    """One ad request: a user opened a page and the page has slots to fill."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: Annotated[int, Field(ge=0, description="The user's id on the platform.")]
    publisher_id: Annotated[int, Field(ge=0, description="The page's publisher id.")]
    hour: Annotated[int, Field(ge=0, le=23, description="Local hour of the request, 0-23.")]
    device: Literal[DEVICES] | None = Field(  # type: ignore[valid-type]
        default=None, description="The device of this request; default: the user's.")
    request_id: Annotated[int | None, Field(ge=0, lt=2**32, description=(
        "Your id for the request, echoed back; default: the service numbers them."))] = None


class ServedAd(BaseModel):
    """One filled slot of the page."""

    slot: int = Field(description="1 is the top slot.")
    ad_id: int
    campaign_id: int
    advertiser_id: int
    topic: str
    bid: float = Field(description="The campaign's maximum cost per click, dollars.")
    pctr: float = Field(description="Calibrated click probability at slot 1.")
    ecpm: float = Field(description="1000 x bid x pctr, dollars per thousand impressions.")
    price: float = Field(description="Cost per click if clicked (second price), dollars.")


class AdPage(BaseModel):
    """The response: the page's ads, best first, and how long each stage took."""

    request_id: int
    model_version: int
    day: int
    ads: list[ServedAd]
    stage_ms: dict[str, float] = Field(description="Milliseconds per serving stage.")


class _Service:
    """The loaded bundle and the one server built on it; serves one request at a time.

    A lock serializes requests: the exposure counter is shared state, and the work is
    CPU-bound Python, so threads would not run it faster. Throughput comes from more
    processes (replicas), each with its own copy of the model.
    """

    def __init__(self, bundle: ServingBundle) -> None:
        self.bundle = bundle
        self.server = bundle.server()
        self.lock = threading.Lock()
        self.next_id = 0
        self.started = time.time()
        self.served = 0
        self._user_device = bundle.view.users["device"].to_numpy()
        self._topics = bundle.view.topics
        self._advertiser = bundle.view.ads["advertiser_id"].to_numpy()
        self._ad_topic = bundle.view.ads["topic"].to_numpy()

    def check_ids(self, request: AdRequest) -> None:
        view = self.bundle.view
        for name, value, count in (("user_id", request.user_id, view.n_users),
                                   ("publisher_id", request.publisher_id, view.n_publishers)):
            if value >= count:
                raise _FieldError(name, f"no such id: the platform knows 0..{count - 1}; "
                                        f"got {value}")

    def serve(self, request: AdRequest) -> AdPage:
        self.check_ids(request)
        day = self.bundle.day
        device = (self._user_device[request.user_id] if request.device is None
                  else DEVICES.index(request.device))
        with self.lock:
            request_id = self.next_id if request.request_id is None else request.request_id
            self.next_id += 1
            batch = Requests(
                request_id=np.array([request_id], np.int64), day=np.array([day]),
                time=np.array([day * SECONDS_PER_DAY + request.hour * 3600.0]),
                hour=np.array([request.hour]), user=np.array([request.user_id]),
                publisher=np.array([request.publisher_id]), device=np.array([device]))
            log, seconds = self.server.serve_one(batch, day)
            self.server.exposures.record(log["user_id"], log["ad_id"])
            self.served += 1
        ads = [ServedAd(slot=int(row.position), ad_id=int(row.ad_id),
                        campaign_id=int(row.campaign_id),
                        advertiser_id=int(self._advertiser[row.ad_id]),
                        topic=self._topics[self._ad_topic[row.ad_id]],
                        bid=float(row.bid), pctr=float(row.pctr),
                        ecpm=1000 * float(row.bid) * float(row.pctr), price=float(row.price))
               for row in log.itertuples(index=False)]
        return AdPage(request_id=request_id, model_version=self.bundle.model_version,
                      day=day, ads=ads,
                      stage_ms={stage: 1000 * seconds[stage] for stage in STAGES})


class _FieldError(ValueError):
    """A request that parsed but names something the platform does not have."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _error(status: int, errors: list[dict]) -> JSONResponse:
    """One response shape for every bad request: a readable ``detail`` naming the
    fields, and the list of ``errors`` (field, message) for programs."""
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse(status_code=status, content={"detail": detail, "errors": errors})


def create_app(bundle: ServingBundle | str | Path) -> FastAPI:
    """The FastAPI application serving ``bundle``.

    Parameters
    ----------
    bundle : ServingBundle, or the folder written by :func:`save_bundle`
        A folder is loaded once, when the application starts (FastAPI's lifespan:
        uvicorn runs it before accepting connections; a TestClient when entered with
        ``with``), and never reloaded: a new model means a new deployment.

    Endpoints
    ---------
    ``POST /ads``
        Body :class:`AdRequest`; answers :class:`AdPage`. 422 names the bad field.
    ``GET /health``
        200 with the model version once the model is loaded.
    """
    if not isinstance(bundle, ServingBundle | str | Path):
        raise TypeError(f"bundle must be a ServingBundle or a folder; got "
                        f"{type(bundle).__name__}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = bundle if isinstance(bundle, ServingBundle) else load_bundle(bundle)
        app.state.service = _Service(loaded)
        yield

    app = FastAPI(title="adsys ad server", version=adsys.__version__, lifespan=lifespan,
                  description="Serves a page of ads per request: ads index, light "
                              "selector, calibrated click model, second-price auction.")

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = []
        for item in error.errors():
            where = [str(part) for part in item["loc"][1:]]   # loc starts with "body"
            if item["type"] == "json_invalid":
                where = []   # the location is a character offset, not a field
            errors.append({"field": ".".join(where) or "body", "message": item["msg"]})
        return _error(422, errors)

    @app.exception_handler(_FieldError)
    async def unknown_id(request: Request, error: _FieldError) -> JSONResponse:
        return _error(422, [{"field": error.field, "message": error.message}])

    @app.get("/health")
    def health(request: Request) -> dict:
        service: _Service = request.app.state.service
        return {"status": "ok", "model_version": service.bundle.model_version,
                "day": service.bundle.day, "served": service.served,
                "uptime_s": round(time.time() - service.started, 1)}

    @app.post("/ads", response_model=AdPage)
    def ads(ad_request: AdRequest, request: Request) -> AdPage:
        return request.app.state.service.serve(ad_request)

    return app
