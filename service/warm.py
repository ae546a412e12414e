"""Warm networks: networks kept live in memory between calls, as model servers keep models
loaded, so a call to a warm network neither deserializes nor allocates what it can reuse.

A :class:`Warm` entry holds a network at one version: its metadata, its published state (which
readers share and nobody writes), the step buffers and spare states its training reuses, and
a lock its writers take turns on. Every read first asks the store for the network's version
(one indexed read), so a process never serves a version another process or replica has
replaced; a stale or missing entry is loaded again. A change skips that read (its commit
checks the version it computed from, and a stale entry's change is redone on the store's).
The store stays the truth: a change is published here only once the store has committed it
(:meth:`WarmNetworks.change`, the one path by which parameters change), and a failed or
diverged call publishes nothing.

Readers hold the state they read (:meth:`WarmNetworks.reading`), so a spare state is reused
for writing only once no reader holds it. Entries are evicted least recently used past a
memory budget, and at once when their network is deleted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from model import Network, Workspace
from service.core.errors import Conflict
from service.store import (
    NetworkMeta,
    NetworkMissing,
    NetworkRecord,
    Store,
    Update,
    VersionConflict,
    WouldWait,
)

T = TypeVar("T")
MAX_ATTEMPTS = 50
# Work small enough for the event loop: tens of microseconds of numpy, plus about 30 µs of
# Python per training step.
INLINE_MULTIPLY_ADDS = 50_000
INLINE_STEPS = 4
SPARES = 2  # a training call writes into two states at most (its steps alternate)


@dataclass(eq=False)
class Warm:
    meta: NetworkMeta
    network: Network
    lock: threading.Lock = field(default_factory=threading.Lock)
    workspace: Workspace | None = None
    spares: list[Network] = field(default_factory=list)
    readers: dict[int, int] = field(default_factory=dict)  # id(state) -> readers holding it

    @property
    def record(self) -> NetworkRecord:
        return NetworkRecord(self.meta, self.network)

    @property
    def nbytes(self) -> int:
        states = [self.network, *self.spares]
        held = sum(s.theta.nbytes + s.moments.nbytes for s in states)
        return held + (0 if self.workspace is None else self.workspace.nbytes)


@dataclass(eq=False)
class Scratch:
    """What a change may write into instead of allocating: the network's step buffers and
    the spare states no reader holds. ``left`` takes the states a change wrote and did not
    keep (a training call's other buffer), to be spares of the next."""

    workspace: Workspace
    spares: tuple[Network, ...]
    left: list[Network] = field(default_factory=list)


class WarmNetworks:
    def __init__(self, store: Store, budget_bytes: int) -> None:
        self.store = store
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, Warm] = OrderedDict()
        self._guard = threading.Lock()
        self.loads = 0  # networks read from the store (a cold call)

    def __len__(self) -> int:
        return len(self._entries)

    def _current(self, network_id: str, owner: str, version: int | None = None) -> Warm:
        """The entry at the store's current version (``version``, if the caller read it). A
        network deleted elsewhere (another process or replica) leaves here at the first call
        that finds it gone."""
        if version is None:
            try:
                version = self.store.get_version(network_id, owner)
            except NetworkMissing:
                self.evict(network_id)
                raise
        with self._guard:
            warm = self._entries.get(network_id)
            if warm is not None and warm.meta.version == version and warm.meta.owner == owner:
                self._entries.move_to_end(network_id)
                return warm
        self.loads += 1
        return self._install(self.store.get_network(network_id, owner))

    def _install(self, record: NetworkRecord) -> Warm:
        network_id = record.meta.id
        with self._guard:
            warm = self._entries.get(network_id)
            if warm is not None and warm.meta.owner == record.meta.owner:
                if warm.meta.version >= record.meta.version:
                    return warm  # another thread got a newer one in first
                self._publish(warm, record, [])
            else:
                warm = self._entries[network_id] = Warm(record.meta, record.network)
            self._entries.move_to_end(network_id)
            self._evict_over_budget()
        return warm

    def _publish(self, warm: Warm, record: NetworkRecord, spares: list[Network]) -> None:
        """Make ``record`` current (the guard held); what it replaces may become a spare."""
        pool = [*warm.spares, *spares, warm.network]
        warm.meta, warm.network = record.meta, record.network
        kept: list[Network] = []
        for state in pool:
            if state is not warm.network and all(state is not k for k in kept):
                kept.append(state)
        warm.spares = kept[-SPARES:]

    def _evict_over_budget(self) -> None:
        total = sum(w.nbytes for w in self._entries.values())
        while total > self.budget_bytes and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            total -= evicted.nbytes

    def small(self, network_id: str, owner: str, examples: int, steps: int = 0) -> bool:
        """Whether a forward pass over ``examples`` and ``steps`` training steps on the network
        are small enough for the event loop (see :mod:`service.core.capacity`): the network
        warm (of any version: no store is asked), the store embedded (its reads are local),
        at most :data:`INLINE_STEPS` steps and :data:`INLINE_MULTIPLY_ADDS` multiply-adds (a
        pass costs examples x parameters, a step three)."""
        warm = self._entries.get(network_id)
        if warm is None or warm.meta.owner != owner or not self.store.local_reads:
            return False
        work = examples * warm.meta.spec.parameter_count * (1 + 3 * steps)
        return steps <= INLINE_STEPS and work <= INLINE_MULTIPLY_ADDS

    def evict(self, network_id: str) -> None:
        with self._guard:
            self._entries.pop(network_id, None)

    @contextmanager
    def reading(
        self, network_id: str, owner: str, version: int | None = None
    ) -> Iterator[NetworkRecord]:
        """The network at its current version, held for reading until the block ends."""
        warm = self._current(network_id, owner, version)
        with self._guard:
            meta, network = warm.meta, warm.network
            warm.readers[id(network)] = warm.readers.get(id(network), 0) + 1
        try:
            yield NetworkRecord(meta, network)
        finally:
            with self._guard:
                left = warm.readers[id(network)] - 1
                if left:
                    warm.readers[id(network)] = left
                else:
                    del warm.readers[id(network)]

    def publish(self, record: NetworkRecord) -> None:
        """Make a state that the store has committed current here (a job's checkpoint: a
        copy, since the job keeps writing its own)."""
        self._install(record)

    def change(
        self,
        network_id: str,
        owner: str,
        compute: Callable[[NetworkRecord, Scratch], tuple[Update, T]],
        *,
        if_match: int | None = None,
        wait: bool = True,
    ) -> tuple[NetworkRecord, T]:
        """Run ``compute`` on the current record and commit its :class:`Update`; publish it.

        Writers in this process take turns on the network's lock; in other processes the
        store's version check catches them, and the work is redone on the newer version. With
        ``if_match`` the caller asked for one version: another is a 409, not a retry.
        ``wait=False``: :class:`WouldWait`, with nothing changed, where it would wait for the
        network's lock or the store's.
        """
        for attempt in range(MAX_ATTEMPTS):
            warm = self._entries.get(network_id)  # trusted at first: the commit checks it
            if attempt or if_match is not None or warm is None or warm.meta.owner != owner:
                warm = self._current(network_id, owner)
            if not warm.lock.acquire(blocking=wait):
                raise WouldWait
            try:
                with self._guard:
                    if self._entries.get(network_id) is not warm:
                        continue  # replaced meanwhile (a newer version): start again
                    if warm.workspace is None:
                        warm.workspace = Workspace(warm.meta.spec)
                    free = tuple(s for s in warm.spares if id(s) not in warm.readers)
                    start = warm.record  # what this change computes from, and commits onto
                if if_match is not None and start.meta.version != if_match:
                    raise stale(if_match, start.meta.version)
                scratch = Scratch(warm.workspace, free)
                update, outcome = compute(start, scratch)
                try:
                    record = self.store.commit_update(
                        network_id, owner, start.meta.version, update, wait=wait
                    )
                except VersionConflict as conflict:
                    if if_match is not None:
                        raise stale(if_match, conflict.current) from None
                    self.evict(network_id)
                    continue
                except NetworkMissing:  # deleted elsewhere
                    self.evict(network_id)
                    raise
                with self._guard:
                    unused = [s for s in [*free, *scratch.left] if s is not record.network]
                    self._publish(warm, record, unused)
                return record, outcome
            finally:
                warm.lock.release()
        raise Conflict(
            "The network is being changed by other callers faster than this request could commit; "
            "try again."
        )


def stale(asked: int, current: int) -> Conflict:
    return Conflict(
        f"If-Match names version {asked} but the network is at version {current}; fetch it "
        "again and retry."
    )
