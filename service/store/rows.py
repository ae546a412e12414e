"""What the two SQL backends share: the columns they read, and their rows as records.

A backend passes its own ``timestamp`` reader: SQLite keeps times as the text
:func:`~service.store.base.utc_now` writes, PostgreSQL as ``TIMESTAMPTZ``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from service.store.base import ACTIVE_STATUSES, FINAL_STATUSES, JobRecord, JobStatus, NetworkMeta
from service.store.blobs import spec_from_json

META_COLUMNS = "id, owner, name, spec, version, steps_trained, created_at, updated_at"
JOB_COLUMNS = (
    "id, network_id, owner, status, step, total_steps, cost, final_cost, error, "
    "cancel_requested, runner, created_at, started_at, finished_at"
)
ACTIVE = "status IN ('queued', 'running')"

Timestamp = Callable[[Any], str]


def timestamp_text(value: datetime) -> str:
    """A TIMESTAMPTZ as :func:`~service.store.base.utc_now` writes times:
    ``2024-05-01T12:00:00.000Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def meta_from_row(row: tuple[Any, ...], timestamp: Timestamp = str) -> NetworkMeta:
    """A row of :data:`META_COLUMNS`."""
    id_, owner, name, spec, version, steps, created, updated = row
    return NetworkMeta(
        id=str(id_),
        owner=str(owner),
        name=None if name is None else str(name),
        spec=spec_from_json(str(spec)),
        version=int(version),
        steps_trained=int(steps),
        created_at=timestamp(created),
        updated_at=timestamp(updated),
    )


def job_from_row(row: tuple[Any, ...], timestamp: Timestamp = str) -> JobRecord:
    """A row of :data:`JOB_COLUMNS`."""
    (id_, network_id, owner, status, step, total, cost, final_cost, error) = row[:9]
    cancel_requested, runner, created, started, finished = row[9:]
    return JobRecord(
        id=str(id_),
        network_id=str(network_id),
        owner=str(owner),
        status=job_status(status),
        step=int(step),
        total_steps=int(total),
        cost=None if cost is None else float(cost),
        final_cost=None if final_cost is None else float(final_cost),
        error=None if error is None else str(error),
        cancel_requested=bool(cancel_requested),
        runner=None if runner is None else str(runner),
        created_at=timestamp(created),
        started_at=None if started is None else timestamp(started),
        finished_at=None if finished is None else timestamp(finished),
    )


def job_status(value: object) -> JobStatus:
    for status in (*ACTIVE_STATUSES, *FINAL_STATUSES):
        if value == status:
            return status
    raise ValueError(f"unknown job status {value!r} in the store")
