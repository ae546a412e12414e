"""Shared helpers for the model tests: data, the plain (oracle) training loop, comparisons."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from model import (
    Gradients,
    Network,
    NetworkSpec,
    StepRecord,
    TrainOptions,
    compute_gradients,
    update_parameters,
)
from model.training import epoch_batches

Array = NDArray[np.floating]


def labels(spec: NetworkSpec, m: int, rng: np.random.RandomState) -> Array:
    """Labels in the range of the spec's loss: 0/1, one-hot columns, or real numbers."""
    if spec.loss == "binary_cross_entropy":
        return (rng.rand(spec.n_L, m) > 0.5).astype(np.float64)
    if spec.loss == "categorical_cross_entropy":
        Y = np.zeros((spec.n_L, m))
        Y[rng.randint(0, spec.n_L, size=m), np.arange(m)] = 1.0
        return Y
    return rng.randn(spec.n_L, m)


def make_data(spec: NetworkSpec, m: int, seed: int = 0) -> tuple[Array, Array]:
    """X (n_x, m) standard normal and matching labels, float64."""
    rng = np.random.RandomState(seed)
    return rng.randn(spec.n_x, m), labels(spec, m, rng)


def plain_train(
    network: Network, X: Array, Y: Array, options: TrainOptions
) -> tuple[Network, list[StepRecord], Gradients | None]:
    """The oracle: compute_gradients + update_parameters, batch by batch, allocating freely."""
    lr = options.learning_rate
    costs: list[StepRecord] = []
    grads: Gradients | None = None
    m = X.shape[1]
    rng = np.random.RandomState(options.shuffle_seed)
    for _ in range(options.epochs):
        if options.batch_size is None:
            batches = [np.arange(m)]
        else:
            batches = epoch_batches(m, options.batch_size, rng)
        for columns in batches:
            cost, _, grads = compute_gradients(network, X[:, columns], Y[:, columns])
            network = update_parameters(network, grads, lr)
            costs.append(StepRecord(network.steps_trained, cost))
    return network, costs, grads


def assert_close(actual: Array, expected: Array, rtol: float) -> None:
    """Normwise relative closeness, ||actual - expected|| <= rtol * ||expected||.

    Normwise rather than entrywise: an entry that is a sum with cancellation (close to
    0) legitimately differs in relative terms when the order of operations differs.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    scale = float(np.linalg.norm(expected.astype(np.float64)))
    error = float(np.linalg.norm(actual.astype(np.float64) - expected.astype(np.float64)))
    assert error <= rtol * scale + 1e-300, (error, scale)


def assert_networks_close(actual: Network, expected: Network, rtol: float) -> None:
    """Same spec and step counts; parameters and optimizer state close."""
    assert actual.spec == expected.spec
    assert actual.steps_trained == expected.steps_trained
    assert actual.optimizer_t == expected.optimizer_t
    for a, e in zip([*actual.W, *actual.b], [*expected.W, *expected.b], strict=True):
        assert_close(a, e, rtol)
    assert actual.optimizer_state.keys() == expected.optimizer_state.keys()
    for key, values in actual.optimizer_state.items():
        for a, e in zip(values, expected.optimizer_state[key], strict=True):
            assert_close(a, e, rtol)


def assert_networks_equal(actual: Network, expected: Network) -> None:
    """Bit-for-bit equal networks (spec, parameters, optimizer state, counters)."""
    assert actual.spec == expected.spec
    assert actual.steps_trained == expected.steps_trained
    assert actual.optimizer_t == expected.optimizer_t
    for a, e in zip([*actual.W, *actual.b], [*expected.W, *expected.b], strict=True):
        assert a.dtype == e.dtype
        np.testing.assert_array_equal(a, e)
    assert actual.optimizer_state.keys() == expected.optimizer_state.keys()
    for key, values in actual.optimizer_state.items():
        for a, e in zip(values, expected.optimizer_state[key], strict=True):
            assert a.dtype == e.dtype
            np.testing.assert_array_equal(a, e)
