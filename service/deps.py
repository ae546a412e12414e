"""Typed dependency aliases, the one place they are defined: the settings, the store, the
caller, the warm networks, the jobs, heavy work, and what a path or a header names.

They only read what the application holds, so they are ``async def`` (a plain ``def``
dependency would cost a thread-pool hop, more than the lookup). Tests swap any of them with
``app.dependency_overrides``.
"""

from __future__ import annotations

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


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_owner(request: Request) -> str:
    """The caller's owner id, set by :class:`service.core.auth.ApiKeyMiddleware`: a digest of
    the API key, or "" while the service is open (no keys configured)."""
    owner: str = request.state.owner
    return owner


async def get_warm(request: Request) -> WarmNetworks:
    warm: WarmNetworks = request.app.state.warm
    return warm


async def get_heavy(request: Request) -> HeavyWork:
    heavy: HeavyWork = request.app.state.heavy
    return heavy


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_jobs(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


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


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
OwnerDep = Annotated[str, Depends(get_owner)]
WarmDep = Annotated[WarmNetworks, Depends(get_warm)]
HeavyDep = Annotated[HeavyWork, Depends(get_heavy)]
JobsDep = Annotated["JobManager", Depends(get_jobs)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
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
