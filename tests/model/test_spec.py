"""Specs: defaults, derived properties, dropout, and the dict round trip."""

from __future__ import annotations

import numpy as np
import pytest

from model import (
    ACTIVATION_NAMES,
    INITIALIZATION_NAMES,
    LOSS_NAMES,
    OPTIMIZER_NAMES,
    DropoutSpec,
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
    assert spec.dropout is None
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
        "dropout": None,
    }
    assert NetworkSpec.from_dict(d) == spec
    assert hash(NetworkSpec.from_dict(d)) == hash(spec)


def test_to_dict_and_back_with_dropout() -> None:
    spec = build_spec([4, 3, 5, 1], keep_prob=[0.5, 1], dropout_seed=7)
    d = spec.to_dict()
    assert d["dropout"] == {"keep_prob": [0.5, 1.0], "seed": 7}
    again = NetworkSpec.from_dict(d)
    assert again == spec
    assert hash(again) == hash(spec)
    assert again.dropout == DropoutSpec(keep_prob=(0.5, 1.0), seed=7)


def test_a_dict_stored_before_dropout_existed_has_no_dropout() -> None:
    spec = build_spec([4, 3, 1], seed=2)
    old = {k: v for k, v in spec.to_dict().items() if k != "dropout"}
    assert NetworkSpec.from_dict(old) == spec
    assert NetworkSpec.from_dict(old).dropout is None


def test_one_keep_prob_applies_to_every_hidden_layer() -> None:
    spec = build_spec([4, 3, 5, 6, 1], keep_prob=0.8, dropout_seed=3)
    assert spec.dropout == DropoutSpec(keep_prob=(0.8, 0.8, 0.8), seed=3)
    assert isinstance(spec.dropout.keep_prob, tuple)
    assert build_spec([4, 3, 1], keep_prob=1).dropout == DropoutSpec((1.0,), 0)
    assert build_spec([4, 3, 1]).dropout is None  # no keep_prob: no dropout


def test_dropout_leaves_parameters_and_their_count_alone() -> None:
    with_dropout = build_spec([4, 3, 1], keep_prob=0.5)
    assert with_dropout.parameter_count == build_spec([4, 3, 1]).parameter_count == 19
    assert with_dropout != build_spec([4, 3, 1])


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


@pytest.mark.parametrize(
    ("dropout", "message"),
    [
        ([0.5], "dropout must be a mapping or null; received [0.5]"),
        ({"keep_prob": [0.5]}, "exactly the keys keep_prob, seed; received ['keep_prob']"),
        ({"keep_prob": [0.5], "seed": 0, "rate": 1}, "received ['keep_prob', 'rate', 'seed']"),
        ({"keep_prob": [0.5, 0.5], "seed": 0}, "one per hidden layer (L - 1 = 1); received 2"),
        ({"keep_prob": [0.0], "seed": 0}, "keep_prob[0] must be a finite number in (0, 1]"),
        ({"keep_prob": 0.5, "seed": 0}, "keep_prob must be a list of numbers; received 0.5"),
        ({"keep_prob": [0.5], "seed": -1}, "dropout seed must be an integer in [0, 4294967295]"),
    ],
)
def test_from_dict_refuses_a_bad_dropout(dropout: object, message: str) -> None:
    d = {**build_spec([3, 2, 1]).to_dict(), "dropout": dropout}
    with pytest.raises(ModelError) as caught:
        NetworkSpec.from_dict(d)
    assert message in str(caught.value)


def test_optimizer_spec_to_dict_keeps_the_fields_it_uses() -> None:
    assert OptimizerSpec().to_dict() == {"name": "gd", "learning_rate": 0.0075}
    assert OptimizerSpec(name="momentum", beta=0.8).to_dict() == {
        "name": "momentum",
        "learning_rate": 0.0075,
        "beta": 0.8,
    }
    assert OptimizerSpec(name="adam").to_dict() == {
        "name": "adam",
        "learning_rate": 0.0075,
        "beta1": 0.9,
        "beta2": 0.999,
        "epsilon": 1e-8,
    }
    adam = OptimizerSpec(name="adam", learning_rate=0.5, beta1=0.8)
    assert OptimizerSpec.from_dict(adam.to_dict()) == adam
