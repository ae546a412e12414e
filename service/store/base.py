"""The store interface: what the routes need from persistence, whatever the backend.

A network is kept as its serialized bytes (``model.serialize``) beside the few columns
listings need. Every change of parameters goes through :meth:`Store.commit_update`, one
transaction that checks the version it started from: that check, not an in-process lock,
is what keeps concurrent writers (threads, worker processes, replicas) from losing updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from numpy.typing import NDArray

from model import Network, NetworkSpec, TrainOptions


class StoreError(Exception):
    """A store-level failure the routes translate to an HTTP answer."""


class NetworkMissing(StoreError):
    """No such network (for this owner)."""


class VersionConflict(StoreError):
    """The network changed since it was read."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the network is at version {current}")
        self.current = current


class NetworkBusy(StoreError):
    """A queued or running training job holds the network; only that job may change it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"training job {job_id} holds the network")
        self.job_id = job_id


class NetworkLimitReached(StoreError):
    """The owner already keeps as many networks as the limit allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the owner already keeps {limit} networks, the limit")
        self.limit = limit


class JobMissing(StoreError):
    """No such job (for this owner)."""


class JobEnded(StoreError):
    """A job's checkpoint came after the job ended (another process failed it once its
    runner's lease ran out, say): the job may not write any more."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"training job {job_id} has ended; its checkpoint is refused")
        self.job_id = job_id


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
    job_id: str | None = None  # a job's checkpoint: allowed while that job holds the network


JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("queued", "running")
FINAL_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, eq=False)
class JobRequest:
    """What a training job runs: the batch ``X`` (n_x, m), ``Y`` (n_L, m) and its options."""

    X: NDArray[Any]
    Y: NDArray[Any]
    options: TrainOptions


@dataclass(frozen=True)
class JobRecord:
    """A training job as stored. ``step`` counts this job's completed updates (0 to
    ``total_steps``) as of its last report; ``cost`` is the last reported step's cost and
    ``final_cost`` the whole batch's after the last update (succeeded jobs only). ``runner``
    names the process that holds the job while it is active."""

    id: str
    network_id: str
    owner: str
    status: JobStatus
    step: int
    total_steps: int
    cost: float | None
    final_cost: float | None
    error: str | None
    cancel_requested: bool
    runner: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def check_commit(
    meta: NetworkMeta, holder: str | None, update: Update, expected_version: int
) -> int:
    """What every backend's :meth:`Store.commit_update` checks once it holds the network's
    row: the network is not held by another job, a job's own update comes from a job that
    still holds it, and nobody committed since ``expected_version``. Return the new version."""
    if holder is not None and holder != update.job_id:
        raise NetworkBusy(holder)
    if update.job_id is not None and holder is None:
        raise JobEnded(update.job_id)  # a runner that lost its lease writes nothing
    if meta.version != expected_version:
        raise VersionConflict(meta.version)
    return meta.version + 1


def committed(meta: NetworkMeta, update: Update, version: int, now: str) -> NetworkRecord:
    """The record :meth:`Store.commit_update` answers once ``update`` is in."""
    new_meta = replace(
        meta, version=version, steps_trained=update.network.steps_trained, updated_at=now
    )
    return NetworkRecord(meta=new_meta, network=update.network)


class Store(Protocol):
    local_reads: bool
    """Whether a point read (:meth:`get_meta`) is a local, memory-speed lookup, short enough
    for the event loop (embedded SQLite in WAL mode, where readers never wait for writers),
    rather than a round trip to a server."""

    def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    def create_network(
        self,
        network_id: str,
        owner: str,
        name: str | None,
        network: Network,
        *,
        limit: int | None = None,
    ) -> NetworkRecord:
        """Raise :class:`NetworkLimitReached` if ``owner`` already keeps ``limit``
        networks: counted in the insert's transaction, so concurrent creates in any number
        of processes cannot exceed it."""

    def get_network(self, network_id: str, owner: str) -> NetworkRecord:
        """Raise :class:`NetworkMissing`."""

    def get_meta(self, network_id: str, owner: str) -> NetworkMeta:
        """Raise :class:`NetworkMissing`."""

    def get_version(self, network_id: str, owner: str) -> int:
        """The network's current version (which fixes its metadata and its parameters):
        the cheapest read that tells whether a cached copy is current. Raise
        :class:`NetworkMissing`."""

    def list_networks(self, owner: str) -> list[NetworkMeta]: ...

    def count_networks(self, owner: str | None = None) -> int:
        """How many networks ``owner`` has (all owners' with None)."""

    def count_jobs(self) -> dict[str, int]:
        """How many jobs there are in each status (all owners'; statuses with none omitted)."""

    def delete_network(self, network_id: str, owner: str) -> None:
        """Raise :class:`NetworkMissing`."""

    def commit_update(
        self, network_id: str, owner: str, expected_version: int, update: Update
    ) -> NetworkRecord:
        """Apply ``update`` if the network is still at ``expected_version``, in one
        transaction; raise :class:`VersionConflict` or :class:`NetworkMissing` otherwise,
        and :class:`NetworkBusy` if an active job other than ``update.job_id`` holds it.
        A checkpoint of job ``update.job_id`` needs that job to hold the network still:
        once it has ended, :class:`JobEnded` (its runner lost its lease, say)."""

    def history(self, network_id: str) -> list[tuple[int, float]]: ...

    def last_gradients(self, network_id: str) -> LastGradients | None: ...

    # ---- training jobs ------------------------------------------------------------------
    # A job is created ``queued`` by the process that will run it (its ``runner``), claimed
    # (``running``), reports progress, and ends ``succeeded``, ``failed`` or ``cancelled``.
    # While it is queued or running it holds its network: nothing else may commit to it.
    # Runners prove they are alive with a lease their heartbeat renews (SQLite also holds a
    # file lock, which a dead process loses at once), so a process that dies leaves jobs any
    # other one can fail.

    def create_job(
        self,
        job_id: str,
        network_id: str,
        owner: str,
        request: JobRequest,
        total_steps: int,
        runner: str,
    ) -> JobRecord:
        """Insert a ``queued`` job held by ``runner``, in the transaction that checks that no
        other job is active on the network. Raise :class:`NetworkMissing` or
        :class:`NetworkBusy` (naming the active job)."""

    def get_job(self, job_id: str, owner: str) -> JobRecord:
        """Raise :class:`JobMissing`."""

    def list_jobs(self, network_id: str, owner: str) -> list[JobRecord]:
        """The network's jobs, oldest first."""

    def active_job(self, network_id: str) -> str | None:
        """The id of the job that holds the network, if any."""

    def claim_job(self, job_id: str, runner: str) -> JobRequest | None:
        """Move the job from ``queued`` to ``running`` for ``runner`` (setting
        ``started_at``) and return what it runs; None if it is no longer queued (cancelled,
        failed, deleted with its network), so exactly one claimer wins."""

    def record_progress(self, job_id: str, step: int, cost: float | None) -> bool:
        """Store a running job's progress. Return whether it should go on: False once a
        cancellation was requested or the job is no longer running (or no longer exists)."""

    def request_cancel(self, job_id: str, owner: str) -> JobRecord:
        """Cancel a job: a queued one ends ``cancelled`` at once; a running one gets
        ``cancel_requested``, which its runner sees through :meth:`record_progress`; a
        finished one is left as it is. Return the job; raise :class:`JobMissing`."""

    def finish_job(
        self,
        job_id: str,
        status: JobStatus,
        *,
        step: int,
        cost: float | None,
        final_cost: float | None = None,
        error: str | None = None,
    ) -> JobRecord | None:
        """End an active job with a final ``status``; a job already finished keeps its end.
        Return the job as stored, None if it no longer exists."""

    def register_runner(self, runner: str, lease_seconds: float = 10.0) -> None:
        """Take or renew ``runner``'s lease for ``lease_seconds``: its jobs are not orphans
        while the lease lasts and its process lives. Call again (a heartbeat) to renew."""

    def release_runner(self, runner: str) -> None: ...

    def fail_orphaned_jobs(self, error: str) -> list[str]:
        """Mark ``failed`` (with ``error``) every active job whose runner's lease ran out, was
        released or never was, or whose process is gone; return their ids. Called at start-up
        and by every heartbeat."""

    def close(self) -> None: ...
