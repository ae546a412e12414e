"""The in-memory network cache: hot reads skip deserialization, a new version always misses,
the owner check stays with the store, the byte budget holds, and small predictions on a
cached network run without a thread-pool hop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from model import Network, build_spec, create_network
from service import deps
from service.netcache import NetworkCache, network_bytes
from service.settings import Settings
from service.store import NetworkMeta, NetworkMissing, NetworkRecord, SQLiteStore

from .helpers import XOR_X, XOR_Y, app_client, create

pytestmark = pytest.mark.anyio


async def test_predictions_follow_every_new_version(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    net = await create(client)
    path = f"/networks/{net['id']}/predict"
    first = await client.post(path, json={"X": XOR_X})
    again = await client.post(path, json={"X": XOR_X})
    assert first.json() == again.json()
    cache: NetworkCache = app.state.network_cache
    assert (cache.misses, cache.hits) == (1, 1)
    trained = await client.post(
        f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 50}
    )
    assert trained.status_code == 200
    after = await client.post(path, json={"X": XOR_X})
    assert after.json()["version"] == first.json()["version"] + 1
    assert after.json()["A"] != first.json()["A"]
    assert cache.misses == 2


def test_the_owner_check_stays_with_the_store(store: SQLiteStore) -> None:
    network = create_network(build_spec([2, 3, 1], seed=1))
    store.create_network("n1", "alice", None, network)
    cache = NetworkCache()
    record = cache.load(store, "n1", "alice")
    np.testing.assert_array_equal(record.network.W[0], network.W[0])
    with pytest.raises(NetworkMissing):
        cache.load(store, "n1", "bob")
    assert cache.load(store, "n1", "alice").network is record.network


def _record(network_id: str, version: int, network: Network) -> NetworkRecord:
    meta = NetworkMeta(network_id, "", None, network.spec, version, 0, "then", "then")
    return NetworkRecord(meta=meta, network=network)


def test_the_budget_evicts_the_least_recently_used() -> None:
    network = create_network(build_spec([4, 3, 1], seed=1))
    size = network_bytes(network)
    cache = NetworkCache(budget_bytes=2 * size)
    for name in ("a", "b", "c"):
        cache.put(_record(name, 1, network))
    assert [key[0] for key in cache._entries] == ["b", "c"]
    cache.put(_record("b", 2, network))  # a new version replaces the old one
    assert list(cache._entries) == [("c", 1), ("b", 2)]
    small = NetworkCache(budget_bytes=size - 1)
    small.put(_record("big", 1, network))  # too big: not kept
    assert small.get("big", 1) is None


async def test_v2_inference_shares_the_cache_with_predict(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    net = await create(client)
    await client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X})
    body = {
        "inputs": [
            {"name": "X", "shape": [4, 2], "datatype": "FP64", "data": np.array(XOR_X).T.tolist()}
        ]
    }
    for _ in range(2):
        response = await client.post(f"/v2/models/{net['id']}/infer", json=body)
        assert response.status_code == 200, response.text
    cache: NetworkCache = app.state.network_cache
    assert (cache.misses, cache.hits) == (1, 2)


class _Hops:
    """Counts the thread-pool hops service.deps makes (and still makes them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = run_in_threadpool

        async def counted(function: Callable[..., Any], *args: Any) -> Any:
            self.count += 1
            return await original(function, *args)

        monkeypatch.setattr(deps, "run_in_threadpool", counted)


async def test_small_predictions_on_a_cached_network_skip_the_thread_pool(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = _Hops(monkeypatch)
    tiny = await create(client)
    path = f"/networks/{tiny['id']}/predict"
    first = await client.post(path, json={"X": XOR_X})
    assert hops.count == 1  # a miss: the stored network is deserialized in the pool
    again = await client.post(path, json={"X": XOR_X})
    assert again.json() == first.json()
    evaluated = await client.post(f"/networks/{tiny['id']}/evaluate", json={"X": XOR_X, "Y": XOR_Y})
    assert evaluated.status_code == 200
    assert hops.count == 1  # 4 examples x 17 parameters: on the event loop
    trained = await client.post(f"/networks/{tiny['id']}/train", json={"X": XOR_X, "Y": XOR_Y})
    assert trained.status_code == 200
    hops.count = 0
    after = await client.post(path, json={"X": XOR_X})
    assert after.json()["version"] == first.json()["version"] + 1  # never a stale network
    assert hops.count == 1
    # Too much work for the event loop, even cached: 1 example x 60,401 parameters.
    big = await create(client, layer_dims=[300, 200, 1])
    one = {"X": [[0.1]] * 300}
    for _ in range(2):
        response = await client.post(f"/networks/{big['id']}/predict", json=one)
        assert response.status_code == 200, response.text
    assert hops.count == 3
    missing = await client.post("/networks/nope/predict", json={"X": XOR_X})
    assert missing.status_code == 404
    assert hops.count == 3


async def test_a_store_that_reads_over_the_network_always_hops(
    settings: Settings, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ServerLike(SQLiteStore):
        local_reads = False

    hops = _Hops(monkeypatch)
    async with app_client(settings, ServerLike(store.path)) as client:
        net = await create(client)
        for _ in range(3):
            response = await client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X})
            assert response.status_code == 200
    assert hops.count == 3
