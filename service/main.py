"""The ASGI application: ``service.main:app``, built by :func:`create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from prometheus_client.core import GaugeMetricFamily

from service.auth import ApiKeyMiddleware
from service.errors import install_error_handlers
from service.export.routes import router as export_router
from service.inline import InlinePredictions
from service.jobs import JobManager
from service.observability import Metrics, RequestContext, configure_logging
from service.openapi import DESCRIPTION, build_openapi
from service.playground import router as playground_router
from service.plumbing import BodySizeLimit
from service.responses import ORJSONResponse
from service.routes import health, inspection, jobs, metrics, networks, prediction, training
from service.routes.v2 import router as v2_router
from service.settings import Settings, get_settings
from service.store import ACTIVE_STATUSES, FINAL_STATUSES, Store, open_store
from service.updates import NetworkLocks

TAGS = [
    {"name": "networks", "description": "Create networks and read or replace their parameters."},
    {"name": "training", "description": "Gradient descent, synchronously, and the cost history."},
    {"name": "jobs", "description": "Long training runs in the background: progress, cancel."},
    {"name": "inspection", "description": "Costs, activations and every gradient."},
    {"name": "prediction", "description": "Predictions and evaluation."},
    {"name": "operations", "description": "Health and readiness."},
    {"name": "v2", "description": "KServe / Triton V2 inference protocol: one row per example."},
]


def _store_gauges(app: FastAPI) -> Iterator[GaugeMetricFamily]:
    store: Store | None = app.state.store
    if store is None:
        return
    networks = GaugeMetricFamily("backprop_networks", "Networks stored (all owners).")
    networks.add_metric([], store.count_networks())
    yield networks
    jobs = GaugeMetricFamily("backprop_jobs", "Training jobs by status.", labels=["status"])
    counts = store.count_jobs()
    for status in (*ACTIVE_STATUSES, *FINAL_STATUSES):
        jobs.add_metric([status], counts.get(status, 0))
    yield jobs


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """A fresh application. Without ``store`` it opens the one ``settings.database_url``
    names when it starts (so importing this module touches no file)."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = store is None
        if opened:
            app.state.store = open_store(settings.database_url, settings.database_pool_size)
        app.state.jobs.start()  # and fail the jobs a dead process left behind
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(app.state.jobs.stop)  # checkpoints running jobs
            if opened:
                app.state.store.close()

    app = FastAPIOffline(
        title="Backprop Service",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.locks = NetworkLocks()
    app.state.metrics = counters = Metrics()
    counters.add_gauges(lambda: _store_gauges(app))
    app.state.jobs = JobManager(settings, lambda: app.state.store, counters.training_steps.inc)
    # FastAPI tries routers in this order, scanning each one's routes: the cheapest and
    # hottest calls (probes, predictions) come first. No two routes match the same path.
    for module in (health, prediction, networks, training, jobs, inspection, metrics):
        app.include_router(module.router)
    app.include_router(export_router)
    app.include_router(v2_router)
    app.include_router(playground_router)
    install_error_handlers(app)
    # Outermost last: the request id and the access log see every answer, 401 and 413 too.
    # The prediction lane is innermost: it needs the owner the API-key check sets.
    app.add_middleware(InlinePredictions)
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_key_list)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext, metrics=counters)

    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app: FastAPI  # bound on first access, below


def __getattr__(name: str) -> Any:
    # `uvicorn service.main:app` looks the app up by name; building it lazily keeps the import
    # of this module free of side effects (no settings read, no database file created).
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
