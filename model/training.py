"""Training: epochs, mini-batches, dropout masks, double-buffered steps and divergence.

Every random choice is a function of a seed and a position, never of a stream that a
restart would reset, so a run resumed from a checkpoint takes exactly the steps of one that
was never interrupted:

* epoch ``e`` of a call visits the columns in the order
  ``numpy.random.default_rng([shuffle_seed, e]).permutation(m)``, cut into mini-batches;
* the dropout masks of the network's global step ``s`` (its first update is step 1) are
  ``D[l] = numpy.random.default_rng([dropout_seed, s]).random((n_l, mb)) < keep_prob[l]``,
  drawn for l = 1..L-1 in order from that one generator.
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.checks import check_X, check_Y
from model.errors import ModelError, TrainingDiverged
from model.network import Flat, Layout, Network
from model.optimizers import update
from model.propagation import Buffers, backward, cost, draw_masks, forward
from model.spec import MAX_SEED, NetworkSpec, check_float, check_int

Array = NDArray[np.floating]


@dataclass(frozen=True)
class TrainOptions:
    """How one training call runs.

    Attributes
    ----------
    epochs : int
        Passes over the batch, >= 1.
    batch_size : int or None
        None: full batch (one step per epoch). Otherwise mini-batches of this size (the last
        one smaller), reshuffled every epoch.
    shuffle_seed : int or None
        Fixes the shuffles; None draws a fresh one for the call.
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

    def steps_per_epoch(self, m: int) -> int:
        m = check_int("m (number of examples)", m, 1)
        return 1 if self.batch_size is None else math.ceil(m / self.batch_size)

    def steps_for(self, m: int) -> int:
        """The number of updates this call makes on a batch of ``m`` examples."""
        return self.epochs * self.steps_per_epoch(m)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One update: its global step number and the cost its forward pass computed."""

    step: int
    cost: float


class Workspace:
    """What one network's training calls reuse: the step buffers of the few batch sizes
    used last, the two gradient vectors of the double buffer, and the mini-batch arrays.
    Used by one thread at a time."""

    SIZES = 4

    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec
        self._buffers: OrderedDict[int, Buffers] = OrderedDict()
        self._batches: dict[int, tuple[Array, Array]] = {}
        layout, size = Layout(spec), spec.parameter_count
        self.grads = tuple(layout.flat(np.empty(size, spec.np_dtype)) for _ in range(2))

    @property
    def nbytes(self) -> int:
        batches = sum(X.nbytes + Y.nbytes for X, Y in self._batches.values())
        grads = sum(g.vector.nbytes for g in self.grads)
        return sum(b.nbytes for b in self._buffers.values()) + batches + grads

    def buffers(self, m: int) -> Buffers:
        buf = self._buffers.pop(m, None) or Buffers(self.spec, m)
        self._buffers[m] = buf
        while len(self._buffers) > self.SIZES:
            self._buffers.popitem(last=False)
        return buf

    def batch(self, mb: int) -> tuple[Array, Array]:
        """Arrays that a mini-batch of ``mb`` columns of X and Y is gathered into."""
        if mb not in self._batches:
            dtype = self.spec.np_dtype
            self._batches[mb] = (
                np.empty((self.spec.n_x, mb), dtype),
                np.empty((self.spec.n_L, mb), dtype),
            )
        return self._batches[mb]


class Trainer:
    """Steps through one training call, one update at a time.

    X, Y are validated and cast to the network's dtype once; the input network is never
    written. Steps alternate between two private states (the ``spares`` given, else new
    ones): a step reads the current state and writes the next into the other, so a step
    that comes out non-finite is undone by keeping the current one. ``network`` is the
    current state (not a copy). ``start_step`` resumes a call after that many of its steps.
    """

    def __init__(
        self,
        network: Network,
        X: ArrayLike,
        Y: ArrayLike,
        options: TrainOptions = TrainOptions(),
        *,
        start_step: int = 0,
        workspace: Workspace | None = None,
        spares: tuple[Network, ...] = (),
    ) -> None:
        if not isinstance(options, TrainOptions):
            raise ModelError(f"options must be a TrainOptions; received {options!r}.")
        spec = network.spec
        # A workspace's buffers apply its spec's activations, and a spare that becomes the
        # current state brings its spec to the next step: both must be this network's.
        given = [("workspace", workspace), *((f"spares[{i}]", s) for i, s in enumerate(spares))]
        for name, other in given:
            if other is not None and other.spec != spec:
                raise ModelError(
                    f"{name} must be for this network's spec {spec.to_dict()}; received one "
                    f"for {other.spec.to_dict()}."
                )
        self._X = check_X(spec, X)
        self._m = int(self._X.shape[1])
        self._Y = np.ascontiguousarray(check_Y(spec, Y, self._m))
        self._lr = (
            spec.optimizer.learning_rate if options.learning_rate is None else options.learning_rate
        )
        self._batch_size = options.batch_size
        seed = options.shuffle_seed
        self.shuffle_seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
        self._per_epoch = options.steps_per_epoch(self._m)
        self.total_steps = options.epochs * self._per_epoch
        self.steps_done = check_int("start_step", start_step, 0, self.total_steps)
        self._work = workspace if workspace is not None else Workspace(spec)
        self._states: list[Network] = []  # two distinct states, never the input network
        for spare in spares:
            if spare is not network and all(spare is not s for s in self._states):
                self._states.append(spare)
        del self._states[2:]
        self._start = self.network = network
        self._grad: Flat | None = None
        self._order: tuple[int, NDArray[np.intp]] | None = None  # (epoch, its permutation)
        self.last_step: StepRecord | None = None
        self._diverged: TrainingDiverged | None = None

    @property
    def done(self) -> bool:
        """Whether all steps have been made, or training diverged."""
        return self._diverged is not None or self.steps_done >= self.total_steps

    @property
    def gradients(self) -> Array | None:
        """dW and db (flat layout) of the step that produced :attr:`network`, if any."""
        return None if self._grad is None else self._grad.vector

    def spares(self) -> list[Network]:
        """The states this trainer may write that are neither current nor its input network."""
        return [s for s in self._states if s is not self.network and s is not self._start]

    def run(
        self, max_steps: int | None = None, records: list[StepRecord] | None = None
    ) -> list[StepRecord]:
        """Make up to ``max_steps`` updates (all remaining ones by default); return their
        records, appended to ``records`` (a new list by default) as each step is made.

        Raises
        ------
        TrainingDiverged
            If a step's cost (computed before its update), or its updated parameters or
            moments, are not finite. The steps before it keep their records in ``records``,
            the trainer stays at the last finite state, and further calls raise the same error.
        """
        if self._diverged is not None:
            raise self._diverged
        remaining = self.total_steps - self.steps_done
        if max_steps is not None:
            max_steps = check_int("max_steps", max_steps, 0)
        count = remaining if max_steps is None else min(remaining, max_steps)
        made: list[StepRecord] = [] if records is None else records
        # Overflow is expected when training diverges; it is detected, not warned.
        with np.errstate(all="ignore"):
            for _ in range(count):
                made.append(self._step())
        return made

    def _batch(self) -> tuple[Array, Array]:
        if self._batch_size is None:
            return self._X, self._Y
        epoch, k = divmod(self.steps_done, self._per_epoch)
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.shuffle_seed, epoch])
            self._order = (epoch, rng.permutation(self._m))
        columns = self._order[1][k * self._batch_size : (k + 1) * self._batch_size]
        X, Y = self._work.batch(len(columns))
        np.take(self._X, columns, axis=1, out=X)
        np.take(self._Y, columns, axis=1, out=Y)
        return X, Y

    def _next_state(self) -> tuple[Network, Flat]:
        """The state and gradient vector the next step writes: never the current ones."""
        slot = 0 if not self._states or self._states[0] is not self.network else 1
        while len(self._states) <= slot:
            self._states.append(self.network.empty_like())
        return self._states[slot], self._work.grads[slot]

    def _step(self) -> StepRecord:
        spec, cur = self.network.spec, self.network
        number = cur.steps_trained + 1
        X, Y = self._batch()
        buf = self._work.buffers(X.shape[1])
        dropout = spec.dropout is not None
        if spec.dropout is not None:
            draw_masks(spec, buf, np.random.default_rng([spec.dropout.seed, number]).random)
        forward(cur, X, buf, dropout=dropout)
        J = cost(cur, buf, Y)
        if not math.isfinite(J):
            raise self._diverge(number, "its cost")
        nxt, grad = self._next_state()
        # nxt.theta is scratch for the L2 term until the update writes it.
        backward(cur, X, Y, buf, grad, nxt.theta, dropout=dropout)
        update(spec.optimizer, self._lr, cur, grad.vector, nxt)
        if not (_finite(nxt.theta) and (nxt.moments.size == 0 or _finite(nxt.moments.reshape(-1)))):
            raise self._diverge(number, "its updated parameters", J)
        nxt.steps_trained = number
        self.network, self._grad = nxt, grad
        self.steps_done += 1
        self.last_step = StepRecord(number, J)
        return self.last_step

    def _diverge(self, number: int, what: str, J: float | None = None) -> TrainingDiverged:
        """The error for step ``number``; ``J``, its own cost if that was finite."""
        if J is None and self.last_step is not None:
            J = self.last_step.cost
        self._diverged = TrainingDiverged(
            f"Training diverged at step {number}: {what} came out NaN or infinite, so the "
            f"step was undone and the network keeps its last finite state (after step "
            f"{number - 1}). Try a smaller learning rate than {self._lr:g}.",
            step=number,
            last_finite_cost=J,
        )
        return self._diverged

    def final_cost(self) -> float | None:
        """The cost of the whole batch under the current parameters (no dropout: it measures
        the network, not one draw of its masks); None if it is not finite."""
        buf = self._work.buffers(self._m)
        with np.errstate(all="ignore"):
            forward(self.network, self._X, buf)
            J = cost(self.network, buf, self._Y)
        return J if math.isfinite(J) else None


def _finite(v: Array) -> bool:
    """Whether every entry of the vector v is finite: v . v is NaN or infinite whenever an
    entry is, and one BLAS read settles the usual case; only a non-finite result (possibly
    an overflow of huge finite entries) pays for the exact test."""
    return math.isfinite(np.dot(v, v)) or bool(np.isfinite(v).all())


@dataclass(eq=False)
class TrainResult:
    """The outcome of :func:`train`: the trained network (a new object), every step's record,
    the final cost (None if it overflowed) and the last step's dW, db (flat layout)."""

    network: Network
    costs: list[StepRecord]
    final_cost: float | None
    gradients: Array | None


def train(
    network: Network, X: ArrayLike, Y: ArrayLike, options: TrainOptions = TrainOptions()
) -> TrainResult:
    """Train a copy of ``network`` on X (n_x, m) and Y (n_L, m).

    Raises
    ------
    ModelError
        Invalid data or options (nothing is changed).
    TrainingDiverged
        A step went non-finite.
    """
    if not isinstance(options, TrainOptions):
        raise ModelError(f"options must be a TrainOptions; received {options!r}.")
    trainer = Trainer(network, X, Y, options)
    costs = trainer.run()
    return TrainResult(trainer.network, costs, trainer.final_cost(), trainer.gradients)
