"""Persistence: the :class:`Store` interface and its backends."""

from service.store.base import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
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
    Store,
    StoreError,
    Update,
    VersionConflict,
)
from service.store.sqlite import SQLiteStore


def open_store(database_url: str, pool_size: int = 10) -> Store:
    """The backend ``database_url`` names (``pool_size``: connections per process to a
    database server)."""
    if database_url.startswith("sqlite:///"):
        return SQLiteStore.from_url(database_url)
    if database_url.startswith(("postgresql://", "postgres://")):
        from service.store.postgres import PostgresStore  # psycopg loads only when used

        return PostgresStore.from_url(database_url, max_connections=pool_size)
    raise ValueError(f"no store backend for {database_url.split(':', 1)[0]!r} URLs yet")


__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
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
    "SQLiteStore",
    "Store",
    "StoreError",
    "Update",
    "VersionConflict",
    "open_store",
]
