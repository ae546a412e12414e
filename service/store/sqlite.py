"""The embedded default store: one SQLite file, WAL mode, a busy timeout.

Each thread gets its own connection (sqlite3 connections are not to be shared across
threads). Writes run in ``BEGIN IMMEDIATE`` transactions, so two processes serving the same
file serialize their writes in SQLite itself; the version check in :meth:`commit_update`
turns a lost race into a :class:`VersionConflict` the caller retries.

A job runner is alive while its lease (``runners.lease_until``, renewed by its heartbeat)
lasts and it holds an exclusive ``flock`` on a file beside the database
(``<db>.runners/<runner>.lock``). The kernel drops the lock when the process ends, even by
SIGKILL, so the next process to start fails a dead runner's jobs at once rather than after
its lease.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
from service.store.rows import ACTIVE, JOB_COLUMNS, META_COLUMNS, job_from_row, meta_from_row

# Each entry runs once, in order; PRAGMA user_version remembers how many ran.
MIGRATIONS: tuple[str, ...] = (
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

_RUNNER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` → the file's path."""
    return Path(url.removeprefix("sqlite:///"))


class SQLiteStore:
    local_reads = True

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._runners: dict[str, int] = {}  # runner -> the descriptor holding its lock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(sqlite_path(url))

    # ---- connections -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses nothing on a process crash (only on power loss).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as conn:
            done = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[done:], start=done + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def ping(self) -> None:
        self._connection().execute("SELECT 1").fetchone()

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

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
        now = utc_now()
        meta = NetworkMeta(
            id=network_id,
            owner=owner,
            name=name,
            spec=network.spec,
            version=1,
            steps_trained=network.steps_trained,
            created_at=now,
            updated_at=now,
        )
        with self._write() as conn:  # BEGIN IMMEDIATE: one writer at a time, so the count holds
            if limit is not None:
                (count,) = conn.execute(
                    "SELECT count(*) FROM networks WHERE owner = ?", (owner,)
                ).fetchone()
                if count >= limit:
                    raise NetworkLimitReached(limit)
            conn.execute(
                f"INSERT INTO networks ({META_COLUMNS}, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    network_id,
                    owner,
                    name,
                    spec_to_json(network.spec),
                    1,
                    network.steps_trained,
                    now,
                    now,
                    to_bytes(network),
                ),
            )
        return NetworkRecord(meta=meta, network=network)

    def get_meta(self, network_id: str, owner: str) -> NetworkMeta:
        row = (
            self._connection()
            .execute(
                f"SELECT {META_COLUMNS} FROM networks WHERE id = ? AND owner = ?",
                (network_id, owner),
            )
            .fetchone()
        )
        if row is None:
            raise NetworkMissing(network_id)
        return meta_from_row(row)

    def get_version(self, network_id: str, owner: str) -> int:
        row = (
            self._connection()
            .execute("SELECT version FROM networks WHERE id = ? AND owner = ?", (network_id, owner))
            .fetchone()
        )
        if row is None:
            raise NetworkMissing(network_id)
        return int(row[0])

    def get_network(self, network_id: str, owner: str) -> NetworkRecord:
        # One SELECT: the parameters and the version they belong to are read together.
        row = (
            self._connection()
            .execute(
                f"SELECT {META_COLUMNS}, body FROM networks WHERE id = ? AND owner = ?",
                (network_id, owner),
            )
            .fetchone()
        )
        if row is None:
            raise NetworkMissing(network_id)
        return NetworkRecord(meta=meta_from_row(row[:-1]), network=from_bytes(row[-1]))

    def list_networks(self, owner: str) -> list[NetworkMeta]:
        rows = (
            self._connection()
            .execute(
                f"SELECT {META_COLUMNS} FROM networks WHERE owner = ? ORDER BY created_at, rowid",
                (owner,),
            )
            .fetchall()
        )
        return [meta_from_row(row) for row in rows]

    def count_networks(self, owner: str | None = None) -> int:
        if owner is None:
            row = self._connection().execute("SELECT count(*) FROM networks").fetchone()
        else:
            row = (
                self._connection()
                .execute("SELECT count(*) FROM networks WHERE owner = ?", (owner,))
                .fetchone()
            )
        return int(row[0])

    def count_jobs(self) -> dict[str, int]:
        rows = (
            self._connection()
            .execute("SELECT status, count(*) FROM jobs GROUP BY status")
            .fetchall()
        )
        return {str(status): int(count) for status, count in rows}

    def delete_network(self, network_id: str, owner: str) -> None:
        with self._write() as conn:
            deleted = conn.execute(
                "DELETE FROM networks WHERE id = ? AND owner = ?", (network_id, owner)
            ).rowcount
        if not deleted:
            raise NetworkMissing(network_id)

    def commit_update(
        self, network_id: str, owner: str, expected_version: int, update: Update
    ) -> NetworkRecord:
        network = update.network
        body = to_bytes(network)  # serialized before the write lock is taken
        gradients = None if update.gradients is None else gradients_to_bytes(update.gradients)
        now = utc_now()
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {META_COLUMNS} FROM networks WHERE id = ? AND owner = ?",
                (network_id, owner),
            ).fetchone()
            if row is None:
                raise NetworkMissing(network_id)
            meta = meta_from_row(row)
            holder = self._active_job(conn, network_id)
            version = check_commit(meta, holder, update, expected_version)
            conn.execute(
                "UPDATE networks SET version = ?, steps_trained = ?, body = ?, updated_at = ? "
                "WHERE id = ?",
                (version, network.steps_trained, body, now, network_id),
            )
            conn.executemany(
                "INSERT INTO history (network_id, step, cost) VALUES (?, ?, ?)",
                [(network_id, step, cost) for step, cost in update.history],
            )
            if update.gradients is not None and gradients is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO last_gradients (network_id, version, step, cost, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (network_id, version, update.gradients.step, update.gradients.cost, gradients),
                )
        return committed(meta, update, version, now)

    def history(self, network_id: str) -> list[tuple[int, float]]:
        rows = (
            self._connection()
            .execute(
                "SELECT step, cost FROM history WHERE network_id = ? ORDER BY step", (network_id,)
            )
            .fetchall()
        )
        return [(int(step), float(cost)) for step, cost in rows]

    def last_gradients(self, network_id: str) -> LastGradients | None:
        row = (
            self._connection()
            .execute(
                "SELECT version, step, cost, body FROM last_gradients WHERE network_id = ?",
                (network_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        version, step, cost, body = row
        return gradients_from_bytes(body, int(version), int(step), float(cost))

    # ---- training jobs -----------------------------------------------------------------

    @staticmethod
    def _active_job(conn: sqlite3.Connection, network_id: str) -> str | None:
        row = conn.execute(
            f"SELECT id FROM jobs WHERE network_id = ? AND {ACTIVE}", (network_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _read_job(self, conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else job_from_row(row)

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
        now = utc_now()
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM networks WHERE id = ? AND owner = ?", (network_id, owner)
            ).fetchone()
            if exists is None:
                raise NetworkMissing(network_id)
            holder = self._active_job(conn, network_id)
            if holder is not None:
                raise NetworkBusy(holder)
            conn.execute(
                "INSERT INTO jobs (id, network_id, owner, status, step, total_steps, runner, "
                "request, created_at) VALUES (?, ?, ?, 'queued', 0, ?, ?, X'', ?)",
                (job_id, network_id, owner, total_steps, runner, now),
            )
            conn.execute("INSERT INTO job_requests (job_id, body) VALUES (?, ?)", (job_id, body))
            job = self._read_job(conn, job_id)
        assert job is not None  # inserted just above, in the same transaction
        return job

    def get_job(self, job_id: str, owner: str) -> JobRecord:
        job = self._read_job(self._connection(), job_id)
        if job is None or job.owner != owner:
            raise JobMissing(job_id)
        return job

    def list_jobs(self, network_id: str, owner: str) -> list[JobRecord]:
        rows = (
            self._connection()
            .execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE network_id = ? AND owner = ? "
                "ORDER BY created_at, rowid",
                (network_id, owner),
            )
            .fetchall()
        )
        return [job_from_row(row) for row in rows]

    def active_job(self, network_id: str) -> str | None:
        return self._active_job(self._connection(), network_id)

    def claim_job(self, job_id: str, runner: str) -> JobRequest | None:
        with self._write() as conn:
            claimed = conn.execute(
                "UPDATE jobs SET status = 'running', runner = ?, started_at = ? "
                "WHERE id = ? AND status = 'queued'",
                (runner, utc_now(), job_id),
            ).rowcount
            if not claimed:
                return None
            (body,) = conn.execute(
                "SELECT body FROM job_requests WHERE job_id = ?", (job_id,)
            ).fetchone()
        return job_request_from_bytes(body)

    def record_progress(self, job_id: str, step: int, cost: float | None) -> bool:
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET step = ?, cost = ? WHERE id = ? AND status = 'running'",
                (step, cost, job_id),
            )
            row = conn.execute(
                "SELECT status, cancel_requested FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return row is not None and row[0] == "running" and not row[1]

    def request_cancel(self, job_id: str, owner: str) -> JobRecord:
        with self._write() as conn:
            job = self._read_job(conn, job_id)
            if job is None or job.owner != owner:
                raise JobMissing(job_id)
            if job.status == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, "
                    "finished_at = ? WHERE id = ?",
                    (utc_now(), job_id),
                )
            elif job.status == "running":
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            else:
                return job
            job = self._read_job(conn, job_id)
        assert job is not None  # read in the same transaction
        return job

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
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, step = ?, cost = ?, final_cost = ?, error = ?, "
                f"finished_at = ? WHERE id = ? AND {ACTIVE}",
                (status, step, cost, final_cost, error, utc_now(), job_id),
            )
            return self._read_job(conn, job_id)

    # ---- runners' leases and liveness tokens -------------------------------------------

    def _token_path(self, runner: str) -> Path:
        if not _RUNNER_NAME.fullmatch(runner):
            raise ValueError(f"a runner name is 1-100 of [A-Za-z0-9_.-]; received {runner!r}")
        return self.path.with_name(self.path.name + ".runners") / f"{runner}.lock"

    def register_runner(self, runner: str, lease_seconds: float = 10.0) -> None:
        path = self._token_path(runner)
        if runner not in self._runners:
            path.parent.mkdir(exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException:
                os.close(fd)
                raise
            self._runners[runner] = fd
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runners (id, lease_until) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
                (runner, time.time() + lease_seconds),
            )

    def release_runner(self, runner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM runners WHERE id = ?", (runner,))
        fd = self._runners.pop(runner, None)
        if fd is not None:
            self._token_path(runner).unlink(missing_ok=True)
            os.close(fd)  # closing the descriptor drops the lock

    def _holds_token(self, runner: str) -> bool:
        if runner in self._runners:
            return True
        try:
            fd = os.open(self._token_path(runner), os.O_RDWR)
        except (FileNotFoundError, ValueError):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # its process holds the lock: alive
        finally:
            os.close(fd)
        self._token_path(runner).unlink(missing_ok=True)
        return False

    def fail_orphaned_jobs(self, error: str) -> list[str]:
        conn = self._connection()
        leased = {
            str(runner)
            for (runner,) in conn.execute(
                "SELECT id FROM runners WHERE lease_until >= ?", (time.time(),)
            )
        }
        rows = conn.execute(f"SELECT DISTINCT runner FROM jobs WHERE {ACTIVE}").fetchall()
        dead = [
            str(runner)
            for (runner,) in rows
            if str(runner) not in leased or not self._holds_token(str(runner))
        ]
        if not dead:
            return []
        marks = ", ".join("?" * len(dead))
        with self._write() as conn:
            conn.execute(f"DELETE FROM runners WHERE id IN ({marks})", dead)
            ids = [
                str(job_id)
                for (job_id,) in conn.execute(
                    f"SELECT id FROM jobs WHERE {ACTIVE} AND runner IN ({marks})", dead
                ).fetchall()
            ]
            conn.executemany(
                "UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                [(error, utc_now(), job_id) for job_id in ids],
            )
        return ids
