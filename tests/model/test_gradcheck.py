"""Gradient checking: the backpropagation that trains agrees with two-sided finite
differences (both computed by model.propagation), and the check notices when it does not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from model import (
    GradCheckResult,
    Network,
    OptimizerSpec,
    build_spec,
    compute_gradients,
    create_network,
    gradient_check,
)
from model.activations import ACTIVATIONS, Activation

from .helpers import (
    HIDDEN,
    PAIRS,
    assert_networks_equal,
    labels,
    make_data,
    output_units,
    with_biases,
)

F = NDArray[np.float64]
KINKED = ("relu", "leaky_relu")


def well_conditioned(network: Network, X: F, Y: F) -> bool:
    """Whether finite differences with epsilon = 1e-7 can resolve this gradient to 1e-7.

    Per entry, (J(t + e) - J(t - e)) / 2e is off by about e^2 |J'''| / 6 (truncation)
    plus u max(|J|, 1) / e (rounding: u = 1.1e-16, and the cost's intermediate values
    are O(1) even when J is small). So we ask for

    * relu and leaky relu pre-activations at least 1e-4 from the kink at 0: a two-sided
      difference across it measures the average of the two slopes, and a perturbation of
      1e-7 moves Z by about 1e-7 with O(1) weights and inputs;
    * probability outputs in [1e-3, 1 - 1e-3]: saturated sigmoid/softmax outputs make
      J''' of order 1 / (1 - A)^3, and within eps of 0 or 1 the clipping flattens J;
    * ||grad|| >= 0.02 max(|J|, 1) sqrt(P), so that the rounding term, about
      1e-9 max(|J|, 1) sqrt(P), stays below 1e-7 ||grad||.
    """
    p = compute_gradients(network, X, Y, intermediate=True)
    assert p.Z is not None
    assert p.A is not None
    spec = network.spec
    for Z, name in zip(p.Z, spec.activations, strict=True):
        if name in KINKED and np.abs(Z).min() <= 1e-4:
            return False
    AL = p.A[-1]
    if spec.activations[-1] in ("sigmoid", "softmax") and np.minimum(AL, 1 - AL).min() < 1e-3:
        return False
    norm = float(
        np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in [*p.dW, *p.db]))
    )
    return bool(norm >= 0.02 * max(abs(p.cost), 1.0) * np.sqrt(spec.parameter_count))


@st.composite
def problems(draw: st.DrawFn) -> tuple[Network, F, F]:
    L = draw(st.integers(1, 4), label="L")
    output, loss = draw(st.sampled_from(PAIRS), label="output, loss")
    dims = draw(st.lists(st.integers(1, 4), min_size=L + 1, max_size=L + 1), label="dims")
    dims[-1] = output_units(output, loss, dims[-1])
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=L - 1, max_size=L - 1))
    spec = build_spec(
        dims,
        activations=[*hidden, output],
        loss=loss,
        initialization=draw(st.sampled_from(["he", "xavier", "glorot"])),
        seed=draw(st.integers(0, 2**16), label="seed"),
        l2_lambda=draw(st.sampled_from([0.0, 0.7]), label="l2"),
        dtype=draw(st.sampled_from(["float64", "float32"]), label="dtype"),
        optimizer=OptimizerSpec(name=draw(st.sampled_from(["gd", "momentum", "adam"]))),
        keep_prob=draw(st.sampled_from([None, 0.5])) if L > 1 else None,  # checked without
    )
    m = draw(st.integers(1, 5), label="m")
    rng = np.random.RandomState(spec.seed)
    # Nonzero biases, so no unit starts exactly at a relu kink or at a symmetric point.
    network = with_biases(spec, seed=spec.seed, scale=0.3)
    X = rng.randn(spec.n_x, m)
    return network, X, labels(spec, m, rng)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(problems())
def test_gradient_check_passes_for_random_networks(problem: tuple[Network, F, F]) -> None:
    network, X, Y = problem
    assume(well_conditioned(network, X, Y))
    result = gradient_check(network, X, Y)  # the course's epsilon = 1e-7
    assert result.passed, result
    assert result.difference < 2e-7
    assert result.threshold == 2e-7
    assert result.parameters_checked == network.spec.parameter_count
    assert len(result.layers) == network.spec.L


@pytest.mark.parametrize(("output", "loss"), PAIRS)
@pytest.mark.parametrize("l2_lambda", [0.0, 0.5])
def test_every_output_and_loss_pair_with_and_without_l2(
    output: str, loss: str, l2_lambda: float
) -> None:
    n_L = output_units(output, loss, 2)
    for hidden in HIDDEN:
        spec = build_spec(
            [3, 4, 3, n_L],
            hidden_activation=hidden,
            output_activation=output,
            loss=loss,
            l2_lambda=l2_lambda,
            seed=11,
        )
        network = with_biases(spec, seed=5)
        X, Y = make_data(spec, 6, seed=5)
        assert well_conditioned(network, X, Y), hidden
        result = gradient_check(network, X, Y)
        assert result.difference < 1e-7, (hidden, result)


def test_float32_network_is_checked_in_float64_and_left_untouched() -> None:
    spec = build_spec([3, 4, 1], hidden_activation="tanh", dtype="float32", seed=2)
    network = create_network(spec)
    before = network.copy()
    rng = np.random.RandomState(0)
    X, Y = rng.randn(3, 5).astype(np.float32), labels(spec, 5, rng)
    result = gradient_check(network, X, Y)
    assert result.difference < 1e-7  # float32 arithmetic could not get below ~1e-3
    assert_networks_equal(network, before)


def test_the_check_leaves_the_network_and_the_data_untouched() -> None:
    spec = build_spec(
        [3, 4, 2],
        output_activation="softmax",
        l2_lambda=0.2,
        keep_prob=0.5,
        optimizer=OptimizerSpec(name="adam"),
    )
    network = with_biases(spec, seed=1)
    network.moments[...] = 0.5
    network.optimizer_t = network.steps_trained = 3
    before = network.copy()
    X, Y = make_data(spec, 4)
    X_before, Y_before = X.copy(), Y.copy()
    gradient_check(network, X, Y)
    assert_networks_equal(network, before)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Y, Y_before)


def test_a_network_with_dropout_is_checked_without_it() -> None:
    # With random masks the cost is not one function of the parameters: the check runs
    # the same parameters without dropout, as the course's gradient checking does.
    dims = [4, 5, 3, 1]
    with_dropout = with_biases(
        build_spec(dims, hidden_activation="tanh", keep_prob=[0.5, 0.8], seed=3), seed=3
    )
    without = create_network(
        build_spec(dims, hidden_activation="tanh", seed=3), with_dropout.W, with_dropout.b
    )
    X, Y = make_data(without.spec, 6)
    a, b = gradient_check(with_dropout, X, Y), gradient_check(without, X, Y)
    assert a == b  # every field, exactly
    assert a.passed


def test_result_fields_and_thresholds() -> None:
    spec = build_spec([2, 3, 1], hidden_activation="tanh", seed=1)
    network = create_network(spec)
    rng = np.random.RandomState(1)
    X, Y = rng.randn(2, 4), labels(spec, 4, rng)
    result = gradient_check(network, X, Y)
    assert isinstance(result, GradCheckResult)
    assert result.threshold == 2e-7
    assert result.passed
    assert result.parameters_checked == 2 * 3 + 3 + 3 * 1 + 1
    assert len(result.layers) == 2
    assert all(dW < 1e-6 and db < 1e-6 for dW, db in result.layers)
    assert result.difference < 1e-7
    strict = gradient_check(network, X, Y, threshold=1e-30)
    assert strict.threshold == 1e-30
    assert not strict.passed
    assert strict.difference == result.difference
    assert strict.layers == result.layers


def test_a_zero_gradient_has_difference_zero() -> None:
    # zeros initialization, zero biases and a linear output with Y = 0: every gradient
    # and every finite difference is exactly 0, and 0 / 0 is reported as 0.
    spec = build_spec([2, 3, 1], output_activation="linear", initialization="zeros")
    result = gradient_check(create_network(spec), np.ones((2, 3)), np.zeros((1, 3)))
    assert result.difference == 0.0
    assert result.layers == [(0.0, 0.0), (0.0, 0.0)]
    assert result.passed


def tanh_with_a_wrong_derivative() -> Activation:
    def backward(dA: np.ndarray, A: np.ndarray, scratch: np.ndarray) -> None:
        np.multiply(dA, 1 - A, out=dA)  # should be 1 - A^2

    return Activation(ACTIVATIONS["tanh"].forward, backward)


def test_a_wrong_derivative_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The oracle habit: break backpropagation on purpose and the check must notice.
    spec = build_spec([2, 3, 1], hidden_activation="tanh", seed=1)
    rng = np.random.RandomState(1)
    X, Y = rng.randn(2, 4), labels(spec, 4, rng)
    network = create_network(spec)
    with monkeypatch.context() as patch:
        patch.setitem(ACTIVATIONS, "tanh", tanh_with_a_wrong_derivative())
        result = gradient_check(network, X, Y)
        assert not result.passed
        assert result.layers[0][0] > 1e-3  # layer 1 is wrong ...
        assert result.layers[0][1] > 1e-3
        assert result.layers[1][0] < 1e-7  # ... layer 2's dW and db do not involve tanh'
        assert result.layers[1][1] < 1e-7
    assert gradient_check(network, X, Y).passed  # restored


def test_a_wrong_output_derivative_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # A non-canonical output (tanh + mean squared error) runs the activation's backward rule
    # at layer L too.
    spec = build_spec([2, 3, 2], activations=["relu", "tanh"], seed=4)
    network = with_biases(spec, seed=4)
    X, Y = make_data(spec, 5)
    monkeypatch.setitem(ACTIVATIONS, "tanh", tanh_with_a_wrong_derivative())
    result = gradient_check(network, X, Y)
    assert not result.passed
    assert all(dW > 1e-3 for dW, _ in result.layers)


def test_the_optimizer_plays_no_part_in_the_check() -> None:
    rng = np.random.RandomState(3)
    X = rng.randn(2, 4)
    results = []
    for name in ("gd", "momentum", "adam"):
        spec = build_spec([2, 3, 1], hidden_activation="tanh", optimizer=OptimizerSpec(name=name))
        results.append(gradient_check(create_network(spec), X, [[0, 1, 1, 0]]))
    assert results[0] == results[1] == results[2]
