"""Serialization: lossless round trips, and refusal of anything that is not a network."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from model import (
    ModelError,
    OptimizerSpec,
    TrainOptions,
    build_spec,
    create_network,
    from_bytes,
    to_bytes,
    train,
)

from .helpers import assert_networks_equal, make_data


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_after_training_is_lossless(optimizer: str, dtype: str) -> None:
    spec = build_spec(
        [4, 5, 3],
        output_activation="softmax",
        dtype=dtype,
        seed=8,
        l2_lambda=0.25,
        optimizer=OptimizerSpec(name=optimizer, learning_rate=0.02, beta=0.8, beta2=0.99),
    )
    X, Y = make_data(spec, 9)
    trained = train(create_network(spec), X, Y, TrainOptions(epochs=3, batch_size=4)).network
    restored = from_bytes(to_bytes(trained))
    assert_networks_equal(restored, trained)  # bit for bit, dtypes included
    assert restored.steps_trained == 9
    assert restored.optimizer_t == 9
    # ... and training continues identically from either copy.
    a = train(trained, X, Y, TrainOptions(epochs=2, batch_size=4, shuffle_seed=1)).network
    b = train(restored, X, Y, TrainOptions(epochs=2, batch_size=4, shuffle_seed=1)).network
    assert_networks_equal(a, b)


def test_round_trip_keeps_the_spec_and_a_replaced_optimizer_clock() -> None:
    spec = build_spec([3, 2, 1], activations=["leaky_relu", "tanh"], initialization="glorot")
    network = create_network(spec)
    network.steps_trained, network.optimizer_t = 12, 4
    restored = from_bytes(to_bytes(network))
    assert restored.spec == spec
    assert (restored.steps_trained, restored.optimizer_t) == (12, 4)


def test_the_bytes_are_an_npz_without_pickles() -> None:
    data = to_bytes(create_network(build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam"))))
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        names = set(archive.files)
        header = json.loads(archive["header"].tobytes())
    assert names == {"header", "W1", "W2", "b1", "b2"} | {
        f"{k}{l}" for k in ("vW", "vb", "sW", "sb") for l in (1, 2)
    }
    assert header["format"] == "backprop-service/network"
    assert header["spec"]["optimizer"]["name"] == "adam"


def rewrite(data: bytes, **changes: object) -> bytes:
    """The archive with some members replaced (None removes one)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def header_bytes(**changes: object) -> np.ndarray:
    spec = build_spec([3, 2, 1])
    header: dict[str, object] = {
        "format": "backprop-service/network",
        "version": 1,
        "spec": spec.to_dict(),
        "steps_trained": 0,
        "optimizer_t": 0,
    }
    header.update(changes)
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda good: b"", "not a serialized network"),
        (lambda good: b"not an archive at all", "not a serialized network"),
        (lambda good: good[: len(good) // 2], "not a serialized network"),
        (lambda good: rewrite(good, header=None), "header"),
        (lambda good: rewrite(good, header=np.frombuffer(b"{nope", np.uint8)), "header"),
        (lambda good: rewrite(good, header=header_bytes(format="other")), "format"),
        (lambda good: rewrite(good, header=header_bytes(version=99)), "version"),
        (lambda good: rewrite(good, W2=None), "members"),
        (lambda good: rewrite(good, W2=np.ones((1, 2), np.float32)), "dtype"),
        (lambda good: rewrite(good, W2=np.ones((2, 1))), r"W2 \(layer 2\) must have shape"),
        (lambda good: rewrite(good, b1=np.full((2, 1), np.nan)), "finite"),
        (lambda good: rewrite(good, header=header_bytes(steps_trained=-1)), "steps_trained"),
    ],
)
def test_refuses_anything_but_a_network(make: object, message: str) -> None:
    good = to_bytes(create_network(build_spec([3, 2, 1])))
    assert callable(make)
    with pytest.raises(ModelError, match=message):
        from_bytes(make(good))


def test_refuses_a_bare_npy_and_pickles() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    with pytest.raises(ModelError, match="npz"):
        from_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelError, match="not a serialized network"):
        from_bytes(buffer.getvalue())
