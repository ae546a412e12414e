"""Short typed dependencies: settings, the store, the caller, the network a path names."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request

from service.errors import network_missing
from service.matrices import Encoding
from service.netcache import NetworkCache, get_network_cache
from service.observability import Metrics
from service.settings import Settings
from service.store import NetworkMeta, NetworkMissing, NetworkRecord, Store
from service.updates import NetworkLocks

# These dependencies only read attributes, so they are ``async def``: FastAPI runs a plain
# ``def`` dependency in the thread pool, and each such hop costs more than the lookup.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_locks(request: Request) -> NetworkLocks:
    locks: NetworkLocks = request.app.state.locks
    return locks


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_owner(request: Request) -> str:
    """The caller's owner id, set by :class:`service.auth.ApiKeyMiddleware`: a digest of the
    API key, or "" while the service is open (no keys configured)."""
    owner: str = getattr(request.state, "owner", "")
    return owner


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
LocksDep = Annotated[NetworkLocks, Depends(get_locks)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
OwnerDep = Annotated[str, Depends(get_owner)]
NetworkId = Annotated[
    str, Path(description="The id POST /networks answered.", min_length=1, max_length=64)
]
EncodingDep = Annotated[
    Encoding,
    Query(description="json: nested lists; base64: {shape, dtype, base64} in the network's dtype"),
]
IfMatch = Annotated[
    str | None,
    Header(description="Only apply if the network is still at this version (its ETag)."),
]


CacheDep = Annotated[NetworkCache, Depends(get_network_cache)]


def load_network(
    network_id: NetworkId, store: StoreDep, owner: OwnerDep, cache: CacheDep
) -> NetworkRecord:
    try:
        return cache.load(store, network_id, owner)
    except NetworkMissing:
        raise network_missing(network_id) from None


def load_meta(network_id: NetworkId, store: StoreDep, owner: OwnerDep) -> NetworkMeta:
    try:
        return store.get_meta(network_id, owner)
    except NetworkMissing:
        raise network_missing(network_id) from None


NetworkLoader = Callable[[], NetworkRecord]


async def network_loader(
    network_id: NetworkId, store: StoreDep, owner: OwnerDep, cache: CacheDep
) -> NetworkLoader:
    """:func:`load_network` deferred: the route calls it in its own thread-pool turn, which
    spares hot routes (a one-example prediction) a second hop to the thread pool."""
    return partial(load_network, network_id, store, owner, cache)


NetworkDep = Annotated[NetworkRecord, Depends(load_network)]
NetworkLoaderDep = Annotated[NetworkLoader, Depends(network_loader)]
MetaDep = Annotated[NetworkMeta, Depends(load_meta)]
