"""Request plumbing below the routes: JSON bodies parsed by orjson, and the body-size limit
enforced while the body streams in (a huge body is refused, never buffered)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response
from service.matrices import note_body


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NonFinite(f"{text}, which overflows a 64-bit float")
    return value


class OrjsonRequest(Request):
    """orjson parses several times faster than the standard library."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = parse_json(body)
        return self._json


def parse_json(body: bytes) -> Any:
    """Parse a request body with orjson, and note for the matrix decoder whether it holds
    any true/false (see :func:`service.matrices.note_body`)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        _explain_non_finite(body)
        raise
    note_body(body, parsed)
    return parsed


def _explain_non_finite(body: bytes) -> None:
    """NaN, Infinity and numbers beyond float64 (1e400) are not JSON orjson accepts, but a
    caller who sends them deserves a 422 that says why rather than "not JSON"."""
    try:
        json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NonFinite as constant:
        raise HTTPException(
            422, f"Every number must be finite; the body contains {constant}."
        ) from None
    except (ValueError, RecursionError):
        return


class OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

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
            await error_response(
                scope["path"], 413, self._detail(), headers={"Connection": "close"}
            )(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counting_receive, send)
