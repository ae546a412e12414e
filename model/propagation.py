"""Forward propagation, the cost and backpropagation: the one implementation of the
course's equations. Training, inspection, prediction, evaluation and the gradient check all
run these three functions.

Every (n_l, m) array of a pass lives in a :class:`Buffers` made once per batch size, and the
functions write into it with ``out=``. Lists are 0-based: entry ``i`` belongs to layer
l = i + 1. Products go through ``np.dot``: the same BLAS call as ``@``, with less per-call
overhead on small networks.

Sigmoid's e^-z overflows to inf for very negative z (1 / (1 + inf) = 0 is the right
limit), so every caller of :func:`forward` runs it with overflow warnings off:
:func:`compute_gradients`, :meth:`model.training.Trainer.run` and ``final_cost``,
:func:`model.predict.predict`, :func:`model.predict.evaluate` and
:func:`model.gradcheck.gradient_check`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.activations import ACTIVATIONS
from model.checks import check_X, check_Y
from model.losses import CANONICAL_COST, LOSSES
from model.network import Flat, Network
from model.spec import MAX_SEED, NetworkSpec, check_int

Array = NDArray[np.floating]


class Buffers:
    """The arrays of a pass over ``m`` examples.

    Attributes
    ----------
    Z, A : lists of L arrays (n_l, m): Z[l] and A[l] (after dropout)
    G : g(Z[l]) before dropout; the very arrays of A except for hidden layers of a spec
        with dropout
    D : the dropout masks of the hidden layers (0/1 in the dtype), if the spec has dropout
    dZL : (n_L, m), dZ[L] / m
    ones : (m, 1)
    scratch : list of L arrays shaped like A[l], views of one vector
    g : the activation of each layer (its row of the table), resolved once
    """

    def __init__(self, spec: NetworkSpec, m: int, *, backward: bool = True) -> None:
        dtype, units = spec.np_dtype, spec.layer_dims[1:]
        self.m = m
        self.Z = [np.empty((n, m), dtype) for n in units]
        self.A = [np.empty((n, m), dtype) for n in units]
        self.G, self.D = self.A, list[Array]()
        if spec.dropout is not None and backward:
            self.G = [np.empty((n, m), dtype) for n in units[:-1]] + [self.A[-1]]
            self.D = [np.empty((n, m), dtype) for n in units[:-1]]
        self.dZL = np.empty((units[-1], m), dtype) if backward else self.A[-1]
        self.ones = np.ones((m, 1), dtype)
        self._scratch = np.empty(max(units) * m if backward else 0, dtype)
        self.scratch = [self._scratch[: n * m].reshape(n, m) for n in units] if backward else []
        self.g = [ACTIVATIONS[name] for name in spec.activations]

    @property
    def nbytes(self) -> int:
        arrays = [*self.Z, *self.A, *self.G[:-1], *self.D, self.dZL, self.ones, self._scratch]
        return sum(a.nbytes for a in {id(a): a for a in arrays}.values())


def draw_masks(
    spec: NetworkSpec, buf: Buffers, uniform: Callable[[tuple[int, int]], Array]
) -> None:
    """D[l] = (uniform(n_l, m) < keep_prob[l]) for the hidden layers l = 1..L-1, in order."""
    assert spec.dropout is not None  # buf.D is empty otherwise
    for D, keep in zip(buf.D, spec.dropout.keep_prob, strict=True):
        np.less(uniform(D.shape), keep, out=D)


def forward(
    network: Network, X: Array, buf: Buffers, *, dropout: bool = False, start: int = 0
) -> Array:
    """Propagate X (n_x, m) through layers start + 1..L and return A[L] (``buf.A[-1]``).

    Layers up to ``start`` keep what ``buf`` holds. With ``dropout`` the hidden layers apply
    the masks in ``buf.D`` (the course's inverted dropout).
    """
    spec, W, b = network.spec, network.W, network.b
    keep = spec.dropout.keep_prob if dropout and spec.dropout else ()
    A_prev = X if start == 0 else buf.A[start - 1]
    for i in range(start, spec.L):
        Z, A = buf.Z[i], buf.A[i]
        np.dot(W[i], A_prev, out=Z)  # Z[l] = W[l] A[l-1]
        np.add(Z, b[i], out=Z)  #             + b[l]
        g = buf.g[i].forward
        if i < len(keep):
            g(Z, buf.G[i])  # A[l] = g(Z[l]),
            np.multiply(buf.G[i], buf.D[i], out=A)  # then A[l] = A[l] * D[l]
            np.divide(A, keep[i], out=A)  #                          / keep_prob[l]
        else:
            g(Z, A)  # A[l] = g(Z[l])
        A_prev = A
    return A_prev


def cost(network: Network, buf: Buffers, Y: Array) -> float:
    """J = (1/m) sum of the per-example losses of the pass in ``buf`` against Y (n_L, m),
    plus (lambda / (2m)) sum_l ||W[l]||^2 with L2."""
    spec, m = network.spec, int(Y.shape[1])
    canonical = CANONICAL_COST.get((spec.activations[-1], spec.loss))
    if canonical is not None:  # from Z[L], the stable form
        total = canonical(buf.Z[-1], buf.A[-1], Y)
    else:
        total = LOSSES[spec.loss].cost(buf.A[-1], Y)
    J = float(total) / m
    if spec.l2_lambda:
        W = network.theta[: network.layout.n_W]
        J += spec.l2_lambda / (2 * m) * float(np.dot(W, W))
    return J


Record = dict[str, list[Array | None]]


def backward(
    network: Network,
    X: Array,
    Y: Array,
    buf: Buffers,
    grad: Flat,
    scratch: Array,
    *,
    dropout: bool = False,
    record: Record | None = None,
) -> None:
    """Backpropagate the pass in ``buf`` against Y into ``grad``: dW[l] and db[l] of every layer
    (``grad.W``, ``grad.b``, views into ``grad.vector``), the L2 term included.

    ``scratch`` is a writable vector of at least ``n_W`` entries that the L2 term overwrites.
    ``record`` (``{"dZ": [None] * L, "dA": [None] * L}``) receives copies of dZ[l] and dA[l]
    per example, as the course defines them (not divided by m). With ``dropout`` the masks
    in ``buf.D`` apply, as in the forward pass.
    """
    spec, m = network.spec, Y.shape[1]
    gW, gb = grad.W, grad.b
    dZ = _output_delta(spec, buf, Y, record)
    G = buf.G if dropout else buf.A
    keep = spec.dropout.keep_prob if dropout and spec.dropout else ()
    for i in reversed(range(spec.L)):
        A_prev = X if i == 0 else buf.A[i - 1]
        np.dot(dZ, A_prev.T, out=gW[i])  # dW[l] = (1/m) dZ[l] A[l-1]^T   (dZ carries the 1/m)
        # db[l] = (1/m) sum(dZ[l], axis=1, keepdims=True), as a product with a column of
        # ones: a BLAS call, several times faster than numpy's pairwise reduction.
        np.dot(dZ, buf.ones, out=gb[i])
        if i == 0:
            break  # dA[0], the gradient with respect to X, is never needed
        dA = buf.Z[i - 1]  # Z[l-1] is spent (g' reads A): its buffer takes dA, then dZ
        np.dot(network.W[i].T, dZ, out=dA)  # dA[l-1] = W[l]^T dZ[l]
        if keep:
            np.multiply(dA, buf.D[i - 1], out=dA)  # dA[l-1] = dA[l-1] * D[l-1]
            np.divide(dA, keep[i - 1], out=dA)  #                         / keep_prob[l-1]
        if record is not None:
            record["dA"][i - 1] = dA * m
        buf.g[i - 1].backward(dA, G[i - 1], buf.scratch[i - 1])
        # ... and now dZ[l-1] = dA[l-1] * g'(Z[l-1])
        if record is not None:
            record["dZ"][i - 1] = dA * m
        dZ = dA
    if spec.l2_lambda:  # dW[l] += (lambda/m) W[l], over all layers' W at once
        n_W = network.layout.n_W
        g = grad.vector[:n_W]
        np.multiply(network.theta[:n_W], spec.l2_lambda / m, out=scratch[:n_W])
        np.add(g, scratch[:n_W], out=g)


def _output_delta(spec: NetworkSpec, buf: Buffers, Y: Array, record: Record | None) -> Array:
    """dZ[L] / m, into ``buf.dZL``."""
    AL, dZL = buf.A[-1], buf.dZL
    if (spec.activations[-1], spec.loss) in CANONICAL_COST:
        np.subtract(AL, Y, out=dZL)  # dZ[L] = A[L] - Y (model.losses says why)
    else:  # dZ[L] = dA[L] * g'(Z[L]), the general chain rule
        np.copyto(dZL, LOSSES[spec.loss].gradient(AL, Y))
        buf.g[-1].backward(dZL, AL, buf.scratch[-1])
    if record is not None:
        record["dZ"][-1] = dZL.copy()
        record["dA"][-1] = LOSSES[spec.loss].gradient(AL, Y)
    # The 1/m that dW and db need, folded in here once: every dZ[l] and dA[l] of the
    # backward pass then carries it (one multiply of an (n_L, m) array, not one per layer).
    np.multiply(dZL, 1.0 / Y.shape[1], out=dZL)
    return dZL


@dataclass(eq=False)
class Pass:
    """What one forward and backward pass over a batch computed, for layers l = 1..L (list
    entry l - 1): the cost, dW[l] and db[l] (with L2), and with ``intermediate`` Z[l], A[l]
    (after dropout), dZ[l] and dA[l] (per example, not divided by m) and, for hidden layers
    of a pass with dropout, the masks D[l]."""

    cost: float
    dW: list[Array]
    db: list[Array]
    Z: list[Array] | None = None
    A: list[Array] | None = None
    D: list[Array] | None = None
    dZ: list[Array | None] | None = None
    dA: list[Array | None] | None = None


def compute_gradients(
    network: Network,
    X: ArrayLike,
    Y: ArrayLike,
    *,
    intermediate: bool = False,
    dropout_seed: int | None = None,
) -> Pass:
    """Validate X (n_x, m) and Y (n_L, m), then forward, cost and backward, without an update.

    With ``dropout_seed``, on a network with dropout, the pass draws its masks as the course's
    ``forward_propagation_with_dropout`` does: ``numpy.random.RandomState(dropout_seed)
    .rand(n_l, m) < keep_prob[l]`` for l = 1..L-1, in order.
    """
    spec = network.spec
    if dropout_seed is not None:
        check_int("dropout_seed", dropout_seed, 0, MAX_SEED)
    X_checked = check_X(spec, X)
    m = int(X_checked.shape[1])
    Y_checked = check_Y(spec, Y, m)
    buf = Buffers(spec, m)
    dropout = dropout_seed is not None and spec.dropout is not None
    if dropout:
        rng = np.random.RandomState(dropout_seed)
        draw_masks(spec, buf, lambda shape: rng.rand(*shape))
    record: Record | None = {"dZ": [None] * spec.L, "dA": [None] * spec.L} if intermediate else None
    grad = network.layout.flat(np.empty_like(network.theta))
    scratch = np.empty_like(network.theta)
    with np.errstate(over="ignore"):  # sigmoid's e^-z (see the top of this module)
        forward(network, X_checked, buf, dropout=dropout)
        J = cost(network, buf, Y_checked)
        copies = [a.copy() for a in buf.Z] if intermediate else None
        backward(network, X_checked, Y_checked, buf, grad, scratch, dropout=dropout, record=record)
    dW, db = grad.W, grad.b
    if record is None:
        return Pass(J, dW, db)
    return Pass(J, dW, db, copies, buf.A, buf.D if dropout else None, record["dZ"], record["dA"])
