"""Training jobs through the HTTP API: lifecycle, progress events, cancellation, the 409s while
a job holds a network, divergence, queueing, owners, shutdown.

Most tests call the app in-process (httpx's ASGI transport, which buffers a response until it
ends, so an event stream is read whole once its job has finished); the ones that read a stream
while its job runs use a real uvicorn server in a thread (:func:`live`). Waits poll a condition
with a deadline; no test sleeps for a guessed time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from model import Network, TrainOptions, train
from service.core.settings import Settings
from service.main import create_app
from service.store import Store, open_store
from tests.service.helpers import XOR_X, XOR_Y, assert_problem, create
from tests.support.server import free_port

pytestmark = pytest.mark.anyio

LONG = 10_000_000  # epochs no test waits for: such jobs end by cancellation
FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        checkpoint_seconds=0.2,
        max_concurrent_jobs=2,
    )


@pytest.fixture
def app(settings: Settings, store: Store) -> Iterator[FastAPI]:
    # The ASGI transport runs no lifespan: the manager starts with the first job, and stops here.
    app = create_app(settings, store)
    yield app
    app.state.jobs.stop(timeout=10)


async def poll(
    read: Callable[[], Awaitable[dict[str, Any]]],
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
) -> dict[str, Any]:
    """Read until ``until`` holds; fail with the last reading after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if until(value):
            return value
        assert time.monotonic() < deadline, f"timed out; last reading: {value}"
        await anyio.sleep(0.01)


async def get_json(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def start_job(client: httpx.AsyncClient, network_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(
        f"/networks/{network_id}/jobs", json={"X": XOR_X, "Y": XOR_Y, **body}
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    return job


async def wait_job(
    client: httpx.AsyncClient, job_id: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    return await poll(lambda: get_json(client, f"/jobs/{job_id}"), until)


def running_with_steps(job: dict[str, Any]) -> bool:
    return bool(job["status"] == "running" and job["step"] > 0)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in FINAL


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) of every event in an event-stream body (comments and pings skipped)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            events.append((fields["event"], orjson.loads(fields["data"])))
    return events


def replay(network: Network, steps: int) -> Network:
    """What ``steps`` full-batch updates make of ``network``: the model, without the service."""
    if steps == 0:
        return network
    return train(network, np.array(XOR_X), np.array(XOR_Y), TrainOptions(epochs=steps)).network


def assert_same_parameters(saved: Network, expected: Network) -> None:
    for W, W_expected in zip(saved.W + saved.b, expected.W + expected.b, strict=True):
        np.testing.assert_array_equal(W, W_expected)


# ---- lifecycle ---------------------------------------------------------------------------------


async def test_a_job_runs_to_the_end_like_synchronous_training(
    client: httpx.AsyncClient, store: Store
) -> None:
    net = await create(client)
    before = store.get_network(net["id"], "").network
    job = await start_job(client, net["id"], epochs=300)
    assert job["status"] == "queued"
    assert job["network_id"] == net["id"]
    assert (job["step"], job["total_steps"]) == (0, 300)
    assert job["started_at"] is None
    assert job["finished_at"] is None
    assert job["error"] is None
    assert set(job) >= {"cost", "created_at", "eta_seconds", "eta_s", "elapsed_s"}

    done = await wait_job(client, job["id"], finished)
    expected = train(before, np.array(XOR_X), np.array(XOR_Y), TrainOptions(epochs=300))
    assert done["status"] == "succeeded", done
    assert (done["step"], done["total_steps"]) == (300, 300)
    assert done["cost"] == pytest.approx(expected.costs[-1].cost, rel=1e-12)
    assert done["final_cost"] == pytest.approx(expected.final_cost, rel=1e-12)
    assert done["started_at"] >= done["created_at"]
    assert done["finished_at"] >= done["started_at"]
    assert done["elapsed_s"] >= 0
    assert done["eta_seconds"] is None
    assert done["error"] is None

    network = await get_json(client, f"/networks/{net['id']}")
    assert network["steps_trained"] == 300
    assert network["version"] >= 2  # one version per checkpoint, the last at the end
    costs = (await get_json(client, f"/networks/{net['id']}/history"))["costs"]
    assert [c["step"] for c in costs] == list(range(1, 301))
    np.testing.assert_allclose([c["cost"] for c in costs], [c.cost for c in expected.costs])
    assert_same_parameters(store.get_network(net["id"], "").network, expected.network)
    gradients = await get_json(client, f"/networks/{net['id']}/gradients")
    assert (gradients["step"], gradients["version"]) == (300, network["version"])

    listed = (await get_json(client, f"/networks/{net['id']}/jobs"))["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert listed[0]["status"] == "succeeded"
    metrics = (await client.get("/metrics")).text
    assert "backprop_training_steps_total 300.0" in metrics  # a job's steps count too
    assert 'backprop_jobs{status="succeeded"} 1.0' in metrics

    # A job on a trained network continues its step numbers; mini-batches count as steps.
    second = await start_job(client, net["id"], epochs=2, batch_size=3, shuffle_seed=1)
    assert second["total_steps"] == 4
    assert (await wait_job(client, second["id"], finished))["status"] == "succeeded"
    costs = (await get_json(client, f"/networks/{net['id']}/history"))["costs"]
    assert [c["step"] for c in costs][-4:] == [301, 302, 303, 304]


async def test_running_job_reports_progress_and_other_calls_keep_answering(
    client: httpx.AsyncClient,
) -> None:
    net, other = await create(client), await create(client, seed=2)
    job = await start_job(client, net["id"], epochs=LONG)
    running = await wait_job(client, job["id"], running_with_steps)
    assert running["started_at"] is not None
    assert running["finished_at"] is None
    assert running["elapsed_s"] > 0
    assert running["eta_seconds"] > 0
    assert running["eta_s"] == running["eta_seconds"]
    # Checkpoints land while it runs: the network's step count grows.
    await poll(lambda: get_json(client, f"/networks/{net['id']}"), lambda n: n["version"] >= 3)
    for network_id in (net["id"], other["id"]):
        answer = await client.post(f"/networks/{network_id}/predict", json={"X": XOR_X})
        assert answer.status_code == 200, answer.text
    assert (await client.get("/networks")).status_code == 200
    later = await get_json(client, f"/jobs/{job['id']}")
    assert later["step"] >= running["step"]
    await client.post(f"/jobs/{job['id']}/cancel")


async def test_a_finished_jobs_stream_is_its_final_event_at_once(
    client: httpx.AsyncClient,
) -> None:
    net = await create(client)
    job = await start_job(client, net["id"], epochs=20)
    done = await wait_job(client, job["id"], finished)
    started = time.monotonic()
    response = await client.get(f"/jobs/{job['id']}/events")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert parse_events(response.text) == [("succeeded", done)]


async def test_events_of_a_whole_job_are_ordered_with_one_final_event(
    client: httpx.AsyncClient,
) -> None:
    # Read whole once the job ends (the ASGI transport buffers): progress events first, with
    # steps that never go back and a gap under a second between them, then one final event.
    net = await create(client)
    job = await start_job(client, net["id"], epochs=LONG)
    await wait_job(client, job["id"], running_with_steps)

    async def cancel_soon() -> None:
        await anyio.sleep(1.2)
        await client.post(f"/jobs/{job['id']}/cancel")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(cancel_soon)
        response = await client.get(f"/jobs/{job['id']}/events")
    events = parse_events(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "cancelled"
    assert names.count("cancelled") == 1
    assert set(names[:-1]) == {"progress"}
    assert len(names) >= 3
    progress = [data for _, data in events[:-1]]
    keys = {"step", "total_steps", "cost", "elapsed_s", "eta_s", "version"}
    assert all(set(p) == keys for p in progress)
    steps = [p["step"] for p in progress]
    assert steps == sorted(steps)
    assert steps[0] > 0
    gaps = np.diff([p["elapsed_s"] for p in progress])
    assert gaps.max() < 1.0, gaps
    final = events[-1][1]
    assert final["id"] == job["id"]
    assert final["step"] >= steps[-1]


# ---- cancellation --------------------------------------------------------------------------


async def test_cancel_stops_within_a_second_and_keeps_the_last_step(
    client: httpx.AsyncClient, store: Store
) -> None:
    net = await create(client)
    before = store.get_network(net["id"], "").network
    job = await start_job(client, net["id"], epochs=LONG)
    await wait_job(client, job["id"], running_with_steps)

    started = time.monotonic()
    response = await client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    cancelled = await wait_job(client, job["id"], finished)
    assert time.monotonic() - started < 1.0
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] is None
    assert response.json()["status"] == "cancelled"  # the route waited for the end

    steps = cancelled["step"]
    assert 0 < steps < cancelled["total_steps"]
    network = await get_json(client, f"/networks/{net['id']}")
    assert network["steps_trained"] == steps
    history = (await get_json(client, f"/networks/{net['id']}/history"))["costs"]
    assert [c["step"] for c in history] == list(range(1, steps + 1))
    assert_same_parameters(store.get_network(net["id"], "").network, replay(before, steps))

    # Idempotent: cancelling a finished job answers its final state and changes nothing.
    again = await client.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 202
    assert again.json() == {**cancelled, "elapsed_s": again.json()["elapsed_s"]}
    assert (await get_json(client, f"/networks/{net['id']}"))["version"] == network["version"]
    # The network is free again.
    trained = await client.post(
        f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 1}
    )
    assert trained.status_code == 200, trained.text
    assert trained.json()["costs"][0]["step"] == steps + 1


async def test_a_job_holds_its_network_against_every_other_writer(
    client: httpx.AsyncClient,
) -> None:
    net = await create(client)
    job = await start_job(client, net["id"], epochs=LONG)
    for response in (
        await client.post(
            f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 1}
        ),
        await client.put(
            f"/networks/{net['id']}/parameters",
            json={
                "layers": [
                    {"W": [[0.0, 0.0]] * 4, "b": [[0.0]] * 4},
                    {"W": [[0.0] * 4], "b": [[0.0]]},
                ]
            },
        ),
        await client.post(f"/networks/{net['id']}/jobs", json={"X": XOR_X, "Y": XOR_Y}),
    ):
        assert_problem(response, 409, job["id"], "busy", f"POST /jobs/{job['id']}/cancel")
    await client.post(f"/jobs/{job['id']}/cancel")
    assert (
        await client.post(f"/networks/{net['id']}/jobs", json={"X": XOR_X, "Y": XOR_Y})
    ).status_code == 202


async def test_the_store_refuses_writes_to_a_held_network_across_connections(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    # A second store on the same file stands for another process: the check is in SQLite.
    from service.store import JobCheckpoint, JobRequest, NetworkBusy, Update

    net = await create(client)
    other = open_store(settings.database_url)
    try:
        record = other.get_network(net["id"], "")
        request = JobRequest(X=np.array(XOR_X), Y=np.array(XOR_Y), options=TrainOptions())
        store.create_job("job-a", net["id"], "", request, 1, "nobody")
        with pytest.raises(NetworkBusy) as busy:
            other.commit_update(net["id"], "", record.meta.version, Update(record.network))
        assert busy.value.job_id == "job-a"
        with pytest.raises(NetworkBusy):
            other.create_job("job-b", net["id"], "", request, 1, "nobody")
        assert store.claim_job("job-a", "nobody", attempt=0) is not None
        assert other.claim_job("job-a", "somebody", attempt=0) is None  # one claimer wins
        checkpoint = JobCheckpoint("job-a", 1, 0, None)
        committed = other.commit_update(
            net["id"], "", record.meta.version, Update(record.network, job=checkpoint)
        )
        assert committed.meta.version == record.meta.version + 1
    finally:
        other.close()


async def test_bad_job_requests(client: httpx.AsyncClient) -> None:
    net = await create(client)
    response = await client.post(
        f"/networks/{net['id']}/jobs", json={"X": [[0.0, 1.0]], "Y": [[0.0, 1.0]]}
    )
    assert_problem(response, 422, "X")
    response = await client.post(
        f"/networks/{net['id']}/jobs", json={"X": XOR_X, "Y": XOR_Y, "epochs": 0}
    )
    assert_problem(response, 422, "epochs")
    assert_problem(await client.post("/networks/nope/jobs", json={"X": XOR_X, "Y": XOR_Y}), 404)
    assert_problem(await client.get("/networks/nope/jobs"), 404)
    for method in ("GET", "DELETE"):
        assert_problem(await client.request(method, "/jobs/nope"), 404, "no job", "nope")
    assert_problem(await client.get("/jobs/nope/events"), 404, "no job")


# ---- divergence, queueing, owners ----------------------------------------------------------------


async def test_divergence_fails_the_job_and_keeps_the_last_finite_parameters(
    client: httpx.AsyncClient, store: Store
) -> None:
    spec = {"layer_dims": [1, 1], "output_activation": "linear", "seed": 3}
    body = {"X": [[10.0, -20.0, 30.0]], "Y": [[1.0, 2.0, 3.0]], "epochs": 10_000}
    sync_net = await create(client, **spec, optimizer={"name": "gd", "learning_rate": 1.0})
    sync = await client.post(f"/networks/{sync_net['id']}/train", json=body)
    detail = assert_problem(sync, 422, "diverged")["detail"]
    step = int(detail.split("at step ")[1].split(":")[0])

    net = await create(client, **spec, optimizer={"name": "gd", "learning_rate": 1.0})
    job = await start_job(client, net["id"], **body)
    failed = await wait_job(client, job["id"], finished)
    assert failed["status"] == "failed"
    assert f"diverged at step {step}" in failed["error"]
    assert failed["step"] == step - 1
    network = await get_json(client, f"/networks/{net['id']}")
    assert network["steps_trained"] == step - 1
    saved = store.get_network(net["id"], "").network
    assert all(np.isfinite(p).all() for p in saved.W + saved.b)
    history = (await get_json(client, f"/networks/{net['id']}/history"))["costs"]
    assert len(history) == step - 1


async def test_jobs_beyond_the_limit_wait_queued(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'one.db'}", max_concurrent_jobs=1)
    store = open_store(settings.database_url)
    app = create_app(settings, store)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first_net, second_net = await create(client), await create(client, seed=2)
            first = await start_job(client, first_net["id"], epochs=LONG)
            await wait_job(client, first["id"], running_with_steps)
            second = await start_job(client, second_net["id"], epochs=LONG)
            third_net = await create(client, seed=3)
            third = await start_job(client, third_net["id"], epochs=LONG)
            waiting = await get_json(client, f"/jobs/{second['id']}")
            assert waiting["status"] == "queued"
            assert waiting["started_at"] is None
            assert waiting["step"] == 0
            assert waiting["eta_seconds"] is None

            # A queued job is cancelled at once, without ever running.
            gone = await client.post(f"/jobs/{third['id']}/cancel")
            assert gone.json()["status"] == "cancelled"
            assert gone.json()["started_at"] is None

            await client.post(f"/jobs/{first['id']}/cancel")
            await wait_job(client, second["id"], running_with_steps)
            await client.post(f"/jobs/{second['id']}/cancel")
            assert (await get_json(client, f"/networks/{third_net['id']}"))["steps_trained"] == 0
    finally:
        app.state.jobs.stop(timeout=10)
        store.close()


async def test_another_owners_job_is_404(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'keys.db'}", api_keys="alice,bob")
    store = open_store(settings.database_url)
    app = create_app(settings, store)
    alice = {"Authorization": "Bearer alice"}
    bob = {"Authorization": "Bearer bob"}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            client.headers.update(alice)
            net = await create(client)
            job = await start_job(client, net["id"], epochs=10)
            await wait_job(client, job["id"], finished)
            for method, path in [
                ("GET", f"/jobs/{job['id']}"),
                ("GET", f"/jobs/{job['id']}/events"),
                ("DELETE", f"/jobs/{job['id']}"),
                ("GET", f"/networks/{net['id']}/jobs"),
            ]:
                assert_problem(await client.request(method, path, headers=bob), 404)
            assert (await client.get(f"/jobs/{job['id']}")).status_code == 200
    finally:
        app.state.jobs.stop(timeout=10)
        store.close()


# ---- a real server: streams read while the job runs, and shutdown ---------------------------


@pytest.fixture
def live(app: FastAPI) -> Iterator[tuple[str, uvicorn.Server]]:
    """The app served by uvicorn in a thread, lifespan included."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn exited"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", server
    server.should_exit = True
    thread.join(15)


async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            if not line.startswith(":") and ": " in line:
                name, value = line.split(": ", 1)
                fields[name] = value
        elif "event" in fields:
            yield fields["event"], orjson.loads(fields["data"])
            fields = {}


async def test_a_stream_joined_late_answers_at_once_then_every_half_second(
    live: tuple[str, uvicorn.Server],
) -> None:
    url, _ = live
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        net = await create(client)
        job = await start_job(client, net["id"], epochs=LONG)
        await wait_job(client, job["id"], running_with_steps)
        connected = time.monotonic()
        async with client.stream("GET", f"/jobs/{job['id']}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = read_events(response)
            name, first = await anext(events)
            assert name == "progress"
            waited = time.monotonic() - connected
            assert waited < 1.0, waited  # at once (slack for a loaded machine)
            assert first["step"] > 0
            assert first["total_steps"] == LONG
            received = [(time.monotonic(), first)]
            while len(received) < 3:
                name, data = await anext(events)
                assert name == "progress"
                received.append((time.monotonic(), data))
            gaps = np.diff([at for at, _ in received])
            assert gaps.max() < 1.0, gaps
            assert [d["step"] for _, d in received] == sorted(d["step"] for _, d in received)
            await client.post(f"/jobs/{job['id']}/cancel")
            rest = [event async for event in events]  # the stream ends after the final event
        assert [name for name, _ in rest if name != "progress"] == ["cancelled"]
        assert rest[-1][0] == "cancelled"
        assert rest[-1][1]["status"] == "cancelled"


async def test_shutdown_hands_running_jobs_back_with_their_last_step_committed(
    live: tuple[str, uvicorn.Server], store: Store
) -> None:
    url, server = live
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        net = await create(client)
        job = await start_job(client, net["id"], epochs=LONG)
        await wait_job(client, job["id"], running_with_steps)
    server.should_exit = True
    deadline = time.monotonic() + 15
    while store.get_job(job["id"], "").status == "running":
        assert time.monotonic() < deadline
        await anyio.sleep(0.02)
    stopped = store.get_job(job["id"], "")
    # Queued for the next process to resume from its checkpoint: not failed.
    assert (stopped.status, stopped.runner, stopped.restarts, stopped.error) == (
        "queued",
        None,
        1,
        None,
    )
    assert store.get_meta(net["id"], "").steps_trained == stopped.checkpoint_step > 0
