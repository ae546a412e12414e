"""The Trainer's in-place training step: the math of :mod:`model.network` without allocations.

A step runs at close to the speed of its matrix products:

* every (n_l, m) array lives in a :class:`StepBuffers` made once per batch size and
  reused; matrix products, activations and masks write into it (``out=``), and masks
  are multiplied, never used for boolean indexing;
* 1/m is folded into dZ[L] once (an (n_L, m) array, usually a single row) instead of
  dividing every dW and db, and for gradient descent the learning rate is folded in
  too, so the gradient buffers hold lr * dW and the update is one subtraction;
* dA[0] = W1^T dZ1, the gradient with respect to X, is never computed;
* parameters and optimizer state are double-buffered (:class:`TrainState`): a step
  reads the current state and writes the next into the spare one, so a step that
  comes out non-finite is undone by simply not swapping.

Everything stays in the network's dtype.
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


@dataclass(eq=False)
class TrainState:
    """Parameters, optimizer state and the gradients of the step that produced them.

    ``gW``/``gb`` hold lr * dW, lr * db for gradient descent and dW, db otherwise
    (with the L2 term); ``t`` counts the updates absorbed into ``state``.
    """

    W: list[Array]
    b: list[Array]
    state: dict[str, list[Array]]
    gW: list[Array]
    gb: list[Array]
    t: int

    @classmethod
    def of(cls, network: Network) -> TrainState:
        """A private copy of the network's state (gradient buffers uninitialized)."""
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
        copy = network.copy()
        gW = [np.empty_like(w) for w in copy.W]
        gb = [np.empty_like(x) for x in copy.b]
        return cls(copy.W, copy.b, copy.optimizer_state, gW, gb, network.optimizer_t)

    def empty_like(self) -> TrainState:
        """Uninitialized buffers of the same shapes, for the double buffering."""
        return TrainState(
            W=[np.empty_like(w) for w in self.W],
            b=[np.empty_like(x) for x in self.b],
            state={k: [np.empty_like(a) for a in v] for k, v in self.state.items()},
            gW=[np.empty_like(w) for w in self.gW],
            gb=[np.empty_like(x) for x in self.gb],
            t=self.t,
        )

    def is_finite(self) -> bool:
        """Whether every parameter and moment is finite."""
        arrays = [*self.W, *self.b, *(a for v in self.state.values() for a in v)]
        return all(_all_finite(a) for a in arrays)


def _all_finite(a: Array) -> bool:
    # The sum is NaN or infinite whenever an entry is, so one read without a temporary
    # settles the usual case; only a non-finite sum (possibly an overflow of finite
    # entries) pays for the exact elementwise test.
    return math.isfinite(float(np.sum(a))) or bool(np.isfinite(a).all())


def forward_into(
    spec: NetworkSpec, W: list[Array], b: list[Array], X: Array, buf: StepBuffers
) -> None:
    """Forward propagation into ``buf.Z`` and ``buf.A`` (A[0] is X itself)."""
    A_prev = X
    for i, name in enumerate(spec.activations):
        Z = buf.Z[i]
        np.matmul(W[i], A_prev, out=Z)
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
    :func:`update_into`, which has a scratch array for it.
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
    for i in reversed(range(L)):  # layer l = i + 1
        A_prev = buf.A[i - 1] if i > 0 else X
        np.matmul(dZ, A_prev.T, out=gW[i])
        np.sum(dZ, axis=1, keepdims=True, out=gb[i])
        if i > 0:
            dA = buf.dA[i - 1]
            np.matmul(W[i].T, dZ, out=dA)
            dZ = ACTIVATIONS[spec.activations[i - 1]].backward(
                dA, buf.Z[i - 1], buf.A[i - 1], buf.dZ[i - 1]
            )


def update_into(
    opt: OptimizerSpec, lr: float, l2_scale: float, cur: TrainState, nxt: TrainState
) -> None:
    """Add the L2 term to nxt's gradients, then write the updated state into ``nxt``.

    ``l2_scale`` is lambda/m times whatever scale the gradients carry (lr for gd).
    """
    t = cur.t + 1
    for k, params, grads, new in (("W", cur.W, nxt.gW, nxt.W), ("b", cur.b, nxt.gb, nxt.b)):
        for i, (p, g, p_out) in enumerate(zip(params, grads, new, strict=True)):
            if k == "W" and l2_scale:
                np.multiply(p, l2_scale, out=p_out)  # p_out as scratch
                np.add(g, p_out, out=g)
            if opt.name == "gd":
                gd_into(p, g, p_out)
            elif opt.name == "momentum":
                v, v_out = cur.state["v" + k][i], nxt.state["v" + k][i]
                momentum_into(p, g, v, lr, opt.beta, p_out, v_out)
            else:
                v, v_out = cur.state["v" + k][i], nxt.state["v" + k][i]
                s, s_out = cur.state["s" + k][i], nxt.state["s" + k][i]
                adam_into(p, g, v, s, t, lr, opt, p_out, v_out, s_out)
    nxt.t = t
