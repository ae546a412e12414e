"""Bearer API keys: who may call, and whose networks they see.

With ``BACKPROP_API_KEYS`` unset the service is open and every caller is the same owner
(""). With keys set, every route but health, readiness, the docs, the playground page (which
asks for a key and sends it with its own calls) and the V2 health routes needs
``Authorization: Bearer <key>``; the caller's owner id is a digest of the key, so keys are
never stored, and each key sees only what it created.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.core.errors import error_response

logger = logging.getLogger("backprop.auth")

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/playground",
        "/v2/health/live",
        "/v2/health/ready",
    }
)
# The explorer's own JavaScript and CSS, and the playground's (the page asks for a key itself).
PUBLIC_PREFIXES = ("/static-offline-docs/", "/playground/assets/")
OPEN_OWNER = ""


def owner_of(key: str) -> str:
    """A stable, non-reversible id for the owner of ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class ApiKeyMiddleware:
    """Sets ``request.state.owner`` from the bearer key, or answers 401."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], *, metrics_key: bool = False) -> None:
        self.app = app
        self._keys = [key.encode() for key in keys]
        # With an operator key of its own, /metrics checks that key itself.
        self._public = PUBLIC_PATHS | ({"/metrics"} if metrics_key else set())
        if not keys:
            logger.warning(
                "BACKPROP_API_KEYS is not set: the service is open to anyone who can reach it."
            )

    def _match(self, presented: bytes) -> str | None:
        # Compare with every key, always, in constant time: neither the answer's timing nor
        # its content tells which key (or how much of one) was right.
        found = None
        for key in self._keys:
            if hmac.compare_digest(presented, key):
                found = key
        return None if found is None else owner_of(found.decode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self._keys:
            state["owner"] = OPEN_OWNER
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self._public or path.startswith(PUBLIC_PREFIXES):
            state["owner"] = None
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, presented = header.partition(b" ")
        owner = self._match(presented.strip()) if scheme.lower() == b"bearer" else None
        if owner is None:
            await _unauthorized(path, bool(header))(scope, receive, send)
            return
        state["owner"] = owner
        await self.app(scope, receive, send)


def _unauthorized(path: str, presented: bool) -> Response:
    detail = (
        "The API key is not valid."
        if presented
        else "This service needs an API key: send Authorization: Bearer <key>."
    )
    headers = {"WWW-Authenticate": 'Bearer realm="backprop"'}
    return error_response(path, 401, detail, headers=headers)
