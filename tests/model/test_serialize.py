"""Serialization (model.serialize): a network's state as raw little-endian bytes and back,
bit for bit, and refusal of bytes that are not the network's state."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from model import (
    ModelError,
    Network,
    OptimizerSpec,
    TrainOptions,
    build_spec,
    create_network,
    network_from_bytes,
    state_bytes,
    train,
)

from .helpers import assert_networks_equal, make_data


def restore(network: Network) -> Network:
    theta, moments = state_bytes(network)
    return network_from_bytes(
        network.spec,
        theta,
        moments,
        optimizer_t=network.optimizer_t,
        steps_trained=network.steps_trained,
    )


def trained(optimizer: str, dtype: str) -> Network:
    spec = build_spec(
        [4, 5, 3],
        output_activation="softmax",
        dtype=dtype,
        seed=8,
        l2_lambda=0.25,
        keep_prob=0.8,
        optimizer=OptimizerSpec(name=optimizer, learning_rate=0.02, beta=0.8, beta2=0.99),
    )
    X, Y = make_data(spec, 9)
    return train(create_network(spec), X, Y, TrainOptions(epochs=3, batch_size=4)).network


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_after_training_is_bit_for_bit(optimizer: str, dtype: str) -> None:
    network = trained(optimizer, dtype)
    assert network.steps_trained == network.optimizer_t == 9
    restored = restore(network)
    assert_networks_equal(restored, network)  # dtypes and counters included
    assert restored.theta.flags.writeable
    assert restored.moments.flags.writeable
    assert not np.shares_memory(restored.theta, network.theta)
    # ... and training continues identically from either copy.
    X, Y = make_data(network.spec, 9)
    options = TrainOptions(epochs=2, batch_size=4, shuffle_seed=1)
    assert_networks_equal(
        train(restored, X, Y, options).network, train(network, X, Y, options).network
    )


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_bytes_are_the_raw_little_endian_arrays(optimizer: str, dtype: str) -> None:
    network = trained(optimizer, dtype)
    theta, moments = state_bytes(network)
    little = np.dtype(dtype).newbyteorder("<")
    size, k = network.spec.parameter_count, len(network.moment_views)
    assert len(theta) == size * little.itemsize
    assert len(moments) == k * size * little.itemsize
    assert bytes(theta) == network.theta.astype(little).tobytes()
    assert bytes(moments) == network.moments.astype(little).tobytes()
    if sys.byteorder == "little":  # the arrays' own memory, not copies
        assert np.shares_memory(np.frombuffer(theta, little), network.theta)


def test_the_counters_travel_beside_the_bytes() -> None:
    network = create_network(build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam")))
    theta, moments = state_bytes(network)
    restored = network_from_bytes(network.spec, theta, moments, optimizer_t=4, steps_trained=12)
    assert (restored.optimizer_t, restored.steps_trained) == (4, 12)


def test_the_restored_network_owns_its_arrays() -> None:
    network = create_network(build_spec([3, 2, 1], optimizer=OptimizerSpec(name="momentum")))
    theta, moments = (bytearray(part) for part in state_bytes(network))
    restored = network_from_bytes(network.spec, theta, moments, optimizer_t=0, steps_trained=0)
    theta[:8] = np.float64(123.0).tobytes()
    assert restored.theta[0] == network.theta[0] != 123.0


def good_parts(spec_dtype: str = "float64") -> tuple[Network, bytes, bytes]:
    network = create_network(
        build_spec([3, 2, 1], dtype=spec_dtype, optimizer=OptimizerSpec(name="adam"))
    )
    theta, moments = state_bytes(network)
    return network, bytes(theta), bytes(moments)


@pytest.mark.parametrize(
    ("theta_change", "moments_change", "received"),
    [
        (lambda t: t[:-8], lambda m: m, "received 80 and 176"),
        (lambda t: t, lambda m: m[:64], "received 88 and 64"),
        (lambda t: t + t, lambda m: m, "received 176 and 176"),
        (lambda t: b"", lambda m: b"", "received 0 and 0"),
    ],
)
def test_wrong_byte_counts_are_refused(
    theta_change: object, moments_change: object, received: str
) -> None:
    network, theta, moments = good_parts()
    assert callable(theta_change)
    assert callable(moments_change)
    with pytest.raises(ModelError) as caught:
        network_from_bytes(
            network.spec,
            theta_change(theta),
            moments_change(moments),
            optimizer_t=0,
            steps_trained=0,
        )
    assert str(caught.value) == (
        "These bytes are not this network's state: 11 float64 parameters and 2 moment vectors "
        f"need 88 and 176 bytes; {received}."
    )


def test_the_bytes_of_another_dtype_are_refused() -> None:
    _, theta, moments = good_parts("float32")
    spec64 = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam"))
    with pytest.raises(ModelError, match="need 88 and 176 bytes; received 44 and 88"):
        network_from_bytes(spec64, theta, moments, optimizer_t=0, steps_trained=0)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    ("part", "name"), [(0, "the stored parameters"), (1, "the stored optimizer moments")]
)
def test_non_finite_bytes_are_refused(value: float, part: int, name: str) -> None:
    network, theta, moments = good_parts()
    parts = [bytearray(theta), bytearray(moments)]
    parts[part][16:24] = np.float64(value).tobytes()  # entry 2
    with pytest.raises(ModelError) as caught:
        network_from_bytes(
            network.spec, bytes(parts[0]), bytes(parts[1]), optimizer_t=0, steps_trained=0
        )
    assert str(caught.value) == (
        f"{name} must contain only finite numbers; received 1 NaN or infinite entry "
        "(first at row 0, column 2)."
    )


@pytest.mark.parametrize(
    ("optimizer_t", "steps_trained", "message"),
    [
        (-1, 0, "optimizer_t must be an integer >= 0; received -1."),
        (0, -2, "steps_trained must be an integer >= 0; received -2."),
        (1.5, 0, "optimizer_t must be an integer; received 1.5."),
    ],
)
def test_bad_counters_are_refused(optimizer_t: object, steps_trained: object, message: str) -> None:
    network, theta, moments = good_parts()
    with pytest.raises(ModelError) as caught:
        network_from_bytes(
            network.spec,
            theta,
            moments,
            optimizer_t=optimizer_t,  # type: ignore[arg-type]
            steps_trained=steps_trained,  # type: ignore[arg-type]
        )
    assert str(caught.value) == message
