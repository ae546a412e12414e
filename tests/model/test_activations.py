"""Activations (model.activations): each forward rule against its definition, each backward
rule against two-sided differences, precision, extreme inputs, and the errstate contract."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from decimal import Decimal, localcontext

import numpy as np
import pytest
from numpy.typing import NDArray

from model import (
    ACTIVATION_NAMES,
    Trainer,
    TrainOptions,
    build_spec,
    compute_gradients,
    create_network,
    evaluate,
    gradient_check,
    predict,
)
from model.activations import ACTIVATIONS, LEAKY_SLOPE, zeros_like

from . import oracle
from .helpers import PAIRS, labels, output_units

Array = NDArray[np.floating]
F = NDArray[np.float64]
ELEMENTWISE = [name for name in ACTIVATION_NAMES if name != "softmax"]


def forward(name: str, Z: Array) -> Array:
    out = np.empty_like(Z)
    ACTIVATIONS[name].forward(Z, out)
    return out


def backward(name: str, dA: Array, A: Array) -> Array:
    """dZ from dA, the way the engine calls it: in place, with a scratch full of garbage."""
    dZ = dA.copy()
    scratch = np.full_like(A, np.nan)
    ACTIVATIONS[name].backward(dZ, A, scratch)
    return dZ


def grid() -> F:
    """(4, 6) moderate pre-activations, none at relu's kink."""
    return np.linspace(-3, 3, 24).reshape(4, 6) + 0.05


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_forward_is_the_definition(name: str, dtype: type) -> None:
    Z: Array = grid().astype(dtype)
    Z_before = Z.copy()
    A = forward(name, Z)
    assert A.dtype == dtype
    np.testing.assert_array_equal(Z, Z_before)  # the input is read, not written
    expected = oracle.G[name](Z.astype(np.float64))
    tolerance = 1e-15 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(A, expected, rtol=tolerance, atol=tolerance)


def test_the_piecewise_ones_exactly() -> None:
    Z = np.array([[-2.0, -0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(forward("relu", Z), [[0, 0, 0, 3]])
    np.testing.assert_array_equal(forward("leaky_relu", Z), [[-2 * 0.01, 0, 0, 3]])
    np.testing.assert_array_equal(forward("linear", Z), Z)
    assert LEAKY_SLOPE == 0.01  # the oracle's slope


def decimal_sigmoid(z: float) -> float:
    """1 / (1 + e^-z) in 60-digit decimal arithmetic, rounded once to a float."""
    with localcontext() as context:
        context.prec = 60
        return float(1 / (1 + (-Decimal(z)).exp()))


@pytest.mark.parametrize("z", [-700.0, -300.0, -30.0, -5.0, -0.5, 0.0, 0.5, 5.0, 30.0])
def test_sigmoid_keeps_full_relative_precision(z: float) -> None:
    # 1 / (1 + e^-z): no 1 - (1 - tiny) cancellation, so sigmoid(-700) = 9.86e-305 is right
    # to the last bits, not merely tiny.
    with np.errstate(over="ignore"):
        a = forward("sigmoid", np.array([[z]]))[0, 0]
    assert a == pytest.approx(decimal_sigmoid(z), rel=4.5e-16)
    assert a == pytest.approx(1 / (1 + math.exp(-z)), rel=4.5e-16)


def test_float32_sigmoid_keeps_its_relative_precision() -> None:
    Z = np.array([[-87.0, -30.0, -5.0, 5.0]], dtype=np.float32)
    A = forward("sigmoid", Z)
    expected = [decimal_sigmoid(float(z)) for z in Z[0]]
    np.testing.assert_allclose(A[0], expected, rtol=3e-7)


def test_sigmoid_saturates_to_exactly_0_and_1() -> None:
    with np.errstate(over="ignore"):
        A = forward("sigmoid", np.array([[-800.0, -746.0, 40.0, 800.0]]))
    np.testing.assert_array_equal(A, [[0.0, 0.0, 1.0, 1.0]])  # sigmoid(40) rounds to 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_backward_is_the_derivative(name: str, dtype: type) -> None:
    Z = grid()
    h = 1e-6
    numeric = (forward(name, Z + h) - forward(name, Z - h)) / (2 * h)
    dA: F = np.random.RandomState(0).randn(*Z.shape)
    Zc: Array = Z.astype(dtype)
    dAc: Array = dA.astype(dtype)
    A = forward(name, Zc)
    A_before = A.copy()
    dZ = backward(name, dAc, A)
    assert dZ.dtype == dtype
    np.testing.assert_array_equal(A, A_before)
    tolerance = 1e-7 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(dZ, dA * numeric, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dZ, oracle.g_backward(name, dA, Z), rtol=tolerance, atol=tolerance)


def test_the_derivative_at_the_kink_is_the_courses() -> None:
    # relu'(0) = 0 (as the course's relu_backward: dZ[Z <= 0] = 0); leaky_relu'(0) = slope.
    Z = np.array([[-2.0, 0.0, 3.0]])
    dA = np.array([[5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(backward("relu", dA, forward("relu", Z)), [[0, 0, 5]])
    np.testing.assert_array_equal(
        backward("leaky_relu", dA, forward("leaky_relu", Z)), [[0.05, 0.05, 5]]
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_backward_is_the_jacobian_vector_product(dtype: type) -> None:
    # Column by column, dZ_j = d/dz_j sum_k dA_k softmax(z)_k: two-sided differences.
    rng = np.random.RandomState(1)
    Z, dA = rng.randn(4, 5), rng.randn(4, 5)
    h = 1e-6
    numeric = np.empty_like(Z)
    for j in range(4):
        e = np.zeros_like(Z)
        e[j] = h
        plus = (dA * forward("softmax", Z + e)).sum(axis=0)
        minus = (dA * forward("softmax", Z - e)).sum(axis=0)
        numeric[j] = (plus - minus) / (2 * h)
    dZ = backward("softmax", dA.astype(dtype), forward("softmax", Z.astype(dtype)))
    assert dZ.dtype == dtype
    tolerance = 1e-8 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(dZ, numeric, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dZ, oracle.g_backward("softmax", dA, Z), rtol=tolerance, atol=1e-7)


def test_softmax_columns_sum_to_one_at_extremes() -> None:
    Z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 0.0], [999.0, -1000.0, 0.0]])
    A = forward("softmax", Z)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=1e-15)
    e = math.exp(-1)
    np.testing.assert_allclose(A[:, 0], [1 / (1 + e), 0, e / (1 + e)], rtol=1e-15)
    np.testing.assert_array_equal(A[:, 1], 1 / 3)  # tied columns: exactly 1/n
    np.testing.assert_array_equal(A[:, 2], 1 / 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_with_tied_entries(dtype: type) -> None:
    # Ties at the maximum share it; a column of equal logits is uniform whatever their size.
    Z: Array = np.array(
        [[5.0, 7.0, -3.0], [5.0, 7.0, -3.0], [1.0, 7.0, -3.0], [5.0, 7.0, -3.0]], dtype
    )
    A = forward("softmax", Z)
    np.testing.assert_array_equal(A[:, 1], 0.25)
    np.testing.assert_array_equal(A[:, 2], 0.25)
    assert A[0, 0] == A[1, 0] == A[3, 0]
    np.testing.assert_allclose(A[:, 0].sum(), 1.0, rtol=1e-6)
    dZ = backward("softmax", np.ones_like(Z), A)  # dA = 1: softmax sums to 1, so dZ = 0
    np.testing.assert_allclose(dZ, 0.0, atol=1e-7)


EXTREME = np.array([[-1000.0, -800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0, 1000.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_extreme_inputs_are_finite_without_warnings_under_the_callers_errstate(
    name: str, dtype: type
) -> None:
    # The engine's callers run activations with overflow warnings off (sigmoid's e^-z is
    # inf for z < -709, or -88 in float32, and 1 / (1 + inf) = 0 is the right limit).
    Z: Array = np.vstack([EXTREME, -EXTREME]).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any other warning fails the test
        with np.errstate(over="ignore"):
            A = forward(name, Z)
            dZ = backward(name, np.ones_like(Z), A)
    assert A.dtype == dZ.dtype == dtype
    assert np.isfinite(A).all()
    assert np.isfinite(dZ).all()


def test_only_sigmoid_leans_on_the_errstate() -> None:
    Z = np.array([[-800.0, 800.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ACTIVATION_NAMES:
            if name != "sigmoid":
                A = forward(name, np.vstack([Z, -Z]))
                backward(name, np.ones_like(A), A)


PUBLIC_CALLS: dict[str, Callable[..., object]] = {
    "predict": lambda net, X, Y: predict(net, X),
    "evaluate": lambda net, X, Y: evaluate(net, X, Y),
    "compute_gradients": lambda net, X, Y: compute_gradients(net, X, Y, intermediate=True),
    "gradient_check": lambda net, X, Y: gradient_check(net, X, Y),
    "Trainer": lambda net, X, Y: Trainer(net, X, Y, TrainOptions(epochs=2)).run(),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("call", list(PUBLIC_CALLS))
@pytest.mark.parametrize("hidden", ["linear", "sigmoid"])
@pytest.mark.parametrize(("output", "loss"), PAIRS)
def test_z_of_1000_through_the_public_api_warns_nothing_and_stays_finite(
    output: str, loss: str, hidden: str, call: str, dtype: str
) -> None:
    # W1 = ones and b1 = 0, so Z[1] = +-1000 and +-800 in every unit; with a linear hidden
    # layer the output layer sees Z[2] up to +-2000 too.
    spec = build_spec(
        [1, 5, output_units(output, loss, 2)],
        activations=[hidden, output],
        loss=loss,
        dtype=dtype,
    )
    W2 = np.tile([[1.0, -1.0, 0.5, 0.0, 2.0]], (spec.n_L, 1))
    W2[0] *= -1
    network = create_network(
        spec, [np.ones((5, 1)), W2], [np.zeros((5, 1)), np.zeros((spec.n_L, 1))]
    )
    X = np.array([[-1000.0, 1000.0, -800.0, 800.0]])
    Y = labels(spec, 4, np.random.RandomState(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = PUBLIC_CALLS[call](network, X, Y)
    for value in _arrays_and_numbers(result):
        assert np.isfinite(value).all(), (call, value)


def _arrays_and_numbers(result: object) -> list[NDArray[np.generic]]:
    """Every array and number in a result (tuples, lists, dataclasses), for finiteness."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, int | float):
        return [np.array(result)]
    if isinstance(result, tuple | list):
        return [a for item in result for a in _arrays_and_numbers(item)]
    if hasattr(result, "__dataclass_fields__"):
        return [
            a
            for key in result.__dataclass_fields__
            for a in _arrays_and_numbers(getattr(result, key))
        ]
    return []


def test_zeros_like_is_read_only_and_survives_many_shapes() -> None:
    Z = np.ones((3, 4), np.float32)
    zeros = zeros_like(Z)
    assert zeros.shape == (3, 4)
    assert zeros.dtype == np.float32
    assert not zeros.flags.writeable
    assert not zeros.any()
    assert zeros_like(Z) is zeros  # shared per shape and dtype
    for m in range(1, 80):  # more shapes than the cache keeps
        assert not zeros_like(np.ones((2, m))).any()
    assert not zeros_like(Z).any()
