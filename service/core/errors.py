"""Every error answered the same way: RFC 9457 ``application/problem+json`` (``{"error": ...}``
on the V2 protocol's paths, whose clients decode nothing else).

One handler per family: the service's own :class:`ProblemError`, the store's
:class:`~service.store.StoreError` (its 404s, 409s, 503s and 507s), the model's
:class:`~model.ModelError` (a 422), FastAPI's validation errors and Starlette's HTTP errors;
and, for a bug, a problem+json 500 that says ``Connection: close``. No route translates an
error by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from model import ModelError
from service import store

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER = "1"  # seconds: a store outage or a full queue is usually short


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


class Unavailable(ProblemError):
    """The service cannot take the work now (capacity, shutdown): retry after a moment."""

    status = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": RETRY_AFTER})


def is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_response(
    path: str,
    status: int,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The answer to an error at ``path``: problem+json, or the V2 protocol's ``{"error"}``."""
    if is_v2(path):
        body: dict[str, Any] = {"error": detail}
        media_type = "application/json"
    else:
        body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
        body["detail"] = detail
        if errors is not None:
            body["errors"] = list(errors)
        media_type = PROBLEM_JSON
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, status_code=status, media_type=media_type, headers=dict(headers or {}))


def network_busy(job_id: str) -> str:
    return (
        f"The network is busy with training job {job_id}: wait for it to finish "
        f"(GET /jobs/{job_id}) or cancel it (POST /jobs/{job_id}/cancel), then try again."
    )


def _store_answer(error: store.StoreError) -> tuple[int, str, dict[str, str]]:
    """The status, detail and headers of a store error."""
    retry = {"Retry-After": RETRY_AFTER}
    match error:
        case store.NetworkMissing() | store.JobMissing():
            return 404, str(error), {}
        case store.NetworkBusy():
            return 409, network_busy(error.job_id), {}
        case store.JobActive():
            return 409, str(error), {}
        case store.VersionConflict():
            detail = (
                f"The network moved on to version {error.current} while this request ran; fetch "
                "it again and retry."
            )
            return 409, detail, {}
        case store.JobEnded():
            return 409, "The job ended while this request ran; nothing was written.", {}
        case store.NetworkLimitReached() | store.IdempotencyMismatch():
            return 422, str(error), {}
        case store.QuotaExceeded():
            return 507, str(error) + " Nothing was stored.", {}
        case store.StoreFull():
            return 507, f"{error} The change was not applied; free space, then retry.", {}
        case store.StoreUnavailable(applied=None):
            detail = (
                f"{error.reason} Whether the change was applied is unknown: retry with the same "
                "Idempotency-Key, which applies it at most once."
            )
            return 503, detail, retry
        case store.StoreUnavailable():
            return 503, f"{error.reason} The change was not applied; retry.", retry
    return 500, str(error), {}  # pragma: no cover - every StoreError is matched above


async def _on_store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, store.StoreError)
    status, detail, headers = _store_answer(exc)
    return error_response(request.url.path, status, detail, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    path = request.url.path
    return error_response(path, exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


async def _on_model_error(request: Request, exc: Exception) -> Response:
    return error_response(request.url.path, 400 if is_v2(request.url.path) else 422, str(exc))


def _jsonable(value: Any) -> Any:
    """Validation inputs can be anything the caller sent; keep what JSON can carry."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def validation_errors(raw: Sequence[Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` errors, as ``{"loc", "msg"}`` (the rest counted in the detail)."""
    return [
        {"loc": [_jsonable(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in raw[:limit]
    ]


def invalid_request(raw: Sequence[Mapping[str, Any]], limit: int) -> ProblemError:
    errors = validation_errors(raw, limit)
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    more = f" (and {len(raw) - 5} more)" if len(raw) > 5 else ""
    return Invalid(f"The request is not valid: {summary}{more}", errors=errors)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    limit = int(request.app.state.settings.max_validation_errors)
    if any(err.get("type") == "json_invalid" for err in raw):
        errors = validation_errors(raw, limit)
        return error_response(
            request.url.path, 400, "The request body is not valid JSON.", errors=errors
        )
    problem = invalid_request(raw, limit)
    return error_response(request.url.path, 422, problem.detail, errors=problem.errors)


def _allowed_methods(request: Request) -> str:
    """Every method some route offers on this path (Starlette's own ``Allow`` names only the
    first route that matched it, but GET and POST /networks are two routes)."""
    methods: set[str] = set()
    for route in _flat(request.app.router.routes):
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method not
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
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


async def _on_memory_error(request: Request, exc: Exception) -> Response:
    detail = "The service ran out of memory for this request; retry later, or send less."
    return error_response(request.url.path, 503, detail, headers={"Retry-After": RETRY_AFTER})


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client left before its body had all arrived: nobody reads this answer, but the log
    and the metrics count it as the client's doing (a 400), not as a failure (a 500)."""
    detail = "The client disconnected before the request body had arrived."
    return error_response(request.url.path, 400, detail)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """The outermost handler (Starlette's ServerErrorMiddleware, around every middleware): a
    MemoryError raised outside a route is a 503 too. Anything else is a bug: still
    problem+json, without its trace (the log keeps it), and honest about the connection, which
    the server closes after it: a client's next request on it would be reset without warning."""
    if isinstance(exc, MemoryError):
        return await _on_memory_error(request, exc)
    detail = (
        "The service failed on this request (a bug; it is logged). Whether a change was applied "
        "is unknown: retry with the same Idempotency-Key, which applies it at most once."
    )
    return error_response(request.url.path, 500, detail, headers={"Connection": "close"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(store.StoreError, _on_store_error)
    app.add_exception_handler(ModelError, _on_model_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(MemoryError, _on_memory_error)
    app.add_exception_handler(ClientDisconnect, _on_client_disconnect)
    app.add_exception_handler(Exception, _on_unexpected)  # Starlette's last resort, re-raised
