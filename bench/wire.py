"""Matrices on the wire, in-process: parsing a request body into numpy (the service's path
beside pydantic's list[list[float]]) and serializing an answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
from pydantic import TypeAdapter

from bench.timing import interleaved
from service.core.http import ORJSONResponse, parse_json
from service.core.wire import _LITERAL_FREE, encode_matrix
from service.prediction.schemas import PredictRequest

SHAPE = (784, 256)


@dataclass(frozen=True)
class WireResult:
    parse_ms: dict[str, float]
    parse_ratios: dict[str, float]  # each contender over the service's nested-list path
    encode_ms: dict[str, float]


def _bodies() -> tuple[bytes, bytes, bytes]:
    X = np.random.RandomState(0).rand(*SHAPE)  # float64, written with all 17 digits
    nested = orjson.dumps({"X": X}, option=orjson.OPT_SERIALIZE_NUMPY)
    b64_32 = orjson.dumps({"X": encode_matrix(X, "base64", np.dtype(np.float32))})
    b64_64 = orjson.dumps({"X": encode_matrix(X, "base64")})
    return nested, b64_32, b64_64


def measure_wire(rounds: int) -> WireResult:
    nested, b64_32, b64_64 = _bodies()
    rows = TypeAdapter(list[list[float]])

    def fastapi_default() -> object:
        # A FastAPI route declaring X: list[list[float]]: json.loads, pydantic, then numpy.
        return np.array(rows.validate_python(json.loads(nested)["X"]))

    X_text = orjson.dumps(orjson.loads(nested)["X"])  # the bare matrix

    def pydantic_json() -> object:
        # pydantic-core parsing the JSON text itself (its fastest mode), then numpy.
        return np.array(rows.validate_json(X_text))

    def service(body: bytes, dtype: type = np.float64) -> Callable[[], object]:
        # Nested lists are converted when a network asks for its dtype: included here.
        return lambda: np.asarray(PredictRequest.model_validate(parse_json(body)).X, dtype)

    def service_exact() -> object:
        # The same, but checking the type of every entry (what a body holding a JSON true
        # or false anywhere gets, and what the service did for every body before).
        parsed = orjson.loads(nested)
        token = _LITERAL_FREE.set(None)
        try:
            return np.asarray(PredictRequest.model_validate(parsed).X)
        finally:
            _LITERAL_FREE.reset(token)

    contenders: dict[str, Callable[[], object]] = {
        "service nested lists": service(nested),
        "service nested lists into float32": service(nested, np.float32),
        "service nested lists, per-entry type check": service_exact,
        "orjson.loads alone": lambda: orjson.loads(nested),
        "FastAPI default (json.loads + pydantic list[list[float]])": fastapi_default,
        "pydantic list[list[float]] from JSON text": pydantic_json,
        "service base64 float32": service(b64_32),
        "service base64 float64": service(b64_64),
    }
    timings = interleaved(contenders, rounds)
    parse_ms = {name: timings.median(name) * 1e3 for name in contenders}
    ratios = {name: timings.ratio(name, "service nested lists") for name in contenders}

    A = np.random.RandomState(1).rand(*SHAPE)
    A32 = A.astype(np.float32)
    response = ORJSONResponse({})
    encoders: dict[str, Callable[[], object]] = {
        "orjson nested lists float64": lambda: response.render({"A": encode_matrix(A, "json")}),
        "orjson nested lists float32": lambda: response.render({"A": encode_matrix(A32, "json")}),
        "base64 float64": lambda: response.render({"A": encode_matrix(A, "base64")}),
        "base64 float32": lambda: response.render({"A": encode_matrix(A32, "base64")}),
        "json.dumps(A.tolist())": lambda: json.dumps({"A": A.tolist()}).encode(),
    }
    encoded = interleaved(encoders, rounds)
    encode_ms = {name: encoded.median(name) * 1e3 for name in encoders}
    return WireResult(parse_ms, ratios, encode_ms)
