"""What the end-to-end tests of interrupted jobs share: a job that exercises every random
choice (mini-batches, a shuffle seed, Adam and dropout), polling on state, and the check that
a job ended with exactly the parameters of a run that was never interrupted."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np

from model import TrainOptions, create_network, train
from service.store import open_store
from tests.support.waiting import poll

SPEC = {
    "layer_dims": [2, 8, 8, 1],
    "seed": 1,
    "hidden_activation": "tanh",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "dropout": {"keep_prob": [0.9, 0.8], "seed": 5},
}
X = [[0.0, 0.0, 1.0, 1.0, 0.5, 0.2], [0.0, 1.0, 0.0, 1.0, 0.5, 0.9]]
Y = [[0.0, 1.0, 1.0, 0.0, 1.0, 1.0]]
EPOCHS = 25_000
STEPS = EPOCHS * 2  # two mini-batches of 4 (and 2) examples per epoch
JOB = {"X": X, "Y": Y, "epochs": EPOCHS, "batch_size": 4, "shuffle_seed": 7}


def start_job(url: str, job: dict[str, Any] = JOB) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """A new network and a job on it; with the network's initial layers."""
    created = httpx.post(f"{url}/networks", json=SPEC)
    assert created.status_code == 201, created.text
    net = created.json()
    initial = httpx.get(f"{url}/networks/{net['id']}/parameters").json()["layers"]
    started = httpx.post(f"{url}/networks/{net['id']}/jobs", json=job)
    assert started.status_code == 202, started.text
    return net, started.json(), initial


def ended(url: str, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    job: dict[str, Any] = poll(
        lambda: httpx.get(f"{url}/jobs/{job_id}").json(),
        lambda j: j["status"] not in ("queued", "running"),
        timeout,
    )
    return job


def assert_uninterrupted(
    url: str, database_url: str, net: dict[str, Any], initial: Any, job: dict[str, Any] = JOB
) -> None:
    """The network trained exactly ``job``'s steps, each once, and holds bit for bit the
    parameters of an uninterrupted run from ``initial``: every mask and shuffle redrawn alike."""
    store = open_store(database_url)
    try:
        spec = store.get_meta(net["id"], "").spec
    finally:
        store.close()
    options = TrainOptions(
        epochs=job["epochs"], batch_size=job["batch_size"], shuffle_seed=job["shuffle_seed"]
    )
    steps = options.steps_for(len(job["X"][0]))
    network = httpx.get(f"{url}/networks/{net['id']}").json()
    assert network["steps_trained"] == steps
    history = httpx.get(f"{url}/networks/{net['id']}/history").json()["costs"]
    assert [c["step"] for c in history] == list(range(1, steps + 1))  # no gap, no repeat
    saved = httpx.get(f"{url}/networks/{net['id']}/parameters?encoding=base64").json()["layers"]
    start = create_network(
        spec,
        [np.array(layer["W"]) for layer in initial],
        [np.array(layer["b"]) for layer in initial],
    )
    expected = train(start, np.array(job["X"]), np.array(job["Y"]), options).network
    for layer, W, b in zip(saved, expected.W, expected.b, strict=True):
        got_W = np.frombuffer(base64.b64decode(layer["W"]["base64"]), "<f8").reshape(W.shape)
        got_b = np.frombuffer(base64.b64decode(layer["b"]["base64"]), "<f8").reshape(b.shape)
        np.testing.assert_array_equal(got_W, W)
        np.testing.assert_array_equal(got_b, b)
