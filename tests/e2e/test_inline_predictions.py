"""Small predictions on a warm network run on the event loop (service/prediction/routes.py:
at most INLINE_MULTIPLY_ADDS multiply-adds, examples x parameters). Under a flood of the
largest of them, from more clients than the server has threads, the loop still answers
`/healthz` with a p99 under 50 ms: the bound keeps each one far shorter than that."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from service.prediction.routes import INLINE_MULTIPLY_ADDS
from tests.support.server import ServerProcess

CLIENTS = 4  # each keeps a request queued: the loop is never idle
PROBES = 300  # one every 10 ms


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(env={"OPENBLAS_NUM_THREADS": "1"}) as server:
        yield server


def test_healthz_p99_stays_under_50_ms_under_a_flood_of_inline_predictions(
    server: ServerProcess,
) -> None:
    spec = {"layer_dims": [784, 60, 10], "seed": 1}  # 47,710 parameters: one example is inline
    created = httpx.post(f"{server.url}/networks", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["parameter_count"] <= INLINE_MULTIPLY_ADDS
    url = f"{server.url}/networks/{created.json()['id']}/predict"
    body = {"X": np.random.default_rng(0).random((784, 1)).round(3).tolist()}
    assert httpx.post(url, json=body).status_code == 200  # warm

    # The flood comes from another process: in this one, its threads would hold the GIL
    # that the probe needs, and the probe would time them, not the server.
    context = multiprocessing.get_context("spawn")
    stop, answered = context.Event(), context.Queue()
    flooder = context.Process(target=flood, args=(url, body, stop, answered))
    flooder.start()
    latencies = []
    try:
        with httpx.Client() as probe:
            assert answered.get(timeout=60) == "flooding"
            for _ in range(PROBES):
                started = time.perf_counter()
                assert probe.get(f"{server.url}/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.01)
    finally:
        stop.set()
        statuses = answered.get(timeout=60)
        flooder.join()
    assert set(statuses) == {200}
    p99 = float(np.percentile(latencies, 99)) * 1000
    assert p99 < 50, f"/healthz p99 {p99:.1f} ms while {len(statuses)} predictions were answered"


def flood(url: str, body: dict[str, Any], stop: Any, answered: Any) -> None:
    """CLIENTS keep-alive connections posting predictions until ``stop``; then their statuses."""

    async def client(statuses: list[int]) -> None:
        async with httpx.AsyncClient() as http:
            while not stop.is_set():
                statuses.append((await http.post(url, json=body)).status_code)

    async def run() -> list[int]:
        statuses: list[int] = []
        tasks = [asyncio.create_task(client(statuses)) for _ in range(CLIENTS)]
        while len(statuses) < 100:
            await asyncio.sleep(0.01)
        answered.put("flooding")
        await asyncio.gather(*tasks)
        return statuses

    answered.put(asyncio.run(run()))
