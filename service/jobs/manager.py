"""This process's part in training jobs.

Without a queue (the default) the jobs a process accepts run in its own threads
(``max_concurrent_jobs`` at once; the rest wait, queued), and it resumes the jobs of processes
that died: at start-up and every :data:`SCAN_SECONDS` it looks for active jobs whose runner is
gone (the token a live runner holds, :meth:`Store.hold_runner`, is free) or that were handed
back, and takes them over from their last checkpoint. With ``BACKPROP_QUEUE_URL`` set, an API
process only enqueues: ``backprop-service worker`` processes run the jobs
(:mod:`service.jobs.queue`), and the broker redelivers the job of a worker that dies.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from service.core.settings import Settings
from service.jobs.runner import CANCEL, SHUTDOWN, Attempt, run_attempt
from service.jobs.schemas import job_resource
from service.store import Idempotency, JobRecord, JobRequest, Store
from service.warm import WarmNetworks

log = logging.getLogger("backprop.jobs")

SCAN_SECONDS = 2.0


class JobQueue(Protocol):
    """Where jobs go when workers elsewhere run them."""

    def publish(self, job_id: str, attempt: int) -> None: ...


class JobManager:
    def __init__(
        self,
        settings: Settings,
        store: Callable[[], Store],
        warm: Callable[[], WarmNetworks],
        on_steps: Callable[[int], None] = lambda steps: None,
        queue_: JobQueue | None = None,
    ) -> None:
        self._settings = settings
        self._store, self._warm = store, warm
        self._on_steps = on_steps
        self.queue = queue_
        self._guard = threading.Lock()
        self._live: dict[str, Attempt] = {}
        self._waiting: set[str] = set()  # jobs on the local queue, not yet claimed
        self._local: queue.SimpleQueue[tuple[str, int] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._halt = threading.Event()
        self._started = self._stopping = False
        self.runner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"

    @property
    def store(self) -> Store:
        return self._store()

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Hold this runner's token and, without a queue, start the workers and the scan."""
        with self._guard:
            if self._started or self._stopping:
                return
            self._started = True
        if self.queue is not None:
            return
        self.store.hold_runner(self.runner)
        for number in range(self._settings.max_concurrent_jobs):
            self._thread(self._work, f"job-worker-{number}")
        self._thread(self._scan, "job-scan")

    def _thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every attempt this process runs: each commits its last steps and hands its job
        back (queued), for the next process to resume."""
        with self._guard:
            self._stopping = True
            attempts = list(self._live.values())
        self._halt.set()
        for attempt in attempts:
            attempt.stop.set(SHUTDOWN)
        for _ in self._threads:
            self._local.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.queue is None and self._started:
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
            None if self.queue is not None else self.runner,
            idempotency=idempotency,
            keep_ended=self._settings.max_ended_jobs_per_network,
        )
        self._enqueue(job)
        return job

    def _enqueue(self, job: JobRecord) -> None:
        if self.queue is not None:
            self.queue.publish(job.id, job.attempt)
            return
        with self._guard:
            if job.id in self._waiting or job.id in self._live:
                return
            self._waiting.add(job.id)
        self._local.put((job.id, job.attempt))

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

    # ---- the local workers ---------------------------------------------------------------

    def _work(self) -> None:
        while (item := self._local.get()) is not None:
            job_id, attempt_number = item
            with self._guard:
                self._waiting.discard(job_id)
                if self._stopping:
                    continue  # left queued: the next process resumes it
            try:
                self._run(job_id, attempt_number)
            except Exception:  # one job's bug must not take the worker down with it
                log.exception("training job %s stopped on an internal error", job_id)

    def _run(self, job_id: str, attempt_number: int) -> None:
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
        try:
            run_attempt(attempt, self.store, self._warm(), self._settings, self._on_steps)
        finally:
            attempt.done.set()
            with self._guard:
                self._live.pop(job_id, None)

    def _scan(self) -> None:
        """Find jobs to resume: those of runners that died, and those handed back."""
        while True:
            try:
                for job in self.store.orphaned_jobs():
                    log.warning(
                        "resuming training job %s (its runner %s is gone)", job.id, job.runner
                    )
                    self._enqueue(job)
            except Exception:  # a store hiccup: the next scan tries again
                log.exception("the scan for jobs to resume failed")
            if self._halt.wait(SCAN_SECONDS):
                return
