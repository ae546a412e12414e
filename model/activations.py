"""Activation functions g and their backward rules, in one table keyed by name.

Every function works column-wise on arrays of shape (n_l, m) and keeps the input's
dtype. ``out``, when given, is a preallocated array of the same shape and dtype that
receives the result (the Trainer's fast step passes its buffers); it must not be one
of the inputs. Without ``out`` a new array is returned, except that ``linear``
returns its input unchanged (nobody writes into cached arrays).
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
    """One activation: ``forward(Z) -> A`` and ``backward(dA, Z, A) -> dZ``.

    ``backward`` is the derivative applied by the chain rule, dZ = dA * g'(Z), or for
    softmax (whose Jacobian is not diagonal) the full Jacobian-vector product.

    ``backward_in_place(dZ, A, scratch)`` turns dZ, which holds dA on entry, into
    dA * g'(Z) with the same arithmetic as ``backward``, using ``scratch`` (an array
    shaped like A) for g'.
    """

    forward: Callable[[Array, Array | None], Array]
    backward: Callable[[Array, Array, Array, Array | None], Array]
    backward_in_place: Callable[[Array, Array, Array], object]


# np.maximum(Z, 0.0) runs numpy's scalar-operand loop, several times slower than the same
# maximum against an array of zeros; relu reads its zeros from one shared, read-only,
# zero-filled vector per dtype, grown on demand up to this many entries.
_ZEROS_LIMIT = 1 << 22
_zeros_by_dtype: dict[np.dtype[np.floating], Array] = {}


def _zeros_like(Z: Array) -> Array | float:
    """A read-only (n, m) array of zeros in Z's dtype, or 0.0 for a huge or odd Z."""
    size = Z.size
    if size > _ZEROS_LIMIT or Z.dtype.kind != "f":
        return 0.0
    zeros = _zeros_by_dtype.get(Z.dtype)
    if zeros is None or zeros.size < size:
        zeros = np.zeros(max(size, 4096), Z.dtype)
        zeros.flags.writeable = False
        _zeros_by_dtype[Z.dtype] = zeros  # one atomic store: readers keep their old view
    return zeros[:size].reshape(Z.shape)


def _relu(Z: Array, out: Array | None) -> Array:
    return np.maximum(Z, _zeros_like(Z), out=out)


def _step_mask(Z: Array, out: Array | None) -> Array:
    """1.0 where z > 0, else 0.0, as numbers in Z's dtype (so it is multiplied, not indexed).

    ``np.greater`` writes the comparison straight into a float array; ``np.heaviside``
    would give the same numbers at a tenth of the speed.
    """
    if out is None:
        return (Z > 0).astype(Z.dtype)
    return np.greater(Z, 0, out=out)


def _relu_backward(dA: Array, Z: Array, A: Array, out: Array | None) -> Array:
    # g'(z) = 1 for z > 0 and 0 for z <= 0 (g'(0) = 0, the convention of the course).
    mask = _step_mask(Z, out)
    return np.multiply(mask, dA, out=mask)


def _relu_backward_in_place(dZ: Array, A: Array, scratch: Array) -> None:
    np.greater(A, 0, out=scratch)
    np.multiply(scratch, dZ, out=dZ)


def _leaky_relu(Z: Array, out: Array | None) -> Array:
    scaled = np.multiply(Z, LEAKY_SLOPE, out=out)
    return np.maximum(Z, scaled, out=scaled)


def _leaky_relu_backward(dA: Array, Z: Array, A: Array, out: Array | None) -> Array:
    # The 0/1 mask lifted to slope/1: max(mask, slope) is exact, unlike slope + (1-slope)*mask.
    mask = _step_mask(Z, out)
    np.maximum(mask, LEAKY_SLOPE, out=mask)
    return np.multiply(mask, dA, out=mask)


def _leaky_relu_backward_in_place(dZ: Array, A: Array, scratch: Array) -> None:
    np.greater(A, 0, out=scratch)
    np.maximum(scratch, LEAKY_SLOPE, out=scratch)
    np.multiply(scratch, dZ, out=dZ)


def _tanh(Z: Array, out: Array | None) -> Array:
    return np.tanh(Z, out=out)


def _tanh_backward(dA: Array, Z: Array, A: Array, out: Array | None) -> Array:
    # g'(z) = 1 - tanh(z)^2, computed from the cached A instead of a second tanh.
    d = np.multiply(A, A, out=out)
    np.subtract(1.0, d, out=d)
    return np.multiply(d, dA, out=d)


def _tanh_backward_in_place(dZ: Array, A: Array, scratch: Array) -> None:
    np.multiply(A, A, scratch)
    np.subtract(1.0, scratch, scratch)
    np.multiply(scratch, dZ, dZ)


def _sigmoid(Z: Array, out: Array | None) -> Array:
    # 1/(1+e^-z) for z >= 0 and e^z/(1+e^z) for z < 0: both only ever exponentiate -|z|,
    # so +-1000 neither overflows nor warns, and small outputs keep full relative precision.
    e = np.exp(-np.abs(Z))
    numerator = np.where(Z >= 0, 1.0, e).astype(Z.dtype, copy=False)
    np.add(e, 1.0, out=e)
    return np.divide(numerator, e, out=out)


def _sigmoid_backward(dA: Array, Z: Array, A: Array, out: Array | None) -> Array:
    d = np.subtract(1.0, A, out=out)
    np.multiply(d, A, out=d)
    return np.multiply(d, dA, out=d)


def _sigmoid_backward_in_place(dZ: Array, A: Array, scratch: Array) -> None:
    np.subtract(1.0, A, scratch)
    np.multiply(scratch, A, scratch)
    np.multiply(scratch, dZ, dZ)


def _linear(Z: Array, out: Array | None) -> Array:
    if out is None:
        return Z
    np.copyto(out, Z)
    return out


def _linear_backward(dA: Array, Z: Array, A: Array, out: Array | None) -> Array:
    return _linear(dA, out)


def _linear_backward_in_place(dZ: Array, A: Array, scratch: Array) -> None:
    pass


def _softmax(Z: Array, out: Array | None) -> Array:
    # Shifting each column by its maximum leaves softmax unchanged and keeps exp <= 1.
    shifted: Array = np.subtract(Z, Z.max(axis=0, keepdims=True), out=out)
    np.exp(shifted, out=shifted)
    np.divide(shifted, shifted.sum(axis=0, keepdims=True), out=shifted)
    return shifted


def _softmax_backward(dA: Array, Z: Array, A: Array, out: Array | None) -> Array:
    # Jacobian-vector product of softmax, column by column: dZ = A * (dA - sum(A * dA)).
    weighted = np.multiply(A, dA, out=out)
    total = weighted.sum(axis=0, keepdims=True)
    np.subtract(dA, total, out=weighted)
    return np.multiply(weighted, A, out=weighted)


def _softmax_backward_in_place(dZ: Array, A: Array, scratch: Array) -> None:
    np.multiply(A, dZ, out=scratch)
    total = scratch.sum(axis=0, keepdims=True)
    np.subtract(dZ, total, out=dZ)
    np.multiply(dZ, A, out=dZ)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(_relu, _relu_backward, _relu_backward_in_place),
    "leaky_relu": Activation(_leaky_relu, _leaky_relu_backward, _leaky_relu_backward_in_place),
    "tanh": Activation(_tanh, _tanh_backward, _tanh_backward_in_place),
    "sigmoid": Activation(_sigmoid, _sigmoid_backward, _sigmoid_backward_in_place),
    "linear": Activation(_linear, _linear_backward, _linear_backward_in_place),
    "softmax": Activation(_softmax, _softmax_backward, _softmax_backward_in_place),
}
ACTIVATION_NAMES: tuple[str, ...] = tuple(ACTIVATIONS)
