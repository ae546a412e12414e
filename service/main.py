"""The ASGI application: ``service.main:app``, built by :func:`create_app`.

Shutting down (SIGTERM) drains in a bounded time, ``BACKPROP_SHUTDOWN_GRACE_SECONDS``:
event streams end at once with an ``interrupted`` event (their jobs go on); requests in
flight may finish until a second before the grace period ends, when heavy work still running
is stopped and answered 503 with nothing committed; then jobs this process runs commit their
last steps and are handed back, to resume in the next process.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from prometheus_client.core import GaugeMetricFamily

from service.core.auth import ApiKeyMiddleware
from service.core.capacity import HeavyWork
from service.core.errors import install_error_handlers
from service.core.http import BodyLimits, ORJSONResponse
from service.core.observability import Metrics, RequestContext, configure_logging
from service.core.openapi import DESCRIPTION, build_openapi
from service.core.settings import Settings, get_settings
from service.export.routes import router as export_router
from service.inspection.routes import router as inspection_router
from service.jobs.manager import JobManager, JobQueue
from service.jobs.routes import router as jobs_router
from service.networks.routes import router as networks_router
from service.operations.routes import router as operations_router
from service.playground.routes import router as playground_router
from service.prediction.routes import router as prediction_router
from service.store import ACTIVE_STATUSES, FINAL_STATUSES, Store, store_for
from service.training.routes import router as training_router
from service.v2.routes import router as v2_router
from service.warm import WarmNetworks

TAGS = [
    {"name": "networks", "description": "Create networks and read or replace their parameters."},
    {"name": "training", "description": "Gradient descent, synchronously, and the cost history."},
    {
        "name": "jobs",
        "description": "Long training runs in the background: progress, cancel, resume.",
    },
    {"name": "inspection", "description": "Costs, activations and every gradient."},
    {"name": "prediction", "description": "Predictions and evaluation."},
    {"name": "export", "description": "The network as an ONNX model."},
    {"name": "operations", "description": "Health, readiness and metrics."},
    {"name": "v2", "description": "KServe / Triton V2 inference protocol: one row per example."},
]
# FastAPI (0.165) tries the included routers in this order, and trying one that does not hold
# the route costs about 10 µs: the probes come first, then the calls clients make by the
# thousand (predictions, training batches), then the rest. The explorer (/docs) shows the
# routes grouped by the tags above, whatever this order.
ROUTERS = (
    operations_router,
    prediction_router,
    training_router,
    networks_router,
    jobs_router,
    inspection_router,
    export_router,
    v2_router,
    playground_router,
)
DRAIN_MARGIN_SECONDS = 1.0  # heavy work is stopped this long before the grace period ends


def _gauges(app: FastAPI) -> Iterator[GaugeMetricFamily]:
    """Gauges read at scrape time: the store's (every process reports the same) and this
    process's warm networks and heavy work."""
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
    runners = GaugeMetricFamily(
        "backprop_job_runners",
        "Processes able to run jobs, alive now: `worker` (backprop-service worker, with a "
        "queue) and `service` (they run jobs only without a queue).",
        labels=["kind"],
    )
    alive = store.count_runners()
    for kind in ("service", "worker"):
        runners.add_metric([kind], alive.get(kind, 0))
    yield runners
    restarts = GaugeMetricFamily(
        "backprop_job_restarts", "Interruptions the jobs on record resumed from (restarts)."
    )
    restarts.add_metric([], store.total_restarts())
    yield restarts
    warm = GaugeMetricFamily("backprop_warm_networks", "Networks this process keeps warm.")
    warm.add_metric([], len(app.state.warm))
    yield warm
    heavy = GaugeMetricFamily("backprop_heavy_calls", "Heavy calls running or waiting here.")
    heavy.add_metric([], app.state.heavy.in_flight)
    yield heavy


def _broker(settings: Settings) -> JobQueue | None:
    if not settings.queue_url:
        return None
    from service.jobs.queue import BrokerQueue  # Celery loads only when a queue is set

    return BrokerQueue(settings.queue_url)


def _on_sigterm(begin_drain: Callable[[], None]) -> None:
    """Begin the drain when uvicorn's SIGTERM handler runs (installed before the lifespan
    starts; restored by uvicorn once it has shut down)."""
    if threading.current_thread() is not threading.main_thread():
        return
    uvicorn_handler = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        begin_drain()
        if callable(uvicorn_handler):
            uvicorn_handler(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """A fresh application. Without ``store`` it opens the one ``settings.database_url`` names
    when it starts (so importing this module touches no file)."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)

    def begin_drain() -> None:
        if app.state.draining:
            return
        app.state.draining = True
        delay = max(0.0, settings.shutdown_grace_seconds - DRAIN_MARGIN_SECONDS)
        timer = threading.Timer(delay, app.state.heavy.drain)
        timer.daemon = True  # a drained process exits without waiting for it
        timer.start()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = app.state.store is None
        if opened:
            app.state.store = store_for(settings)
        if app.state.warm is None:
            app.state.warm = WarmNetworks(app.state.store, settings.warm_bytes)
        app.state.jobs.start()  # and resume the jobs that dead processes left behind
        _on_sigterm(begin_drain)
        # What start-up made (modules, the app, its schemas) lives as long as the process: out
        # of the collector's sight, a full collection no longer walks it, and no longer stalls
        # the event loop for as long (about 0.1 s with it, measured).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            begin_drain()
            app.state.heavy.drain()
            await anyio.to_thread.run_sync(app.state.jobs.stop)  # checkpoints running jobs
            app.state.heavy.close()
            if opened:
                app.state.store.close()

    app = FastAPIOffline(
        title="Backprop Service",
        version="0.2.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
        telemetry=dict.fromkeys(("tracing", "metrics", "logs"), settings.opentelemetry),
    )
    app.state.settings = settings
    app.state.store = store
    app.state.warm = None if store is None else WarmNetworks(store, settings.warm_bytes)
    app.state.draining = False
    app.state.heavy = HeavyWork(settings.heavy_workers, settings.heavy_queue)
    app.state.metrics = counters = Metrics()
    counters.add_gauges(lambda: _gauges(app))
    app.state.jobs = JobManager(
        settings,
        lambda: app.state.store,
        lambda: app.state.warm,
        counters.training_steps.inc,
        queue_=_broker(settings),
    )
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    # Outermost last: the request id and the access log see every answer, 401 and 413 too.
    app.add_middleware(
        ApiKeyMiddleware, keys=settings.api_key_list, metrics_key=bool(settings.metrics_key)
    )
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.max_body_bytes,
        in_flight=settings.body_bytes_in_flight,
        timeout=settings.body_timeout_seconds,
    )
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
