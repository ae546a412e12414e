"""Matrices on the wire: both forms decode to the same numbers, float32 is exact, answers
round-trip, and the fast nested-list path refuses exactly what the exact path refuses."""

from __future__ import annotations

import contextvars
import tracemalloc
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from model import ModelError, build_spec, check_X
from service.core.http import ORJSONResponse, parse_json
from service.core.wire import _LITERAL_FREE, _holds, decode_matrix, encode_matrix, note_body
from service.prediction.schemas import PredictRequest
from service.training.schemas import TrainRequest

from .helpers import b64


def _fresh(function: Any, *args: Any) -> Any:
    """Run in a copy of an empty context, as each request does."""
    return contextvars.Context().run(function, *args)


def _validate(body: bytes) -> PredictRequest:
    return PredictRequest.model_validate(parse_json(body))


def test_base64_and_nested_lists_decode_to_identical_arrays() -> None:
    X = np.random.RandomState(0).randn(7, 13) * 1e3
    from_lists = np.asarray(_fresh(_validate, orjson.dumps({"X": X.tolist()})).X)
    from_base64 = _fresh(_validate, orjson.dumps({"X": b64(X)})).X
    assert from_lists.dtype == from_base64.dtype == np.float64
    np.testing.assert_array_equal(from_lists, X)
    np.testing.assert_array_equal(from_base64, X)


def test_float32_decoding_is_exact() -> None:
    X32 = (np.random.RandomState(1).randn(5, 6) * 100).astype(np.float32)
    decoded = _fresh(_validate, orjson.dumps({"X": b64(X32, "float32")})).X
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, X32)
    # Nested lists of float32 values (orjson writes each one's shortest repr) come back as
    # float64 numbers that round to exactly the same float32s.
    text = orjson.dumps({"X": X32}, option=orjson.OPT_SERIALIZE_NUMPY)
    listed = _fresh(_validate, text).X
    np.testing.assert_array_equal(np.asarray(listed, np.float32), X32)


def test_integers_and_mixed_numbers_decode_as_float64() -> None:
    body = orjson.dumps({"X": [[1, 2.5, -3], [2**53, 0, 1e-300]]})
    X = np.asarray(_fresh(_validate, body).X)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[1, 2.5, -3], [2.0**53, 0, 1e-300]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("wire_dtype", [None, np.float32, np.float64])
def test_encoded_answers_round_trip(dtype: type, wire_dtype: type | None) -> None:
    A: np.ndarray = (np.random.RandomState(2).randn(4, 9) * 10).astype(dtype)
    target = np.dtype(wire_dtype or dtype)
    encoded = encode_matrix(A, "base64", None if wire_dtype is None else np.dtype(wire_dtype))
    assert encoded["shape"] == [4, 9]
    assert encoded["dtype"] == target.name
    np.testing.assert_array_equal(decode_matrix(encoded), A.astype(target))
    # Through the response renderer and back, nested lists too.
    for encoding in ("json", "base64"):
        rendered = ORJSONResponse({}).render({"A": encode_matrix(A, encoding)})
        back = decode_matrix(orjson.loads(rendered)["A"])
        np.testing.assert_array_equal(np.asarray(back, dtype), A)


def test_base64_encoding_of_views_and_big_endian_arrays() -> None:
    A = np.arange(12, dtype=">f8").reshape(3, 4)
    for view in (A, A.T, A[:, ::2]):
        np.testing.assert_array_equal(decode_matrix(encode_matrix(view, "base64")), view)
    ints = np.array([[0, 1], [1, 0]], dtype=np.int64)
    encoded = encode_matrix(ints, "base64", np.dtype(np.float32))
    assert encoded["dtype"] == "float32"
    np.testing.assert_array_equal(decode_matrix(encoded), ints)


BAD_ENTRIES = [
    ([[1.0, True]], "true/false"),
    ([[False, 1.0]], "true/false"),
    ([[1.0, "2"]], "a string"),
    ([[1.0, None]], "null"),
    ([[1.0, [2.0]]], "an array"),
    ([[1.0, {"a": 1}]], "an object"),
    ([[1.0, 2.0], [3.0]], "same length"),
    ([[1.0], 2.0], "array of rows"),
    ([[1.0, 10**400]], "too large"),
]


def _refusal(body: bytes) -> str:
    with pytest.raises(ValidationError) as error:
        _validate(body)
    errors = [e for e in error.value.errors() if e["loc"][0] == "X"]
    return str(errors[0]["msg"])


@pytest.mark.parametrize(("rows", "fragment"), BAD_ENTRIES)
def test_fast_and_exact_nested_list_paths_refuse_alike(rows: Any, fragment: str) -> None:
    # 10**400 is not JSON orjson accepts; the matrix decoder sees such an int only from
    # another parser, so that case builds the parsed value directly.
    if fragment == "too large":
        parsed = {"X": rows}
        fast = contextvars.Context()
        fast.run(note_body, b'{"X": 1}', parsed)
        with pytest.raises(ValidationError, match=fragment):
            fast.run(PredictRequest.model_validate, parsed)
        return
    fast = _fresh(_refusal, orjson.dumps({"X": rows}))
    # A JSON true anywhere in the body sends every matrix through the exact path.
    exact = _fresh(_refusal, orjson.dumps({"X": rows, "flag": True}))
    assert fragment in fast
    assert fast == exact


def test_the_fast_path_only_trusts_arrays_of_the_noted_body() -> None:
    def run() -> Any:
        note_body(b'{"X": [[1.0]]}', {"X": [[1.0]]})  # literal-free, but another object
        return PredictRequest.model_validate({"X": [[1.0, True]]})

    with pytest.raises(ValidationError, match="true/false"):
        _fresh(run)


def test_noting_a_body_with_literals_clears_the_fast_path() -> None:
    def run() -> object:
        parsed = {"X": [[1.0, True]]}
        note_body(b'{"X": [[1.0]]}', parsed)
        assert _LITERAL_FREE.get() is not None
        note_body(b'{"X": [[1.0, true]]}', parsed)
        return _LITERAL_FREE.get()

    assert _fresh(run) is None


def test_note_body_walks_lists_of_objects_and_survives_deep_nesting() -> None:
    def run() -> TrainRequest:
        body = orjson.dumps({"X": [[1.0, 2.0]], "Y": [[0.0, 1.0]], "epochs": 3})
        return TrainRequest.model_validate(parse_json(body))

    request = _fresh(run)
    np.testing.assert_array_equal(request.X, [[1.0, 2.0]])
    deep: Any = [[1.0]]
    for _ in range(5000):
        deep = {"a": deep}
    _fresh(note_body, b"{}", deep)  # iterative: no RecursionError


@given(st.binary(max_size=300) | st.text("tfrueals ,1.", max_size=300).map(str.encode))
def test_the_literal_scan_finds_what_a_substring_search_finds(body: bytes) -> None:
    for word in (b"true", b"false"):
        assert _holds(body, word) == (word in body)


@pytest.mark.parametrize("prefix", [b"", b"t" * 63, b"t" * 64, b"t" * 200, b"f" * 200])
def test_the_literal_scan_after_many_candidates(prefix: bytes) -> None:
    for word in (b"true", b"false"):
        assert _holds(prefix + b"[1.5]" + word, word)
        assert not _holds(prefix + b"[1.5]" + word[:-1], word)


def test_non_finite_sums_of_finite_entries_are_not_refused() -> None:
    big = float(np.finfo(np.float64).max)
    X = _fresh(_validate, orjson.dumps({"X": [[big, big], [-big, 1.0]]})).X
    np.testing.assert_array_equal(X, [[big, big], [-big, 1.0]])
    data = {"shape": [1, 2], "dtype": "float32", "base64": b64([[3e38, 3e38]], "float32")["base64"]}
    np.testing.assert_array_equal(decode_matrix(data), np.array([[3e38, 3e38]], np.float32))


def test_nested_lists_reach_a_float32_network_without_a_float64_copy() -> None:
    spec = build_spec([300, 1], dtype="float32")
    X = np.random.RandomState(3).randn(300, 400)
    request = _fresh(_validate, orjson.dumps({"X": X.tolist()}))
    assert request.X.shape == (300, 400)  # known before any conversion (batch limits)
    tracemalloc.start()
    try:
        X32 = check_X(spec, request.X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert X32.dtype == np.float32
    np.testing.assert_array_equal(X32, X.astype(np.float32))
    # One float32 batch (480 kB) and small change; a float64 copy would add 960 kB.
    assert X32.nbytes <= peak < 1.25 * X32.nbytes


def test_nested_lists_beyond_float32_are_refused_by_a_float32_network() -> None:
    request = _fresh(_validate, orjson.dumps({"X": [[1.0, 1e39]]}))
    with pytest.raises(ModelError, match=r"float32 holds magnitudes up to 3\.403e\+38"):
        check_X(build_spec([1, 1], dtype="float32"), request.X)
    np.testing.assert_array_equal(check_X(build_spec([1, 1]), request.X), [[1.0, 1e39]])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("AACAPw==AACAPw==", "Excess data after padding"),
        ("AACAPw=", "Incorrect padding"),
        ("=AACAPw=", "Leading padding not allowed"),
        ("AACA Pw==", "Only base64 data is allowed"),
        ("AACAPw==\n", "Excess data after padding"),
        ("AACAPwñ=", "only ASCII characters"),
    ],
)
def test_text_that_is_not_strict_base64_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="base64 is not valid base64 text") as refused:
        decode_matrix({"shape": [1, 1], "dtype": "float32", "base64": text})
    assert reason in str(refused.value)
    good = decode_matrix({"shape": [1, 1], "dtype": "float32", "base64": "AACAPw=="})
    np.testing.assert_array_equal(good, [[1.0]])


def test_only_bodies_with_nested_list_rows_are_scanned_for_literals() -> None:
    def noted(body: bytes) -> bool:
        note_body(body, orjson.loads(body))
        return _LITERAL_FREE.get() is not None

    base64_only = orjson.dumps({"X": b64([[1.0, 2.0]]), "epochs": 3})
    assert not _fresh(noted, base64_only)  # nothing to speed up: no scan of its text
    assert _fresh(noted, orjson.dumps({"X": [[1.0, 2.0]], "Y": b64([[1.0, 0.0]])}))
    assert not _fresh(noted, orjson.dumps({"X": [[1.0, 2.0]], "flag": False}))
