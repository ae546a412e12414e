"""The fast paths of model/ give the numbers of the plain ones: fused output activation,
cost and dZ, planned steps, flat parameter buffers, relu masks and zeros, in-place
backward rules, finiteness checks, Trainer.run.

Timings are not tested here (bench/ measures them); only that every shortcut is exact, or
within 1e-12 (float64) / 1e-5 (float32) where the order of the arithmetic differs.
"""

from __future__ import annotations

import numpy as np
import pytest

from model import (
    OptimizerSpec,
    Trainer,
    TrainOptions,
    build_spec,
    compute_gradients,
    create_network,
    train,
)
from model.activations import _ZEROS_LIMIT, ACTIVATIONS
from model.checks import all_finite, check_finite
from model.errors import ModelError
from model.fast import (
    FUSED_OUTPUTS,
    FlatLayout,
    StepBuffers,
    TrainState,
    binary_labels,
    gradient_scale,
    output_rule,
    plan_step,
)
from model.network import cost_of

from .helpers import assert_close, make_data, plain_train

TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def run_output(
    output: str, loss: str, Z: np.ndarray, Y: np.ndarray, binary: bool = True
) -> tuple[float, np.ndarray]:
    """The summed loss and dZ[L] (scaled by 0.5) of the step's output rule for Z and Y."""
    spec = build_spec([3, Z.shape[0]], output_activation=output, loss=loss, dtype=str(Z.dtype))
    buf = StepBuffers(spec, Z.shape[1])
    Y = np.ascontiguousarray(Y, dtype=Z.dtype)
    rule = output_rule(spec, buf, Y, 0.5, binary)
    buf.Z[-1][...] = Z
    for call in rule.forward:
        call()
    total = float(rule.total())
    for call in rule.backward:
        call()
    return total, buf.dZL


def plain_output(output: str, loss: str, Z: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    """The same from the plain path: cost_of (times m) and (A - Y) / 2."""
    spec = build_spec([3, Z.shape[0]], output_activation=output, loss=loss, dtype=str(Z.dtype))
    Y = Y.astype(Z.dtype)
    A = ACTIVATIONS[output].forward(Z, None)
    return cost_of(spec, [], A, Y, Z) * Z.shape[1], (A - Y) * Z.dtype.type(0.5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("output", "loss"), list(FUSED_OUTPUTS))
@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0, 800.0])
def test_fused_output_cost_and_dZ_equal_the_activation_and_the_loss(
    dtype: str, output: str, loss: str, scale: float
) -> None:
    n_L = 1 if output == "sigmoid" else 4
    spec = build_spec([3, n_L], output_activation=output, loss=loss, dtype=dtype, seed=2)
    rng = np.random.RandomState(5)
    m = 9
    # Large |z| makes confident columns, whose tiny losses must keep their precision; at
    # 800 exp(|z|) overflows even float64, and exp(-|z|) underflows.
    Z = (rng.randn(n_L, m) * scale).astype(dtype)
    _, Y = make_data(spec, m, seed=3)
    total, dZ = run_output(output, loss, Z, Y)
    expected_total, expected_dZ = plain_output(output, loss, Z, Y)
    assert np.isfinite(total)
    assert total == pytest.approx(expected_total, rel=TOLERANCE[dtype], abs=0)
    assert dZ.dtype == Z.dtype
    assert_close(dZ, expected_dZ, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_sigmoid_at_extreme_pre_activations(dtype: str) -> None:
    # |z| > 700: exp(|z|) overflows float64; every entry's loss and dZ stay exact.
    Z = np.array([[800.0, -800.0, 800.0, -800.0, 750.0, -750.0, 0.0, 40.0]], dtype)
    Y = np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]])
    total, dZ = run_output("sigmoid", "binary_cross_entropy", Z, Y)
    expected_total, expected_dZ = plain_output("sigmoid", "binary_cross_entropy", Z, Y)
    assert total == pytest.approx(expected_total, rel=TOLERANCE[dtype])
    assert total == pytest.approx(1600 + 750 + np.log(2) + np.log1p(np.exp(-40.0)), rel=1e-7)
    np.testing.assert_allclose(dZ, expected_dZ, rtol=0, atol=float(np.finfo(dtype).eps))
    # sigmoid(40) - 1 rounds to 0 on the plain path; the fused one keeps -sigmoid(-40).
    exact = [0, 0, 0.5, -0.5, 0, -0.5, 0.25, -0.5 / (1 + np.exp(40.0))]
    np.testing.assert_allclose(dZ[0], exact, rtol=TOLERANCE[dtype], atol=1e-45)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_softmax_with_saturated_and_tied_columns(dtype: str) -> None:
    # Columns: saturated, a tie at the maximum, all equal, a tie below the maximum.
    Z = np.array([[1000.0, 5.0, 0.0, 3.0], [0.0, 5.0, 0.0, 1.0], [-1000.0, 0.0, 0.0, 1.0]], dtype)
    Y = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    total, dZ = run_output("softmax", "categorical_cross_entropy", Z, Y)
    expected_total, expected_dZ = plain_output("softmax", "categorical_cross_entropy", Z, Y)
    assert total == pytest.approx(expected_total, rel=TOLERANCE[dtype])
    assert total == pytest.approx(
        1000 + np.log(2 + np.exp(-5.0)) + np.log(3) + (2 + np.log(1 + 2 * np.exp(-2.0))), rel=1e-6
    )
    np.testing.assert_array_equal(dZ, expected_dZ)


def test_fused_binary_cross_entropy_keeps_tiny_losses() -> None:
    # A confident, right answer: the loss is log1p(e^-40) ~ 4e-18, not 0 or rounding noise.
    Z = np.array([[40.0, -40.0]])
    total, dZ = run_output("sigmoid", "binary_cross_entropy", Z, np.array([[1.0, 0.0]]))
    assert total == pytest.approx(2 * np.log1p(np.exp(-40.0)), rel=1e-15)
    # dZ = A - Y keeps its tiny entries too: -sigmoid(-40) and sigmoid(-40), halved.
    np.testing.assert_allclose(dZ, [[-0.5 / (1 + np.exp(40.0)), 0.5 / (1 + np.exp(40.0))]])


def test_fused_categorical_cross_entropy_keeps_tiny_losses() -> None:
    Z = np.array([[50.0], [0.0], [0.0]])
    Y = np.array([[1.0], [0.0], [0.0]])
    total, _ = run_output("softmax", "categorical_cross_entropy", Z, Y)
    assert total == pytest.approx(np.log1p(2 * np.exp(-50.0)), rel=1e-15)


def test_soft_labels_take_the_general_sigmoid_output() -> None:
    Z = np.array([[2.0, -1.0, 0.5, 40.0]])
    Y = np.array([[0.3, 1.0, 0.0, 0.9]])
    assert not binary_labels(Y)
    total, dZ = run_output("sigmoid", "binary_cross_entropy", Z, Y, binary=False)
    expected_total, expected_dZ = plain_output("sigmoid", "binary_cross_entropy", Z, Y)
    assert total == pytest.approx(expected_total, rel=1e-12)
    np.testing.assert_allclose(dZ, expected_dZ, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("soft", [False, True])
def test_soft_labels_train_like_the_plain_path(dtype: str, soft: bool) -> None:
    spec = build_spec([3, 4, 2], dtype=dtype, seed=4, optimizer=OptimizerSpec(learning_rate=0.3))
    X, Y = make_data(spec, 6, seed=1)
    if soft:
        Y = np.abs(Y - 0.2)  # labels in [0, 1], not all 0 or 1
    network = create_network(spec)
    options = TrainOptions(epochs=3, batch_size=4, shuffle_seed=1)
    fast = train(network, X, Y, options)
    expected, costs, _ = plain_train(network, X, Y, options)
    assert_close(
        np.array([r.cost for r in fast.costs]), np.array([r.cost for r in costs]), TOLERANCE[dtype]
    )
    for a, e in zip([*fast.network.W, *fast.network.b], [*expected.W, *expected.b], strict=True):
        assert_close(a, e, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("activations", "loss", "l2_lambda"),
    [
        (["relu", "tanh", "sigmoid"], None, 0.0),
        (["leaky_relu", "relu", "softmax"], None, 0.7),
        (["tanh", "sigmoid", "linear"], None, 0.2),
        (["relu", "relu", "sigmoid"], "mean_squared_error", 0.0),
        (["sigmoid", "leaky_relu", "relu"], "mean_squared_error", 0.1),
    ],
)
def test_a_planned_step_equals_the_plain_forward_cost_and_backward(
    dtype: str, activations: list[str], loss: str | None, l2_lambda: float
) -> None:
    spec = build_spec(
        [5, 4, 3, 2 if activations[-1] == "softmax" else 1],
        activations=activations,
        loss=loss,
        dtype=dtype,
        seed=4,
        l2_lambda=l2_lambda,
        optimizer=OptimizerSpec(name="momentum"),
    )
    network = create_network(spec)
    X, Y = make_data(spec, 7, seed=2)
    X, Y = X.astype(dtype), Y.astype(dtype)
    cur = TrainState.of(network)
    nxt = cur.empty_like()
    buf = StepBuffers(spec, 7)
    rule = output_rule(spec, buf, Y, gradient_scale(spec, 0.1, 7), binary_labels(Y))
    plan = plan_step(spec, X, buf, rule, cur, nxt, 0.1)
    for call in plan.forward:
        call()
    cost, _, grads = compute_gradients(network, X, Y)
    assert plan.cost() == pytest.approx(cost, rel=TOLERANCE[dtype])
    for call in plan.backward:
        call()
    assert plan.finite()
    for fast, plain in zip([*nxt.gW, *nxt.gb], [*grads.dW, *grads.db], strict=True):
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


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_in_place_equals_backward(name: str, dtype: type) -> None:
    rng = np.random.RandomState(1)
    Z: np.ndarray = rng.randn(3, 6).astype(dtype)
    Z[0, :3] = [0.0, -0.0, 1e-30]
    dA: np.ndarray = rng.randn(3, 6).astype(dtype)
    activation = ACTIVATIONS[name]
    A = activation.forward(Z, None).copy()
    expected = activation.backward(dA, Z, A, None)
    dZ = dA.copy()
    activation.backward_in_place(dZ, A, np.empty_like(A))
    np.testing.assert_array_equal(dZ, expected)


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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_unit_layers_train_like_the_plain_path(dtype: str) -> None:
    # Every bias here is added as a 0-d view (a layer of one unit).
    spec = build_spec([3, 1, 1], hidden_activation="tanh", dtype=dtype, seed=2)
    X, Y = make_data(spec, 5, seed=3)
    options = TrainOptions(epochs=3)
    fast = train(create_network(spec), X, Y, options)
    expected, costs, _ = plain_train(create_network(spec), X, Y, options)
    assert_close(
        np.array([r.cost for r in fast.costs]), np.array([r.cost for r in costs]), TOLERANCE[dtype]
    )
    for a, e in zip([*fast.network.W, *fast.network.b], [*expected.W, *expected.b], strict=True):
        assert_close(a, e, TOLERANCE[dtype])


def test_step_buffers_count_every_array_they_hold() -> None:
    # [2, 4, 1], 3 examples: Z and A of both layers (2 x (4 + 1) x 3), dZ[L] (1 x 3), the
    # scratch of the widest hidden layer (4 x 3) and the column of ones (3).
    buf = StepBuffers(build_spec([2, 4, 1], dtype="float32"), 3)
    assert buf.nbytes == (30 + 3 + 12 + 3) * 4
