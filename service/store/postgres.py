"""The shared store for several replicas: PostgreSQL through psycopg 3 and a connection pool.

Every method is one transaction on one pooled connection (READ COMMITTED). What keeps
replicas from stepping on each other:

- :meth:`commit_update` (and :meth:`create_job`) lock the network's row ``FOR UPDATE`` before
  they look at its version and its active job, so writers to one network take turns; the
  version check turns a lost race into a :class:`VersionConflict` the caller retries, and a
  partial unique index keeps a network to one active job whatever happens.
- Schema migrations run at start-up under ``pg_advisory_xact_lock``, so replicas starting
  together apply each one exactly once; ``schema_migrations`` remembers which ran.
- Job runners hold leases (``runners.lease_until``, by the database's clock) that their
  process renews; any process fails the active jobs of a runner whose lease ran out.

Parameters, optimizer state and last gradients are ``BYTEA`` (the bytes of
``model.serialize`` and ``service.store.blobs``), sent and read in binary; history is rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from model import Network, from_bytes, to_bytes
from service.store.base import (
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
    Update,
    check_commit,
    committed,
    utc_now,
)
from service.store.blobs import (
    gradients_from_bytes,
    gradients_to_bytes,
    job_request_from_bytes,
    job_request_to_bytes,
    spec_to_json,
)
from service.store.rows import (
    ACTIVE,
    JOB_COLUMNS,
    META_COLUMNS,
    job_from_row,
    meta_from_row,
    timestamp_text,
)

# Each entry runs once, in order, in the transaction that records it in schema_migrations.
# Never edit one that has shipped: append another.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT,
        spec TEXT NOT NULL,
        version BIGINT NOT NULL,
        steps_trained BIGINT NOT NULL,
        body BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX networks_by_owner ON networks (owner, created_at);
    CREATE TABLE history (
        network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
        step BIGINT NOT NULL,
        cost DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (network_id, step)
    );
    CREATE TABLE last_gradients (
        network_id TEXT PRIMARY KEY REFERENCES networks (id) ON DELETE CASCADE,
        version BIGINT NOT NULL,
        step BIGINT NOT NULL,
        cost DOUBLE PRECISION NOT NULL,
        body BYTEA NOT NULL
    );
    """,
    """
    CREATE TABLE jobs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        step BIGINT NOT NULL,
        total_steps BIGINT NOT NULL,
        cost DOUBLE PRECISION,
        final_cost DOUBLE PRECISION,
        error TEXT,
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
        runner TEXT,
        request BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ
    );
    CREATE INDEX jobs_by_network ON jobs (network_id, created_at, seq);
    CREATE UNIQUE INDEX jobs_one_active_per_network ON jobs (network_id)
        WHERE status IN ('queued', 'running');
    CREATE INDEX jobs_active_by_runner ON jobs (runner) WHERE status IN ('queued', 'running');
    CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        lease_until TIMESTAMPTZ NOT NULL
    );
    """,
    # Creation order among networks made in the same millisecond (ids are random).
    """
    ALTER TABLE networks ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
    DROP INDEX networks_by_owner;
    CREATE INDEX networks_by_owner ON networks (owner, created_at, seq);
    """,
)

# pg_advisory_xact_lock's key for migrations: "backprop" in ASCII, as a bigint.
MIGRATION_LOCK = int.from_bytes(b"backprop", "big")
# The first key of the two-key advisory locks on an owner's networks ("bp" in ASCII); the
# two-key space never overlaps the one-key space of MIGRATION_LOCK.
OWNER_LOCK_SPACE = int.from_bytes(b"bp", "big")


class PostgresStore:
    """The :class:`~service.store.base.Store` on PostgreSQL. ``url`` is a libpq URL
    (``postgresql://user:password@host:5432/dbname?sslmode=require``)."""

    local_reads = False

    def __init__(self, url: str, *, max_connections: int = 10, timeout_s: float = 30.0) -> None:
        self.url = url
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            timeout=timeout_s,
            check=ConnectionPool.check_connection,  # a server restart costs no request
            name="backprop-store",
            kwargs={"autocommit": True},  # one statement, one round trip; see _transaction
            open=False,
        )
        self._pool.open(wait=True, timeout=timeout_s)
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 10) -> PostgresStore:
        return cls(url, max_connections=max_connections)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in autocommit mode: each statement is its own transaction
        (what a single SELECT, or a single UPDATE ... RETURNING, needs)."""
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction, committed on success and rolled back on
        any exception."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _migrate(self) -> None:
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
            done = int(row[0]) if row else 0
            for number, script in enumerate(MIGRATIONS[done:], start=done + 1):
                conn.execute(script)  # several statements: allowed without parameters
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))

    def ping(self) -> None:
        # A short wait for a connection: /readyz should say "not ready", not hang.
        with self._pool.connection(timeout=5.0) as conn:
            conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._pool.close()

    # ---- networks ----------------------------------------------------------------------

    def create_network(
        self,
        network_id: str,
        owner: str,
        name: str | None,
        network: Network,
        *,
        limit: int | None = None,
    ) -> NetworkRecord:
        body = to_bytes(network)
        now = utc_now()
        with self._transaction() as conn:
            if limit is not None:
                # One creator per owner at a time (until commit), so the count holds.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (OWNER_LOCK_SPACE, owner)
                )
                row = conn.execute(
                    "SELECT count(*) FROM networks WHERE owner = %s", (owner,)
                ).fetchone()
                if row is not None and row[0] >= limit:
                    raise NetworkLimitReached(limit)
            row = conn.execute(
                f"INSERT INTO networks ({META_COLUMNS}, body) "
                "VALUES (%s, %s, %s, %s, 1, %s, %s, %s, %b) "
                f"RETURNING {META_COLUMNS}",
                (
                    network_id,
                    owner,
                    name,
                    spec_to_json(network.spec),
                    network.steps_trained,
                    now,
                    now,
                    body,
                ),
            ).fetchone()
        assert row is not None  # INSERT ... RETURNING answers its row
        return NetworkRecord(meta=_meta(row), network=network)

    def get_meta(self, network_id: str, owner: str) -> NetworkMeta:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {META_COLUMNS} FROM networks WHERE id = %s AND owner = %s",
                (network_id, owner),
            ).fetchone()
        if row is None:
            raise NetworkMissing(network_id)
        return _meta(row)

    def get_version(self, network_id: str, owner: str) -> int:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT version FROM networks WHERE id = %s AND owner = %s", (network_id, owner)
            ).fetchone()
        if row is None:
            raise NetworkMissing(network_id)
        return int(row[0])

    def get_network(self, network_id: str, owner: str) -> NetworkRecord:
        # One SELECT: the parameters and the version they belong to are read together.
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {META_COLUMNS}, body FROM networks WHERE id = %s AND owner = %s",
                (network_id, owner),
                binary=True,
            ).fetchone()
        if row is None:
            raise NetworkMissing(network_id)
        return NetworkRecord(meta=_meta(row[:-1]), network=from_bytes(row[-1]))

    def list_networks(self, owner: str) -> list[NetworkMeta]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {META_COLUMNS} FROM networks WHERE owner = %s ORDER BY created_at, seq",
                (owner,),
            ).fetchall()
        return [_meta(row) for row in rows]

    def count_networks(self, owner: str | None = None) -> int:
        with self._connection() as conn:
            if owner is None:
                row = conn.execute("SELECT count(*) FROM networks").fetchone()
            else:
                row = conn.execute(
                    "SELECT count(*) FROM networks WHERE owner = %s", (owner,)
                ).fetchone()
        return int(row[0]) if row else 0

    def count_jobs(self) -> dict[str, int]:
        with self._connection() as conn:
            rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}

    def delete_network(self, network_id: str, owner: str) -> None:
        with self._connection() as conn:
            deleted = conn.execute(
                "DELETE FROM networks WHERE id = %s AND owner = %s", (network_id, owner)
            ).rowcount
        if not deleted:
            raise NetworkMissing(network_id)

    def commit_update(
        self, network_id: str, owner: str, expected_version: int, update: Update
    ) -> NetworkRecord:
        network = update.network
        body = to_bytes(network)  # serialized before the row lock is taken
        gradients = None if update.gradients is None else gradients_to_bytes(update.gradients)
        now = utc_now()
        with self._transaction() as conn:
            # The row lock makes writers to this network take turns, across every replica;
            # what they read after it is the last committed version.
            row = conn.execute(
                f"SELECT {META_COLUMNS} FROM networks WHERE id = %s AND owner = %s FOR UPDATE",
                (network_id, owner),
            ).fetchone()
            if row is None:
                raise NetworkMissing(network_id)
            meta = _meta(row)
            # A statement of its own, so that its snapshot comes after the lock: it sees a job
            # that the transaction we may have waited for (create_job) inserted.
            holder = self._active_job(conn, network_id)
            version = check_commit(meta, holder, update, expected_version)
            conn.execute(
                "UPDATE networks SET version = %s, steps_trained = %s, body = %b, "
                "updated_at = %s WHERE id = %s",
                (version, network.steps_trained, body, now, network_id),
            )
            if update.history:
                with conn.cursor().copy("COPY history (network_id, step, cost) FROM STDIN") as copy:
                    for step, cost in update.history:
                        copy.write_row((network_id, step, cost))
            if update.gradients is not None and gradients is not None:
                conn.execute(
                    "INSERT INTO last_gradients (network_id, version, step, cost, body) "
                    "VALUES (%s, %s, %s, %s, %b) ON CONFLICT (network_id) DO UPDATE SET "
                    "version = excluded.version, step = excluded.step, cost = excluded.cost, "
                    "body = excluded.body",
                    (network_id, version, update.gradients.step, update.gradients.cost, gradients),
                )
        return committed(meta, update, version, now)

    def history(self, network_id: str) -> list[tuple[int, float]]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT step, cost FROM history WHERE network_id = %s ORDER BY step",
                (network_id,),
            ).fetchall()
        return [(int(step), float(cost)) for step, cost in rows]

    def last_gradients(self, network_id: str) -> LastGradients | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT version, step, cost, body FROM last_gradients WHERE network_id = %s",
                (network_id,),
                binary=True,
            ).fetchone()
        if row is None:
            return None
        version, step, cost, body = row
        return gradients_from_bytes(body, int(version), int(step), float(cost))

    # ---- training jobs -----------------------------------------------------------------

    @staticmethod
    def _active_job(conn: psycopg.Connection[Any], network_id: str) -> str | None:
        row = conn.execute(
            f"SELECT id FROM jobs WHERE network_id = %s AND {ACTIVE}", (network_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _read_job(self, conn: psycopg.Connection[Any], job_id: str) -> JobRecord | None:
        row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def create_job(
        self,
        job_id: str,
        network_id: str,
        owner: str,
        request: JobRequest,
        total_steps: int,
        runner: str,
    ) -> JobRecord:
        body = job_request_to_bytes(request)
        with self._transaction() as conn:
            # The network's row lock orders this against commit_update and other create_job
            # calls on the network, so "no active job" stays true until the insert commits.
            exists = conn.execute(
                "SELECT 1 FROM networks WHERE id = %s AND owner = %s FOR UPDATE",
                (network_id, owner),
            ).fetchone()
            if exists is None:
                raise NetworkMissing(network_id)
            holder = self._active_job(conn, network_id)
            if holder is not None:
                raise NetworkBusy(holder)
            row = conn.execute(
                "INSERT INTO jobs (id, network_id, owner, status, step, total_steps, runner, "
                "request, created_at) VALUES (%s, %s, %s, 'queued', 0, %s, %s, %b, %s) "
                f"RETURNING {JOB_COLUMNS}",
                (job_id, network_id, owner, total_steps, runner, body, utc_now()),
            ).fetchone()
        assert row is not None  # INSERT ... RETURNING answers its row
        return _job(row)

    def get_job(self, job_id: str, owner: str) -> JobRecord:
        with self._connection() as conn:
            job = self._read_job(conn, job_id)
        if job is None or job.owner != owner:
            raise JobMissing(job_id)
        return job

    def list_jobs(self, network_id: str, owner: str) -> list[JobRecord]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE network_id = %s AND owner = %s "
                "ORDER BY created_at, seq",
                (network_id, owner),
            ).fetchall()
        return [_job(row) for row in rows]

    def active_job(self, network_id: str) -> str | None:
        with self._connection() as conn:
            return self._active_job(conn, network_id)

    def claim_job(self, job_id: str, runner: str) -> JobRequest | None:
        with self._connection() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'running', runner = %s, started_at = %s "
                "WHERE id = %s AND status = 'queued' RETURNING request",
                (runner, utc_now(), job_id),
                binary=True,
            ).fetchone()
        return None if row is None else job_request_from_bytes(row[0])

    def record_progress(self, job_id: str, step: int, cost: float | None) -> bool:
        with self._connection() as conn:
            row = conn.execute(
                "UPDATE jobs SET step = %s, cost = %s WHERE id = %s AND status = 'running' "
                "RETURNING cancel_requested",
                (step, cost, job_id),
            ).fetchone()
        return row is not None and not row[0]

    def request_cancel(self, job_id: str, owner: str) -> JobRecord:
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
            ).fetchone()
            job = None if row is None else _job(row)
            if job is None or job.owner != owner:
                raise JobMissing(job_id)
            if job.status == "queued":
                row = conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = TRUE, "
                    f"finished_at = %s WHERE id = %s RETURNING {JOB_COLUMNS}",
                    (utc_now(), job_id),
                ).fetchone()
            elif job.status == "running":
                row = conn.execute(
                    "UPDATE jobs SET cancel_requested = TRUE WHERE id = %s "
                    f"RETURNING {JOB_COLUMNS}",
                    (job_id,),
                ).fetchone()
        assert row is not None  # the row is locked: it is still there
        return _job(row)

    def finish_job(
        self,
        job_id: str,
        status: JobStatus,
        *,
        step: int,
        cost: float | None,
        final_cost: float | None = None,
        error: str | None = None,
    ) -> JobRecord | None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = %s, step = %s, cost = %s, final_cost = %s, "
                f"error = %s, finished_at = %s WHERE id = %s AND {ACTIVE}",
                (status, step, cost, final_cost, error, utc_now(), job_id),
            )
            return self._read_job(conn, job_id)

    # ---- runners' leases ---------------------------------------------------------------

    def register_runner(self, runner: str, lease_seconds: float = 10.0) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO runners (id, lease_until) "
                "VALUES (%s, now() + make_interval(secs => %s)) "
                "ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
                (runner, lease_seconds),
            )

    def release_runner(self, runner: str) -> None:
        with self._connection() as conn:
            conn.execute("DELETE FROM runners WHERE id = %s", (runner,))

    def fail_orphaned_jobs(self, error: str) -> list[str]:
        with self._transaction() as conn:
            conn.execute("DELETE FROM runners WHERE lease_until < now()")
            rows = conn.execute(
                "UPDATE jobs SET status = 'failed', error = %s, finished_at = %s "
                f"WHERE {ACTIVE} AND (runner IS NULL OR runner NOT IN (SELECT id FROM runners)) "
                "RETURNING id",
                (error, utc_now()),
            ).fetchall()
        return [str(job_id) for (job_id,) in rows]


def _meta(row: tuple[Any, ...]) -> NetworkMeta:
    return meta_from_row(row, timestamp_text)


def _job(row: tuple[Any, ...]) -> JobRecord:
    return job_from_row(row, timestamp_text)
