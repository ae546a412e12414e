"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import StoreDep
from service.errors import ProblemError
from service.openapi import problems
from service.responses import ORJSONResponse
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Alive", description="The process answers.")
async def healthz() -> ORJSONResponse:
    return ORJSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    summary="Ready",
    description="The store can be reached; 503 otherwise.",
    responses=problems(503),
)
def readyz(store: StoreDep) -> ORJSONResponse:
    try:
        store.ping()
    except Exception as exc:  # any backend failure means "not ready", whatever its type
        raise ProblemError(f"The store cannot be reached: {exc}", status=503) from None
    return ORJSONResponse({"status": "ready"})
