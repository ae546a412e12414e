"""Networks in the store, on both backends: create, read, list, count, delete, migrations,
and what one store instance sees of another's writes (as one replica of another's)."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from model import create_network
from service.store import NetworkLimitReached, NetworkMissing, QuotaExceeded, Store, open_store, sql
from service.store.dialects import PostgresDialect, SQLiteDialect
from service.store.schema import Migration, migrations
from service.store.sql import footprint
from tests.store.conftest import OpenStore
from tests.store.helpers import assert_same_network, new_id, new_network

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_create_then_read_back(store: Store) -> None:
    network = new_network()
    created = store.create_network("n1", "alice", "xor", network)
    assert created.meta.version == 1
    assert created.meta.steps_trained == 0
    assert TIMESTAMP.fullmatch(created.meta.created_at)
    assert created.meta.updated_at == created.meta.created_at

    record = store.get_network("n1", "alice")
    assert record.meta == created.meta
    assert_same_network(record.network, network)
    assert store.get_meta("n1", "alice") == created.meta
    assert store.get_version("n1", "alice") == 1


def test_an_unnamed_network_and_a_float32_one(store: Store) -> None:
    network = new_network()
    float32 = create_network(dataclasses.replace(network.spec, dtype="float32"))
    store.create_network("a", "", None, network)
    store.create_network("b", "", None, float32)
    assert store.get_meta("a", "").name is None
    assert_same_network(store.get_network("b", "").network, float32)


def test_owners_see_only_their_own(store: Store) -> None:
    store.create_network("n1", "alice", None, new_network())
    with pytest.raises(NetworkMissing):
        store.get_network("n1", "bob")
    with pytest.raises(NetworkMissing):
        store.get_meta("n1", "bob")
    with pytest.raises(NetworkMissing):
        store.get_version("n1", "bob")
    with pytest.raises(NetworkMissing):
        store.delete_network("n1", "bob")
    assert store.list_networks("bob") == []
    assert store.get_meta("n1", "alice").id == "n1"


def test_list_in_creation_order_and_count(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # All in the same millisecond, as on a fast machine: the order cannot come from the
    # timestamps (nor from the ids, which are random).
    monkeypatch.setattr(sql, "utc_now", lambda: "2026-01-01T00:00:00.000Z")
    ids = [new_id() for _ in range(5)]
    for number, network_id in enumerate(ids):
        store.create_network(network_id, "alice", f"net {number}", new_network(seed=number))
    store.create_network(new_id(), "bob", None, new_network())
    listed = store.list_networks("alice")
    assert [meta.id for meta in listed] == ids
    assert [meta.name for meta in listed] == [f"net {n}" for n in range(5)]
    assert store.count_networks("alice") == 5
    assert store.count_networks("bob") == 1
    assert store.count_networks("carol") == 0
    assert store.count_networks() == 6


def test_delete(store: Store) -> None:
    store.create_network("n1", "alice", None, new_network())
    store.create_network("n2", "alice", None, new_network())
    store.delete_network("n1", "alice")
    with pytest.raises(NetworkMissing):
        store.get_network("n1", "alice")
    with pytest.raises(NetworkMissing):
        store.delete_network("n1", "alice")
    assert [meta.id for meta in store.list_networks("alice")] == ["n2"]
    assert store.history("n1") == []
    assert store.last_gradients("n1") is None


def test_unknown_network(store: Store) -> None:
    for read in (store.get_network, store.get_meta, store.delete_network):
        with pytest.raises(NetworkMissing):
            read("nope", "")
    assert store.history("nope") == []
    assert store.last_gradients("nope") is None


def test_ready(store: Store) -> None:
    store.ready()


def test_another_instance_sees_every_write(store: Store, open_another: OpenStore) -> None:
    other = open_another()
    store.create_network("n1", "", None, new_network())
    assert other.get_meta("n1", "").version == 1
    other.delete_network("n1", "")
    with pytest.raises(NetworkMissing):
        store.get_network("n1", "")
    assert store.count_networks() == 0


# ---- migrations --------------------------------------------------------------------------


def test_opening_again_migrates_nothing_and_keeps_the_data(
    store: Store, open_another: OpenStore
) -> None:
    store.create_network("n1", "", None, new_network())
    store.close()
    again = open_another()
    assert again.get_meta("n1", "").version == 1
    open_another()  # and a third time
    assert applied_migrations(again) == len(migrations_of(again))


def test_replicas_starting_together_migrate_once(store_url: str) -> None:
    """Eight stores opened at once on an empty database: every one starts, and each
    migration ran exactly once (PostgreSQL: under an advisory lock; SQLite: BEGIN IMMEDIATE)."""

    def open_and_close(_: int) -> int:
        opened = open_store(store_url)
        try:
            return applied_migrations(opened)
        finally:
            opened.close()

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(open_and_close, range(8)))
    reopened = open_store(store_url)
    try:
        expected = len(migrations_of(reopened))
        assert counts == [expected] * 8
        if isinstance(reopened.dialect, PostgresDialect):
            with psycopg.connect(store_url) as conn:
                versions = conn.execute(
                    "SELECT version FROM schema_migrations ORDER BY version"
                ).fetchall()
            assert [v for (v,) in versions] == list(range(1, expected + 1))
    finally:
        reopened.close()


def migrations_of(store: Store) -> tuple[Migration, ...]:
    return migrations(store.dialect)


def applied_migrations(store: Store) -> int:
    dialect = store.dialect
    if isinstance(dialect, PostgresDialect):
        with psycopg.connect(dialect.url) as conn:
            row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert row is not None
        return int(row[0])
    assert isinstance(dialect, SQLiteDialect)
    with sqlite3.connect(dialect.path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_the_per_owner_limit_holds_under_concurrent_creates(
    store: Store, open_another: OpenStore
) -> None:
    stores = [store, open_another(), open_another()]  # as three processes or replicas
    store.create_network("bob-1", "bob", None, new_network())  # another owner's: not counted

    def create(number: int) -> str:
        try:
            stores[number % 3].create_network(f"a{number}", "alice", None, new_network(), limit=3)
        except NetworkLimitReached as reached:
            return f"refused:{reached.limit}"
        return "created"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(12)))
    assert outcomes.count("created") == 3
    assert outcomes.count("refused:3") == 9
    assert store.count_networks("alice") == 3
    store.create_network("bob-2", "bob", None, new_network(), limit=3)
    store.delete_network(store.list_networks("alice")[0].id, "alice")
    store.create_network("a-again", "alice", None, new_network(), limit=3)
    assert store.count_networks("alice") == 3


def test_the_pool_size_reaches_a_database_server(store_url: str) -> None:
    store = open_store(store_url, pool_size=3)
    try:
        if isinstance(store.dialect, PostgresDialect):
            assert store.dialect._pool.size == 3
        store.create_network("n1", "alice", None, new_network())
        assert store.count_networks() == 1
    finally:
        store.close()


def test_the_per_key_quota_counts_what_networks_may_take(store: Store) -> None:
    network = new_network()
    size = footprint(network.spec, store.history_points)
    store.create_network("q1", "alice", None, network, quota=2 * size)
    store.create_network("q2", "alice", None, network, quota=2 * size)
    with pytest.raises(QuotaExceeded) as refused:
        store.create_network("q3", "alice", None, network, quota=2 * size)
    assert refused.value.needed == 3 * size
    assert refused.value.quota == 2 * size
    store.create_network("b1", "bob", None, network, quota=2 * size)  # each key has its own
    store.delete_network("q1", "alice")
    store.create_network("q3", "alice", None, network, quota=2 * size)


def test_the_room_for_a_network_is_checked_from_its_spec_before_it_is_built(
    store: Store,
) -> None:
    network = new_network()
    size = footprint(network.spec, store.history_points)
    assert size == network.theta.nbytes * 2 + network.moments.nbytes + 2 * store.history_points * 24
    store.check_room("alice", network.spec, limit=2, quota=2 * size)
    store.create_network("q1", "alice", None, network, limit=2, quota=2 * size)
    with pytest.raises(QuotaExceeded):
        store.check_room("alice", network.spec, limit=2, quota=size)
    store.create_network("q2", "alice", None, network, limit=2, quota=2 * size)
    with pytest.raises(NetworkLimitReached):
        store.check_room("alice", network.spec, limit=2, quota=None)
    store.check_room("bob", network.spec, limit=2, quota=2 * size)  # each key has its own
