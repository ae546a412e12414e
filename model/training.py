"""Training: epochs over one batch, mini-batches, step records and divergence.

The bookkeeping lives here; the arithmetic of a step is :mod:`model.fast` (in place)
and must match :mod:`model.network` plus :func:`model.optimizers.apply_update`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.checks import check_X, check_Y
from model.errors import ModelError, TrainingDiverged
from model.fast import (
    StepBuffers,
    StepPlan,
    TrainState,
    binary_labels,
    gradient_scale,
    output_rule,
    plan_step,
)
from model.network import Gradients, Network, cost_of, forward_pass
from model.spec import MAX_SEED, check_float, check_int

Array = NDArray[np.floating]


@dataclass(frozen=True)
class TrainOptions:
    """How one training call runs.

    Attributes
    ----------
    epochs : int
        Passes over the batch, >= 1.
    batch_size : int or None
        None: full batch, no shuffling (one step per epoch). Otherwise mini-batches of
        this size (the last one smaller), reshuffled every epoch.
    shuffle_seed : int or None
        Seed of the call's ``RandomState`` for the shuffles; None draws fresh entropy.
    learning_rate : float or None
        Overrides the optimizer's learning rate for this call.
    """

    epochs: int = 1
    batch_size: int | None = None
    shuffle_seed: int | None = None
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        if self.batch_size is not None:
            check_int("batch_size (None for the full batch)", self.batch_size, 1)
        if self.shuffle_seed is not None:
            check_int("shuffle_seed", self.shuffle_seed, 0, MAX_SEED)
        if self.learning_rate is not None:
            check_float("learning_rate", self.learning_rate, 0.0, low_open=True, high_open=True)

    def steps_for(self, m: int) -> int:
        """The number of updates this call makes on a batch of ``m`` examples."""
        m = check_int("m (number of examples)", m, 1)
        per_epoch = 1 if self.batch_size is None else math.ceil(m / self.batch_size)
        return int(self.epochs) * per_epoch


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One update: its global step number and the cost its forward pass computed."""

    step: int
    cost: float


@dataclass(eq=False)
class TrainResult:
    """The outcome of a training call.

    Attributes
    ----------
    network : Network
        A new object; the input network is never mutated.
    costs : list of StepRecord
        Every step of this call, in order.
    final_cost : float or None
        Cost on the whole batch after the last update; None if it is not finite (the
        parameters are finite, but the cost overflowed: the next step will diverge).
    last_gradients : Gradients or None
        dW and db of the last completed step (None before any step).
    last_step : StepRecord or None
    """

    network: Network
    costs: list[StepRecord]
    final_cost: float | None
    last_gradients: Gradients | None
    last_step: StepRecord | None


@dataclass(eq=False)
class _Batch:
    """A batch size's arrays and its two step plans.

    ``X``, ``Y`` are the batch (the whole data, or the buffers mini-batches are gathered
    into); ``plans[p]`` steps from the trainer's state ``p`` into state ``1 - p``.
    """

    X: Array
    Y: Array
    prepare: list[Callable[[], object]]
    plans: tuple[StepPlan, StepPlan]


def epoch_batches(m: int, batch_size: int, rng: np.random.RandomState) -> list[NDArray[np.intp]]:
    """Column indices of one epoch's mini-batches.

    One permutation of range(m) drawn from ``rng``, cut into batches of
    ``batch_size`` with a smaller last one when ``batch_size`` does not divide m.
    """
    order = rng.permutation(m)
    return [order[k : k + batch_size] for k in range(0, m, batch_size)]


class Trainer:
    """Steps through one training call, one update at a time.

    Everything is validated up front; the trainer works on private buffers, so the
    input network is never touched. ``X``, ``Y`` are cast to the network's dtype once.
    Use :meth:`step` until :attr:`done`, then :meth:`result`; :meth:`snapshot` gives
    the current state at any time (for checkpoints).
    """

    def __init__(self, network: Network, X: ArrayLike, Y: ArrayLike, options: TrainOptions) -> None:
        if not isinstance(options, TrainOptions):
            raise ModelError(f"options must be a TrainOptions; received {options!r}.")
        spec = network.spec
        self._spec = spec
        self._X = check_X(spec, X)
        self._m = int(self._X.shape[1])
        # C order, so that the step's flat views of Y are views.
        self._Y = np.ascontiguousarray(check_Y(spec, Y, self._m))
        self._binary = binary_labels(self._Y)
        lr = options.learning_rate
        self._lr = spec.optimizer.learning_rate if lr is None else float(lr)
        self._batch_size = options.batch_size
        # One RandomState per call, consumed epoch after epoch (none for the full batch).
        self._rng = (
            None if self._batch_size is None else np.random.RandomState(options.shuffle_seed)
        )
        self._epoch: list[NDArray[np.intp]] = []  # the current epoch's mini-batches
        self.total_steps: int = options.steps_for(self._m)
        self.steps_done: int = 0
        self._steps_trained = network.steps_trained
        self._cur = TrainState.of(network)
        self._spare = self._cur.empty_like()
        self._states = (self._cur, self._spare)
        self._parity = 0  # self._cur is self._states[self._parity]
        self._full: _Batch | None = None  # full-batch training's batch, once made
        self._batches: dict[int, _Batch] = {}  # mini-batches by size
        self._costs: list[StepRecord] = []
        self._last_finite_cost: float | None = None
        self._final_cost: tuple[int, float | None] | None = None  # (steps_done, cost)
        self._diverged: TrainingDiverged | None = None

    @property
    def done(self) -> bool:
        """Whether all steps have been made, or training diverged."""
        return self._diverged is not None or self.steps_done >= self.total_steps

    def _make_batch(self, X: Array, Y: Array) -> _Batch:
        spec, mb = self._spec, int(X.shape[1])
        buf = StepBuffers(spec, mb)
        rule = output_rule(spec, buf, Y, gradient_scale(spec, self._lr, mb), self._binary)
        a, b = self._states
        plans = (
            plan_step(spec, X, buf, rule, a, b, self._lr),
            plan_step(spec, X, buf, rule, b, a, self._lr),
        )
        return _Batch(X, Y, rule.prepare, plans)

    def _next_batch(self) -> _Batch:
        if self._rng is None or self._batch_size is None:
            self._full = self._make_batch(self._X, self._Y)
            return self._full
        k = self.steps_done % len(self._epoch) if self._epoch else 0
        if k == 0:
            self._epoch = epoch_batches(self._m, self._batch_size, self._rng)
        columns = self._epoch[k]
        mb = len(columns)
        batch = self._batches.get(mb)
        if batch is None:
            dtype = self._spec.np_dtype
            X = np.empty((self._spec.n_x, mb), dtype)
            Y = np.empty((self._spec.n_L, mb), dtype)
            batch = self._batches[mb] = self._make_batch(X, Y)
        np.take(self._X, columns, axis=1, out=batch.X)
        np.take(self._Y, columns, axis=1, out=batch.Y)
        for call in batch.prepare:  # what the step derives from the labels
            call()
        return batch

    def step(self) -> StepRecord:
        """Make one update and return its record.

        Raises
        ------
        TrainingDiverged
            If the step's cost (computed before its update) or its updated parameters
            or optimizer state are not finite. The step is undone: the trainer stays at
            the last finite state, and further calls raise the same error.
        ModelError
            If all steps are already done.
        """
        if self._diverged is not None:
            raise self._diverged
        if self.done:
            raise ModelError(f"Training is complete: all {self.total_steps} steps are done.")
        # Overflow is expected when training diverges; it is detected, not warned.
        with np.errstate(all="ignore"):
            return self._step()

    def run(self, max_steps: int | None = None) -> list[StepRecord]:
        """Make up to ``max_steps`` updates (all remaining ones by default); their records.

        The same as calling :meth:`step` in a loop, minus its per-call set-up, which
        counts on tiny networks. Raises like :meth:`step`, after the steps before the
        failing one are made.
        """
        if self._diverged is not None:
            raise self._diverged
        remaining = self.total_steps - self.steps_done
        count = remaining if max_steps is None else min(remaining, max_steps)
        start = len(self._costs)
        with np.errstate(all="ignore"):
            for _ in range(count):
                self._step()
        return self._costs[start:]

    def _step(self) -> StepRecord:
        number = self._steps_trained + 1
        batch = self._full or self._next_batch()
        plan = batch.plans[self._parity]
        for call in plan.forward:
            call()
        cost = plan.cost()
        if not math.isfinite(cost):
            raise self._diverge(number, "its cost")
        self._last_finite_cost = cost
        cur, nxt = self._cur, self._spare
        nxt.t = cur.t + 1
        for call in plan.backward:
            call()
        if not plan.finite():
            raise self._diverge(number, "its updated parameters")
        self._cur, self._spare = nxt, cur  # commit
        self._parity ^= 1
        self.steps_done += 1
        self._steps_trained = number
        record = StepRecord(number, cost)
        self._costs.append(record)
        return record

    def _diverge(self, number: int, what: str) -> TrainingDiverged:
        self._diverged = TrainingDiverged(
            f"Training diverged at step {number}: {what} came out NaN or infinite, so the "
            f"step was undone and the network keeps its last finite state (after step "
            f"{number - 1}). Try a smaller learning rate than {self._lr:g}.",
            step=number,
            last_finite_cost=self._last_finite_cost,
            partial=self.result(),
        )
        return self._diverged

    def _whole_batch_cost(self) -> float | None:
        """Cost of the whole batch in the current state; None if it is not finite."""
        if self._final_cost is not None and self._final_cost[0] == self.steps_done:
            return self._final_cost[1]
        cur = self._cur
        with np.errstate(all="ignore"):
            if self._full is not None:  # the step's own forward pass and cost
                plan = self._full.plans[self._parity]
                for call in plan.forward:
                    call()
                cost = plan.cost()
            else:
                cache = forward_pass(self._spec, cur.W, cur.b, self._X)
                cost = cost_of(self._spec, cur.W, cache.A[-1], self._Y, cache.Z[-1])
        final = cost if math.isfinite(cost) else None
        self._final_cost = (self.steps_done, final)
        return final

    def snapshot(self) -> Network:
        """A copy of the current state as a Network (for checkpoints)."""
        cur = self._cur
        return Network(
            spec=self._spec,
            W=[w.copy() for w in cur.W],
            b=[x.copy() for x in cur.b],
            optimizer_state={k: [a.copy() for a in v] for k, v in cur.state.items()},
            steps_trained=self._steps_trained,
            optimizer_t=cur.t,
        )

    def _last_gradients(self) -> Gradients | None:
        if self.steps_done == 0:
            return None
        # Gradient descent's buffers hold lr * dW (the learning rate folded in).
        factor = self._lr if self._spec.optimizer.name == "gd" else 1.0
        return Gradients(
            dW=[g / factor for g in self._cur.gW], db=[g / factor for g in self._cur.gb]
        )

    def result(self) -> TrainResult:
        """The outcome so far, with the final cost computed on the whole batch."""
        return TrainResult(
            network=self.snapshot(),
            costs=list(self._costs),
            final_cost=self._whole_batch_cost(),
            last_gradients=self._last_gradients(),
            last_step=self._costs[-1] if self._costs else None,
        )


DEFAULT_OPTIONS = TrainOptions()


def train(
    network: Network, X: ArrayLike, Y: ArrayLike, options: TrainOptions = DEFAULT_OPTIONS
) -> TrainResult:
    """Train a copy of ``network`` on (X, Y) and return the result.

    Raises
    ------
    ModelError
        Invalid data or options (nothing is changed).
    TrainingDiverged
        A step went non-finite; ``error.partial`` holds the last finite state.
    """
    trainer = Trainer(network, X, Y, options)
    trainer.run()
    return trainer.result()
