"""What the store keeps and answers, and the one family of errors it raises.

Every error subclasses :class:`StoreError`; :mod:`service.errors` turns each into its HTTP
answer in one handler, so no route translates a store error by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from numpy.typing import NDArray

from model import Network, NetworkSpec, TrainOptions


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- errors --------------------------------------------------------------------------------


class StoreError(Exception):
    """A store-level failure that :mod:`service.errors` answers."""


class NetworkMissing(StoreError):
    """No such network (for this owner)."""

    def __init__(self, network_id: str) -> None:
        super().__init__(f"There is no network with id {network_id!r}.")
        self.network_id = network_id


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
    def __init__(self, limit: int) -> None:
        super().__init__(f"You already keep {limit} networks, the limit; delete one first.")
        self.limit = limit


class QuotaExceeded(StoreError):
    """The change would take the owner's stored bytes past the quota."""

    def __init__(self, needed: int, quota: int) -> None:
        super().__init__(
            f"This change would bring your stored data to {needed} bytes; the quota of an API "
            f"key is {quota} bytes. Delete networks you no longer need, then retry."
        )
        self.needed, self.quota = needed, quota


class JobMissing(StoreError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"There is no job with id {job_id!r}.")
        self.job_id = job_id


class JobActive(StoreError):
    """The job is queued or running, so its record cannot be removed."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"Job {job_id} is still queued or running: cancel it first "
            f"(POST /jobs/{job_id}/cancel), then delete it."
        )
        self.job_id = job_id


class JobEnded(StoreError):
    """A job's checkpoint came from an attempt that no longer holds the job (it ended, or
    another worker took it over): that attempt may not write any more."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"training job {job_id} is no longer this attempt's; its write is refused")
        self.job_id = job_id


class IdempotencyMismatch(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(
            f"The Idempotency-Key {key!r} was already used with a different request body (or "
            "route); use a new key for a new request."
        )


class IdempotencyKeyTaken(StoreError):
    """Another request with this Idempotency-Key committed first: replay its answer."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (or did not answer in time). ``applied`` says what is
    known of the change: False, not applied; None, unknown (the connection broke during its
    commit)."""

    def __init__(self, reason: str, *, applied: bool | None = False) -> None:
        super().__init__(reason)
        self.reason, self.applied = reason, applied


class StoreFull(StoreError):
    """The database is out of space; the change was not applied."""


class WouldWait(Exception):
    """Raised, with nothing changed, by work told not to wait (``wait=False``) when it would
    have to: for a lock another writer holds, or for I/O longer than a commit's. Whoever asked
    runs the work again where waiting is allowed."""


# ---- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkMeta:
    """Everything of a network but its parameters."""

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
    """dW and db (flat, in the layout of the parameters) of a network's last training step."""

    version: int
    step: int
    cost: float
    grad: NDArray[Any]


@dataclass(frozen=True)
class StoredResponse:
    """An answer kept with its Idempotency-Key, to replay."""

    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Idempotency:
    """Keep the answer of this change under (owner, key): ``respond`` makes it from the
    committed record, inside the change's transaction."""

    owner: str
    key: str
    fingerprint: str
    respond: Callable[[Any], StoredResponse]


@dataclass(frozen=True)
class JobCheckpoint:
    """A job's progress committed with its network: its first ``step`` steps are in."""

    job_id: str
    attempt: int
    step: int
    cost: float | None


@dataclass(frozen=True)
class Update:
    """One committed change: the new network state, the history rows it adds, and for
    training the gradients of its last step (and the job whose checkpoint this is)."""

    network: Network
    history: Sequence[tuple[int, float]] = ()
    gradients: LastGradients | None = None
    job: JobCheckpoint | None = None
    idempotency: Idempotency | None = None


JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("queued", "running")
FINAL_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, eq=False)
class JobRequest:
    """What a job runs: the batch X (n_x, m) and Y (n_L, m) in the network's dtype, and its
    options, with the shuffle seed fixed (so a resumed job shuffles as the first attempt)."""

    X: NDArray[Any]
    Y: NDArray[Any]
    options: TrainOptions


@dataclass(frozen=True)
class JobRecord:
    """A training job as stored. ``step`` counts this job's completed updates as of its last
    report, ``checkpoint_step`` those committed with the network; ``attempt`` numbers the
    claims (a resumed job's next attempt fences off its previous one)."""

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
    restarts: int = 0
    attempt: int = 0
    checkpoint_step: int = 0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, eq=False)
class Claim:
    """A job claimed for one attempt: the job as claimed (its attempt, restarts and
    checkpoint_step, where it resumes) and what it runs."""

    job: JobRecord
    request: JobRequest
