"""Typed dependency aliases, the one place they are defined: the service (what the
application holds), the caller, and what a path, a query or a header names.

They only read what the application holds, so they are ``async def`` (a plain ``def``
dependency would cost a thread-pool hop, more than the lookup). What the application holds
is one dependency, :class:`Service`, not one each: FastAPI (0.165) spends about 12 µs on
every dependency of every request. Tests swap any of them with ``app.dependency_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Path, Query, Request

from service.core.capacity import HeavyWork
from service.core.errors import Invalid
from service.core.idempotency import Retry, fingerprint
from service.core.observability import Metrics
from service.core.settings import Settings
from service.core.wire import Encoding
from service.store import Store
from service.warm import WarmNetworks

if TYPE_CHECKING:
    from service.jobs.manager import JobManager


@dataclass(frozen=True)
class Service:
    """What the application holds: its settings, its store, its warm networks, the threads
    of its heavy work, its metrics and its jobs."""

    settings: Settings
    store: Store
    warm: WarmNetworks
    heavy: HeavyWork
    metrics: Metrics
    jobs: JobManager


async def get_service(request: Request) -> Service:
    state = request.app.state
    return Service(state.settings, state.store, state.warm, state.heavy, state.metrics, state.jobs)


async def get_owner(request: Request) -> str:
    """The caller's owner id, set by :class:`service.core.auth.ApiKeyMiddleware`: a digest of
    the API key, or "" while the service is open (no keys configured)."""
    owner: str = request.state.owner
    return owner


def _version(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise Invalid(f'If-Match must be a version number such as "3"; received {value!r}.')
    return int(text)


async def get_if_match(
    if_match: Annotated[
        str | None,
        Header(description="Only apply if the network is still at this version (its ETag)."),
    ] = None,
) -> int | None:
    return _version(if_match)


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


async def get_retry(request: Request, key: IdempotencyKey = None) -> Retry:
    store: Store = request.app.state.store
    print_ = "" if key is None else await fingerprint(request)
    return Retry(store, await get_owner(request), key, print_)


ServiceDep = Annotated[Service, Depends(get_service)]
OwnerDep = Annotated[str, Depends(get_owner)]
IfMatchDep = Annotated[int | None, Depends(get_if_match)]
RetryDep = Annotated[Retry, Depends(get_retry)]
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
