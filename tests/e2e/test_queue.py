"""Jobs on a real queue: service replicas and ``backprop-service worker`` processes on RabbitMQ
(a virtual host per test) and PostgreSQL (a schema per test), all real processes.

The services only enqueue; workers run. A worker killed mid-job has its job resumed by
another, which ends it with the uninterrupted run's parameters; a worker sent SIGTERM hands
its job back; the service that enqueued a job may die; a job that keeps killing its workers
ends failed; a cancel through any replica stops the job within a second; copies of a message
run one attempt; and a job longer than the broker's consumer timeout runs in slices, never
holding a message past it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Consumer, Queue

from model import TrainOptions
from service.jobs.queue import BrokerQueue
from service.store import JobRequest, Store, open_store
from service.store.sql import BROKER
from tests.e2e.resumable import (
    EPOCHS,
    JOB,
    STEPS,
    X,
    Y,
    assert_uninterrupted,
    ended,
    start_job,
)
from tests.support import rabbitmq
from tests.support.postgres import scratch_database, scratch_schema
from tests.support.postgres import server_url_or_skip as postgres_or_skip
from tests.support.server import ServerProcess, worker_process
from tests.support.waiting import poll

BIN = Path(sys.executable).with_name("backprop-service")


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with scratch_database(postgres_or_skip()) as url:
        yield url


@pytest.fixture
def env(database: str) -> Iterator[dict[str, str]]:
    with rabbitmq.scratch_vhost(rabbitmq.server_url_or_skip()) as broker:
        yield {
            "BACKPROP_DATABASE_URL": scratch_schema(database),
            "BACKPROP_QUEUE_URL": broker,
            "BACKPROP_CHECKPOINT_SECONDS": "0.3",
            "OPENBLAS_NUM_THREADS": "1",
        }


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[Store]:
    store = open_store(env["BACKPROP_DATABASE_URL"])
    yield store
    store.close()


class Cluster:
    """The processes of one test, stopped (SIGKILL for what is left) at its end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[ServerProcess] = []

    def service(self, **extra: str) -> ServerProcess:
        self.processes.append(ServerProcess(env={**self.env, **extra}).start())
        return self.processes[-1]

    def worker(self, **extra: str) -> ServerProcess:
        self.processes.append(worker_process({**self.env, **extra}).start())
        return self.processes[-1]

    def close(self) -> None:
        for process in self.processes:
            if process.process.poll() is None:
                process.kill()


@pytest.fixture
def cluster(env: dict[str, str]) -> Iterator[Cluster]:
    cluster = Cluster(env)
    yield cluster
    cluster.close()


def running_on(store: Store, job_id: str, workers: list[ServerProcess]) -> ServerProcess:
    """The worker running the job, once it runs and has committed two checkpoints."""
    job = poll(
        lambda: store.get_job(job_id, ""),
        lambda j: j.status == "running" and j.checkpoint_step > 0 and j.step > j.checkpoint_step,
        timeout=60,
    )
    assert job.runner is not None
    assert job.runner.startswith("worker-"), job.runner
    pid = int(job.runner.split("-")[1])
    (worker,) = [w for w in workers if w.process.pid == pid]
    return worker


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    (value,) = re.findall(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(value)


def test_the_service_only_enqueues_and_a_worker_runs_the_job(
    cluster: Cluster, store: Store, env: dict[str, str]
) -> None:
    service = cluster.service()
    net, job, initial = start_job(service.url)
    queued = store.get_job(job["id"], "")
    assert (queued.status, queued.runner) == ("queued", BROKER)  # published; nobody runs it
    assert metric(service.url, 'backprop_jobs{status="queued"}') == 1
    assert metric(service.url, 'backprop_job_runners{kind="worker"}') == 0

    worker = cluster.worker()
    assert metric(service.url, 'backprop_job_runners{kind="worker"}') == 1
    done = ended(service.url, job["id"])
    assert (done["status"], done["step"], done["restarts"]) == ("succeeded", STEPS, 0), done
    runner = store.get_job(job["id"], "").runner
    assert runner is not None
    assert runner.startswith(f"worker-{worker.process.pid}-"), runner
    assert "training job" not in service.output()  # the service never ran it
    assert_uninterrupted(service.url, env["BACKPROP_DATABASE_URL"], net, initial)


def test_a_killed_workers_job_resumes_on_another_and_ends_as_if_never_interrupted(
    cluster: Cluster, store: Store, env: dict[str, str]
) -> None:
    service = cluster.service()
    workers = [cluster.worker(), cluster.worker()]
    net, job, initial = start_job(service.url)
    victim = running_on(store, job["id"], workers)
    victim.kill()
    (survivor,) = [w for w in workers if w is not victim]
    done = ended(service.url, job["id"])
    assert (done["status"], done["step"], done["restarts"]) == ("succeeded", STEPS, 1), done
    runner = store.get_job(job["id"], "").runner
    assert runner is not None
    assert runner.startswith(f"worker-{survivor.process.pid}-"), runner
    assert_uninterrupted(service.url, env["BACKPROP_DATABASE_URL"], net, initial)
    assert metric(service.url, "backprop_job_restarts") == 1


def test_sigterm_to_a_worker_hands_its_job_back_to_the_queue(
    cluster: Cluster, store: Store, env: dict[str, str]
) -> None:
    service = cluster.service()
    worker = cluster.worker()
    net, job, initial = start_job(service.url)
    running_on(store, job["id"], [worker])
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0
    handed = store.get_job(job["id"], "")
    assert (handed.status, handed.runner, handed.restarts) == ("queued", BROKER, 1)
    assert 0 < handed.checkpoint_step < STEPS
    assert handed.step == handed.checkpoint_step  # its last steps were committed

    cluster.worker()
    done = ended(service.url, job["id"])
    assert (done["status"], done["step"], done["restarts"]) == ("succeeded", STEPS, 1), done
    assert_uninterrupted(service.url, env["BACKPROP_DATABASE_URL"], net, initial)


def test_the_service_that_enqueued_a_job_may_die(
    cluster: Cluster, store: Store, env: dict[str, str]
) -> None:
    enqueuer, other = cluster.service(), cluster.service()
    cluster.worker()
    net, job, initial = start_job(enqueuer.url)
    enqueuer.kill()
    done = ended(other.url, job["id"])
    assert (done["status"], done["restarts"]) == ("succeeded", 0), done
    assert_uninterrupted(other.url, env["BACKPROP_DATABASE_URL"], net, initial)

    # One that died between storing a job and publishing it: a worker's scan publishes it.
    created = httpx.post(f"{other.url}/networks", json={"layer_dims": [2, 3, 1], "seed": 2})
    request = JobRequest(np.array(X), np.array(Y), TrainOptions(epochs=300))
    store.create_job("unpublished", created.json()["id"], "", request, 300, "service-1-gone")
    orphan = ended(other.url, "unpublished")
    assert (orphan["status"], orphan["step"], orphan["restarts"]) == ("succeeded", 300, 0)


def test_a_job_that_keeps_killing_its_workers_ends_failed(cluster: Cluster, store: Store) -> None:
    service = cluster.service(BACKPROP_MAX_JOB_RESTARTS="1")
    net, job, _ = start_job(service.url)
    for _ in range(2):  # killed at its start, and at its resumption
        worker = cluster.worker(BACKPROP_MAX_JOB_RESTARTS="1")
        running_on(store, job["id"], [worker]).kill()
    cluster.worker(BACKPROP_MAX_JOB_RESTARTS="1")
    failed = ended(service.url, job["id"])
    assert failed["status"] == "failed", failed
    assert "interrupted 2 times" in failed["error"]
    assert "resumed 1 times" in failed["error"]
    assert failed["restarts"] == 1
    network = httpx.get(f"{service.url}/networks/{net['id']}").json()
    assert 0 < network["steps_trained"] < STEPS  # it keeps its last checkpoint
    again = httpx.post(f"{service.url}/networks/{net['id']}/train", json={**JOB, "epochs": 1})
    assert again.status_code == 200, again.text  # the network is free again


def test_a_cancel_through_another_replica_stops_the_job_within_a_second(
    cluster: Cluster, store: Store
) -> None:
    enqueuer, other = cluster.service(), cluster.service()
    worker = cluster.worker()
    net, job, _ = start_job(enqueuer.url, {**JOB, "epochs": 5_000_000})
    running_on(store, job["id"], [worker])
    cancelled = httpx.post(f"{other.url}/jobs/{job['id']}/cancel", timeout=10)
    assert cancelled.status_code == 202
    # The replica waits up to a second for the job to end, wherever it runs.
    assert cancelled.json()["status"] == "cancelled", cancelled.json()
    network = httpx.get(f"{other.url}/networks/{net['id']}").json()
    assert network["steps_trained"] == cancelled.json()["step"] > 0  # its last step, committed
    assert httpx.get(f"{enqueuer.url}/jobs/{job['id']}").json()["status"] == "cancelled"


def test_copies_of_a_message_run_one_attempt(
    cluster: Cluster, store: Store, env: dict[str, str]
) -> None:
    service = cluster.service()
    cluster.worker()
    cluster.worker()
    net, job, initial = start_job(service.url)
    broker = BrokerQueue(env["BACKPROP_QUEUE_URL"])
    try:
        for _ in range(3):  # as a publisher retrying, or a scan racing a redelivery
            broker.publish(job["id"], 0)
    finally:
        broker.close()
    done = ended(service.url, job["id"])
    assert (done["status"], done["restarts"]) == ("succeeded", 0), done
    assert_uninterrupted(service.url, env["BACKPROP_DATABASE_URL"], net, initial)


CONSUMER_TIMEOUT_MS = 3000


def _hold_until_closed(conn: Connection) -> None:
    """Consume without acknowledging until the broker closes the channel (or 30 s pass)."""
    started = time.monotonic()
    while time.monotonic() - started < 30:
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.5)


def test_a_job_longer_than_the_brokers_consumer_timeout_runs_in_slices(
    cluster: Cluster, store: Store, env: dict[str, str]
) -> None:
    with (
        rabbitmq.broker_setting("consumer_timeout", CONSUMER_TIMEOUT_MS),
        rabbitmq.broker_setting("channel_tick_interval", 250),  # checked 4 times a second
    ):
        # The setting bites: a consumer that holds a message past it loses its channel.
        with Connection(env["BACKPROP_QUEUE_URL"]) as conn:
            queue = Queue("timeout-probe", auto_delete=True)
            conn.default_channel.basic_qos(0, 1, False)
            producer = conn.Producer()
            producer.publish("held", routing_key="timeout-probe", declare=[queue])
            received: list[Any] = []
            with (
                Consumer(conn, [queue], callbacks=[lambda body, m: received.append(body)]),
                pytest.raises(PreconditionFailed, match="timed out"),
            ):
                _hold_until_closed(conn)
            assert received == ["held"]

        service = cluster.service()
        cluster.worker(BACKPROP_JOB_SLICE_SECONDS="1")
        long_job = {**JOB, "epochs": 4 * EPOCHS}  # a few times the timeout
        net, job, initial = start_job(service.url, long_job)
        done = ended(service.url, job["id"], timeout=300)
    assert (done["status"], done["restarts"]) == ("succeeded", 0), done
    assert done["elapsed_s"] > 2 * CONSUMER_TIMEOUT_MS / 1000, done  # it did outlast it
    assert_uninterrupted(service.url, env["BACKPROP_DATABASE_URL"], net, initial, long_job)


def test_a_worker_without_a_queue_url_says_what_it_needs() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
    done = subprocess.run(
        [str(BIN), "worker"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "worker needs BACKPROP_QUEUE_URL" in done.stderr
