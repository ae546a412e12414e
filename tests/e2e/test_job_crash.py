"""Through real uvicorn servers: a server SIGKILLed in the middle of a training job leaves the
network at its last checkpoint, and the next server marks the job failed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from model import TrainOptions, create_network, train
from service.store import Store, open_store
from tests.service.helpers import XOR_X, XOR_Y
from tests.support.server import ServerProcess


def _poll(read: Any, until: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not until(value := read()):
        assert time.monotonic() < deadline, f"timed out; last reading: {value}"
        time.sleep(0.05)
    return value


def test_a_killed_servers_job_fails_and_its_network_is_at_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    env = {"BACKPROP_DATABASE_URL": url, "BACKPROP_CHECKPOINT_SECONDS": "0.3"}
    spec = {
        "layer_dims": [2, 4, 1],
        "seed": 1,
        "hidden_activation": "tanh",
        "optimizer": {"name": "momentum", "learning_rate": 0.1},
    }
    server = ServerProcess(env=env).start()
    try:
        created = httpx.post(f"{server.url}/networks", json=spec)
        assert created.status_code == 201, created.text
        net = created.json()
        initial = httpx.get(f"{server.url}/networks/{net['id']}/parameters").json()
        started = httpx.post(
            f"{server.url}/networks/{net['id']}/jobs",
            json={"X": XOR_X, "Y": XOR_Y, "epochs": 10_000_000},
        )
        assert started.status_code == 202, started.text
        job = started.json()
        # Wait for two checkpoints, so the kill lands mid-job with work committed.
        _poll(
            lambda: httpx.get(f"{server.url}/networks/{net['id']}").json(),
            lambda network: network["version"] >= 3,
        )
        running = httpx.get(f"{server.url}/jobs/{job['id']}").json()
        assert running["status"] == "running"
    finally:
        server.kill()

    with ServerProcess(env=env) as server, httpx.Client(base_url=server.url) as client:
        failed = client.get(f"/jobs/{job['id']}").json()
        assert failed["status"] == "failed", failed
        assert "stopped" in failed["error"]
        assert "checkpoint" in failed["error"]
        assert failed["finished_at"] is not None
        assert [j["id"] for j in client.get(f"/networks/{net['id']}/jobs").json()["jobs"]] == [
            job["id"]
        ]

        # The network is exactly at a checkpoint: its parameters are those of its
        # steps_trained full-batch momentum steps from the start, its history and last
        # gradients end at that step.
        network = client.get(f"/networks/{net['id']}").json()
        steps = network["steps_trained"]
        assert steps > 0
        history = client.get(f"/networks/{net['id']}/history").json()["costs"]
        assert [c["step"] for c in history] == list(range(1, steps + 1))
        assert client.get(f"/networks/{net['id']}/gradients").json()["step"] == steps
        saved = client.get(f"/networks/{net['id']}/parameters").json()["layers"]
        store = open_store(url)
        try:
            start = create_network(
                store.get_network(net["id"], "").network.spec,
                [np.array(layer["W"]) for layer in initial["layers"]],
                [np.array(layer["b"]) for layer in initial["layers"]],
            )
        finally:
            store.close()
        expected = train(start, np.array(XOR_X), np.array(XOR_Y), TrainOptions(epochs=steps))
        for layer, W in zip(saved, expected.network.W, strict=True):
            np.testing.assert_allclose(layer["W"], W, rtol=1e-12)

        # It loads and trains again, synchronously and as a job.
        assert client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X}).status_code == 200
        more = client.post(
            f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 3}
        )
        assert more.status_code == 200, more.text
        assert [c["step"] for c in more.json()["costs"]] == [steps + 1, steps + 2, steps + 3]
        # ... from the momentum the checkpoint kept, as if the run had never stopped.
        continued = train(start, np.array(XOR_X), np.array(XOR_Y), TrainOptions(epochs=steps + 3))
        np.testing.assert_allclose(
            [c["cost"] for c in more.json()["costs"]],
            [c.cost for c in continued.costs[-3:]],
            rtol=1e-12,
        )
        again = client.post(
            f"/networks/{net['id']}/jobs", json={"X": XOR_X, "Y": XOR_Y, "epochs": 5}
        )
        assert again.status_code == 202, again.text
        done = _poll(
            lambda: client.get(f"/jobs/{again.json()['id']}").json(),
            lambda j: j["status"] not in ("queued", "running"),
        )
        assert done["status"] == "succeeded"
        assert client.get(f"/networks/{net['id']}").json()["steps_trained"] == steps + 8
