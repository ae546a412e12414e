"""Prediction and evaluation (model.predict): outputs, labels, accuracy, the cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import build_spec, compute_gradients, create_network, evaluate, predict

from . import oracle
from .helpers import assert_networks_equal, make_data, with_biases


def test_sigmoid_predictions_and_accuracy_by_hand() -> None:
    # The logistic unit of test_propagation: A = sigmoid([0, ln 3]) = [0.5, 0.75].
    # (A > 0.5) = [0, 1]: exactly 0.5 is not above 0.5. Against Y = [1, 0] both are wrong.
    network = create_network(build_spec([2, 1]), W=[[[0.0, math.log(3)]]], b=[[[0.0]]])
    X = np.array([[1.0, 2.0], [0.0, 1.0]])
    A, predictions = predict(network, X)
    np.testing.assert_allclose(A, [[0.5, 0.75]], rtol=1e-15)
    np.testing.assert_array_equal(predictions, [[0, 1]])
    assert predictions.dtype == np.int64
    cost, accuracy, m = evaluate(network, X, [[1, 0]])
    assert cost == pytest.approx(1.5 * math.log(2), rel=1e-15)
    assert accuracy == 0.0
    assert m == 2
    assert evaluate(network, X, [[0, 1]])[1] == 1.0
    assert evaluate(network, X, [[1, 1]])[1] == 0.5


def test_predict_is_the_oracles_forward_pass() -> None:
    spec = build_spec([4, 5, 3, 2], activations=["tanh", "leaky_relu", "softmax"], seed=9)
    network = with_biases(spec, seed=9)
    X, Y = make_data(spec, 6)
    A, _ = predict(network, X)
    np.testing.assert_allclose(A, oracle.gradients(network, X, Y).A[-1], rtol=1e-13)


def test_sigmoid_accuracy_counts_entries() -> None:
    spec = build_spec([3, 2], output_activation="sigmoid")
    network = create_network(spec)
    X, Y = make_data(spec, 5)
    _, predictions = predict(network, X)
    assert predictions.shape == (2, 5)
    _, accuracy, _ = evaluate(network, X, Y)
    assert accuracy == pytest.approx(np.mean(predictions == Y))


def test_softmax_predictions_are_class_indices() -> None:
    spec = build_spec([3, 4, 3], output_activation="softmax", seed=2)
    network = create_network(spec)
    X, Y = make_data(spec, 7)
    A, predictions = predict(network, X)
    assert A.shape == (3, 7)
    np.testing.assert_allclose(A.sum(axis=0), 1.0)
    assert predictions.shape == (1, 7)
    assert predictions.dtype == np.int64
    np.testing.assert_array_equal(predictions[0], np.argmax(A, axis=0))
    cost, accuracy, m = evaluate(network, X, Y)
    assert accuracy == pytest.approx(np.mean(predictions[0] == np.argmax(Y, axis=0)))
    assert cost == compute_gradients(network, X, Y).cost
    assert m == 7
    assert evaluate(network, X, predictions)[1] == 1.0  # class-index labels are accepted


@pytest.mark.parametrize("output", ["linear", "relu", "tanh", "leaky_relu"])
def test_regression_outputs_predict_A_and_have_no_accuracy(output: str) -> None:
    spec = build_spec([3, 2], output_activation=output, l2_lambda=0.5)
    network = create_network(spec)
    X, Y = make_data(spec, 4)
    A, predictions = predict(network, X)
    np.testing.assert_array_equal(predictions, A)
    cost, accuracy, _ = evaluate(network, X, Y)
    assert accuracy is None
    assert cost == compute_gradients(network, X, Y).cost  # the cost includes L2


def test_prediction_and_evaluation_never_use_dropout() -> None:
    dims = [3, 6, 1]
    with_dropout = with_biases(build_spec(dims, keep_prob=0.5, seed=1), seed=1)
    without = create_network(build_spec(dims, seed=1), with_dropout.W, with_dropout.b)
    X, Y = make_data(without.spec, 8)
    A, predictions = predict(with_dropout, X)
    A_plain, predictions_plain = predict(without, X)
    np.testing.assert_array_equal(A, A_plain)
    np.testing.assert_array_equal(predictions, predictions_plain)
    assert evaluate(with_dropout, X, Y) == evaluate(without, X, Y)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_inputs_are_not_mutated_and_results_are_new(dtype: str) -> None:
    spec = build_spec([3, 2, 1], output_activation="linear", dtype=dtype)
    network = with_biases(spec)
    before = network.copy()
    X, Y = make_data(spec, 4)
    X = X.astype(dtype)
    X_before = X.copy()
    A, _ = predict(network, X)
    evaluate(network, X, Y)
    np.testing.assert_array_equal(X, X_before)
    assert_networks_equal(network, before)
    for held in (X, network.theta):
        assert not np.shares_memory(A, held)
    A_again, _ = predict(network, X)
    assert not np.shares_memory(A, A_again)  # each call its own buffers


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "tanh"])
def test_float32_prediction(output: str) -> None:
    spec = build_spec([3, 2, 2], output_activation=output, dtype="float32")
    A, predictions = predict(create_network(spec), np.ones((3, 2)))
    assert A.dtype == np.float32
    assert predictions.dtype == (np.float32 if output == "tanh" else np.int64)
    cost, _, _ = evaluate(create_network(spec), np.ones((3, 2)), [[0, 1], [1, 0]])
    assert isinstance(cost, float)
