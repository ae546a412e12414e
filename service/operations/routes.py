"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.core.errors import ProblemError, Unavailable
from service.core.http import ORJSONResponse
from service.core.observability import Metrics
from service.core.openapi import problems
from service.core.schemas import RequestModel
from service.deps import ServiceDep
from service.store import StoreError

router = APIRouter(tags=["operations"])
READY_SECONDS = 1.0


class Health(RequestModel):
    status: str


@router.get("/healthz", response_model=Health, summary="Alive", description="The process answers.")
async def healthz() -> ORJSONResponse:
    return ORJSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    summary="Ready",
    description=(
        "Whether the store can take writes: 503 within a second while it cannot be reached, is "
        "out of space, or does not answer."
    ),
    responses=problems(503),
)
async def readyz(service: ServiceDep) -> ORJSONResponse:
    try:
        await asyncio.wait_for(run_in_threadpool(service.store.ready), READY_SECONDS)
    except TimeoutError:
        raise Unavailable(f"The store did not answer within {READY_SECONDS:g} s.") from None
    except StoreError as error:
        raise Unavailable(f"The store cannot take writes: {error}") from None
    return ORJSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "Requests by route and status with their latency, training steps committed, networks "
        "stored, jobs by status, warm networks, heavy work, job attempts, in the Prometheus text "
        "format. With `BACKPROP_METRICS_KEY` set it needs that key (`Authorization: Bearer "
        "<key>`) and no API key opens it; with API keys but no metrics key it answers 403 (the "
        "counts cover every key's requests). Open service: open."
    ),
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
        **problems(401, 403),
    },
)
def metrics(service: ServiceDep, request: Request) -> Response:
    if service.settings.api_key_list and not service.settings.metrics_key:
        # The counters cover every tenant's requests: with API keys, only the operator reads them.
        raise ProblemError(
            "The metrics count every API key's requests, so with API keys they need an operator "
            "key: set BACKPROP_METRICS_KEY and send it as Authorization: Bearer <key>.",
            status=403,
        )
    if service.settings.metrics_key:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), service.settings.metrics_key.encode()):
            raise ProblemError(
                "The metrics need the operator's key: send Authorization: Bearer "
                "<BACKPROP_METRICS_KEY>.",
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="backprop-metrics"'},
            )
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
