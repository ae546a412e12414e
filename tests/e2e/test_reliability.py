"""Concurrency and faults, through real server processes on the SQLite default."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.store import open_store
from tests.service.helpers import XOR_X, XOR_Y, b64
from tests.support.server import ServerProcess, free_port

CLIENTS = 8
CALLS = 25


def _env(tmp_path: Path) -> dict[str, str]:
    return {"BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'reliability.db'}"}


def _create(url: str, **spec: Any) -> dict[str, Any]:
    body = {
        "layer_dims": [2, 4, 1],
        "seed": 1,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
    }
    body.update(spec)
    response = httpx.post(f"{url}/networks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _slow_batch(epochs: int = 100) -> dict[str, Any]:
    """A synchronous call of [256, 256, 256, 1] on 500 examples: 100 epochs take 0.45-1 s
    depending on the machine, 400 (the default work cap) 1.7 s or more."""
    rng = np.random.RandomState(0)
    X = rng.randn(256, 500)
    Y = (rng.rand(1, 500) > 0.5).astype(np.float64)
    return {"X": b64(X), "Y": b64(Y), "epochs": epochs}


def _until_training(url: str) -> None:
    """Wait until the server runs a heavy call (the /train a test just sent)."""
    deadline = time.monotonic() + 60
    while "backprop_heavy_calls 1.0" not in httpx.get(f"{url}/metrics").text:
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.02)


def _hammer(url: str, network_id: str) -> list[int]:
    def one_client(_: int) -> list[int]:
        with httpx.Client(base_url=url, timeout=120) as client:
            return [
                client.post(
                    f"/networks/{network_id}/train", json={"X": XOR_X, "Y": XOR_Y}
                ).status_code
                for _ in range(CALLS)
            ]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [status for statuses in pool.map(one_client, range(CLIENTS)) for status in statuses]


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_training_loses_no_update(tmp_path: Path, workers: int) -> None:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "service.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with ServerProcess(env=_env(tmp_path), args=args, port=port) as server:
        net = _create(server.url)
        statuses = _hammer(server.url, net["id"])
        assert statuses == [200] * (CLIENTS * CALLS)
        final = httpx.get(f"{server.url}/networks/{net['id']}").json()
        history = httpx.get(f"{server.url}/networks/{net['id']}/history").json()["costs"]
    assert final["steps_trained"] == CLIENTS * CALLS
    assert final["version"] == net["version"] + CLIENTS * CALLS
    assert [c["step"] for c in history] == list(range(1, CLIENTS * CALLS + 1))


def test_sigkill_during_training_loses_and_corrupts_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with ServerProcess(env=env) as server:
        net = _create(server.url, layer_dims=[256, 256, 256, 1])
        committed = httpx.post(
            f"{server.url}/networks/{net['id']}/train", json={**_slow_batch(), "epochs": 2}
        )
        assert committed.status_code == 200
        before = httpx.get(f"{server.url}/networks/{net['id']}/parameters?encoding=base64").json()

        def train_until_killed() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                httpx.post(
                    f"{server.url}/networks/{net['id']}/train", json=_slow_batch(300), timeout=300
                )

        caller = threading.Thread(target=train_until_killed)
        caller.start()
        _until_training(server.url)
        server.kill()
        caller.join()

    database = tmp_path / "reliability.db"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with ServerProcess(env=env) as server:
        after = httpx.get(f"{server.url}/networks/{net['id']}/parameters?encoding=base64").json()
        assert after == before  # the killed call committed nothing; the earlier one survived
        history = httpx.get(f"{server.url}/networks/{net['id']}/history").json()["costs"]
        assert [c["step"] for c in history] == [1, 2]
        again = httpx.post(
            f"{server.url}/networks/{net['id']}/train", json={**_slow_batch(), "epochs": 1}
        )
        assert again.status_code == 200
        assert again.json()["network"]["steps_trained"] == 3


def test_sigterm_drains_requests_in_flight_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "service.cli", "--host", "127.0.0.1", "--port", str(port)]
    env = {**_env(tmp_path), "BACKPROP_SHUTDOWN_GRACE_SECONDS": "300"}
    server = ServerProcess(env=env, args=args, port=port).start()
    try:
        net = _create(server.url, layer_dims=[256, 256, 256, 1])
        outcome: dict[str, Any] = {}

        def train() -> None:  # over a second: still running when SIGTERM comes
            response = httpx.post(
                f"{server.url}/networks/{net['id']}/train", json=_slow_batch(400), timeout=300
            )
            outcome["status"] = response.status_code
            outcome["steps"] = response.json()["steps"]
            outcome["at"] = time.monotonic()

        caller = threading.Thread(target=train)
        caller.start()
        _until_training(server.url)
        terminated_at = time.monotonic()
        server.process.terminate()
        caller.join()
        code = server.process.wait(30)
    finally:
        if server.process.poll() is None:
            server.kill()
    assert outcome["status"] == 200
    assert outcome["steps"] == 400
    assert outcome["at"] > terminated_at  # it was in flight when SIGTERM arrived
    assert code == 0, server.output()


def _heavy_calls(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("backprop_heavy_calls "):
            return float(line.split()[1])
    raise AssertionError("no backprop_heavy_calls gauge")


def test_a_client_that_disconnects_stops_the_work_and_leaves_the_network_whole(
    tmp_path: Path,
) -> None:
    with ServerProcess(env=_env(tmp_path)) as server:
        net = _create(server.url, layer_dims=[256, 256, 256, 1])
        # 350 epochs (within the work cap): over a second, more than the client waits.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{server.url}/networks/{net['id']}/train", json=_slow_batch(350), timeout=0.5
            )
        deadline = time.monotonic() + 60
        while _heavy_calls(server.url) > 0:  # the work stops soon after the client left
            assert time.monotonic() < deadline, "the work went on without its client"
            time.sleep(0.05)
        state = httpx.get(f"{server.url}/networks/{net['id']}").json()
        answer = httpx.get(f"{server.url}/networks/{net['id']}/history")
        # Nothing of it was committed: the network is whole, as it was.
        assert (state["version"], state["steps_trained"]) == (1, 0)
        assert (answer.headers["etag"], answer.json()["costs"]) == ('"1"', [])


def test_sigterm_checkpoints_running_jobs_and_the_next_server_resumes_them(tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "service.cli", "--host", "127.0.0.1", "--port", str(port)]
    # No periodic checkpoint during the test: what the network keeps is the shutdown's.
    env = {**_env(tmp_path), "BACKPROP_CHECKPOINT_SECONDS": "3600"}
    server = ServerProcess(env=env, args=args, port=port).start()
    try:
        net = _create(server.url)
        started = httpx.post(
            f"{server.url}/networks/{net['id']}/jobs",
            json={"X": XOR_X, "Y": XOR_Y, "epochs": 10_000_000},
        )
        assert started.status_code == 202
        job_id = started.json()["id"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/jobs/{job_id}").json()["step"] < 10:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        server.process.terminate()
        code = server.process.wait(60)
    finally:
        if server.process.poll() is None:
            server.kill()
    assert code == 0, server.output()

    store = open_store(env["BACKPROP_DATABASE_URL"])
    try:  # handed back, not failed: queued, its last steps committed with it
        job = store.get_job(job_id, "")
        steps = store.get_meta(net["id"], "").steps_trained
        history = store.history(net["id"])
    finally:
        store.close()
    assert (job.status, job.runner, job.restarts, job.error) == ("queued", None, 1, None)
    assert steps == job.checkpoint_step == len(history) >= 10

    with ServerProcess(env=env) as restarted:
        url = f"{restarted.url}/jobs/{job_id}"
        deadline = time.monotonic() + 30
        while (resumed := httpx.get(url).json())["step"] <= steps:
            assert time.monotonic() < deadline, resumed
            time.sleep(0.05)
        assert (resumed["status"], resumed["restarts"]) == ("running", 1)
        assert httpx.post(f"{url}/cancel").json()["status"] == "cancelled"
