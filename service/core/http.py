"""The request path below the routes: JSON bodies, the body-size limit, and answers.

Every JSON route uses :class:`JsonRoute`: a body whose Content-Type is not
``application/json`` is a 415; the body is parsed by orjson (several times faster than the
standard library), on a worker thread when it is large (so a big body never stalls the event
loop); keys the route does not know are refused before pydantic validates anything (so a
million unknown keys cost one check, not a million errors); and a body that is not JSON is a
400 that says where, parsed once.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.errors import Invalid, ProblemError, error_response
from service.core.wire import note_body

JSON = "application/json"
# Bodies above this are parsed on a worker thread: parsing 1 MiB of numbers takes ~2 ms.
LOOP_PARSE_BYTES = 1 << 20
_NON_FINITE = (b"NaN", b"Infinity", b"-Infinity")


class ORJSONResponse(JSONResponse):
    """Answers serialized by orjson, which writes numpy arrays itself (no Python loop)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def versioned(content: Any, version: int, status_code: int = 200) -> ORJSONResponse:
    """An answer that depends on the parameters: it carries their version as an ETag."""
    return ORJSONResponse(content, status_code=status_code, headers={"ETag": f'"{version}"'})


def parse_json(body: bytes) -> Any:
    """Parse a request body (and note for the matrix decoder whether it holds true/false)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        at = body[error.pos : error.pos + 9]
        if at.startswith(_NON_FINITE) or "infinity" in str(error):
            raise Invalid(
                f"Every number must be finite; the body holds NaN, Infinity or a number beyond "
                f"a 64-bit float at character {error.pos}."
            ) from None
        raise ProblemError(f"The request body is not valid JSON: {error}.", status=400) from None
    note_body(body, parsed)
    return parsed


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > LOOP_PARSE_BYTES:
                self._json = await run_in_threadpool(parse_json, body)
            else:
                self._json = parse_json(body)
        return self._json


def _fields(model: Any) -> frozenset[str] | None:
    return (
        frozenset(model.model_fields)
        if isinstance(model, type) and issubclass(model, BaseModel)
        else None
    )


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body = self.body_field
        model = None if body is None else body.field_info.annotation
        known = _fields(model)
        name = getattr(model, "__name__", "body")

        async def route(request: Request) -> Response:
            if body is None:
                return await handler(request)
            content_type = request.headers.get("content-type", "").partition(";")[0].strip()
            if content_type.lower() != JSON:
                sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
                raise ProblemError(
                    f"This route takes a JSON body: send Content-Type: {JSON} (the request had "
                    f"{sent}).",
                    status=415,
                )
            wrapped = _JsonRequest(request.scope, request.receive)
            parsed = await wrapped.json()
            if known is not None and isinstance(parsed, dict) and not known.issuperset(parsed):
                unknown = sorted(key for key in parsed if key not in known)
                shown = ", ".join(map(repr, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
                raise Invalid(
                    f"The body has {len(unknown)} key(s) a {name} does not take: {shown}. It takes "
                    f"{', '.join(sorted(known))}.",
                    errors=[
                        {"loc": ["body", key], "msg": "Extra inputs are not permitted"}
                        for key in unknown[:20]
                    ],
                )
            return await handler(wrapped)

        return route


class BodySizeLimit:
    """413 for a body over ``max_bytes``: by its Content-Length before reading anything, or
    by counting while it streams in (chunked bodies)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self) -> str:
        return f"The request body is larger than the limit of {self.max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            answer = error_response(
                scope["path"], 413, self._detail(), headers={"Connection": "close"}
            )
            await answer(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ProblemError(self._detail(), status=413, headers={"Connection": "close"})
            return message

        await self.app(scope, counting_receive, send)
