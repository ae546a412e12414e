"""The typed aliases every feature's routes share: the service (what the application holds,
and who calls it), and what a path, a query or a header names. (V2 adds one of its own, the
model a path names, in ``service/v2/routes.py``.)

FastAPI (0.165) spends about 20 µs on every dependency of every request, so a route has
one: :class:`Service`, what the application holds and who calls it. It only reads what the
application holds, so it is ``async def`` (a plain ``def`` would cost a thread-pool hop,
more than the lookup). Headers are route parameters (:data:`IfMatch`,
:data:`IdempotencyKey`), read by plain functions, not dependencies of their own. Tests swap
the service, and with it the caller, with ``app.dependency_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Path, Query, Request

from service.core.capacity import HeavyWork
from service.core.errors import Invalid
from service.core.observability import Metrics
from service.core.settings import Settings
from service.core.wire import Encoding
from service.store import Store
from service.warm import WarmNetworks

if TYPE_CHECKING:
    from service.jobs.manager import JobManager


@dataclass(frozen=True)
class Service:
    """What a request works with: the application's settings, store, warm networks, threads
    of heavy work, metrics and jobs, and the caller's ``owner`` id, set by
    :class:`service.core.auth.ApiKeyMiddleware` (a digest of the API key, or "" while the
    service is open: no keys configured)."""

    settings: Settings
    store: Store
    warm: WarmNetworks
    heavy: HeavyWork
    metrics: Metrics
    jobs: JobManager
    owner: str


async def get_service(request: Request) -> Service:
    state = request.app.state
    return Service(
        state.settings,
        state.store,
        state.warm,
        state.heavy,
        state.metrics,
        state.jobs,
        request.state.owner,
    )


IfMatch = Annotated[
    str | None,
    Header(description="Only apply if the network is still at this version (its ETag)."),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Any string up to 200 characters: a repeat of this request with the same key "
        "and body (within 24 hours) answers what the first answered, changing nothing again.",
    ),
]


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header names (None without one)."""
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise Invalid(f'If-Match must be a version number such as "3"; received {if_match!r}.')
    return int(text)


ServiceDep = Annotated[Service, Depends(get_service)]
NetworkId = Annotated[
    str, Path(description="The id POST /networks answered.", min_length=1, max_length=64)
]
JobId = Annotated[
    str, Path(description="The id POST /networks/{id}/jobs answered.", min_length=1, max_length=64)
]
EncodingDep = Annotated[
    Encoding,
    Query(description="json: nested lists; base64: {shape, dtype, base64} in the network's dtype"),
]
