"""Training jobs: long runs in worker threads, with live progress, cancellation and checkpoints.

A :class:`JobManager` belongs to one application (one process). ``submit`` stores the job
``queued`` (the store refuses a second active job on a network) and puts it on a queue that
``max_concurrent_jobs`` worker threads take from. A worker claims the job, steps a
:class:`model.Trainer`, keeps its progress in memory (what this process's readers see, step by
step), reports it to the store twice a second (what other processes see; the answer tells it
whether someone asked to cancel), and commits a checkpoint (parameters, optimizer state,
history, last gradients: one :meth:`Store.commit_update`, version + 1) every
``checkpoint_seconds`` and at the end.

However a job ends, the network keeps the parameters of its last completed step:
cancellation and shutdown commit them; divergence commits the last finite ones; a crash
leaves the last checkpoint. The manager's heartbeat renews its runner's lease every quarter
of ``job_lease_seconds`` and fails the jobs of runners whose lease ran out (or, with SQLite,
whose process is gone: at once, from the first heartbeat at start-up).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from model import ModelError, Trainer, TrainingDiverged, TrainResult
from service.settings import Settings
from service.store import (
    JobEnded,
    JobMissing,
    JobRecord,
    JobRequest,
    JobStatus,
    NetworkMissing,
    Store,
)
from service.store.base import utc_now
from service.updates import training_update

log = logging.getLogger(__name__)

REPORT_SECONDS = 0.5  # progress to the store, and how soon a cancel from elsewhere is seen
ORPHANED = (
    "The service process running this job stopped (it crashed, was killed or hung) while the "
    "job was queued or running. "
    "The network keeps the parameters of its last checkpoint (see its steps_trained); "
    "start a new job to continue from there."
)
StopReason = Literal["cancel", "shutdown", "lost"]  # lost: no longer this runner's to run


@dataclass(eq=False)
class LiveJob:
    """What this process knows of a job it holds, fresher than the store."""

    record: JobRecord  # as created, then as claimed
    progress: tuple[int, float | None] = (0, None)  # (steps done, last step's cost)
    started: float | None = None  # time.monotonic() at the claim
    stop_reason: StopReason | None = None
    final: JobRecord | None = None  # set once the job has ended
    done: threading.Event = field(default_factory=threading.Event)

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def job_resource(job: JobRecord, live: LiveJob | None = None) -> dict[str, Any]:
    """The job resource of API.md (plus ``final_cost``, ``elapsed_s`` and ``eta_s``, the
    same number as ``eta_seconds``). A live job's progress overlays the stored one."""
    step, cost = job.step, job.cost
    elapsed: float | None = None
    if live is not None and live.final is None and live.started is not None:
        step, cost = live.progress
        elapsed = time.monotonic() - live.started
    elif job.started_at is not None:
        elapsed = max(0.0, _seconds_between(job.started_at, job.finished_at or utc_now()))
    eta = None
    if job.status == "running" and elapsed is not None and step > 0:
        eta = elapsed / step * (job.total_steps - step)
    return {
        "id": job.id,
        "network_id": job.network_id,
        "status": job.status,
        "step": step,
        "total_steps": job.total_steps,
        "cost": cost,
        "final_cost": job.final_cost,
        "elapsed_s": elapsed,
        "eta_seconds": eta,
        "eta_s": eta,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
    }


def progress_data(resource: dict[str, Any]) -> dict[str, Any]:
    """The body of a ``progress`` event."""
    keys = ("step", "total_steps", "cost", "elapsed_s", "eta_s")
    return {key: resource[key] for key in keys}


class JobManager:
    """Runs this process's training jobs. Thread-safe; :meth:`start` is idempotent and
    :meth:`submit` starts the manager if the lifespan has not (in-process tests)."""

    def __init__(
        self,
        settings: Settings,
        store: Callable[[], Store],
        on_steps: Callable[[int], None] = lambda steps: None,
    ) -> None:
        self._settings = settings
        self._get_store = store
        self._on_steps = on_steps  # told how many steps each checkpoint committed
        self._guard = threading.Lock()
        self._live: dict[str, LiveJob] = {}
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._started = self._stopping = False
        self._halt = threading.Event()  # stops the heartbeat
        self._beater: threading.Thread | None = None
        self.runner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"

    @property
    def store(self) -> Store:
        return self._get_store()

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Take this runner's lease, fail the jobs dead processes left behind, and start the
        workers and the heartbeat."""
        with self._guard:
            if self._started:
                return
            if self._stopping:
                raise RuntimeError("the job manager has been stopped")
            self._beat()
            for number in range(self._settings.max_concurrent_jobs):
                thread = threading.Thread(
                    target=self._work, name=f"job-worker-{number}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            self._beater = threading.Thread(
                target=self._heartbeat, name="job-heartbeat", daemon=True
            )
            self._beater.start()
            self._started = True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every job this process holds: running ones commit their last step and end
        ``failed`` with an error that says so; queued ones end ``failed`` unstarted."""
        with self._guard:
            if not self._started or self._stopping:
                self._stopping = True
                return
            self._stopping = True
            live_jobs = list(self._live.values())
        self._halt.set()
        for live in live_jobs:
            live.stop("shutdown")
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in [*self._threads, *filter(None, [self._beater])]:
            thread.join(max(0.0, deadline - time.monotonic()))
        # Jobs still queued behind the workers' last item never started.
        for live in live_jobs:
            if not live.done.is_set() and live.started is None:
                self._end_unstarted(live)
        self.store.release_runner(self.runner)

    # ---- requests ------------------------------------------------------------------------

    def submit(
        self, job_id: str, network_id: str, owner: str, request: JobRequest, total_steps: int
    ) -> JobRecord:
        """Store the job (raising NetworkMissing or NetworkBusy) and queue it."""
        self.start()
        if self._stopping:
            raise RuntimeError("the service is shutting down")
        job = self.store.create_job(job_id, network_id, owner, request, total_steps, self.runner)
        with self._guard:
            self._live[job_id] = LiveJob(job)
        self._queue.put(job_id)
        return job

    def local(self, job_id: str) -> LiveJob | None:
        """The live state of a job this process holds, if it does."""
        return self._live.get(job_id)

    def resource(self, job_id: str, owner: str) -> dict[str, Any]:
        """The job resource; raises JobMissing (unknown, or another owner's)."""
        job = self.store.get_job(job_id, owner)
        return job_resource(job, self.local(job_id))

    def cancel(self, job_id: str, owner: str, wait: float = 1.0) -> dict[str, Any]:
        """Ask the job to stop; wait up to ``wait`` seconds for it to end (whichever process
        runs it), and return its resource. A finished job is answered as it is."""
        job = self.store.request_cancel(job_id, owner)
        live = self.local(job_id)
        if live is not None:
            live.stop("cancel")
            if job.active:
                live.done.wait(wait)
            elif live.final is None:
                live.final = job
        elif job.active:  # another process runs it and sees the request at its next report
            deadline = time.monotonic() + wait
            while job.active and time.monotonic() < deadline:
                time.sleep(0.05)
                job = self.store.get_job(job_id, owner)
        return self.resource(job_id, owner)

    # ---- heartbeat -----------------------------------------------------------------------

    def _beat(self) -> None:
        """Renew this runner's lease; fail the jobs of runners that lost theirs."""
        self.store.register_runner(self.runner, self._settings.job_lease_seconds)
        orphans = self.store.fail_orphaned_jobs(ORPHANED)
        if orphans:
            log.warning("marked %d orphaned job(s) failed: %s", len(orphans), orphans)

    def _heartbeat(self) -> None:
        while not self._halt.wait(self._settings.job_lease_seconds / 4):
            try:
                self._beat()
            except Exception:  # a store hiccup: the next beat tries again, well in the lease
                log.exception("job heartbeat failed")

    # ---- workers -------------------------------------------------------------------------

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            live = self.local(job_id)
            if live is None:
                continue
            try:
                self._run(live)
            except Exception:  # one job's bug must not take the worker down with it
                log.exception("training job %s failed unexpectedly", job_id)
                try:
                    self._finish(
                        live,
                        "failed",
                        error="The job stopped on an internal error; the network keeps its "
                        "last checkpoint. Start a new job to continue.",
                    )
                except Exception:  # the store is failing too: the lease will expire instead
                    log.exception("could not record the end of training job %s", job_id)
            finally:
                live.done.set()
                with self._guard:
                    self._live.pop(job_id, None)

    def _end_unstarted(self, live: LiveJob) -> None:
        job = self.store.finish_job(
            live.record.id,
            "failed",
            step=0,
            cost=None,
            error="The service shut down before this job started; start it again.",
        )
        live.final = job or live.record
        live.done.set()

    def _finish(
        self,
        live: LiveJob,
        status: JobStatus,
        *,
        final_cost: float | None = None,
        error: str | None = None,
    ) -> None:
        step, cost = live.progress
        job = self.store.finish_job(
            live.record.id, status, step=step, cost=cost, final_cost=final_cost, error=error
        )
        if job is None:  # deleted with its network
            job = replace(
                live.record,
                status="cancelled",
                step=step,
                cost=cost,
                error="The network was deleted while this job ran.",
                finished_at=utc_now(),
            )
        live.final = job
        log.info("training job %s %s after %d steps", job.id, job.status, step)

    def _run(self, live: LiveJob) -> None:
        job, store = live.record, self.store
        if live.stop_reason == "shutdown":
            self._end_unstarted(live)
            return
        request = store.claim_job(job.id, self.runner)
        if request is None:  # cancelled while queued, or deleted with its network
            try:
                live.final = store.get_job(job.id, job.owner)
            except JobMissing:
                live.final = replace(job, status="cancelled", finished_at=utc_now())
            return
        live.record = store.get_job(job.id, job.owner)
        live.started = time.monotonic()
        try:
            record = store.get_network(job.network_id, job.owner)
        except NetworkMissing:
            self._finish(live, "cancelled")
            return
        try:
            trainer = Trainer(record.network, request.X, request.Y, request.options)
        except ModelError as exc:  # checked when the job was created; kept for safety
            self._finish(live, "failed", error=str(exc))
            return
        version, committed = record.meta.version, 0
        last_report = last_checkpoint = time.monotonic()
        diverged: TrainingDiverged | None = None
        while not trainer.done and live.stop_reason is None:
            try:
                step = trainer.step()
            except TrainingDiverged as exc:
                diverged = exc
                break
            live.progress = (trainer.steps_done, step.cost)
            now = time.monotonic()
            if now - last_report >= REPORT_SECONDS:
                last_report = now
                if not store.record_progress(job.id, trainer.steps_done, step.cost):
                    live.stop(self._why_stop(job))
            if now - last_checkpoint >= self._settings.checkpoint_seconds:
                try:
                    version, committed = self._checkpoint(
                        live, trainer.result(), version, committed
                    )
                except JobEnded:  # failed elsewhere since the last report: the store refused
                    live.stop_reason = "lost"
                    break
                last_checkpoint = time.monotonic()
        if live.stop_reason == "lost":  # another process ended it: it may not write any more
            self._finish(live, "failed")  # changes nothing stored; records the end it has
            return
        result = trainer.result()
        try:
            self._checkpoint(live, result, version, committed)
        except NetworkMissing:
            self._finish(live, "cancelled")
            return
        except JobEnded:  # as above, between the last report and this commit
            self._finish(live, "failed")
            return
        done = trainer.steps_done
        if diverged is not None:
            self._finish(live, "failed", error=str(diverged))
        elif live.stop_reason == "cancel":
            self._finish(live, "cancelled")
        elif live.stop_reason == "shutdown":
            self._finish(
                live,
                "failed",
                error=f"The service shut down while this job ran, after {done} of "
                f"{job.total_steps} steps; the network keeps the parameters of that step. "
                "Start a new job to continue.",
            )
        else:
            self._finish(live, "succeeded", final_cost=result.final_cost)

    def _why_stop(self, job: JobRecord) -> StopReason:
        """Why the store said stop: a cancellation, or the job is no longer running (failed
        as an orphan when this process lost its lease, or deleted with its network)."""
        try:
            stored = self.store.get_job(job.id, job.owner)
        except JobMissing:
            return "lost"
        return "cancel" if stored.status == "running" else "lost"

    def _checkpoint(
        self, live: LiveJob, result: TrainResult, version: int, committed: int
    ) -> tuple[int, int]:
        """Commit the steps after the first ``committed`` ones; return the new version and
        how many steps are committed."""
        if len(result.costs) == committed:
            return version, committed
        job = live.record
        update = training_update(result, version, since=committed, job_id=job.id)
        record = self.store.commit_update(job.network_id, job.owner, version, update)
        self._on_steps(len(update.history))
        live.progress = (len(result.costs), result.costs[-1].cost)
        return record.meta.version, len(result.costs)
