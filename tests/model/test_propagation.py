"""Forward, cost and backward (model.propagation) against the oracle and against hand
arithmetic: every activation and output pair, L2, dropout, the Pass records, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import Network, OptimizerSpec, Pass, build_spec, compute_gradients, create_network
from model.losses import CANONICAL_COST
from model.propagation import Buffers, backward, cost, forward

from . import oracle
from .helpers import (
    HIDDEN,
    PAIRS,
    Array,
    assert_all_close,
    assert_close,
    assert_networks_equal,
    make_data,
    output_units,
    with_biases,
)

RTOL = 1e-12  # float64, normwise: the engine and the oracle differ only in rounding


Records = tuple[list[Array], list[Array], list[Array], list[Array]]


def records(p: Pass) -> Records:
    """Z, A, dZ and dA of a pass with ``intermediate``, every entry present."""
    assert p.Z is not None
    assert p.A is not None
    assert p.dZ is not None
    assert p.dA is not None
    dZ = [x for x in p.dZ if x is not None]
    dA = [x for x in p.dA if x is not None]
    assert len(dZ) == len(dA) == len(p.Z) == len(p.A)
    return p.Z, p.A, dZ, dA


def assert_pass_matches(p: Pass, expected: oracle.Result, rtol: float = RTOL) -> None:
    assert p.cost == pytest.approx(expected.cost, rel=rtol)
    assert_all_close(p.dW, expected.dW, rtol)
    assert_all_close(p.db, expected.db, rtol)
    Z, A, dZ, dA = records(p)
    assert_all_close(Z, expected.Z, rtol)
    assert_all_close(A, expected.A, rtol)
    assert_all_close(dZ, expected.dZ, rtol)
    assert_all_close(dA, expected.dA, rtol)


@pytest.mark.parametrize("l2_lambda", [0.0, 0.7])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("output", "loss"), PAIRS)
def test_every_activation_and_output_pair_matches_the_oracle(
    output: str, loss: str, hidden: str, l2_lambda: float
) -> None:
    n_L = output_units(output, loss, 3)
    spec = build_spec(
        [4, 5, 3, n_L],
        hidden_activation=hidden,
        output_activation=output,
        loss=loss,
        l2_lambda=l2_lambda,
        initialization="xavier",
        seed=3,
    )
    network = with_biases(spec, seed=4)
    X, Y = make_data(spec, 7, seed=5)
    p = compute_gradients(network, X, Y, intermediate=True)
    assert_pass_matches(p, oracle.gradients(network, X, Y))


@pytest.mark.parametrize(("output", "loss"), PAIRS)
@pytest.mark.parametrize("L", [1, 2, 4])
def test_depths_match_the_oracle(L: int, output: str, loss: str) -> None:
    # Hidden layers cycle through every hidden activation.
    dims = [*[3, 4, 2, 5, 3][:L], output_units(output, loss, 2)]
    hidden = [HIDDEN[(i + L) % len(HIDDEN)] for i in range(L - 1)]
    spec = build_spec(
        dims, activations=[*hidden, output], loss=loss, l2_lambda=0.3 * (L % 2), seed=L
    )
    network = with_biases(spec, seed=L)
    X, Y = make_data(spec, 5, seed=L)
    assert_pass_matches(
        compute_gradients(network, X, Y, intermediate=True), oracle.gradients(network, X, Y)
    )


def test_logistic_regression_by_hand() -> None:
    # One sigmoid unit (L = 1), two features, two examples (columns):
    #   x1 = (1, 0), x2 = (2, 1);  W = [0, ln 3], b = 0;  Y = [1, 0]
    #   Z = W X + b = [0*1 + ln3*0, 0*2 + ln3*1] = [0, ln 3]
    #   A = sigmoid(Z) = [1/2, 1/(1 + 1/3)] = [1/2, 3/4]
    #   cost = -(1/2) [1*ln(1/2) + (1-0)*ln(1 - 3/4)] = (ln 2 + ln 4)/2 = 1.5 ln 2
    #   dZ = A - Y = [-1/2, 3/4]
    #   dW = (1/2) dZ X^T = (1/2) [-1/2*1 + 3/4*2, -1/2*0 + 3/4*1] = [1/2, 3/8]
    #   db = (1/2) (-1/2 + 3/4) = 1/8
    #   dA = -y/a + (1-y)/(1-a) = [-1/(1/2), 1/(1/4)] = [-2, 4]
    network = create_network(build_spec([2, 1]), W=[[[0.0, math.log(3)]]], b=[[[0.0]]])
    X = np.array([[1.0, 2.0], [0.0, 1.0]])
    Y = np.array([[1.0, 0.0]])
    p = compute_gradients(network, X, Y, intermediate=True)
    Z, A, dZ, dA = records(p)
    np.testing.assert_allclose(Z[0], [[0.0, math.log(3)]], rtol=1e-15)
    np.testing.assert_allclose(A[0], [[0.5, 0.75]], rtol=1e-15)
    assert p.cost == pytest.approx(1.5 * math.log(2), rel=1e-15)
    np.testing.assert_allclose(p.dW[0], [[0.5, 0.375]], rtol=1e-15)
    np.testing.assert_allclose(p.db[0], [[0.125]], rtol=1e-15)
    np.testing.assert_allclose(dZ[0], [[-0.5, 0.75]], rtol=1e-15)  # per example: not / m
    np.testing.assert_allclose(dA[0], [[-2.0, 4.0]], rtol=1e-15)
    assert p.D is None


def test_two_layer_network_by_hand() -> None:
    # relu hidden layer (2 units), linear output, mean squared error (1/2)(a - y)^2;
    # x = 1 and x = 2 (m = 2).
    #   W1 = [[1], [-1]], b1 = [[0], [1]], W2 = [[2, 3]], b2 = [[-1]], Y = [[3, 5]]
    #   Z1 = W1 X + b1 = [[1, 2], [0, -1]]      A1 = relu(Z1) = [[1, 2], [0, 0]]
    #   Z2 = W2 A1 + b2 = [2*1 + 3*0 - 1, 2*2 + 3*0 - 1] = [1, 3] = A2
    #   cost = (1/(2m)) sum (A2 - Y)^2 = (1/4) ((-2)^2 + (-2)^2) = 2
    #   dZ2 = A2 - Y = [-2, -2]  (= dA2: linear)
    #   dW2 = (1/2) dZ2 A1^T = (1/2) [-2*1 - 2*2, -2*0 - 2*0] = [-3, 0];  db2 = (1/2)(-4) = -2
    #   dA1 = W2^T dZ2 = [[2*-2, 2*-2], [3*-2, 3*-2]] = [[-4, -4], [-6, -6]]
    #   dZ1 = dA1 * relu'(Z1), relu'(Z1) = [[1, 1], [0, 0]] (note relu'(0) = 0)
    #       = [[-4, -4], [0, 0]]
    #   dW1 = (1/2) dZ1 X^T = (1/2) [[-4*1 - 4*2], [0]] = [[-6], [0]]
    #   db1 = (1/2) [[-8], [0]] = [[-4], [0]]
    spec = build_spec([1, 2, 1], hidden_activation="relu", output_activation="linear")
    assert spec.loss == "mean_squared_error"
    network = create_network(spec, W=[[[1.0], [-1.0]], [[2.0, 3.0]]], b=[[[0.0], [1.0]], [[-1.0]]])
    p = compute_gradients(network, [[1.0, 2.0]], [[3.0, 5.0]], intermediate=True)
    Z, A, dZ, dA = records(p)
    np.testing.assert_array_equal(Z[0], [[1, 2], [0, -1]])
    np.testing.assert_array_equal(A[0], [[1, 2], [0, 0]])
    np.testing.assert_array_equal(Z[1], [[1, 3]])
    np.testing.assert_array_equal(A[1], [[1, 3]])
    assert p.cost == 2.0
    np.testing.assert_array_equal(p.dW[1], [[-3, 0]])
    np.testing.assert_array_equal(p.db[1], [[-2]])
    np.testing.assert_array_equal(p.dW[0], [[-6], [0]])
    np.testing.assert_array_equal(p.db[0], [[-4], [0]])
    np.testing.assert_array_equal(dA[0], [[-4, -4], [-6, -6]])  # dA[1]
    np.testing.assert_array_equal(dZ[0], [[-4, -4], [0, 0]])  # dZ[1]
    np.testing.assert_array_equal(dA[1], [[-2, -2]])  # dA[2] = A2 - Y for MSE
    np.testing.assert_array_equal(dZ[1], [[-2, -2]])


def test_l2_by_hand() -> None:
    # The logistic unit above with lambda = 0.5, m = 2:
    #   cost += (lambda / (2m)) ||W||^2 = (0.5/4) (0 + ln(3)^2);  dW += (lambda/m) W = [0, ln3/4]
    network = create_network(
        build_spec([2, 1], l2_lambda=0.5), W=[[[0.0, math.log(3)]]], b=[[[0.0]]]
    )
    p = compute_gradients(network, [[1.0, 2.0], [0.0, 1.0]], [[1.0, 0.0]])
    assert p.cost == pytest.approx(1.5 * math.log(2) + 0.125 * math.log(3) ** 2, rel=1e-15)
    np.testing.assert_allclose(p.dW[0], [[0.5, 0.375 + math.log(3) / 4]], rtol=1e-15)
    np.testing.assert_allclose(p.db[0], [[0.125]], rtol=1e-15)  # biases are not decayed


def course_parameters(seed_draws_X: bool) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """The course's Regularization test cases: np.random.seed(1), then (X = randn(3, 5) in
    the dropout case), W1 = randn(2, 3), b1 = randn(2, 1), W2 = randn(3, 2), b2 = randn(3, 1),
    W3 = randn(1, 3), b3 = randn(1, 1); a 3 -> 2 -> 3 -> 1 network."""
    rng = np.random.RandomState(1)
    X = rng.randn(3, 5) if seed_draws_X else np.empty((3, 0))
    shapes = [(2, 3), (2, 1), (3, 2), (3, 1), (1, 3), (1, 1)]
    W1, b1, W2, b2, W3, b3 = (rng.randn(*shape) for shape in shapes)
    return X, [W1, W2, W3], [b1, b2, b3]


def test_the_course_forward_propagation_with_dropout() -> None:
    # forward_propagation_with_dropout_test_case, keep_prob = 0.7: the course seeds
    # np.random.seed(1) inside the forward pass and draws D1 = rand(2, 5), then D2 = rand(3, 5).
    X, W, b = course_parameters(seed_draws_X=True)
    spec = build_spec([3, 2, 3, 1], keep_prob=0.7)
    network = create_network(spec, W, b)
    Y = np.array([[1, 1, 0, 1, 0]])
    p = compute_gradients(network, X, Y, dropout_seed=1, intermediate=True)
    assert p.A is not None
    assert p.D is not None
    np.testing.assert_allclose(
        p.A[2], [[0.36974721, 0.00305176, 0.04565099, 0.49683389, 0.36974721]], atol=1e-8
    )
    rng = np.random.RandomState(1)
    D1, D2 = rng.rand(2, 5) < 0.7, rng.rand(3, 5) < 0.7
    assert len(p.D) == 2
    np.testing.assert_array_equal(p.D[0], D1)
    np.testing.assert_array_equal(p.D[1], D2)
    assert p.D[0].dtype == np.float64  # 0/1 numbers, multiplied rather than indexed
    # ... and the backward pass is the course's backward_propagation_with_dropout.
    assert_pass_matches(p, oracle.gradients(network, X, Y, D=[D1, D2]))


def test_the_course_cost_with_regularization() -> None:
    # compute_cost_with_regularization_test_case: Y = [1, 1, 0, 1, 0], lambda = 0.1, the
    # course's a3, and W1, W2, W3 drawn after np.random.seed(1) (no X): 1.78648594516.
    # The cost is taken from the logits Z3 = log(a3 / (1 - a3)), as the engine does.
    _, W, b = course_parameters(seed_draws_X=False)
    network = create_network(build_spec([3, 2, 3, 1], l2_lambda=0.1), W, b)
    a3 = np.array([[0.40682402, 0.01629284, 0.16722898, 0.10118111, 0.40682402]])
    buf = Buffers(network.spec, 5, backward=False)
    buf.A[-1][...] = a3
    buf.Z[-1][...] = np.log(a3 / (1 - a3))
    assert cost(network, buf, np.array([[1.0, 1, 0, 1, 0]])) == pytest.approx(
        1.78648594516, abs=1e-10
    )


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("l2_lambda", [0.0, 0.4])
def test_dropout_forward_and_backward_match_the_oracle_given_the_masks(
    hidden: str, l2_lambda: float
) -> None:
    # g' is read from g(Z), not from the masked A: tanh and sigmoid would notice.
    spec = build_spec(
        [4, 5, 6, 3, 2],
        hidden_activation=hidden,
        output_activation="softmax",
        keep_prob=[0.6, 1.0, 0.8],
        l2_lambda=l2_lambda,
        seed=2,
    )
    network = with_biases(spec, seed=3)
    X, Y = make_data(spec, 9, seed=4)
    p = compute_gradients(network, X, Y, dropout_seed=12, intermediate=True)
    assert p.D is not None
    rng = np.random.RandomState(12)
    masks = [rng.rand(n, 9) < keep for n, keep in zip([5, 6, 3], [0.6, 1.0, 0.8], strict=True)]
    for D, expected in zip(p.D, masks, strict=True):
        np.testing.assert_array_equal(D, expected)
    assert not masks[0].all()
    assert masks[1].all()  # keep_prob 1 keeps every unit
    assert_pass_matches(p, oracle.gradients(network, X, Y, D=masks))


def test_keep_prob_1_leaves_every_layer_alone() -> None:
    dims = [3, 4, 3, 1]
    plain = with_biases(build_spec(dims, hidden_activation="tanh", seed=1), seed=1)
    kept = create_network(
        build_spec(dims, hidden_activation="tanh", seed=1, keep_prob=1.0), plain.W, plain.b
    )
    X, Y = make_data(plain.spec, 6)
    a = compute_gradients(plain, X, Y, intermediate=True)
    b = compute_gradients(kept, X, Y, intermediate=True, dropout_seed=5)
    assert b.D is not None
    assert all(D.all() for D in b.D)
    assert a.cost == b.cost
    for x, y in zip([*a.dW, *a.db], [*b.dW, *b.db], strict=True):
        np.testing.assert_array_equal(x, y)  # multiplying by 1 and dividing by 1 are exact


def test_a_layer_with_keep_prob_1_is_untouched_beside_one_with_dropout() -> None:
    spec = build_spec([3, 4, 5, 1], hidden_activation="sigmoid", keep_prob=[1.0, 0.5], seed=2)
    network = with_biases(spec, seed=2)
    X, Y = make_data(spec, 8)
    Z, A, _, _ = records(compute_gradients(network, X, Y, intermediate=True, dropout_seed=3))
    np.testing.assert_array_equal(A[0], 1 / (1 + np.exp(-Z[0])))  # A[1] = g(Z[1]) as is
    assert (A[1] == 0).any()  # layer 2 drops units


def test_a_network_without_dropout_ignores_dropout_seed() -> None:
    spec = build_spec([3, 4, 1], seed=1)
    network = with_biases(spec)
    X, Y = make_data(spec, 5)
    a = compute_gradients(network, X, Y, intermediate=True)
    b = compute_gradients(network, X, Y, intermediate=True, dropout_seed=7)
    assert a.D is None
    assert b.D is None
    assert a.cost == b.cost
    for x, y in zip([*a.dW, *a.db], [*b.dW, *b.db], strict=True):
        np.testing.assert_array_equal(x, y)


def test_without_dropout_seed_a_dropout_network_propagates_without_dropout() -> None:
    dims = [3, 4, 1]
    with_dropout = with_biases(build_spec(dims, keep_prob=0.5, seed=1), seed=1)
    without = create_network(build_spec(dims, seed=1), with_dropout.W, with_dropout.b)
    X, Y = make_data(without.spec, 5)
    a = compute_gradients(with_dropout, X, Y, intermediate=True)
    b = compute_gradients(without, X, Y, intermediate=True)
    assert a.D is None
    assert a.cost == b.cost
    for x, y in zip([*a.dW, *a.db], [*b.dW, *b.db], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("keep_prob", [None, 0.7])
def test_the_records_follow_the_stated_relations(keep_prob: float | None) -> None:
    # dZ and dA are per example (not divided by m), so that for l = L..1
    #   dW[l] = (1/m) dZ[l] A[l-1]^T + (lambda/m) W[l],   db[l] = (1/m) sum(dZ[l], axis=1)
    #   dA[l-1] = W[l]^T dZ[l]  (* D[l-1] / keep_prob with dropout)
    #   dZ[l] = dA[l] * g'(Z[l]),  and dZ[L] = A[L] - Y for a canonical pair.
    # The engine keeps dZ / m in its buffers and records them times m: equal to rounding.
    m, lambd = 6, 0.2
    spec = build_spec(
        [5, 4, 3, 2],
        activations=["tanh", "leaky_relu", "sigmoid"],
        l2_lambda=lambd,
        keep_prob=keep_prob,
        seed=4,
    )
    network = with_biases(spec, seed=5)
    X, Y = make_data(spec, m)
    p = compute_gradients(network, X, Y, intermediate=True, dropout_seed=2)
    Z, A, dZ, dA = records(p)
    A_prev = [X, *A[:-1]]
    for l in range(1, 4):
        i = l - 1
        assert_close(p.dW[i], dZ[i] @ A_prev[i].T / m + lambd / m * network.W[i], 1e-12)
        assert_close(p.db[i], dZ[i].sum(axis=1, keepdims=True) / m, 1e-12)
        g_prime = oracle.G_PRIME[spec.activations[i]](Z[i].astype(np.float64))
        assert_close(dZ[i], dA[i] * g_prime, 1e-12)
        if l > 1:
            back = network.W[i].T @ dZ[i]
            if p.D is not None and keep_prob is not None:
                back = back * p.D[i - 1] / keep_prob
            assert_close(dA[i - 1], back, 1e-12)
    assert_close(dZ[-1], A[-1] - Y, 1e-12)
    assert_close(dA[-1], -(Y / A[-1] - (1 - Y) / (1 - A[-1])), 1e-12)  # binary cross-entropy


def test_pass_shapes_and_zero_based_indexing() -> None:
    spec = build_spec([5, 4, 3, 2], output_activation="softmax", l2_lambda=0.1, keep_prob=0.9)
    network = create_network(spec)
    X, Y = make_data(spec, 6)
    p = compute_gradients(network, X, Y, intermediate=True, dropout_seed=0)
    assert isinstance(p.cost, float)
    assert math.isfinite(p.cost)
    Z, A, dZ, dA = records(p)
    assert len(Z) == spec.L  # layers 1..L: A[0] = X is not repeated
    assert len(p.dW) == len(p.db) == spec.L
    assert p.D is not None
    assert [D.shape for D in p.D] == [(4, 6), (3, 6)]  # hidden layers only
    for l in range(1, spec.L + 1):  # entry l - 1 is layer l
        n_l, n_prev = spec.layer_dims[l], spec.layer_dims[l - 1]
        for array in (Z[l - 1], A[l - 1], dZ[l - 1], dA[l - 1]):
            assert array.shape == (n_l, 6)
        assert p.dW[l - 1].shape == network.W[l - 1].shape == (n_l, n_prev)
        assert p.db[l - 1].shape == network.b[l - 1].shape == (n_l, 1)
    np.testing.assert_allclose(A[-1].sum(axis=0), 1.0)  # A[L] is the softmax output


def test_without_intermediate_only_cost_and_gradients() -> None:
    spec = build_spec([3, 2, 1], keep_prob=0.5)
    p = compute_gradients(create_network(spec), *make_data(spec, 4), dropout_seed=1)
    assert (p.Z, p.A, p.D, p.dZ, p.dA) == (None, None, None, None, None)
    assert len(p.dW) == len(p.db) == 2


def test_softmax_accepts_class_indices() -> None:
    spec = build_spec([3, 4, 3], output_activation="softmax", seed=1)
    network = create_network(spec)
    X, _ = make_data(spec, 4)
    indices = np.array([[0, 2, 1, 2]])
    one_hot = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]], dtype=float)
    a = compute_gradients(network, X, indices)
    b = compute_gradients(network, X, one_hot)
    assert a.cost == b.cost
    for x, y in zip([*a.dW, *a.db], [*b.dW, *b.db], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("output", "loss"), PAIRS)
def test_float32_in_float32_out(output: str, loss: str) -> None:
    spec = build_spec(
        [4, 3, 3, output_units(output, loss, 2)],
        activations=["tanh", "relu", output],
        loss=loss,
        dtype="float32",
        l2_lambda=0.1,
        keep_prob=0.8,
        seed=6,
    )
    network = with_biases(spec, seed=6)
    X, Y = make_data(spec, 5)  # float64 data, cast once
    p = compute_gradients(network, X, Y, intermediate=True, dropout_seed=3)
    Z, A, dZ, dA = records(p)
    assert p.D is not None
    arrays = [*p.dW, *p.db, *Z, *A, *dZ, *dA, *p.D]
    assert len(arrays) == 3 * 6 + 2
    assert all(a.dtype == np.float32 for a in arrays)
    assert isinstance(p.cost, float)
    # ... and float32 arithmetic is the float64 oracle's to float32 rounding.
    expected = oracle.gradients(network, X, Y, D=p.D)
    assert p.cost == pytest.approx(expected.cost, rel=1e-5)
    assert_all_close(p.dW, expected.dW, 1e-5)
    assert_all_close(p.db, expected.db, 1e-5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_inputs_are_not_mutated_and_results_do_not_alias_them(dtype: str) -> None:
    spec = build_spec(
        [3, 4, 1],
        activations=["linear", "linear"],
        seed=1,
        dtype=dtype,
        l2_lambda=0.5,
        keep_prob=0.5,
        optimizer=OptimizerSpec(name="adam"),
    )
    network = with_biases(spec)
    network.moments[...] = 0.25
    before = network.copy()
    X, Y = make_data(spec, 5)
    X, Y = X.astype(dtype), Y.astype(dtype)  # already in the network's dtype: not copied
    X_before, Y_before = X.copy(), Y.copy()
    p = compute_gradients(network, X, Y, intermediate=True, dropout_seed=1)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Y, Y_before)
    assert_networks_equal(network, before)
    for array in [*p.dW, *p.db, *(p.Z or []), *(p.A or []), *(p.D or [])]:
        for held in (X, Y, network.theta, network.moments):
            assert not np.shares_memory(array, held)


def test_the_three_functions_run_on_buffers_and_give_compute_gradients() -> None:
    # forward, cost and backward as training calls them: into Buffers and a flat gradient.
    spec = build_spec([3, 5, 2], output_activation="softmax", l2_lambda=0.3, seed=8)
    network: Network = with_biases(spec, seed=8)
    X, Y = make_data(spec, 7)
    buf = Buffers(spec, 7)
    AL = forward(network, X, buf)
    assert AL is buf.A[-1]
    J = cost(network, buf, Y)
    grad = network.layout.flat(np.empty_like(network.theta))
    backward(network, X, Y, buf, grad, np.empty_like(network.theta))
    p = compute_gradients(network, X, Y)
    assert p.cost == J
    np.testing.assert_array_equal(grad.vector, np.concatenate([*p.dW, *p.db], axis=None))
    for view, dW in zip(grad.W, p.dW, strict=True):
        assert np.shares_memory(view, grad.vector)
        np.testing.assert_array_equal(view, dW)


@pytest.mark.parametrize(("output", "loss"), list(CANONICAL_COST))
def test_canonical_pairs_fuse_to_A_minus_Y(output: str, loss: str) -> None:
    # The chain rule dA[L] * g'(Z[L]) and A - Y agree for the canonical pairs (the oracle
    # takes the chain rule; the engine takes A - Y).
    spec = build_spec([3, 4, output_units(output, loss, 3)], output_activation=output, loss=loss)
    network = with_biases(spec, seed=2)
    X, Y = make_data(spec, 8, seed=3)
    expected = oracle.gradients(network, X, Y)
    AL = expected.A[-1]
    assert_close(expected.dZ[-1], AL - Y, 1e-12)
    _, _, dZ, _ = records(compute_gradients(network, X, Y, intermediate=True))
    assert_close(dZ[-1], AL - Y, 1e-14)
