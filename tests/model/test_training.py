"""Training: the Trainer against an oracle loop (oracle gradients, oracle updates, the
documented shuffle and dropout streams), records, resumption, the double buffer, divergence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from model import (
    ModelError,
    Network,
    OptimizerSpec,
    StepRecord,
    Trainer,
    TrainingDiverged,
    TrainOptions,
    TrainResult,
    Workspace,
    build_spec,
    compute_gradients,
    create_network,
    network_from_bytes,
    state_bytes,
    train,
)

from . import oracle
from .helpers import assert_close, assert_networks_equal, make_data, with_biases

F = NDArray[np.float64]


@dataclass
class OracleRun:
    state: oracle.State
    records: list[StepRecord]
    steps_trained: int


def oracle_batches(
    m: int, options: TrainOptions, shuffle_seed: int, epoch: int
) -> list[NDArray[np.intp]]:
    """The documented column order: the full batch as it is, or epoch e's
    default_rng([shuffle_seed, e]).permutation(m) cut into batches (the last one smaller)."""
    if options.batch_size is None:
        return [np.arange(m)]
    order = np.random.default_rng([shuffle_seed, epoch]).permutation(m)
    size = options.batch_size
    return [order[k : k + size] for k in range(0, m, size)]


def oracle_masks(network: Network, step: int, mb: int) -> list[NDArray[np.bool_]] | None:
    """The documented masks of global step s: one generator default_rng([dropout_seed, s]),
    D[l] = random((n_l, mb)) < keep_prob[l] for l = 1..L-1 in order."""
    dropout = network.spec.dropout
    if dropout is None:
        return None
    rng = np.random.default_rng([dropout.seed, step])
    hidden = network.spec.layer_dims[1:-1]
    return [rng.random((n, mb)) < keep for n, keep in zip(hidden, dropout.keep_prob, strict=True)]


def oracle_train(
    network: Network, X: F, Y: F, options: TrainOptions, shuffle_seed: int = 0
) -> OracleRun:
    """The course's loop: for each epoch and batch, oracle gradients then an oracle update."""
    spec = network.spec
    lr = options.learning_rate or spec.optimizer.learning_rate
    state, step, records = oracle.state_of(network), network.steps_trained, []
    for epoch in range(options.epochs):
        for columns in oracle_batches(X.shape[1], options, shuffle_seed, epoch):
            step += 1
            D = oracle_masks(network, step, len(columns))
            r = oracle.gradients_of(spec, state.W, state.b, X[:, columns], Y[:, columns], D)
            records.append(StepRecord(step, r.cost))
            state = oracle.update(spec.optimizer, lr, state, r.dW, r.db)
    return OracleRun(state, records, step)


def assert_matches_oracle(network: Network, expected: OracleRun, rtol: float) -> None:
    assert network.steps_trained == expected.steps_trained
    assert network.optimizer_t == expected.state.t
    for a, e in zip([*network.W, *network.b], [*expected.state.W, *expected.state.b], strict=True):
        assert_close(a, e, rtol)
    for name, (W, b) in network.moment_views.items():
        moments = expected.state.v if name == "v" else expected.state.s
        for a, e in zip([*W, *b], moments, strict=True):
            assert_close(a, e, rtol)


def spec_for(
    optimizer: str,
    *,
    activations: tuple[str, ...] = ("relu", "tanh", "softmax"),
    keep_prob: list[float] | None = None,
    dtype: str = "float64",
    l2_lambda: float = 0.1,
    dims: tuple[int, ...] = (4, 5, 3, 3),
) -> Network:
    lr = {"gd": 0.1, "momentum": 0.1, "adam": 0.01}[optimizer]
    spec = build_spec(
        list(dims),
        activations=list(activations),
        dtype=dtype,
        seed=3,
        l2_lambda=l2_lambda,
        keep_prob=keep_prob,
        dropout_seed=11,
        optimizer=OptimizerSpec(name=optimizer, learning_rate=lr, beta=0.8, beta2=0.99),
    )
    return with_biases(spec, seed=3)


BATCHING = [TrainOptions(epochs=30), TrainOptions(epochs=10, batch_size=4, shuffle_seed=7)]


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("options", BATCHING, ids=["full", "mini"])
@pytest.mark.parametrize("keep_prob", [None, [0.8, 0.6]], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize(
    "activations",
    [("relu", "tanh", "softmax"), ("sigmoid", "leaky_relu", "sigmoid")],
    ids=["softmax", "sigmoid"],
)
def test_trainer_matches_the_oracle_loop(
    optimizer: str,
    options: TrainOptions,
    keep_prob: list[float] | None,
    activations: tuple[str, ...],
) -> None:
    network = spec_for(optimizer, activations=activations, keep_prob=keep_prob)
    X, Y = make_data(network.spec, 10, seed=1)
    result = train(network, X, Y, options)
    expected = oracle_train(network, X, Y, options, shuffle_seed=options.shuffle_seed or 0)
    assert len(result.costs) == 30
    assert [r.step for r in result.costs] == [r.step for r in expected.records] == [*range(1, 31)]
    assert_close([r.cost for r in result.costs], [r.cost for r in expected.records], 1e-10)
    assert_matches_oracle(result.network, expected, 1e-10)


@pytest.mark.parametrize(
    ("activations", "dims"),
    [
        (("linear",), (3, 2)),  # linear regression, L = 1
        (("tanh", "relu", "linear"), (3, 4, 2, 2)),
        (("leaky_relu", "tanh", "sigmoid", "tanh"), (3, 4, 4, 3, 2)),  # tanh + MSE
        (("relu", "softmax"), (3, 5, 3)),
    ],
)
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_other_architectures_match_the_oracle_loop(
    activations: tuple[str, ...], dims: tuple[int, ...], optimizer: str
) -> None:
    network = spec_for(optimizer, activations=activations, dims=dims, l2_lambda=0.0)
    X, Y = make_data(network.spec, 7, seed=2)
    options = TrainOptions(epochs=6, batch_size=3, shuffle_seed=4)
    result = train(network, X, Y, options)
    expected = oracle_train(network, X, Y, options, shuffle_seed=4)
    assert_close([r.cost for r in result.costs], [r.cost for r in expected.records], 1e-10)
    assert_matches_oracle(result.network, expected, 1e-10)


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
def test_float32_training_follows_the_oracle_to_float32_rounding(optimizer: str) -> None:
    network = spec_for(optimizer, dtype="float32", keep_prob=[0.9, 0.7])
    X, Y = make_data(network.spec, 10, seed=1)
    options = TrainOptions(epochs=4, batch_size=5, shuffle_seed=2)
    result = train(network, X, Y, options)
    expected = oracle_train(network, X, Y, options, shuffle_seed=2)
    assert_close([r.cost for r in result.costs], [r.cost for r in expected.records], 1e-5)
    assert_matches_oracle(result.network, expected, 1e-4)


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
def test_float32_stays_float32(optimizer: str) -> None:
    network = spec_for(optimizer, dtype="float32", keep_prob=[0.5, 0.5])
    X, Y = make_data(network.spec, 10)  # float64 data, cast once
    result = train(network, X, Y, TrainOptions(epochs=3, batch_size=4))
    assert result.gradients is not None
    k = {"gd": 0, "momentum": 1, "adam": 2}[optimizer]
    assert result.network.moments.shape == (k, network.spec.parameter_count)
    for array in (result.network.theta, result.network.moments, result.gradients):
        assert array.dtype == np.float32
    assert all(a.dtype == np.float32 for a in [*result.network.W, *result.network.b])
    assert isinstance(result.final_cost, float)
    assert all(isinstance(r.cost, float) for r in result.costs)


def test_costs_are_recorded_before_each_update_and_final_cost_after() -> None:
    spec = build_spec([3, 4, 1], seed=1, optimizer=OptimizerSpec(learning_rate=0.1))
    network = with_biases(spec)
    X, Y = make_data(spec, 6)
    trainer = Trainer(network, X, Y, TrainOptions(epochs=3))
    for step in range(1, 4):
        before = trainer.network.copy()
        (record,) = trainer.run(1)
        assert record == StepRecord(step, compute_gradients(before, X, Y).cost)
        assert trainer.last_step == record
    result = train(network, X, Y, TrainOptions(epochs=3))
    assert [r.step for r in result.costs] == [1, 2, 3]
    assert result.final_cost == compute_gradients(result.network, X, Y).cost
    assert result.final_cost is not None
    assert result.final_cost < result.costs[0].cost


def test_final_cost_is_the_whole_batch_without_dropout() -> None:
    network = spec_for("gd", keep_prob=[0.5, 0.5])
    X, Y = make_data(network.spec, 10)
    result = train(network, X, Y, TrainOptions(epochs=2, batch_size=3, shuffle_seed=1))
    # compute_gradients without a dropout_seed propagates without dropout.
    assert result.final_cost == compute_gradients(result.network, X, Y).cost
    trainer = Trainer(network, X, Y, TrainOptions(epochs=2))
    assert trainer.final_cost() == compute_gradients(network, X, Y).cost  # before any step


def test_steps_continue_from_the_network_and_the_input_is_never_mutated() -> None:
    network = spec_for("momentum", keep_prob=[0.7, 0.7])
    before = network.copy()
    X, Y = make_data(network.spec, 6)
    X_before, Y_before = X.copy(), Y.copy()
    first = train(network, X, Y, TrainOptions(epochs=2))
    second = train(first.network, X, Y, TrainOptions(epochs=3))
    assert [r.step for r in second.costs] == [3, 4, 5]
    assert (second.network.steps_trained, second.network.optimizer_t) == (5, 5)
    assert (first.network.steps_trained, first.network.optimizer_t) == (2, 2)
    assert_networks_equal(network, before)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Y, Y_before)
    # Continuing is the same as one call of 5 epochs (dropout masks by global step).
    assert_networks_equal(second.network, train(network, X, Y, TrainOptions(epochs=5)).network)


def test_results_do_not_alias_the_inputs() -> None:
    network = spec_for("adam")
    X, Y = make_data(network.spec, 6)
    result = train(network, X, Y, TrainOptions(epochs=3))
    assert isinstance(result, TrainResult)
    assert result.network is not network
    assert result.gradients is not None
    for array in (result.network.theta, result.network.moments, result.gradients):
        for held in (network.theta, network.moments, X, Y):
            assert not np.shares_memory(array, held)


@pytest.mark.parametrize(
    ("optimizer", "options", "keep_prob"),
    [
        ("gd", TrainOptions(epochs=9), None),
        ("momentum", TrainOptions(epochs=3, batch_size=4, shuffle_seed=5), None),
        ("adam", TrainOptions(epochs=3, batch_size=4, shuffle_seed=6), None),
        ("adam", TrainOptions(epochs=9), [0.6, 0.9]),
        ("momentum", TrainOptions(epochs=3, batch_size=4, shuffle_seed=8), [0.5, 0.8]),
    ],
    ids=["gd-full", "momentum-mini", "adam-mini", "adam-dropout", "momentum-mini-dropout"],
)
@pytest.mark.parametrize("stop", [1, 4, 7])
def test_a_resumed_run_is_bit_for_bit_an_uninterrupted_one(
    optimizer: str, options: TrainOptions, keep_prob: list[float] | None, stop: int
) -> None:
    network = spec_for(optimizer, keep_prob=keep_prob)
    X, Y = make_data(network.spec, 10, seed=3)
    whole = Trainer(network, X, Y, options)
    expected_records = whole.run()
    assert whole.total_steps == 9
    first = Trainer(network, X, Y, options)
    records = first.run(stop)
    # The checkpoint goes through the store's form: the state's bytes and the counters.
    checkpoint = first.network
    theta, moments = state_bytes(checkpoint)
    restored = network_from_bytes(
        network.spec,
        bytes(theta),
        bytes(moments),
        optimizer_t=checkpoint.optimizer_t,
        steps_trained=checkpoint.steps_trained,
    )
    resumed = Trainer(restored, X, Y, options, start_step=stop)
    assert resumed.steps_done == stop
    records += resumed.run()
    assert resumed.done
    assert records == expected_records  # the same steps and costs, exactly
    assert_networks_equal(resumed.network, whole.network)
    assert resumed.gradients is not None
    assert whole.gradients is not None
    assert resumed.gradients.tobytes() == whole.gradients.tobytes()
    assert resumed.final_cost() == whole.final_cost()
    # ... and the first trainer, run on, gets there too.
    first.run()
    assert_networks_equal(first.network, whole.network)


def test_a_fresh_shuffle_seed_is_drawn_and_kept_for_resuming() -> None:
    network = spec_for("gd")
    X, Y = make_data(network.spec, 10)
    options = TrainOptions(epochs=3, batch_size=4)  # shuffle_seed None
    first = Trainer(network, X, Y, options)
    assert 0 <= first.shuffle_seed < 2**32
    first.run(5)
    seeded = TrainOptions(epochs=3, batch_size=4, shuffle_seed=first.shuffle_seed)
    resumed = Trainer(first.network.copy(), X, Y, seeded, start_step=5)
    resumed.run()
    first.run()
    assert_networks_equal(resumed.network, first.network)


@pytest.mark.parametrize("l2_lambda", [0.0, 0.3])
def test_trainer_gradients_are_compute_gradients_bit_for_bit(l2_lambda: float) -> None:
    network = spec_for("adam", l2_lambda=l2_lambda)
    X, Y = make_data(network.spec, 8)
    trainer = Trainer(network, X, Y, TrainOptions(epochs=4))
    assert trainer.gradients is None
    for _ in range(4):
        before = trainer.network.copy()
        trainer.run(1)
        assert trainer.gradients is not None
        dW, db = trainer.network.layout.views(trainer.gradients)
        p = compute_gradients(before, X, Y)
        for a, e in zip([*dW, *db], [*p.dW, *p.db], strict=True):
            assert np.array_equal(a, e)


def test_the_mini_batches_are_the_documented_shuffled_columns() -> None:
    spec = build_spec([3, 4, 1], seed=2, optimizer=OptimizerSpec(learning_rate=0.1))
    network = with_biases(spec)
    X, Y = make_data(spec, 7)
    options = TrainOptions(epochs=2, batch_size=3, shuffle_seed=9)
    trainer = Trainer(network, X, Y, options)
    batches = [c for e in range(2) for c in oracle_batches(7, options, 9, e)]
    assert [len(c) for c in batches] == [3, 3, 1, 3, 3, 1]
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))
    for columns in batches:
        before = trainer.network.copy()
        (record,) = trainer.run(1)
        assert record.cost == compute_gradients(before, X[:, columns], Y[:, columns]).cost
    assert trainer.done


def test_the_dropout_masks_are_the_documented_stream() -> None:
    # Each step's cost is that of its batch under its step's masks (network.steps_trained + 1).
    network = spec_for("gd", keep_prob=[0.5, 0.7])
    network.steps_trained = 40  # as if trained before: the masks follow the global step
    X, Y = make_data(network.spec, 5)
    trainer = Trainer(network, X, Y, TrainOptions(epochs=3))
    for step in (41, 42, 43):
        expected = oracle.gradients(trainer.network, X, Y, D=oracle_masks(network, step, 5))
        (record,) = trainer.run(1)
        assert record.step == step
        assert record.cost == pytest.approx(expected.cost, rel=1e-12)


def test_full_batch_uses_no_shuffling() -> None:
    network = spec_for("gd")
    X, Y = make_data(network.spec, 5)
    a = train(network, X, Y, TrainOptions(epochs=2, shuffle_seed=1))
    b = train(network, X, Y, TrainOptions(epochs=2, shuffle_seed=2))
    assert_networks_equal(a.network, b.network)


def test_same_seeds_same_trajectory_different_seeds_different() -> None:
    def run(seed: int, shuffle_seed: int, dropout_seed: int) -> TrainResult:
        spec = build_spec(
            [3, 4, 1],
            seed=seed,
            keep_prob=0.8,
            dropout_seed=dropout_seed,
            optimizer=OptimizerSpec(name="adam"),
        )
        X, Y = make_data(spec, 10)
        options = TrainOptions(epochs=3, batch_size=4, shuffle_seed=shuffle_seed)
        return train(create_network(spec), X, Y, options)

    a, b = run(1, 5, 0), run(1, 5, 0)
    assert a.costs == b.costs
    assert_networks_equal(a.network, b.network)
    for other in (run(2, 5, 0), run(1, 6, 0), run(1, 5, 1)):
        assert other.costs != a.costs


@pytest.mark.parametrize(
    ("m", "batch_size", "epochs", "steps"),
    [(10, None, 3, 3), (10, 4, 3, 9), (10, 5, 2, 4), (10, 10, 2, 2), (10, 64, 2, 2), (1, 1, 5, 5)],
)
def test_steps_for_and_the_trainer_step_count(
    m: int, batch_size: int | None, epochs: int, steps: int
) -> None:
    options = TrainOptions(epochs=epochs, batch_size=batch_size, shuffle_seed=0)
    assert options.steps_for(m) == steps
    spec = build_spec([2, 3, 1])
    X, Y = make_data(spec, m)
    trainer = Trainer(create_network(spec), X, Y, options)
    assert trainer.total_steps == steps
    assert not trainer.done
    count = 0
    while not trainer.done:
        (record,) = trainer.run(1)
        count += 1
        assert record.step == count == trainer.steps_done
    assert count == steps
    assert trainer.run() == []  # nothing left to do
    assert trainer.run(3) == []


def test_run_makes_at_most_max_steps() -> None:
    network = spec_for("gd")
    X, Y = make_data(network.spec, 5)
    trainer = Trainer(network, X, Y, TrainOptions(epochs=5))
    assert [r.step for r in trainer.run(2)] == [1, 2]
    assert [r.step for r in trainer.run(10)] == [3, 4, 5]
    assert trainer.done


def diverging_problem() -> tuple[Network, F, F]:
    spec = build_spec([4, 5, 1], output_activation="linear", seed=1)
    X, Y = make_data(spec, 8)
    return create_network(spec), X, Y


def test_learning_rate_1e6_diverges_and_keeps_the_last_finite_state() -> None:
    network, X, Y = diverging_problem()
    before = network.copy()
    trainer = Trainer(network, X, Y, TrainOptions(epochs=1000, learning_rate=1e6))
    states = [network.copy()]  # states[k]: after k steps
    records: list[StepRecord] = []
    error: TrainingDiverged | None = None
    while error is None:
        try:
            records += trainer.run(1)
        except TrainingDiverged as caught:
            error = caught
        else:
            states.append(trainer.network.copy())
    assert isinstance(error, ModelError)
    assert error.step == len(states) == len(records) + 1
    assert error.step > 1
    assert f"Training diverged at step {error.step}: " in str(error)
    assert f"(after step {error.step - 1})" in str(error)
    assert "Try a smaller learning rate than 1e+06." in str(error)
    assert error.last_finite_cost is not None
    assert math.isfinite(error.last_finite_cost)
    assert trainer.done
    assert trainer.steps_done == error.step - 1
    assert_networks_equal(trainer.network, states[-1])  # the state before the diverging step
    assert np.isfinite(trainer.network.theta).all()
    with pytest.raises(TrainingDiverged) as again:
        trainer.run()
    assert again.value is error
    assert_networks_equal(trainer.network, states[-1])
    assert_networks_equal(network, before)  # the input network is unchanged
    with pytest.raises(TrainingDiverged) as through_train:
        train(network, X, Y, TrainOptions(epochs=1000, learning_rate=1e6))
    assert through_train.value.step == error.step


def test_non_finite_parameters_after_an_update_are_undone() -> None:
    # float32: A = 1e15 gives a finite cost 5e29 (float32 max 3.4e38), but dW = 1e15 * 1e15
    # and W - 1e9 * dW = -1e39 overflows to -inf: the update is refused, not the cost.
    spec = build_spec([1, 1], output_activation="linear", dtype="float32")
    network = create_network(spec, W=[[[1.0]]], b=[[[0.0]]])
    before = network.copy()
    trainer = Trainer(network, [[1e15]], [[0.0]], TrainOptions(epochs=3, learning_rate=1e9))
    with pytest.raises(TrainingDiverged) as caught:
        trainer.run()
    error = caught.value
    assert error.step == 1
    assert "its updated parameters" in str(error)
    assert error.last_finite_cost == pytest.approx(5e29, rel=1e-6)  # the step's own cost
    assert trainer.network is network  # no step was made
    assert trainer.gradients is None
    assert trainer.last_step is None
    assert trainer.done
    with pytest.raises(TrainingDiverged) as again:
        trainer.run(1)
    assert again.value is error
    assert_networks_equal(network, before)


def test_a_non_finite_cost_is_refused_before_its_update() -> None:
    # Parameters that overflow the forward pass: Z = 1e30 * 1e30 is inf in float32.
    spec = build_spec([1, 1], output_activation="linear", dtype="float32")
    network = create_network(spec, W=[[[1e30]]], b=[[[0.0]]])
    trainer = Trainer(network, [[1e30]], [[0.0]], TrainOptions(epochs=2))
    with pytest.raises(TrainingDiverged, match="diverged at step 1: its cost") as caught:
        trainer.run()
    assert caught.value.last_finite_cost is None
    assert trainer.network is network
    assert trainer.final_cost() is None


def test_a_final_cost_that_overflows_is_none() -> None:
    # float32: the step is finite (W = 1 - 1e-10 * 1e30 = -1e20), but the cost afterwards,
    # (1e35)^2 / 2, overflows. The step stands (its cost and parameters were finite);
    # final_cost says None rather than inf, and the next step would diverge.
    spec = build_spec([1, 1], output_activation="linear", dtype="float32")
    network = create_network(spec, W=[[[1.0]]], b=[[[0.0]]])
    result = train(network, [[1e15]], [[0.0]], TrainOptions(epochs=1, learning_rate=1e-10))
    assert result.final_cost is None
    assert result.network.W[0][0, 0] == pytest.approx(-1e20, rel=1e-6)
    with pytest.raises(TrainingDiverged, match="diverged at step 2: its cost") as caught:
        train(result.network, [[1e15]], [[0.0]], TrainOptions(epochs=1, learning_rate=1e-10))
    assert caught.value.last_finite_cost is None  # this call computed no finite cost


def test_given_spares_are_written_instead_of_allocating() -> None:
    network = spec_for("momentum")
    X, Y = make_data(network.spec, 6)
    spares = (network.empty_like(), network.empty_like())
    trainer = Trainer(network, X, Y, TrainOptions(epochs=5), spares=spares)
    assert trainer.spares() == list(spares)
    for step in range(1, 6):
        trainer.run(1)
        current, other = spares[(step - 1) % 2], spares[step % 2]
        assert trainer.network is current
        assert trainer.spares() == [other]
    assert_networks_equal(trainer.network, train(network, X, Y, TrainOptions(epochs=5)).network)


def test_spares_returns_what_the_trainer_allocated_and_no_longer_needs() -> None:
    network = spec_for("gd")
    X, Y = make_data(network.spec, 6)
    trainer = Trainer(network, X, Y, TrainOptions(epochs=3))
    assert trainer.spares() == []
    trainer.run(1)
    assert trainer.spares() == []  # one state: the current one
    first = trainer.network
    trainer.run(1)
    assert trainer.spares() == [first]
    assert trainer.network not in trainer.spares()
    assert network not in trainer.spares()


def test_a_spare_can_be_an_earlier_calls_input_but_the_input_is_never_written() -> None:
    network = spec_for("adam")
    X, Y = make_data(network.spec, 6)
    earlier = Trainer(network, X, Y, TrainOptions(epochs=2))
    earlier.run()
    assert len(earlier.spares()) == 1  # its two states: the current one and a spare
    result = earlier.network
    before = result.copy()
    spare = result.empty_like()
    # The input network given as a spare, and one spare given twice, are used once.
    trainer = Trainer(result, X, Y, TrainOptions(epochs=3), spares=(result, spare, spare))
    trainer.run(1)
    assert trainer.network is spare
    trainer.run(1)
    assert trainer.spares() == [spare]  # the second step wrote a state of its own
    trainer.run(1)
    assert trainer.network is spare  # the third step wrote the spare again, not the input
    assert result not in trainer.spares()
    assert_networks_equal(result, before)
    assert_networks_equal(trainer.network, train(network, X, Y, TrainOptions(epochs=5)).network)
    # ... and a network that an earlier trainer started from may be written by a later one.
    later = Trainer(trainer.network, X, Y, TrainOptions(epochs=1), spares=(network,))
    later.run()
    assert later.network is network
    assert network.steps_trained == 6


def test_a_workspace_reused_across_trainers_gives_identical_results() -> None:
    network = spec_for("adam", keep_prob=[0.6, 0.6])
    X, Y = make_data(network.spec, 10)
    options = TrainOptions(epochs=3, batch_size=4, shuffle_seed=3)  # batches of 4, 4, 2
    workspace = Workspace(network.spec)
    a = Trainer(network, X, Y, options, workspace=workspace)
    a.run()
    a_network = a.network.copy()
    b = Trainer(network, X, Y, options, workspace=workspace)
    b.run()
    fresh = Trainer(network, X, Y, options)
    fresh.run()
    assert_networks_equal(a_network, fresh.network)
    assert_networks_equal(b.network, fresh.network)
    assert b.final_cost() == fresh.final_cost()


def test_a_workspace_or_spare_of_another_spec_is_refused() -> None:
    network = spec_for("gd", activations=("relu", "tanh", "softmax"))
    other = spec_for("gd", activations=("tanh", "tanh", "softmax"))  # the same shapes
    X, Y = make_data(network.spec, 4)
    with pytest.raises(ModelError, match="workspace must be for this network's spec"):
        Trainer(network, X, Y, workspace=Workspace(other.spec))
    with pytest.raises(ModelError, match=r"spares\[1\] must be for this network's spec"):
        Trainer(network, X, Y, spares=(network.empty_like(), other.empty_like()))


def test_learning_rate_override_applies_to_this_call_only() -> None:
    spec = build_spec(
        [1, 1], output_activation="linear", optimizer=OptimizerSpec(learning_rate=0.1)
    )
    network = create_network(spec, W=[[[1.0]]], b=[[[0.0]]])
    # dW = db = A - Y = 1: W = 1 - 0.5 * 1, b = 0 - 0.5 * 1.
    result = train(network, [[1.0]], [[0.0]], TrainOptions(1, learning_rate=0.5))
    assert result.network.W[0][0, 0] == 0.5
    assert result.network.b[0][0, 0] == -0.5
    assert result.network.spec.optimizer.learning_rate == 0.1


def test_training_learns_or() -> None:
    spec = build_spec(
        [2, 4, 1], hidden_activation="tanh", seed=1, optimizer=OptimizerSpec(learning_rate=0.5)
    )
    X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    Y = np.array([[0.0, 1.0, 1.0, 1.0]])  # OR
    result = train(create_network(spec), X, Y, TrainOptions(epochs=300))
    assert result.final_cost is not None
    assert result.final_cost < 0.1
    assert result.costs[-1].cost < result.costs[0].cost
