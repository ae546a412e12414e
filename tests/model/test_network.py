"""Forward, cost and backward: worked examples by hand, fused vs general, shapes, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import (
    OptimizerSpec,
    TrainOptions,
    build_spec,
    compute_cost,
    compute_gradients,
    create_network,
    forward,
    replace_parameters,
    train,
    update_parameters,
)
from model.activations import ACTIVATIONS
from model.losses import LOSSES
from model.network import backward_pass, forward_pass

from .helpers import make_data


def test_logistic_regression_by_hand() -> None:
    # One sigmoid unit, two features, two examples (columns):
    #   x1 = (1, 0), x2 = (2, 1);  W = [0, ln 3], b = 0;  Y = [1, 0]
    #   Z = W X + b = [0*1 + ln3*0, 0*2 + ln3*1] = [0, ln 3]
    #   A = sigmoid(Z) = [1/2, 1/(1 + 1/3)] = [1/2, 3/4]
    #   cost = -(1/2) [1*ln(1/2) + (1-0)*ln(1 - 3/4)] = (ln 2 + ln 4)/2 = 1.5 ln 2
    #   dZ = A - Y = [-1/2, 3/4]
    #   dW = (1/2) dZ X^T = (1/2) [-1/2*1 + 3/4*2, -1/2*0 + 3/4*1] = [1/2, 3/8]
    #   db = (1/2) (-1/2 + 3/4) = 1/8
    # One gradient-descent step with learning rate 1:
    #   W = [0 - 1/2, ln 3 - 3/8],  b = -1/8
    spec = build_spec([2, 1], output_activation="sigmoid")
    network = create_network(spec, W=[[[0.0, math.log(3)]]], b=[[[0.0]]])
    X = np.array([[1.0, 2.0], [0.0, 1.0]])
    Y = np.array([[1.0, 0.0]])
    cost, cache, grads = compute_gradients(network, X, Y)
    np.testing.assert_allclose(cache.Z[0], [[0.0, math.log(3)]], rtol=1e-15)
    np.testing.assert_allclose(cache.A[1], [[0.5, 0.75]], rtol=1e-15)
    assert cost == pytest.approx(1.5 * math.log(2), rel=1e-15)
    np.testing.assert_allclose(grads.dW[0], [[0.5, 0.375]], rtol=1e-15)
    np.testing.assert_allclose(grads.db[0], [[0.125]], rtol=1e-15)
    updated = update_parameters(network, grads, learning_rate=1.0)
    np.testing.assert_allclose(updated.W[0], [[-0.5, math.log(3) - 0.375]], rtol=1e-15)
    np.testing.assert_allclose(updated.b[0], [[-0.125]], rtol=1e-15)
    assert updated.steps_trained == 1


def test_two_layer_network_by_hand() -> None:
    # relu hidden layer (2 units), linear output, mean squared error; x = 1 and x = 2.
    #   W1 = [[1], [-1]], b1 = [[0], [1]], W2 = [[2, 3]], b2 = [[-1]], Y = [[3, 5]]
    #   Z1 = W1 X + b1 = [[1, 2], [0, -1]]      A1 = relu(Z1) = [[1, 2], [0, 0]]
    #   Z2 = W2 A1 + b2 = [2*1 + 3*0 - 1, 2*2 + 3*0 - 1] = [1, 3] = A2
    #   cost = (1/(2m)) sum (A2 - Y)^2 = (1/4) ((-2)^2 + (-2)^2) = 2
    #   dZ2 = A2 - Y = [-2, -2]
    #   dW2 = (1/2) dZ2 A1^T = (1/2) [-2*1 - 2*2, -2*0 - 2*0] = [-3, 0];  db2 = (1/2)(-4) = -2
    #   dA1 = W2^T dZ2 = [[2*-2, 2*-2], [3*-2, 3*-2]] = [[-4, -4], [-6, -6]]
    #   dZ1 = dA1 * relu'(Z1), relu'(Z1) = [[1, 1], [0, 0]] (note relu'(0) = 0)
    #       = [[-4, -4], [0, 0]]
    #   dW1 = (1/2) dZ1 X^T = (1/2) [[-4*1 - 4*2], [0]] = [[-6], [0]]
    #   db1 = (1/2) [[-8], [0]] = [[-4], [0]]
    spec = build_spec([1, 2, 1], hidden_activation="relu", output_activation="linear")
    assert spec.loss == "mean_squared_error"
    network = create_network(spec, W=[[[1.0], [-1.0]], [[2.0, 3.0]]], b=[[[0.0], [1.0]], [[-1.0]]])
    X = np.array([[1.0, 2.0]])
    Y = np.array([[3.0, 5.0]])
    cost, cache, grads = compute_gradients(network, X, Y, keep_intermediate=True)
    np.testing.assert_array_equal(cache.Z[0], [[1, 2], [0, -1]])
    np.testing.assert_array_equal(cache.A[1], [[1, 2], [0, 0]])
    np.testing.assert_array_equal(cache.A[2], [[1, 3]])
    assert cost == 2.0
    np.testing.assert_array_equal(grads.dW[1], [[-3, 0]])
    np.testing.assert_array_equal(grads.db[1], [[-2]])
    np.testing.assert_array_equal(grads.dW[0], [[-6], [0]])
    np.testing.assert_array_equal(grads.db[0], [[-4], [0]])
    assert grads.dA is not None
    assert grads.dZ is not None
    np.testing.assert_array_equal(grads.dA[0], [[-4, -4], [-6, -6]])  # dA[1]
    np.testing.assert_array_equal(grads.dZ[0], [[-4, -4], [0, 0]])  # dZ[1]
    np.testing.assert_array_equal(grads.dA[1], [[-2, -2]])  # dA[2] = A2 - Y for MSE
    np.testing.assert_array_equal(grads.dZ[1], [[-2, -2]])


def test_l2_by_hand() -> None:
    # Same logistic unit with lambda = 0.5, m = 2:
    #   cost += (lambda / (2m)) ||W||^2 = (0.5/4) (0 + ln(3)^2);  dW += (lambda/m) W = [0, ln3/4]
    spec = build_spec([2, 1], l2_lambda=0.5)
    network = create_network(spec, W=[[[0.0, math.log(3)]]], b=[[[0.0]]])
    X = np.array([[1.0, 2.0], [0.0, 1.0]])
    Y = np.array([[1.0, 0.0]])
    cost, _, grads = compute_gradients(network, X, Y)
    assert cost == pytest.approx(1.5 * math.log(2) + 0.125 * math.log(3) ** 2, rel=1e-15)
    np.testing.assert_allclose(grads.dW[0], [[0.5, 0.375 + math.log(3) / 4]], rtol=1e-15)
    np.testing.assert_allclose(grads.db[0], [[0.125]], rtol=1e-15)  # biases are not decayed


@pytest.mark.parametrize(
    ("output", "loss", "n_L"),
    [
        ("sigmoid", "binary_cross_entropy", 1),
        ("sigmoid", "binary_cross_entropy", 3),
        ("softmax", "categorical_cross_entropy", 4),
        ("linear", "mean_squared_error", 2),
    ],
)
def test_fused_output_gradient_equals_general_chain_rule(output: str, loss: str, n_L: int) -> None:
    spec = build_spec([3, 4, n_L], output_activation=output, loss=loss, seed=2)
    network = create_network(spec)
    X, Y = make_data(spec, 7, seed=3)
    cache = forward(network, X)
    AL, ZL = cache.A[-1], cache.Z[-1]
    fused = AL - Y
    general = ACTIVATIONS[output].backward(LOSSES[loss].gradient(AL, Y), ZL, AL, None)
    np.testing.assert_allclose(general, fused, rtol=1e-12, atol=1e-15)
    # ... and the cost from logits equals the cost from A where A is not saturated.
    from_logits = compute_cost(network, AL, Y, ZL=ZL)
    from_A = compute_cost(network, AL, Y)
    assert from_logits == pytest.approx(from_A, rel=1e-12)


def test_cache_and_gradient_shapes_and_indexing() -> None:
    spec = build_spec([5, 4, 3, 2], output_activation="softmax", l2_lambda=0.1, seed=4)
    network = create_network(spec)
    X, Y = make_data(spec, 6)
    cost, cache, grads = compute_gradients(network, X, Y, keep_intermediate=True)
    assert math.isfinite(cost)
    assert len(cache.A) == 4
    assert cache.A[0] is not None
    assert len(cache.Z) == 3
    np.testing.assert_array_equal(cache.A[0], X)
    assert grads.dA is not None
    assert grads.dZ is not None
    for l in range(1, 4):
        n_l, n_prev = spec.layer_dims[l], spec.layer_dims[l - 1]
        assert cache.Z[l - 1].shape == cache.A[l].shape == (n_l, 6)
        assert grads.dW[l - 1].shape == network.W[l - 1].shape == (n_l, n_prev)
        assert grads.db[l - 1].shape == (n_l, 1)
        assert grads.dZ[l - 1].shape == grads.dA[l - 1].shape == (n_l, 6)
    # dW[l] = (1/m) dZ[l] A[l-1]^T + (lambda/m) W[l]: the per-example convention
    for l in range(1, 4):
        expected = grads.dZ[l - 1] @ cache.A[l - 1].T / 6 + 0.1 / 6 * network.W[l - 1]
        np.testing.assert_allclose(grads.dW[l - 1], expected, rtol=1e-13)


def test_without_keep_intermediate_no_dZ_dA() -> None:
    spec = build_spec([3, 2, 1])
    _, _, grads = compute_gradients(create_network(spec), *make_data(spec, 4))
    assert grads.dZ is None
    assert grads.dA is None


def test_softmax_accepts_class_indices() -> None:
    spec = build_spec([3, 4, 3], output_activation="softmax", seed=1)
    network = create_network(spec)
    X, _ = make_data(spec, 4)
    indices = np.array([[0, 2, 1, 2]])
    one_hot = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]], dtype=float)
    a = compute_gradients(network, X, indices)
    b = compute_gradients(network, X, one_hot)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[2].dW[0], b[2].dW[0])


def test_float32_stays_float32() -> None:
    spec = build_spec([4, 3, 2], output_activation="softmax", dtype="float32", l2_lambda=0.1)
    network = create_network(spec)
    X, Y = make_data(spec, 5)  # float64 data, cast once
    _, cache, grads = compute_gradients(network, X, Y, keep_intermediate=True)
    assert grads.dZ is not None
    assert grads.dA is not None
    arrays = [*network.W, *network.b, *cache.Z, *cache.A, *grads.dW, *grads.db]
    arrays += [*grads.dZ, *grads.dA]
    assert all(a.dtype == np.float32 for a in arrays)
    updated = update_parameters(network, grads)
    assert all(a.dtype == np.float32 for a in [*updated.W, *updated.b])


def test_inputs_are_not_mutated_and_results_do_not_alias() -> None:
    spec = build_spec([3, 4, 1], activations=["linear", "linear"], seed=1)
    network = create_network(spec)
    X, Y = make_data(spec, 5)
    X_before, W_before = X.copy(), [w.copy() for w in network.W]
    _, _cache, grads = compute_gradients(network, X, Y)
    updated = update_parameters(network, grads)
    np.testing.assert_array_equal(X, X_before)
    for w, before, new in zip(network.W, W_before, updated.W, strict=True):
        np.testing.assert_array_equal(w, before)
        assert not np.shares_memory(w, new)
    assert network.steps_trained == 0


def test_create_network_copies_given_parameters() -> None:
    spec = build_spec([2, 1])
    W = [np.array([[1.0, 2.0]])]
    b = [np.array([[0.5]])]
    network = create_network(spec, W=W, b=b)
    W[0][0, 0] = 99.0
    assert network.W[0][0, 0] == 1.0


def test_replace_parameters_resets_optimizer_state_keeps_steps() -> None:
    spec = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam", learning_rate=0.01))
    X, Y = make_data(spec, 8)
    trained = train(create_network(spec), X, Y, TrainOptions(epochs=3)).network
    assert trained.optimizer_t == 3
    assert trained.steps_trained == 3
    assert np.any(trained.optimizer_state["vW"][0])
    replaced = replace_parameters(
        trained, W=[np.ones((2, 3)), np.ones((1, 2))], b=[np.zeros((2, 1)), np.zeros((1, 1))]
    )
    assert replaced.steps_trained == 3
    assert replaced.optimizer_t == 0
    assert all(not a.any() for v in replaced.optimizer_state.values() for a in v)
    assert trained.optimizer_t == 3  # the input is untouched


def test_network_copy_is_deep() -> None:
    spec = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="momentum"))
    network = create_network(spec)
    copy = network.copy()
    copy.W[0][0, 0] += 1
    copy.optimizer_state["vW"][0][0, 0] += 1
    assert network.W[0][0, 0] != copy.W[0][0, 0]
    assert network.optimizer_state["vW"][0][0, 0] == 0


def test_parameter_count() -> None:
    assert build_spec([12288, 20, 7, 5, 1]).parameter_count == (
        12288 * 20 + 20 + 20 * 7 + 7 + 7 * 5 + 5 + 5 * 1 + 1
    )


def test_cost_functions_from_logits_match_definitions() -> None:
    Z = np.array([[-3.0, 0.5, 2.0]])
    Y = np.array([[0.0, 1.0, 1.0]])
    A = 1 / (1 + np.exp(-Z))
    bce = LOSSES["binary_cross_entropy"]
    assert bce.logit_cost is not None
    expected = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A))
    assert bce.logit_cost(Z, Y) == pytest.approx(expected, rel=1e-14)
    assert bce.cost(A, Y) == pytest.approx(expected, rel=1e-14)


def test_plain_forward_pass_matches_definition() -> None:
    spec = build_spec([3, 4, 2], activations=["tanh", "sigmoid"], seed=9)
    network = create_network(spec)
    X, _ = make_data(spec, 5)
    cache = forward_pass(spec, network.W, network.b, X)
    A1 = np.tanh(network.W[0] @ X + network.b[0])
    A2 = 1 / (1 + np.exp(-(network.W[1] @ A1 + network.b[1])))
    np.testing.assert_allclose(cache.A[2], A2, rtol=1e-14)
    grads = backward_pass(spec, network.W, cache, np.ones((2, 5)), keep_intermediate=False)
    assert len(grads.dW) == 2
