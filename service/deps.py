"""Short typed dependencies: settings, the store, the caller, the network a path names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from service.errors import network_missing
from service.limits import check_batch
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
    return owner_of_request(request)


def owner_of_request(request: Request) -> str:
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


# A prediction on a cached network runs on the event loop when it is at most this many
# multiply-adds (a few tens of microseconds of numpy): a thread-pool hop alone costs more
# (~150 us of CPU on a 2-core machine), and would halve the request rate of such calls.
INLINE_MULTIPLY_ADDS = 50_000

T = TypeVar("T")


def runs_inline(record: NetworkRecord, examples: int) -> bool:
    """Whether ``examples`` columns through a cached network are work for the event loop."""
    return examples * record.meta.spec.parameter_count <= INLINE_MULTIPLY_ADDS


@dataclass(frozen=True)
class NetworkLoader:
    """The network a path names, loaded where the route's work runs (see :meth:`run`)."""

    network_id: str
    store: Store
    owner: str
    cache: NetworkCache
    settings: Settings

    def __call__(self) -> NetworkRecord:
        return load_network(self.network_id, self.store, self.owner, self.cache)

    async def run(self, work: Callable[[NetworkRecord], T], examples: int) -> T:
        """``work(record)`` on a batch of ``examples`` that :func:`check_batch` admits, in the
        thread pool, or right here when it is small.

        Small: the store reads at memory speed (embedded SQLite; never a server round
        trip), the network's current version is cached, and :func:`runs_inline` admits
        ``examples`` columns through it.
        """

        def checked(record: NetworkRecord) -> T:
            check_batch(record.network.spec, examples, self.settings)
            return work(record)

        if not self.store.local_reads:
            return await run_in_threadpool(lambda: checked(self()))
        try:
            record = self.cached()
        except NetworkMissing:
            raise network_missing(self.network_id) from None
        if record is None:  # deserializing the stored network is thread-pool work
            return await run_in_threadpool(lambda: checked(self._fetch()))
        if runs_inline(record, examples):
            return checked(record)
        return await run_in_threadpool(checked, record)

    def cached(self) -> NetworkRecord | None:
        """The network at its current version if the cache holds it, else None; raises
        :class:`NetworkMissing`. Only for a store that reads at memory speed (``local_reads``):
        the version query runs on the caller's thread."""
        return self.cache.get(self.network_id, self.store.get_version(self.network_id, self.owner))

    def _fetch(self) -> NetworkRecord:
        try:
            return self.cache.fetch(self.store, self.network_id, self.owner)
        except NetworkMissing:  # deleted since its metadata was read
            raise network_missing(self.network_id) from None


async def network_loader(network_id: NetworkId, request: Request) -> NetworkLoader:
    """:func:`load_network` deferred to :meth:`NetworkLoader.run`, which spares hot routes
    (a one-example prediction) the hop to the thread pool. The store, the cache, the owner
    and the settings are read here rather than as dependencies of their own: FastAPI's
    resolution of each costs about as much as a tiny prediction.
    """
    return NetworkLoader(
        network_id,
        await get_store(request),
        owner_of_request(request),
        await get_network_cache(request),
        await get_settings(request),
    )


NetworkDep = Annotated[NetworkRecord, Depends(load_network)]
NetworkLoaderDep = Annotated[NetworkLoader, Depends(network_loader)]
MetaDep = Annotated[NetworkMeta, Depends(load_meta)]
