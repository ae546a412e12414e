"""Training jobs: start one, follow it (as JSON or as server-sent events), cancel it, list a
network's jobs. The work itself is :mod:`service.jobs`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from model import TrainOptions, check_X, check_Y
from service.deps import MetaDep, NetworkId, OwnerDep, SettingsDep
from service.errors import Invalid, ProblemError, job_missing, network_busy, network_missing
from service.jobs import JobManager, job_resource, progress_data
from service.openapi import problems
from service.plumbing import OrjsonRoute
from service.responses import ORJSONResponse
from service.schemas import JobList, JobProgress, JobPublic, TrainRequest
from service.store import FINAL_STATUSES, JobMissing, JobRequest, NetworkBusy, NetworkMissing

router = APIRouter(route_class=OrjsonRoute, tags=["jobs"])

PROGRESS_SECONDS = 0.5  # a progress event at least this often while a job is not finished
LOCAL_POLL_SECONDS = 0.1  # how often a stream looks at a job this process runs (memory)
STORE_POLL_SECONDS = 0.5  # ... and at one another process runs (the store)

JobId = Annotated[
    str, Path(description="The id POST /networks/{id}/jobs answered.", min_length=1, max_length=64)
]


def get_jobs(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


JobsDep = Annotated[JobManager, Depends(get_jobs)]

JOB_DESCRIPTION = (
    "`step` counts this job's updates (0 to `total_steps`); the network's own step numbers "
    "(its history) continue from its `steps_trained`. `cost` is the last step's cost, "
    "`final_cost` (succeeded jobs) the whole batch's after the last update. `elapsed_s` "
    "counts from the start; `eta_seconds` (also `eta_s`) is set while running."
)


@router.post(
    "/networks/{network_id}/jobs",
    status_code=202,
    response_model=JobPublic,
    summary="Start a training job",
    description=(
        "Takes the body of `POST /networks/{id}/train` and trains in the background: the "
        "answer is immediate (202, `Location: /jobs/{job_id}`), the job `queued` until a "
        "worker is free, then `running`. No epochs x examples limit applies (the per-request "
        "examples limit does). Parameters, optimizer state, history and last gradients are "
        "committed every `BACKPROP_CHECKPOINT_SECONDS` and at the end; predictions keep "
        "answering from the last checkpoint. While the job is queued or running, training, "
        "`PUT parameters` and another job on the network answer 409 naming it. " + JOB_DESCRIPTION
    ),
    responses=problems(400, 404, 409, 413, 422),
)
def create_job(
    network_id: NetworkId,
    body: TrainRequest,
    meta: MetaDep,
    jobs: JobsDep,
    owner: OwnerDep,
    settings: SettingsDep,
) -> ORJSONResponse:
    m = body.X.shape[1]
    if m > settings.max_examples:
        raise Invalid(f"X has {m} examples; the limit is {settings.max_examples} per request.")
    # Refused now, not when a worker gets to the job; stored in the network's dtype.
    X = check_X(meta.spec, body.X)
    Y = check_Y(meta.spec, body.Y, m)
    options = TrainOptions(
        epochs=body.epochs,
        batch_size=body.batch_size,
        shuffle_seed=body.shuffle_seed,
        learning_rate=body.learning_rate,
    )
    request = JobRequest(X=X, Y=Y, options=options)
    try:
        job = jobs.submit(uuid.uuid4().hex, network_id, owner, request, options.steps_for(m))
    except NetworkMissing:
        raise network_missing(network_id) from None
    except NetworkBusy as busy:
        raise network_busy(busy.job_id) from None
    except RuntimeError:
        raise ProblemError("The service is shutting down; try again.", status=503) from None
    return ORJSONResponse(
        job_resource(job), status_code=202, headers={"Location": f"/jobs/{job.id}"}
    )


@router.get(
    "/networks/{network_id}/jobs",
    response_model=JobList,
    summary="List a network's jobs",
    description="Every job started on the network, oldest first, finished ones included.",
    responses=problems(404),
)
def list_jobs(meta: MetaDep, jobs: JobsDep, owner: OwnerDep) -> ORJSONResponse:
    listed = [job_resource(job, jobs.local(job.id)) for job in jobs.store.list_jobs(meta.id, owner)]
    return ORJSONResponse({"jobs": listed})


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    summary="Get a job",
    description="The job's status and progress. " + JOB_DESCRIPTION,
    responses=problems(404),
)
def get_job(job_id: JobId, jobs: JobsDep, owner: OwnerDep) -> ORJSONResponse:
    try:
        return ORJSONResponse(jobs.resource(job_id, owner))
    except JobMissing:
        raise job_missing(job_id) from None


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobPublic,
    summary="Cancel a job",
    description=(
        "Stops the job within a second; the network keeps the parameters of the last "
        "completed step (committed). A queued job is cancelled at once. The answer is the "
        "job resource, usually already `cancelled` (the route waits up to a second for it). "
        "Cancelling a finished job changes nothing and answers 202 with its final state, so "
        "the call is idempotent."
    ),
    responses=problems(404),
)
def cancel_job(job_id: JobId, jobs: JobsDep, owner: OwnerDep) -> ORJSONResponse:
    try:
        return ORJSONResponse(jobs.cancel(job_id, owner), status_code=202)
    except JobMissing:
        raise job_missing(job_id) from None


def _event_schema(names: list[str], data: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": names},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data.model_json_schema(),
            },
        },
        "required": ["event", "data"],
    }


# One event (OpenAPI 3.1 has a text/event-stream schema describe each event of the stream).
EVENT_SCHEMA = {
    "oneOf": [
        _event_schema(["progress"], JobProgress),
        _event_schema(list(FINAL_STATUSES), JobPublic),
    ]
}


def _event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=name)


async def _follow(
    jobs: JobManager, job_id: str, owner: str, resource: dict[str, Any]
) -> AsyncIterator[ServerSentEvent]:
    """``progress`` events (the first at once) until the job ends, then its final event."""
    sent_at = -float("inf")
    while resource["status"] not in FINAL_STATUSES:
        if time.monotonic() - sent_at >= PROGRESS_SECONDS:
            yield _event("progress", progress_data(resource))
            sent_at = time.monotonic()
        live = jobs.local(job_id)
        await anyio.sleep(STORE_POLL_SECONDS if live is None else LOCAL_POLL_SECONDS)
        live = jobs.local(job_id)
        if live is not None:  # this process runs it: read memory, not the store
            resource = job_resource(live.final or live.record, live)
            continue
        try:
            resource = await run_in_threadpool(jobs.resource, job_id, owner)
        except JobMissing:  # deleted with its network
            error = "The network was deleted while this job ran."
            resource = {**resource, "status": "cancelled", "error": error}
    yield _event(resource["status"], resource)


@router.get(
    "/jobs/{job_id}/events",
    response_class=Response,
    summary="Follow a job (server-sent events)",
    description=(
        "A `text/event-stream`: a `progress` event at once, then at least once a second "
        "while the job is queued or running, data `{step, total_steps, cost, elapsed_s, "
        "eta_s}`; then exactly one final event, `succeeded`, `failed` or `cancelled`, whose "
        "data is the job resource, and the stream closes. A client that connects after the "
        "end gets the final event at once. Try `curl -N $BASE/jobs/$JOB/events`."
    ),
    responses={
        200: {
            "description": "The event stream",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        **problems(404),
    },
)
async def job_events(job_id: JobId, jobs: JobsDep, owner: OwnerDep) -> EventSourceResponse:
    try:
        resource = await run_in_threadpool(jobs.resource, job_id, owner)
    except JobMissing:
        raise job_missing(job_id) from None
    return EventSourceResponse(_follow(jobs, job_id, owner, resource))
