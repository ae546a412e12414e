"""One exception family carrying its HTTP status, and the handlers that turn every error
(ours, FastAPI's validation errors, Starlette's 404/405, the model's) into RFC 9457
``application/problem+json``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from model import ModelError, TrainingDiverged

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error answered as problem+json with ``status``."""

    status = 422

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


class NotFound(ProblemError):
    status = 404


class Conflict(ProblemError):
    status = 409


class Invalid(ProblemError):
    status = 422


def network_missing(network_id: str) -> NotFound:
    return NotFound(f"There is no network with id {network_id!r}.")


def job_missing(job_id: str) -> NotFound:
    return NotFound(f"There is no job with id {job_id!r}.")


def network_busy(job_id: str) -> Conflict:
    return Conflict(
        f"The network is busy with training job {job_id}: wait for it to finish "
        f"(GET /jobs/{job_id}) or cancel it (DELETE /jobs/{job_id}), then try again."
    )


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_response(
    path: str, status: int, detail: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """An error answered before or around the routes: problem+json, except on the V2
    protocol's paths, whose clients only decode ``{"error": ...}``."""
    if is_v2(path):
        return Response(
            orjson.dumps({"error": detail}),
            status_code=status,
            media_type="application/json",
            headers=dict(headers or {}),
        )
    return problem_response(status, detail, headers=headers)


def _jsonable(value: Any) -> Any:
    """Validation inputs can be anything the caller sent; keep what JSON can carry."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [_jsonable(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()
    ]


async def _on_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


async def _on_model_error(_: Request, exc: Exception) -> Response:
    if isinstance(exc, TrainingDiverged):
        detail = (
            f"Training diverged at step {exc.step}: the cost or the parameters became NaN or "
            f"infinite, so nothing was saved. Try a smaller learning rate. ({exc})"
        )
        return problem_response(422, detail)
    return problem_response(422, str(exc))


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return problem_response(400, "The request body is not valid JSON.", errors=errors)
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return problem_response(422, f"The request is not valid: {summary}", errors=errors)


def _allowed_methods(request: Request) -> str:
    """Every method some route offers on this path. Starlette's own ``Allow`` names only the
    first route that matched the path, but GET and POST /networks are two routes."""
    methods: set[str] = set()
    for route in _flat(request.app.router.routes):
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method not
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    """The routes of included routers too (FastAPI keeps them behind a wrapper)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat(included.routes)
        else:
            yield route


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = "There is no such resource; see /docs for the routes this service offers."
    elif exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
        detail = f"This method is not allowed on this path; it allows {headers['Allow']}."
    return error_response(request.url.path, exc.status_code, detail, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(ModelError, _on_model_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
