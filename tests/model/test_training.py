"""Training: the fast step against the plain path, mini-batches, determinism, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import (
    ModelError,
    Network,
    OptimizerSpec,
    Trainer,
    TrainingDiverged,
    TrainOptions,
    build_spec,
    compute_cost,
    create_network,
    forward,
    train,
)
from model.training import epoch_batches

from .helpers import (
    assert_close,
    assert_networks_close,
    assert_networks_equal,
    make_data,
    plain_train,
)

ARCHITECTURES = [
    # (activations, loss): canonical and general output paths, every hidden activation
    (["relu", "relu", "sigmoid"], None),
    (["tanh", "leaky_relu", "softmax"], None),
    (["sigmoid", "linear", "linear"], None),
    (["leaky_relu", "tanh", "sigmoid"], "mean_squared_error"),
    (["relu", "sigmoid", "softmax"], "binary_cross_entropy"),
]


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize(("activations", "loss"), ARCHITECTURES)
@pytest.mark.parametrize("l2_lambda", [0.0, 0.3])
@pytest.mark.parametrize(("batch_size", "epochs"), [(None, 4), (3, 2)])
def test_fast_step_equals_plain_forward_backward_update(
    optimizer: str,
    dtype: str,
    rtol: float,
    activations: list[str],
    loss: str | None,
    l2_lambda: float,
    batch_size: int | None,
    epochs: int,
) -> None:
    spec = build_spec(
        [4, 5, 3, 3],
        activations=activations,
        loss=loss,
        dtype=dtype,
        seed=3,
        l2_lambda=l2_lambda,
        optimizer=OptimizerSpec(name=optimizer, learning_rate=0.05),
    )
    network = create_network(spec)
    X, Y = make_data(spec, 8, seed=1)
    options = TrainOptions(epochs=epochs, batch_size=batch_size, shuffle_seed=7)
    fast = train(network, X, Y, options)
    expected, costs, grads = plain_train(network, X, Y, options)
    assert [r.step for r in fast.costs] == [r.step for r in costs]
    assert_close(np.array([r.cost for r in fast.costs]), np.array([r.cost for r in costs]), rtol)
    assert_networks_close(fast.network, expected, rtol)
    assert grads is not None
    assert fast.last_gradients is not None
    for a, e in zip(
        [*fast.last_gradients.dW, *fast.last_gradients.db], [*grads.dW, *grads.db], strict=True
    ):
        assert_close(a, e, rtol)
    Xc, Yc = X.astype(dtype), Y.astype(dtype)
    final = compute_cost(expected, forward(expected, Xc).A[-1], Yc, ZL=forward(expected, Xc).Z[-1])
    assert fast.final_cost == pytest.approx(final, rel=rtol)


def test_float32_stays_float32_through_training() -> None:
    spec = build_spec(
        [4, 3, 2],
        output_activation="softmax",
        dtype="float32",
        optimizer=OptimizerSpec(name="adam"),
        l2_lambda=0.1,
    )
    X, Y = make_data(spec, 10)
    result = train(create_network(spec), X, Y, TrainOptions(epochs=3, batch_size=4))
    net = result.network
    assert result.last_gradients is not None
    arrays = [*net.W, *net.b, *result.last_gradients.dW, *result.last_gradients.db]
    arrays += [a for v in net.optimizer_state.values() for a in v]
    assert len(arrays) == 4 + 4 + 8
    assert all(a.dtype == np.float32 for a in arrays)


def test_costs_are_recorded_before_each_update_and_final_cost_after() -> None:
    spec = build_spec([3, 4, 1], seed=1, optimizer=OptimizerSpec(learning_rate=0.1))
    network = create_network(spec)
    X, Y = make_data(spec, 6)
    result = train(network, X, Y, TrainOptions(epochs=3))
    cache = forward(network, X)
    assert result.costs[0].cost == compute_cost(network, cache.A[-1], Y, ZL=cache.Z[-1])
    assert [r.step for r in result.costs] == [1, 2, 3]
    assert result.last_step == result.costs[-1]
    after = forward(result.network, X)
    expected = compute_cost(result.network, after.A[-1], Y, ZL=after.Z[-1])
    assert result.final_cost == pytest.approx(expected, rel=1e-14)
    assert result.final_cost is not None
    assert result.final_cost < result.costs[0].cost


def test_steps_continue_from_the_network_and_the_input_is_never_mutated() -> None:
    spec = build_spec([3, 4, 1], optimizer=OptimizerSpec(name="momentum"))
    network = create_network(spec)
    X, Y = make_data(spec, 6)
    X_before, W_before = X.copy(), [w.copy() for w in network.W]
    first = train(network, X, Y, TrainOptions(epochs=2))
    second = train(first.network, X, Y, TrainOptions(epochs=3))
    assert [r.step for r in second.costs] == [3, 4, 5]
    assert second.network.steps_trained == 5
    assert first.network.steps_trained == 2
    assert network.steps_trained == 0
    np.testing.assert_array_equal(X, X_before)
    for w, before in zip(network.W, W_before, strict=True):
        np.testing.assert_array_equal(w, before)
    assert all(not v.any() for v in network.optimizer_state["vW"])
    assert second.network is not first.network


def test_same_seed_same_trajectory_different_seed_different() -> None:
    def run(seed: int, shuffle_seed: int) -> tuple[Network, list[float]]:
        spec = build_spec([3, 4, 1], seed=seed, optimizer=OptimizerSpec(name="adam"))
        X, Y = make_data(spec, 10)
        options = TrainOptions(epochs=3, batch_size=4, shuffle_seed=shuffle_seed)
        result = train(create_network(spec), X, Y, options)
        return result.network, [r.cost for r in result.costs]

    a, costs_a = run(1, 5)
    b, costs_b = run(1, 5)
    assert costs_a == costs_b
    assert_networks_equal(a, b)
    _, costs_c = run(2, 5)
    _, costs_d = run(1, 6)
    assert costs_c != costs_a
    assert costs_d != costs_a


def test_epoch_batches_sizes_and_coverage() -> None:
    rng = np.random.RandomState(0)
    batches = epoch_batches(10, 4, rng)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [len(b) for b in epoch_batches(8, 4, rng)] == [4, 4]
    assert [len(b) for b in epoch_batches(3, 5, rng)] == [3]


def test_epochs_reshuffle_and_shuffle_seed_is_deterministic() -> None:
    rng = np.random.RandomState(42)
    epoch1 = np.concatenate(epoch_batches(20, 6, rng))
    epoch2 = np.concatenate(epoch_batches(20, 6, rng))
    assert not np.array_equal(epoch1, epoch2)  # one stream, consumed epoch after epoch
    again = np.random.RandomState(42)
    np.testing.assert_array_equal(np.concatenate(epoch_batches(20, 6, again)), epoch1)
    np.testing.assert_array_equal(np.concatenate(epoch_batches(20, 6, again)), epoch2)


@pytest.mark.parametrize(
    ("m", "batch_size", "epochs", "steps"),
    [(10, None, 3, 3), (10, 4, 3, 9), (10, 5, 2, 4), (10, 10, 2, 2), (10, 64, 2, 2), (1, 1, 5, 5)],
)
def test_steps_for_and_trainer_step_count(
    m: int, batch_size: int | None, epochs: int, steps: int
) -> None:
    options = TrainOptions(epochs=epochs, batch_size=batch_size, shuffle_seed=0)
    assert options.steps_for(m) == steps
    spec = build_spec([2, 3, 1])
    X, Y = make_data(spec, m)
    trainer = Trainer(create_network(spec), X, Y, options)
    assert trainer.total_steps == steps
    count = 0
    while not trainer.done:
        record = trainer.step()
        count += 1
        assert record.step == count == trainer.steps_done
    assert count == steps
    with pytest.raises(ModelError, match=f"all {steps} steps are done"):
        trainer.step()


def test_mini_batches_are_the_shuffled_columns() -> None:
    # The trainer's k-th step of an epoch trains on exactly epoch_batches(...)[k].
    spec = build_spec([3, 4, 1], seed=2, optimizer=OptimizerSpec(learning_rate=0.1))
    network = create_network(spec)
    X, Y = make_data(spec, 7)
    trainer = Trainer(network, X, Y, TrainOptions(epochs=2, batch_size=3, shuffle_seed=9))
    rng = np.random.RandomState(9)
    expected_batches = epoch_batches(7, 3, rng) + epoch_batches(7, 3, rng)
    for columns in expected_batches:
        before = trainer.snapshot()
        cache = forward(before, X[:, columns])
        expected_cost = compute_cost(before, cache.A[-1], Y[:, columns], ZL=cache.Z[-1])
        assert trainer.step().cost == pytest.approx(expected_cost, rel=1e-14)
    assert trainer.done


def test_full_batch_uses_no_shuffling() -> None:
    spec = build_spec([3, 2, 1], seed=4)
    X, Y = make_data(spec, 5)
    network = create_network(spec)
    a = train(network, X, Y, TrainOptions(epochs=2, shuffle_seed=1))
    b = train(network, X, Y, TrainOptions(epochs=2, shuffle_seed=2))
    assert_networks_equal(a.network, b.network)


def test_snapshot_and_result_midway() -> None:
    spec = build_spec([3, 2, 1], optimizer=OptimizerSpec(name="adam"))
    network = create_network(spec)
    X, Y = make_data(spec, 5)
    trainer = Trainer(network, X, Y, TrainOptions(epochs=5))
    assert trainer.result().last_gradients is None
    assert trainer.result().costs == []
    trainer.step()
    trainer.step()
    snapshot = trainer.snapshot()
    assert snapshot.steps_trained == 2
    assert snapshot.optimizer_t == 2
    midway = trainer.result()
    assert len(midway.costs) == 2
    assert_networks_equal(midway.network, snapshot)
    expected = train(network, X, Y, TrainOptions(epochs=2))
    assert_networks_equal(snapshot, expected.network)
    snapshot.W[0][0, 0] += 1  # a snapshot is a copy
    assert trainer.snapshot().W[0][0, 0] != snapshot.W[0][0, 0]


def diverging_problem() -> tuple[Network, np.ndarray, np.ndarray]:
    spec = build_spec([4, 5, 1], output_activation="linear", seed=1)
    X, Y = make_data(spec, 8)
    return create_network(spec), X, Y


def test_learning_rate_1e6_diverges_and_keeps_the_last_finite_state() -> None:
    network, X, Y = diverging_problem()
    before = network.copy()
    options = TrainOptions(epochs=1000, learning_rate=1e6)
    with pytest.raises(TrainingDiverged) as caught:
        train(network, X, Y, options)
    error = caught.value
    assert isinstance(error, ModelError)
    assert f"diverged at step {error.step}" in str(error)
    assert "smaller learning rate" in str(error)
    partial = error.partial
    completed = error.step - 1
    assert len(partial.costs) == completed
    assert partial.network.steps_trained == completed
    assert all(np.isfinite(a).all() for a in [*partial.network.W, *partial.network.b])
    assert error.last_finite_cost is not None
    assert math.isfinite(error.last_finite_cost)
    # The last finite state is exactly where `completed` steps lead.
    if completed:
        replay = train(network, X, Y, TrainOptions(epochs=completed, learning_rate=1e6))
        assert_networks_equal(partial.network, replay.network)
        assert partial.costs == replay.costs
    assert_networks_equal(network, before)  # the input network is unchanged


def test_a_diverged_trainer_stays_put() -> None:
    network, X, Y = diverging_problem()
    trainer = Trainer(network, X, Y, TrainOptions(epochs=1000, learning_rate=1e6))
    while trainer.steps_done < trainer.total_steps:
        try:
            trainer.step()
        except TrainingDiverged as error:
            caught = error
            break
    state = trainer.snapshot()
    assert trainer.done
    with pytest.raises(TrainingDiverged) as again:
        trainer.step()
    assert again.value is caught
    assert_networks_equal(trainer.snapshot(), state)


def test_non_finite_parameters_after_an_update_are_undone() -> None:
    # float32: A = 1e15 gives a finite cost 5e29 (float32 max 3.4e38), but dW = 1e30 and
    # W - 1e9 * dW = -1e39 overflows to -inf: the update is refused, not the cost.
    spec = build_spec([1, 1], output_activation="linear", dtype="float32")
    network = create_network(spec, W=[[[1.0]]], b=[[[0.0]]])
    with pytest.raises(TrainingDiverged) as caught:
        train(network, [[1e15]], [[0.0]], TrainOptions(epochs=3, learning_rate=1e9))
    error = caught.value
    assert error.step == 1
    assert "updated parameters" in str(error)
    assert error.last_finite_cost == pytest.approx(5e29, rel=1e-6)
    assert error.partial.costs == []
    assert error.partial.last_gradients is None
    assert_networks_equal(error.partial.network, network)


def test_a_final_cost_that_overflows_is_none() -> None:
    # float32: the step is finite (W = 1 - 1e-10 * 1e30 = -1e20), but the cost afterwards,
    # (1e35)^2 / 2, overflows. The step stands (its cost and parameters were finite);
    # final_cost says None rather than inf, and the next step would diverge.
    spec = build_spec([1, 1], output_activation="linear", dtype="float32")
    network = create_network(spec, W=[[[1.0]]], b=[[[0.0]]])
    result = train(network, [[1e15]], [[0.0]], TrainOptions(epochs=1, learning_rate=1e-10))
    assert result.final_cost is None
    assert result.network.W[0][0, 0] == pytest.approx(-1e20, rel=1e-6)
    with pytest.raises(TrainingDiverged, match="diverged at step 2: its cost"):
        train(result.network, [[1e15]], [[0.0]], TrainOptions(epochs=1, learning_rate=1e-10))


def test_training_keeps_going_where_it_converges() -> None:
    # A learnable problem: the cost falls, and the last gradients are the last step's.
    spec = build_spec(
        [2, 4, 1], hidden_activation="tanh", seed=1, optimizer=OptimizerSpec(learning_rate=0.5)
    )
    X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    Y = np.array([[0.0, 1.0, 1.0, 1.0]])  # OR
    result = train(create_network(spec), X, Y, TrainOptions(epochs=300))
    assert result.final_cost is not None
    assert result.final_cost < 0.1
    assert result.costs[-1].cost < result.costs[0].cost
