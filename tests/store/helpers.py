"""Networks and updates for the store tests, made by the real engine."""

from __future__ import annotations

import uuid

import numpy as np

from model import Network, OptimizerSpec, Trainer, TrainOptions, build_spec, create_network
from service.store import JobCheckpoint, LastGradients, NetworkRecord, Update

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


def training_update(
    record: NetworkRecord, epochs: int = 1, job: tuple[str, int] | None = None
) -> Update:
    """``epochs`` full-batch XOR steps from ``record``, as /train (or attempt ``job`` = (id,
    attempt) of a job) commits them."""
    trainer = Trainer(record.network, XOR_X, XOR_Y, TrainOptions(epochs=epochs))
    costs = trainer.run()
    last, grad = costs[-1], trainer.gradients
    assert grad is not None
    checkpoint = (
        None if job is None else JobCheckpoint(job[0], job[1], trainer.steps_done, last.cost)
    )
    return Update(
        trainer.network,
        [(c.step, c.cost) for c in costs],
        LastGradients(record.meta.version + 1, last.step, last.cost, grad),
        job=checkpoint,
    )


def assert_same_network(actual: Network, expected: Network) -> None:
    assert actual.spec == expected.spec
    assert actual.steps_trained == expected.steps_trained
    assert actual.optimizer_t == expected.optimizer_t
    assert actual.theta.dtype == expected.theta.dtype
    np.testing.assert_array_equal(actual.theta, expected.theta)
    np.testing.assert_array_equal(actual.moments, expected.moments)
