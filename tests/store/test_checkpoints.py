"""SQLite's WAL is copied back into the database file by a thread of its own
(service/store/checkpoints.py): no commit does it, every commit's pages reach the database
file soon after, and while more than the limit is uncopied the next write waits for it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from model import OptimizerSpec, build_spec, create_network
from service.store import Store, StoreFull, Update, WouldWait, open_store
from service.store.checkpoints import Checkpointer
from service.store.dialects import SQLiteDialect
from tests.store.helpers import new_id, new_network, training_update
from tests.store.test_space import big_network
from tests.support.waiting import poll


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'wal.db'}", reserve_bytes=1 << 20)
    yield store
    store.close()


def test_commits_leave_the_copy_to_the_checkpointer(store: Store, tmp_path: Path) -> None:
    dialect = store.dialect
    assert isinstance(dialect, SQLiteDialect)
    with dialect.reading() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    database = tmp_path / "wal.db"
    before = database.stat().st_size
    for _ in range(3):
        store.create_network(new_id(), "", None, big_network())  # 725 kB each: past the limit
    checkpoints = dialect.checkpoints
    poll(lambda: checkpoints.uncopied, lambda left: left == 0)
    assert checkpoints.rounds >= 1
    assert database.stat().st_size > before + 3 * 700_000  # in the database file itself
    probe = sqlite3.connect(database)  # and nothing is left in the WAL to copy
    busy, pages, copied = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, pages) == (0, copied)
    probe.close()


def _wal_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    conn.close()


def test_past_the_limit_the_next_write_waits_for_the_copy(tmp_path: Path) -> None:
    _wal_database(tmp_path / "db")
    checkpoints = Checkpointer(tmp_path / "db", limit=50_000, timeout=30.0)
    waited = threading.Event()

    def write() -> None:
        checkpoints.before_write()
        waited.set()

    with checkpoints.held():  # no round can run
        checkpoints.committed(40_000)
        checkpoints.before_write(wait=False)  # under the limit: no wait
        checkpoints.committed(40_000)
        with pytest.raises(WouldWait):
            checkpoints.before_write(wait=False)
        writer = threading.Thread(target=write)
        writer.start()
        assert not waited.wait(0.2)  # it waits for the round
    writer.join(timeout=30)
    assert waited.is_set()
    assert checkpoints.uncopied == 0
    checkpoints.close()


def test_a_paused_or_failing_checkpointer_holds_no_write_back(tmp_path: Path) -> None:
    checkpoints = Checkpointer(tmp_path / "missing" / "db", limit=10, timeout=30.0)
    checkpoints.pause()
    checkpoints.committed(1_000)
    checkpoints.before_write(wait=False)  # paused (a full disk's delete): no wait
    checkpoints.resume()
    poll(lambda: checkpoints.rounds, lambda rounds: rounds >= 1)  # it cannot even connect
    assert checkpoints.failing
    checkpoints.before_write(wait=False)
    checkpoints.close()


def test_a_delete_that_fails_on_a_full_disk_leaves_the_checkpointer_running(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    network_id = new_id()
    store.create_network(network_id, "", None, big_network())
    dialect = store.dialect
    assert isinstance(dialect, SQLiteDialect)

    def full(**_: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(dialect, "writing", full)
    with pytest.raises(StoreFull):
        store.delete_network(network_id, "")  # gives up the reserve, and fails again
    assert not dialect.checkpoints.paused


def test_processes_writing_at_once_keep_the_wal_within_bounds(tmp_path: Path) -> None:
    """Two stores on one file are two processes to SQLite, each with a checkpointer that counts
    only its own commits. With the other's commits coming in during every round, the WAL was
    never wholly copied, so it never started again: with ``--workers 2`` it grew by hundreds
    of MB in seconds. Past 16 times the limit, a round holds writers off and copies all of it,
    and the WAL starts again, cut back to that size."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [open_store(url, reserve_bytes=1 << 18) for _ in range(2)]
    checkpoints = [store.dialect.checkpoints for store in stores]  # type: ignore[attr-defined]
    limit = checkpoints[0].limit
    commits = 400
    spec = build_spec([100, 100, 1], seed=1, optimizer=OptimizerSpec("gd", 0.1))
    wal = tmp_path / "shared.db-wal"
    sizes: list[int] = []

    def write(store: Store) -> None:
        network_id = new_id()
        record = store.create_network(network_id, "", None, create_network(spec))
        for _ in range(commits):  # 80 kB of parameters each
            state = record.network.copy()
            state.theta += 1.0
            record = store.commit_update(network_id, "", record.meta.version, Update(state))
            store.get_network(network_id, "")  # and reads, as a server's
            sizes.append(wal.stat().st_size)

    try:
        writers = [threading.Thread(target=write, args=(store,)) for store in stores]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert max(sizes) < 32 * limit < commits * 80_000 // 2  # the ceiling, and a few commits
        assert sum(c.full_rounds for c in checkpoints) >= 1
    finally:
        for store in stores:
            store.close()


def test_a_stream_of_small_commits_keeps_the_wal_within_bounds(tmp_path: Path) -> None:
    """A stream of small commits from one process, as the event loop makes for tiny /train
    calls: more came in during every round of the checkpointer, so the WAL never started again
    (20 MB a second at 1,400 calls a second; 40 MB for these 3,000 commits), though what it
    held uncopied stayed under the limit. Past the ceiling, a round copies all of it and the
    WAL starts again."""
    store = open_store(f"sqlite:///{tmp_path / 'small.db'}", reserve_bytes=8 << 20)
    checkpoints = store.dialect.checkpoints  # type: ignore[attr-defined]
    wal = tmp_path / "small.db-wal"
    network_id = new_id()
    record = store.create_network(network_id, "", None, new_network(optimizer="gd"))
    sizes = []
    try:
        for _ in range(3_000):  # about 13 kB of WAL each
            record = store.commit_update(
                network_id, "", record.meta.version, training_update(record)
            )
            sizes.append(wal.stat().st_size)
        assert max(sizes) < checkpoints.ceiling + 1_000_000
        assert checkpoints.full_rounds >= 1
    finally:
        store.close()
