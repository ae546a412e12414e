"""Losses, in one table keyed by name.

Each cost function returns the SUM over all entries of the per-example loss (the
caller divides by m and adds L2); each gradient returns dA[L], the derivative of the
per-example loss with respect to A[L] (not divided by m). Arrays are (n_L, m).

Logs of probabilities go through one of two guards, so that a prediction of exactly
0 or 1 never makes a cost infinite or NaN:

* for the canonical pairs (sigmoid + binary cross-entropy, softmax + categorical
  cross-entropy) the cost is computed from Z[L] with a stable log-sigmoid/log-softmax,
  exact even where A[L] has rounded to 0 or 1;
* otherwise A[L] is clipped to [eps, 1 - eps] with eps the dtype's machine epsilon,
  which changes nothing unless A[L] is within eps of 0 or 1 (so the float64 gradient
  check is unaffected).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


@dataclass(frozen=True)
class Loss:
    """One loss: its cost (sum), dA[L], and the output activation it is canonical for.

    For the canonical activation the chain rule collapses to dZ[L] = A[L] - Y, which
    needs no division by A[L] (1 - A[L]) and is exact when A[L] saturates.
    ``logit_cost`` is the stable cost computed from Z[L] for that activation, if any.
    """

    cost: Callable[[Array, Array], float]
    gradient: Callable[[Array, Array], Array]
    canonical_activation: str
    logit_cost: Callable[[Array, Array], float] | None = None


def _clipped(A: Array) -> Array:
    eps = float(np.finfo(A.dtype).eps)
    return np.clip(A, eps, 1.0 - eps)


def _bce_cost(A: Array, Y: Array) -> float:
    A = _clipped(A)
    return float(-np.sum(Y * np.log(A) + (1.0 - Y) * np.log1p(-A)))


def _bce_gradient(A: Array, Y: Array) -> Array:
    A = _clipped(A)
    return -(Y / A) + (1.0 - Y) / (1.0 - A)


def _bce_from_logits(Z: Array, Y: Array) -> float:
    # -log s(z) = softplus(-z) and -log(1 - s(z)) = softplus(z), with
    # softplus(+-z) = max(+-z, 0) + log1p(exp(-|z|)): no overflow, and no cancellation
    # either (softplus(z) - y z would lose a tiny loss of a confident right answer).
    tail = np.log1p(np.exp(-np.abs(Z)))
    return float(np.sum(Y * (np.maximum(-Z, 0.0) + tail) + (1.0 - Y) * (np.maximum(Z, 0.0) + tail)))


def _cce_cost(A: Array, Y: Array) -> float:
    return float(-np.sum(Y * np.log(_clipped(A))))


def _cce_gradient(A: Array, Y: Array) -> Array:
    return -(Y / _clipped(A))


def _cce_from_logits(Z: Array, Y: Array) -> float:
    # log softmax(z) = (z - max z) - log(sum(exp(z - max z))): exp never exceeds 1. The
    # sum is 1 (the max entry) + the rest, so log1p(rest) keeps the log of a confident
    # column accurate where log(1 + rest) would round it away.
    shifted = Z - Z.max(axis=0, keepdims=True)
    e = np.exp(shifted)
    e[np.argmax(Z, axis=0), np.arange(Z.shape[1])] = 0.0
    log_A = shifted - np.log1p(np.sum(e, axis=0, keepdims=True))
    return float(-np.sum(Y * log_A))


def _mse_cost(A: Array, Y: Array) -> float:
    diff = A - Y
    return 0.5 * float(np.vdot(diff, diff))


def _mse_gradient(A: Array, Y: Array) -> Array:
    return A - Y


LOSSES: dict[str, Loss] = {
    "binary_cross_entropy": Loss(_bce_cost, _bce_gradient, "sigmoid", _bce_from_logits),
    "categorical_cross_entropy": Loss(_cce_cost, _cce_gradient, "softmax", _cce_from_logits),
    "mean_squared_error": Loss(_mse_cost, _mse_gradient, "linear"),
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)

# The loss a network gets when none is named, by output activation.
DEFAULT_LOSS: dict[str, str] = {
    "sigmoid": "binary_cross_entropy",
    "softmax": "categorical_cross_entropy",
}
FALLBACK_LOSS = "mean_squared_error"

# Cross-entropies take logs of A[L], so they need outputs in (0, 1).
PROBABILITY_OUTPUTS: tuple[str, ...] = ("sigmoid", "softmax")
PROBABILITY_LOSSES: tuple[str, ...] = ("binary_cross_entropy", "categorical_cross_entropy")
