"""Matrices on the wire, both forms of API.md, decoded without per-element Python.

A matrix is either a JSON array of rows (row-major, so ``X`` is ``n_x`` rows of ``m``
numbers) or ``{"shape": [rows, cols], "dtype": "float32" | "float64", "base64": "..."}``
holding the C-order little-endian bytes. Both decode to a 2-D, finite numpy array; shape
checks against a network happen in ``model`` (which knows ``layer_dims``).
"""

from __future__ import annotations

import binascii
from base64 import b64encode
from itertools import chain, repeat
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import PlainValidator, WithJsonSchema

Encoding = Literal["json", "base64"]
WIRE_DTYPES: dict[str, np.dtype[np.floating[Any]]] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
_NUMBERS = frozenset({int, float})
_JSON_NAMES = {bool: "true/false", str: "a string", list: "an array", dict: "an object"}

MATRIX_JSON_SCHEMA: dict[str, Any] = {
    "title": "Matrix",
    "description": (
        "A matrix: an array of rows of finite numbers (row-major; X is n_x rows of m numbers), "
        'or {"shape": [rows, cols], "dtype": "float32"|"float64", "base64": "<C-order '
        'little-endian bytes>"}.'
    ),
    "anyOf": [
        {
            "type": "array",
            "minItems": 1,
            "items": {"type": "array", "minItems": 1, "items": {"type": "number"}},
        },
        {
            "type": "object",
            "required": ["shape", "dtype", "base64"],
            "additionalProperties": False,
            "properties": {
                "shape": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 2,
                    "maxItems": 2,
                },
                "dtype": {"type": "string", "enum": ["float32", "float64"]},
                "base64": {"type": "string"},
            },
        },
    ],
}


def decode_matrix(value: Any) -> NDArray[np.floating[Any]]:
    """Decode either wire form into a finite 2-D float array (float64 for nested lists,
    the declared dtype for base64)."""
    matrix: NDArray[np.floating[Any]]
    if isinstance(value, list):
        matrix = _from_rows(value)
    elif isinstance(value, dict):
        matrix = _from_base64(value)
    else:
        raise ValueError(
            "expected a matrix: an array of rows of numbers, or an object "
            f"{{shape, dtype, base64}}; received {_json_name(value)}"
        )
    if not np.isfinite(matrix).all():
        raise ValueError("every entry must be a finite number; received NaN or Infinity")
    return matrix


def _json_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), "null" if value is None else type(value).__name__)


def _from_rows(rows: list[Any]) -> NDArray[np.float64]:
    if not rows:
        raise ValueError("a matrix needs at least one row; received an empty array")
    row_kinds = set(map(type, rows))
    if row_kinds != {list}:
        raise ValueError(
            "expected an array of rows (a 2-D array such as [[1, 2], [3, 4]]); received an "
            "array holding "
            + " and ".join(sorted(map(_kind_name, row_kinds)))
            + ". A single row is written [[...]]"
        )
    lengths = set(map(len, rows))
    if len(lengths) != 1:
        raise ValueError(
            f"all rows must have the same length; received rows of lengths {sorted(lengths)}"
        )
    if 0 in lengths:
        raise ValueError("a matrix needs at least one column; received empty rows")
    # The types of all entries, collected in C (map/chain), not in a Python loop: JSON's
    # true/false and strings are not numbers even though numpy would convert them.
    kinds = set(chain.from_iterable(map(map, repeat(type), rows)))
    if not kinds <= _NUMBERS:
        bad = " and ".join(sorted(_kind_name(kind) for kind in kinds - _NUMBERS))
        raise ValueError(f"every entry must be a number; received {bad}")
    try:
        return np.array(rows, dtype=np.float64)
    except OverflowError:
        raise ValueError("an entry is too large for a 64-bit float") from None


def _kind_name(kind: type) -> str:
    return _JSON_NAMES.get(kind, "null" if kind is type(None) else "numbers")


def _from_base64(value: dict[str, Any]) -> NDArray[np.floating[Any]]:
    expected = {"shape", "dtype", "base64"}
    if set(value) != expected:
        raise ValueError(
            f"a base64 matrix has exactly the keys {sorted(expected)}; received {sorted(value)}"
        )
    shape, dtype_name, text = value["shape"], value["dtype"], value["base64"]
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(n) is int and n >= 1 for n in shape)
    ):
        raise ValueError(f"shape must be [rows, cols] with both at least 1; received {shape!r}")
    dtype = WIRE_DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise ValueError(f"dtype must be 'float32' or 'float64'; received {dtype_name!r}")
    if not isinstance(text, str):
        raise ValueError(f"base64 must be a string; received {_json_name(text)}")
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"base64 is not valid base64 text ({exc})") from None
    rows, cols = shape
    expected_bytes = rows * cols * dtype.itemsize
    if len(raw) != expected_bytes:
        raise ValueError(
            f"shape {shape} of {dtype_name} needs {expected_bytes} bytes; "
            f"the base64 text holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(rows, cols)


def encode_matrix(
    matrix: NDArray[Any], encoding: Encoding, dtype: np.dtype[Any] | None = None
) -> Any:
    """Shape one matrix for an answer; orjson serializes the array itself (no Python loop).
    base64 answers are in ``dtype`` (the network's), whatever the array's own: the wire form
    only knows float32 and float64."""
    matrix = np.ascontiguousarray(matrix)
    if encoding == "base64":
        little = matrix.astype((dtype or matrix.dtype).newbyteorder("<"), copy=False)
        return {
            "shape": list(matrix.shape),
            "dtype": little.dtype.name,
            "base64": b64encode(little.tobytes()).decode("ascii"),
        }
    return matrix


Matrix = Annotated[
    NDArray[np.floating[Any]],
    PlainValidator(decode_matrix),
    WithJsonSchema(MATRIX_JSON_SCHEMA),
]
"""A request field holding a matrix in either wire form."""

MatrixOut = Annotated[Any, WithJsonSchema(MATRIX_JSON_SCHEMA)]
"""A response field holding a matrix (nested lists, or base64 with ``?encoding=base64``)."""
