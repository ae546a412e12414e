"""Shared helpers for the model tests: the spec's output pairs, data, networks, comparisons."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model import ACTIVATION_NAMES, LOSS_NAMES, Network, NetworkSpec, create_network

Array = NDArray[np.floating]

# Every (output activation, loss) pair the spec allows: any output with mean squared error,
# the cross-entropies with probability outputs.
PAIRS = [
    (output, loss)
    for output in ACTIVATION_NAMES
    for loss in LOSS_NAMES
    if loss == "mean_squared_error" or output in ("sigmoid", "softmax")
]
CANONICAL = [
    ("sigmoid", "binary_cross_entropy"),
    ("softmax", "categorical_cross_entropy"),
    ("linear", "mean_squared_error"),
]
HIDDEN = [name for name in ACTIVATION_NAMES if name != "softmax"]


def output_units(output: str, loss: str, n: int = 2) -> int:
    """n, or at least 2 where the spec needs classes (softmax, categorical cross-entropy)."""
    return max(n, 2) if output == "softmax" or loss == "categorical_cross_entropy" else n


def labels(spec: NetworkSpec, m: int, rng: np.random.RandomState) -> NDArray[np.float64]:
    """Labels in the range of the spec's loss: 0/1, one-hot columns, or real numbers."""
    if spec.loss == "binary_cross_entropy":
        return (rng.rand(spec.n_L, m) > 0.5).astype(np.float64)
    if spec.loss == "categorical_cross_entropy":
        Y = np.zeros((spec.n_L, m))
        Y[rng.randint(0, spec.n_L, size=m), np.arange(m)] = 1.0
        return Y
    return rng.randn(spec.n_L, m)


def make_data(
    spec: NetworkSpec, m: int, seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """X (n_x, m) standard normal and matching labels, float64."""
    rng = np.random.RandomState(seed)
    return rng.randn(spec.n_x, m), labels(spec, m, rng)


def with_biases(spec: NetworkSpec, seed: int = 0, scale: float = 0.3) -> Network:
    """The spec's initial network with nonzero biases, so that no unit sits at a relu kink
    or a symmetric point; moderate inputs give moderate pre-activations."""
    rng = np.random.RandomState(seed)
    b = [scale * rng.randn(n, 1) for n in spec.layer_dims[1:]]
    return create_network(spec, W=create_network(spec).W, b=b)


def assert_close(actual: ArrayLike, expected: ArrayLike, rtol: float) -> None:
    """Normwise relative closeness, ||actual - expected|| <= rtol * ||expected||, in float64.

    Normwise rather than entrywise: an entry that is a sum with cancellation (close to 0)
    legitimately differs in relative terms when the order of operations differs.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, (a.shape, e.shape)
    error, scale = float(np.linalg.norm(a - e)), float(np.linalg.norm(e))
    assert error <= rtol * scale + 1e-300, (error, scale)


def assert_all_close(actual: list[Array], expected: list[NDArray[np.float64]], rtol: float) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert_close(a, e, rtol)


def assert_networks_equal(actual: Network, expected: Network) -> None:
    """Bit for bit the same state: spec, counters, parameters and moments with their dtypes."""
    assert actual.spec == expected.spec
    assert (actual.steps_trained, actual.optimizer_t) == (
        expected.steps_trained,
        expected.optimizer_t,
    )
    for a, e in ((actual.theta, expected.theta), (actual.moments, expected.moments)):
        assert a.dtype == e.dtype == expected.spec.np_dtype
        assert a.shape == e.shape
        assert a.tobytes() == e.tobytes()
