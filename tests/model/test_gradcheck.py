"""Gradient checking: backpropagation agrees with two-sided finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from model import (
    ACTIVATION_NAMES,
    LOSS_NAMES,
    Network,
    OptimizerSpec,
    build_spec,
    compute_gradients,
    create_network,
    forward,
    gradient_check,
)
from model.activations import ACTIVATIONS, Activation

from .helpers import labels

# Every (output activation, loss) pair the spec allows.
PAIRS = [
    (output, loss)
    for output in ACTIVATION_NAMES
    for loss in LOSS_NAMES
    if loss == "mean_squared_error" or output in ("sigmoid", "softmax")
]
HIDDEN = [name for name in ACTIVATION_NAMES if name != "softmax"]
KINKED = ("relu", "leaky_relu")


def far_from_kinks(network: Network, X: np.ndarray, margin: float = 1e-4) -> bool:
    """Whether every relu/leaky_relu pre-activation is at least ``margin`` from 0.

    A two-sided difference across the kink at 0 measures the average of the two
    slopes, not the derivative; with epsilon = 1e-7 and O(1) weights and inputs a
    perturbation moves Z by about 1e-7, so a margin of 1e-4 keeps every Z on one side.
    """
    cache = forward(network, X)
    return all(
        np.abs(Z).min() > margin
        for Z, name in zip(cache.Z, network.spec.activations, strict=True)
        if name in KINKED
    )


def well_conditioned(network: Network, X: np.ndarray, Y: np.ndarray) -> bool:
    """Whether finite differences with epsilon = 1e-7 can resolve this gradient to 1e-7.

    Per entry, (J(t + e) - J(t - e)) / 2e is off by about e^2 |J'''| / 6 (truncation)
    plus u max(|J|, 1) / e (rounding: u = 1.1e-16, and the cost's intermediate values
    are O(1) even when J is small). So we ask for

    * relu pre-activations away from the kink (:func:`far_from_kinks`);
    * probability outputs in [1e-3, 1 - 1e-3]: saturated sigmoid/softmax outputs make
      J''' of order 1 / (1 - A)^3, and within eps of 0 or 1 the clipping flattens J;
    * ||grad|| >= 0.02 max(|J|, 1) sqrt(P), so that the rounding term, about
      1e-9 max(|J|, 1) sqrt(P), stays below 1e-7 ||grad||.

    Measured over 10,000 generated problems, those passing this filter (about 95%)
    had differences below 7e-8.
    """
    if not far_from_kinks(network, X):
        return False
    cost, cache, grads = compute_gradients(network, X, Y)
    AL = cache.A[-1]
    probabilities = network.spec.activations[-1] in ("sigmoid", "softmax")
    if probabilities and np.minimum(AL, 1 - AL).min() < 1e-3:
        return False
    norm = np.sqrt(sum(float(np.sum(g**2)) for g in [*grads.dW, *grads.db]))
    return bool(norm >= 0.02 * max(abs(cost), 1.0) * np.sqrt(network.spec.parameter_count))


@st.composite
def problems(draw: st.DrawFn) -> tuple[Network, np.ndarray, np.ndarray]:
    L = draw(st.integers(1, 4), label="L")
    output, loss = draw(st.sampled_from(PAIRS), label="output, loss")
    dims = draw(st.lists(st.integers(1, 4), min_size=L + 1, max_size=L + 1), label="dims")
    if output == "softmax" or loss == "categorical_cross_entropy":
        dims[-1] = max(dims[-1], 2)
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=L - 1, max_size=L - 1))
    spec = build_spec(
        dims,
        activations=[*hidden, output],
        loss=loss,
        initialization=draw(st.sampled_from(["he", "xavier", "glorot"])),
        seed=draw(st.integers(0, 2**16), label="seed"),
        l2_lambda=draw(st.sampled_from([0.0, 0.7]), label="l2"),
    )
    m = draw(st.integers(1, 5), label="m")
    rng = np.random.RandomState(spec.seed)
    initial = create_network(spec)
    # Nonzero biases, so no unit starts exactly at a relu kink or at a symmetric point.
    b = [rng.uniform(-0.5, 0.5, size=x.shape) for x in initial.b]
    network = create_network(spec, W=initial.W, b=b)
    X = rng.randn(spec.n_x, m)
    return network, X, labels(spec, m, rng)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(problems())
def test_gradient_check_passes_for_random_networks(
    problem: tuple[Network, np.ndarray, np.ndarray],
) -> None:
    network, X, Y = problem
    assume(well_conditioned(network, X, Y))
    result = gradient_check(network, X, Y)  # the course's epsilon = 1e-7
    assert result.difference < 1e-7, result
    assert result.passed
    assert result.parameters_checked == network.spec.parameter_count
    assert len(result.layers) == network.spec.L


@pytest.mark.parametrize(("output", "loss"), PAIRS)
@pytest.mark.parametrize("l2_lambda", [0.0, 0.5])
def test_every_output_and_loss_pair_with_and_without_l2(
    output: str, loss: str, l2_lambda: float
) -> None:
    n_L = 3 if output == "softmax" or loss == "categorical_cross_entropy" else 2
    for hidden in HIDDEN:
        spec = build_spec(
            [3, 4, 3, n_L],
            hidden_activation=hidden,
            output_activation=output,
            loss=loss,
            l2_lambda=l2_lambda,
            seed=11,
        )
        rng = np.random.RandomState(5)
        network = create_network(
            spec, W=create_network(spec).W, b=[0.3 * rng.randn(n, 1) for n in spec.layer_dims[1:]]
        )
        X = rng.randn(3, 6)
        assert far_from_kinks(network, X)
        result = gradient_check(network, X, labels(spec, 6, rng))
        assert result.difference < 1e-7, (hidden, result)


def test_float32_network_is_checked_in_float64_and_left_untouched() -> None:
    spec = build_spec([3, 4, 1], hidden_activation="tanh", dtype="float32", seed=2)
    network = create_network(spec)
    before = [w.copy() for w in network.W]
    rng = np.random.RandomState(0)
    X, Y = rng.randn(3, 5).astype(np.float32), labels(spec, 5, rng)
    result = gradient_check(network, X, Y)
    assert result.difference < 1e-7  # float32 arithmetic could not get below ~1e-3
    for w, b in zip(network.W, before, strict=True):
        assert w.dtype == np.float32
        np.testing.assert_array_equal(w, b)


def test_result_fields_and_thresholds() -> None:
    spec = build_spec([2, 3, 1], hidden_activation="tanh", seed=1)
    network = create_network(spec)
    rng = np.random.RandomState(1)
    X, Y = rng.randn(2, 4), labels(spec, 4, rng)
    result = gradient_check(network, X, Y)
    assert result.threshold == 2e-7
    assert result.passed
    assert result.parameters_checked == 2 * 3 + 3 + 3 + 1
    assert all(dW < 1e-6 and db < 1e-6 for dW, db in result.layers)
    strict = gradient_check(network, X, Y, threshold=1e-30)
    assert not strict.passed
    assert strict.difference == result.difference


def test_a_wrong_derivative_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The oracle habit: break backprop on purpose and the check must notice.
    tanh = ACTIVATIONS["tanh"]
    wrong = Activation(  # should be 1 - A^2
        tanh.forward, lambda dA, Z, A, out: dA * (1 - A), tanh.backward_in_place
    )
    monkeypatch.setitem(ACTIVATIONS, "tanh", wrong)
    spec = build_spec([2, 3, 1], hidden_activation="tanh", seed=1)
    rng = np.random.RandomState(1)
    X, Y = rng.randn(2, 4), labels(spec, 4, rng)
    result = gradient_check(create_network(spec), X, Y)
    assert not result.passed
    assert result.layers[0][0] > 1e-3  # layer 1 is wrong ...
    assert result.layers[1][0] < 1e-7  # ... layer 2's dW does not involve tanh'


def test_the_optimizer_plays_no_part_in_the_check() -> None:
    rng = np.random.RandomState(3)
    X = rng.randn(2, 4)
    results = []
    for name in ("gd", "momentum", "adam"):
        spec = build_spec([2, 3, 1], hidden_activation="tanh", optimizer=OptimizerSpec(name=name))
        results.append(gradient_check(create_network(spec), X, [[0, 1, 1, 0]]).difference)
    assert results[0] == results[1] == results[2]
