"""Persistence: one SQL store (:mod:`service.store.sql`) on SQLite (the embedded default) or
PostgreSQL (for replicas), their differences in :mod:`service.store.dialects`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.store.dialects import PostgresDialect, SQLiteDialect
from service.store.records import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Claim,
    Idempotency,
    IdempotencyKeyTaken,
    IdempotencyMismatch,
    JobActive,
    JobCheckpoint,
    JobEnded,
    JobMissing,
    JobRecord,
    JobRequest,
    JobStatus,
    LastGradients,
    NetworkBusy,
    NetworkLimitReached,
    NetworkMeta,
    NetworkMissing,
    NetworkRecord,
    QuotaExceeded,
    StoredResponse,
    StoreError,
    StoreFull,
    StoreUnavailable,
    Update,
    VersionConflict,
    WouldWait,
    utc_now,
)
from service.store.sql import Store

if TYPE_CHECKING:
    from service.core.settings import Settings


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` -> the file's path."""
    return url.removeprefix("sqlite:///")


def store_for(settings: Settings) -> Store:
    """The store ``settings`` configure, as every process of the service opens it: the API's
    and a queue worker's alike (so a worker on an SQLite file keeps the disk reserve too)."""
    return open_store(
        settings.database_url,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout_seconds,
        history_points=settings.max_history_points,
        reserve_bytes=settings.disk_reserve_bytes,
        cache_bytes=settings.sqlite_cache_bytes,
    )


def open_store(
    database_url: str,
    *,
    pool_size: int = 10,
    timeout: float = 5.0,
    history_points: int = 100_000,
    reserve_bytes: int = 0,
    cache_bytes: int = 0,
) -> Store:
    """The store ``database_url`` names (``pool_size``: connections per process to a server;
    ``timeout``: the longest any call waits for the database; ``reserve_bytes``: the room an
    embedded database keeps for deletes on a full disk; ``cache_bytes``: the memory of its
    page caches in this process, 0 for SQLite's default)."""
    from pathlib import Path

    if database_url.startswith("sqlite:///"):
        dialect: SQLiteDialect | PostgresDialect = SQLiteDialect(
            Path(sqlite_path(database_url)), timeout, reserve_bytes, cache_bytes
        )
    elif database_url.startswith(("postgresql://", "postgres://")):
        dialect = PostgresDialect(database_url, pool_size, timeout)
    else:
        raise ValueError(f"no store backend for {database_url.split(':', 1)[0]!r} URLs")
    return Store(dialect, history_points=history_points)


__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "Claim",
    "Idempotency",
    "IdempotencyKeyTaken",
    "IdempotencyMismatch",
    "JobActive",
    "JobCheckpoint",
    "JobEnded",
    "JobMissing",
    "JobRecord",
    "JobRequest",
    "JobStatus",
    "LastGradients",
    "NetworkBusy",
    "NetworkLimitReached",
    "NetworkMeta",
    "NetworkMissing",
    "NetworkRecord",
    "QuotaExceeded",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "StoredResponse",
    "Update",
    "VersionConflict",
    "WouldWait",
    "open_store",
    "sqlite_path",
    "store_for",
    "utc_now",
]
