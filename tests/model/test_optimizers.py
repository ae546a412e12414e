"""Parameter updates (model.optimizers.update): gd, momentum and Adam against the course's
formulas in the oracle, bias correction, and two steps of each by hand through train()."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from model import Network, OptimizerSpec, TrainOptions, build_spec, create_network, train
from model.optimizers import update

from . import oracle
from .helpers import assert_close, assert_networks_equal

F = NDArray[np.float64]


def random_state(optimizer: OptimizerSpec, dtype: str = "float64", t: int = 0) -> Network:
    """A [3, 4, 2] network with random parameters, random moments (s >= 0) and clock t."""
    spec = build_spec([3, 4, 2], optimizer=optimizer, dtype=dtype)
    rng = np.random.RandomState(7)
    network = create_network(spec)
    network.theta[...] = rng.randn(network.theta.size)
    network.moments[...] = np.abs(rng.randn(*network.moments.shape)) * 0.1
    network.optimizer_t = network.steps_trained = t
    return network


def split(network: Network, grad: NDArray[np.floating]) -> tuple[list[F], list[F]]:
    """dW and db of a flat gradient, per layer, in float64 for the oracle."""
    dW, db = network.layout.views(grad)
    return [w.astype(np.float64) for w in dW], [x.astype(np.float64) for x in db]


OPTIMIZERS = [
    OptimizerSpec(name="gd", learning_rate=0.05),
    OptimizerSpec(name="momentum", learning_rate=0.05, beta=0.8),
    OptimizerSpec(name="adam", learning_rate=0.05, beta1=0.85, beta2=0.99, epsilon=1e-7),
]


@pytest.mark.parametrize("t", [0, 1, 9])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.name)
def test_update_matches_the_course_formulas(opt: OptimizerSpec, t: int) -> None:
    cur = random_state(opt, t=t)
    before = cur.copy()
    grad = np.random.RandomState(8).randn(cur.theta.size)
    grad_before = grad.copy()
    nxt = cur.empty_like()
    update(opt, 0.03, cur, grad, nxt)  # the learning rate argument, not the spec's
    expected = oracle.update(opt, 0.03, oracle.state_of(cur), *split(cur, grad))
    assert nxt.optimizer_t == expected.t == t + 1
    for a, e in zip([*nxt.W, *nxt.b], [*expected.W, *expected.b], strict=True):
        assert_close(a, e, 1e-14)
    for name, (W, b) in nxt.moment_views.items():
        for a, e in zip([*W, *b], expected.v if name == "v" else expected.s, strict=True):
            assert_close(a, e, 1e-14)
    # Nothing of the current state or of the gradient is written.
    assert_networks_equal(cur, before)
    np.testing.assert_array_equal(grad, grad_before)


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.name)
def test_float32_updates_stay_float32(opt: OptimizerSpec) -> None:
    cur = random_state(opt, dtype="float32", t=2)
    grad = np.random.RandomState(8).randn(cur.theta.size).astype(np.float32)
    nxt = cur.empty_like()
    update(opt, 0.03, cur, grad, nxt)
    assert nxt.theta.dtype == nxt.moments.dtype == np.float32
    expected = oracle.update(opt, 0.03, oracle.state_of(cur), *split(cur, grad))
    for a, e in zip([*nxt.W, *nxt.b], [*expected.W, *expected.b], strict=True):
        assert_close(a, e, 1e-6)


def test_adams_first_step_is_corrected_from_t_1() -> None:
    # From zero moments, t = 1: v = (1 - beta1) g, s = (1 - beta2) g^2, so v_corr = g and
    # s_corr = g^2, and every parameter moves by lr g / (|g| + eps), almost lr sign(g),
    # whatever beta1 and beta2 are. Without the correction the step would be
    # lr (1 - beta1) / sqrt(1 - beta2) sign(g), about 3.2 lr for the defaults.
    opt = OptimizerSpec(name="adam", learning_rate=0.01)
    cur = create_network(build_spec([3, 4, 2], optimizer=opt))
    grad: NDArray[np.float64] = np.random.RandomState(1).randn(cur.theta.size)
    nxt = cur.empty_like()
    update(opt, 0.01, cur, grad, nxt)
    assert nxt.optimizer_t == 1
    np.testing.assert_allclose(
        cur.theta - nxt.theta, 0.01 * grad / (np.abs(grad) + 1e-8), rtol=1e-12
    )
    v, s = nxt.moments
    np.testing.assert_allclose(v, 0.1 * grad, rtol=1e-15)
    np.testing.assert_allclose(s, 0.001 * grad**2, rtol=1e-12)


def test_the_clock_is_the_networks_optimizer_t_not_its_steps() -> None:
    # replace_parameters restarts optimizer_t (zero moments) and keeps steps_trained: the
    # bias correction follows optimizer_t.
    opt = OptimizerSpec(name="adam", learning_rate=0.01)
    cur = random_state(opt, t=0)
    cur.steps_trained = 50
    grad = np.random.RandomState(2).randn(cur.theta.size)
    nxt = cur.empty_like()
    update(opt, 0.01, cur, grad, nxt)
    expected = oracle.update(opt, 0.01, oracle.state_of(cur), *split(cur, grad))
    assert expected.t == nxt.optimizer_t == 1
    assert_close(nxt.theta, np.concatenate([w.ravel() for w in [*expected.W, *expected.b]]), 1e-14)


# The smallest problem with memory: one linear unit, one example, mean squared error.
#   X = [[1]], Y = [[0]], W = [[1]], b = [[0]]  ->  A = W + b,  cost = (A - 0)^2 / 2,
#   dZ = A - Y = W + b,  dW = dZ * x = W + b,  db = W + b.
X = np.array([[1.0]])
Y = np.array([[0.0]])


def start(optimizer: OptimizerSpec) -> Network:
    spec = build_spec([1, 1], output_activation="linear", optimizer=optimizer)
    return create_network(spec, W=[[[1.0]]], b=[[[0.0]]])


def test_gradient_descent_two_steps_by_hand() -> None:
    # learning rate 0.1: W = 1 - 0.1 = 0.9, b = -0.1; then A = 0.8: W = 0.82, b = -0.18.
    # final cost: A = 0.82 - 0.18 = 0.64, 0.64^2 / 2.
    result = train(start(OptimizerSpec(name="gd", learning_rate=0.1)), X, Y, TrainOptions(2))
    assert [c.cost for c in result.costs] == pytest.approx([0.5, 0.32], rel=1e-14)
    assert result.network.W[0][0, 0] == pytest.approx(0.82, rel=1e-14)
    assert result.network.b[0][0, 0] == pytest.approx(-0.18, rel=1e-14)
    assert result.network.moments.shape == (0, 2)
    assert result.final_cost == pytest.approx(0.5 * 0.64**2, rel=1e-14)
    assert result.network.optimizer_t == result.network.steps_trained == 2


def test_momentum_two_steps_by_hand() -> None:
    # beta = 0.9, learning rate 0.1; v starts at 0.
    # step 1: A = 1, cost = 0.5, dW = db = 1
    #         v = 0.9*0 + 0.1*1 = 0.1;   W = 1 - 0.1*0.1 = 0.99;  b = 0 - 0.01 = -0.01
    # step 2: A = 0.99 - 0.01 = 0.98, cost = 0.98^2 / 2 = 0.4802, dW = db = 0.98
    #         v = 0.9*0.1 + 0.1*0.98 = 0.188;  W = 0.99 - 0.0188 = 0.9712;  b = -0.0288
    network = start(OptimizerSpec(name="momentum", learning_rate=0.1, beta=0.9))
    result = train(network, X, Y, TrainOptions(epochs=2))
    assert [c.cost for c in result.costs] == pytest.approx([0.5, 0.4802], rel=1e-14)
    net = result.network
    assert net.W[0][0, 0] == pytest.approx(0.9712, rel=1e-14)
    assert net.b[0][0, 0] == pytest.approx(-0.0288, rel=1e-13)
    (vW, vb) = net.moment_views["v"]
    assert vW[0][0, 0] == pytest.approx(0.188, rel=1e-14)
    assert vb[0][0, 0] == pytest.approx(0.188, rel=1e-14)
    assert net.steps_trained == net.optimizer_t == 2


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
    result = train(start(OptimizerSpec(name="adam", learning_rate=0.1)), X, Y, TrainOptions(2))
    assert [c.cost for c in result.costs] == pytest.approx([0.5, 0.3200000016], rel=1e-12)
    net = result.network
    assert net.W[0][0, 0] == pytest.approx(0.8011874216592, rel=1e-12)
    assert net.b[0][0, 0] == pytest.approx(-0.1988125783408, rel=1e-12)
    (vW, _), (sW, _) = net.moment_views["v"], net.moment_views["s"]
    assert vW[0][0, 0] == pytest.approx(0.1700000002, rel=1e-12)
    assert sW[0][0, 0] == pytest.approx(0.0016390000032, rel=1e-12)
    assert net.optimizer_t == 2
