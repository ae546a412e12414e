"""The store interface: what the routes need from persistence, whatever the backend.

A network is kept as its serialized bytes (``model.serialize``) beside the few columns
listings need. Every change of parameters goes through :meth:`Store.commit_update`, one
transaction that checks the version it started from: that check, not an in-process lock,
is what keeps concurrent writers (threads, worker processes, replicas) from losing updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from model import Network, NetworkSpec


class StoreError(Exception):
    """A store-level failure the routes translate to an HTTP answer."""


class NetworkMissing(StoreError):
    """No such network (for this owner)."""


class VersionConflict(StoreError):
    """The network changed since it was read."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the network is at version {current}")
        self.current = current


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class NetworkMeta:
    """What a listing shows: everything but the parameters."""

    id: str
    owner: str
    name: str | None
    spec: NetworkSpec
    version: int
    steps_trained: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class NetworkRecord:
    meta: NetworkMeta
    network: Network


@dataclass(frozen=True)
class LastGradients:
    """dW and db of a network's last training step, as that step computed them."""

    version: int
    step: int
    cost: float
    dW: list[Any]
    db: list[Any]


@dataclass(frozen=True)
class Update:
    """One committed change: the new network, the history rows it adds, and, for training,
    the gradients of its last step."""

    network: Network
    history: Sequence[tuple[int, float]] = ()
    gradients: LastGradients | None = None


class Store(Protocol):
    def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    def create_network(
        self, network_id: str, owner: str, name: str | None, network: Network
    ) -> NetworkRecord: ...

    def get_network(self, network_id: str, owner: str) -> NetworkRecord:
        """Raise :class:`NetworkMissing`."""

    def get_meta(self, network_id: str, owner: str) -> NetworkMeta:
        """Raise :class:`NetworkMissing`."""

    def list_networks(self, owner: str) -> list[NetworkMeta]: ...

    def count_networks(self, owner: str | None = None) -> int:
        """How many networks ``owner`` has (all owners' with None)."""

    def delete_network(self, network_id: str, owner: str) -> None:
        """Raise :class:`NetworkMissing`."""

    def commit_update(
        self, network_id: str, owner: str, expected_version: int, update: Update
    ) -> NetworkRecord:
        """Apply ``update`` if the network is still at ``expected_version``, in one
        transaction; raise :class:`VersionConflict` or :class:`NetworkMissing` otherwise."""

    def history(self, network_id: str) -> list[tuple[int, float]]: ...

    def last_gradients(self, network_id: str) -> LastGradients | None: ...

    def close(self) -> None: ...
