"""Training jobs: start one, follow it (as JSON or as server-sent events), cancel it, remove
it, list a network's jobs. Running them is :mod:`service.jobs.manager`'s and
:mod:`service.jobs.runner`'s."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from model import TrainOptions, check_X, check_Y
from service.core.admission import check_training
from service.core.capacity import Stop
from service.core.http import JsonRoute, ORJSONResponse
from service.core.idempotency import Retry
from service.core.openapi import problems
from service.deps import (
    IdempotencyKey,
    JobId,
    NetworkId,
    ServiceDep,
)
from service.jobs.manager import JobManager
from service.jobs.schemas import JobList, JobProgress, JobPublic, job_resource
from service.store import FINAL_STATUSES, JobMissing, JobRecord, JobRequest, NetworkMissing
from service.training.schemas import TrainRequest

router = APIRouter(route_class=JsonRoute, tags=["jobs"])

STORE_POLL_SECONDS = 0.5  # how often a stream reads a job another process runs
# uvloop's timers run on the loop's clock as of the start of its iteration, so a sleep of the
# interval may end a little before the interval has passed by time.monotonic(): without this
# slack, such a wake-up skipped its event and the gap doubled (2 s at ?interval=1).
EVENT_SLACK_SECONDS = 0.01
JOB_DESCRIPTION = (
    "`step` counts this job's updates (0 to `total_steps`); the network's own step numbers "
    "(its history) continue from its `steps_trained`. `cost` is the last step's cost, "
    "`final_cost` (succeeded jobs) the whole batch's after the last update. `elapsed_s` counts "
    "from the start; `eta_seconds` (also `eta_s`) is set while running; `restarts` counts the "
    "times the job was interrupted and resumed from its last checkpoint."
)


def _accepted(job: JobRecord) -> ORJSONResponse:
    return ORJSONResponse(
        job_resource(job), status_code=202, headers={"Location": f"/jobs/{job.id}"}
    )


@router.post(
    "/networks/{network_id}/jobs",
    status_code=202,
    response_model=JobPublic,
    summary="Start a training job",
    description=(
        "Takes the body of `POST /networks/{id}/train` and trains in the background: the answer "
        "is immediate (202, `Location: /jobs/{job_id}`), the job `queued` until a worker is free, "
        "then `running`. At most `BACKPROP_MAX_JOB_STEPS` steps. Parameters, optimizer state, "
        "history and last gradients are committed every `BACKPROP_CHECKPOINT_SECONDS` and at the "
        "end; predictions answer from the last checkpoint; a job whose process dies resumes from "
        "it. While the job is queued or running, training, `PUT parameters` and another job on the "
        "network answer 409 naming it. " + JOB_DESCRIPTION
    ),
    responses=problems(400, 404, 409, 413, 415, 422, 503, 507),
)
async def create_job(
    network_id: NetworkId,
    body: TrainRequest,
    service: ServiceDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    retry = await Retry.of(request, service.store, service.owner, idempotency_key)

    def change(stop: Stop) -> Response:
        meta = service.store.get_meta(network_id, service.owner)
        options = body.options()
        m = body.X.shape[1]
        total = check_training(meta.spec, m, options, service.settings, job=True)
        if options.batch_size is not None and options.shuffle_seed is None:
            # Fixed now, so that a resumed job shuffles every epoch as the first attempt did.
            options = TrainOptions(
                options.epochs, options.batch_size, secrets.randbelow(2**32), options.learning_rate
            )
        # Checked and cast to the network's dtype now, not when a worker gets to the job.
        job = JobRequest(check_X(meta.spec, body.X), check_Y(meta.spec, body.Y, m), options)
        return _accepted(
            service.jobs.submit(network_id, service.owner, job, total, retry.keeping(_accepted))
        )

    return await service.heavy.run(lambda stop: retry.run(lambda: change(stop)))


@router.get(
    "/networks/{network_id}/jobs",
    response_model=JobList,
    summary="List a network's jobs",
    description="Every job started on the network and not removed, oldest first.",
    responses=problems(404, 503),
)
def list_jobs(network_id: NetworkId, service: ServiceDep) -> ORJSONResponse:
    meta = service.store.get_meta(network_id, service.owner)
    listed = []
    for job in service.store.list_jobs(meta.id, service.owner):
        attempt = service.jobs.live(job.id)
        listed.append(job_resource(job, None if attempt is None else attempt.live()))
    return ORJSONResponse({"jobs": listed})


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    summary="Get a job",
    description="The job's status and progress. " + JOB_DESCRIPTION,
    responses=problems(404, 503),
)
def get_job(job_id: JobId, service: ServiceDep) -> ORJSONResponse:
    return ORJSONResponse(service.jobs.resource(job_id, service.owner))


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobPublic,
    summary="Cancel a job",
    description=(
        "Stops the job within a second; the network keeps the parameters of the last completed "
        "step (committed). A queued job is cancelled at once. The answer is the job resource, "
        "usually already `cancelled` (the route waits up to a second for it). Cancelling an ended "
        "job changes nothing and answers 202 with its final state."
    ),
    responses=problems(404, 503),
)
def cancel_job(job_id: JobId, service: ServiceDep) -> ORJSONResponse:
    return ORJSONResponse(service.jobs.cancel(job_id, service.owner), status_code=202)


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    summary="Remove an ended job",
    description=(
        "Removes the record of a job that has ended (succeeded, failed or cancelled); `GET` then "
        "answers 404. A queued or running job answers 409: cancel it first "
        "(`POST /jobs/{job_id}/cancel`)."
    ),
    responses=problems(404, 409, 503),
)
def delete_job(job_id: JobId, service: ServiceDep) -> Response:
    service.store.delete_job(job_id, service.owner)
    return Response(status_code=204)


def _event_schema(names: list[str], data: type[BaseModel]) -> dict[str, Any]:
    content = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": data.model_json_schema(),
    }
    return {
        "type": "object",
        "properties": {"event": {"type": "string", "enum": names}, "data": content},
        "required": ["event", "data"],
    }


# One event (OpenAPI 3.1 has a text/event-stream schema describe each event of the stream).
EVENT_SCHEMA = {
    "oneOf": [
        _event_schema(["progress"], JobProgress),
        _event_schema([*FINAL_STATUSES, "interrupted"], JobPublic),
    ]
}
PROGRESS_KEYS = ("step", "total_steps", "cost", "elapsed_s", "eta_s")


def _event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=name)


async def _follow(
    request: Request, jobs: JobManager, job_id: str, owner: str, interval: float
) -> AsyncIterator[ServerSentEvent]:
    """``progress`` events (the first at once) until the job ends, then its final event; an
    ``interrupted`` event instead when the server stops first."""
    sent_at = -float("inf")
    while True:
        attempt = jobs.live(job_id)
        if attempt is not None and not attempt.done.is_set():
            job, version = attempt.job, attempt.version
            resource = job_resource(job, attempt.live())
        else:
            try:
                resource = await run_in_threadpool(jobs.resource, job_id, owner)
                job = await run_in_threadpool(jobs.store.get_job, job_id, owner)
                version = await run_in_threadpool(jobs.store.get_version, job.network_id, owner)
            except (JobMissing, NetworkMissing):  # removed, or deleted with its network
                yield _event(
                    "cancelled",
                    {"id": job_id, "status": "cancelled", "error": "The job was removed."},
                )
                return
        if resource["status"] in FINAL_STATUSES:
            yield _event(resource["status"], resource)
            return
        if request.app.state.draining:
            yield _event(
                "interrupted",
                {**resource, "error": "The server is shutting down; the job goes on."},
            )
            return
        if time.monotonic() - sent_at >= interval - EVENT_SLACK_SECONDS:
            yield _event(
                "progress", {**{k: resource[k] for k in PROGRESS_KEYS}, "version": version}
            )
            sent_at = time.monotonic()
        await asyncio.sleep(min(interval, STORE_POLL_SECONDS if attempt is None else interval))


@router.get(
    "/jobs/{job_id}/events",
    response_class=Response,
    summary="Follow a job (server-sent events)",
    description=(
        "A `text/event-stream`: a `progress` event at once, then every `interval` seconds while "
        "the job is queued or running, data `{step, total_steps, cost, elapsed_s, eta_s, version}` "
        "(`version`: the network's, as of the job's last checkpoint); then exactly one final "
        "event, "
        "`succeeded`, `failed` or `cancelled`, whose data is the job resource, and the stream "
        "closes. If the server must close the stream first (it is shutting down), an "
        "`interrupted` event comes instead, and the job goes on elsewhere. A client that connects "
        "after the end gets the final event at once. Try `curl -N $BASE/jobs/$JOB/events`."
    ),
    responses={
        200: {
            "description": "The event stream",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        **problems(404, 503),
    },
)
async def job_events(
    job_id: JobId,
    service: ServiceDep,
    request: Request,
    interval: Annotated[
        float, Query(ge=0.05, le=1.0, description="seconds between progress events")
    ] = 0.5,
) -> EventSourceResponse:
    # A 404 before the stream starts.
    await run_in_threadpool(service.jobs.store.get_job, job_id, service.owner)
    return EventSourceResponse(_follow(request, service.jobs, job_id, service.owner, interval))
