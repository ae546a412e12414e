"""This process's part in training jobs.

Without a queue (the default) the jobs a process accepts run in its own threads
(``max_concurrent_jobs`` at once; the rest wait, queued), and it resumes the jobs of processes
that died: at start-up and every :data:`SCAN_SECONDS` it looks for active jobs whose runner is
gone (the token a live runner holds, :meth:`Store.hold_runner`, is free) or that were handed
back, and takes them over from their last checkpoint.

With ``BACKPROP_QUEUE_URL`` set, a service process only publishes jobs to the broker, and
``backprop-service worker`` processes (:mod:`service.jobs.queue`) run them: one message per
attempt, acknowledged when the attempt ends, so the broker redelivers the job of a worker that
dies. Workers also scan, for the jobs that have no message (their publisher died before
publishing, or could not reach the broker): they adopt and publish them.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol

from service.core.settings import Settings
from service.jobs.runner import CANCEL, SHUTDOWN, Attempt, Ending, run_attempt
from service.jobs.schemas import job_resource
from service.store import Idempotency, JobRecord, JobRequest, Store, StoreError
from service.warm import WarmNetworks

log = logging.getLogger("backprop.jobs")

SCAN_SECONDS = 2.0


class JobQueue(Protocol):
    """Where jobs go when workers elsewhere run them."""

    def publish(self, job_id: str, attempt: int) -> None: ...


class JobManager:
    """The jobs of one process: a ``service`` (runs its jobs, or with ``queue_`` publishes
    them) or a ``worker`` (runs the jobs the queue hands it: :meth:`run_message`)."""

    def __init__(
        self,
        settings: Settings,
        store: Callable[[], Store],
        warm: Callable[[], WarmNetworks | None],
        on_steps: Callable[[int], None] = lambda steps: None,
        queue_: JobQueue | None = None,
        kind: Literal["service", "worker"] = "service",
    ) -> None:
        self._settings = settings
        self._store, self._warm = store, warm
        self._on_steps = on_steps
        self.queue, self.kind = queue_, kind
        self._guard = threading.Lock()
        self._live: dict[str, Attempt] = {}
        self._waiting: set[str] = set()  # jobs on the local queue, not yet claimed
        self._local: queue.SimpleQueue[tuple[str, int] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._halt = threading.Event()
        self._started = self._stopping = False
        self.runner = f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"

    @property
    def store(self) -> Store:
        return self._store()

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Hold this runner's token; without a queue, start the workers and the scan; in a
        worker, the scan for jobs without a message."""
        with self._guard:
            if self._started or self._stopping:
                return
            self._started = True
        self.store.hold_runner(self.runner, self.kind)
        if self.queue is None:
            for number in range(self._settings.max_concurrent_jobs):
                self._thread(self._work, f"job-worker-{number}")
        if self.queue is None or self.kind == "worker":
            self._thread(self._scan, "job-scan")

    def _thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def interrupt(self) -> None:
        """Stop every attempt this process runs: each commits its last steps and hands its job
        back (queued), for the next process to resume; take no new one."""
        with self._guard:
            self._stopping = True
            attempts = list(self._live.values())
        self._halt.set()
        for attempt in attempts:
            attempt.stop.set(SHUTDOWN)

    def stop(self, timeout: float = 30.0) -> None:
        """:meth:`interrupt`, wait for the attempts to end, and give up the runner token."""
        self.interrupt()
        for _ in self._threads:
            self._local.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._started:
            self.store.release_runner(self.runner)

    # ---- requests ------------------------------------------------------------------------

    def submit(
        self,
        network_id: str,
        owner: str,
        request: JobRequest,
        total_steps: int,
        idempotency: Idempotency | None = None,
    ) -> JobRecord:
        """Store the job (raising NetworkMissing or NetworkBusy) and queue it."""
        self.start()
        job = self.store.create_job(
            uuid.uuid4().hex,
            network_id,
            owner,
            request,
            total_steps,
            self.runner,  # with a queue: ours to publish; if we die first, a scan's
            idempotency=idempotency,
            keep_ended=self._settings.max_ended_jobs_per_network,
        )
        self._enqueue(job.id, job.attempt)
        return job

    def _enqueue(self, job_id: str, attempt: int) -> None:
        if self.queue is not None:
            self._publish(job_id, attempt)
            return
        with self._guard:
            if job_id in self._waiting or job_id in self._live:
                return
            self._waiting.add(job_id)
        self._local.put((job_id, attempt))

    def _publish(self, job_id: str, attempt: int) -> None:
        """Publish the queued job's message, and record whether it is on the broker."""
        assert self.queue is not None
        try:
            self.queue.publish(job_id, attempt)
            published = True
        except Exception as error:  # the broker is away: a worker's scan publishes it later
            log.warning("training job %s could not be queued (%s); retrying later", job_id, error)
            published = False
        try:
            self.store.enqueued(job_id, attempt, self.runner, published=published)
        except StoreError as error:  # published: the message runs it; if not, we hold it
            log.warning("training job %s: its queueing could not be recorded (%s)", job_id, error)

    def live(self, job_id: str) -> Attempt | None:
        """The attempt at a job this process runs, if it runs one."""
        return self._live.get(job_id)

    def resource(self, job_id: str, owner: str) -> dict[str, Any]:
        """The job resource; raises JobMissing (unknown, or another owner's)."""
        job = self.store.get_job(job_id, owner)
        attempt = self.live(job_id)
        return job_resource(job, None if attempt is None else attempt.live())

    def cancel(self, job_id: str, owner: str, wait: float = 1.0) -> dict[str, Any]:
        """Ask the job to stop, wait up to ``wait`` seconds for it to end (whichever process
        runs it), and return its resource. An ended job is answered as it is."""
        job = self.store.request_cancel(job_id, owner)
        attempt = self.live(job_id)
        if attempt is not None:
            attempt.stop.set(CANCEL)
            attempt.done.wait(wait)
        else:  # another process runs it, and sees the request at its next report
            deadline = time.monotonic() + wait
            while job.active and time.monotonic() < deadline:
                time.sleep(0.05)
                job = self.store.get_job(job_id, owner)
        return self.resource(job_id, owner)

    # ---- running attempts ----------------------------------------------------------------

    def run_message(self, job_id: str, attempt: int) -> None:
        """Run the attempt a queue message asks for (in a worker) for one slice of time, and
        publish the job's next message if it is handed back unfinished."""
        self._run(job_id, attempt, self._settings.job_slice_seconds)

    def _work(self) -> None:
        while (item := self._local.get()) is not None:
            job_id, attempt_number = item
            with self._guard:
                self._waiting.discard(job_id)
                if self._stopping:
                    continue  # left queued: the next process resumes it
            self._run(job_id, attempt_number)

    def _run(self, job_id: str, attempt_number: int, slice_seconds: float | None = None) -> None:
        claim = self.store.claim_job(
            job_id,
            self.runner,
            attempt=attempt_number,
            max_restarts=self._settings.max_job_restarts,
        )
        if claim is None:  # cancelled while queued, taken by another process, or gone
            return
        attempt = Attempt(claim)
        with self._guard:
            self._live[job_id] = attempt
            if self._stopping:
                attempt.stop.set(SHUTDOWN)
        # With a queue, a job handed back stays ours until its next message is published.
        publisher = None if self.queue is None else self.runner
        ending: Ending = "lost"
        try:
            ending = run_attempt(
                attempt,
                self.store,
                self._warm(),
                self._settings,
                self._on_steps,
                slice_seconds=slice_seconds,
                hand_back_to=publisher,
            )
        except Exception:  # a bug, or memory: counted as an interruption, retried a few times
            log.exception("training job %s stopped on an internal error", job_id)
            try:
                handed = self.store.hand_back(
                    job_id, claim.job.attempt, interrupted=True, runner=publisher
                )
                ending = "lost" if handed is None else "handed back"
            except StoreError:
                log.exception("training job %s could not be handed back", job_id)
        finally:
            attempt.done.set()
            with self._guard:
                self._live.pop(job_id, None)
        if ending == "handed back" and (self.queue is not None or not self._stopping):
            self._enqueue(job_id, claim.job.attempt)

    def _scan(self) -> None:
        """Find jobs to resume: those of runners that died, and those handed back; with a
        queue, those without a message."""
        while True:
            try:
                for job in self.store.orphaned_jobs(broker=self.queue is not None):
                    log.warning(
                        "resuming training job %s (its runner %s is gone)", job.id, job.runner
                    )
                    if self.queue is None:
                        self._enqueue(job.id, job.attempt)
                    elif (adopted := self.store.adopt(job, self.runner)) is not None:
                        self._publish(adopted.id, adopted.attempt)
            except Exception:  # a store hiccup: the next scan tries again
                log.exception("the scan for jobs to resume failed")
            if self._halt.wait(SCAN_SECONDS):
                return
