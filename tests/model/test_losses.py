"""Losses (model.losses): costs and gradients against their definitions, the canonical costs
from logits, and their behaviour where the outputs saturate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from model import LOSS_NAMES, build_spec, compute_gradients, create_network
from model.losses import CANONICAL_COST, LOSSES

from . import oracle
from .helpers import CANONICAL, PAIRS, assert_close, labels, output_units

F = NDArray[np.float64]


def moderate(output: str, loss: str) -> tuple[F, F, F]:
    """Logits Z (3, 6) in [-3, 3], A = g(Z) and labels for the pair."""
    spec = build_spec([2, output_units(output, loss, 3)], output_activation=output, loss=loss)
    rng = np.random.RandomState(3)
    Z = rng.uniform(-3, 3, (spec.n_L, 6))
    return Z, oracle.G[output](Z), labels(spec, 6, rng)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("output", "loss"), PAIRS)
def test_cost_and_gradient_are_the_definitions(output: str, loss: str, dtype: str) -> None:
    _, A, Y = moderate(output, loss)
    A_cast, Y_cast = A.astype(dtype), Y.astype(dtype)
    total = LOSSES[loss].cost(A_cast, Y_cast)
    assert isinstance(total, float)
    expected = float(np.sum(oracle.LOSS[loss](A_cast.astype(np.float64), Y)))
    assert total == pytest.approx(expected, rel=1e-14 if dtype == "float64" else 1e-6)
    dA = LOSSES[loss].gradient(A_cast, Y_cast)
    assert dA.dtype == dtype
    expected_dA = oracle.LOSS_GRADIENT[loss](A_cast.astype(np.float64), Y)
    assert_close(dA, expected_dA, 1e-14 if dtype == "float64" else 1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("output", "loss"), CANONICAL)
def test_costs_from_logits_are_the_definitions(output: str, loss: str, dtype: str) -> None:
    Z, A, Y = moderate(output, loss)
    total = CANONICAL_COST[(output, loss)](Z.astype(dtype), A.astype(dtype), Y.astype(dtype))
    expected = float(np.sum(oracle.LOSS[loss](A, Y)))
    assert total == pytest.approx(expected, rel=1e-14 if dtype == "float64" else 1e-6)


def test_binary_cross_entropy_from_logits_by_hand() -> None:
    # softplus(z) - y z:  z = 0, y = 1: log 2;  z = ln 3, y = 0: log(1 + 3) = log 4.
    total = CANONICAL_COST[("sigmoid", "binary_cross_entropy")](
        np.array([[0.0, math.log(3)]]), np.array([[0.5, 0.75]]), np.array([[1.0, 0.0]])
    )
    assert total == pytest.approx(math.log(2) + math.log(4), rel=1e-15)


BCE = CANONICAL_COST[("sigmoid", "binary_cross_entropy")]
CCE = CANONICAL_COST[("softmax", "categorical_cross_entropy")]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("z", [40.0, 100.0, 800.0])
def test_binary_cross_entropy_from_logits_at_saturation(z: float, dtype: str) -> None:
    # A = sigmoid(+-z) has rounded to 1 or 0, yet the loss is exact from the logit:
    # confidently wrong costs softplus(z) = z + log1p(e^-z) ~ z; confidently right costs
    # log1p(e^-z), tiny and never negative.
    Z = np.array([[z, -z, z, -z]], dtype=dtype)
    A = np.array([[1.0, 0.0, 1.0, 0.0]], dtype=dtype)
    wrong = BCE(Z[:, :2], A[:, :2], np.array([[0.0, 1.0]], dtype=dtype))
    right = BCE(Z[:, 2:], A[:, 2:], np.array([[1.0, 0.0]], dtype=dtype))
    assert wrong == pytest.approx(2 * (z + math.log1p(math.exp(-z))), rel=1e-7)
    assert math.isfinite(wrong)
    assert 0.0 <= right <= 1e-17
    if dtype == "float64":
        assert right == pytest.approx(2 * math.log1p(math.exp(-z)), rel=1e-15)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("gap", [40.0, 800.0])
def test_categorical_cross_entropy_from_logits_at_saturation(gap: float, dtype: str) -> None:
    # Columns (gap, 0, 0): the right class costs log(1 + 2 e^-gap) >= 0, a wrong one costs
    # its whole logit gap plus that.
    Z = np.array([[gap], [0.0], [0.0]], dtype=dtype)
    with np.errstate(under="ignore"):
        A = oracle.G["softmax"](Z.astype(np.float64)).astype(dtype)
    right = CCE(Z, A, np.array([[1.0], [0.0], [0.0]], dtype=dtype))
    wrong = CCE(Z, A, np.array([[0.0], [1.0], [0.0]], dtype=dtype))
    assert 0.0 <= right <= 3 * math.exp(-gap)
    assert wrong == pytest.approx(gap, rel=1e-7)


@pytest.mark.parametrize(("output", "loss"), [p for p in PAIRS if p not in CANONICAL])
def test_outputs_of_exactly_0_or_1_give_finite_costs_and_gradients(output: str, loss: str) -> None:
    # The general path clips A to [eps, 1 - eps] before logs and divisions.
    A = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    Y = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # confidently wrong
    total = LOSSES[loss].cost(A, Y)
    assert math.isfinite(total)
    if loss != "mean_squared_error":
        assert total > 2 * 30  # about -log(2.2e-16) = 36 per wrong entry
    assert np.isfinite(LOSSES[loss].gradient(A, Y)).all()


def test_clipping_changes_nothing_away_from_0_and_1() -> None:
    A = np.array([[1e-10, 0.5, 1 - 1e-10]])
    Y = np.array([[0.0, 1.0, 1.0]])
    expected = -(math.log1p(-1e-10) + math.log(0.5) + math.log(1 - 1e-10))
    assert LOSSES["binary_cross_entropy"].cost(A, Y) == pytest.approx(expected, rel=1e-12)


def test_the_stable_cost_is_exact_through_the_engine_where_A_saturates() -> None:
    # sigmoid(40) rounds to 1.0 in float64, yet -log(1 - sigmoid(40)) is 40 + log1p(e^-40);
    # sigmoid(-1000) is 0, and -log(0) would be inf, yet the loss is 1000 + log1p(e^-1000).
    network = create_network(build_spec([1, 1]), W=[[[1.0]]], b=[[[0.0]]])
    p = compute_gradients(network, [[40.0, -1000.0]], [[0.0, 1.0]])
    assert p.cost == pytest.approx((40 + math.log1p(math.exp(-40)) + 1000) / 2, rel=1e-15)
    # dZ = A - Y = [1, -1]: dW = (1/2)(1 * 40 + (-1)(-1000)) = 520, db = 0.
    np.testing.assert_array_equal(p.dW[0], [[520.0]])
    np.testing.assert_array_equal(p.db[0], [[0.0]])


def test_tables() -> None:
    assert set(LOSSES) == set(LOSS_NAMES)
    assert set(CANONICAL_COST) == set(CANONICAL)
