"""Jobs on a real queue (issue 20): a service in queue mode (``BACKPROP_QUEUE_URL``) that only
publishes jobs, and ``backprop-service worker`` processes that run them, one job at a time
each, on a RabbitMQ virtual host of their own (deleted afterwards) and one SQLite store that
every process opens (a file in a temporary directory). BLAS is pinned in every process.

Every job trains the course's cat network, [12288, 20, 7, 5, 1] on 209 examples (float64,
random data of that shape), full batch: one epoch is one step. What is measured:

* a job through the queue beside the same steps in-process (:func:`bench.http.measure_job`);
* two workers running two jobs at once beside one worker running one: steps per second, from
  the store's ``started_at`` and ``finished_at`` of each job;
* the work a SIGKILL of the worker loses: see :func:`measure_kills`.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from bench.http import JOB_CASE, batch_body, blas_env, create, server
from bench.load import machine_cpu_seconds, tree_cpu_seconds
from bench.reference import make_batch
from service.store import JobRecord, Store, open_store
from tests.support import rabbitmq
from tests.support.server import ServerProcess, worker_process

POLL_SECONDS = 0.02  # how often the bench reads a job from the store while it waits on it
LONG_JOB = 1_000_000  # epochs of a job that a trial stops long before its end


def broker_missing() -> str:
    """Why the queue section cannot run here ("" when a broker answers)."""
    return rabbitmq.missing(rabbitmq.server_url())


@dataclass(eq=False)
class Cluster:
    """A queue-mode service, its workers and the store they share."""

    env: dict[str, str]
    service: ServerProcess
    store: Store
    workers: list[ServerProcess] = field(default_factory=list)

    def add_worker(self) -> ServerProcess:
        # Celery says it is ready at INFO, which the readiness check reads.
        self.workers.append(worker_process({**self.env, "BACKPROP_LOG_LEVEL": "info"}).start())
        return self.workers[-1]

    def running_worker(self, job: JobRecord) -> ServerProcess:
        """The worker whose runner (``worker-<pid>-<hex>``) holds the job."""
        pid = int((job.runner or "").split("-")[1])
        (worker,) = [w for w in self.workers if w.process.pid == pid]
        return worker

    def workers_cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(w.process.pid) for w in self.workers)


@contextmanager
def cluster(threads: int, checkpoint_seconds: float) -> Iterator[Cluster]:
    """A service in queue mode on a scratch virtual host, with no worker yet."""
    with (
        rabbitmq.scratch_vhost(rabbitmq.server_url()) as broker,
        tempfile.TemporaryDirectory(prefix="backprop-bench-") as directory,
        ExitStack() as stack,
    ):
        env = {
            **blas_env(threads),
            "BACKPROP_DATABASE_URL": f"sqlite:///{directory}/jobs.db",
            "BACKPROP_QUEUE_URL": broker,
            "BACKPROP_CHECKPOINT_SECONDS": str(checkpoint_seconds),
            "BACKPROP_MAX_BODY_BYTES": str(512 * 1024 * 1024),
            "BACKPROP_LOG_LEVEL": "warning",
        }
        service = stack.enter_context(server(threads, env=env))
        store = open_store(env["BACKPROP_DATABASE_URL"])
        stack.callback(store.close)
        running = Cluster(env, service, store)
        try:
            yield running
        finally:
            for worker in running.workers:
                if worker.process.poll() is None:
                    worker.kill()


def submit(client: httpx.Client, body: bytes) -> str:
    """A new network of the job case and a job on it; the job's id."""
    network_id = create(client, JOB_CASE)
    response = client.post(
        f"/networks/{network_id}/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    if response.status_code != 202:
        raise RuntimeError(f"POST /networks/{{id}}/jobs answered {response.status_code}")
    job_id: str = response.json()["id"]
    return job_id


def wait_for(
    store: Store, job_id: str, until: Callable[[JobRecord], bool], timeout: float = 600.0
) -> JobRecord:
    deadline = time.monotonic() + timeout
    while not until(job := store.get_job(job_id, "")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {job.status} at step {job.step}")
        time.sleep(POLL_SECONDS)
    return job


def _seconds(timestamp: str | None) -> float:
    if timestamp is None:
        raise ValueError("the job has no such time")
    return datetime.fromisoformat(timestamp).timestamp()


@dataclass(frozen=True)
class JobScaling:
    steps: int  # of each job
    rates: dict[str, float]  # steps per second, median over rounds: "1 worker", "2 workers"
    ratio: float  # two workers' rate over one's, median of per-round ratios
    worker_cores: dict[str, float]  # the workers' CPU time over the wall time, median
    other_cores: dict[str, float]  # every other process's (the service's too), median
    stagger_s: float  # how much later the second of two jobs started, median


def measure_job_scaling(running: Cluster, rounds: int, steps: int) -> JobScaling:
    """One job on one worker beside two jobs at once on two (each round, in turn).

    A job's step rate is its steps over the wall time from its first claim to its end (the
    store's ``started_at`` and ``finished_at``, as the job resource's ``elapsed_s``); two
    workers' is the sum of their two jobs' rates. The two jobs are posted from two threads at
    once and must have run on different workers; the second starts a little later (its
    body is stored while the first one's is read), which the stagger shows."""
    X, Y = make_batch(JOB_CASE)
    body = batch_body(X, Y, "base64", epochs=steps)
    samples: dict[int, list[tuple[float, float, float, float]]] = {1: [], 2: []}
    with httpx.Client(base_url=running.service.url, timeout=600) as client:

        def run(jobs: int) -> tuple[float, float, float, float]:
            started_at = time.monotonic()
            cpu, machine = running.workers_cpu_seconds(), machine_cpu_seconds()
            with ThreadPoolExecutor(jobs) as pool:
                ids = list(pool.map(lambda _: submit(client, body), range(jobs)))
            ended = [wait_for(running.store, i, lambda j: not j.active) for i in ids]
            cpu, machine = running.workers_cpu_seconds() - cpu, machine_cpu_seconds() - machine
            wall = time.monotonic() - started_at
            if any(job.status != "succeeded" for job in ended):
                raise RuntimeError(f"a job did not succeed: {[j.status for j in ended]}")
            if len({job.runner for job in ended}) != jobs:
                raise RuntimeError("the jobs ran on one worker, one after the other")
            started = [_seconds(job.started_at) for job in ended]
            finished = [_seconds(job.finished_at) for job in ended]
            rate = sum(steps / (end - start) for start, end in zip(started, finished, strict=True))
            return rate, cpu / wall, (machine - cpu) / wall, max(started) - min(started)

        for r in range(rounds):
            for jobs in (1, 2) if r % 2 == 0 else (2, 1):
                samples[jobs].append(run(jobs))

    def median(jobs: int, index: int) -> float:
        return statistics.median(sample[index] for sample in samples[jobs])

    ratios = [two[0] / one[0] for one, two in zip(samples[1], samples[2], strict=True)]
    return JobScaling(
        steps,
        {"1 worker": median(1, 0), "2 workers": median(2, 0)},
        statistics.median(ratios),
        {"1 worker": median(1, 1), "2 workers": median(2, 1)},
        {"1 worker": median(1, 2), "2 workers": median(2, 2)},
        median(2, 3),
    )


@dataclass(frozen=True)
class KillTrial:
    """One SIGKILL of the worker running a job, at a random moment."""

    killed_after_s: float  # from the job's first checkpoint being seen to the kill
    checkpoint_step: int  # committed when the worker died: where the job resumes
    reported_step: int  # the last progress the killed attempt stored (every 0.5 s)
    trained_step: float  # estimated steps trained at the kill (see measure_kills)
    steps_per_s: float  # the attempt's rate, from its reports
    resumed_from: int  # the checkpoint step of the job when another worker had claimed it
    resumed_after_s: float  # from the kill to that claim

    @property
    def lost_s(self) -> float:
        return (self.trained_step - self.checkpoint_step) / self.steps_per_s

    @property
    def reported_lost_s(self) -> float:
        return (self.reported_step - self.checkpoint_step) / self.steps_per_s


def measure_kills(
    running: Cluster, trials: int, checkpoint_seconds: float, rng: random.Random
) -> list[KillTrial]:
    """Start a long job on one of two workers, SIGKILL that worker at a random moment within
    two checkpoint intervals after the job's first checkpoint, and wait for the other worker
    to resume it; then cancel it and start a replacement worker.

    The steps a killed attempt had trained are not stored anywhere: the bench reads the job
    every 20 ms, so it knows the last step the attempt reported (every 0.5 s) and when that
    report was first seen, and estimates the steps trained at the kill as that step plus the
    attempt's step rate (from its reports) times the time since. That undercounts by at most
    one poll's worth of steps. The lost work is those steps minus the checkpoint the job
    resumes from, in seconds at that rate."""
    X, Y = make_batch(JOB_CASE)
    body = batch_body(X, Y, "base64", epochs=LONG_JOB)
    results = []
    with httpx.Client(base_url=running.service.url, timeout=600) as client:
        for _ in range(trials):
            while len(running.workers) < 2:
                running.add_worker()
            job_id = submit(client, body)
            reports: list[tuple[float, int]] = []  # (first seen, step), as the job reports
            kill_at = first_checkpoint = float("inf")
            deadline = time.monotonic() + 300
            while (now := time.monotonic()) < kill_at:
                if now > deadline:
                    raise TimeoutError(f"job {job_id} made no checkpoint in 300 s")
                job = running.store.get_job(job_id, "")
                if job.step > 0 and (not reports or job.step != reports[-1][1]):
                    reports.append((now, job.step))
                if job.checkpoint_step > 0 and first_checkpoint == float("inf"):
                    first_checkpoint = now
                    kill_at = now + rng.uniform(0, 2 * checkpoint_seconds)
                time.sleep(POLL_SECONDS)
            victim = running.running_worker(job)
            killed = time.monotonic()
            victim.kill()
            running.workers.remove(victim)
            died = running.store.get_job(job_id, "")
            (t0, s0), (t1, s1) = reports[0], reports[-1]
            rate = (s1 - s0) / (t1 - t0)
            # A report stored after the last reading (in its last 20 ms) counts as of the kill.
            trained = max(s1 + rate * (killed - t1), died.step)
            resumed = wait_for(running.store, job_id, _resumed_elsewhere(died))
            results.append(
                KillTrial(
                    killed - first_checkpoint,
                    died.checkpoint_step,
                    died.step,
                    trained,
                    rate,
                    resumed.checkpoint_step,
                    time.monotonic() - killed,
                )
            )
            client.post(f"/jobs/{job_id}/cancel").raise_for_status()
            wait_for(running.store, job_id, lambda j: not j.active)
    return results


def _resumed_elsewhere(died: JobRecord) -> Callable[[JobRecord], bool]:
    """Whether a job killed as ``died`` runs again, on another runner."""
    return lambda j: (
        j.restarts > died.restarts and j.status == "running" and j.runner != died.runner
    )
