"""SQLite's write-ahead log copied back into the database file on a thread of its own, so that
no commit waits for it.

SQLite's own rule (``wal_autocheckpoint``) makes the commit that takes the WAL past its limit
copy the WAL back before it returns: on a [784, 512, 512, 10] network, whose every commit
writes 5 MB, that is every commit, and 15 ms of a 90 ms call. Here a commit only tells the
:class:`Checkpointer` how many bytes it wrote, and a thread copies them back with
``PRAGMA wal_checkpoint(PASSIVE)``, which never blocks a reader or a writer.

What the WAL holds uncopied stays what it was under SQLite's rule, which the room kept for a
full disk counts on: ``limit`` bytes of commits, and the commit that passes it. Commits below
the limit gather for up to ``interval`` seconds before a round copies them (a stream of small
commits costs a few rounds a second, each syncing two files, not one per commit); past it, a
round starts at once, and the next write waits for it (:meth:`Checkpointer.before_write`).
A round usually ends long before the next large commit comes.

That bound counts commits, not the WAL. With commits coming in during every round (another
process's, ``--workers 2``, or this one's from the event loop while the round runs) the WAL was
never wholly copied, so it never started again: a stream of tiny calls grew it by 20 MB a
second, two workers' one-step calls by 119-497 MB in 10 s. Now a commit that finds the WAL
file past ``CEILING`` times the limit makes the next round ``FULL``, which holds every
process's writers off while it copies the rest; this process's writes wait for it, the next
commit starts the WAL again, and ``journal_size_limit`` cuts the file back to the ceiling. A
FULL round waits at most ``FULL_WAIT_SECONDS`` for the write lock and for readers of older
snapshots (writers wait meanwhile), then copies what it can, as PASSIVE does, and the next
commit tries again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.store.records import WouldWait

log = logging.getLogger("backprop.store")
CEILING = 16  # times the limit: the most the WAL file grows to, but for commits in flight
FULL_WAIT_SECONDS = 0.25


class Checkpointer:
    """The copier of one database file's WAL (``path``), for the commits of this process."""

    def __init__(self, path: Path, limit: int, timeout: float, interval: float = 0.05) -> None:
        self.path, self.limit, self.timeout, self.interval = path, limit, timeout, interval
        self._wake, self._urgent, self._stop = (
            threading.Event(),
            threading.Event(),
            threading.Event(),
        )
        self._state = threading.Condition()  # guards what follows, and the thread
        self._rounds = threading.Lock()  # held by a round
        self._thread: threading.Thread | None = None
        self.uncopied = 0  # bytes committed here and not yet copied back
        self.paused = False  # while a full disk's delete runs (SQLiteDialect.make_room)
        self.failing = False  # the last round failed (a full disk): writes need not wait
        self.rounds = 0
        self.full_rounds = 0  # rounds that held every process's writers off
        self.overgrown = False  # the WAL is past its ceiling, until a FULL round copies it all
        self.wal = path.with_name(path.name + "-wal")
        self.ceiling = CEILING * limit

    def committed(self, size: int) -> None:
        """A commit wrote about ``size`` bytes into the WAL: copy them back soon."""
        overgrown = self._overgrown()
        with self._state:
            self.uncopied += size
            self.overgrown = self.overgrown or overgrown
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="wal-checkpoint", daemon=True
                )
                self._thread.start()
            if self.uncopied >= self.limit or self.overgrown:
                self._urgent.set()
        self._wake.set()

    def before_write(self, *, wait: bool = True) -> None:
        """While commits past the limit are uncopied, or the WAL is past its ceiling, wait for
        the round that copies them (at most ``timeout`` s); ``wait=False``: :class:`WouldWait`
        rather than wait."""
        with self._state:
            if self._free_to_write():
                return
            if not wait:
                raise WouldWait
            after = self.rounds
            self._state.wait_for(lambda: self.rounds > after or self._free_to_write(), self.timeout)

    def _free_to_write(self) -> bool:
        if self.paused or self.failing:
            return True
        return self.uncopied <= self.limit and not self.overgrown

    def _overgrown(self) -> bool:
        """Whether the WAL file is past its ceiling: commits came in during every round, so
        it was never wholly copied, and never started again."""
        try:
            return self.wal.stat().st_size > self.ceiling
        except FileNotFoundError:
            return False

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.is_set():
                self._wake.wait()
                self._urgent.wait(self.interval)  # small commits: let more of them gather
                self._wake.clear()
                self._urgent.clear()
                if not self._stop.is_set():
                    conn = self._round(conn)
        finally:
            if conn is not None:
                conn.close()

    def _round(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        with self._rounds:
            if self.paused:
                return conn
            with self._state:
                taken = self.uncopied
            mode = "FULL" if self.overgrown else "PASSIVE"
            try:
                if conn is None:
                    # A FULL round waits this long at most for the write lock and for readers
                    # of older snapshots, holding off writers meanwhile; then it is PASSIVE.
                    conn = sqlite3.connect(
                        self.path,
                        timeout=min(self.timeout, FULL_WAIT_SECONDS),
                        isolation_level=None,
                        check_same_thread=False,
                    )
                if mode == "FULL":  # holds every process's writers off while it copies all
                    self.full_rounds += 1
                busy, pages, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            except sqlite3.Error as error:  # a full disk, say: the next commit tries again
                log.debug("WAL checkpoint failed: %s", error)
                busy = pages = copied = -1
        with self._state:
            self.rounds += 1
            self.failing = busy < 0
            if not self.failing:
                # What was committed before the round began is copied back, by it or by
                # another process's checkpoint that kept it from running (busy), but for
                # what a reader's older snapshot held: then, or after commits during the
                # round, go again.
                self.uncopied -= taken
                if busy or pages > copied:
                    self._wake.set()
                elif mode == "FULL":
                    self.overgrown = False  # the next commit starts the WAL again
            self._state.notify_all()
        return conn

    def pause(self) -> None:
        with self._state:
            self.paused = True
            self._state.notify_all()

    def resume(self) -> None:
        with self._state:
            self.paused = False

    @contextmanager
    def held(self) -> Iterator[None]:
        """No round runs in the block (of two checkpoints at once, the second fails)."""
        with self._rounds:
            yield

    def close(self) -> None:
        with self._state:
            self._stop.set()
            thread = self._thread
        self._wake.set()
        self._urgent.set()
        if thread is not None:
            thread.join()
