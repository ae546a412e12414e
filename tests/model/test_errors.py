"""Every bad input raises ModelError, naming what was expected and what was received."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from model import (
    DropoutSpec,
    ModelError,
    Network,
    NetworkSpec,
    OptimizerSpec,
    Trainer,
    TrainingDiverged,
    TrainOptions,
    build_spec,
    compute_gradients,
    create_network,
    evaluate,
    gradient_check,
    predict,
    replace_parameters,
    train,
)

from .helpers import assert_networks_equal


def test_the_family_is_value_errors() -> None:
    assert issubclass(ModelError, ValueError)
    assert issubclass(TrainingDiverged, ModelError)


def test_x_one_row_per_example_gets_the_transpose_hint() -> None:
    network = create_network(build_spec([2, 3, 1]))
    X = np.ones((5, 2))
    with pytest.raises(ModelError) as caught:
        predict(network, X)
    assert str(caught.value) == (
        "X must have shape (n_x, m) = (2, m) with examples as columns; received (5, 2). "
        "It looks like one row per example: transpose X."
    )


BINARY = build_spec([2, 3, 1], keep_prob=0.5)
SOFTMAX = build_spec([2, 3, 3], output_activation="softmax")
GOOD_X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])

X_ERRORS: list[tuple[NetworkSpec, object, object, list[str]]] = [
    # (spec, X, Y, fragments of the message)
    (BINARY, np.ones((3, 4)), [[0, 1, 0, 1]], ["(n_x, m) = (2, m)", "received (3, 4)"]),
    (BINARY, np.ones(4), [[0, 1, 0, 1]], ["2-D array", "1-D array of shape (4,)"]),
    (BINARY, np.ones((2, 2, 2)), [[0, 1]], ["2-D array", "3-D array"]),
    (BINARY, np.ones((2, 0)), np.ones((1, 0)), ["at least one example", "received shape (2, 0)"]),
    (
        BINARY,
        [[1.0, np.nan], [0.0, 1.0]],
        [[0, 1]],
        ["finite", "1 NaN or infinite entry", "row 0, column 1"],
    ),
    (BINARY, [[1.0, np.inf], [-np.inf, 1.0]], [[0, 1]], ["finite", "2 NaN or infinite entries"]),
    (BINARY, [["a", "b"], ["c", "d"]], [[0, 1]], ["real numbers", "received dtype <U1"]),
    (BINARY, [[1.0, 2.0], [3.0]], [[0, 1]], ["rectangular array of numbers"]),
    (BINARY, None, [[0, 1]], ["X must be an array of real numbers", "dtype object"]),
]
DATA_ERRORS = [
    *X_ERRORS,
    (BINARY, GOOD_X, [[0, 1]], ["Y must have shape (n_L, m) = (1, 3)", "received (1, 2)", "m = 3"]),
    (BINARY, GOOD_X, [[0], [1], [1]], ["(1, 3)", "received (3, 1)", "transpose Y"]),
    (BINARY, GOOD_X, [[0, 1, 2]], ["binary_cross_entropy must lie in [0, 1]", "from 0 to 2"]),
    (BINARY, GOOD_X, [[0, -0.5, 1]], ["[0, 1]", "from -0.5 to 1"]),
    (BINARY, GOOD_X, [[0, np.nan, 1]], ["Y must contain only finite numbers"]),
    (BINARY, GOOD_X, [0, 1, 1], ["Y must be a 2-D array", "1-D array of shape (3,)"]),
    (SOFTMAX, GOOD_X, [[0, 3, 1]], ["Class indices", "[0, 3)", "received 3", "column 1"]),
    (SOFTMAX, GOOD_X, [[0, 1.5, 1]], ["Class indices", "integers", "1.5"]),
    (SOFTMAX, GOOD_X, [[0, -1, 1]], ["Class indices", "-1"]),
    (
        SOFTMAX,
        GOOD_X,
        [[1, 0, 0], [0, 1, 0], [0, 1, 1]],
        ["columns that sum to 1", "column 1 sums to 2"],
    ),
    (
        SOFTMAX,
        GOOD_X,
        [[1, 0], [0, 1], [0, 0]],
        ["(3, 3) (one-hot columns) or (1, 3) (class indices)"],
    ),
    (SOFTMAX, GOOD_X, [[2, 0, 0], [-1, 1, 0], [0, 0, 1]], ["must lie in [0, 1]"]),
]


@pytest.mark.parametrize(("spec", "X", "Y", "fragments"), DATA_ERRORS)
@pytest.mark.parametrize(
    "call",
    [
        lambda net, X, Y: compute_gradients(net, X, Y),
        lambda net, X, Y: train(net, X, Y, TrainOptions(epochs=2)),
        lambda net, X, Y: Trainer(net, X, Y, TrainOptions()),
        lambda net, X, Y: evaluate(net, X, Y),
        lambda net, X, Y: gradient_check(net, X, Y),
    ],
    ids=["compute_gradients", "train", "Trainer", "evaluate", "gradient_check"],
)
def test_bad_data_is_refused_and_nothing_is_mutated(
    spec: NetworkSpec, X: object, Y: object, fragments: list[str], call: Callable[..., object]
) -> None:
    network = create_network(spec)
    before = network.copy()
    X_before = X.copy() if isinstance(X, np.ndarray) else None
    with pytest.raises(ModelError) as caught:
        call(network, X, Y)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert_networks_equal(network, before)
    if isinstance(X, np.ndarray):
        np.testing.assert_array_equal(X, X_before)  # not even cast in place


@pytest.mark.parametrize(("spec", "X", "Y", "fragments"), X_ERRORS)
def test_bad_X_is_refused_by_predict(
    spec: NetworkSpec, X: object, Y: object, fragments: list[str]
) -> None:
    network = create_network(spec)
    before = network.copy()
    with pytest.raises(ModelError) as caught:
        predict(network, X)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert_networks_equal(network, before)


@pytest.mark.parametrize(
    "call",
    [
        lambda net, X: compute_gradients(net, X, [[0, 1]]),
        lambda net, X: Trainer(net, X, [[0, 1]]),
        lambda net, X: evaluate(net, X, [[0, 1]]),
        lambda net, X: predict(net, X),
    ],
    ids=["compute_gradients", "Trainer", "evaluate", "predict"],
)
def test_X_beyond_float32_is_refused_by_a_float32_network(call: Callable[..., object]) -> None:
    # Finite in float64, infinite once cast. (gradient_check runs in float64, and takes it.)
    network = create_network(build_spec([2, 1], dtype="float32"))
    with pytest.raises(ModelError) as caught:
        call(network, [[1e39, 0.0], [0.0, 0.0]])
    assert str(caught.value) == (
        "X must contain only finite numbers; received 1 NaN or infinite entry (first at row 0, "
        "column 0). float32 holds magnitudes up to 3.403e+38."
    )


SPEC_ERRORS: list[tuple[Callable[[], object], list[str]]] = [
    (lambda: build_spec([3]), ["at least 2 entries", "received [3]"]),
    (lambda: build_spec([]), ["at least 2 entries"]),
    (lambda: build_spec([3, 0, 1]), ["layer_dims[1] must be an integer >= 1", "received 0"]),
    (lambda: build_spec([3, -2, 1]), ["layer_dims[1]", "received -2"]),
    (lambda: build_spec([3, 2.5, 1]), ["layer_dims[1] must be an integer", "2.5"]),  # type: ignore[list-item]
    (lambda: build_spec("3,2,1"), ["layer_dims must be a list of integers"]),  # type: ignore[arg-type]
    (
        lambda: build_spec([3, 1], output_activation="swish"),
        ["Unknown output activation 'swish'", "relu, leaky_relu"],
    ),
    (lambda: build_spec([3, 2, 1], hidden_activation="gelu"), ["Unknown hidden activation 'gelu'"]),
    (lambda: build_spec([3, 1], activations=["nope"]), ["Unknown activation 'nope'"]),
    (
        lambda: build_spec([3, 2, 1], activations=["relu"]),
        ["one activation per layer (L = 2)", "received 1"],
    ),
    (lambda: build_spec([3, 2, 1], loss="hinge"), ["Unknown loss 'hinge'", "binary_cross_entropy"]),
    (
        lambda: build_spec([3, 1], initialization="orthogonal"),
        ["Unknown initialization 'orthogonal'", "he, xavier"],
    ),
    (lambda: build_spec([3, 1], dtype="float16"), ["Unknown dtype 'float16'", "float64, float32"]),
    (lambda: OptimizerSpec(name="rmsprop"), ["Unknown optimizer 'rmsprop'", "gd, momentum, adam"]),
    (
        lambda: build_spec([3, 2, 1], hidden_activation="softmax"),
        ["softmax is only allowed as the output"],
    ),
    (
        lambda: build_spec([3, 2, 1], activations=["softmax", "sigmoid"]),
        ["softmax is only allowed as the output"],
    ),
    (
        lambda: build_spec([3, 1], output_activation="softmax"),
        ["softmax output needs n_L >= 2", "n_L = 1"],
    ),
    (
        lambda: build_spec([3, 1], output_activation="linear", loss="binary_cross_entropy"),
        ["outputs in (0, 1)", "received linear"],
    ),
    (
        lambda: build_spec([3, 1], loss="categorical_cross_entropy"),
        ["needs n_L >= 2 classes", "n_L = 1"],
    ),
    (
        lambda: OptimizerSpec(learning_rate=0),
        ["learning_rate must be a finite number > 0", "received 0.0"],
    ),
    (lambda: OptimizerSpec(learning_rate=-0.1), ["learning_rate", "> 0", "-0.1"]),
    (lambda: OptimizerSpec(learning_rate=float("nan")), ["learning_rate", "nan"]),
    (lambda: OptimizerSpec(learning_rate=float("inf")), ["learning_rate", "inf"]),
    (
        lambda: OptimizerSpec(name="momentum", beta=1.0),
        ["beta must be a finite number in [0, 1)", "1.0"],
    ),
    (lambda: OptimizerSpec(name="adam", beta2=-0.1), ["beta2", "[0, 1)"]),
    (lambda: OptimizerSpec(name="adam", epsilon=0), ["epsilon must be a finite number > 0"]),
    (lambda: build_spec([3, 1], seed=-1), ["seed must be an integer in [0, 4294967295]", "-1"]),
    (lambda: build_spec([3, 1], seed=2**32), ["seed", "4294967296"]),
    (lambda: build_spec([3, 1], seed=True), ["seed must be an integer", "True"]),
    (lambda: build_spec([3, 1], l2_lambda=-1), ["l2_lambda must be a finite number >= 0", "-1"]),
    (lambda: TrainOptions(epochs=0), ["epochs must be an integer >= 1", "received 0"]),
    (lambda: TrainOptions(epochs=1.5), ["epochs must be an integer", "1.5"]),  # type: ignore[arg-type]
    (lambda: TrainOptions(batch_size=0), ["batch_size", ">= 1", "received 0"]),
    (lambda: TrainOptions(learning_rate=0.0), ["learning_rate must be a finite number > 0"]),
    (lambda: TrainOptions(learning_rate=-1.0), ["learning_rate", "-1.0"]),
    (lambda: TrainOptions(shuffle_seed=-3), ["shuffle_seed", "-3"]),
    (
        lambda: build_spec([3, 2, 1], keep_prob=0),
        ["dropout keep_prob[0] must be a finite number in (0, 1]", "received 0.0"],
    ),
    (lambda: build_spec([3, 2, 1], keep_prob=1.5), ["keep_prob[0]", "(0, 1]", "1.5"]),
    (lambda: build_spec([3, 2, 1], keep_prob=-0.5), ["keep_prob[0]", "(0, 1]", "-0.5"]),
    (lambda: build_spec([3, 2, 1], keep_prob=float("nan")), ["keep_prob[0]", "nan"]),
    (lambda: build_spec([3, 4, 2, 1], keep_prob=[0.5, 2]), ["keep_prob[1]", "received 2.0"]),
    (
        lambda: build_spec([3, 2, 1], keep_prob=[0.5, 0.5]),
        ["one per hidden layer (L - 1 = 1)", "received 2: [0.5, 0.5]"],
    ),
    (
        lambda: build_spec([3, 4, 2, 1], keep_prob=[0.5]),
        ["one per hidden layer (L - 1 = 2)", "received 1: [0.5]"],
    ),
    (
        lambda: build_spec([3, 1], keep_prob=0.5),
        ["Dropout acts on hidden layers", "(L = 1)", "add a hidden layer or leave dropout out"],
    ),
    (lambda: build_spec([3, 1], keep_prob=[0.5]), ["this network has none (L = 1)"]),
    (lambda: build_spec([3, 2, 1], keep_prob="0.5"), ["keep_prob must be a list of numbers"]),  # type: ignore[arg-type]
    (lambda: build_spec([3, 2, 1], keep_prob=[True]), ["keep_prob[0] must be a number", "True"]),
    (
        lambda: build_spec([3, 2, 1], keep_prob=0.5, dropout_seed=-1),
        ["dropout seed must be an integer in [0, 4294967295]", "received -1"],
    ),
    (lambda: DropoutSpec(keep_prob=(0.5,), seed=2**32), ["dropout seed", "4294967296"]),
    (
        lambda: NetworkSpec(
            (3, 2, 1),
            ("relu", "sigmoid"),
            "binary_cross_entropy",
            "he",
            0,
            "float64",
            OptimizerSpec(),
            0.0,
            {"keep_prob": [0.5], "seed": 0},  # type: ignore[arg-type]
        ),
        ["dropout must be a DropoutSpec", "received {'keep_prob': [0.5], 'seed': 0}"],
    ),
]


@pytest.mark.parametrize(("make", "fragments"), SPEC_ERRORS)
def test_bad_specs_and_options_are_refused(
    make: Callable[[], object], fragments: list[str]
) -> None:
    with pytest.raises(ModelError) as caught:
        make()
    for fragment in fragments:
        assert fragment in str(caught.value)


def network() -> Network:
    return create_network(build_spec([3, 2, 1], optimizer=OptimizerSpec(name="momentum")))


PARAMETER_ERRORS: list[tuple[Callable[[Network], object], list[str]]] = [
    (lambda n: create_network(n.spec, W=n.W), ["Give both W and b"]),
    (
        lambda n: replace_parameters(n, [np.ones((2, 3))], n.b),
        ["W must hold one array per layer (L = 2)", "received 1"],
    ),
    (lambda n: replace_parameters(n, 5, n.b), ["W must be a list of L = 2 arrays", "received 5"]),  # type: ignore[arg-type]
    (
        lambda n: replace_parameters(n, [np.ones((3, 2)), np.ones((1, 2))], n.b),
        ["W1 (layer 1) must have shape (n_1, n_0) = (2, 3)", "received (3, 2)"],
    ),
    (
        lambda n: replace_parameters(n, n.W, [np.ones((2,)), np.ones((1, 1))]),
        ["b1 (layer 1) must have shape (n_1, 1) = (2, 1)", "received (2,)"],
    ),
    (
        lambda n: replace_parameters(n, [np.ones((2, 3)), np.full((1, 2), np.inf)], n.b),
        ["W2 must contain only finite numbers", "2 NaN or infinite entries"],
    ),
    (
        lambda n: replace_parameters(n, [np.ones((2, 3)), [["x", "y"]]], n.b),
        ["W2 must be an array of real numbers"],
    ),
    (
        lambda n: gradient_check(n, np.ones((3, 2)), [[0, 1]], epsilon=0),
        ["epsilon must be a finite number > 0", "received 0.0"],
    ),
    (lambda n: gradient_check(n, np.ones((3, 2)), [[0, 1]], threshold=-1), ["threshold", "-1"]),
    (
        lambda n: predict(n, np.ones((2, 3))),
        ["(n_x, m) = (3, m)", "received (2, 3)", "transpose X"],
    ),
    (
        lambda n: compute_gradients(n, np.ones((3, 2)), [[0, 1]], dropout_seed=-1),
        ["dropout_seed must be an integer in [0, 4294967295]", "received -1"],
    ),
    (
        lambda n: compute_gradients(n, np.ones((3, 2)), [[0, 1]], dropout_seed=1.5),  # type: ignore[arg-type]
        ["dropout_seed must be an integer", "1.5"],
    ),
    (
        lambda n: Trainer(n, np.ones((3, 2)), [[0, 1]], {"epochs": 2}),  # type: ignore[arg-type]
        ["options must be a TrainOptions", "received {'epochs': 2}"],
    ),
    (
        lambda n: train(n, np.ones((3, 2)), [[0, 1]], {"epochs": 2}),  # type: ignore[arg-type]
        ["options must be a TrainOptions"],
    ),
    (
        lambda n: Trainer(n, np.ones((3, 2)), [[0, 1]], TrainOptions(epochs=2), start_step=3),
        ["start_step must be an integer in [0, 2]", "received 3"],
    ),
    (
        lambda n: Trainer(n, np.ones((3, 2)), [[0, 1]], start_step=-1),
        ["start_step must be an integer in [0, 1]", "received -1"],
    ),
    (
        lambda n: Trainer(n, np.ones((3, 2)), [[0, 1]]).run(-1),
        ["max_steps must be an integer >= 0", "received -1"],
    ),
    (
        lambda n: Trainer(n, np.ones((3, 2)), [[0, 1]]).run(1.5),  # type: ignore[arg-type]
        ["max_steps must be an integer", "1.5"],
    ),
]


@pytest.mark.parametrize(("call", "fragments"), PARAMETER_ERRORS)
def test_bad_parameters_and_arguments_are_refused(
    call: Callable[[Network], object], fragments: list[str]
) -> None:
    net = network()
    before = net.copy()
    with pytest.raises(ModelError) as caught:
        call(net)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert_networks_equal(net, before)


def test_a_failed_call_changes_nothing_even_after_training_started() -> None:
    # Bad data for a trained network: refused before anything is written.
    spec = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam"), keep_prob=0.5)
    X, Y = np.ones((3, 4)), [[0, 1, 1, 0]]
    trained = train(create_network(spec), X, Y, TrainOptions(epochs=2)).network
    before = trained.copy()
    for call in (
        lambda: train(trained, X, [[0, 1, 2, 0]]),
        lambda: compute_gradients(trained, X.T, Y),
        lambda: replace_parameters(trained, trained.W, [np.ones((3, 1)), np.ones((1, 1))]),
    ):
        with pytest.raises(ModelError):
            call()
        assert_networks_equal(trained, before)
