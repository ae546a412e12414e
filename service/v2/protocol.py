"""The Open Inference Protocol (KServe / Triton V2 REST): requests parsed from raw bytes,
answers encoded to bytes, with the binary tensor data extension both ways.

In this protocol a batch is **one row per example**: the input ``X`` is ``[m, n_x]`` and the
outputs are ``A`` ``[m, n_L]`` and ``predictions``; the network itself works on columns, so
:func:`infer` transposes on the way in and out (views, no copies of X). Tensors travel as
flat row-major JSON arrays (nested arrays shaped like the tensor are accepted too) or as raw
little-endian bytes after the JSON header (``Inference-Header-Content-Length`` says where
the header ends; each binary tensor's ``parameters.binary_data_size`` says how many bytes are
its own, in the order of the tensors).

Datatypes:

- ``X``: FP32 or FP64 (converted to the network's dtype);
- ``A``: the network's dtype (FP32 for float32 networks, FP64 for float64);
- ``predictions``: INT64 labels for classifiers (0/1 per unit for a sigmoid output,
  ``[m, 1]`` class indices for softmax), otherwise ``A`` itself in the network's dtype.

An output's ``parameters.datatype`` asks for another one: FP32 or FP64 for any output, INT64
for a classifier's ``predictions``.

Fields the protocol allows and this service does not use (a request's ``model_name`` and
``model_version``, which KServe's SDK sends, unknown fields and unknown parameters) are
ignored, as KServe's own server ignores them; see :class:`_Strict`.

Everything here is plain Python and numpy; every bad request raises :class:`V2Error`,
which the routes answer as ``{"error": message}`` with its status.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Annotated, Any

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model import ModelError, Network, NetworkSpec, predict

PLATFORM = "backprop-numpy"
EXTENSIONS = ("binary_tensor_data",)
INPUT_NAME = "X"
OUTPUT_NAMES = ("A", "predictions")
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"

# The protocol's names for numpy dtypes; the wire is little-endian.
DATATYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT64": np.dtype("<i8"),
}
INPUT_DATATYPES = ("FP32", "FP64")
_NUMBERS = frozenset({int, float})
_JSON_NAMES = {bool: "true/false", str: "a string", list: "an array", dict: "an object"}
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
MAX_TENSORS = 16  # inputs, outputs or dimensions one request may list (it needs 1, 2 and 2)


class V2Error(Exception):
    """A request the protocol refuses: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def model_missing(name: str) -> V2Error:
    return V2Error(f"There is no model (network) with id {name!r}.", 404)


# ---- the JSON header, validated by pydantic ----------------------------------------------


class _Strict(BaseModel):
    # Fields the protocol allows and this service does not use are ignored, not refused. The
    # Open Inference Protocol's REST schema (KServe's rest_predict_v2.yaml) lists id,
    # parameters, inputs and outputs in a request, name, shape, datatype, parameters and data
    # in a tensor, and name and parameters in a requested output, none with
    # "additionalProperties: false"; KServe's own server ignores anything else, and its SDK
    # (InferenceRESTClient) always sends a top-level "model_name" besides the "id". So a
    # request's model_name and model_version (the URL names the model and its version),
    # any other unknown field at any level, and parameters with keys this service does not
    # read (Triton's sequence_id, priority and timeout, KServe's content_type, ...) pass
    # unread. What is read is still checked: the known fields' types (strict: no "2" for 2),
    # shapes, datatypes, names and the known parameters' values; and parameters that ask
    # for something this service does not do (the classification extension) are refused
    # rather than silently answered otherwise.
    model_config = ConfigDict(strict=True, extra="ignore")


class InputTensor(_Strict):
    name: str = Field(description='The input\'s name: "X".')
    shape: list[Annotated[int, Field(ge=0)]] = Field(
        max_length=MAX_TENSORS, description="[m, n_x]: one row per example"
    )
    datatype: str = Field(description="FP32 or FP64")
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: the byte count of this tensor's binary data"
    )
    data: Any = Field(
        None,
        description="The values, row-major: flat, or nested like the shape. Omitted when the "
        "tensor travels as binary data.",
        json_schema_extra={"type": "array", "items": {}},
    )


class RequestedOutput(_Strict):
    name: str = Field(description='"A" or "predictions"')
    parameters: dict[str, Any] | None = Field(
        None,
        description="binary_data: true for raw bytes after the JSON header; datatype: "
        "FP32, FP64 (any output) or INT64 (a classifier's predictions)",
    )


class InferenceRequest(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "xor-1",
                    "inputs": [
                        {
                            "name": "X",
                            "shape": [4, 2],
                            "datatype": "FP64",
                            "data": [[0, 0], [0, 1], [1, 0], [1, 1]],
                        }
                    ],
                    "outputs": [{"name": "A"}, {"name": "predictions"}],
                }
            ]
        }
    )

    id: str | None = Field(None, description="Echoed in the answer.")
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_output: true to have every output as binary data"
    )
    # At most MAX_TENSORS, so that a body of many tensors is refused before any is validated.
    inputs: list[InputTensor] = Field(
        min_length=1, max_length=MAX_TENSORS, description="Exactly one tensor, X."
    )
    outputs: list[RequestedOutput] | None = Field(
        None,
        max_length=MAX_TENSORS,
        description="The outputs to answer, in this order; default: all.",
    )


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its definitions written in place (no ``$ref``), for an
    OpenAPI request body that FastAPI does not know about (the route parses it itself)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


# What each field of the JSON header holds, for the error messages; "*" is any index.
_EXPECTED: dict[tuple[str, ...], str] = {
    ("id",): "a string (it is echoed in the answer)",
    ("parameters",): "an object of parameters",
    ("inputs",): "an array of input tensors, [{name, shape, datatype, data}]",
    ("inputs", "*"): "an input tensor: an object {name, shape, datatype, data}",
    ("inputs", "*", "name"): 'a string, the input\'s name ("X")',
    ("inputs", "*", "shape"): "an array of dimensions, [m, n_x]",
    ("inputs", "*", "shape", "*"): "a dimension, an integer >= 0",
    ("inputs", "*", "datatype"): 'a string, "FP32" or "FP64"',
    ("inputs", "*", "parameters"): "an object of parameters",
    ("outputs",): 'an array of requested outputs, [{"name": "A"}, {"name": "predictions"}]',
    ("outputs", "*"): "a requested output: an object {name, parameters?}",
    ("outputs", "*", "name"): 'a string, "A" or "predictions"',
    ("outputs", "*", "parameters"): "an object of parameters",
}
_MAX_REPORTED = 3


def _field(loc: Sequence[int | str]) -> str:
    """``("inputs", 0, "shape", 1)`` as ``inputs[0].shape[1]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "the request"


def _received(value: Any) -> str:
    """A value as the request wrote it: a short JSON scalar, or the kind of a container."""
    if isinstance(value, dict | list):
        return _JSON_NAMES[type(value)]
    text = orjson.dumps(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_NAMES.get(type(value), "a number")


def _sentence(err: Mapping[str, Any]) -> str:
    """One of pydantic's errors as a sentence: the field, what it must be, what it was."""
    loc = tuple(err["loc"])
    where = _field(loc)
    expected = _EXPECTED.get(tuple("*" if isinstance(part, int) else part for part in loc))
    kind = err["type"]
    if expected is None:  # pragma: no cover - every field of the models is in _EXPECTED
        return f"{where}: {err['msg']}; received {_received(err.get('input'))}."
    if kind == "missing":
        return f"{where} is required: {expected}."
    if kind == "too_short":
        return f"{where} must be {expected} with at least one item; received an empty array."
    if kind == "too_long":
        context = err.get("ctx", {})
        return (
            f"{where} must be {expected} with at most {context.get('max_length')} items; "
            f"received {context.get('actual_length')}."
        )
    return f"{where} must be {expected}; received {_received(err.get('input'))}."


def _describe_validation(error: ValidationError) -> str:
    errors = error.errors()
    sentences = [_sentence(err) for err in errors[:_MAX_REPORTED]]
    if len(errors) > _MAX_REPORTED:
        more = len(errors) - _MAX_REPORTED
        sentences.append(f"({more} more {'problem' if more == 1 else 'problems'} not listed.)")
    return " ".join(sentences)


# ---- parsing a request ---------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedRequest:
    header: InferenceRequest
    binary: memoryview
    """The bytes after the JSON header (empty without ``Inference-Header-Content-Length``)."""


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo a ``Content-Encoding`` (gzip or deflate, as tritonclient sends them), refusing
    more than ``limit`` bytes once expanded."""
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in _CODINGS:
        raise V2Error(
            f"Content-Encoding {coding!r} is not supported; send gzip, deflate or identity.", 415
        )
    inflater = zlib.decompressobj(_CODINGS[coding])
    try:
        expanded = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise V2Error(f"The body is not valid {coding} data ({exc}).") from None
    if len(expanded) > limit:
        raise V2Error(
            f"The request body is larger than the limit of {limit} bytes once decompressed.", 413
        )
    if not inflater.eof:
        raise V2Error(f"The body is not valid {coding} data (it ends too early).")
    return expanded


def parse_request(body: bytes, header_length: str | None) -> ParsedRequest:
    """Split the body at ``header_length`` (the ``Inference-Header-Content-Length`` header)
    and validate the JSON header."""
    if header_length is None:
        json_part, binary = body, memoryview(b"")
    else:
        text = header_length.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 18):
            raise V2Error(
                f"{HEADER_LENGTH} must be a byte count (a non-negative integer); "
                f"received {header_length!r}."
            )
        length = int(text)
        if length > len(body):
            raise V2Error(
                f"{HEADER_LENGTH} is {length}, but the body holds only {len(body)} bytes."
            )
        json_part, binary = body[:length], memoryview(body)[length:]
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        where = "" if header_length is None else f" (its first {len(json_part)} bytes)"
        raise V2Error(
            f"The request's JSON header{where} is not valid JSON: {exc}. NaN and Infinity "
            "are not JSON; binary tensors go after the header, with "
            f"{HEADER_LENGTH} set to the header's length."
        ) from None
    if not isinstance(document, dict):
        raise V2Error(
            "The request must be a JSON object {inputs, outputs?, id?, parameters?}; "
            f"received {_kind(document)}."
        )
    try:
        header = InferenceRequest.model_validate(document)
    except ValidationError as exc:
        raise V2Error(_describe_validation(exc)) from None
    return ParsedRequest(header, binary)


def _parameter(parameters: Mapping[str, Any] | None, key: str, kind: type, where: str) -> Any:
    value = (parameters or {}).get(key)
    if value is None:
        return None
    if type(value) is not kind:
        raise V2Error(
            f"{where} parameter {key!r} must be {'true/false' if kind is bool else kind.__name__}"
            f"; received {value!r}."
        )
    return value


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _check_shape(shape: Sequence[int], n_x: int, admit: Callable[[int], None]) -> int:
    expected = f"[m, {n_x}] (one row per example)"
    if len(shape) != 2 or shape[1] != n_x:
        hint = ""
        if len(shape) == 2 and shape[0] == n_x:
            hint = " It looks like one column per example: transpose X."
        raise V2Error(
            f"input {INPUT_NAME} must have shape {expected}; received {_shape(shape)}.{hint}"
        )
    m = shape[0]
    if m < 1:
        raise V2Error(
            f"input {INPUT_NAME} must hold at least one example (m >= 1); "
            f"received shape {_shape(shape)}."
        )
    admit(m)  # the service's bounds on a batch, before any of it is allocated
    return m


def _flat_values(data: Any, shape: Sequence[int]) -> list[Any]:
    """The numbers of ``data``, row-major: a flat array, or arrays nested like ``shape``.
    Types are collected with map/chain (in C), never a Python loop per number."""
    if not isinstance(data, list):
        raise V2Error(
            f"input {INPUT_NAME}: data must be an array of numbers (flat, row-major, or nested "
            f"like the shape); received {type(data).__name__}."
        )
    values: list[Any] = data
    nested = [len(values)]
    while values and type(values[0]) is list:
        kinds = set(map(type, values))
        if kinds != {list}:
            raise V2Error(
                f"input {INPUT_NAME}: nested data must be arrays all the way down to the "
                "numbers; received a mix of arrays and other values at one depth."
            )
        lengths = set(map(len, values))
        if len(lengths) != 1:
            raise V2Error(
                f"input {INPUT_NAME}: nested data must be rectangular; received rows of "
                f"lengths {sorted(lengths)}."
            )
        nested.append(lengths.pop())
        values = list(chain.from_iterable(values))
    kinds = set(map(type, values))
    if not kinds <= _NUMBERS:
        names = sorted(_JSON_NAMES.get(kind, "null") for kind in kinds - _NUMBERS)
        raise V2Error(
            f"input {INPUT_NAME}: every value must be a number; received {' and '.join(names)}."
        )
    if len(nested) > 1 and nested != list(shape):
        raise V2Error(
            f"input {INPUT_NAME}: nested data has shape {_shape(nested)} but the tensor "
            f"declares shape {_shape(shape)}."
        )
    return values


def input_matrix(
    request: ParsedRequest, spec: NetworkSpec, admit: Callable[[int], None]
) -> NDArray[np.floating[Any]]:
    """The batch ``X`` as ``(m, n_x)`` rows in the network's dtype, finite."""
    tensors = request.header.inputs
    names = [tensor.name for tensor in tensors]
    if names != [INPUT_NAME]:
        unknown = [name for name in names if name != INPUT_NAME]
        if unknown:
            problem = f"received unknown input {unknown[0]!r}"
        elif len(names) > 1:
            problem = f"received {INPUT_NAME} {len(names)} times"
        else:  # pragma: no cover - min_length=1 leaves no other case
            problem = "received none"
        raise V2Error(f"This model has exactly one input, {INPUT_NAME} [m, {spec.n_x}]; {problem}.")
    tensor = tensors[0]
    if tensor.datatype not in INPUT_DATATYPES:
        raise V2Error(
            f"input {INPUT_NAME} must have datatype FP32 or FP64; received {tensor.datatype!r}."
        )
    dtype = DATATYPES[tensor.datatype]
    m = _check_shape(tensor.shape, spec.n_x, admit)
    count = m * spec.n_x
    size = _parameter(tensor.parameters, "binary_data_size", int, f"input {INPUT_NAME}")
    rows: NDArray[Any]
    if size is not None:
        if tensor.data is not None:
            raise V2Error(
                f"input {INPUT_NAME} has both data and binary_data_size; send one of them."
            )
        needed = count * dtype.itemsize
        if size != needed:
            raise V2Error(
                f"input {INPUT_NAME} of shape {_shape(tensor.shape)} and datatype "
                f"{tensor.datatype} needs binary_data_size {needed}; received {size}."
            )
        if len(request.binary) != size:
            raise V2Error(
                f"input {INPUT_NAME} declares {size} bytes of binary data; the body holds "
                f"{len(request.binary)} bytes after its JSON header (send {HEADER_LENGTH} "
                "set to the length of the JSON header)."
            )
        rows = np.frombuffer(request.binary, dtype=dtype).reshape(m, spec.n_x)
    else:
        if tensor.data is None:
            raise V2Error(
                f"input {INPUT_NAME} has no data: send data, or binary data with "
                "parameters.binary_data_size."
            )
        if len(request.binary):
            raise V2Error(
                f"The body holds {len(request.binary)} bytes after its JSON header, but no "
                "input declares binary_data_size."
            )
        values = _flat_values(tensor.data, tensor.shape)
        if len(values) != count:
            raise V2Error(
                f"input {INPUT_NAME}: shape {_shape(tensor.shape)} needs {count} values; "
                f"data holds {len(values)}."
            )
        with np.errstate(over="ignore", invalid="ignore"):
            rows = np.array(values, dtype=dtype).reshape(m, spec.n_x)
    if not np.isfinite(rows).all():
        raise V2Error(
            f"input {INPUT_NAME} must hold finite numbers; received NaN, Infinity or a value "
            f"beyond {tensor.datatype}'s range."
        )
    with np.errstate(over="ignore"):
        X = rows.astype(spec.np_dtype, copy=False)
    if not np.isfinite(X).all():
        own = datatype_of(spec.np_dtype)
        raise V2Error(
            f"input {INPUT_NAME} holds values beyond {own}'s range, and {own} is this "
            "network's datatype; scale the inputs down."
        )
    return X


# ---- outputs -------------------------------------------------------------------------------


def datatype_of(dtype: np.dtype[Any]) -> str:
    return {"f4": "FP32", "f8": "FP64", "i8": "INT64"}[dtype.str[1:]]


def _is_classifier(spec: NetworkSpec) -> bool:
    return spec.activations[-1] in ("sigmoid", "softmax")


def natural_outputs(spec: NetworkSpec) -> dict[str, tuple[str, list[int]]]:
    """Each output's datatype and shape (``-1`` for the batch) as this network answers them."""
    own = datatype_of(spec.np_dtype)
    width = 1 if spec.activations[-1] == "softmax" else spec.n_L
    return {
        "A": (own, [-1, spec.n_L]),
        "predictions": ("INT64" if _is_classifier(spec) else own, [-1, width]),
    }


@dataclass(frozen=True)
class OutputChoice:
    name: str
    datatype: str
    binary: bool


def requested_outputs(request: InferenceRequest, spec: NetworkSpec) -> list[OutputChoice]:
    """The outputs to answer, in order, with their datatype and form."""
    binary_default = bool(
        _parameter(request.parameters, "binary_data_output", bool, "The request's")
    )
    natural = natural_outputs(spec)
    if not request.outputs:  # absent or empty: all of them
        return [OutputChoice(name, natural[name][0], binary_default) for name in OUTPUT_NAMES]
    choices: list[OutputChoice] = []
    for output in request.outputs:
        if output.name not in natural:
            raise V2Error(
                f"Unknown output {output.name!r}; this model's outputs are "
                f"{', '.join(OUTPUT_NAMES)}."
            )
        if any(choice.name == output.name for choice in choices):
            raise V2Error(f"Output {output.name!r} is requested twice.")
        where = f"output {output.name!r}"
        if (output.parameters or {}).get("classification") is not None:
            raise V2Error(
                f"{where}: the classification extension is not supported; request "
                "'predictions' for labels."
            )
        binary = _parameter(output.parameters, "binary_data", bool, where)
        datatype = _parameter(output.parameters, "datatype", str, where)
        allowed = ["FP32", "FP64"]
        if natural[output.name][0] == "INT64":
            allowed.append("INT64")
        if datatype is None:
            datatype = natural[output.name][0]
        elif datatype not in allowed:
            raise V2Error(
                f"{where} can be answered as {' or '.join(allowed)}; received datatype "
                f"{datatype!r}."
            )
        choices.append(
            OutputChoice(output.name, datatype, binary_default if binary is None else binary)
        )
    return choices


def encode_response(
    model_name: str,
    version: int,
    request_id: str | None,
    outputs: Sequence[tuple[OutputChoice, NDArray[Any]]],
) -> tuple[bytes, int | None]:
    """The answer's bytes, and the JSON header's length when binary outputs follow it."""
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for choice, rows in outputs:
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.ascontiguousarray(rows, dtype=DATATYPES[choice.datatype])
        tensor: dict[str, Any] = {
            "name": choice.name,
            "datatype": choice.datatype,
            "shape": list(values.shape),
        }
        if choice.binary:
            raw = values.tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = values.ravel()
        tensors.append(tensor)
    answer: dict[str, Any] = {"model_name": model_name, "model_version": str(version)}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = tensors
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def infer(
    network: Network,
    model_name: str,
    version: int,
    request: ParsedRequest,
    admit: Callable[[int], None],
) -> tuple[bytes, int | None]:
    """Validate, predict on the rows of X, and encode the requested outputs as rows."""
    spec = network.spec
    X = input_matrix(request, spec, admit)
    choices = requested_outputs(request.header, spec)
    try:
        # The network's columns are our rows. An output that overflows is refused below.
        with np.errstate(over="ignore", invalid="ignore"):
            A, predictions = predict(network, X.T)
    except ModelError as exc:  # pragma: no cover - input_matrix checked everything it checks
        raise V2Error(str(exc)) from None
    if not np.isfinite(A).all():
        raise V2Error(
            "The network's output overflowed to infinity on this X; scale the inputs down."
        )
    by_name = {"A": A.T, "predictions": predictions.T}
    return encode_response(
        model_name,
        version,
        request.header.id,
        [(choice, by_name[choice.name]) for choice in choices],
    )


def model_metadata(model_name: str, version: int, spec: NetworkSpec) -> dict[str, Any]:
    outputs = natural_outputs(spec)
    return {
        "name": model_name,
        "versions": [str(version)],
        "platform": PLATFORM,
        "inputs": [
            {"name": INPUT_NAME, "datatype": datatype_of(spec.np_dtype), "shape": [-1, spec.n_x]}
        ],
        "outputs": [
            {"name": name, "datatype": datatype, "shape": shape}
            for name, (datatype, shape) in outputs.items()
        ],
    }


def check_version(model_name: str, current: int, requested: str) -> None:
    """Only the current version is served: a network keeps no older parameters."""
    if requested != str(current):
        raise V2Error(
            f"Model {model_name!r} has no version {requested!r}: it serves only its current "
            f"version, {current} (every change of the parameters makes a new version, and "
            "older ones are not kept).",
            404,
        )
