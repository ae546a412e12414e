"""The schema, as migrations per backend, each applied exactly once and in order.

SQLite counts the migrations applied in ``PRAGMA user_version``; PostgreSQL in a
``schema_migrations`` table, under an advisory lock, so replicas starting together apply each
exactly once. Never edit a migration that has shipped: append another. A migration is SQL
(``;``-separated statements) or a Python step for what SQL cannot do (reading round 1's
archives).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from model import NetworkSpec
from service.store import legacy
from service.store.dialects import Connection, Dialect, PostgresDialect

Migration = str | Callable[[Dialect, Connection], None]

# ---- round 1 (kept as they shipped) ------------------------------------------------------

_SQLITE_ROUND_1: tuple[str, ...] = (
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT,
        spec TEXT NOT NULL,
        version INTEGER NOT NULL,
        steps_trained INTEGER NOT NULL,
        body BLOB NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX networks_by_owner ON networks (owner, created_at);
    CREATE TABLE history (
        network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        cost REAL NOT NULL,
        PRIMARY KEY (network_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE last_gradients (
        network_id TEXT PRIMARY KEY REFERENCES networks (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        step INTEGER NOT NULL,
        cost REAL NOT NULL,
        body BLOB NOT NULL
    );
    """,
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        step INTEGER NOT NULL,
        total_steps INTEGER NOT NULL,
        cost REAL,
        final_cost REAL,
        error TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        runner TEXT,
        request BLOB NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX jobs_by_network ON jobs (network_id, created_at);
    CREATE UNIQUE INDEX jobs_one_active_per_network ON jobs (network_id)
        WHERE status IN ('queued', 'running');
    CREATE INDEX jobs_active_by_runner ON jobs (runner) WHERE status IN ('queued', 'running');
    CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        lease_until REAL NOT NULL
    );
    """,
    # A job's request (its whole batch) in a row of its own: SQLite rewrites a row's every
    # overflow page on any UPDATE, so beside the step and cost that progress reports update
    # twice a second it cost a rewrite of the batch each time (jobs.request stays, empty).
    """
    CREATE TABLE job_requests (
        job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
        body BLOB NOT NULL
    );
    INSERT INTO job_requests (job_id, body) SELECT id, request FROM jobs;
    UPDATE jobs SET request = X''
    """,
)


_POSTGRES_ROUND_1: tuple[str, ...] = (
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


# ---- round 2: raw parameter columns, resumable jobs, idempotency keys ---------------------

_ROUND_2_COLUMNS = """
ALTER TABLE networks ADD COLUMN optimizer_t {int} NOT NULL DEFAULT 0;
ALTER TABLE networks ADD COLUMN params {blob};
ALTER TABLE networks ADD COLUMN moments {blob};
ALTER TABLE networks ADD COLUMN stored_bytes {int} NOT NULL DEFAULT 0;
ALTER TABLE networks ADD COLUMN history_stride {int} NOT NULL DEFAULT 1;
ALTER TABLE networks ADD COLUMN history_rows {int} NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN restarts {int} NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN attempt {int} NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN checkpoint_step {int} NOT NULL DEFAULT 0;
CREATE TABLE idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    status {int} NOT NULL,
    body {blob} NOT NULL,
    headers TEXT NOT NULL,
    created_at {time} NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_by_time ON idempotency (created_at)
"""

_POSTGRES_JOB_REQUESTS = """
CREATE TABLE job_requests (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    body BYTEA NOT NULL
);
INSERT INTO job_requests (job_id, body) SELECT id, request FROM jobs;
ALTER TABLE jobs DROP COLUMN request
"""

UPGRADED = (
    "This job was {status} when the service was upgraded to resumable jobs, and could not "
    "resume: the network keeps its last checkpoint; start a new job to continue from there."
)


def _convert_round_1(dialect: Dialect, conn: Connection) -> None:
    """Networks and last gradients from archives to raw columns; round 1's active jobs end."""
    run = dialect.execute
    for network_id, body in run(conn, "SELECT id, body FROM networks", binary=True).fetchall():
        spec, params, moments, t = legacy.network_columns(bytes(body))
        run(
            conn,
            "UPDATE networks SET spec = ?, params = ?, moments = ?, optimizer_t = ?, "
            "stored_bytes = ? WHERE id = ?",
            (json.dumps(spec), params, moments, t, len(params) + len(moments), network_id),
        )
    rows = run(
        conn,
        "SELECT g.network_id, g.body, n.spec FROM last_gradients AS g "
        "JOIN networks AS n ON n.id = g.network_id",
        binary=True,
    ).fetchall()
    for network_id, body, spec in rows:
        dtype = NetworkSpec.from_dict(json.loads(spec)).np_dtype
        grad = legacy.gradient_bytes(bytes(body), dtype)
        run(conn, "UPDATE last_gradients SET body = ? WHERE network_id = ?", (grad, network_id))
        run(
            conn,
            "UPDATE networks SET stored_bytes = stored_bytes + ? WHERE id = ?",
            (len(grad), network_id),
        )
    run(
        conn,
        "UPDATE networks SET history_rows = "
        "(SELECT count(*) FROM history WHERE history.network_id = networks.id)",
    )
    for status in ("queued", "running"):
        run(
            conn,
            "UPDATE jobs SET status = 'failed', error = ?, finished_at = created_at "
            "WHERE status = ?",
            (UPGRADED.format(status=status), status),
        )
    run(conn, "DELETE FROM job_requests")


def _round_2(dialect: Dialect) -> tuple[Migration, ...]:
    types = {"int": "BIGINT", "blob": dialect.blob, "time": dialect.timestamp_type}
    if not isinstance(dialect, PostgresDialect):
        types["int"] = "INTEGER"
    steps: list[Migration] = [_ROUND_2_COLUMNS.format(**types)]
    if isinstance(dialect, PostgresDialect):
        steps.append(_POSTGRES_JOB_REQUESTS)
    steps.append(_convert_round_1)
    steps.append("ALTER TABLE networks DROP COLUMN body; DROP TABLE runners")
    if not isinstance(dialect, PostgresDialect):
        steps.append("ALTER TABLE jobs DROP COLUMN request")
    return tuple(steps)


def migrations(dialect: Dialect) -> tuple[Migration, ...]:
    if isinstance(dialect, PostgresDialect):
        return _POSTGRES_ROUND_1 + _round_2(dialect)
    return _SQLITE_ROUND_1 + _round_2(dialect)


def _apply(dialect: Dialect, conn: Connection, step: Migration) -> None:
    if callable(step):
        step(dialect, conn)
        return
    for statement in filter(str.strip, step.split(";")):
        conn.execute(statement)


# pg_advisory_xact_lock's key for migrations: "backprop" in ASCII, as a bigint.
MIGRATION_LOCK = int.from_bytes(b"backprop", "big")


def migrate(dialect: Dialect) -> None:
    """Apply the migrations this database has not seen yet, each in its own transaction."""
    steps = migrations(dialect)
    while True:
        with dialect.writing() as conn:
            done = _applied(dialect, conn)
            if done >= len(steps):
                return
            _apply(dialect, conn, steps[done])
            _record(dialect, conn, done + 1)


def _applied(dialect: Dialect, conn: Connection) -> int:
    if isinstance(dialect, PostgresDialect):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        row: Any = conn.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        ).fetchone()
    else:
        row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _record(dialect: Dialect, conn: Connection, number: int) -> None:
    if isinstance(dialect, PostgresDialect):
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
    else:
        conn.execute(f"PRAGMA user_version = {number}")
