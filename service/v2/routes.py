"""The Open Inference Protocol (KServe / Triton V2 REST): every network is a model named by
its id, so ``tritonclient.http`` and KServe clients work unchanged.

These routes speak the protocol's error format, ``{"error": message}`` as application/json
(tritonclient decodes nothing else): :class:`V2Route` answers :class:`V2Error` itself, so
the service's problem+json handlers never see them. The infer body is read raw and parsed
here whatever its Content-Type (the sync tritonclient sends none, the async one
``application/octet-stream``); the protocol itself lives in :mod:`service.v2_protocol`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import Response

from model import ModelError
from service.core.admission import check_batch
from service.core.capacity import Stop
from service.core.errors import PROBLEM_JSON, ProblemError
from service.deps import Service, ServiceDep
from service.store import NetworkMeta, NetworkMissing, StoreError
from service.v2.protocol import (
    BINARY_CONTENT_TYPE,
    EXTENSIONS,
    HEADER_LENGTH,
    InferenceRequest,
    V2Error,
    check_version,
    decode_body,
    infer,
    inline_schema,
    model_metadata,
    model_missing,
    parse_request,
)

JSON = "application/json"
SERVER_NAME = "backprop-service"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": message}), status, headers, media_type=JSON)


def json_response(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type=JSON)


class V2Route(APIRoute):
    """Answers the protocol's errors as ``{"error": message}``, never problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except V2Error as error:
                return error_response(error.status, error.message)
            except ModelError as error:
                return error_response(400, str(error))
            except ProblemError as error:
                # The protocol's "bad request" is a 400; 503s and such keep their status, and
                # their headers (Retry-After, Connection: close).
                status = 400 if error.status == 422 else error.status
                return error_response(status, error.detail, error.headers)
            except NetworkMissing:
                name = request.path_params.get("model_name", "")
                return error_response(404, model_missing(name).message)

        return route


router = APIRouter(route_class=V2Route, tags=["v2"])


# ---- documentation --------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """The protocol's error answer."""

    error: str = Field(description="What went wrong, naming expected and received shapes.")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for the batch dimension m")


class ModelMetadata(BaseModel):
    name: str = Field(description="The network's id.")
    versions: list[str] = Field(description="Only the current version is served.")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class OutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float] | None = Field(None, description="Row-major, flat (JSON outputs).")
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: this output's bytes after the JSON header"
    )


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = Field(None, description="The request's id, if it had one.")
    outputs: list[OutputTensor]


def _errors(*codes: int, any_4xx: bool = True) -> dict[int | str, dict[str, Any]]:
    """The documented error answers: the protocol's ``{"error"}``, except 413, which the
    service-wide body limit answers before any route runs, as problem+json."""
    descriptions = {
        400: "Not a valid inference request (bad JSON, shape, datatype, name or size).",
        401: "API keys are configured and the request has no valid bearer key.",
        404: "No such model (network), or not at that version.",
        413: "The body is larger than the configured limit (problem+json, as everywhere).",
        415: "A Content-Encoding other than gzip, deflate or identity.",
        503: "The store cannot be reached.",
    }
    answers: dict[int | str, dict[str, Any]] = {
        code: {"description": descriptions[code], "model": ErrorBody} for code in codes
    }
    if 413 in codes:
        answers[413] = {
            "description": descriptions[413],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    if any_4xx:  # also keeps FastAPI from documenting its own 422, which never happens here
        answers["4XX"] = {"description": "Any other client error.", "model": ErrorBody}
    return answers


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": inline_schema(InferenceRequest)},
            BINARY_CONTENT_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "The JSON header, then the binary tensors' bytes; "
                    f"{HEADER_LENGTH} is the header's length.",
                }
            },
        },
    },
    "parameters": [
        {
            "name": HEADER_LENGTH,
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": "With binary tensors: the length of the JSON header in bytes.",
        }
    ],
}
_BINARY_ANSWER = {
    "description": "The outputs. With binary outputs the answer is "
    f"{BINARY_CONTENT_TYPE}: the JSON header ({HEADER_LENGTH} bytes), then the tensors' bytes.",
    "content": {BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
}
_INFER_DESCRIPTION = f"""
Forward propagation in the V2 protocol. A batch is **one row per example**: the input `X`
has shape `[m, n_x]`, datatype FP32 or FP64, and its `data` is flat (row-major) or nested
like the shape. The outputs are `A` `[m, n_L]` (the network's datatype: FP32 for float32
networks, FP64 for float64) and `predictions`: INT64 0/1 per unit for a sigmoid output,
INT64 class indices `[m, 1]` for softmax, `A` itself otherwise; the same numbers as
`POST /networks/{{id}}/predict`, transposed.

`outputs` picks outputs and their order (default: all). Per output, `parameters.datatype`
asks for FP32 or FP64 (or INT64 for a classifier's predictions), and
`parameters.binary_data: true` for raw little-endian bytes; request-level
`parameters.binary_data_output: true` makes that the default. Binary inputs (the binary
tensor data extension, which tritonclient uses by default) follow the JSON header, with
`parameters.binary_data_size` per input and the `{HEADER_LENGTH}`
header. The `id` is echoed. The body is parsed whatever its Content-Type; gzip and deflate
Content-Encodings are accepted. Errors answer `{{"error": message}}`.

Fields the protocol allows that this service does not use are ignored, not refused: the
`model_name` and `model_version` the KServe SDK sends (the path names the model), any
other field of the request, of a tensor or of an output, and parameters this service does
not read. What it reads is checked, and a malformed request is a 400.
"""


# ---- dependencies ---------------------------------------------------------------------------

ModelName = Annotated[str, Path(description="The network's id: its model name here.")]
ModelVersion = Annotated[
    str, Path(description="The network's current version (older ones are not kept).")
]


def load_meta(model_name: ModelName, service: ServiceDep) -> NetworkMeta:
    return service.store.get_meta(model_name, service.owner)


MetaDep = Annotated[NetworkMeta, Depends(load_meta)]


def load_meta_at(meta: MetaDep, model_version: ModelVersion) -> NetworkMeta:
    check_version(meta.id, meta.version, model_version)
    return meta


MetaAtDep = Annotated[NetworkMeta, Depends(load_meta_at)]


# ---- server ---------------------------------------------------------------------------------


@router.get(
    "/v2",
    response_model=ServerMetadata,
    summary="V2 server metadata",
    description="The server's name, version and protocol extensions (binary_tensor_data). "
    "`GET /v2/`, the path the protocol's OpenAPI file lists, answers the same.",
    responses=_errors(401, any_4xx=False),
)
@router.get("/v2/", include_in_schema=False)
async def server_metadata(request: Request) -> Response:
    extensions = list(EXTENSIONS)
    return json_response(
        {"name": SERVER_NAME, "version": request.app.version, "extensions": extensions}
    )


@router.get(
    "/v2/health/live",
    response_model=Live,
    summary="V2 liveness",
    description="The process answers. Needs no API key.",
)
async def live() -> Response:
    return json_response({"live": True})


@router.get(
    "/v2/health/ready",
    response_model=Ready,
    summary="V2 readiness",
    description='The store can be reached; 503 with `{"error"}` otherwise. Needs no API key.',
    responses=_errors(503, any_4xx=False),
)
def ready(service: ServiceDep) -> Response:
    try:
        service.store.ready()
    except StoreError as exc:
        raise V2Error(f"The store cannot take writes: {exc}", 503) from None
    return json_response({"ready": True})


# ---- models ---------------------------------------------------------------------------------

_METADATA_DESCRIPTION = (
    "The model (network) in the protocol's terms: `versions` holds its current version, "
    "`inputs` `X` `[-1, n_x]`, `outputs` `A` `[-1, n_L]` and `predictions` (INT64 labels "
    "for sigmoid and softmax outputs, `[-1, 1]` for softmax; the network's datatype "
    "otherwise). One row per example."
)


def _metadata(meta: NetworkMeta) -> Response:
    return json_response(model_metadata(meta.id, meta.version, meta.spec))


@router.get(
    "/v2/models/{model_name}",
    response_model=ModelMetadata,
    summary="V2 model metadata",
    description=_METADATA_DESCRIPTION,
    responses=_errors(401, 404),
)
def metadata(meta: MetaDep) -> Response:
    return _metadata(meta)


@router.get(
    "/v2/models/{model_name}/versions/{model_version}",
    response_model=ModelMetadata,
    summary="V2 model metadata, at a version",
    description=_METADATA_DESCRIPTION + " 404 unless the version is the current one.",
    responses=_errors(401, 404),
)
def metadata_at(meta: MetaAtDep) -> Response:
    return _metadata(meta)


def _ready(meta: NetworkMeta) -> Response:
    return json_response({"name": meta.id, "ready": True})


@router.get(
    "/v2/models/{model_name}/ready",
    response_model=ModelReady,
    summary="V2 model readiness",
    description="200 if the network exists (every network is ready to infer); 404 otherwise.",
    responses=_errors(401, 404),
)
def model_ready(meta: MetaDep) -> Response:
    return _ready(meta)


@router.get(
    "/v2/models/{model_name}/versions/{model_version}/ready",
    response_model=ModelReady,
    summary="V2 model readiness, at a version",
    description="200 if the network exists at this (its current) version; 404 otherwise.",
    responses=_errors(401, 404),
)
def model_ready_at(meta: MetaAtDep) -> Response:
    return _ready(meta)


async def _infer(
    request: Request,
    model_name: str,
    version: str | None,
    service: Service,
) -> Response:
    body = await request.body()
    headers = request.headers

    def work(stop: Stop) -> tuple[bytes, int | None]:
        with service.warm.reading(model_name, service.owner) as record:
            if version is not None:
                check_version(record.meta.id, record.meta.version, version)
            limit = min(service.settings.max_v2_decompressed_bytes, service.settings.max_body_bytes)
            raw = decode_body(body, headers.get("content-encoding"), limit)
            parsed = parse_request(raw, headers.get(HEADER_LENGTH))
            spec = record.meta.spec
            return infer(
                record.network,
                record.meta.id,
                record.meta.version,
                parsed,
                lambda m: check_batch(spec, m, service.settings),
            )

    content, header_length = await service.heavy.run(work, request.receive)
    if header_length is None:
        return Response(content, media_type=JSON)
    return Response(
        content, media_type=BINARY_CONTENT_TYPE, headers={HEADER_LENGTH: str(header_length)}
    )


_INFER_RESPONSES = {200: _BINARY_ANSWER, **_errors(400, 401, 404, 413, 415)}


@router.post(
    "/v2/models/{model_name}/infer",
    response_model=InferenceResponse,
    summary="V2 inference",
    description=_INFER_DESCRIPTION,
    responses=_INFER_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def model_infer(
    request: Request,
    model_name: ModelName,
    service: ServiceDep,
) -> Response:
    return await _infer(request, model_name, None, service)


@router.post(
    "/v2/models/{model_name}/versions/{model_version}/infer",
    response_model=InferenceResponse,
    summary="V2 inference, at a version",
    description=_INFER_DESCRIPTION + "\n404 unless the version is the network's current one.",
    responses=_INFER_RESPONSES,
    openapi_extra=_INFER_BODY,
)
async def model_infer_at(
    request: Request,
    model_name: ModelName,
    model_version: ModelVersion,
    service: ServiceDep,
) -> Response:
    return await _infer(request, model_name, model_version, service)


# ---- anything else under /v2 -----------------------------------------------------------------


@router.api_route(
    "/v2/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
)
async def not_offered(request: Request) -> Response:
    """Protocol routes this server does not offer (model config, statistics, repository,
    shared memory ...) and wrong methods: ``{"error"}``, so clients can read why."""
    path = request.scope["path"]
    allowed = sorted(
        method
        for route in router.routes
        if isinstance(route, APIRoute)
        and route.endpoint is not not_offered
        and route.path_regex.match(path)
        for method in route.methods or ()
    )
    where = f"{request.method} {request.url.path}"
    if allowed:
        return error_response(
            405, f"{where} is not allowed; use {', '.join(allowed)}.", {"Allow": ", ".join(allowed)}
        )
    return error_response(
        404,
        f"This server does not offer {where}. It offers GET /v2, /v2/health/live, "
        "/v2/health/ready, /v2/models/{name}[/versions/{version}][/ready] and POST "
        "/v2/models/{name}[/versions/{version}]/infer.",
    )
