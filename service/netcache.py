"""Deserialized networks kept in memory by (id, version), so that a hot read (a prediction,
an evaluation, an inspection) costs one query of the version instead of rebuilding the
network from its stored bytes every time (``model.from_bytes`` validates every array).

A version names one immutable state of a network (its parameters and its metadata), so an
entry can never be stale: a changed network has a new version and misses. The owner check
stays with the store (the version query runs first, for every read). Cached networks are
shared between requests and must not be mutated; nothing in the service mutates a loaded
network (the Trainer and every update work on copies).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from fastapi import Request

from model import Network
from service.store import NetworkRecord, Store

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024


def network_bytes(network: Network) -> int:
    arrays = [*network.W, *network.b, *(a for v in network.optimizer_state.values() for a in v)]
    return sum(a.nbytes for a in arrays)


class NetworkCache:
    """A least-recently-used map (id, version) -> NetworkRecord, bounded by parameter bytes.

    ``hits`` counts lookups answered from memory, ``misses`` the networks read from the store
    (:meth:`fetch`): a lookup that finds nothing and leads to no read is not a miss.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, int], tuple[NetworkRecord, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, network_id: str, version: int) -> NetworkRecord | None:
        """The cached record at ``version``, or None."""
        with self._lock:
            entry = self._entries.get((network_id, version))
            if entry is None:
                return None
            self._entries.move_to_end((network_id, version))
            self.hits += 1
            return entry[0]

    def load(self, store: Store, network_id: str, owner: str) -> NetworkRecord:
        """The network as ``store.get_network`` returns it (raising what it raises)."""
        record = self.get(network_id, store.get_version(network_id, owner))
        return record if record is not None else self.fetch(store, network_id, owner)

    def fetch(self, store: Store, network_id: str, owner: str) -> NetworkRecord:
        """Read the network from the store and keep it (a miss)."""
        with self._lock:
            self.misses += 1
        record = store.get_network(network_id, owner)
        self.put(record)
        return record

    def put(self, record: NetworkRecord) -> None:
        network_id, network = record.meta.id, record.network
        size = network_bytes(network)
        if size > self.budget_bytes:
            return
        # Shared from now on: a stray in-place write would fail loudly instead of changing
        # what other requests see.
        for array in [
            *network.W,
            *network.b,
            *(a for v in network.optimizer_state.values() for a in v),
        ]:
            array.flags.writeable = False
        with self._lock:
            for key in [k for k in self._entries if k[0] == network_id]:  # older versions
                self._bytes -= self._entries.pop(key)[1]
            self._entries[(network_id, record.meta.version)] = (record, size)
            self._bytes += size
            while self._bytes > self.budget_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted


async def get_network_cache(request: Request) -> NetworkCache:
    """The application's cache, made on first use (async: no thread-pool hop for a lookup)."""
    cache: NetworkCache | None = getattr(request.app.state, "network_cache", None)
    if cache is None:
        cache = request.app.state.network_cache = NetworkCache()
    return cache
