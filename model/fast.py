"""The Trainer's in-place training step: the math of :mod:`model.network` without allocations.

A step runs at close to the speed of its matrix products:

* a step is a flat list of numpy calls bound once to their arrays (:class:`StepPlan`,
  made per batch size and per side of the double buffer), so that it costs no
  allocation, attribute or dictionary lookup, and on tiny networks little more than
  the calls themselves; ``out`` is passed positionally where numpy allows it;
* every (n_l, m) array lives in a :class:`StepBuffers` made once per batch size. No
  backward rule reads Z (see ``Activation.backward_in_place``), so a hidden layer's Z
  buffer receives dA and then dZ in backprop; a one-row layer (the usual sigmoid
  output) adds its bias as a 0-d view, numpy's scalar loop;
* parameters, gradients and optimizer moments each live in ONE flat vector laid out
  ``[W1, ..., WL, b1, ..., bL]`` (:class:`FlatLayout`), with W[l] and b[l] as views into
  it: an update is a handful of whole-vector operations whatever the depth (one
  subtraction for gradient descent), and the finiteness check is one dot product;
* 1/m is folded into dZ[L] (through label arrays prepared once per batch) instead of
  dividing every dW and db, and for gradient descent the learning rate is folded in
  too, so the gradient vector holds lr * dW and the update is one subtraction;
* dA[0] = W1^T dZ1, the gradient with respect to X, is never computed;
* db[l], the finiteness check and the column sums of the softmax are BLAS dot products
  (with a vector of ones, or the vector with itself), several times faster than
  numpy's pairwise-summing reductions;
* for the canonical output pairs the output activation, the cost and dZ[L] are computed
  together (:data:`FUSED_OUTPUTS`), with the numerically stable formulas of
  :mod:`model.losses` and without forming A[L]: sigmoid + binary cross-entropy with
  0/1 labels works on t = s z with s = 1 - 2y, where the loss is softplus(t) (one
  ``logaddexp``) and A[L] - Y = s sigmoid(t) = s exp(t - softplus(t)); softmax +
  categorical cross-entropy shifts each column by its maximum and takes the log of
  its sum as log1p of the sum without the maximum's 1 (found by ``floor``, exactly);
* parameters and optimizer state are double-buffered (:class:`TrainState`): a step
  reads the current state and writes the next into the spare one, so a step that
  comes out non-finite is undone by simply not swapping.

Everything stays in the network's dtype. Products go through ``np.dot`` rather than
``np.matmul``: the same BLAS call, with less per-call overhead on small networks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import NDArray

from model.activations import ACTIVATIONS, _zeros_like
from model.errors import ModelError
from model.losses import LOSSES
from model.network import Network
from model.optimizers import STATE_KEYS, adam_into, momentum_into
from model.spec import NetworkSpec

Array = NDArray[np.floating]
Call = Callable[[], object]


class StepBuffers:
    """Preallocated arrays for batches of ``mb`` examples.

    Attributes
    ----------
    Z : list of L arrays, entry l-1 of shape (n_l, mb); for a hidden layer it holds
        dA[l] and then dZ[l] during backprop
    A : list of L arrays, entry l-1 of shape (n_l, mb) (A[L] only for unfused outputs)
    dZL : (n_L, mb) dZ[L], scaled by 1/mb (and the learning rate for gradient descent)
    scratch : (max hidden n_l, mb) flat-backed array for g'(Z) of the hidden layers
    ones : (mb, 1) column of ones, so that db = dZ ones is a BLAS product
    """

    def __init__(self, spec: NetworkSpec, mb: int) -> None:
        dtype = spec.np_dtype
        sizes = spec.layer_dims[1:]
        self.mb = mb
        self.dtype = dtype
        self.Z: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.A: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.dZL: Array = np.empty((spec.n_L, mb), dtype)
        self._scratch = np.empty(max(sizes[:-1], default=0) * mb, dtype)
        self.ones: Array = np.ones((mb, 1), dtype)

    def scratch(self, n: int) -> Array:
        """An (n, mb) view of the shared scratch (n at most the widest hidden layer)."""
        return self._scratch[: n * self.mb].reshape(n, self.mb)

    @property
    def nbytes(self) -> int:
        """The bytes of every array here: a step's activation cache."""
        arrays = [*self.Z, *self.A, self.dZL, self._scratch, self.ones]
        return sum(array.nbytes for array in arrays)


class FlatLayout:
    """Where W[l] and b[l] of every layer sit in one flat vector ``[W1..WL, b1..bL]``.

    All the W come first, so the L2 term (which only touches W) is one slice ``[:n_W]``.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        dims = spec.layer_dims
        self.dtype = spec.np_dtype
        self.W_shapes = [(dims[l], dims[l - 1]) for l in range(1, spec.L + 1)]
        self.b_shapes = [(dims[l], 1) for l in range(1, spec.L + 1)]
        self.n_W = sum(r * c for r, c in self.W_shapes)
        self.size = self.n_W + sum(r for r, _ in self.b_shapes)

    def empty(self) -> Array:
        return np.empty(self.size, self.dtype)

    def views(self, flat: Array) -> tuple[list[Array], list[Array]]:
        """W and b as C-contiguous views into ``flat`` (writes go through to it)."""
        W: list[Array] = []
        b: list[Array] = []
        start = 0
        for shapes, out in ((self.W_shapes, W), (self.b_shapes, b)):
            for rows, cols in shapes:
                out.append(flat[start : start + rows * cols].reshape(rows, cols))
                start += rows * cols
        return W, b

    def flatten(self, W: list[Array], b: list[Array]) -> Array:
        """A new flat vector holding copies of W and b (cast to the layout's dtype)."""
        flat = self.empty()
        W_views, b_views = self.views(flat)
        for view, array in zip([*W_views, *b_views], [*W, *b], strict=True):
            view[...] = array
        return flat


@dataclass(eq=False)
class TrainState:
    """Parameters, optimizer moments and the gradients of the step that produced them.

    ``theta`` (parameters), ``grad`` and each entry of ``moments`` (``"v"``, ``"s"``) are
    flat vectors in the :class:`FlatLayout`; ``W``, ``b``, ``gW``, ``gb`` and ``state``
    (keyed ``vW``, ``vb``, ``sW``, ``sb`` as a Network stores it) are views into them.
    ``grad`` holds lr * dW, lr * db for gradient descent and dW, db otherwise (with the
    L2 term); ``t`` counts the updates absorbed into the moments.
    """

    layout: FlatLayout
    theta: Array
    grad: Array
    moments: dict[str, Array]
    t: int

    def __post_init__(self) -> None:
        self.W, self.b = self.layout.views(self.theta)
        self.gW, self.gb = self.layout.views(self.grad)
        self.state: dict[str, list[Array]] = {}
        for key, flat in self.moments.items():
            self.state[key + "W"], self.state[key + "b"] = self.layout.views(flat)

    @classmethod
    def of(cls, network: Network) -> TrainState:
        """A private copy of the network's state (gradients uninitialized)."""
        expected = STATE_KEYS[network.spec.optimizer.name]
        shapes = {"W": [w.shape for w in network.W], "b": [x.shape for x in network.b]}
        state = network.optimizer_state
        if set(state) != set(expected) or any(
            [a.shape for a in state[key]] != shapes[key[1:]] for key in expected
        ):
            raise ModelError(
                f"The network's optimizer state must hold {', '.join(expected) or 'nothing'} "
                f"shaped like W and b for {network.spec.optimizer.name}; received "
                f"{', '.join(state) or 'nothing'}."
            )
        layout = FlatLayout(network.spec)
        moments = {
            key: layout.flatten(state[key + "W"], state[key + "b"])
            for key in dict.fromkeys(k[0] for k in expected)
        }
        return cls(
            layout,
            layout.flatten(network.W, network.b),
            layout.empty(),
            moments,
            network.optimizer_t,
        )

    def empty_like(self) -> TrainState:
        """Uninitialized buffers of the same layout, for the double buffering."""
        layout = self.layout
        moments = {key: layout.empty() for key in self.moments}
        return TrainState(layout, layout.empty(), layout.empty(), moments, self.t)

    def is_finite(self) -> bool:
        """Whether every parameter and moment is finite."""
        return _all_finite(self.theta) and all(_all_finite(a) for a in self.moments.values())


def _all_finite(a: Array) -> bool:
    """Whether every entry of the 1-D ``a`` is finite.

    a . a is NaN or infinite whenever an entry is, so one BLAS read settles the usual
    case; only a non-finite result (possibly an overflow of huge finite entries) pays
    for the exact elementwise test.
    """
    return math.isfinite(np.dot(a, a)) or bool(np.isfinite(a).all())


@dataclass(eq=False)
class OutputRule:
    """The output layer's part of a step, bound to one batch's buffers and labels.

    ``forward`` runs after Z[L] = W[L] A[L-1] + b[L] is in ``buf.Z[-1]``; ``total`` then
    returns the loss summed over the batch (no L2, not divided by m); ``backward``
    writes the scaled dZ[L] into ``buf.dZL``. ``prepare`` recomputes what is derived
    from the labels, and must run whenever Y's contents change (each mini-batch).
    """

    forward: list[Call]
    total: Callable[[], float]
    backward: list[Call]
    prepare: list[Call]


def _sigmoid_bce(buf: StepBuffers, Y: Array, scale: float) -> OutputRule:
    """Sigmoid + binary cross-entropy for labels in {0, 1} (:func:`binary_labels`).

    With s = 1 - 2y (1 for y = 0, -1 for y = 1) and t = s z, the loss of an entry is
    softplus(t) = max(t, 0) + log1p(exp(-|t|)), which ``np.logaddexp(t, 0)`` computes in
    exactly that stable form (so a confident right answer keeps its tiny loss), and
    A - Y = sigmoid(z) - y = s sigmoid(t) = s exp(t - softplus(t)), which neither
    overflows nor loses the small entries of dZ.
    """
    ZL, dZL = buf.Z[-1], buf.dZL
    s, s_scaled, t, loss = (np.empty_like(ZL) for _ in range(4))
    loss_flat = loss.reshape(-1)
    ones = np.ones(loss_flat.size, ZL.dtype)

    def total() -> float:
        return float(np.dot(loss_flat, ones))

    return OutputRule(
        forward=[partial(np.multiply, s, ZL, t), partial(np.logaddexp, t, 0.0, loss)],
        total=total,
        backward=[
            partial(np.subtract, t, loss, t),
            partial(np.exp, t, t),
            partial(np.multiply, t, s_scaled, dZL),
        ],
        prepare=[
            partial(np.multiply, Y, -2.0, s),
            partial(np.add, s, 1.0, s),
            partial(np.multiply, s, scale, s_scaled),
        ],
    )


def _softmax_cce(buf: StepBuffers, Y: Array, scale: float) -> OutputRule:
    """Softmax + categorical cross-entropy, as :mod:`model.losses` computes them.

    Each column is shifted by its maximum, so e = exp(z - max z) <= 1 with exactly 1 at
    the maximum; log A = (z - max z) - log(sum e), and log(sum e) = log1p(rest) with rest
    the sum without the maximum's 1, which keeps the log of a confident column accurate.
    floor(e) is 1 exactly where e is 1, so e - floor(e) drops the maximum (and any tie,
    added back as the count of ones minus one). The cost is sum(colsum(Y) log(sum e)) -
    Y . (z - max z), and dZ[L] = scale (e / sum e - Y).
    """
    ZL, dZL = buf.Z[-1], buf.dZL
    n, mb = ZL.shape
    dtype = ZL.dtype
    e, whole, frac = (np.empty_like(ZL) for _ in range(3))
    top, rest, count, total_e, y_sums = (np.empty(mb, dtype) for _ in range(5))
    ones = np.ones(n, dtype)
    y_flat, shifted_flat = Y.reshape(-1), ZL.reshape(-1)

    def total() -> float:
        return float(np.dot(y_sums, rest)) - float(np.dot(y_flat, shifted_flat))

    return OutputRule(
        forward=[
            partial(np.maximum.reduce, ZL, 0, out=top),
            partial(np.subtract, ZL, top, ZL),  # Z[L] now holds z - max z
            partial(np.exp, ZL, e),
            partial(np.floor, e, whole),
            partial(np.subtract, e, whole, frac),
            partial(np.dot, ones, frac, rest),
            partial(np.dot, ones, whole, count),
            partial(np.subtract, count, 1.0, count),
            partial(np.add, rest, count, rest),
            partial(np.add.reduce, e, 0, out=total_e),  # as the softmax of activations
            partial(np.log1p, rest, rest),
        ],
        total=total,
        backward=[
            partial(np.divide, e, total_e, dZL),
            partial(np.subtract, dZL, Y, dZL),
            partial(np.multiply, dZL, scale, dZL),
        ],
        prepare=[partial(np.dot, ones, Y, y_sums)],
    )


FusedOutput = Callable[[StepBuffers, Array, float], OutputRule]

# The output activation, its canonical loss and dZ[L] computed together, keyed by the pair.
FUSED_OUTPUTS: dict[tuple[str, str], FusedOutput] = {
    ("sigmoid", "binary_cross_entropy"): _sigmoid_bce,
    ("softmax", "categorical_cross_entropy"): _softmax_cce,
}


def binary_labels(Y: Array) -> bool:
    """Whether every label is 0 or 1 (the fused sigmoid + binary cross-entropy needs it)."""
    return bool(np.all((Y == 0) | (Y == 1)))


def _general_output(spec: NetworkSpec, buf: StepBuffers, Y: Array, scale: float) -> OutputRule:
    """Any output activation and loss: A[L], the cost and dZ[L] as :mod:`model.network`."""
    ZL, AL, dZL = buf.Z[-1], buf.A[-1], buf.dZL
    loss = LOSSES[spec.loss]
    activation = ACTIVATIONS[spec.activations[-1]]
    canonical = spec.activations[-1] == loss.canonical_activation
    logit_cost = loss.logit_cost if canonical else None

    def total() -> float:
        return logit_cost(ZL, Y) if logit_cost is not None else loss.cost(AL, Y)

    def chain_rule() -> None:
        activation.backward(loss.gradient(AL, Y), ZL, AL, dZL)

    first: Call = partial(np.subtract, AL, Y, dZL) if canonical else chain_rule
    return OutputRule(
        forward=[partial(activation.forward, ZL, AL)],
        total=total,
        backward=[first, partial(np.multiply, dZL, scale, dZL)],
        prepare=[],
    )


def output_rule(
    spec: NetworkSpec, buf: StepBuffers, Y: Array, scale: float, binary: bool
) -> OutputRule:
    """The fused rule for the output pair where there is one, else the general one.

    ``binary``: whether the labels are all 0 or 1 (always true of the batches of a
    Trainer whose whole Y is); the fused sigmoid + binary cross-entropy needs it.
    """
    pair = (spec.activations[-1], spec.loss)
    fused = FUSED_OUTPUTS.get(pair)
    if fused is None or (pair[0] == "sigmoid" and not binary):
        rule = _general_output(spec, buf, Y, scale)
    else:
        rule = fused(buf, Y, scale)
    for call in rule.prepare:
        call()
    return rule


def _bound_forward(name: str, Z: Array, A: Array) -> Call:
    """A = g(Z) as one call; relu and tanh call numpy directly (no Python layer)."""
    if name == "relu":
        return partial(np.maximum, Z, _zeros_like(Z), out=A)
    if name == "tanh":
        return partial(np.tanh, Z, A)
    return partial(ACTIVATIONS[name].forward, Z, A)


@dataclass(eq=False)
class StepPlan:
    """One training step from ``cur`` into ``nxt``, bound to one batch's arrays.

    Run every call of ``forward``; ``cost()`` is then the batch's cost (with L2). Set
    ``nxt.t = cur.t + 1``, run every call of ``backward`` (the gradients into
    ``nxt.grad``, then the update into ``nxt``), and ``finite()`` says whether the new
    parameters and moments are all finite.
    """

    forward: list[Call]
    cost: Callable[[], float]
    backward: list[Call]
    finite: Callable[[], bool]


def gradient_scale(spec: NetworkSpec, lr: float, mb: int) -> float:
    """What the step's gradients are multiplied by: lr/mb for gradient descent (the
    learning rate folded in), 1/mb for the other optimizers."""
    return (lr if spec.optimizer.name == "gd" else 1.0) / mb


def plan_step(
    spec: NetworkSpec,
    X: Array,
    buf: StepBuffers,
    rule: OutputRule,
    cur: TrainState,
    nxt: TrainState,
    lr: float,
) -> StepPlan:
    """The calls of one step on the batch in (X, the rule's Y) from ``cur`` into ``nxt``.

    ``rule`` must have been made with ``gradient_scale(spec, lr, buf.mb)``; the L2 term
    added to the gradients carries the same scale.
    """
    L, mb = spec.L, buf.mb
    scale = gradient_scale(spec, lr, mb)
    W, b, Z, A = cur.W, cur.b, buf.Z, buf.A
    inputs = [X, *A[:-1]]  # A[l-1] for layer l

    forward: list[Call] = []
    for i, name in enumerate(spec.activations):
        forward.append(partial(np.dot, W[i], inputs[i], Z[i]))
        # A one-row layer's bias as a 0-d view: numpy's scalar loop, twice as fast as
        # broadcasting a (1, 1) array.
        bias = b[i].reshape(()) if b[i].size == 1 else b[i]
        forward.append(partial(np.add, Z[i], bias, Z[i]))
        if i < L - 1:
            forward.append(_bound_forward(name, Z[i], A[i]))
    forward += rule.forward

    backward: list[Call] = list(rule.backward)
    dZ = buf.dZL
    for i in range(L - 1, -1, -1):  # layer l = i + 1
        backward.append(partial(np.dot, dZ, inputs[i].T, nxt.gW[i]))
        backward.append(partial(np.dot, dZ, buf.ones, nxt.gb[i]))
        if i > 0:
            backward.append(partial(np.dot, W[i].T, dZ, Z[i - 1]))  # dA[l-1]
            in_place = ACTIVATIONS[spec.activations[i - 1]].backward_in_place
            backward.append(partial(in_place, Z[i - 1], A[i - 1], buf.scratch(Z[i - 1].shape[0])))
            dZ = Z[i - 1]
    backward += _update_calls(spec, lr, scale * spec.l2_lambda, cur, nxt)

    return StepPlan(forward, _cost(spec, cur, rule, mb), backward, _finite(nxt))


def _cost(spec: NetworkSpec, cur: TrainState, rule: OutputRule, m: int) -> Callable[[], float]:
    total = rule.total
    if not spec.l2_lambda:
        return lambda: total() / m
    W = cur.theta[: cur.layout.n_W]
    factor = spec.l2_lambda / (2 * m)
    return lambda: total() / m + factor * float(np.dot(W, W))


def _update_calls(
    spec: NetworkSpec, lr: float, l2_scale: float, cur: TrainState, nxt: TrainState
) -> list[Call]:
    """Add the L2 term to nxt's gradient, then write the updated state into ``nxt``.

    ``l2_scale`` is lambda/m times whatever scale the gradients carry (lr for gd). Each
    operation runs once over the whole flat vector, whatever the number of layers.
    """
    opt, g = spec.optimizer, nxt.grad
    calls: list[Call] = []
    if l2_scale:
        n_W = cur.layout.n_W
        scratch = nxt.theta[:n_W]  # overwritten by the update below
        calls.append(partial(np.multiply, cur.theta[:n_W], l2_scale, scratch))
        calls.append(partial(np.add, g[:n_W], scratch, g[:n_W]))
    if opt.name == "gd":
        calls.append(partial(np.subtract, cur.theta, g, nxt.theta))
    elif opt.name == "momentum":
        v, v_out = cur.moments["v"], nxt.moments["v"]
        calls.append(partial(momentum_into, cur.theta, g, v, lr, opt.beta, nxt.theta, v_out))
    else:
        v, v_out = cur.moments["v"], nxt.moments["v"]
        s, s_out = cur.moments["s"], nxt.moments["s"]

        def adam() -> None:  # t is this update's, nxt.t
            adam_into(cur.theta, g, v, s, nxt.t, lr, opt, nxt.theta, v_out, s_out)

        calls.append(adam)
    return calls


def _finite(state: TrainState) -> Callable[[], bool]:
    if not state.moments:
        return partial(_all_finite, state.theta)
    return state.is_finite
