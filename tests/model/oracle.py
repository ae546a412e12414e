"""The oracle: the course's equations written as the course writes them, allocating freely.

Independent of model/ on purpose: it reads only the data of a spec and a network (layer
activations, loss, lambda, keep_prob, optimizer hyperparameters, W, b and the moments) and
computes in float64 from the definitions, with the chain rule dZ[L] = dA[L] * g'(Z[L]) for
every output pair (softmax through its Jacobian), never the fused A - Y. Examples are
columns. Meant for moderate inputs: it takes np.log of A unclipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:  # annotations only: the oracle runs none of model/'s code
    from model import Network, NetworkSpec, OptimizerSpec

F = NDArray[np.float64]


def _softmax(Z: F) -> F:
    e: F = np.exp(Z - Z.max(axis=0, keepdims=True))  # the shift changes nothing
    A: F = e / e.sum(axis=0, keepdims=True)
    return A


def _sigmoid(Z: F) -> F:
    return 1 / (1 + np.exp(-Z))


# g(Z), and g'(Z) elementwise (softmax's Jacobian is in g_backward).
G: dict[str, Callable[[F], F]] = {
    "relu": lambda Z: np.maximum(Z, 0.0),
    "leaky_relu": lambda Z: np.where(Z > 0, Z, 0.01 * Z),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "linear": lambda Z: Z,
    "softmax": _softmax,
}
G_PRIME: dict[str, Callable[[F], F]] = {
    "relu": lambda Z: (Z > 0).astype(np.float64),  # g'(0) = 0, as in the course
    "leaky_relu": lambda Z: np.where(Z > 0, 1.0, 0.01),
    "tanh": lambda Z: 1 - np.tanh(Z) ** 2,
    "sigmoid": lambda Z: _sigmoid(Z) * (1 - _sigmoid(Z)),
    "linear": np.ones_like,
}
# Each example's loss summed over the units, and its derivative dA[L].
LOSS: dict[str, Callable[[F, F], F]] = {
    "binary_cross_entropy": lambda A, Y: -(Y * np.log(A) + (1 - Y) * np.log(1 - A)),
    "categorical_cross_entropy": lambda A, Y: -Y * np.log(A),
    "mean_squared_error": lambda A, Y: 0.5 * (A - Y) ** 2,
}
LOSS_GRADIENT: dict[str, Callable[[F, F], F]] = {
    "binary_cross_entropy": lambda A, Y: -(Y / A - (1 - Y) / (1 - A)),
    "categorical_cross_entropy": lambda A, Y: -Y / A,
    "mean_squared_error": lambda A, Y: A - Y,
}


def g_backward(name: str, dA: F, Z: F) -> F:
    """dZ = dA * g'(Z); for softmax, column by column, J^T dA with J_kj = a_k (delta_kj - a_j)."""
    if name != "softmax":
        return dA * G_PRIME[name](Z)
    dZ = np.empty_like(dA)
    for j, a in enumerate(_softmax(Z).T):
        jacobian = np.diag(a) - np.outer(a, a)
        dZ[:, j] = jacobian.T @ dA[:, j]
    return dZ


@dataclass
class Result:
    """cost, and per layer l = 1..L (entry l - 1): Z, A (after dropout), dZ and dA (per
    example), dW and db (with L2)."""

    cost: float
    Z: list[F]
    A: list[F]
    dZ: list[F]
    dA: list[F]
    dW: list[F]
    db: list[F]


def gradients(
    network: Network, X: ArrayLike, Y: ArrayLike, D: Sequence[ArrayLike] | None = None
) -> Result:
    """:func:`gradients_of` the network's spec and parameters."""
    return gradients_of(network.spec, network.W, network.b, X, Y, D)


def gradients_of(
    spec: NetworkSpec,
    W_in: Sequence[ArrayLike],
    b_in: Sequence[ArrayLike],
    X: ArrayLike,
    Y: ArrayLike,
    D: Sequence[ArrayLike] | None = None,
) -> Result:
    """Forward with a cache, the cost with L2, and backward, for the spec's activations,
    loss and lambda and parameters W, b, on X (n_x, m) and Y (n_L, m). With masks D (one per
    hidden layer), inverted dropout with the spec's keep_prob on the hidden layers."""
    W = [np.array(w, dtype=np.float64) for w in W_in]
    b = [np.array(x, dtype=np.float64) for x in b_in]
    L, lambd, acts = len(W), spec.l2_lambda, spec.activations
    masks = [np.array(d, dtype=np.float64) for d in D] if D is not None else []
    keep = spec.dropout.keep_prob if spec.dropout is not None else ()
    A: F = np.array(X, dtype=np.float64)
    Y64: F = np.array(Y, dtype=np.float64)
    m = A.shape[1]
    cache: list[tuple[F, F]] = []  # (A[l-1], Z[l])
    for l in range(1, L + 1):
        Z = W[l - 1] @ A + b[l - 1]
        cache.append((A, Z))
        A = G[acts[l - 1]](Z)
        if l <= len(masks):
            A = A * masks[l - 1] / keep[l - 1]
    cost = float(np.sum(LOSS[spec.loss](A, Y64))) / m
    cost += lambd / (2 * m) * sum(float(np.sum(w**2)) for w in W)
    r = Result(cost, [z for _, z in cache], [a for a, _ in cache[1:]] + [A], [], [], [], [])
    dA = LOSS_GRADIENT[spec.loss](A, Y64)
    for l in reversed(range(1, L + 1)):
        A_prev, Z = cache[l - 1]
        if l <= len(masks):
            dA = dA * masks[l - 1] / keep[l - 1]
        dZ = g_backward(acts[l - 1], dA, Z)
        r.dA.insert(0, dA)
        r.dZ.insert(0, dZ)
        r.dW.insert(0, (1 / m) * dZ @ A_prev.T + (lambd / m) * W[l - 1])
        r.db.insert(0, (1 / m) * np.sum(dZ, axis=1, keepdims=True))
        dA = W[l - 1].T @ dZ
    return r


@dataclass
class State:
    """W, b (per layer), the moments v, s (lists [W1, ..., WL, b1, ..., bL]) and Adam's t."""

    W: list[F]
    b: list[F]
    v: list[F]
    s: list[F]
    t: int


def state_of(network: Network) -> State:
    """A network's parameters, moments (zeros where its optimizer has none) and t."""
    W = [np.array(w, dtype=np.float64) for w in network.W]
    b = [np.array(x, dtype=np.float64) for x in network.b]
    moments = {
        name: [np.array(a, dtype=np.float64) for a in [*Wm, *bm]]
        for name, (Wm, bm) in network.moment_views.items()
    }
    zeros = [np.zeros_like(p) for p in [*W, *b]]
    return State(W, b, moments.get("v", zeros), moments.get("s", zeros), network.optimizer_t)


def update(opt: OptimizerSpec, lr: float, state: State, dW: list[F], db: list[F]) -> State:
    """One step of gd, momentum or Adam as the course writes them (t counts from 1)."""
    theta, grad = [*state.W, *state.b], [*dW, *db]
    v, s, t = state.v, state.s, state.t + 1
    if opt.name == "gd":
        new = [p - lr * d for p, d in zip(theta, grad, strict=True)]
    elif opt.name == "momentum":
        v = [opt.beta * v_ + (1 - opt.beta) * d for v_, d in zip(v, grad, strict=True)]
        new = [p - lr * v_ for p, v_ in zip(theta, v, strict=True)]
    else:
        beta1, beta2, eps = opt.beta1, opt.beta2, opt.epsilon
        v = [beta1 * v_ + (1 - beta1) * d for v_, d in zip(v, grad, strict=True)]
        s = [beta2 * s_ + (1 - beta2) * d**2 for s_, d in zip(s, grad, strict=True)]
        new = []
        for p, v_, s_ in zip(theta, v, s, strict=True):
            v_corr = v_ / (1 - beta1**t)
            s_corr = s_ / (1 - beta2**t)
            new.append(p - lr * v_corr / (np.sqrt(s_corr) + eps))
    L = len(state.W)
    return State(new[:L], new[L:], v, s, t)
