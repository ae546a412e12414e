"""Networks and updates for the store tests, made by the real engine."""

from __future__ import annotations

import uuid

import numpy as np

from model import Network, OptimizerSpec, TrainOptions, build_spec, create_network, train
from service.store import NetworkRecord, Update
from service.updates import training_update as commit_of

XOR_X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
XOR_Y = np.array([[0.0, 1.0, 1.0, 0.0]])


def new_id() -> str:
    return uuid.uuid4().hex


def new_network(seed: int = 1, optimizer: str = "adam") -> Network:
    spec = build_spec(
        [2, 4, 1],
        hidden_activation="tanh",
        seed=seed,
        optimizer=OptimizerSpec(name=optimizer, learning_rate=0.1),
    )
    return create_network(spec)


def training_update(record: NetworkRecord, epochs: int = 1, job_id: str | None = None) -> Update:
    """``epochs`` full-batch XOR steps from ``record``, as /train (or a job) commits them."""
    result = train(record.network, XOR_X, XOR_Y, TrainOptions(epochs=epochs))
    return commit_of(result, record.meta.version, job_id=job_id)


def assert_same_network(actual: Network, expected: Network) -> None:
    assert actual.spec == expected.spec
    assert actual.steps_trained == expected.steps_trained
    assert actual.optimizer_t == expected.optimizer_t
    for got, want in zip([*actual.W, *actual.b], [*expected.W, *expected.b], strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert actual.optimizer_state.keys() == expected.optimizer_state.keys()
    for key, values in expected.optimizer_state.items():
        for got, want in zip(actual.optimizer_state[key], values, strict=True):
            np.testing.assert_array_equal(got, want)
