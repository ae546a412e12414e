"""Initialization: the seeded stream, the scales, and bit-compatibility with the course."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from model import INITIALIZATION_NAMES, build_spec, create_network
from model.initializers import SCALES


def course_initialize_parameters_deep(layer_dims: list[int]) -> dict[str, np.ndarray]:
    """The course's dnn_app_utils_v3.initialize_parameters_deep, verbatim but for the restore.

    It seeds numpy's GLOBAL state, which the model never touches; the test saves and
    restores that state around it.
    """
    saved = np.random.get_state()
    try:
        np.random.seed(1)
        parameters = {}
        L = len(layer_dims)
        for l in range(1, L):
            parameters["W" + str(l)] = np.random.randn(layer_dims[l], layer_dims[l - 1]) / np.sqrt(
                layer_dims[l - 1]
            )
            parameters["b" + str(l)] = np.zeros((layer_dims[l], 1))
        return parameters
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("layer_dims", [[12288, 20, 7, 5, 1], [5, 4, 3, 1], [2, 1]])
def test_seed_1_xavier_is_bit_for_bit_the_course(layer_dims: list[int]) -> None:
    expected = course_initialize_parameters_deep(layer_dims)
    network = create_network(build_spec(layer_dims, initialization="xavier", seed=1))
    for l in range(1, len(layer_dims)):
        W, b = network.W[l - 1], network.b[l - 1]
        assert W.dtype == np.float64
        assert W.tobytes() == expected[f"W{l}"].tobytes()  # bit for bit, not approximately
        assert b.tobytes() == expected[f"b{l}"].tobytes()
        assert np.shares_memory(W, network.theta)  # the views of the flat vector


def course_seed_3(layers_dims: list[int], he: bool) -> dict[str, np.ndarray]:
    """The course's other two, with np.random.seed(3): initialize_parameters_he (Improving
    Deep Neural Networks, Initialization) and the Step by Step initialize_parameters_deep
    (randn * 0.01)."""
    saved = np.random.get_state()
    try:
        np.random.seed(3)
        parameters = {}
        for l in range(1, len(layers_dims)):
            draw = np.random.randn(layers_dims[l], layers_dims[l - 1])
            parameters["W" + str(l)] = (
                draw * np.sqrt(2.0 / layers_dims[l - 1]) if he else draw * 0.01
            )
        return parameters
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize(("name", "he"), [("he", True), ("scaled_normal", False)])
def test_seed_3_he_and_scaled_normal_are_bit_for_bit_the_course(name: str, he: bool) -> None:
    dims = [2, 4, 1]
    expected = course_seed_3(dims, he)
    network = create_network(build_spec(dims, initialization=name, seed=3))
    for l in range(1, len(dims)):
        assert network.W[l - 1].tobytes() == expected[f"W{l}"].tobytes()


def test_model_never_touches_the_global_random_state() -> None:
    saved = np.random.get_state()
    try:
        np.random.seed(123)
        expected = np.random.rand()
        np.random.seed(123)
        create_network(build_spec([6, 5, 1], seed=3))
        assert np.random.rand() == expected  # the global stream did not advance
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("name", INITIALIZATION_NAMES)
def test_scales_follow_one_stream(name: str) -> None:
    dims = [6, 5, 4, 3]
    network = create_network(build_spec(dims, initialization=name, seed=7))
    rng = np.random.RandomState(7)
    scales: dict[str, Callable[[int, int], float]] = {
        "he": lambda p, n: float(np.sqrt(2 / p)),
        "xavier": lambda p, n: float(1 / np.sqrt(p)),
        "glorot": lambda p, n: float(np.sqrt(2 / (p + n))),
        "scaled_normal": lambda p, n: 0.01,
        "zeros": lambda p, n: 0.0,
    }
    expected_scale = scales[name]
    for l in range(1, len(dims)):
        draw = rng.randn(dims[l], dims[l - 1])  # drawn for every layer, in order
        np.testing.assert_allclose(
            network.W[l - 1], draw * expected_scale(dims[l - 1], dims[l]), rtol=1e-15
        )
        np.testing.assert_array_equal(network.b[l - 1], np.zeros((dims[l], 1)))
    assert set(SCALES) == set(INITIALIZATION_NAMES)


def test_same_seed_same_parameters_different_seed_different() -> None:
    a = create_network(build_spec([4, 3, 1], seed=5))
    b = create_network(build_spec([4, 3, 1], seed=5))
    c = create_network(build_spec([4, 3, 1], seed=6))
    for x, y, z in zip(a.W, b.W, c.W, strict=True):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)


def test_zeros_are_positive_zeros() -> None:
    network = create_network(build_spec([4, 3, 1], initialization="zeros", seed=1))
    for W in network.W:
        assert not np.signbit(W).any()


def test_float32_is_the_cast_float64_draw() -> None:
    w64 = create_network(build_spec([5, 4, 1], seed=2, initialization="xavier"))
    w32 = create_network(build_spec([5, 4, 1], seed=2, initialization="xavier", dtype="float32"))
    for a, b in zip(w64.W, w32.W, strict=True):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a.astype(np.float32), b)
