"""Matrices on the wire, both forms of API.md, decoded without per-element Python.

A matrix is either a JSON array of rows (row-major, so ``X`` is ``n_x`` rows of ``m``
numbers) or ``{"shape": [rows, cols], "dtype": "float32" | "float64", "base64": "..."}``
holding the C-order little-endian bytes. base64 decodes to a 2-D, finite numpy array of its
declared dtype; nested lists are checked (finite numbers, rectangular) and converted later,
straight into the network's dtype (:class:`JsonRows`). Shape checks against a network
happen in ``model`` (which knows ``layer_dims``).
"""

from __future__ import annotations

import binascii
import math
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Annotated, Any, Literal

import numpy as np
import pybase64
from numpy.typing import NDArray
from pydantic import PlainValidator, WithJsonSchema

from model.checks import all_finite

Encoding = Literal["json", "base64"]
WIRE_DTYPES: dict[str, np.dtype[np.floating[Any]]] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
_NUMBERS = frozenset({int, float})
_JSON_NAMES = {bool: "true/false", str: "a string", list: "an array", dict: "an object"}
NOT_FINITE = "every entry must be a finite number; received NaN or Infinity"

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


# The arrays (by id) of the request body being validated, when that body holds no JSON
# true/false at all: set by :func:`note_body`, which service.plumbing calls right after
# parsing. The parsed body is kept with the ids, so none of them can be reused meanwhile.
_LITERAL_FREE: ContextVar[tuple[Any, frozenset[int]] | None] = ContextVar(
    "literal_free_body", default=None
)


def note_body(body: bytes, parsed: Any) -> None:
    """Record whether the JSON text ``body`` (parsed into ``parsed``) holds any true/false.

    A JSON boolean can only be written as the bytes ``true`` or ``false``, so when
    neither occurs anywhere in the body (see :func:`_holds`), no array in it holds a
    boolean, and nested-list matrices from it are decoded without looking at the type
    of every entry. Anything else (a body with a ``true`` anywhere, or a value that
    did not come from such a body) takes the exact entry-by-entry check. A body without
    nested-list matrices is not scanned: it has no rows to speed up.
    """
    ids: set[int] = set()
    rows = False
    stack = [parsed]
    while stack:  # dicts, and lists of dicts ("layers"), never the rows of a matrix
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            ids.add(id(node))
            if node and isinstance(node[0], dict):
                stack.extend(node)
            rows = rows or bool(node and isinstance(node[0], list))
    # Without a nested-list matrix there is nothing to speed up; and base64 text is full of
    # t and f, which makes the scan of a base64 body cost a millisecond per MB.
    if not rows or _holds(body, b"true") or _holds(body, b"false"):
        _LITERAL_FREE.set(None)
        return
    _LITERAL_FREE.set((parsed, frozenset(ids)))


# Occurrences of a word's first byte that _holds checks one by one before it hands the rest of
# the body to the plain substring search.
_CANDIDATES = 64


def _holds(body: bytes, word: bytes) -> bool:
    """``word in body``, at memchr speed for the bodies that carry matrices.

    CPython searches for a multi-byte word about one byte at a time (2 ms in a 4 MB body),
    but for a single byte it calls memchr (0.04 ms). No JSON number holds a ``t`` or an
    ``f``, so in a body of numbers the first bytes of ``true`` and ``false`` occur only in
    its few keys: each occurrence is checked here, and a body with many goes on with the
    plain search.
    """
    first = word[:1]
    at = body.find(first)
    for _ in range(_CANDIDATES):
        if at == -1:
            return False
        if body.startswith(word, at):
            return True
        at = body.find(first, at + 1)
    return body.find(word, at) != -1


def _literal_free(rows: list[Any]) -> bool:
    noted = _LITERAL_FREE.get()
    return noted is not None and id(rows) in noted[1]


@dataclass(frozen=True, eq=False)
class JsonRows:
    """A nested-list matrix checked to hold only finite numbers, not yet converted.

    The validator cannot know the network's dtype; the model's checks ask for it
    (``np.asarray(rows, dtype)`` through ``__array__``), so a float32 network gets its
    float32 batch straight from the parsed JSON, never through a float64 copy.
    """

    rows: list[list[int | float]]
    shape: tuple[int, int]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        try:
            # Beyond float32's range becomes infinite, which the model's checks refuse.
            with np.errstate(over="ignore"):
                return np.array(self.rows, dtype=dtype or np.float64)
        except OverflowError:  # an integer beyond any float, possible from other parsers
            raise ValueError("an entry is too large for a 64-bit float") from None


def decode_matrix(value: Any) -> NDArray[np.floating[Any]] | JsonRows:
    """Decode either wire form: base64 into a finite 2-D array of its declared dtype,
    nested lists into checked :class:`JsonRows`."""
    if isinstance(value, list):
        return _from_rows(value)
    if not isinstance(value, dict):
        raise ValueError(
            "expected a matrix: an array of rows of numbers, or an object "
            f"{{shape, dtype, base64}}; received {_json_name(value)}"
        )
    matrix = _from_base64(value)
    if not all_finite(matrix):
        raise ValueError(NOT_FINITE)
    return matrix


def _json_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), "null" if value is None else type(value).__name__)


def _from_rows(rows: list[Any]) -> NDArray[np.float64] | JsonRows:
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
    if not _literal_free(rows):
        _check_kinds(rows)
    # Summing in C is the type check of the usual case (a string, null or nested array
    # raises TypeError; JSON true/false were ruled out above) and, by the sum being
    # finite, the finiteness check too.
    try:
        total = sum(map(sum, rows))
        finite = math.isfinite(total)
    except (TypeError, OverflowError):
        _check_kinds(rows)  # the message for a non-number; numbers mean a huge integer
        finite = False
    if finite:
        return JsonRows(rows, (len(rows), lengths.pop()))
    # NaN, Infinity, or finite entries whose sum overflows: decide on the numbers.
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise ValueError("an entry is too large for a 64-bit float") from None
    if not all_finite(matrix):
        raise ValueError(NOT_FINITE)
    return matrix


def _check_kinds(rows: list[list[Any]]) -> None:
    """Refuse entries that are not numbers, naming their JSON kinds.

    The types of all entries are collected in C (map/chain), not in a Python loop: JSON's
    true/false and strings are not numbers even though numpy would convert them.
    """
    kinds = set(chain.from_iterable(map(map, repeat(type), rows)))
    if not kinds <= _NUMBERS:
        bad = " and ".join(sorted(_kind_name(kind) for kind in kinds - _NUMBERS))
        raise ValueError(f"every entry must be a number; received {bad}")


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
        # pybase64 decodes with SIMD, some 50 times faster than binascii: decoding was most of
        # a one-step /train call's overhead. It says only "Non-base64 digit found", so text
        # it refuses goes to binascii's strict mode, which decides, and says why.
        raw = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
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
        little = np.ascontiguousarray(
            matrix.astype((dtype or matrix.dtype).newbyteorder("<"), copy=False)
        )
        # The encoder reads the array's memory in place (no tobytes() copy).
        text = pybase64.b64encode_as_string(little.data.cast("B"))
        return {"shape": list(matrix.shape), "dtype": little.dtype.name, "base64": text}
    return matrix


Matrix = Annotated[
    NDArray[np.floating[Any]] | JsonRows,
    PlainValidator(decode_matrix),
    WithJsonSchema(MATRIX_JSON_SCHEMA),
]
"""A request field holding a matrix in either wire form."""

MatrixOut = Annotated[Any, WithJsonSchema(MATRIX_JSON_SCHEMA)]
"""A response field holding a matrix (nested lists, or base64 with ``?encoding=base64``)."""
