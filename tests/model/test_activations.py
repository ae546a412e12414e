"""Activations and losses: values, derivatives, and numerical stability."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from model import ACTIVATION_NAMES, build_spec, compute_cost, compute_gradients, create_network
from model.activations import ACTIVATIONS, LEAKY_SLOPE
from model.losses import LOSSES

from .helpers import make_data

EXTREME = np.array([[-1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_extreme_inputs_give_finite_results_without_warnings(name: str, dtype: type) -> None:
    Z: np.ndarray = np.vstack([EXTREME, -EXTREME]).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy warning fails the test
        A = ACTIVATIONS[name].forward(Z, None)
        dZ = ACTIVATIONS[name].backward(np.ones_like(Z), Z, A, None)
    assert A.dtype == dtype
    assert dZ.dtype == dtype
    assert np.isfinite(A).all()
    assert np.isfinite(dZ).all()


def test_sigmoid_values_and_saturation() -> None:
    A = ACTIVATIONS["sigmoid"].forward(EXTREME, None)
    np.testing.assert_allclose(
        A, 1 / (1 + np.exp(-np.clip(EXTREME, -700, 700))), rtol=1e-15, atol=1e-300
    )
    assert A[0, 0] == 0.0
    assert A[0, -1] == 1.0
    # Small outputs keep their relative precision (no 1 - (1 - tiny) cancellation).
    assert A[0, 1] == pytest.approx(math.exp(-40) / (1 + math.exp(-40)), rel=1e-15)


def test_softmax_columns_sum_to_one_at_extremes() -> None:
    Z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 0.0], [999.0, -1000.0, 0.0]])
    A = ACTIVATIONS["softmax"].forward(Z, None)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=1e-15)
    np.testing.assert_allclose(
        A[:, 0], [1 / (1 + math.exp(-1)), 0, math.exp(-1) / (1 + math.exp(-1))]
    )
    np.testing.assert_allclose(A[:, 1], 1 / 3)


def test_relu_family_derivative_at_zero_and_slopes() -> None:
    Z = np.array([[-2.0, 0.0, 3.0]])
    dA = np.array([[5.0, 5.0, 5.0]])
    relu, leaky = ACTIVATIONS["relu"], ACTIVATIONS["leaky_relu"]
    np.testing.assert_array_equal(relu.forward(Z, None), [[0, 0, 3]])
    np.testing.assert_array_equal(relu.backward(dA, Z, relu.forward(Z, None), None), [[0, 0, 5]])
    np.testing.assert_allclose(leaky.forward(Z, None), [[-2 * LEAKY_SLOPE, 0, 3]])
    np.testing.assert_allclose(
        leaky.backward(dA, Z, leaky.forward(Z, None), None), [[5 * LEAKY_SLOPE, 5 * LEAKY_SLOPE, 5]]
    )


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_out_buffer_gives_the_same_result(name: str) -> None:
    rng = np.random.RandomState(0)
    Z, dA = rng.randn(3, 5), rng.randn(3, 5)
    activation = ACTIVATIONS[name]
    A = activation.forward(Z, None)
    out = np.empty_like(Z)
    assert activation.forward(Z, out) is out
    np.testing.assert_array_equal(out, A)
    dZ = activation.backward(dA, Z, A, None)
    out2 = np.empty_like(Z)
    assert activation.backward(dA, Z, A, out2) is out2
    np.testing.assert_array_equal(out2, dZ)


@pytest.mark.parametrize("name", [n for n in ACTIVATION_NAMES if n != "softmax"])
def test_elementwise_derivatives_against_finite_differences(name: str) -> None:
    Z = np.linspace(-3, 3, 13).reshape(1, -1) + 0.05  # away from the relu kink at 0
    activation = ACTIVATIONS[name]
    h = 1e-6
    numeric = (activation.forward(Z + h, None) - activation.forward(Z - h, None)) / (2 * h)
    analytic = activation.backward(np.ones_like(Z), Z, activation.forward(Z, None), None)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_softmax_backward_is_the_jacobian_vector_product() -> None:
    rng = np.random.RandomState(1)
    z, dA = rng.randn(4, 1), rng.randn(4, 1)
    a = ACTIVATIONS["softmax"].forward(z, None)
    jacobian = np.diagflat(a) - a @ a.T  # d a_i / d z_j = a_i (delta_ij - a_j)
    np.testing.assert_allclose(
        ACTIVATIONS["softmax"].backward(dA, z, a, None), jacobian.T @ dA, rtol=1e-12
    )


@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("sigmoid", "binary_cross_entropy"),
        ("softmax", "categorical_cross_entropy"),
        ("sigmoid", "mean_squared_error"),
        ("softmax", "binary_cross_entropy"),
        ("sigmoid", "categorical_cross_entropy"),
    ],
)
def test_predictions_of_exactly_0_or_1_give_finite_costs(output: str, loss: str) -> None:
    spec = build_spec([2, 3], output_activation=output, loss=loss)
    network = create_network(spec)
    AL = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    Y = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # confidently wrong
    cost = compute_cost(network, AL, Y)
    assert math.isfinite(cost)
    if loss != "mean_squared_error":
        assert cost > 10  # clipped at eps: about -log(2.2e-16) = 36 per wrong column
    gradient = LOSSES[loss].gradient(AL, Y)
    assert np.isfinite(gradient).all()


def test_stable_bce_from_logits_is_exact_where_A_saturates() -> None:
    # sigmoid(40) rounds to 1.0 in float64, yet -log(1 - sigmoid(40)) is 40 + log1p(e^-40).
    spec = build_spec([1, 1])
    network = create_network(spec, W=[[[1.0]]], b=[[[0.0]]])
    cost, _, grads = compute_gradients(network, [[40.0, -1000.0]], [[0.0, 1.0]])
    expected = (40 + math.log1p(math.exp(-40)) + 1000) / 2
    assert cost == pytest.approx(expected, rel=1e-15)
    assert np.isfinite(grads.dW[0]).all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("activations", "loss"),
    [
        (["relu", "relu", "sigmoid"], None),
        (["tanh", "leaky_relu", "softmax"], None),
        (["sigmoid", "linear", "linear"], None),
        (["relu", "tanh", "sigmoid"], "mean_squared_error"),
        (["leaky_relu", "sigmoid", "softmax"], "binary_cross_entropy"),
    ],
)
def test_large_inputs_give_finite_cost_and_gradients(
    activations: list[str], loss: str | None, dtype: str
) -> None:
    spec = build_spec([4, 5, 3, 3], activations=activations, loss=loss, dtype=dtype, seed=3)
    network = create_network(spec)
    X, Y = make_data(spec, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cost, cache, grads = compute_gradients(network, 1e4 * X, Y)
    assert math.isfinite(cost)
    for a in [*cache.A, *grads.dW, *grads.db]:
        assert np.isfinite(a).all()
