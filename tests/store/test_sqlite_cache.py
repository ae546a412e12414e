"""SQLite's page caches follow ``BACKPROP_SQLITE_CACHE_BYTES``: every connection of the store
(one per thread) may use the whole budget, and the process's soft heap limit bounds them all
together; 0 leaves SQLite's defaults."""

from __future__ import annotations

import threading
from pathlib import Path

from model import OptimizerSpec, build_spec, create_network
from service.core.settings import Settings
from service.store import open_store
from service.store.dialects import SQLiteDialect
from tests.store.helpers import new_id

SQLITE_DEFAULT_CACHE = -2000  # KiB


def _cache_and_limit(dialect: SQLiteDialect) -> tuple[int, int]:
    with dialect.reading() as conn:
        (cache,) = conn.execute("PRAGMA cache_size").fetchone()
        (limit,) = conn.execute("PRAGMA soft_heap_limit").fetchone()
    return int(cache), int(limit)


def test_every_connection_gets_the_budget_and_the_process_a_limit(tmp_path: Path) -> None:
    budget = Settings().sqlite_cache_bytes
    store = open_store(f"sqlite:///{tmp_path / 'cache.db'}", cache_bytes=budget)
    try:
        dialect = store.dialect
        assert isinstance(dialect, SQLiteDialect)
        found: list[tuple[int, int]] = []
        worker = threading.Thread(target=lambda: found.append(_cache_and_limit(dialect)))
        worker.start()
        worker.join()
        assert found == [_cache_and_limit(dialect)] == [(-(budget // 1024), budget)]
        # A network larger than SQLite's default cache commits and reads back whole.
        network_id = new_id()
        spec = build_spec([600, 600, 1], optimizer=OptimizerSpec("adam", 0.01))
        network = create_network(spec)  # 361,801 parameters and two moments: 8.7 MB
        store.create_network(network_id, "", None, network)
        record = store.get_network(network_id, "")
        assert record.network.theta.tobytes() == network.theta.tobytes()
        assert record.network.moments.tobytes() == network.moments.tobytes()
    finally:
        store.close()


def test_no_budget_leaves_sqlite_s_defaults(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'default.db'}", cache_bytes=0)
    try:
        assert isinstance(store.dialect, SQLiteDialect)
        (cache, _) = _cache_and_limit(store.dialect)
        assert cache == SQLITE_DEFAULT_CACHE
    finally:
        store.close()
