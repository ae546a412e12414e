"""Safe retries: ``Idempotency-Key``.

A change that carries a key keeps its answer with it, in the change's own transaction
(:class:`service.store.Idempotency`), so even a crash between the commit and the answer
replays correctly. A repeat with the same key and the same request (method, path, body) by
the same caller answers the kept answer with ``Idempotent-Replayed: true`` and changes
nothing; the same key with another request is a 422. Two requests with one key at once: the
second's commit finds the key taken, rolls back, and replays the first's answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.responses import Response

from service.store import Idempotency, IdempotencyKeyTaken, Store, StoredResponse

REPLAYED = "Idempotent-Replayed"
KEPT_HEADERS = ("etag", "location")  # headers of an answer that its replay repeats


async def fingerprint(request: Request) -> str:
    body = await request.body()
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), body):
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()


def _replayed(answer: StoredResponse) -> Response:
    headers = {**answer.headers, REPLAYED: "true"}
    return Response(answer.body, answer.status, headers, media_type="application/json")


@dataclass(frozen=True)
class Retry:
    """A request's Idempotency-Key (``key`` None: it has none), and what it keeps."""

    store: Store
    owner: str
    key: str | None
    fingerprint: str

    @classmethod
    async def of(cls, request: Request, store: Store, owner: str, key: str | None) -> Retry:
        """The retry of ``request`` by ``owner``, whose Idempotency-Key header is ``key``."""
        return cls(store, owner, key, "" if key is None else await fingerprint(request))

    def keeping(self, respond: Callable[[Any], Response]) -> Idempotency | None:
        """The :class:`Idempotency` of the change that ``respond`` answers."""
        if self.key is None:
            return None

        def kept(record: Any) -> StoredResponse:
            response = respond(record)
            headers = {k: v for k, v in response.headers.items() if k in KEPT_HEADERS}
            return StoredResponse(response.status_code, bytes(response.body), headers)

        return Idempotency(self.owner, self.key, self.fingerprint, kept)

    def run(self, change: Callable[[], Response]) -> Response:
        """The kept answer if there is one; else ``change()``'s (which keeps its answer)."""
        if self.key is None:
            return change()
        answer = self.store.replay(self.owner, self.key, self.fingerprint)
        if answer is not None:
            return _replayed(answer)
        try:
            return change()
        except IdempotencyKeyTaken:
            answer = self.store.replay(self.owner, self.key, self.fingerprint)
            if answer is None:  # kept, then expired at once: never within 24 hours
                raise
            return _replayed(answer)
