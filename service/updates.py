"""Read, compute, commit: how every change of a network's parameters happens.

Within a process a per-network lock keeps concurrent requests from computing on the same
version only to throw the work away; across processes the store's version check catches the
rest, and the computation is redone on the newer version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from model import TrainResult
from service.errors import Conflict, network_busy, network_missing
from service.store import (
    LastGradients,
    NetworkBusy,
    NetworkMissing,
    NetworkRecord,
    Store,
    Update,
    VersionConflict,
)

T = TypeVar("T")
MAX_ATTEMPTS = 50


class NetworkLocks:
    """One lock per network id, created on demand."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, network_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(network_id, threading.Lock())


def update_network(
    store: Store,
    locks: NetworkLocks,
    network_id: str,
    owner: str,
    compute: Callable[[NetworkRecord], tuple[Update, T]],
    *,
    if_match: int | None = None,
) -> tuple[NetworkRecord, T]:
    """Run ``compute`` on the current record and commit its :class:`Update`.

    With ``if_match`` the caller asked for one version: a different one is a 409, not a retry.
    While a training job holds the network it is a 409 naming the job: checked before the
    work (to spare it) and, what decides, by the store in the commit's transaction.
    """
    with locks(network_id):
        for _ in range(MAX_ATTEMPTS):
            try:
                record = store.get_network(network_id, owner)
            except NetworkMissing:
                raise network_missing(network_id) from None
            if if_match is not None and record.meta.version != if_match:
                raise _stale(if_match, record.meta.version)
            holder = store.active_job(network_id)
            if holder is not None:
                raise network_busy(holder)
            update, outcome = compute(record)
            try:
                return store.commit_update(network_id, owner, record.meta.version, update), outcome
            except NetworkMissing:
                raise network_missing(network_id) from None
            except NetworkBusy as busy:
                raise network_busy(busy.job_id) from None
            except VersionConflict as conflict:
                if if_match is not None:
                    raise _stale(if_match, conflict.current) from None
    raise Conflict(
        "The network is being changed by other callers faster than this request could "
        "commit; try again."
    )


def _stale(asked: int, current: int) -> Conflict:
    return Conflict(
        f"If-Match names version {asked} but the network is at version {current}; "
        "fetch it again and retry."
    )


def training_update(
    result: TrainResult, version: int, *, since: int = 0, job_id: str | None = None
) -> Update:
    """What training commits onto ``version``: the trained network, the history of its steps
    after the first ``since`` (those a job's earlier checkpoints committed), and the
    gradients of its last step."""
    gradients = None
    if result.last_gradients is not None and result.last_step is not None:
        gradients = LastGradients(
            version=version + 1,
            step=result.last_step.step,
            cost=result.last_step.cost,
            dW=result.last_gradients.dW,
            db=result.last_gradients.db,
        )
    return Update(
        result.network,
        history=[(s.step, s.cost) for s in result.costs[since:]],
        gradients=gradients,
        job_id=job_id,
    )
