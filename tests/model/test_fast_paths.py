"""The fast paths of model/ give the numbers of the plain ones: fused output activation and
cost, flat parameter buffers, relu masks and zeros, finiteness checks, Trainer.run.

Timings are not tested here (bench/ measures them); only that every shortcut is exact, or
within 1e-12 (float64) / 1e-5 (float32) where the order of the arithmetic differs.
"""

from __future__ import annotations

import numpy as np
import pytest

from model import OptimizerSpec, Trainer, TrainOptions, build_spec, create_network, train
from model.activations import _ZEROS_LIMIT, ACTIVATIONS
from model.checks import all_finite, check_finite
from model.errors import ModelError
from model.fast import FUSED_OUTPUTS, FlatLayout, StepBuffers, TrainState, forward_cost_into
from model.network import cost_of, forward_pass

from .helpers import assert_close, make_data

TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("output", "loss"), list(FUSED_OUTPUTS))
@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])
def test_fused_output_and_cost_equal_the_activation_and_the_loss(
    dtype: str, output: str, loss: str, scale: float
) -> None:
    n_L = 1 if output == "sigmoid" else 4
    spec = build_spec([3, n_L], output_activation=output, loss=loss, dtype=dtype, seed=2)
    rng = np.random.RandomState(5)
    m = 9
    # Large |z| makes confident columns, whose tiny losses must keep their precision.
    Z = (rng.randn(n_L, m) * scale).astype(dtype)
    _, Y = make_data(spec, m, seed=3)
    Y = Y.astype(dtype)
    buf = StepBuffers(spec, m)
    A = np.empty_like(Z)
    total = FUSED_OUTPUTS[(output, loss)](Z, Y, A, buf)
    np.testing.assert_array_equal(A, ACTIVATIONS[output].forward(Z, None))
    expected = cost_of(spec, [], A, Y, Z) * m
    assert total == pytest.approx(expected, rel=TOLERANCE[dtype], abs=0)


def test_fused_binary_cross_entropy_keeps_tiny_losses() -> None:
    # A confident, right answer: the loss is log1p(e^-40) ~ 4e-18, not 0 or rounding noise.
    spec = build_spec([1, 1], output_activation="sigmoid", seed=1)
    Z = np.array([[40.0, -40.0]])
    Y = np.array([[1.0, 0.0]])
    buf = StepBuffers(spec, 2)
    total = FUSED_OUTPUTS[("sigmoid", "binary_cross_entropy")](Z, Y, np.empty_like(Z), buf)
    assert total == pytest.approx(2 * np.log1p(np.exp(-40.0)), rel=1e-15)


def test_fused_categorical_cross_entropy_keeps_tiny_losses() -> None:
    spec = build_spec([1, 3], output_activation="softmax", seed=1)
    Z = np.array([[50.0], [0.0], [0.0]])
    Y = np.array([[1.0], [0.0], [0.0]])
    buf = StepBuffers(spec, 1)
    total = FUSED_OUTPUTS[("softmax", "categorical_cross_entropy")](Z, Y, np.empty_like(Z), buf)
    assert total == pytest.approx(np.log1p(2 * np.exp(-50.0)), rel=1e-15)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("activations", "loss", "l2_lambda"),
    [
        (["relu", "tanh", "sigmoid"], None, 0.0),
        (["leaky_relu", "relu", "softmax"], None, 0.7),
        (["tanh", "sigmoid", "linear"], None, 0.2),
        (["relu", "relu", "sigmoid"], "mean_squared_error", 0.0),
    ],
)
def test_forward_cost_into_equals_the_plain_forward_and_cost(
    dtype: str, activations: list[str], loss: str | None, l2_lambda: float
) -> None:
    spec = build_spec(
        [5, 4, 3, 2 if activations[-1] == "softmax" else 1],
        activations=activations,
        loss=loss,
        dtype=dtype,
        seed=4,
        l2_lambda=l2_lambda,
    )
    network = create_network(spec)
    X, Y = make_data(spec, 7, seed=2)
    X, Y = X.astype(dtype), Y.astype(dtype)
    state = TrainState.of(network)
    buf = StepBuffers(spec, 7)
    cost = forward_cost_into(state, spec, X, Y, buf)
    cache = forward_pass(spec, network.W, network.b, X)
    expected = cost_of(spec, network.W, cache.A[-1], Y, cache.Z[-1])
    assert cost == pytest.approx(expected, rel=TOLERANCE[dtype])
    for fast, plain in zip(buf.A, cache.A[1:], strict=True):
        assert_close(fast, plain, TOLERANCE[dtype])


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
def test_flat_state_holds_private_copies_in_the_course_layout(optimizer: str) -> None:
    spec = build_spec([3, 4, 2], seed=1, optimizer=OptimizerSpec(name=optimizer))
    network = create_network(spec)
    state = TrainState.of(network)
    layout = FlatLayout(spec)
    assert state.theta.shape == (layout.size,) == (3 * 4 + 4 * 2 + 4 + 2,)
    for copy, original in zip([*state.W, *state.b], [*network.W, *network.b], strict=True):
        np.testing.assert_array_equal(copy, original)
        assert copy.flags.c_contiguous
        assert not np.shares_memory(copy, original)
    assert set(state.state) == set(network.optimizer_state)
    # W first, then b: the L2 term's slice [:n_W] is exactly the weights.
    np.testing.assert_array_equal(
        state.theta[: layout.n_W], np.concatenate([w.ravel() for w in network.W])
    )
    state.W[0][0, 0] = 123.0  # views write through to the flat vector
    assert state.theta[0] == 123.0
    assert network.W[0][0, 0] != 123.0


def test_run_equals_steps_one_by_one() -> None:
    spec = build_spec([4, 5, 3], output_activation="softmax", seed=3, l2_lambda=0.1)
    X, Y = make_data(spec, 11, seed=1)
    options = TrainOptions(epochs=6, batch_size=4, shuffle_seed=2)
    one = Trainer(create_network(spec), X, Y, options)
    records = [one.step() for _ in range(3)]
    records += one.run()
    other = Trainer(create_network(spec), X, Y, options)
    assert other.run(2) == records[:2]
    assert other.run() == records[2:]
    assert other.run() == []
    a, b = one.result(), other.result()
    for x, y in zip([*a.network.W, *a.network.b], [*b.network.W, *b.network.b], strict=True):
        np.testing.assert_array_equal(x, y)


def test_train_returns_unshared_arrays() -> None:
    spec = build_spec([3, 2, 1], seed=1)
    X, Y = make_data(spec, 5)
    result = train(create_network(spec), X, Y, TrainOptions(epochs=2))
    arrays = [*result.network.W, *result.network.b]
    for i, a in enumerate(arrays):
        assert a.flags.owndata
        assert all(not np.shares_memory(a, b) for b in arrays[i + 1 :])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (64, 300)])
def test_relu_against_shared_zeros_equals_maximum_with_zero(
    dtype: type, shape: tuple[int, int]
) -> None:
    Z: np.ndarray = np.random.RandomState(0).randn(*shape).astype(dtype)
    Z[0, 0] = 0.0
    relu = ACTIVATIONS["relu"]
    A = relu.forward(Z, None)
    np.testing.assert_array_equal(A, np.maximum(Z, 0.0))
    A[...] = 7.0  # writing the answer never touches the shared zeros
    np.testing.assert_array_equal(relu.forward(Z, None), np.maximum(Z, 0.0))
    out = np.empty_like(Z)
    assert relu.forward(Z.T.copy().T, out) is out  # a non-contiguous input
    np.testing.assert_array_equal(out, np.maximum(Z, 0.0))


def test_relu_of_a_huge_array_falls_back_to_the_scalar_maximum() -> None:
    Z = np.full(_ZEROS_LIMIT + 1, -1.0).reshape(1, -1)
    np.testing.assert_array_equal(ACTIVATIONS["relu"].forward(Z, None), np.zeros_like(Z))


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_masks_equal_heaviside(name: str, dtype: type) -> None:
    Z: np.ndarray = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0]], dtype=dtype)
    dA: np.ndarray = np.array([[5.0, 5.0, 5.0, 5.0, 5.0]], dtype=dtype)
    mask = np.heaviside(Z, 0.0)
    if name == "leaky_relu":
        mask = np.maximum(mask, 0.01)
    expected = (mask * dA).astype(dtype)
    activation = ACTIVATIONS[name]
    A = activation.forward(Z, None)
    np.testing.assert_array_equal(activation.backward(dA, Z, A, None), expected)
    out = np.empty_like(Z)
    np.testing.assert_array_equal(activation.backward(dA, Z, A, out), expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_finite_is_exact(dtype: type) -> None:
    big = np.finfo(dtype).max
    assert all_finite(np.ones((3, 4), dtype))
    assert all_finite(np.full((2, 2), big, dtype))  # x . x overflows: checked exactly
    assert all_finite(np.array([[big, -big]], dtype))
    assert all_finite(np.arange(6).reshape(2, 3))
    for bad in (np.nan, np.inf, -np.inf):
        X: np.ndarray = np.ones((3, 4), dtype)
        X[2, 1] = bad
        assert not all_finite(X)
        assert not all_finite(X.T)  # not contiguous
        with pytest.raises(ModelError, match=r"first at row 2, column 1"):
            check_finite("X", X)
