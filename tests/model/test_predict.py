"""Prediction and evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import build_spec, compute_gradients, create_network, evaluate, predict

from .helpers import make_data


def test_sigmoid_predictions_and_accuracy_by_hand() -> None:
    # The logistic unit of test_network: A = sigmoid([0, ln 3]) = [0.5, 0.75].
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
    np.testing.assert_array_equal(predictions[0], np.argmax(A, axis=0))
    cost, accuracy, m = evaluate(network, X, Y)
    assert accuracy == pytest.approx(np.mean(predictions[0] == np.argmax(Y, axis=0)))
    assert cost == compute_gradients(network, X, Y)[0]
    assert m == 7
    assert evaluate(network, X, predictions)[1] == 1.0  # class-index labels are accepted


@pytest.mark.parametrize("output", ["linear", "relu", "tanh", "leaky_relu"])
def test_regression_outputs_predict_A_and_have_no_accuracy(output: str) -> None:
    spec = build_spec([3, 2], output_activation=output, l2_lambda=0.5)
    network = create_network(spec)
    X, Y = make_data(spec, 4)
    A, predictions = predict(network, X)
    np.testing.assert_array_equal(predictions, A)
    assert not np.shares_memory(predictions, A)
    cost, accuracy, _ = evaluate(network, X, Y)
    assert accuracy is None
    assert cost == compute_gradients(network, X, Y)[0]  # the cost includes L2


def test_float32_prediction() -> None:
    spec = build_spec([3, 2, 1], dtype="float32")
    A, predictions = predict(create_network(spec), np.ones((3, 2)))
    assert A.dtype == np.float32
    assert predictions.dtype == np.int64
