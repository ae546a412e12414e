"""Momentum and Adam: two steps computed by hand, through both the plain and the fast path."""

from __future__ import annotations

import numpy as np
import pytest

from model import (
    Network,
    OptimizerSpec,
    TrainOptions,
    build_spec,
    compute_gradients,
    create_network,
    train,
    update_parameters,
)

# The smallest problem with memory: one linear unit, one example, mean squared error.
#   X = [[1]], Y = [[0]], W = [[1]], b = [[0]]  ->  A = W + b,  cost = (A - 0)^2 / 2,
#   dZ = A - Y = W + b,  dW = dZ * x = W + b,  db = W + b.
X = np.array([[1.0]])
Y = np.array([[0.0]])


def start(optimizer: OptimizerSpec) -> Network:
    spec = build_spec([1, 1], output_activation="linear", optimizer=optimizer)
    return create_network(spec, W=[[[1.0]]], b=[[[0.0]]])


def two_plain_steps(network: Network) -> tuple[Network, list[float]]:
    costs = []
    for _ in range(2):
        cost, _, grads = compute_gradients(network, X, Y)
        costs.append(cost)
        network = update_parameters(network, grads)
    return network, costs


def two_trainer_steps(network: Network) -> tuple[Network, list[float]]:
    result = train(network, X, Y, TrainOptions(epochs=2))
    return result.network, [record.cost for record in result.costs]


def test_momentum_two_steps_by_hand() -> None:
    # beta = 0.9, learning rate 0.1; v starts at 0.
    # step 1: A = 1, cost = 0.5, dW = db = 1
    #         v = 0.9*0 + 0.1*1 = 0.1;   W = 1 - 0.1*0.1 = 0.99;  b = 0 - 0.01 = -0.01
    # step 2: A = 0.99 - 0.01 = 0.98, cost = 0.98^2 / 2 = 0.4802, dW = db = 0.98
    #         v = 0.9*0.1 + 0.1*0.98 = 0.188;  W = 0.99 - 0.0188 = 0.9712;  b = -0.0288
    network = start(OptimizerSpec(name="momentum", learning_rate=0.1, beta=0.9))
    for result, costs in [two_plain_steps(network), two_trainer_steps(network)]:
        assert costs == pytest.approx([0.5, 0.4802], rel=1e-14)
        assert result.W[0][0, 0] == pytest.approx(0.9712, rel=1e-14)
        assert result.b[0][0, 0] == pytest.approx(-0.0288, rel=1e-13)
        assert result.optimizer_state["vW"][0][0, 0] == pytest.approx(0.188, rel=1e-14)
        assert result.optimizer_state["vb"][0][0, 0] == pytest.approx(0.188, rel=1e-14)
        assert result.steps_trained == result.optimizer_t == 2


def test_adam_two_steps_by_hand() -> None:
    # beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, learning rate 0.1; v = s = 0, t from 1.
    # step 1 (t = 1): g = dW = db = 1, cost = 0.5
    #   v = 0.1 g = 0.1,  s = 0.001 g^2 = 0.001
    #   v_corr = 0.1 / (1 - 0.9) = 1,  s_corr = 0.001 / (1 - 0.999) = 1
    #   W = 1 - 0.1 * 1 / (1 + 1e-8) = 0.900000001,  b = -0.099999999
    # step 2 (t = 2): g = W + b = 0.800000002, cost = g^2 / 2 = 0.3200000016
    #   v = 0.9*0.1 + 0.1 g = 0.1700000002,  s = 0.999*0.001 + 0.001 g^2 = 0.0016390000032
    #   v_corr = v / (1 - 0.81) = 0.894736843157895
    #   s_corr = s / (1 - 0.998001) = 0.8199099565783,  sqrt = 0.9054887942864
    #   step = 0.1 * 0.894736843157895 / (0.9054887942864 + 1e-8) = 0.0988125793408
    #   W = 0.900000001 - 0.0988125793408 = 0.8011874216592
    #   b = -0.099999999 - 0.0988125793408 = -0.1988125783408
    network = start(OptimizerSpec(name="adam", learning_rate=0.1))
    for result, costs in [two_plain_steps(network), two_trainer_steps(network)]:
        assert costs == pytest.approx([0.5, 0.3200000016], rel=1e-12)
        assert result.W[0][0, 0] == pytest.approx(0.8011874216592, rel=1e-12)
        assert result.b[0][0, 0] == pytest.approx(-0.1988125783408, rel=1e-12)
        assert result.optimizer_state["vW"][0][0, 0] == pytest.approx(0.1700000002, rel=1e-12)
        assert result.optimizer_state["sW"][0][0, 0] == pytest.approx(0.0016390000032, rel=1e-12)
        assert result.optimizer_t == 2


def test_gradient_descent_two_steps_by_hand() -> None:
    # learning rate 0.1: W = 1 - 0.1 = 0.9, b = -0.1; then A = 0.8: W = 0.82, b = -0.18.
    network = start(OptimizerSpec(name="gd", learning_rate=0.1))
    result = train(network, X, Y, TrainOptions(2))
    assert [c.cost for c in result.costs] == pytest.approx([0.5, 0.32], rel=1e-14)
    assert result.network.W[0][0, 0] == pytest.approx(0.82, rel=1e-14)
    assert result.network.b[0][0, 0] == pytest.approx(-0.18, rel=1e-14)
    assert result.network.optimizer_state == {}
    assert result.final_cost == pytest.approx(0.5 * 0.64**2, rel=1e-14)


def test_optimizer_spec_to_dict_keeps_relevant_fields() -> None:
    assert OptimizerSpec().to_dict() == {"name": "gd", "learning_rate": 0.0075}
    assert OptimizerSpec(name="momentum", beta=0.8).to_dict() == {
        "name": "momentum",
        "learning_rate": 0.0075,
        "beta": 0.8,
    }
    assert OptimizerSpec(name="adam").to_dict() == {
        "name": "adam",
        "learning_rate": 0.0075,
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-8,
    }
    adam = OptimizerSpec(name="adam", learning_rate=0.5, beta1=0.8)
    assert OptimizerSpec.from_dict(adam.to_dict()) == adam


def test_learning_rate_override_applies_to_this_call_only() -> None:
    network = start(OptimizerSpec(name="gd", learning_rate=0.1))
    result = train(network, X, Y, TrainOptions(1, learning_rate=0.5))
    assert result.network.W[0][0, 0] == pytest.approx(0.5)
    assert result.network.spec.optimizer.learning_rate == 0.1
