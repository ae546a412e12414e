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
* parameters and optimizer state are double-buffered (:class:`TrainState`): a step
  reads the current state and writes the next into the spare one, so a step that
  comes out non-finite is undone by simply not swapping.

Everything stays in the network's dtype. Products go through ``np.dot`` rather than
``np.matmul``: the same BLAS call, with less per-call overhead on small networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from model.activations import ACTIVATIONS
from model.errors import ModelError
from model.losses import LOSSES
from model.network import Network
from model.optimizers import STATE_KEYS, adam_into, gd_into, momentum_into
from model.spec import NetworkSpec, OptimizerSpec

Array = NDArray[np.floating]


class StepBuffers:
    """Preallocated arrays for batches of ``mb`` examples.

    Attributes
    ----------
    Z, A, dZ : lists of L arrays, entry l-1 of shape (n_l, mb)
    dA : list of L - 1 arrays, entry l-1 of shape (n_l, mb) for layers l = 1..L-1
    """

    def __init__(self, spec: NetworkSpec, mb: int) -> None:
        dtype = spec.np_dtype
        sizes = spec.layer_dims[1:]
        self.Z: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.A: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.dZ: list[Array] = [np.empty((n, mb), dtype) for n in sizes]
        self.dA: list[Array] = [np.empty((n, mb), dtype) for n in sizes[:-1]]


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
    # The sum is NaN or infinite whenever an entry is, so one read without a temporary
    # settles the usual case; only a non-finite sum (possibly an overflow of finite
    # entries) pays for the exact elementwise test.
    return math.isfinite(np.add.reduce(a, axis=None)) or bool(np.isfinite(a).all())


def forward_into(
    spec: NetworkSpec, W: list[Array], b: list[Array], X: Array, buf: StepBuffers
) -> None:
    """Forward propagation into ``buf.Z`` and ``buf.A`` (A[0] is X itself)."""
    A_prev = X
    for i, name in enumerate(spec.activations):
        Z = buf.Z[i]
        np.dot(W[i], A_prev, out=Z)
        np.add(Z, b[i], out=Z)
        A_prev = ACTIVATIONS[name].forward(Z, buf.A[i])


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
        np.add.reduce(dZ, axis=1, keepdims=True, out=gb[i])
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
