"""The store: one SQL implementation for both backends (their differences are a
:class:`~service.store.dialects.Dialect`).

A network is its metadata row, with its parameters and optimizer moments as the raw
little-endian bytes of their vectors (``model.state_bytes``: a copy at most, nothing to
parse). Every change of a network goes through :meth:`Store.commit_update`: one
transaction that checks the version it started from (that check, not an in-process lock, is
what keeps writers in other threads, processes and replicas from losing updates), and writes
only what changed: the state, the history rows of its steps, the last gradients, a job's
checkpoint and an idempotent answer, together or not at all.

The history of a network keeps every step until it holds ``2 x history_points`` rows; then it
is thinned evenly (every other kept step, by step number) and further steps are kept at the
doubled stride, so its reads and its size stay bounded however long a network trains.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import psycopg

from model import Network, NetworkSpec, network_from_bytes, state_bytes
from model.network import MOMENTS
from service.store import codec
from service.store.dialects import CommitFailed, Connection, Dialect
from service.store.records import (
    Claim,
    Idempotency,
    IdempotencyKeyTaken,
    IdempotencyMismatch,
    JobActive,
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
    StoreFull,
    Update,
    VersionConflict,
    utc_now,
)
from service.store.schema import migrate

META = "id, owner, name, spec, version, steps_trained, created_at, updated_at"
JOB = (
    "id, network_id, owner, status, step, total_steps, cost, final_cost, error, "
    "cancel_requested, runner, created_at, started_at, finished_at, restarts, attempt, "
    "checkpoint_step"
)
ACTIVE = "status IN ('queued', 'running')"
BROKER = "broker"  # a queued job's runner once its message is on the broker
IDEMPOTENCY_HOURS = 24
# Free space under which an embedded store reports itself not ready for writes.
READY_FREE_BYTES = 1 << 20
_DRIVER_ERRORS = (sqlite3.Error, psycopg.Error, CommitFailed)

P = ParamSpec("P")
T = TypeVar("T")


def _translated(method: Callable[P, T]) -> Callable[P, T]:
    """Driver errors leave as the store's own (503, 507); anything else is a bug and stays."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store: Store = args[0]  # type: ignore[assignment]
        try:
            result = method(*args, **kwargs)
        except _DRIVER_ERRORS as error:
            translated = store.dialect.translate(error, committing=isinstance(error, CommitFailed))
            if translated is None:
                raise
            if isinstance(translated, StoreFull):
                store.full_since = store.full_since or time.monotonic()
            raise translated from error
        return result

    return wrapper


def footprint(spec: NetworkSpec, history_points: int) -> int:
    """The most bytes a network's rows can take: its parameters, its optimizer's moments, its
    last gradients and a full history (what the per-key quota counts, fixed when the network
    is created, and known from its spec before it is built)."""
    vectors = 2 + len(MOMENTS[spec.optimizer.name])  # theta, the last gradients, the moments
    return spec.parameter_count * spec.np_dtype.itemsize * vectors + 2 * history_points * 24


class Store:
    """The store, on the backend ``dialect`` speaks to."""

    def __init__(self, dialect: Dialect, *, history_points: int = 100_000) -> None:
        self.dialect = dialect
        self.history_points = history_points
        self.full_since: float | None = None  # when a write last failed for lack of space
        migrate(dialect)
        dialect.keep_reserve()

    @property
    def local_reads(self) -> bool:
        return self.dialect.local_reads

    def close(self) -> None:
        self.dialect.close()

    def _read(self, text: str, params: Sequence[Any] = (), *, binary: bool = False) -> Any:
        with self.dialect.reading() as conn:
            return self.dialect.execute(conn, text, params, binary=binary).fetchall()

    def _meta(self, row: Sequence[Any]) -> NetworkMeta:
        id_, owner, name, spec, version, steps, created, updated = row
        stamp = self.dialect.timestamp
        return NetworkMeta(
            str(id_),
            str(owner),
            name,
            codec.spec_from_json(str(spec)),
            int(version),
            int(steps),
            stamp(created),
            stamp(updated),
        )

    def _job(self, row: Sequence[Any]) -> JobRecord:
        stamp = self.dialect.timestamp
        (id_, network_id, owner, status, step, total, cost, final, error, cancel, runner) = row[:11]
        created, started, finished, restarts, attempt, checkpoint = row[11:]
        return JobRecord(
            str(id_),
            str(network_id),
            str(owner),
            status,
            int(step),
            int(total),
            cost,
            final,
            error,
            bool(cancel),
            runner,
            stamp(created),
            None if started is None else stamp(started),
            None if finished is None else stamp(finished),
            int(restarts),
            int(attempt),
            int(checkpoint),
        )

    # ---- health --------------------------------------------------------------------------

    @_translated
    def ready(self) -> None:
        """Raise unless the store answers and can take writes (503 or 507 for /readyz)."""
        self._read("SELECT 1")
        free = self.dialect.free_bytes()
        if free is not None and free < READY_FREE_BYTES:
            raise StoreFull(f"Only {free} bytes are left on the database's filesystem.")
        self._room()
        if self.full_since is not None:
            raise StoreFull(
                "The last write failed for lack of space, and none has succeeded since."
            )

    def _room(self, *, wait: bool = True) -> None:
        """Refuse a write that would take the room kept for deletes on a full disk."""
        if not self.dialect.keep_reserve(wait=wait):
            raise StoreFull(
                "The database's filesystem is full: the space left is kept so that deleting "
                "networks can free more."
            )

    # ---- networks ------------------------------------------------------------------------

    @_translated
    def create_network(
        self,
        network_id: str,
        owner: str,
        name: str | None,
        network: Network,
        *,
        limit: int | None = None,
        quota: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> NetworkRecord:
        """Raise :class:`NetworkLimitReached` past ``limit`` networks of the owner, and
        :class:`QuotaExceeded` past ``quota`` bytes: counted in the insert's transaction, so
        concurrent creates in any number of processes cannot exceed them."""
        now, size = utc_now(), footprint(network.spec, self.history_points)
        meta = NetworkMeta(
            network_id, owner, name, network.spec, 1, network.steps_trained, now, now
        )
        params, moments = state_bytes(network)
        record = NetworkRecord(meta, network)
        self._room()
        with self.dialect.writing(size=len(params) + len(moments)) as conn:
            run = functools.partial(self.dialect.execute, conn)
            self.dialect.lock_owner(conn, owner)
            self._check_room(conn, owner, size, limit, quota)
            run(
                f"INSERT INTO networks ({META}, optimizer_t, params, moments, stored_bytes) "
                "VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
                (
                    network_id,
                    owner,
                    name,
                    codec.spec_to_json(network.spec),
                    network.steps_trained,
                    now,
                    now,
                    network.optimizer_t,
                    params,
                    moments,
                    size,
                ),
            )
            self._keep_answer(conn, idempotency, record, network_id)
        self.full_since = None
        return record

    @_translated
    def check_room(
        self, owner: str, spec: NetworkSpec, *, limit: int | None, quota: int | None
    ) -> None:
        """What :meth:`create_network` checks, before the network is built (so a network
        that cannot be kept is never initialized): a read, the insert checks again."""
        with self.dialect.reading() as conn:
            self._check_room(conn, owner, footprint(spec, self.history_points), limit, quota)

    def _check_room(
        self, conn: Connection, owner: str, size: int, limit: int | None, quota: int | None
    ) -> None:
        count, stored = self.dialect.execute(
            conn,
            "SELECT count(*), coalesce(sum(stored_bytes), 0) FROM networks WHERE owner = ?",
            (owner,),
        ).fetchone()
        if limit is not None and count >= limit:
            raise NetworkLimitReached(limit)
        if quota is not None and stored + size > quota:
            raise QuotaExceeded(stored + size, quota)

    @_translated
    def get_meta(self, network_id: str, owner: str) -> NetworkMeta:
        rows = self._read(
            f"SELECT {META} FROM networks WHERE id = ? AND owner = ?", (network_id, owner)
        )
        if not rows:
            raise NetworkMissing(network_id)
        return self._meta(rows[0])

    @_translated
    def get_version(self, network_id: str, owner: str) -> int:
        """The network's version (which fixes its metadata and its parameters): the cheapest
        read that tells whether a warm copy is current."""
        rows = self._read(
            "SELECT version FROM networks WHERE id = ? AND owner = ?", (network_id, owner)
        )
        if not rows:
            raise NetworkMissing(network_id)
        return int(rows[0][0])

    @_translated
    def get_network(self, network_id: str, owner: str) -> NetworkRecord:
        rows = self._read(
            f"SELECT {META}, optimizer_t, params, moments FROM networks WHERE id = ? AND owner = ?",
            (network_id, owner),
            binary=True,
        )
        if not rows:
            raise NetworkMissing(network_id)
        meta = self._meta(rows[0][:8])
        t, params, moments = rows[0][8:]
        network = network_from_bytes(
            meta.spec, params, moments, optimizer_t=int(t), steps_trained=meta.steps_trained
        )
        return NetworkRecord(meta, network)

    @_translated
    def list_networks(self, owner: str) -> list[NetworkMeta]:
        order = "created_at, seq" if self.dialect.name == "postgresql" else "created_at, rowid"
        rows = self._read(f"SELECT {META} FROM networks WHERE owner = ? ORDER BY {order}", (owner,))
        return [self._meta(row) for row in rows]

    @_translated
    def count_networks(self, owner: str | None = None) -> int:
        if owner is None:
            return int(self._read("SELECT count(*) FROM networks")[0][0])
        return int(self._read("SELECT count(*) FROM networks WHERE owner = ?", (owner,))[0][0])

    @_translated
    def delete_network(self, network_id: str, owner: str) -> None:
        """Delete a network with its history, gradients and jobs, and give their space back to
        the filesystem. It works on a full disk too: a delete that finds no room runs in the
        room the dialect keeps for it (:meth:`Dialect.make_room`)."""

        def delete() -> int:
            with self.dialect.writing() as conn:
                return int(
                    self.dialect.execute(
                        conn, "DELETE FROM networks WHERE id = ? AND owner = ?", (network_id, owner)
                    ).rowcount
                )

        try:
            deleted = delete()
        except _DRIVER_ERRORS as error:
            full = self.dialect.translate(error, committing=isinstance(error, CommitFailed))
            if not isinstance(full, StoreFull) or not self.dialect.make_room():
                raise
            try:
                deleted = delete()
            except BaseException:
                with contextlib.suppress(Exception):  # what the room was given up for ends
                    self.dialect.compact()
                raise
        if not deleted:
            raise NetworkMissing(network_id)
        self.dialect.compact()
        self.dialect.keep_reserve()
        self.full_since = None

    @_translated
    def commit_update(
        self,
        network_id: str,
        owner: str,
        expected_version: int,
        update: Update,
        *,
        wait: bool = True,
    ) -> NetworkRecord:
        """Apply ``update`` if the network is still at ``expected_version``, in one transaction;
        raise :class:`VersionConflict` or :class:`NetworkMissing` otherwise, and
        :class:`NetworkBusy` if an active job other than ``update.job``'s holds it. A job's
        checkpoint needs that attempt of the job to hold the network still
        (:class:`JobEnded` once it does not). ``wait=False``: :class:`WouldWait`, with nothing
        written, where the write would wait for another writer."""
        network = update.network
        params, moments = state_bytes(network)
        grads = None if update.gradients is None else codec.little_endian(update.gradients.grad)
        now = utc_now()
        size = len(params) + len(moments) + (0 if grads is None else len(grads))
        self._room(wait=wait)
        with self.dialect.writing(wait=wait, size=size) as conn:
            run = functools.partial(self.dialect.execute, conn)
            self.dialect.lock_network(conn, network_id)
            row = run(
                f"SELECT {META}, history_stride, history_rows FROM networks WHERE id = ? AND "
                "owner = ?",
                (network_id, owner),
            ).fetchone()
            if row is None:
                raise NetworkMissing(network_id)
            meta = self._meta(row[:8])
            job = run(
                f"SELECT id, attempt FROM jobs WHERE network_id = ? AND "
                f"{ACTIVE}{self.dialect.for_update}",
                (network_id,),
            ).fetchone()
            checkpoint = update.job
            if job is not None and (checkpoint is None or checkpoint.job_id != job[0]):
                raise NetworkBusy(str(job[0]))
            if checkpoint is not None and (job is None or int(job[1]) != checkpoint.attempt):
                raise JobEnded(checkpoint.job_id)
            if meta.version != expected_version:
                raise VersionConflict(meta.version)
            version = meta.version + 1
            stride, rows = self._add_history(
                conn, network_id, int(row[8]), int(row[9]), update.history
            )
            # One UPDATE of the row: SQLite rewrites a whole row, its parameters included, for
            # a change to any of its columns.
            run(
                "UPDATE networks SET version = ?, steps_trained = ?, optimizer_t = ?, params = ?, "
                "moments = ?, updated_at = ?, history_stride = ?, history_rows = ? WHERE id = ?",
                (
                    version,
                    network.steps_trained,
                    network.optimizer_t,
                    params,
                    moments,
                    now,
                    stride,
                    rows,
                    network_id,
                ),
            )
            if update.gradients is not None:
                run(
                    "INSERT INTO last_gradients (network_id, version, step, cost, body) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (network_id) DO UPDATE SET "
                    "version = excluded.version, step = excluded.step, cost = excluded.cost, "
                    "body = excluded.body",
                    (network_id, version, update.gradients.step, update.gradients.cost, grads),
                )
            if checkpoint is not None:
                run(
                    "UPDATE jobs SET checkpoint_step = ?, step = ?, cost = ? WHERE id = ?",
                    (checkpoint.step, checkpoint.step, checkpoint.cost, checkpoint.job_id),
                )
            new_meta = NetworkMeta(
                meta.id,
                meta.owner,
                meta.name,
                meta.spec,
                version,
                network.steps_trained,
                meta.created_at,
                now,
            )
            record = NetworkRecord(new_meta, network)
            self._keep_answer(conn, update.idempotency, record, network_id)
        self.full_since = None
        return record

    def _add_history(
        self,
        conn: Connection,
        network_id: str,
        stride: int,
        rows: int,
        history: Sequence[tuple[int, float]],
    ) -> tuple[int, int]:
        """Insert the points of ``history`` the network's stride keeps, thinning the stored
        history when it grows past its bound; return the new stride and row count."""
        kept = [(step, cost) for step, cost in history if step % stride == 0 or step == 1]
        self.dialect.insert_history(conn, network_id, kept)
        rows += len(kept)
        if rows > 2 * self.history_points:
            while rows > 2 * self.history_points:
                stride *= 2
                rows = (rows + 1) // 2
            self.dialect.execute(
                conn,
                "DELETE FROM history WHERE network_id = ? AND step % ? != 0 AND step != 1",
                (network_id, stride),
            )
            (rows,) = self.dialect.execute(
                conn, "SELECT count(*) FROM history WHERE network_id = ?", (network_id,)
            ).fetchone()
        return stride, int(rows)

    @_translated
    def history(self, network_id: str) -> list[tuple[int, float]]:
        rows = self._read(
            "SELECT step, cost FROM history WHERE network_id = ? ORDER BY step", (network_id,)
        )
        return [(int(step), float(cost)) for step, cost in rows]

    @_translated
    def last_gradients(self, network_id: str) -> LastGradients | None:
        rows = self._read(
            "SELECT g.version, g.step, g.cost, g.body, n.spec FROM last_gradients AS g "
            "JOIN networks AS n ON n.id = g.network_id WHERE g.network_id = ?",
            (network_id,),
            binary=True,
        )
        if not rows:
            return None
        version, step, cost, body, spec = rows[0]
        dtype = codec.spec_from_json(str(spec)).np_dtype
        grad = codec.array_from(body, dtype, (len(body) // dtype.itemsize,))
        return LastGradients(int(version), int(step), float(cost), grad)

    # ---- idempotent answers --------------------------------------------------------------

    def _keep_answer(
        self, conn: Connection, idempotency: Idempotency | None, record: Any, network_id: str
    ) -> None:
        """Keep the answer with the change; it goes with its network (a retry after a delete
        changes afresh)."""
        if idempotency is None:
            return
        answer = idempotency.respond(record)
        now = datetime.now(UTC)
        expired = (now - timedelta(hours=IDEMPOTENCY_HOURS)).isoformat(timespec="milliseconds")
        run = functools.partial(self.dialect.execute, conn)
        run("DELETE FROM idempotency WHERE created_at < ?", (expired.replace("+00:00", "Z"),))
        # A concurrent request with the same key loses here (primary key), rolls back, and
        # then replays the winner's answer.
        try:
            self._insert_answer(run, idempotency, answer, network_id)
        except (sqlite3.IntegrityError, psycopg.errors.UniqueViolation):
            raise IdempotencyKeyTaken(idempotency.key) from None

    @staticmethod
    def _insert_answer(
        run: Callable[..., Any], idempotency: Idempotency, answer: StoredResponse, network_id: str
    ) -> None:
        run(
            "INSERT INTO idempotency (owner, key, network_id, fingerprint, status, body, headers, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                idempotency.owner,
                idempotency.key,
                network_id,
                idempotency.fingerprint,
                answer.status,
                answer.body,
                json.dumps(answer.headers),
                utc_now(),
            ),
        )

    @_translated
    def replay(self, owner: str, key: str, fingerprint: str) -> StoredResponse | None:
        """The answer kept under (owner, key) in the last 24 hours, if any; raise
        :class:`IdempotencyMismatch` if it was kept for another request."""
        expired = (datetime.now(UTC) - timedelta(hours=IDEMPOTENCY_HOURS)).isoformat(
            timespec="milliseconds"
        )
        rows = self._read(
            "SELECT fingerprint, status, body, headers FROM idempotency "
            "WHERE owner = ? AND key = ? AND created_at >= ?",
            (owner, key, expired.replace("+00:00", "Z")),
            binary=True,
        )
        if not rows:
            return None
        kept, status, body, headers = rows[0]
        if kept != fingerprint:
            raise IdempotencyMismatch(key)
        return StoredResponse(int(status), bytes(body), json.loads(headers))

    # ---- training jobs -------------------------------------------------------------------
    # A job is created queued, claimed by one attempt at a time (running), reports progress,
    # commits checkpoints with its network, and ends succeeded, failed or cancelled. While it
    # is queued or running it holds its network: nothing else may commit to it. A claim
    # numbers its attempt; a resumed job's new attempt fences off the old one, whose writes
    # are then refused (JobEnded), so two workers never both commit to one network.

    def _read_job(self, conn: Connection, job_id: str, *, lock: bool = True) -> JobRecord | None:
        """The job; in a write transaction, with its row locked until the end."""
        text = f"SELECT {JOB} FROM jobs WHERE id = ?" + (self.dialect.for_update if lock else "")
        row = self.dialect.execute(conn, text, (job_id,)).fetchone()
        return None if row is None else self._job(row)

    @_translated
    def create_job(
        self,
        job_id: str,
        network_id: str,
        owner: str,
        request: JobRequest,
        total_steps: int,
        runner: str | None,
        *,
        idempotency: Idempotency | None = None,
        keep_ended: int | None = None,
    ) -> JobRecord:
        """Insert a queued job (in the transaction that checks no other job is active on the
        network). Raise :class:`NetworkMissing` or :class:`NetworkBusy`. With ``keep_ended``,
        the network's ended jobs past the newest ``keep_ended`` are removed, so its records
        stay bounded however many jobs it runs."""
        body = codec.job_request_to_bytes(request)
        self._room()
        with self.dialect.writing() as conn:
            run = functools.partial(self.dialect.execute, conn)
            self.dialect.lock_network(conn, network_id)
            if (
                run(
                    "SELECT 1 FROM networks WHERE id = ? AND owner = ?", (network_id, owner)
                ).fetchone()
                is None
            ):
                raise NetworkMissing(network_id)
            holder = run(
                f"SELECT id FROM jobs WHERE network_id = ? AND {ACTIVE}", (network_id,)
            ).fetchone()
            if holder is not None:
                raise NetworkBusy(str(holder[0]))
            run(
                "INSERT INTO jobs (id, network_id, owner, status, step, total_steps, runner, "
                "created_at) "
                "VALUES (?, ?, ?, 'queued', 0, ?, ?, ?)",
                (job_id, network_id, owner, total_steps, runner, utc_now()),
            )
            run("INSERT INTO job_requests (job_id, body) VALUES (?, ?)", (job_id, body))
            if keep_ended is not None:
                newest = "created_at DESC, " + (
                    "seq" if self.dialect.name == "postgresql" else "rowid"
                )
                run(
                    f"DELETE FROM jobs WHERE network_id = ? AND NOT {ACTIVE} AND id NOT IN "
                    f"(SELECT id FROM jobs WHERE network_id = ? AND NOT {ACTIVE} "
                    f"ORDER BY {newest} DESC LIMIT ?)",
                    (network_id, network_id, keep_ended),
                )
            job = self._read_job(conn, job_id)
            assert job is not None  # inserted just above
            self._keep_answer(conn, idempotency, job, network_id)
        return job

    @_translated
    def get_job(self, job_id: str, owner: str) -> JobRecord:
        with self.dialect.reading() as conn:
            job = self._read_job(conn, job_id, lock=False)
        if job is None or job.owner != owner:
            raise JobMissing(job_id)
        return job

    @_translated
    def list_jobs(self, network_id: str, owner: str) -> list[JobRecord]:
        order = "created_at, seq" if self.dialect.name == "postgresql" else "created_at, rowid"
        rows = self._read(
            f"SELECT {JOB} FROM jobs WHERE network_id = ? AND owner = ? ORDER BY {order}",
            (network_id, owner),
        )
        return [self._job(row) for row in rows]

    @_translated
    def active_job(self, network_id: str) -> str | None:
        rows = self._read(f"SELECT id FROM jobs WHERE network_id = ? AND {ACTIVE}", (network_id,))
        return None if not rows else str(rows[0][0])

    @_translated
    def count_jobs(self) -> dict[str, int]:
        rows = self._read("SELECT status, count(*) FROM jobs GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    @_translated
    def claim_job(
        self, job_id: str, runner: str, *, attempt: int | None = None, max_restarts: int = 3
    ) -> Claim | None:
        """Take the job for a new attempt by ``runner`` and return what it runs; None if it is
        not to run (ended, cancelled, deleted, or claimed by someone else first).

        A queued job starts (or resumes, after a hand-back) when ``attempt`` is None or names
        its attempt. A running job whose runner is gone is taken over (``restarts`` + 1) when
        ``attempt`` is None, names its current attempt (a scan found it), or the one before (a
        broker redelivered the message that started the attempt that died). Past
        ``max_restarts`` the job ends failed instead, saying why.
        """
        now = utc_now()
        with self.dialect.writing() as conn:
            run = functools.partial(self.dialect.execute, conn)
            job = self._read_job(conn, job_id)
            if job is None or not self._claimable(job, attempt):
                return None
            restarts = job.restarts + (job.status == "running")  # interruptions, this one too
            if job.cancel_requested:
                self._end(conn, job_id, "cancelled", job.checkpoint_step, job.cost, None, None, now)
                return None
            if restarts > max_restarts:
                error = RESTARTED.format(interruptions=restarts, restarts=max_restarts)
                run("UPDATE jobs SET restarts = ? WHERE id = ?", (max_restarts, job_id))
                self._end(conn, job_id, "failed", job.checkpoint_step, job.cost, None, error, now)
                return None
            run(
                "UPDATE jobs SET status = 'running', runner = ?, attempt = attempt + 1, "
                "restarts = ?, started_at = coalesce(started_at, ?) WHERE id = ?",
                (runner, restarts, now, job_id),
            )
            (body,) = run(
                "SELECT body FROM job_requests WHERE job_id = ?", (job_id,), binary=True
            ).fetchone()
            claimed = self._read_job(conn, job_id)
        assert claimed is not None  # read in the same transaction
        return Claim(claimed, codec.job_request_from_bytes(body))

    def _claimable(self, job: JobRecord, attempt: int | None) -> bool:
        if job.status == "queued":
            return attempt is None or job.attempt == attempt
        if job.status != "running" or (attempt is not None and job.attempt - attempt not in (0, 1)):
            return False
        return job.runner is None or not self.dialect.runner_alive(job.runner)

    @_translated
    def record_progress(self, job_id: str, attempt: int, step: int, cost: float | None) -> bool:
        """Store a running job's progress; whether this attempt should go on (False once a
        cancellation was requested, or the job is no longer this attempt's)."""
        with self.dialect.writing() as conn:
            run = functools.partial(self.dialect.execute, conn)
            run(
                "UPDATE jobs SET step = ?, cost = ? WHERE id = ? AND status = 'running' AND "
                "attempt = ?",
                (step, cost, job_id, attempt),
            )
            row = run(
                "SELECT status, attempt, cancel_requested FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return row is not None and row[0] == "running" and int(row[1]) == attempt and not row[2]

    @_translated
    def request_cancel(self, job_id: str, owner: str) -> JobRecord:
        """Cancel a job: a queued one ends cancelled at once; a running one gets
        ``cancel_requested``, which its attempt sees at its next report; an ended one is left."""
        with self.dialect.writing() as conn:
            job = self._read_job(conn, job_id)
            if job is None or job.owner != owner:
                raise JobMissing(job_id)
            if job.status == "queued":
                self._end(
                    conn, job_id, "cancelled", job.checkpoint_step, job.cost, None, None, utc_now()
                )
            elif job.status == "running":
                self.dialect.execute(
                    conn, "UPDATE jobs SET cancel_requested = TRUE WHERE id = ?", (job_id,)
                )
            job = self._read_job(conn, job_id)
        assert job is not None  # read in the same transaction
        return job

    def _end(
        self,
        conn: Connection,
        job_id: str,
        status: JobStatus,
        step: int,
        cost: float | None,
        final_cost: float | None,
        error: str | None,
        now: str,
    ) -> None:
        run = functools.partial(self.dialect.execute, conn)
        run(
            "UPDATE jobs SET status = ?, step = ?, cost = ?, final_cost = ?, error = ?, "
            f"finished_at = ? WHERE id = ? AND {ACTIVE}",
            (status, step, cost, final_cost, error, now, job_id),
        )
        # An ended job never runs again: its batch (possibly large) goes.
        run("DELETE FROM job_requests WHERE job_id = ?", (job_id,))

    @_translated
    def finish_job(
        self,
        job_id: str,
        attempt: int,
        status: JobStatus,
        *,
        step: int,
        cost: float | None,
        final_cost: float | None = None,
        error: str | None = None,
    ) -> JobRecord | None:
        """End this attempt's job with a final ``status`` (a job already ended, or another
        attempt's, is left as it is). Return the job as stored, None if it no longer exists."""
        with self.dialect.writing() as conn:
            job = self._read_job(conn, job_id)
            if job is not None and job.active and job.attempt == attempt:
                self._end(conn, job_id, status, step, cost, final_cost, error, utc_now())
                job = self._read_job(conn, job_id)
        return job

    @_translated
    def hand_back(
        self, job_id: str, attempt: int, *, interrupted: bool, runner: str | None = None
    ) -> JobRecord | None:
        """Give this attempt's job back to the queue (queued, from its checkpoint), for another
        attempt to resume; ``interrupted`` counts a restart (a worker stopping), a planned hand
        back (a long job re-queued in slices) does not. With a broker, ``runner`` is who
        publishes its next message (until :meth:`enqueued`). Return the job, None if it was
        no longer this attempt's."""
        with self.dialect.writing() as conn:
            handed = self.dialect.execute(
                conn,
                "UPDATE jobs SET status = 'queued', runner = ?, restarts = restarts + ? "
                "WHERE id = ? AND status = 'running' AND attempt = ?",
                (runner, int(interrupted), job_id, attempt),
            ).rowcount
            return self._read_job(conn, job_id) if handed else None

    # With a broker, a queued job's runner says where its message is: BROKER (published), a
    # live process's token (that process is publishing it), or nobody (NULL, or a dead
    # process's token: it has no message, and the next scan adopts and publishes it).

    @_translated
    def enqueued(self, job_id: str, attempt: int, runner: str, *, published: bool) -> None:
        """``runner`` published the queued job's message (``published``), or could not."""
        with self.dialect.writing() as conn:
            self.dialect.execute(
                conn,
                "UPDATE jobs SET runner = ? WHERE id = ? AND status = 'queued' AND attempt = ? "
                "AND runner = ?",
                (BROKER if published else None, job_id, attempt, runner),
            )

    @_translated
    def adopt(self, job: JobRecord, runner: str) -> JobRecord | None:
        """Take an orphaned job (as :meth:`orphaned_jobs` found it) for ``runner`` to publish:
        queued again, a running one counting a restart. None if something changed it since."""
        with self.dialect.writing() as conn:
            current = self._read_job(conn, job.id)
            if (
                current is None
                or (current.status, current.attempt, current.runner)
                != (job.status, job.attempt, job.runner)
                or current.runner == BROKER
                or (current.runner is not None and self.dialect.runner_alive(current.runner))
            ):
                return None
            self.dialect.execute(
                conn,
                "UPDATE jobs SET status = 'queued', runner = ?, restarts = restarts + ? "
                "WHERE id = ?",
                (runner, int(current.status == "running"), job.id),
            )
            return self._read_job(conn, job.id)

    @_translated
    def delete_job(self, job_id: str, owner: str) -> None:
        """Remove an ended job's record; :class:`JobActive` while it is queued or running."""
        with self.dialect.writing() as conn:
            job = self._read_job(conn, job_id)
            if job is None or job.owner != owner:
                raise JobMissing(job_id)
            if job.active:
                raise JobActive(job_id)
            self.dialect.execute(conn, "DELETE FROM jobs WHERE id = ?", (job_id,))

    @_translated
    def orphaned_jobs(self, *, broker: bool = False) -> list[JobRecord]:
        """Active jobs no live runner holds: those of runners that are gone (their process
        died) and those handed back; theirs to resume who finds them. With a ``broker``, a
        queued job whose message it holds is not an orphan."""
        rows = self._read(f"SELECT {JOB} FROM jobs WHERE {ACTIVE} ORDER BY created_at")
        return [
            job
            for job in map(self._job, rows)
            if not (broker and job.runner == BROKER)
            and (job.runner is None or not self.dialect.runner_alive(job.runner))
        ]

    @_translated
    def hold_runner(self, runner: str, kind: str = "service") -> None:
        """Take the token that proves ``runner`` alive until :meth:`release_runner` or death,
        and list it (``kind``: a service, or a worker)."""
        self.dialect.hold_runner(runner)
        with self.dialect.writing() as conn:
            self.dialect.execute(
                conn,
                "INSERT INTO runners (id, kind, started_at) VALUES (?, ?, ?)",
                (runner, kind, utc_now()),
            )

    @_translated
    def release_runner(self, runner: str) -> None:
        try:
            with self.dialect.writing() as conn:
                self.dialect.execute(conn, "DELETE FROM runners WHERE id = ?", (runner,))
        finally:
            self.dialect.release_runner(runner)

    @_translated
    def count_runners(self) -> dict[str, int]:
        """The live runners by kind; those that died leave the list."""
        counts: dict[str, int] = {}
        gone = []
        for runner, kind in self._read("SELECT id, kind FROM runners"):
            if self.dialect.runner_alive(str(runner)):
                counts[str(kind)] = counts.get(str(kind), 0) + 1
            else:
                gone.append((str(runner),))
        if gone:
            with self.dialect.writing() as conn:
                for row in gone:
                    self.dialect.execute(conn, "DELETE FROM runners WHERE id = ?", row)
        return counts

    @_translated
    def total_restarts(self) -> int:
        """Restarts of the jobs on record."""
        ((total,),) = self._read("SELECT coalesce(sum(restarts), 0) FROM jobs")
        return int(total)


RESTARTED = (
    "The job was interrupted {interruptions} times (its process died, or ran out of memory, "
    "each time) and resumed {restarts} times, the limit (BACKPROP_MAX_JOB_RESTARTS): it is not "
    "resumed again; the network keeps its last checkpoint."
)
