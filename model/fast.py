"""The Trainer's in-place training step: the math of :mod:`model.network` without allocations.

A step runs at close to the speed of its matrix products:

* every (n_l, m) array lives in a :class:`StepBuffers` made once per batch size and
  reused; matrix products, activations and masks write into it (``out=``), and masks
  are multiplied, never used for boolean indexing;
* parameters, gradients and optimizer moments each live in ONE flat vector laid out
  ``[W1, ..., WL, b1, ..., bL]`` (:class:`FlatLayout`), with W[l] and b[l] as views into
  it: an update is a handful of whole-vector operations whatever the depth (one
  subtraction for gradient descent), and the finiteness check is one sum;
* 1/m is folded into dZ[L] once (an (n_L, m) array, usually a single row) instead of
  dividing every dW and db, and for gradient descent the learning rate is folded in
  too, so the gradient vector holds lr * dW and the update is one subtraction;
* dA[0] = W1^T dZ1, the gradient with respect to X, is never computed;
* db[l] and the finiteness check are BLAS dot products (with a column of ones, or the
  vector with itself), several times faster than numpy's pairwise-summing reductions;
* for the canonical output pairs (sigmoid + binary cross-entropy, softmax + categorical
  cross-entropy) the output activation and the cost are computed together
  (:data:`FUSED_OUTPUTS`), sharing exp(-|z|) or the shifted exponentials, in scratch
  buffers, with the same numerically stable formulas as :mod:`model.losses`;
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

import numpy as np
from numpy.typing import NDArray

from model.activations import ACTIVATIONS
from model.errors import ModelError
from model.losses import LOSSES
from model.network import Network, cost_of
from model.optimizers import STATE_KEYS, adam_into, gd_into, momentum_into
from model.spec import NetworkSpec, OptimizerSpec

Array = NDArray[np.floating]


class StepBuffers:
    """Preallocated arrays for batches of ``mb`` examples.

    Attributes
    ----------
    Z, A, dZ : lists of L arrays, entry l-1 of shape (n_l, mb)
    dA : list of L - 1 arrays, entry l-1 of shape (n_l, mb) for layers l = 1..L-1
    ones : (mb, 1) column of ones, so that db = dZ ones is a BLAS product
    scratch : three (n_L, mb) arrays for the fused output activation and cost
    """

    def __init__(self, spec: NetworkSpec, mb: int) -> None:
        dtype = spec.np_dtype
        sizes = spec.layer_dims[1:]
        self.Z: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.A: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.dZ: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.dA: list[Array] = [np.empty((n, mb), dtype) for n in sizes[:-1]]
        self.ones: Array = np.ones((mb, 1), dtype)
        self.scratch: list[Array] = [np.empty((spec.n_L, mb), dtype) for _ in range(3)]
        self.columns = np.arange(mb)


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


def forward_into(
    spec: NetworkSpec,
    W: list[Array],
    b: list[Array],
    X: Array,
    buf: StepBuffers,
    *,
    output: bool = True,
) -> None:
    """Forward propagation into ``buf.Z`` and ``buf.A`` (A[0] is X itself).

    With ``output=False`` the last layer stops at Z[L] (its activation is left to
    :func:`forward_cost_into`).
    """
    A_prev = X
    last = spec.L - 1
    for i, name in enumerate(spec.activations):
        Z = buf.Z[i]
        np.dot(W[i], A_prev, out=Z)
        np.add(Z, b[i], out=Z)
        if i < last or output:
            A_prev = ACTIVATIONS[name].forward(Z, buf.A[i])


def _sigmoid_bce(Z: Array, Y: Array, A: Array, buf: StepBuffers) -> float:
    """A = sigmoid(Z) and the summed binary cross-entropy, sharing e = exp(-|z|).

    A = 1/(1+e) for z >= 0 and e/(1+e) for z < 0, bit for bit the sigmoid of
    :mod:`model.activations`; the loss of one entry is max(z, 0) - y z + log1p(e), the
    stable form of :mod:`model.losses` (max(z, 0) - y z is exact for y in {0, 1}, and
    is added to the small log1p term last, so nothing small is lost).
    """
    e, d, t = buf.scratch
    np.abs(Z, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.add(e, 1.0, out=d)
    np.divide(e, d, out=A)
    np.reciprocal(d, out=d)
    np.copyto(A, d, where=Z >= 0)
    np.maximum(Z, 0.0, out=d)
    np.multiply(Y, Z, out=t)
    np.subtract(d, t, out=d)
    np.log1p(e, out=e)
    np.add(d, e, out=d)
    return float(np.add.reduce(d, axis=None))


def _softmax_cce(Z: Array, Y: Array, A: Array, buf: StepBuffers) -> float:
    """A = softmax(Z) and the summed categorical cross-entropy, sharing the shifted
    exponentials.

    As :mod:`model.activations` and :mod:`model.losses` compute them: shift each column
    by its maximum, so e = exp(z - max z) <= 1 with exactly 1 at the maximum; A = e / sum
    e; log A = (z - max z) - log1p(sum of e without that 1), which keeps the log of a
    confident column accurate.
    """
    shifted, rest, _ = buf.scratch
    np.subtract(Z, np.maximum.reduce(Z, axis=0, keepdims=True), out=shifted)
    np.exp(shifted, out=A)
    np.copyto(rest, A)
    rest[np.argmax(Z, axis=0), buf.columns] = 0.0
    log_sum = np.log1p(np.add.reduce(rest, axis=0, keepdims=True))
    np.divide(A, np.add.reduce(A, axis=0, keepdims=True), out=A)
    np.subtract(shifted, log_sum, out=shifted)
    return -float(np.vdot(Y, shifted))


FusedOutput = Callable[[Array, Array, Array, StepBuffers], float]

# The output activation and its canonical loss computed together, keyed by the pair.
FUSED_OUTPUTS: dict[tuple[str, str], FusedOutput] = {
    ("sigmoid", "binary_cross_entropy"): _sigmoid_bce,
    ("softmax", "categorical_cross_entropy"): _softmax_cce,
}


def forward_cost_into(
    state: TrainState, spec: NetworkSpec, X: Array, Y: Array, buf: StepBuffers
) -> float:
    """Forward propagation into ``buf`` and the cost (with L2) of the batch (X, Y)."""
    fused = FUSED_OUTPUTS.get((spec.activations[-1], spec.loss))
    if fused is None:
        forward_into(spec, state.W, state.b, X, buf)
        return cost_of(spec, state.W, buf.A[-1], Y, buf.Z[-1])
    forward_into(spec, state.W, state.b, X, buf, output=False)
    m = int(Y.shape[1])
    cost = fused(buf.Z[-1], Y, buf.A[-1], buf) / m
    if spec.l2_lambda:
        cost += spec.l2_lambda / (2 * m) * l2_squared(state)
    return cost


def gradients_into(
    spec: NetworkSpec,
    W: list[Array],
    X: Array,
    Y: Array,
    buf: StepBuffers,
    gW: list[Array],
    gb: list[Array],
    scale: float,
) -> None:
    """Backpropagation into gW, gb: gW[l-1] = scale * dZ[l] A[l-1]^T, gb likewise.

    ``scale`` is 1/m, or lr/m to fold the learning rate in. The L2 term is added by
    :func:`update_into`, which works on the whole flat gradient at once.
    """
    L = spec.L
    loss = LOSSES[spec.loss]
    output = spec.activations[-1]
    AL, ZL, dZ = buf.A[L - 1], buf.Z[L - 1], buf.dZ[L - 1]
    if output == loss.canonical_activation:  # fused: see network.output_dA_dZ
        np.subtract(AL, Y, out=dZ)
    else:
        ACTIVATIONS[output].backward(loss.gradient(AL, Y), ZL, AL, dZ)
    # Backpropagation is linear in dZ[L], so scaling it scales every dZ, dW and db.
    np.multiply(dZ, scale, out=dZ)
    for i in range(L - 1, -1, -1):  # layer l = i + 1
        A_prev = buf.A[i - 1] if i > 0 else X
        np.dot(dZ, A_prev.T, out=gW[i])
        np.dot(dZ, buf.ones, out=gb[i])
        if i > 0:
            dA = buf.dA[i - 1]
            np.dot(W[i].T, dZ, out=dA)
            dZ = ACTIVATIONS[spec.activations[i - 1]].backward(
                dA, buf.Z[i - 1], buf.A[i - 1], buf.dZ[i - 1]
            )


def l2_squared(state: TrainState) -> float:
    """sum over layers of ||W[l]||^2, read from the flat parameters in one pass."""
    W = state.theta[: state.layout.n_W]
    return float(np.dot(W, W))


def update_into(
    opt: OptimizerSpec, lr: float, l2_scale: float, cur: TrainState, nxt: TrainState
) -> None:
    """Add the L2 term to nxt's gradient, then write the updated state into ``nxt``.

    ``l2_scale`` is lambda/m times whatever scale the gradients carry (lr for gd). Each
    operation runs once over the whole flat vector, whatever the number of layers.
    """
    g = nxt.grad
    if l2_scale:
        n_W = cur.layout.n_W
        scratch = nxt.theta[:n_W]  # overwritten by the update below
        np.multiply(cur.theta[:n_W], l2_scale, out=scratch)
        np.add(g[:n_W], scratch, out=g[:n_W])
    t = cur.t + 1
    if opt.name == "gd":
        gd_into(cur.theta, g, nxt.theta)
    elif opt.name == "momentum":
        v, v_out = cur.moments["v"], nxt.moments["v"]
        momentum_into(cur.theta, g, v, lr, opt.beta, nxt.theta, v_out)
    else:
        v, v_out = cur.moments["v"], nxt.moments["v"]
        s, s_out = cur.moments["s"], nxt.moments["s"]
        adam_into(cur.theta, g, v, s, t, lr, opt, nxt.theta, v_out, s_out)
    nxt.t = t
