"""Validation of data and parameters against a spec, with messages a person can act on.

Every check raises :class:`~model.errors.ModelError` naming what was expected and what
was received, and never modifies its input. Examples are columns: X is (n_x, m) and
Y is (n_L, m).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import SupportsFloat, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model.errors import ModelError
from model.spec import NetworkSpec

Array = NDArray[np.floating]

# How far a one-hot/probability column of Y may sum from 1 (data often arrives as
# float32 or rounded decimal text).
COLUMN_SUM_TOLERANCE = 1e-6
SMALL_ARRAY = 1024  # entries up to which all_finite tests each one


def as_numeric(
    name: str, value: object, dtype: np.dtype[np.floating] | None = None
) -> NDArray[np.number] | NDArray[np.bool_]:
    """``np.asarray(value)`` if it holds real numbers, else a ModelError.

    ``dtype`` is what the caller will cast to. An array-like that converts itself (one
    with ``__array__`` that is not already an ndarray, such as the service's deferred
    nested lists) is asked for that dtype directly, so no wider copy is made on the way.
    Lists and ndarrays keep numpy's own type discovery, which is what refuses strings.
    """
    try:
        if dtype is not None and hasattr(value, "__array__") and not isinstance(value, np.ndarray):
            array = np.asarray(value, dtype=dtype)
        else:
            array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists, for instance
        raise ModelError(f"{name} must be a rectangular array of numbers; {error}.") from None
    if array.dtype.kind not in "biuf":
        raise ModelError(f"{name} must be an array of real numbers; received dtype {array.dtype}.")
    return array


def all_finite(array: NDArray[np.generic]) -> bool:
    """Whether every entry is finite; a large float array is read once, with no temporaries.

    Up to :data:`SMALL_ARRAY` entries the elementwise test is cheapest. For a larger
    contiguous float array, x . x is NaN or infinite whenever an entry is, and BLAS
    computes it at memory speed; only a non-finite result (possibly an overflow of huge
    finite entries) pays for the exact elementwise test. Integers are always finite.
    """
    if array.dtype.kind in "biu":
        return True
    if array.size <= SMALL_ARRAY:  # the elementwise test costs less than the errstate
        return bool(np.isfinite(array).all())
    if array.dtype.kind == "f" and array.flags.c_contiguous:
        flat = array.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            if math.isfinite(np.dot(flat, flat)):
                return True
    return bool(np.isfinite(array).all())


def check_finite(name: str, array: NDArray[np.generic]) -> None:
    """Refuse NaN and infinite entries, pointing at the first one."""
    if all_finite(array):
        return
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        hint = ""
        if array.dtype == np.float32:
            hint = f" float32 holds magnitudes up to {float(np.finfo(np.float32).max):.4g}."
        raise ModelError(
            f"{name} must contain only finite numbers; received {int(bad.sum())} NaN or "
            f"infinite entr{'y' if bad.sum() == 1 else 'ies'} (first at row {row}, column {col})."
            + hint
        )


def _as_finite(
    name: str, array: NDArray[np.generic], dtype: np.dtype[np.floating], *, copy: bool
) -> Array:
    """``array`` in ``dtype`` (a new array with ``copy``), refused unless every entry is finite.

    Checked after the cast: a finite float64 beyond float32's range becomes infinite there.
    """
    if array.dtype == dtype and not copy:
        out = cast(Array, array)  # already what it must be (a batch in its dtype)
    else:
        with np.errstate(over="ignore"):
            out = np.array(array, dtype=dtype, copy=True if copy else None)
    check_finite(name, out)
    return out


def _number(value: SupportsFloat) -> str:
    """A number as a person writes it (numpy 2's repr would say np.float64(2.0))."""
    return f"{float(value):g}"


def _describe(array: NDArray[np.generic]) -> str:
    return f"a {array.ndim}-D array of shape {array.shape}"


def check_X(spec: NetworkSpec, X: ArrayLike) -> Array:
    """Validate X and return it in the spec's dtype (no copy if it already is).

    Parameters
    ----------
    spec : NetworkSpec
    X : array_like of shape (n_x, m), m >= 1, finite

    Returns
    -------
    ndarray of shape (n_x, m) and dtype ``spec.np_dtype``
    """
    array = as_numeric("X", X, spec.np_dtype)
    n_x = spec.n_x
    expected = f"(n_x, m) = ({n_x}, m) with examples as columns"
    if array.ndim != 2:
        raise ModelError(f"X must be a 2-D array of shape {expected}; received {_describe(array)}.")
    if array.shape[0] != n_x:
        hint = ""
        if array.shape[1] == n_x:
            hint = " It looks like one row per example: transpose X."
        raise ModelError(f"X must have shape {expected}; received {array.shape}.{hint}")
    if array.shape[1] == 0:
        raise ModelError(
            f"X must hold at least one example (m >= 1); received shape {array.shape}."
        )
    return _as_finite("X", array, spec.np_dtype, copy=False)


def _accepts_class_indices(spec: NetworkSpec) -> bool:
    # A (1, m) row of class indices is unambiguous only when n_L >= 2, which the spec
    # guarantees for softmax outputs and categorical cross-entropy.
    return spec.n_L >= 2 and (
        spec.activations[-1] == "softmax" or spec.loss == "categorical_cross_entropy"
    )


def _one_hot(spec: NetworkSpec, indices: NDArray[np.number] | NDArray[np.bool_]) -> Array:
    row = indices[0]
    bad = (row != np.round(row)) | (row < 0) | (row >= spec.n_L)
    if bad.any():
        col = int(np.argmax(bad))
        raise ModelError(
            f"Class indices in Y must be integers in [0, {spec.n_L}) (n_L = {spec.n_L}); "
            f"received {_number(row[col])} at column {col}."
        )
    Y = np.zeros((spec.n_L, row.shape[0]), dtype=spec.np_dtype)
    Y[row.astype(np.intp), np.arange(row.shape[0])] = 1.0
    return Y


def check_Y(spec: NetworkSpec, Y: ArrayLike, m: int) -> Array:
    """Validate labels for ``m`` examples and return them as (n_L, m) in the spec's dtype.

    Parameters
    ----------
    spec : NetworkSpec
    Y : array_like of shape (n_L, m)
        For a softmax output or categorical cross-entropy also (1, m) integer class
        indices in [0, n_L), converted to one-hot columns.
    m : int
        Number of examples (columns of X).

    Returns
    -------
    ndarray of shape (n_L, m) and dtype ``spec.np_dtype``

    Raises
    ------
    ModelError
        Wrong shape, non-finite entries, or labels outside the loss's range: [0, 1]
        for binary cross-entropy; [0, 1] with columns summing to 1 for categorical.
    """
    array = as_numeric("Y", Y, spec.np_dtype)
    n_L = spec.n_L
    indices = _accepts_class_indices(spec)
    expected = f"(n_L, m) = ({n_L}, {m})"
    if indices:
        expected += f" (one-hot columns) or (1, {m}) (class indices)"
    if array.ndim != 2:
        raise ModelError(f"Y must be a 2-D array of shape {expected}; received {_describe(array)}.")
    array = _as_finite("Y", array, spec.np_dtype, copy=False)
    if indices and array.shape == (1, m):
        return _one_hot(spec, array)
    if array.shape != (n_L, m):
        hint = ""
        if array.shape == (m, n_L) and m != n_L:
            hint = " It looks like one row per example: transpose Y."
        elif array.shape[0] == n_L:
            hint = f" Y needs one column per example of X (m = {m})."
        raise ModelError(f"Y must have shape {expected}; received {array.shape}.{hint}")
    if spec.loss in ("binary_cross_entropy", "categorical_cross_entropy"):
        low, high = array.min(), array.max()
        if low < 0 or high > 1:
            raise ModelError(
                f"Y for {spec.loss} must lie in [0, 1]; received values from {_number(low)} "
                f"to {_number(high)}."
            )
    if spec.loss == "categorical_cross_entropy":
        sums = array.sum(axis=0, dtype=np.float64)
        off = np.abs(sums - 1.0) > COLUMN_SUM_TOLERANCE
        if off.any():
            col = int(np.argmax(off))
            raise ModelError(
                "Y for categorical_cross_entropy must have columns that sum to 1 (one-hot or "
                f"probabilities); column {col} sums to {_number(sums[col])}."
            )
    return array.astype(spec.np_dtype, copy=False)


def check_parameters(
    spec: NetworkSpec, W: Sequence[ArrayLike], b: Sequence[ArrayLike]
) -> tuple[list[Array], list[Array]]:
    """Validate W and b against ``layer_dims`` and return fresh copies in the spec's dtype.

    Parameters
    ----------
    W : sequence of L arrays, W[l-1] of shape (n_l, n_{l-1})
    b : sequence of L arrays, b[l-1] of shape (n_l, 1)
    """
    L = spec.L
    for name, arrays in (("W", W), ("b", b)):
        if isinstance(arrays, str | bytes) or not isinstance(arrays, Sequence):
            raise ModelError(f"{name} must be a list of L = {L} arrays; received {arrays!r}.")
        if len(arrays) != L:
            raise ModelError(
                f"{name} must hold one array per layer (L = {L}); received {len(arrays)}."
            )
    W_out: list[Array] = []
    b_out: list[Array] = []
    dims = spec.layer_dims
    for l in range(1, L + 1):
        expected_W = (dims[l], dims[l - 1])
        expected_b = (dims[l], 1)
        for name, value, expected, out in (
            (f"W{l}", W[l - 1], expected_W, W_out),
            (f"b{l}", b[l - 1], expected_b, b_out),
        ):
            array = as_numeric(name, value, spec.np_dtype)
            if array.shape != expected:
                symbol = f"(n_{l}, n_{l - 1})" if name[0] == "W" else f"(n_{l}, 1)"
                raise ModelError(
                    f"{name} (layer {l}) must have shape {symbol} = {expected}; "
                    f"received {array.shape}."
                )
            out.append(_as_finite(name, array, spec.np_dtype, copy=True))
    return W_out, b_out
