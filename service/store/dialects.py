"""What differs between the two SQL backends: connections, placeholders, locking, how a
failure reads, and how a job runner's liveness is proven. Everything else is one
implementation, :class:`service.store.sql.Store`.

SQL is written with ``?`` placeholders; PostgreSQL's dialect turns them into ``%s``.

A job runner (a process running jobs) proves it is alive with a token the operating system
or the database drops when the process dies, even by SIGKILL: an exclusive ``flock`` on a file
beside the SQLite database, or a session-level advisory lock on PostgreSQL. So a dead
runner's jobs can be resumed at once, and no lease needs renewing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from service.store.checkpoints import Checkpointer
from service.store.records import StoreError, StoreFull, StoreUnavailable, WouldWait

Connection = Any  # sqlite3.Connection or psycopg.Connection: the DB-API methods both have
_RUNNER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
WAL_BYTES = 1000 * 4096  # SQLite's default wal_autocheckpoint: 1,000 pages of 4 KiB


def _locked(error: Exception) -> bool:
    """Whether SQLite gave up waiting for another connection's lock (SQLITE_BUSY, _LOCKED)."""
    return "locked" in str(error) or "busy" in str(error)


class CommitFailed(Exception):
    """Raised by a dialect's transaction when COMMIT itself failed (the outcome may be unknown)."""


class Dialect:
    """The base of the two backends. ``local_reads``: a point read is a memory-speed lookup
    in this process (embedded SQLite in WAL mode), short enough for the event loop."""

    name = ""
    local_reads = False
    for_update = ""  # locks the rows a write transaction reads (SQLite's BEGIN IMMEDIATE does)
    blob = "BLOB"
    real = "REAL"
    timestamp_type = "TEXT"

    def sql(self, text: str) -> str:
        return text

    def execute(
        self, conn: Connection, text: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> Any:
        return conn.execute(self.sql(text), params)

    def reading(self) -> Any:
        raise NotImplementedError

    def writing(self, *, wait: bool = True, size: int = 0) -> Any:
        """A write transaction of about ``size`` bytes of blobs. ``wait=False``: raise
        :class:`WouldWait` rather than wait for another writer's lock."""
        raise NotImplementedError

    def lock_network(self, conn: Connection, network_id: str) -> None:
        """Make writers to one network take turns until the transaction ends."""

    def lock_owner(self, conn: Connection, owner: str) -> None:
        """Make creators of one owner's networks take turns until the transaction ends."""

    def insert_history(
        self, conn: Connection, network_id: str, rows: Sequence[tuple[int, float]]
    ) -> None:
        conn.executemany(
            self.sql("INSERT INTO history (network_id, step, cost) VALUES (?, ?, ?)"),
            [(network_id, step, cost) for step, cost in rows],
        )

    def timestamp(self, value: Any) -> str:
        return str(value)

    def translate(self, error: Exception, *, committing: bool) -> StoreError | None:
        """The store error a driver error means, or None if it is a bug to surface."""
        raise NotImplementedError

    def free_bytes(self) -> int | None:
        """Bytes left for the database to grow into, if this process can tell."""
        return None

    def keep_reserve(self, *, wait: bool = True) -> bool:
        """Whether the room kept for deletes on a full disk is in place (made again if it can
        be; ``wait=False``: :class:`WouldWait` rather than write it); a server's dialect keeps
        none, and says True."""
        return True

    def make_room(self) -> bool:
        """Give up the room kept for deletes, so that one can run on a full disk; whether there
        is reason to try the delete again."""
        return False

    def compact(self) -> None:
        """Give the space of deleted rows back to the filesystem, as far as it can be now."""

    def hold_runner(self, runner: str) -> None:
        raise NotImplementedError

    def release_runner(self, runner: str) -> None:
        raise NotImplementedError

    def runner_alive(self, runner: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SQLiteDialect(Dialect):
    """One file in WAL mode (readers never wait for the writer), a connection per thread,
    writes in ``BEGIN IMMEDIATE`` transactions (so processes sharing the file serialize their
    writes in SQLite itself), waiting at most ``timeout`` seconds for the write lock.

    A full disk: SQLite in WAL mode needs room even to delete (the delete's pages go to the
    WAL, and the WAL's committed pages must reach the database file before its space can be
    reused). So ``reserve_bytes`` are kept in a file beside the database, ``<name>.reserve``:
    writes other than deletes are refused while it cannot be kept (:meth:`keep_reserve`), and
    a delete that finds the disk full gives it up (:meth:`make_room`) and runs in its room;
    as soon as deletes have freed enough, the reserve is made again.
    """

    name = "sqlite"
    local_reads = True

    def __init__(
        self, path: Path, timeout: float, reserve_bytes: int = 0, cache_bytes: int = 0
    ) -> None:
        self.path, self.timeout, self.reserve_bytes = path, timeout, reserve_bytes
        self.cache_bytes = cache_bytes
        self.reserve = path.with_name(path.name + ".reserve")
        self._local = threading.local()
        self._runners: dict[str, int] = {}  # runner -> the descriptor holding its flock
        path.parent.mkdir(parents=True, exist_ok=True)
        self.checkpoints = Checkpointer(path, self._wal_limit, timeout)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            # 8 KiB pages, set before the first table exists (a file made earlier keeps its
            # own): a commit writes each page to the WAL as a frame of its own, two pwrites
            # each, so a [784, 128, 64, 10] Adam call's 1.7 MB commit costs half as many as at
            # 4 KiB, and the call 0.4-0.5 ms less (6.3-6.5 against 6.7-7.0 ms, side by side);
            # tiny calls keep their rate (0.19 and 0.20 of /healthz). 16 KiB cut that to 0.07.
            conn.execute("PRAGMA page_size=8192")
            # Incremental vacuum (set before the first table exists) lets a delete give its
            # pages back to the filesystem, so deleting frees space on a full disk.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # in WAL mode, loses nothing on a crash
            # Debian builds SQLite with secure_delete on: every freed page is zeroed and
            # written, so deleting a network would need as much room as it takes. FAST still
            # zeroes deleted content wherever that costs no extra write.
            conn.execute("PRAGMA secure_delete=FAST")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # self.checkpoints copies the WAL back
            # A WAL grown past its ceiling is cut back to it when it starts again.
            conn.execute(f"PRAGMA journal_size_limit={self.checkpoints.ceiling}")
            conn.execute("PRAGMA foreign_keys=ON")
            if self.cache_bytes:
                # SQLite's default cache (2 MB) holds less than a large network's commit: its
                # pages spill to the WAL mid-transaction, and the next commit reads the row it
                # replaces back from the file (a [784, 512, 512, 10] Adam commit: 31 ms, 20 ms
                # with the pages in memory). Any one connection may use the whole budget; the
                # soft heap limit, which is the process's, bounds them all together.
                conn.execute(f"PRAGMA cache_size=-{max(1, self.cache_bytes // 1024)}")
                conn.execute(f"PRAGMA soft_heap_limit={self.cache_bytes}")
            self._local.conn = conn
        return conn

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        yield self._connection()

    @contextmanager
    def writing(self, *, wait: bool = True, size: int = 0) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        self.checkpoints.before_write(wait=wait)
        if wait:
            conn.execute("BEGIN IMMEDIATE")
        else:
            self._begin_at_once(conn)
        try:
            yield conn
        except BaseException:
            # SQLite rolls back by itself on some errors (SQLITE_FULL among them): a second
            # ROLLBACK would fail and hide the error that matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise CommitFailed(str(error)) from error
        self.checkpoints.committed(size + 4096)  # its blobs, and a page of rows

    def _begin_at_once(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE if the write lock is free; else :class:`WouldWait`. (Only taking
        the lock waits: a commit in WAL mode does not, and its checkpoint never blocks.)"""
        conn.execute("PRAGMA busy_timeout=0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if _locked(error):
                raise WouldWait from error
            raise
        finally:  # the connection's reads wait as before
            conn.execute(f"PRAGMA busy_timeout={round(self.timeout * 1000)}")

    def translate(self, error: Exception, *, committing: bool) -> StoreError | None:
        cause = error.__cause__ if isinstance(error, CommitFailed) else error
        if not isinstance(cause, sqlite3.OperationalError | sqlite3.DatabaseError):
            return None
        text = str(cause)
        if "full" in text:  # SQLITE_FULL: "database or disk is full"
            return StoreFull(f"The database is out of space ({text}).")
        if _locked(cause):
            return StoreUnavailable(
                f"The database stayed locked by other writers for {self.timeout:g} s."
            )
        # An embedded file's commit is atomic: if COMMIT failed, nothing of it is in.
        return StoreUnavailable(f"The database file cannot be used ({text}).")

    def free_bytes(self) -> int | None:
        stats = os.statvfs(self.path.parent)
        return stats.f_bavail * stats.f_frsize

    def keep_reserve(self, *, wait: bool = True) -> bool:
        if self.reserve_bytes == 0:
            return True
        with contextlib.suppress(FileNotFoundError):
            if self.reserve.stat().st_size >= self.reserve_bytes:
                return True
        if not wait:
            raise WouldWait
        stats = os.statvfs(self.path.parent)
        # Made again as soon as there is room for it and a WAL's worth of writes: until then,
        # what deletes freed is kept for them, and once made, nothing else on the disk can
        # take it (a delete that spent it must leave it for the next one).
        if stats.f_bavail * stats.f_frsize < self.reserve_bytes + self._wal_limit:
            return False
        draft = self.reserve.with_name(f"{self.reserve.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            with draft.open("wb") as file:  # real bytes: a sparse or compressed file keeps none
                for start in range(0, self.reserve_bytes, 1 << 20):
                    file.write(os.urandom(min(1 << 20, self.reserve_bytes - start)))
                file.flush()
                os.fsync(file.fileno())
            os.replace(draft, self.reserve)
        except OSError:
            draft.unlink(missing_ok=True)
            return False
        return True

    def make_room(self) -> bool:
        # Until compact(), no checkpoint: on a full disk it would spend the room on copying
        # the WAL's pages into a database file that must grow for them, and fail. The delete,
        # then the vacuum that shrinks the database, must come first.
        self.checkpoints.pause()
        self.reserve.unlink(missing_ok=True)
        return True

    def compact(self) -> None:
        with self.checkpoints.held():
            self._compact()
        self.checkpoints.resume()

    def _compact(self) -> None:
        conn = self._connection()
        truncate = "PRAGMA wal_checkpoint(TRUNCATE)"
        for attempt in range(3):
            try:
                if attempt:  # room for the vacuum's pages: the WAL into the database, emptied
                    conn.execute(truncate).fetchall()
                # executescript steps the pragma to its end (execute frees a single page).
                conn.executescript("PRAGMA incremental_vacuum")
                conn.execute(truncate).fetchall()  # the database file shrinks, the WAL empties
                break
            except sqlite3.OperationalError:  # no room (a full disk): try harder
                if attempt == 1:
                    self.make_room()  # the reserve's turn
        # Given up, the freed pages stay free inside the database (later writes reuse them),
        # and a later delete gives them back.

    @property
    def _wal_limit(self) -> int:
        """Bytes of commits the WAL may gather before they are copied into the database file:
        at most a quarter of the reserve, so that what a full disk leaves uncopied fits in
        it."""
        if self.reserve_bytes == 0:
            return WAL_BYTES
        return max(16 * 4096, min(WAL_BYTES, self.reserve_bytes // 4 // 4096 * 4096))

    def _token(self, runner: str) -> Path:
        if not _RUNNER_NAME.fullmatch(runner):
            raise ValueError(f"a runner name is 1-100 of [A-Za-z0-9_.-]; received {runner!r}")
        return self.path.with_name(self.path.name + ".runners") / f"{runner}.lock"

    def hold_runner(self, runner: str) -> None:
        path = self._token(runner)
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self._runners[runner] = fd

    def release_runner(self, runner: str) -> None:
        fd = self._runners.pop(runner, None)
        if fd is not None:
            self._token(runner).unlink(missing_ok=True)
            os.close(fd)  # closing the descriptor drops the lock

    def runner_alive(self, runner: str) -> bool:
        if runner in self._runners:
            return True
        try:
            fd = os.open(self._token(runner), os.O_RDWR)
        except (FileNotFoundError, ValueError):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # its process holds the lock: alive
        finally:
            os.close(fd)
        self._token(runner).unlink(missing_ok=True)
        return False

    def close(self) -> None:
        self.checkpoints.close()
        for fd in self._runners.values():  # tokens still held go as with the process
            os.close(fd)
        self._runners.clear()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# The first key of the two-key advisory locks ("bp" and "br" in ASCII): owners' creates, and
# runners' liveness. The two-key space never overlaps the one-key migration lock.
OWNER_LOCK_SPACE = int.from_bytes(b"bp", "big")
RUNNER_LOCK_SPACE = int.from_bytes(b"br", "big")


class _Pool:
    """A few PostgreSQL connections, each made on demand within the store's timeout.

    Not psycopg_pool: its reconnection backs off exponentially (1, 2, 4, ... s), so after a
    long outage the service would come back many seconds after the database did; here a
    request that finds no usable connection makes one at once, and fails within ``timeout``.
    """

    def __init__(self, url: str, size: int, timeout: float) -> None:
        self.url, self.size, self.timeout = url, size, timeout
        self._idle: list[psycopg.Connection[Any]] = []
        self._count = 0
        self._ready = threading.Condition()

    def connect(self) -> psycopg.Connection[Any]:
        given = conninfo_to_dict(self.url).get("options") or ""
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(2, round(self.timeout)),
                # A dead peer or a lock held too long fails the request instead of hanging it.
                tcp_user_timeout=int(self.timeout * 1000),
                keepalives_idle=max(1, round(self.timeout)),
                options=f"{given} -c lock_timeout={int(self.timeout * 1000)}".strip(),
            )
        except psycopg.OperationalError as error:
            raise StoreUnavailable(
                f"The database cannot be reached ({_first_line(error)})."
            ) from None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self) -> psycopg.Connection[Any]:
        deadline = time.monotonic() + self.timeout
        with self._ready:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if not (conn.closed or conn.broken):
                        return conn
                    self._count -= 1
                if self._count < self.size:
                    self._count += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0 or not self._ready.wait(left):
                    raise StoreUnavailable(
                        f"All {self.size} database connections of this process stayed busy for "
                        f"{self.timeout:g} s."
                    )
        try:
            return self.connect()
        except BaseException:
            with self._ready:
                self._count -= 1
                self._ready.notify()
            raise

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        usable = not (conn.closed or conn.broken) and (
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        with self._ready:
            if usable:
                self._idle.append(conn)
            else:
                self._count -= 1
            self._ready.notify()
        if not usable:
            conn.close()

    def close(self) -> None:
        with self._ready:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _session_lost(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle session is gone (the server ended it, or its connection broke)."""
    if conn.closed or conn.broken:
        return True
    try:
        # poll, not select: select() refuses descriptors past 1023, which a busy process has,
        # and a refusal here would take a live runner for dead.
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        if poller.poll(0):  # a notice, or the end of the session: a query tells which
            conn.execute("SELECT 1")
    except (OSError, ValueError, psycopg.Error):
        return True
    return False


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


RUNNER_KEEPALIVE = (
    ("tcp_keepalives_idle", 5),
    ("tcp_keepalives_interval", 5),
    ("tcp_keepalives_count", 3),
    ("tcp_user_timeout", 20_000),
)


class PostgresDialect(Dialect):
    """PostgreSQL through psycopg 3: each read and each transaction on one pooled connection
    (READ COMMITTED); a network's writers take turns on its row lock (``FOR UPDATE``)."""

    name = "postgresql"
    for_update = " FOR UPDATE"
    blob = "BYTEA"
    real = "DOUBLE PRECISION"
    timestamp_type = "TIMESTAMPTZ"

    def __init__(self, url: str, pool_size: int, timeout: float) -> None:
        self.url = url
        self._pool = _Pool(url, pool_size, timeout)
        self._holders: dict[str, psycopg.Connection[Any]] = {}
        self._keeping = threading.Lock()

    def sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def execute(
        self, conn: Connection, text: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> Any:
        return conn.execute(self.sql(text), params, binary=binary)

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn:
            yield conn
        self._keep_runners()

    @contextmanager
    def writing(self, *, wait: bool = True, size: int = 0) -> Iterator[psycopg.Connection[Any]]:
        if not wait:  # every statement is a round trip to the server: a wait
            raise WouldWait
        with self._pool.connection() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            except BaseException:
                if not conn.broken:
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.Error as error:
                raise CommitFailed(_first_line(error)) from error
        self._keep_runners()

    def _keep_runners(self) -> None:
        """After a call that reached the database: take again at once the liveness locks that
        went with it when it went away (before other replicas take this process for dead and
        resume its jobs, each resumption counting a restart). An idle session that the server
        ended looks whole until used: its socket then has something to read."""
        if not self._holders or not self._keeping.acquire(blocking=False):
            return
        try:
            for runner, holder in list(self._holders.items()):
                if _session_lost(holder):
                    with contextlib.suppress(StoreUnavailable, psycopg.Error):
                        holder.close()
                        self.hold_runner(runner)
        finally:
            self._keeping.release()

    def lock_network(self, conn: Connection, network_id: str) -> None:
        conn.execute("SELECT 1 FROM networks WHERE id = %s FOR UPDATE", (network_id,))

    def lock_owner(self, conn: Connection, owner: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (OWNER_LOCK_SPACE, owner))

    def insert_history(
        self, conn: Connection, network_id: str, rows: Sequence[tuple[int, float]]
    ) -> None:
        if rows:
            with conn.cursor().copy("COPY history (network_id, step, cost) FROM STDIN") as copy:
                for step, cost in rows:
                    copy.write_row((network_id, step, cost))

    def timestamp(self, value: Any) -> str:
        return str(value.isoformat(timespec="milliseconds").replace("+00:00", "Z"))

    def translate(self, error: Exception, *, committing: bool) -> StoreError | None:
        cause = error.__cause__ if isinstance(error, CommitFailed) else error
        if isinstance(cause, psycopg.errors.DiskFull):
            return StoreFull(f"The database is out of space ({_first_line(cause)}).")
        if isinstance(cause, psycopg.errors.LockNotAvailable):
            return StoreUnavailable("The network stayed locked by another writer too long.")
        if isinstance(cause, psycopg.OperationalError):
            # A connection that broke on COMMIT may or may not have committed.
            applied = None if isinstance(error, CommitFailed) else False
            return StoreUnavailable(
                f"The database connection failed ({_first_line(cause)}).", applied=applied
            )
        return None

    def hold_runner(self, runner: str) -> None:
        conn = self._pool.connect()
        # The server drops a dead peer's session (and this lock) only once it notices: by
        # default the kernel's keepalive, two hours. A runner on a machine that lost power is
        # known dead within about 20 s instead, and its jobs resumed.
        for setting, value in RUNNER_KEEPALIVE:
            conn.execute(f"SET {setting} = {value}")
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (RUNNER_LOCK_SPACE, runner))
        self._holders[runner] = conn

    def release_runner(self, runner: str) -> None:
        conn = self._holders.pop(runner, None)
        if conn is not None:
            # Unlocked first: the server drops a closed session's locks only as its backend
            # exits, a moment later, so another caller could still find the runner alive.
            with contextlib.suppress(psycopg.Error):
                conn.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(%s))", (RUNNER_LOCK_SPACE, runner)
                )
            conn.close()

    def runner_alive(self, runner: str) -> bool:
        holder = self._holders.get(runner)
        if holder is not None:
            self._keep_runners()
            return not _session_lost(self._holders[runner])
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (RUNNER_LOCK_SPACE, runner)
            ).fetchone()
            if row and row[0]:  # nobody held it: the runner is gone
                conn.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(%s))", (RUNNER_LOCK_SPACE, runner)
                )
                return False
            return True

    def close(self) -> None:
        for runner in list(self._holders):
            self.release_runner(runner)
        self._pool.close()
