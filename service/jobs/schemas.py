"""Bodies of the job routes: the job resource and its progress events."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.store import JobRecord, utc_now


class JobPublic(BaseModel):
    id: str
    network_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    step: int = Field(description="updates this job has made (0 to total_steps)")
    total_steps: int = Field(description="updates the job makes: epochs x batches per epoch")
    cost: float | None = Field(description="the last step's cost, from its forward pass")
    final_cost: float | None = Field(
        description="succeeded: the whole batch's cost after the last update"
    )
    elapsed_s: float | None = Field(description="seconds since the job started")
    eta_seconds: float | None = Field(description="while running: estimated seconds left")
    eta_s: float | None = Field(description="the same as eta_seconds, as progress events name it")
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None = Field(description="why a failed job failed")
    restarts: int = Field(description="times the job was interrupted and resumed from a checkpoint")


class JobList(BaseModel):
    jobs: list[JobPublic]


class JobProgress(BaseModel):
    """The data of a ``progress`` event."""

    step: int
    total_steps: int
    cost: float | None
    elapsed_s: float | None
    eta_s: float | None
    version: int | None = Field(description="the network's version as of the job's last checkpoint")


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def job_resource(
    job: JobRecord, live: tuple[int, float | None, float] | None = None
) -> dict[str, Any]:
    """The job resource (plus ``final_cost``, ``elapsed_s`` and ``eta_s``, the same number as
    ``eta_seconds``). ``live``, for a job this process runs: (steps, cost, start time on
    ``time.monotonic``), fresher than the store's."""
    step, cost = job.step, job.cost
    elapsed: float | None = None
    if live is not None and job.active:
        step, cost, started = live
        elapsed = time.monotonic() - started
    elif job.started_at is not None:
        elapsed = max(0.0, _seconds_between(job.started_at, job.finished_at or utc_now()))
    eta = None
    if job.status == "running" and elapsed is not None and step > 0:
        eta = elapsed / step * (job.total_steps - step)
    return {
        "id": job.id,
        "network_id": job.network_id,
        "status": job.status,
        "step": step,
        "total_steps": job.total_steps,
        "cost": cost,
        "final_cost": job.final_cost,
        "elapsed_s": elapsed,
        "eta_seconds": eta,
        "eta_s": eta,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "restarts": job.restarts,
    }
