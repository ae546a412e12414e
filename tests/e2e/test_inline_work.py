"""Small work on a warm network runs on the event loop (service/core/capacity.py, bounded by
service/warm.py's INLINE_MULTIPLY_ADDS and INLINE_STEPS). Under a flood of the largest of it
(predictions; one-step and four-step training calls), from more clients than the server has
threads, the loop still answers `/healthz` with a p99 under 50 ms: the bound keeps each one
far shorter than that."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from service.warm import INLINE_MULTIPLY_ADDS, INLINE_STEPS
from tests.support.server import ServerProcess

CLIENTS = 4  # each keeps a request queued: the loop is never idle
PROBES = 300  # one every 10 ms


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(env={"OPENBLAS_NUM_THREADS": "1"}) as server:
        yield server


RNG = np.random.default_rng(0)
FLOODS = {
    # 47,710 parameters: one example is inline
    "predict": ([784, 60, 10], "predict", {"X": RNG.random((784, 1)).round(3).tolist()}),
    # 3,110 parameters: four examples, one step (x 4 passes) is inline; so is one example,
    # four steps (x 13)
    "train 1 step": (
        [20, 100, 10],
        "train",
        {"X": RNG.random((20, 4)).round(3).tolist(), "Y": np.eye(10)[:, :4].tolist()},
    ),
    "train 4 steps": (
        [20, 100, 10],
        "train",
        {"X": RNG.random((20, 1)).round(3).tolist(), "Y": np.eye(10)[:, :1].tolist(), "epochs": 4},
    ),
}


@pytest.mark.parametrize("flood_of", FLOODS)
def test_healthz_p99_stays_under_50_ms_under_a_flood_of_inline_work(
    server: ServerProcess, flood_of: str
) -> None:
    dims, route, body = FLOODS[flood_of]
    spec = {"layer_dims": dims, "seed": 1, "output_activation": "softmax"}
    created = httpx.post(f"{server.url}/networks", json=spec)
    assert created.status_code == 201, created.text
    parameters = created.json()["parameter_count"]
    m, steps = np.shape(body["X"])[1], body.get("epochs", 1) if route == "train" else 0
    assert m * parameters * (1 + 3 * steps) <= INLINE_MULTIPLY_ADDS
    assert steps <= INLINE_STEPS
    url = f"{server.url}/networks/{created.json()['id']}/{route}"
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
    assert p99 < 50, f"/healthz p99 {p99:.1f} ms while {len(statuses)} calls were answered"


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
