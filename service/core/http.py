"""The request path below the routes: JSON bodies, the bounds of a body, and answers.

Every JSON route uses :class:`JsonRoute`: a body whose Content-Type is not
``application/json`` is a 415; the body is parsed by orjson (several times faster than the
standard library), on a worker thread when it is large (so a big body never stalls the event
loop); keys the models do not know, at any level, are refused before pydantic validates
anything (so a million unknown keys cost one pass, not a million errors); and a body that is
not JSON is a 400 that says where, parsed once. :class:`BodyLimits` bounds every body's size,
the time it may take to arrive, and the bytes of bodies held at once.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.errors import RETRY_AFTER, Invalid, ProblemError, error_response
from service.core.wire import note_body

JSON = "application/json"
# Bodies above this are parsed on a thread of their own: 64 KiB of numbers take about 1 ms,
# 1 MiB about 15 ms, which would stall every other request on the event loop. orjson holds the
# GIL while it parses, so the loop still waits for the parse it competes with: one large body
# is parsed at a time, so that such waits never stack up, and bodies queued for it hold no
# thread of the pool that serves reads (the bytes of bodies held are bounded by BodyLimits).
LOOP_PARSE_BYTES = 64 * 1024
_PARSER = ThreadPoolExecutor(1, thread_name_prefix="parse")
SHOWN_KEYS = 20  # unknown keys named in an answer
MAX_BODY_KEYS = 16_384
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


@dataclass(frozen=True)
class _Keys:
    """The keys a request model takes, and those of the request models nested in it."""

    name: str
    known: frozenset[str]
    nested: Mapping[str, tuple[_Keys, bool]]  # field -> (its model's keys, a list of them)


def _model_in(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The request model an annotation holds (``X``, ``X | None``, ``list[X]``, ...), and
    whether it is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _model_in(args[0])
    if origin is list and args:
        found = _model_in(args[0])
        return None if found is None or found[1] else (found[0], True)
    if origin in (Union, UnionType):
        for arg in args:
            if (found := _model_in(arg)) is not None:
                return found
    return None


@cache
def _keys(model: type[BaseModel]) -> _Keys:
    nested = {}
    for name, info in model.model_fields.items():
        found = _model_in(info.annotation)
        if found is not None:
            nested[info.alias or name] = (_keys(found[0]), found[1])
    known = frozenset(info.alias or name for name, info in model.model_fields.items())
    return _Keys(model.__name__, known, nested)


def refuse_unknown_keys(document: Any, keys: _Keys, loc: tuple[str | int, ...] = ()) -> None:
    """Refuse keys a model does not take, at every level of request models, before pydantic
    validates anything: a million unknown keys cost one pass over them, not a million errors.
    At most :data:`SHOWN_KEYS` are named."""
    if not isinstance(document, dict):
        return  # pydantic says what it should have been
    if not keys.known.issuperset(document):
        unknown = [key for key in document if key not in keys.known]
        shown = ", ".join(map(repr, unknown[:SHOWN_KEYS]))
        where = ".".join(map(str, ("body", *loc))) if loc else "The body"
        raise Invalid(
            f"{where} has {len(unknown)} key(s) {_article(keys.name)} {keys.name} does not "
            f"take: {shown}{' ...' if len(unknown) > SHOWN_KEYS else ''}. It takes "
            f"{', '.join(sorted(keys.known))}.",
            errors=[
                {"loc": ["body", *loc, key], "msg": "Extra inputs are not permitted"}
                for key in unknown[:SHOWN_KEYS]
            ],
        )
    for field, (inner, many) in keys.nested.items():
        value = document.get(field)
        if many and isinstance(value, list):
            for index, item in enumerate(value):
                refuse_unknown_keys(item, inner, (*loc, field, index))
        elif not many:
            refuse_unknown_keys(value, inner, (*loc, field))


def _article(name: str) -> str:
    return "an" if name[:1] in "AEIOU" else "a"


def _colons_at_most(body: bytes, limit: int) -> bool:
    """Whether ``body`` holds at most ``limit`` colons: found one by one at memchr speed (the
    few of a body of matrices cost nothing; counting two-byte '":' costs 1.3 ms per MB)."""
    at = -1
    for _ in range(limit + 1):
        at = body.find(b":", at + 1)
        if at == -1:
            return True
    return False


def _read_document(body: bytes, keys: _Keys | None) -> Any:
    # Keys are what make JSON slow to parse (a MiB of them takes orjson 35 ms, the GIL held),
    # and no request of this API has more than about 8,000 (a thousand layers of W and b in
    # base64): a body that writes more is refused before it is parsed, from a count of '":'
    # (how every JSON writer ends a key; one written otherwise is found after the parse).
    written = 0 if _colons_at_most(body, MAX_BODY_KEYS) else body.count(b'":')
    if written > MAX_BODY_KEYS:
        raise Invalid(
            f"The body holds about {written} keys; no request takes more than {MAX_BODY_KEYS}. "
            "Send only the fields the route documents."
        )
    parsed = parse_json(body)
    if keys is not None:
        refuse_unknown_keys(parsed, keys)
    return parsed


def _read_large_document(body: bytes, model: type[BaseModel] | None) -> Any:
    """A large body parsed, its keys checked and validated, all off the event loop (decoding
    and checking a MiB of matrices takes tens of milliseconds): FastAPI then takes the model
    it makes as it is."""
    parsed = _read_document(body, None if model is None else _keys(model))
    if model is None:
        return parsed
    try:
        return model.model_validate(parsed)
    except ValidationError as error:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in error.errors(include_url=False)]
        ) from None


class _JsonRequest(Request):
    model: type[BaseModel] | None = None

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > LOOP_PARSE_BYTES:
                run = contextvars.copy_context().run  # what note_body notes stays this call's
                self._json = await asyncio.get_running_loop().run_in_executor(
                    _PARSER, run, _read_large_document, body, self.model
                )
            else:
                self._json = _read_document(body, None if self.model is None else _keys(self.model))
        return self._json


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body = self.body_field
        annotation = None if body is None else body.field_info.annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )

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
            wrapped.model = model
            await wrapped.json()  # parsed and its keys checked, once; FastAPI reuses it
            return await handler(wrapped)

        return route


class BodyLimits:
    """The bounds of a request body, as it arrives:

    - its size: 413 past ``max_bytes``, by its Content-Length before reading anything, or by
      counting as it streams in (chunked bodies);
    - its time: 408 if it has not all arrived ``timeout`` seconds after the request began;
    - the bytes of bodies the process holds at once, ``in_flight``: a body is counted from its
      first byte until its request is answered (its parsed form lives that long too), and past
      the budget the request gets 503 with Retry-After, before its body is read if its
      Content-Length says so.

    A 413 or a 503 leaves the connection open: the server reads the rest of the body and drops
    it (a client that writes its whole body before reading would otherwise see a reset, not
    the answer), as long as ``service.core.connections`` lets the next request head take. A 408
    closes the connection: its client is too slow to wait for."""

    def __init__(self, app: ASGIApp, max_bytes: int, in_flight: int, timeout: float) -> None:
        self.app = app
        self.max_bytes, self.in_flight, self.timeout = max_bytes, in_flight, timeout
        self.held = 0  # bytes of bodies held now (the event loop's alone: no lock)

    def _too_large(self) -> str:
        return f"The request body is larger than the limit of {self.max_bytes} bytes."

    def _full(self, size: int) -> str:
        return (
            f"The service holds {self.held} bytes of request bodies; {size} more would pass its "
            f"limit of {self.in_flight} (BACKPROP_MAX_BODY_BYTES_IN_FLIGHT). Retry in a moment."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        declared = dict(scope["headers"]).get(b"content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        refusal = None
        if size is not None and size > self.max_bytes:
            refusal = error_response(path, 413, self._too_large())
        elif size is not None and self.held + size > self.in_flight:
            refusal = error_response(path, 503, self._full(size), headers=RETRY)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        held = received = 0
        complete = False

        async def limited_receive() -> Message:
            nonlocal held, received, complete
            if complete:  # the body is in: only a disconnect can come, whenever it comes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise ProblemError(
                    f"The request body did not arrive within {self.timeout:g} s "
                    "(BACKPROP_BODY_TIMEOUT_SECONDS); send it faster, or a smaller one.",
                    status=408,
                    headers=CLOSE,
                ) from None
            if message["type"] != "http.request":
                complete = True
                return message
            chunk = len(message.get("body", b""))
            received += chunk
            if received > self.max_bytes:
                raise ProblemError(self._too_large(), status=413)
            if self.held + chunk > self.in_flight:
                raise ProblemError(self._full(chunk), status=503, headers=RETRY)
            self.held += chunk
            held += chunk
            complete = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, limited_receive, send)
        finally:
            self.held -= held


CLOSE = {"Connection": "close"}
RETRY = {"Retry-After": RETRY_AFTER}
