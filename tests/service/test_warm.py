"""Warm networks (service/warm.py): a call to a warm network reads only its version from the
store, reuses its states instead of allocating, and never serves a version another process
has replaced; a change is published only once committed, onto the version it computed from;
a reader's state is never written; deleted and over-budget networks leave memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.core.errors import Conflict
from service.core.settings import Settings
from service.main import create_app
from service.store import NetworkMissing, NetworkRecord, Store, Update, open_store
from service.warm import Scratch, WarmNetworks
from tests.service.helpers import XOR_X, XOR_Y, create
from tests.store.helpers import new_network

pytestmark = pytest.mark.anyio
TRAIN = {"X": XOR_X, "Y": XOR_Y, "epochs": 1}


@pytest.fixture
def other(settings: Settings) -> Iterator[Store]:
    """The same database through another store, as another process or replica has it."""
    store = open_store(settings.database_url)
    yield store
    store.close()


def bumped(record: NetworkRecord) -> Update:
    """Every parameter of ``record`` + 1."""
    network = record.network.copy()
    network.theta += 1.0
    return Update(network)


def nudged(record: NetworkRecord, scratch: Scratch) -> tuple[Update, int]:
    """A change: every parameter + 1, computed from ``record``."""
    return bumped(record), record.meta.version


def plus_ones(theta: np.ndarray, times: int) -> np.ndarray:
    """``theta`` after ``times`` nudges, added one at a time as the changes did."""
    for _ in range(times):
        theta = theta + 1.0
    return theta


async def test_warm_calls_load_the_network_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    net = await create(client)
    warm: WarmNetworks = app.state.warm
    first = await client.post(f"/networks/{net['id']}/train", json=TRAIN)
    assert first.status_code == 200, first.text
    loads = warm.loads
    for _ in range(5):
        assert (await client.post(f"/networks/{net['id']}/train", json=TRAIN)).status_code == 200
        assert (await client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X})).is_success
        assert (await client.get(f"/networks/{net['id']}/gradients")).status_code == 200
    assert warm.loads == loads  # each call read the version, never the network


async def test_training_reuses_its_states_instead_of_allocating(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    net = await create(client)
    states = set()
    for _ in range(8):
        assert (await client.post(f"/networks/{net['id']}/train", json=TRAIN)).status_code == 200
        states.add(id(app.state.warm._entries[net["id"]].network))
    assert len(states) <= 3  # the published state and its two spares take turns


async def test_a_version_committed_elsewhere_is_served_at_once(
    client: httpx.AsyncClient, app: FastAPI, other: Store
) -> None:
    net = await create(client)
    before = await client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X})
    record = other.get_network(net["id"], "")
    replaced = record.network.copy()
    replaced.theta[:] = 0.0  # all-zero parameters: every output is sigmoid(0) = 0.5
    other.commit_update(net["id"], "", record.meta.version, Update(replaced))
    after = await client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X})
    assert before.json()["A"] != after.json()["A"]
    assert after.json()["A"] == [[0.5, 0.5, 0.5, 0.5]]
    assert app.state.warm._entries[net["id"]].meta.version == record.meta.version + 1


async def test_a_deleted_network_leaves_memory(client: httpx.AsyncClient, app: FastAPI) -> None:
    net = await create(client)
    assert (await client.post(f"/networks/{net['id']}/train", json=TRAIN)).status_code == 200
    assert net["id"] in app.state.warm._entries
    assert (await client.delete(f"/networks/{net['id']}")).status_code == 204
    assert net["id"] not in app.state.warm._entries


async def test_networks_past_the_budget_are_evicted_oldest_first(tmp_path: Path) -> None:
    network = new_network()
    one = network.theta.nbytes + network.moments.nbytes
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", warm_bytes=3 * one)
    store = open_store(settings.database_url)
    app = create_app(settings, store)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ids = [(await create(client))["id"] for _ in range(5)]
            for network_id in ids:
                predicted = await client.post(f"/networks/{network_id}/predict", json={"X": XOR_X})
                assert predicted.is_success
        warm: WarmNetworks = app.state.warm
        kept = list(warm._entries)
        assert kept == ids[-len(kept) :]  # the most recently used
        assert sum(entry.nbytes for entry in warm._entries.values()) <= 3 * one
    finally:
        store.close()


def test_a_failed_change_publishes_and_commits_nothing(store: Store) -> None:
    store.create_network("n1", "", None, new_network())
    warm = WarmNetworks(store, 1 << 30)
    with warm.reading("n1", "") as record:
        theta = record.network.theta.copy()

    def fails(record: NetworkRecord, scratch: Scratch) -> tuple[Update, None]:
        record.network.copy()  # work done, then it fails (as a divergence does)
        raise ValueError("diverged")

    with pytest.raises(ValueError, match="diverged"):
        warm.change("n1", "", fails)
    with warm.reading("n1", "") as after:
        assert after.meta.version == 1
        np.testing.assert_array_equal(after.network.theta, theta)
    assert store.get_meta("n1", "").version == 1


def test_a_state_being_read_is_never_written(store: Store) -> None:
    store.create_network("n1", "", None, new_network())
    warm = WarmNetworks(store, 1 << 30)

    def into_a_spare(record: NetworkRecord, scratch: Scratch) -> tuple[Update, None]:
        target = scratch.spares[0] if scratch.spares else record.network.empty_like()
        np.add(record.network.theta, 1.0, out=target.theta)
        target.moments[:] = record.network.moments
        return Update(target), None

    with warm.reading("n1", "") as held:
        frozen = held.network.theta.copy()
        for _ in range(6):  # enough for every spare to be offered several times
            warm.change("n1", "", into_a_spare)
        np.testing.assert_array_equal(held.network.theta, frozen)
    with warm.reading("n1", "") as latest:
        np.testing.assert_array_equal(latest.network.theta, plus_ones(frozen, 6))


def test_a_change_commits_onto_the_version_it_computed_from(store: Store, other: Store) -> None:
    # Another process commits between this change's read and its commit: the store refuses the
    # commit (its version moved on), and the change is computed again on the newer version.
    store.create_network("n1", "", None, new_network())
    warm = WarmNetworks(store, 1 << 30)
    computed_from: list[int] = []

    def racing(record: NetworkRecord, scratch: Scratch) -> tuple[Update, int]:
        computed_from.append(record.meta.version)
        if len(computed_from) == 1:
            theirs = other.get_network("n1", "")
            other.commit_update("n1", "", theirs.meta.version, nudged(theirs, scratch)[0])
        return nudged(record, scratch)

    record, _ = warm.change("n1", "", racing)
    assert computed_from == [1, 2]
    assert record.meta.version == 3
    initial = new_network().theta
    np.testing.assert_array_equal(store.get_network("n1", "").network.theta, plus_ones(initial, 2))


def test_an_if_match_on_another_version_is_a_conflict(store: Store) -> None:
    store.create_network("n1", "", None, new_network())
    warm = WarmNetworks(store, 1 << 30)
    warm.change("n1", "", nudged)
    with pytest.raises(Conflict, match="If-Match names version 1"):
        warm.change("n1", "", nudged, if_match=1)
    assert warm.change("n1", "", nudged, if_match=2)[0].meta.version == 3


def test_writers_in_one_process_take_turns(store: Store) -> None:
    store.create_network("n1", "", None, new_network())
    warm = WarmNetworks(store, 1 << 30)
    threads = [
        threading.Thread(target=lambda: [warm.change("n1", "", nudged) for _ in range(10)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = store.get_network("n1", "")
    assert saved.meta.version == 41
    np.testing.assert_array_equal(saved.network.theta, plus_ones(new_network().theta, 40))


def test_a_change_on_a_stale_entry_is_redone_on_the_stores_version(
    store: Store, other: Store
) -> None:
    # A change trusts its warm entry without reading the version first: the commit's check
    # finds it stale, and the change is computed again on what the store holds.
    store.create_network("n1", "", None, new_network())
    warm = WarmNetworks(store, 1 << 30)
    warm.change("n1", "", nudged)  # warm at version 2
    theirs = other.get_network("n1", "")
    other.commit_update("n1", "", 2, bumped(theirs))
    computed_from: list[int] = []

    def noting(record: NetworkRecord, scratch: Scratch) -> tuple[Update, int]:
        computed_from.append(record.meta.version)
        return nudged(record, scratch)

    assert warm.change("n1", "", noting)[0].meta.version == 4
    assert computed_from == [2, 3]
    np.testing.assert_array_equal(
        store.get_network("n1", "").network.theta, plus_ones(new_network().theta, 3)
    )
    # If-Match names the store's version, not the stale entry's: no conflict.
    other.commit_update("n1", "", 4, bumped(other.get_network("n1", "")))
    assert warm.change("n1", "", nudged, if_match=5)[0].meta.version == 6


def test_a_change_on_a_network_deleted_elsewhere_is_missing_and_leaves_memory(
    store: Store, other: Store
) -> None:
    store.create_network("n1", "", None, new_network())
    warm = WarmNetworks(store, 1 << 30)
    warm.change("n1", "", nudged)
    other.delete_network("n1", "")
    with pytest.raises(NetworkMissing):
        warm.change("n1", "", nudged)
    assert len(warm) == 0
