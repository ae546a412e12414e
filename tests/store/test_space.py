"""The embedded store out of space: a write that finds no room is a StoreFull (507) with
nothing applied, a delete gives its space back to the filesystem, and the reserve that lets a
delete run on a full disk is kept, or writes are refused. (SQLite only: a server's disk is
its own. tests/e2e/test_faults.py fills a real filesystem.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model import Network, OptimizerSpec, build_spec, create_network
from service.core.settings import Settings
from service.store import Store, StoreFull, open_store, store_for
from tests.store.helpers import new_id, new_network


def big_network(seed: int = 1) -> Network:
    spec = build_spec([300, 300, 1], seed=seed, optimizer=OptimizerSpec("gd", 0.1))
    return create_network(spec)  # 90,601 parameters: 725 kB


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'space.db'}", reserve_bytes=1 << 20)
    yield store
    store.close()


def test_a_write_past_the_databases_room_is_store_full_with_nothing_applied(
    sqlite_store: Store,
) -> None:
    kept = sqlite_store.create_network(new_id(), "", None, new_network())
    conn = sqlite_store.dialect._connection()  # type: ignore[attr-defined]
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages + 10}")  # SQLite's own "disk is full"
    network_id = new_id()
    # SQLite rolls the transaction back itself on SQLITE_FULL: the store's ROLLBACK must not
    # then fail and hide it (it was a 503, 'cannot rollback - no transaction is active').
    with pytest.raises(StoreFull, match="out of space"):
        sqlite_store.create_network(network_id, "", None, big_network())
    assert sqlite_store.count_networks() == 1
    assert sqlite_store.full_since is not None
    with pytest.raises(StoreFull, match="last write failed"):
        sqlite_store.ready()
    sqlite_store.delete_network(kept.meta.id, "")  # deleting needs no new page
    assert sqlite_store.full_since is None


def test_deleting_gives_the_space_back_to_the_filesystem(
    sqlite_store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "space.db"
    ids = [new_id() for _ in range(4)]
    for seed, network_id in enumerate(ids):
        sqlite_store.create_network(network_id, "", None, big_network(seed))
    sqlite_store.dialect.compact()
    full = path.stat().st_size
    for network_id in ids[:3]:
        sqlite_store.delete_network(network_id, "")
    # The WAL emptied into the file, the file shrunk: by most of the three networks' 2.2 MB.
    assert path.with_name("space.db-wal").stat().st_size == 0
    assert full - path.stat().st_size > 3 * 600_000


def test_writes_are_refused_while_the_reserve_cannot_be_kept(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reserve = tmp_path / "space.db.reserve"
    assert reserve.stat().st_size == 1 << 20  # made when the store opened
    record = sqlite_store.create_network(new_id(), "", None, new_network())
    dialect = sqlite_store.dialect
    room = dialect.make_room()  # what a delete on a full disk does
    assert room
    assert not reserve.exists()
    monkeypatch.setattr("os.statvfs", lambda path: _Stats(free=(1 << 20) + 4096))
    with pytest.raises(StoreFull, match="kept so that deleting networks can free more"):
        sqlite_store.create_network(new_id(), "", None, new_network())
    with pytest.raises(StoreFull, match="kept so that deleting"):
        sqlite_store.ready()
    sqlite_store.delete_network(record.meta.id, "")  # deletes still run
    monkeypatch.undo()
    sqlite_store.ready()  # the room is back: the reserve is made again
    assert reserve.stat().st_size == 1 << 20
    sqlite_store.create_network(new_id(), "", None, new_network())


def test_a_delete_that_spent_the_reserve_makes_it_again_once_there_is_room(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the delete freed, with the reserve it spent, is less than twice the reserve: the
    reserve is still made again, so that no one else can take the room the next delete needs."""
    reserve = tmp_path / "space.db.reserve"
    record = sqlite_store.create_network(new_id(), "", None, new_network())
    assert sqlite_store.dialect.make_room()
    monkeypatch.setattr("os.statvfs", lambda path: _Stats(free=(1 << 20) * 3 // 2))
    sqlite_store.delete_network(record.meta.id, "")
    assert reserve.stat().st_size == 1 << 20


def test_every_process_of_the_service_keeps_the_reserve_its_settings_name(
    tmp_path: Path,
) -> None:
    """The API and a queue worker open their store with :func:`store_for`, which passes the
    settings' reserve on: so a worker keeps it as the API does (what a store with a reserve
    refuses is tested above)."""
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    store = store_for(Settings(database_url=url, disk_reserve_bytes=1 << 20))
    try:
        assert store.dialect.reserve_bytes == 1 << 20  # type: ignore[attr-defined]
        assert (tmp_path / "worker.db.reserve").stat().st_size == 1 << 20
    finally:
        store.close()


class _Stats:
    def __init__(self, free: int) -> None:
        self.f_bavail, self.f_frsize = free // 4096, 4096
