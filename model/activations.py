"""Activation functions g, one row each: the function and its backward rule.

``forward(Z, out)`` writes A = g(Z); ``backward(dA, A, scratch)`` turns dA, in place, into
dZ = dA * g'(Z), reading g' from A = g(Z) rather than from Z (so backpropagation needs no
Z, and its buffer can take dA). ``scratch`` is an array shaped like A. Arrays are
(n_l, m) and keep their dtype. Adding an activation is one function pair and one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    forward: Callable[[Array, Array], object]
    backward: Callable[[Array, Array, Array], object]


# np.maximum(Z, 0.0) runs numpy's scalar-operand loop, several times slower than the same
# maximum against an array of zeros: relu reads its zeros from one shared, read-only array
# per shape and dtype (the few shapes a network's layers have).
_zeros: dict[tuple[tuple[int, ...], np.dtype[np.floating]], Array] = {}


def zeros_like(Z: Array) -> Array:
    """Read-only zeros shaped like Z, for ufuncs' fast array-operand loops."""
    zeros = _zeros.get((Z.shape, Z.dtype))
    if zeros is None:
        if len(_zeros) > 64:  # shapes come and go with batch sizes
            _zeros.clear()
        zeros = np.zeros(Z.shape, Z.dtype)
        zeros.flags.writeable = False
        _zeros[(Z.shape, Z.dtype)] = zeros
    return zeros


def _relu(Z: Array, out: Array) -> None:
    np.maximum(Z, zeros_like(Z), out=out)


def _relu_backward(dA: Array, A: Array, scratch: Array) -> None:
    # g'(z) = 1 for z > 0, else 0 (g'(0) = 0, as in the course), and a > 0 exactly where
    # z > 0: the comparison goes straight into a float array, a 0/1 mask that is multiplied.
    np.greater(A, 0, out=scratch)
    np.multiply(dA, scratch, out=dA)


def _leaky_relu(Z: Array, out: Array) -> None:
    np.multiply(Z, LEAKY_SLOPE, out=out)
    np.maximum(Z, out, out=out)


def _leaky_relu_backward(dA: Array, A: Array, scratch: Array) -> None:
    # g'(z) = 1 for z > 0, else the slope: the 0/1 mask lifted to max(mask, slope), which is
    # exact (slope + (1 - slope) mask would round).
    np.greater(A, 0, out=scratch)
    np.maximum(scratch, LEAKY_SLOPE, out=scratch)
    np.multiply(dA, scratch, out=dA)


def _tanh(Z: Array, out: Array) -> None:
    np.tanh(Z, out=out)


def _tanh_backward(dA: Array, A: Array, scratch: Array) -> None:
    # g'(z) = 1 - tanh(z)^2 = 1 - a^2, applied as dA - dA a^2 (array operands only: numpy's
    # loops with a scalar operand are slower on small arrays).
    np.multiply(A, A, out=scratch)
    np.multiply(scratch, dA, out=scratch)
    np.subtract(dA, scratch, out=dA)


def _sigmoid(Z: Array, out: Array) -> None:
    # 1 / (1 + e^-z) keeps full relative precision for small outputs too; where e^-z
    # overflows (z < -709 in float64), 1 / (1 + inf) = 0 is the right limit. Callers run
    # it with overflow warnings off (model.propagation says where).
    np.negative(Z, out=out)
    np.exp(out, out=out)
    np.add(out, 1.0, out=out)
    np.reciprocal(out, out=out)


def _sigmoid_backward(dA: Array, A: Array, scratch: Array) -> None:
    np.subtract(1.0, A, out=scratch)  # g'(z) = a (1 - a)
    np.multiply(scratch, A, out=scratch)
    np.multiply(dA, scratch, out=dA)


def _linear(Z: Array, out: Array) -> None:
    np.copyto(out, Z)


def _linear_backward(dA: Array, A: Array, scratch: Array) -> None:
    pass  # g'(z) = 1


def _softmax(Z: Array, out: Array) -> None:
    # Shifting each column by its maximum leaves softmax unchanged and keeps exp <= 1.
    np.subtract(Z, Z.max(axis=0, keepdims=True), out=out)
    np.exp(out, out=out)
    np.divide(out, out.sum(axis=0, keepdims=True), out=out)


def _softmax_backward(dA: Array, A: Array, scratch: Array) -> None:
    # Softmax's Jacobian is not diagonal: column by column, dZ = A * (dA - sum(A * dA)).
    np.multiply(A, dA, out=scratch)
    np.subtract(dA, scratch.sum(axis=0, keepdims=True), out=dA)
    np.multiply(dA, A, out=dA)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(_relu, _relu_backward),
    "leaky_relu": Activation(_leaky_relu, _leaky_relu_backward),
    "tanh": Activation(_tanh, _tanh_backward),
    "sigmoid": Activation(_sigmoid, _sigmoid_backward),
    "linear": Activation(_linear, _linear_backward),
    "softmax": Activation(_softmax, _softmax_backward),
}
ACTIVATION_NAMES: tuple[str, ...] = tuple(ACTIVATIONS)
