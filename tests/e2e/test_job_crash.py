"""Through real servers on the embedded store: a server SIGKILLed in the middle of a training
job loses nothing but the steps since the job's last checkpoint. The next server resumes the
job from that checkpoint, and it ends with exactly the parameters of a run that was never
interrupted (mini-batches, a shuffle seed, Adam and dropout included). A job whose process
keeps dying ends failed after the configured number of restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from model import TrainOptions, create_network, train
from service.store import open_store
from tests.support.server import ServerProcess

SPEC = {
    "layer_dims": [2, 8, 8, 1],
    "seed": 1,
    "hidden_activation": "tanh",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "dropout": {"keep_prob": [0.9, 0.8], "seed": 5},
}
X = [[0.0, 0.0, 1.0, 1.0, 0.5, 0.2], [0.0, 1.0, 0.0, 1.0, 0.5, 0.9]]
Y = [[0.0, 1.0, 1.0, 0.0, 1.0, 1.0]]
OPTIONS = TrainOptions(epochs=25_000, batch_size=4, shuffle_seed=7)  # 50,000 steps
JOB = {"X": X, "Y": Y, "epochs": 25_000, "batch_size": 4, "shuffle_seed": 7}


def _poll(read: Any, until: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not until(value := read()):
        assert time.monotonic() < deadline, f"timed out; last reading: {value}"
        time.sleep(0.05)
    return value


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    return {"BACKPROP_DATABASE_URL": url, "BACKPROP_CHECKPOINT_SECONDS": "0.3", **extra}


def _start(server: ServerProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    created = httpx.post(f"{server.url}/networks", json=SPEC)
    assert created.status_code == 201, created.text
    net = created.json()
    started = httpx.post(f"{server.url}/networks/{net['id']}/jobs", json=JOB)
    assert started.status_code == 202, started.text
    return net, started.json()


def _killed_after_two_checkpoints(server: ServerProcess, net: dict[str, Any]) -> None:
    try:
        _poll(
            lambda: httpx.get(f"{server.url}/networks/{net['id']}").json(),
            lambda n: n["version"] >= 3,
        )
    finally:
        server.kill()


def test_a_killed_servers_job_resumes_and_ends_as_if_never_interrupted(tmp_path: Path) -> None:
    env = _env(tmp_path)
    server = ServerProcess(env=env).start()
    net, job = _start(server)
    initial = httpx.get(f"{server.url}/networks/{net['id']}/parameters").json()["layers"]
    _killed_after_two_checkpoints(server, net)

    store = open_store(env["BACKPROP_DATABASE_URL"])
    try:
        at_kill = store.get_job(job["id"], "")
        spec = store.get_meta(net["id"], "").spec
    finally:
        store.close()
    assert at_kill.status == "running"
    assert 0 < at_kill.checkpoint_step < at_kill.total_steps

    with ServerProcess(env=env) as server, httpx.Client(base_url=server.url) as client:
        done = _poll(
            lambda: client.get(f"/jobs/{job['id']}").json(),
            lambda j: j["status"] not in ("queued", "running"),
        )
        assert (done["status"], done["step"], done["restarts"]) == ("succeeded", 50_000, 1), done
        network = client.get(f"/networks/{net['id']}").json()
        assert network["steps_trained"] == 50_000
        history = client.get(f"/networks/{net['id']}/history").json()["costs"]
        assert [c["step"] for c in history] == list(range(1, 50_001))  # no gap, no repeat
        saved = client.get(f"/networks/{net['id']}/parameters?encoding=base64").json()["layers"]

    start = create_network(
        spec,
        [np.array(layer["W"]) for layer in initial],
        [np.array(layer["b"]) for layer in initial],
    )
    expected = train(start, np.array(X), np.array(Y), OPTIONS).network
    for layer, W, b in zip(saved, expected.W, expected.b, strict=True):
        import base64

        got_W = np.frombuffer(base64.b64decode(layer["W"]["base64"]), "<f8").reshape(W.shape)
        got_b = np.frombuffer(base64.b64decode(layer["b"]["base64"]), "<f8").reshape(b.shape)
        np.testing.assert_array_equal(got_W, W)  # bit for bit: every mask and shuffle redrawn alike
        np.testing.assert_array_equal(got_b, b)


def test_a_job_that_keeps_killing_its_process_ends_failed(tmp_path: Path) -> None:
    env = _env(tmp_path, BACKPROP_MAX_JOB_RESTARTS="1")
    server = ServerProcess(env=env).start()
    net, job = _start(server)
    _killed_after_two_checkpoints(server, net)
    server = ServerProcess(env=env).start()  # it resumes (restart 1) ...
    _poll(lambda: httpx.get(f"{server.url}/jobs/{job['id']}").json(), lambda j: j["restarts"] == 1)
    version = httpx.get(f"{server.url}/networks/{net['id']}").json()["version"]
    try:
        _poll(
            lambda: httpx.get(f"{server.url}/networks/{net['id']}").json(),
            lambda n: n["version"] > version,
        )
    finally:
        server.kill()  # ... and dies again
    with ServerProcess(env=env) as server:
        failed = _poll(
            lambda: httpx.get(f"{server.url}/jobs/{job['id']}").json(),
            lambda j: j["status"] == "failed",
        )
        assert "interrupted 1 times" in failed["error"]
        network = httpx.get(f"{server.url}/networks/{net['id']}").json()
        assert 0 < network["steps_trained"] < 50_000  # it keeps its last checkpoint
        again = httpx.post(f"{server.url}/networks/{net['id']}/train", json={**JOB, "epochs": 1})
        assert again.status_code == 200, again.text  # the network is free again
