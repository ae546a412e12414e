"""One attempt at a training job, wherever it runs (the service's own threads, or a queue
worker): resume from the job's last checkpoint, step, report progress, commit checkpoints,
and end the job or hand it back.

Every random choice of a training run is a function of its seeds and of the step or epoch
number (:mod:`model.training`), and a checkpoint commits, in one transaction, the network's
state with the number of the job's steps it holds. So an attempt that resumes from it takes
exactly the steps an uninterrupted run would have taken, and the job ends with the same
parameters. Each attempt has a number; a newer attempt fences off an older one (the store
refuses the older one's writes), so two attempts never both commit to one network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from model import StepRecord, Trainer, TrainingDiverged
from service.core.capacity import Stop
from service.core.settings import Settings
from service.store import (
    Claim,
    JobCheckpoint,
    JobEnded,
    JobMissing,
    JobRecord,
    NetworkMissing,
    NetworkRecord,
    Store,
    StoreFull,
    StoreUnavailable,
    Update,
)
from service.training.steps import Stepper, last_gradients
from service.warm import WarmNetworks

log = logging.getLogger("backprop.jobs")

REPORT_SECONDS = 0.5  # progress to the store, and how soon a cancel from elsewhere is seen
# How often the live progress (what this process's event streams send) moves on: a stream at
# ?interval=0.05 gets a new step in each event, and the playground a point per frame.
PROGRESS_SECONDS = 0.04
RETRY_SECONDS = 0.25  # how often a store that cannot be reached is tried again
T = TypeVar("T")

CANCEL, SHUTDOWN, LOST, SLICE = "cancel", "shutdown", "lost", "slice"
Ending = Literal["succeeded", "failed", "cancelled", "handed back", "lost"]


@dataclass(eq=False)
class Attempt:
    """An attempt this process runs, and what its readers see of it (fresher than the store)."""

    claim: Claim
    stop: Stop = field(default_factory=Stop)
    progress: tuple[int, float | None] = (0, None)  # (the job's steps done, last cost)
    version: int | None = None  # the network's version as of the last checkpoint
    started: float = field(default_factory=time.monotonic)
    ending: Ending | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def job(self) -> JobRecord:
        return self.claim.job

    def live(self) -> tuple[int, float | None, float]:
        return (*self.progress, self.started)


def _until_reached(work: Callable[[], T], stop: Stop, *, patient: bool) -> T:
    """``work()``, retried while the store cannot be reached or is out of space, so training
    goes on within moments of the database coming back (or of space being freed). Given up
    when the service shuts down (the last checkpoint then stands, and the job resumes from
    it); ``patient`` False, at any stop."""
    while True:
        try:
            return work()
        except (StoreUnavailable, StoreFull) as error:
            if stop and (stop.reason == SHUTDOWN or not patient):
                raise
            log.warning("the store cannot take the job's write (%s); retrying", error)
            time.sleep(RETRY_SECONDS)


class Run:
    """The steps of one attempt: its trainer, what it has not committed yet, and its version."""

    def __init__(
        self, attempt: Attempt, store: Store, warm: WarmNetworks | None, settings: Settings
    ) -> None:
        self.attempt, self.store, self.warm, self.settings = attempt, store, warm, settings
        job, request = attempt.job, attempt.claim.request
        record = _until_reached(
            # Patient: the attempt holds the job, and nobody else resumes it while it lives.
            lambda: store.get_network(job.network_id, job.owner),
            attempt.stop,
            patient=True,
        )
        self.version = attempt.version = record.meta.version
        self.trainer = Trainer(
            record.network, request.X, request.Y, request.options, start_step=job.checkpoint_step
        )
        self.committed = job.checkpoint_step
        self.pending: list[StepRecord] = []
        attempt.progress = (job.checkpoint_step, job.cost)

    def checkpoint(self) -> None:
        """Commit the steps not committed yet, with the job's progress (one transaction)."""
        trainer, job = self.trainer, self.attempt.job
        if trainer.steps_done == self.committed or trainer.last_step is None:
            return
        update = Update(
            trainer.network,
            [(r.step, r.cost) for r in self.pending],
            last_gradients(trainer, self.version + 1),
            job=JobCheckpoint(job.id, job.attempt, trainer.steps_done, trainer.last_step.cost),
        )
        record = _until_reached(
            lambda: self.store.commit_update(job.network_id, job.owner, self.version, update),
            self.attempt.stop,
            patient=True,
        )
        self.version = self.attempt.version = record.meta.version
        self.committed, self.pending = trainer.steps_done, []
        if self.warm is not None:  # predictions here see it at once; the job keeps its buffers
            self.warm.publish(NetworkRecord(record.meta, record.network.copy()))

    def report(self) -> None:
        """Store the progress; learn whether to stop (a cancel, or another attempt took over)."""
        job, (step, cost) = self.attempt.job, self.attempt.progress
        go_on = _until_reached(
            lambda: self.store.record_progress(job.id, job.attempt, step, cost),
            self.attempt.stop,
            patient=False,
        )
        if not go_on:
            try:
                stored = self.store.get_job(job.id, job.owner)
            except JobMissing:
                self.attempt.stop.set(LOST)
                return
            mine = stored.attempt == job.attempt and stored.status == "running"
            self.attempt.stop.set(CANCEL if mine and stored.cancel_requested else LOST)


def run_attempt(
    attempt: Attempt,
    store: Store,
    warm: WarmNetworks | None,
    settings: Settings,
    on_steps: Callable[[int], None] = lambda steps: None,
    slice_seconds: float | None = None,
    hand_back_to: str | None = None,
) -> Ending:
    """Run ``attempt`` until its job ends, it is stopped, or (with ``slice_seconds``) its slice
    of time runs out; return how it ended. ``on_steps`` hears how many steps each checkpoint
    committed; a job handed back is marked ``hand_back_to``'s (its next publisher)."""
    stop, job = attempt.stop, attempt.job
    try:
        run = Run(attempt, store, warm, settings)
    except (NetworkMissing, StoreUnavailable, StoreFull):  # deleted with its network, or
        return _ended(attempt, "lost")  # stopping
    diverged: TrainingDiverged | None = None
    sliced_at = None if slice_seconds is None else time.monotonic() + slice_seconds
    last_report = last_checkpoint = time.monotonic()
    # A crash loses the steps since the last checkpoint. They are committed a little more
    # often than checkpoint_seconds (a chunk of steps and the commit fit in the margin), so
    # that is never more than checkpoint_seconds of work.
    every = max(0.0, settings.checkpoint_seconds - 2 * PROGRESS_SECONDS)
    stepper = Stepper(run.trainer)
    try:
        while not run.trainer.done and not stop:
            made = len(run.pending)
            due = last_checkpoint + every - time.monotonic()
            try:
                stepper.step_for(min(PROGRESS_SECONDS, max(0.0, due)), records=run.pending)
            except TrainingDiverged as error:
                diverged = error
            if len(run.pending) > made:
                attempt.progress = (run.trainer.steps_done, run.pending[-1].cost)
            if diverged is not None:
                break
            now = time.monotonic()
            if now - last_report >= REPORT_SECONDS:
                run.report()
                last_report = now
            if now - last_checkpoint >= every:
                before = run.committed
                run.checkpoint()
                on_steps(run.committed - before)
                last_checkpoint = now
            if sliced_at is not None and now >= sliced_at and not run.trainer.done:
                stop.set(SLICE)
        if stop.reason == LOST:
            return _ended(attempt, "lost")
        before = run.committed
        run.checkpoint()
        on_steps(run.committed - before)
    except (JobEnded, NetworkMissing):  # another attempt, or a delete, took the job away
        return _ended(attempt, "lost")
    except (StoreUnavailable, StoreFull):  # stopping with the store away: the last checkpoint
        return _ended(attempt, "lost")  # stands
    steps = run.trainer.steps_done

    def finish(
        status: Literal["succeeded", "failed", "cancelled"],
        final_cost: float | None = None,
        error: str | None = None,
    ) -> Ending:
        cost = attempt.progress[1]
        ended = _until_reached(
            lambda: store.finish_job(
                job.id,
                job.attempt,
                status,
                step=steps,
                cost=cost,
                final_cost=final_cost,
                error=error,
            ),
            stop,
            patient=True,
        )
        log.info("training job %s %s after %d steps", job.id, status, steps)
        return _ended(attempt, "lost" if ended is None else status)

    if diverged is not None:
        return finish("failed", error=str(diverged))
    if run.trainer.done:
        return finish("succeeded", final_cost=run.trainer.final_cost())
    if stop.reason == CANCEL:
        return finish("cancelled")
    # Shutting down, or the end of a slice: the job waits for its next attempt.
    handed = _until_reached(
        lambda: store.hand_back(
            job.id, job.attempt, interrupted=stop.reason != SLICE, runner=hand_back_to
        ),
        stop,
        patient=True,
    )
    if handed is None:
        return _ended(attempt, "lost")
    log.info("training job %s handed back after %d of %d steps", job.id, steps, job.total_steps)
    return _ended(attempt, "handed back")


def _ended(attempt: Attempt, ending: Ending) -> Ending:
    attempt.ending = ending
    return ending
