"""The fast lane of ``POST /networks/{network_id}/predict``: a small prediction on a cached
network, answered before FastAPI's routing.

For a one-example prediction, FastAPI's own per-request work (matching the path against
the routes, reading and validating the body, resolving the parameters and the loader)
costs more than the version query and the prediction together. This middleware answers the
common case itself, with the route's own pieces: ``PredictRequest`` validates the body,
:class:`~service.deps.NetworkLoader` finds the network at its current version and
:func:`~service.routes.prediction.prediction` makes the answer. It takes a request only
when it can answer it with a 200: a JSON body of declared length, no query but
``encoding``, a valid body, the embedded store, a cached network and a batch that
:func:`~service.deps.runs_inline` admits. Everything else (errors, cache misses, large
batches, PostgreSQL, chunked bodies) goes to the route unchanged, its body replayed, and
is answered exactly as without this lane.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model import ModelError
from service.deps import NetworkLoader, network_loader, runs_inline
from service.errors import ProblemError
from service.limits import check_batch
from service.matrices import Encoding
from service.plumbing import parse_json
from service.routes.prediction import predict_batch, prediction, router
from service.schemas import PredictRequest
from service.store import NetworkMissing

ROUTE = next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is predict_batch)

# Bodies above this go to the route unparsed: no small batch needs more, and it bounds what
# parsing a body twice (here, then in the route) can cost.
MAX_INLINE_BODY_BYTES = 64 * 1024

_ENCODINGS: dict[bytes, Encoding] = {
    b"": "json",
    b"encoding=json": "json",
    b"encoding=base64": "base64",
}


class InlinePredictions:
    """ASGI middleware; inside the API-key check, so the owner is known."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = _lane(scope)
        if lane is not None:
            network_id, encoding = lane
            loader = await network_loader(network_id, Request(scope))
            if loader.store.local_reads:  # else every read is the route's thread-pool work
                await self._take(scope, receive, send, loader, encoding)
                return
        await self.app(scope, receive, send)

    async def _take(
        self, scope: Scope, receive: Receive, send: Send, loader: NetworkLoader, encoding: Encoding
    ) -> None:
        messages = [await receive()]  # at most MAX_INLINE_BODY_BYTES, by the declared length
        while messages[-1]["type"] == "http.request" and messages[-1].get("more_body", False):
            messages.append(await receive())
        answer = None
        if messages[-1]["type"] == "http.request":  # else the client left: the route says so
            body = b"".join(message.get("body", b"") for message in messages)
            answer = _answer(loader, body, encoding)
        if answer is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        scope["route"] = ROUTE  # the request log and the metrics name the route
        await answer(scope, receive, send)


def _lane(scope: Scope) -> tuple[str, Encoding] | None:
    """(network id, encoding) of a request this lane may take, from its head alone."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    encoding = _ENCODINGS.get(scope["query_string"])
    match = ROUTE.path_regex.match(scope["path"])
    if encoding is None or match is None:
        return None
    headers = dict(scope["headers"])
    length = headers.get(b"content-length", b"")
    content_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
    if content_type != b"application/json" or not length.isdigit():
        return None
    if int(length) > MAX_INLINE_BODY_BYTES:
        return None
    return match["network_id"], encoding


def _answer(loader: NetworkLoader, body: bytes, encoding: Encoding) -> Response | None:
    """The route's 200 answer, or None for anything else."""
    try:
        # ValueError covers invalid JSON and pydantic's ValidationError; HTTPException is
        # parse_json's 422 for NaN/Infinity.
        X = PredictRequest.model_validate(parse_json(body)).X
        record = loader.cached()
    except (ValueError, HTTPException, NetworkMissing):
        return None
    examples = X.shape[1]
    if record is None or not runs_inline(record, examples):
        return None
    try:
        check_batch(record.network.spec, examples, loader.settings)
        return prediction(record, X, encoding)
    except (ProblemError, ModelError):
        return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive``, after giving back the ``messages`` it already gave."""
    pending = messages[::-1]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
