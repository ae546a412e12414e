"""Losses, one row each, and the canonical output pairs, one row each.

A loss's ``cost(A, Y)`` is the SUM over all entries of the per-example loss (the caller
divides by m and adds L2); its ``gradient(A, Y)`` is dA[L], the derivative of the
per-example loss with respect to A[L]. Arrays are (n_L, m).

An output activation and a loss form a canonical pair when the chain rule
dZ[L] = dA[L] * g'(Z[L]) collapses to dZ[L] = A[L] - Y:

* sigmoid + binary cross-entropy: dA = -y/a + (1-y)/(1-a) and g'(z) = a (1 - a), whose
  product is a - y;
* softmax + categorical cross-entropy: dA_k = -y_k/a_k, and softmax's Jacobian
  da_k/dz_j = a_k (delta_kj - a_j) gives dz_j = -y_j + a_j sum_k y_k = a_j - y_j, since a
  column of Y sums to 1;
* linear + mean squared error: the loss (1/2)(a - y)^2 has dA = a - y, and g' = 1.

For these, ``A - Y`` needs no division by a (1 - a) and stays exact where A[L] saturates at
0 or 1, and the cost is taken from Z[L] by a stable log-sigmoid or log-softmax (exact even
where A[L] has rounded to 0 or 1). Any other pair uses ``gradient`` and the general chain
rule, with A[L] clipped to [eps, 1 - eps] (eps: the dtype's machine epsilon) before logs are
taken, which changes nothing unless A[L] is within eps of 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from model.activations import zeros_like

Array = NDArray[np.floating]


@dataclass(frozen=True)
class Loss:
    cost: Callable[[Array, Array], float]
    gradient: Callable[[Array, Array], Array]


def _clipped(A: Array) -> Array:
    eps = float(np.finfo(A.dtype).eps)
    return np.clip(A, eps, 1.0 - eps)


def _bce_cost(A: Array, Y: Array) -> float:
    A = _clipped(A)
    return float(-np.sum(Y * np.log(A) + (1.0 - Y) * np.log1p(-A)))


def _bce_gradient(A: Array, Y: Array) -> Array:
    A = _clipped(A)
    return -(Y / A) + (1.0 - Y) / (1.0 - A)


def _cce_cost(A: Array, Y: Array) -> float:
    return float(-np.sum(Y * np.log(_clipped(A))))


def _cce_gradient(A: Array, Y: Array) -> Array:
    return -(Y / _clipped(A))


def _mse_cost(A: Array, Y: Array) -> float:
    diff = A - Y
    return 0.5 * float(np.vdot(diff, diff))


def _mse_gradient(A: Array, Y: Array) -> Array:
    return A - Y


LOSSES: dict[str, Loss] = {
    "binary_cross_entropy": Loss(_bce_cost, _bce_gradient),
    "categorical_cross_entropy": Loss(_cce_cost, _cce_gradient),
    "mean_squared_error": Loss(_mse_cost, _mse_gradient),
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)


def _bce_from_logits(Z: Array, A: Array, Y: Array) -> float:
    # -y log s(z) - (1 - y) log(1 - s(z)) = softplus(z) - y z, written
    # max(z, 0) - y z + log1p(e^-|z|): nothing overflows, and for a confident right answer
    # the first two terms cancel exactly, so it keeps its tiny loss.
    loss = np.maximum(Z, zeros_like(Z))
    loss -= np.multiply(Y, Z)
    tail = np.abs(Z)
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)
    loss += np.log1p(tail, out=tail)
    return float(np.add.reduce(loss, axis=None))


def _cce_from_logits(Z: Array, A: Array, Y: Array) -> float:
    # -sum(y log softmax(z)) with log softmax(z) = (z - max z) - log(sum(exp(z - max z))):
    # exp never exceeds 1, and a confidently wrong answer costs its whole logit gap.
    shifted = Z - Z.max(axis=0, keepdims=True)
    shifted -= np.log(np.add.reduce(np.exp(shifted), axis=0, keepdims=True))
    return -float(np.dot(Y.reshape(-1), shifted.reshape(-1)))


def _mse_of_outputs(Z: Array, A: Array, Y: Array) -> float:
    return _mse_cost(A, Y)


# The canonical pairs: (output activation, loss) -> the cost, summed, from Z[L], A[L] and Y.
CANONICAL_COST: dict[tuple[str, str], Callable[[Array, Array, Array], float]] = {
    ("sigmoid", "binary_cross_entropy"): _bce_from_logits,
    ("softmax", "categorical_cross_entropy"): _cce_from_logits,
    ("linear", "mean_squared_error"): _mse_of_outputs,
}

# The loss a network gets when none is named, by output activation.
DEFAULT_LOSS: dict[str, str] = {
    "sigmoid": "binary_cross_entropy",
    "softmax": "categorical_cross_entropy",
}
FALLBACK_LOSS = "mean_squared_error"

# Cross-entropies take logs of A[L], so they need outputs in (0, 1).
PROBABILITY_OUTPUTS: tuple[str, ...] = ("sigmoid", "softmax")
PROBABILITY_LOSSES: tuple[str, ...] = ("binary_cross_entropy", "categorical_cross_entropy")
