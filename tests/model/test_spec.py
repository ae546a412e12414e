"""Specs: defaults, derived properties, and the dict round trip."""

from __future__ import annotations

import numpy as np
import pytest

from model import (
    ACTIVATION_NAMES,
    INITIALIZATION_NAMES,
    LOSS_NAMES,
    OPTIMIZER_NAMES,
    ModelError,
    NetworkSpec,
    OptimizerSpec,
    build_spec,
)


def test_name_tables() -> None:
    assert ACTIVATION_NAMES == ("relu", "leaky_relu", "tanh", "sigmoid", "linear", "softmax")
    assert LOSS_NAMES == (
        "binary_cross_entropy",
        "categorical_cross_entropy",
        "mean_squared_error",
    )
    assert INITIALIZATION_NAMES == ("he", "xavier", "glorot", "scaled_normal", "zeros")
    assert OPTIMIZER_NAMES == ("gd", "momentum", "adam")


def test_defaults_follow_the_api() -> None:
    spec = build_spec([12288, 20, 7, 5, 1])
    assert spec.activations == ("relu", "relu", "relu", "sigmoid")
    assert spec.loss == "binary_cross_entropy"
    assert spec.initialization == "he"
    assert spec.seed == 0
    assert spec.dtype == "float64"
    assert spec.optimizer == OptimizerSpec("gd", 0.0075)
    assert spec.l2_lambda == 0.0
    assert (spec.L, spec.n_x, spec.n_L) == (4, 12288, 1)
    assert spec.np_dtype == np.dtype(np.float64)


@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("sigmoid", "binary_cross_entropy"),
        ("softmax", "categorical_cross_entropy"),
        ("linear", "mean_squared_error"),
        ("relu", "mean_squared_error"),
        ("tanh", "mean_squared_error"),
        ("leaky_relu", "mean_squared_error"),
    ],
)
def test_default_loss_follows_the_output(output: str, loss: str) -> None:
    assert build_spec([3, 2], output_activation=output).loss == loss
    assert build_spec([3, 2], activations=[output]).loss == loss


def test_activations_override_hidden_and_output() -> None:
    spec = build_spec(
        [3, 4, 4, 2], hidden_activation="tanh", activations=["relu", "linear", "softmax"]
    )
    assert spec.activations == ("relu", "linear", "softmax")
    assert spec.loss == "categorical_cross_entropy"


def test_single_layer_uses_only_the_output_activation() -> None:
    assert build_spec([3, 1], hidden_activation="tanh").activations == ("sigmoid",)


def test_to_dict_and_back() -> None:
    spec = build_spec(
        [4, 3, 2],
        activations=["leaky_relu", "softmax"],
        initialization="glorot",
        seed=99,
        dtype="float32",
        optimizer=OptimizerSpec(name="adam", learning_rate=0.01, beta1=0.8),
        l2_lambda=0.5,
    )
    d = spec.to_dict()
    assert d == {
        "layer_dims": [4, 3, 2],
        "activations": ["leaky_relu", "softmax"],
        "loss": "categorical_cross_entropy",
        "initialization": "glorot",
        "seed": 99,
        "dtype": "float32",
        "optimizer": {
            "name": "adam",
            "learning_rate": 0.01,
            "beta1": 0.8,
            "beta2": 0.999,
            "epsilon": 1e-8,
        },
        "l2_lambda": 0.5,
    }
    assert NetworkSpec.from_dict(d) == spec
    assert hash(NetworkSpec.from_dict(d)) == hash(spec)


def test_spec_normalizes_sequences_and_numpy_integers() -> None:
    spec = build_spec(np.array([3, 2, 1]).tolist(), seed=np.int64(4))  # type: ignore[arg-type]
    assert spec.layer_dims == (3, 2, 1)
    assert isinstance(spec.seed, int)
    direct = NetworkSpec(
        [3, 2, 1],  # type: ignore[arg-type]
        ["relu", "sigmoid"],  # type: ignore[arg-type]
        "binary_cross_entropy",
        "he",
        0,
        "float64",
        OptimizerSpec(),
        0,
    )
    assert direct.layer_dims == (3, 2, 1)
    assert direct.activations == ("relu", "sigmoid")
    assert isinstance(direct.l2_lambda, float)


def test_unused_hyperparameters_are_reset() -> None:
    assert OptimizerSpec(name="gd", beta=0.5) == OptimizerSpec(name="gd")
    assert OptimizerSpec(name="momentum", beta=0.5).beta == 0.5


def test_from_dict_refuses_unknown_or_missing_keys() -> None:
    d = build_spec([3, 1]).to_dict()
    with pytest.raises(ModelError, match="exactly the keys"):
        NetworkSpec.from_dict({**d, "extra": 1})
    with pytest.raises(ModelError, match="exactly the keys"):
        NetworkSpec.from_dict({k: v for k, v in d.items() if k != "loss"})
    with pytest.raises(ModelError, match="Unknown optimizer field"):
        NetworkSpec.from_dict({**d, "optimizer": {"name": "gd", "momentum": 0.9}})
