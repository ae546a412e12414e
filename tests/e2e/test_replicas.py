"""Several replicas on one PostgreSQL database, through real uvicorn servers: what one
replica does, every other one sees, and no concurrent write is lost whichever replica takes
it. A job runs on the replica that accepted it and is followed, or cancelled, through
another; killed with its replica, it is resumed by the survivor from its last checkpoint and
ends as if never interrupted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from model import TrainOptions, create_network, train
from service.store import open_store
from tests.service.helpers import XOR_X, XOR_Y
from tests.support.postgres import scratch_database, scratch_schema, server_url_or_skip
from tests.support.server import ServerProcess
from tests.support.waiting import poll, server_sent_events

CLIENTS = 8
CALLS = 25

SPEC = {
    "layer_dims": [2, 4, 1],
    "seed": 1,
    "hidden_activation": "tanh",
    "optimizer": {"name": "momentum", "learning_rate": 0.1},
}


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with scratch_database(server_url_or_skip()) as url:
        yield url


def replica_env(url: str) -> dict[str, str]:
    return {"BACKPROP_DATABASE_URL": url, "BACKPROP_CHECKPOINT_SECONDS": "0.3"}


@pytest.fixture(scope="module")
def replicas(database: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two replicas, started together on an empty schema (both migrate it at once)."""
    env = replica_env(scratch_schema(database))
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: ServerProcess(env=env).start(), range(2))
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def create(url: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/networks", json=SPEC)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_training_through_both_replicas_loses_no_update(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    net = create(replicas[0].url)

    def one_client(number: int) -> list[int]:
        clients = [httpx.Client(base_url=replica.url, timeout=120) for replica in replicas]
        try:
            return [  # each client alternates between the replicas
                clients[(number + call) % 2]
                .post(f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y})
                .status_code
                for call in range(CALLS)
            ]
        finally:
            for client in clients:
                client.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [s for client in pool.map(one_client, range(CLIENTS)) for s in client]
    assert statuses == [200] * (CLIENTS * CALLS)
    for replica in replicas:
        final = httpx.get(f"{replica.url}/networks/{net['id']}").json()
        assert final["steps_trained"] == CLIENTS * CALLS
        assert final["version"] == net["version"] + CLIENTS * CALLS
        history = httpx.get(f"{replica.url}/networks/{net['id']}/history").json()["costs"]
        assert [c["step"] for c in history] == list(range(1, CLIENTS * CALLS + 1))


def test_a_network_deleted_through_one_replica_is_gone_on_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, other = replicas
    net = create(one.url)
    assert httpx.get(f"{other.url}/networks/{net['id']}").status_code == 200
    assert httpx.delete(f"{other.url}/networks/{net['id']}").status_code == 204
    assert httpx.get(f"{one.url}/networks/{net['id']}").status_code == 404
    train = httpx.post(f"{one.url}/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y})
    assert train.status_code == 404
    assert net["id"] not in [n["id"] for n in httpx.get(f"{one.url}/networks").json()["networks"]]


def test_if_match_is_checked_across_replicas(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, other = replicas
    net = create(one.url)
    layers = httpx.get(f"{one.url}/networks/{net['id']}/parameters").json()["layers"]
    body = {"layers": [{"W": layer["W"], "b": layer["b"]} for layer in layers]}
    first = httpx.put(
        f"{one.url}/networks/{net['id']}/parameters", json=body, headers={"If-Match": "1"}
    )
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 2
    stale = httpx.put(
        f"{other.url}/networks/{net['id']}/parameters", json=body, headers={"If-Match": "1"}
    )
    assert stale.status_code == 409, stale.text
    assert "version 2" in stale.json()["detail"]
    current = httpx.put(
        f"{other.url}/networks/{net['id']}/parameters", json=body, headers={"If-Match": '"2"'}
    )
    assert current.status_code == 200, current.text


# A few seconds of steps, so that the follower sees progress from the store (written every
# 0.5 s) before the end: 30,000 steps took under 0.5 s on a fast machine.
EPOCHS = 150_000


def test_a_job_is_followed_and_cancelled_through_the_other_replica(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    runner, follower = replicas
    net = create(runner.url)
    started = httpx.post(
        f"{runner.url}/networks/{net['id']}/jobs",
        json={"X": XOR_X, "Y": XOR_Y, "epochs": EPOCHS},
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]

    # The follower answers for it from the store, and refuses to train its network (409).
    busy = httpx.post(f"{follower.url}/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y})
    assert busy.status_code == 409
    assert job_id in busy.json()["detail"]
    progress: list[dict[str, Any]] = []
    final: tuple[str, dict[str, Any]] | None = None
    for name, data in server_sent_events(f"{follower.url}/jobs/{job_id}/events"):
        if name == "progress":
            progress.append(data)
        else:
            final = (name, data)
    assert final is not None
    assert final[0] == "succeeded", final
    assert final[1]["step"] == final[1]["total_steps"] == EPOCHS
    assert len(progress) >= 2
    steps = [p["step"] for p in progress]
    assert steps == sorted(steps)
    assert any(0 < step < EPOCHS for step in steps), steps
    assert httpx.get(f"{follower.url}/jobs/{job_id}").json()["status"] == "succeeded"
    assert httpx.get(f"{follower.url}/networks/{net['id']}").json()["steps_trained"] == EPOCHS

    # A second job, cancelled through the follower: it stops within a second.
    again = httpx.post(
        f"{runner.url}/networks/{net['id']}/jobs",
        json={"X": XOR_X, "Y": XOR_Y, "epochs": 10_000_000},
    ).json()
    poll(
        lambda: httpx.get(f"{follower.url}/jobs/{again['id']}").json(),
        lambda job: job["step"] > 0,
    )
    asked = time.monotonic()
    answer = httpx.post(f"{follower.url}/jobs/{again['id']}/cancel")
    assert answer.status_code == 202
    assert answer.json()["id"] == again["id"]  # usually "cancelled" already: the cancel waits 1 s
    cancelled = poll(
        lambda: httpx.get(f"{follower.url}/jobs/{again['id']}").json(),
        lambda job: job["status"] != "running",
    )
    assert cancelled["status"] == "cancelled"
    assert time.monotonic() - asked < 2.0
    network = httpx.get(f"{follower.url}/networks/{net['id']}").json()
    assert network["steps_trained"] == EPOCHS + cancelled["step"]


RESUMED_EPOCHS = 60_000


def test_a_killed_replicas_job_is_resumed_by_the_survivor(database: str) -> None:
    url = scratch_schema(database)
    env = replica_env(url)
    survivor = ServerProcess(env=env).start()
    doomed = ServerProcess(env=env).start()
    try:
        net = create(doomed.url)
        initial = httpx.get(f"{doomed.url}/networks/{net['id']}/parameters").json()["layers"]
        job = httpx.post(
            f"{doomed.url}/networks/{net['id']}/jobs",
            json={"X": XOR_X, "Y": XOR_Y, "epochs": RESUMED_EPOCHS},
        ).json()
        poll(  # two checkpoints: the kill lands mid-job with work committed
            lambda: httpx.get(f"{survivor.url}/networks/{net['id']}").json(),
            lambda network: network["version"] >= 3,
        )
        assert httpx.get(f"{survivor.url}/jobs/{job['id']}").json()["status"] == "running"
        doomed.kill()
        killed_at = time.monotonic()
        resumed = poll(  # the survivor's scan finds the job of a runner whose lock is free
            lambda: httpx.get(f"{survivor.url}/jobs/{job['id']}").json(),
            lambda j: j["restarts"] == 1,
        )
        assert time.monotonic() - killed_at < 10, resumed
        done = poll(
            lambda: httpx.get(f"{survivor.url}/jobs/{job['id']}").json(),
            lambda j: j["status"] not in ("queued", "running"),
            timeout=60,
        )
        assert (done["status"], done["step"], done["restarts"]) == ("succeeded", RESUMED_EPOCHS, 1)
        history = httpx.get(f"{survivor.url}/networks/{net['id']}/history").json()["costs"]
        assert [c["step"] for c in history] == list(range(1, RESUMED_EPOCHS + 1))
        saved = httpx.get(f"{survivor.url}/networks/{net['id']}/parameters").json()["layers"]
        store = open_store(url)
        try:
            spec = store.get_meta(net["id"], "").spec
        finally:
            store.close()
        start = create_network(
            spec, [np.array(x["W"]) for x in initial], [np.array(x["b"]) for x in initial]
        )
        expected = train(
            start, np.array(XOR_X), np.array(XOR_Y), TrainOptions(epochs=RESUMED_EPOCHS)
        )
        for layer, W, b in zip(saved, expected.network.W, expected.network.b, strict=True):
            np.testing.assert_array_equal(layer["W"], W)  # as if the kill never happened
            np.testing.assert_array_equal(layer["b"], b)
    finally:
        survivor.stop()
        if doomed.process.poll() is None:
            doomed.kill()
