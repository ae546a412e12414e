"""The ASGI application: ``service.main:app``, built by :func:`create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service.errors import install_error_handlers
from service.openapi import DESCRIPTION, build_openapi
from service.plumbing import BodySizeLimit
from service.responses import ORJSONResponse
from service.routes import health, inspection, networks, prediction, training
from service.settings import Settings, get_settings
from service.store import Store, open_store
from service.updates import NetworkLocks

TAGS = [
    {"name": "networks", "description": "Create networks and read or replace their parameters."},
    {"name": "training", "description": "Gradient descent, synchronously, and the cost history."},
    {"name": "inspection", "description": "Costs, activations and every gradient."},
    {"name": "prediction", "description": "Predictions and evaluation."},
    {"name": "operations", "description": "Health and readiness."},
]


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """A fresh application. Without ``store`` it opens the one ``settings.database_url``
    names when it starts (so importing this module touches no file)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = store is None
        if opened:
            app.state.store = open_store(settings.database_url)
        try:
            yield
        finally:
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
    for module in (networks, training, inspection, prediction, health):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

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
