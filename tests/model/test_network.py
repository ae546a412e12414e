"""A network's state (model.network): the flat parameter vector and its views, the moments,
creation from a seed or from given parameters, replacement, copies."""

from __future__ import annotations

import numpy as np
import pytest

from model import (
    ModelError,
    Network,
    OptimizerSpec,
    TrainOptions,
    build_spec,
    create_network,
    replace_parameters,
    train,
)
from model.network import MOMENTS, Layout

from .helpers import assert_networks_equal, make_data

DIMS = [4, 3, 2, 1]  # W1 (3, 4), W2 (2, 3), W3 (1, 2); b1 (3, 1), b2 (2, 1), b3 (1, 1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
def test_a_new_network_is_one_flat_vector_with_views(optimizer: str, dtype: str) -> None:
    spec = build_spec(DIMS, dtype=dtype, seed=4, optimizer=OptimizerSpec(name=optimizer))
    network = create_network(spec)
    size = 3 * 4 + 2 * 3 + 1 * 2 + 3 + 2 + 1
    assert spec.parameter_count == network.layout.size == size == 26
    assert network.theta.shape == (size,)
    assert network.theta.dtype == dtype
    k = {"gd": 0, "momentum": 1, "adam": 2}[optimizer]
    assert network.moments.shape == (k, size)
    assert network.moments.dtype == dtype
    assert not network.moments.any()
    assert (network.optimizer_t, network.steps_trained) == (0, 0)
    assert [w.shape for w in network.W] == [(3, 4), (2, 3), (1, 2)]
    assert [x.shape for x in network.b] == [(3, 1), (2, 1), (1, 1)]
    # Laid out [W1, ..., WL, b1, ..., bL], each view C-contiguous and writing through.
    pieces = [w.ravel() for w in network.W] + [x.ravel() for x in network.b]
    np.testing.assert_array_equal(np.concatenate(pieces), network.theta)
    for view in [*network.W, *network.b]:
        assert np.shares_memory(view, network.theta)
        assert view.flags.c_contiguous
        assert view.dtype == dtype
    network.W[1][0, 2] = 7.0
    assert network.theta[12 + 2] == 7.0
    network.b[2][0, 0] = -3.0
    assert network.theta[-1] == -3.0
    assert list(network.moment_views) == list(MOMENTS[optimizer])
    for W, b in network.moment_views.values():
        assert [w.shape for w in W] == [(3, 4), (2, 3), (1, 2)]
        assert [x.shape for x in b] == [(3, 1), (2, 1), (1, 1)]
        assert all(np.shares_memory(a, network.moments) for a in [*W, *b])


def test_layout_views_and_layer_of() -> None:
    layout = Layout(build_spec(DIMS))
    assert layout.W_shapes == [(3, 4), (2, 3), (1, 2)]
    assert layout.b_shapes == [(3, 1), (2, 1), (1, 1)]
    assert layout.n_W == 20
    vector = np.arange(26.0)
    W, b = layout.views(vector)
    np.testing.assert_array_equal(W[0], np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(b[0], [[20.0], [21.0], [22.0]])
    flat = layout.flat(vector)
    assert flat.vector is vector
    assert all(np.shares_memory(a, vector) for a in [*flat.W, *flat.b])
    np.testing.assert_array_equal(
        layout.layer_of(), [0] * 12 + [1] * 6 + [2] * 2 + [0] * 3 + [1] * 2 + [2]
    )


def test_biases_start_at_zero() -> None:
    network = create_network(build_spec(DIMS, seed=1))
    assert all(not x.any() for x in network.b)


def test_given_parameters_are_validated_copied_and_cast() -> None:
    spec = build_spec([2, 1], dtype="float32")
    W = [np.array([[1, 2]])]  # integers
    b = [[[0.5]]]  # nested lists
    network = create_network(spec, W=W, b=b)
    assert network.theta.dtype == np.float32
    np.testing.assert_array_equal(network.theta, [1.0, 2.0, 0.5])
    W[0][0, 0] = 99
    assert network.W[0][0, 0] == 1.0
    given = np.array([[1.0, 2.0]])
    again = create_network(build_spec([2, 1]), W=[given], b=[np.zeros((1, 1))])
    assert not np.shares_memory(again.W[0], given)


def test_replace_parameters_resets_the_optimizer_and_keeps_the_steps() -> None:
    spec = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam", learning_rate=0.01))
    X, Y = make_data(spec, 8)
    trained = train(create_network(spec), X, Y, TrainOptions(epochs=3)).network
    assert (trained.optimizer_t, trained.steps_trained) == (3, 3)
    assert trained.moments.any()
    before = trained.copy()
    W = [np.ones((2, 3)), np.ones((1, 2))]
    b = [np.zeros((2, 1)), np.zeros((1, 1))]
    replaced = replace_parameters(trained, W, b)
    assert replaced is not trained
    assert replaced.spec == spec
    assert (replaced.optimizer_t, replaced.steps_trained) == (0, 3)
    assert not replaced.moments.any()
    np.testing.assert_array_equal(replaced.W[0], W[0])
    assert_networks_equal(trained, before)  # the input is untouched


def test_copy_is_deep() -> None:
    spec = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="momentum"))
    network = create_network(spec)
    network.optimizer_t, network.steps_trained = 2, 5
    copy = network.copy()
    assert_networks_equal(copy, network)
    assert not np.shares_memory(copy.theta, network.theta)
    assert not np.shares_memory(copy.moments, network.moments)
    copy.W[0][0, 0] += 1
    copy.moment_views["v"][0][0][0, 0] += 1
    assert network.W[0][0, 0] != copy.W[0][0, 0]
    assert network.moments[0, 0] == 0


def test_empty_like_and_copy_into() -> None:
    spec = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam"), dtype="float32")
    network = create_network(spec)
    network.moments[...] = 0.5
    network.optimizer_t, network.steps_trained = 4, 9
    empty = network.empty_like()
    assert empty.spec == spec
    assert empty.theta.shape == network.theta.shape
    assert empty.moments.shape == network.moments.shape
    assert empty.theta.dtype == empty.moments.dtype == np.float32
    assert (empty.optimizer_t, empty.steps_trained) == (0, 0)
    assert not np.shares_memory(empty.theta, network.theta)
    theta, moments = empty.theta, empty.moments
    assert network.copy_into(empty) is empty
    assert empty.theta is theta  # written into, not replaced
    assert empty.moments is moments
    assert_networks_equal(empty, network)


@pytest.mark.parametrize(
    ("theta", "moments"),
    [((18,), (1, 19)), ((19,), (2, 19)), ((19,), (19,)), ((20,), (1, 20))],
)
def test_a_network_of_the_wrong_size_is_refused(
    theta: tuple[int, ...], moments: tuple[int, ...]
) -> None:
    spec = build_spec([4, 3, 1], optimizer=OptimizerSpec(name="momentum"))  # 19 parameters
    with pytest.raises(ModelError) as caught:
        Network(spec, np.zeros(theta), np.zeros(moments))
    assert str(caught.value) == (
        "A momentum network of 19 parameters needs theta (19,) and moments (1, 19); "
        f"received {theta} and {moments}."
    )


def test_parameter_count() -> None:
    assert build_spec([12288, 20, 7, 5, 1]).parameter_count == (
        12288 * 20 + 20 + 20 * 7 + 7 + 7 * 5 + 5 + 5 * 1 + 1
    )
