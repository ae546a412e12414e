"""Jobs on a message broker (``BACKPROP_QUEUE_URL``): Celery, on RabbitMQ.

Service processes publish one message per attempt at a job; ``backprop-service worker``
processes consume them, one job at a time each. What the broker guarantees, and this module
configures:

- A message is acknowledged only when its attempt has ended (``task_acks_late``): the job of a
  worker that dies (SIGKILL, out of memory, a lost machine) is redelivered to another worker,
  which takes it over from its last checkpoint. The store numbers attempts, so a copy of a
  message that arrives late, or twice, finds its attempt taken and is dropped.
- A worker holds only the message it runs (prefetch 1): a job waits for the first idle worker,
  never behind a busy one.
- No message stays unacknowledged longer than one slice (``BACKPROP_JOB_SLICE_SECONDS``): a
  longer job checkpoints, is handed back and published again. RabbitMQ closes the channel of a
  consumer that keeps a message past its ``consumer_timeout`` (30 minutes by default), and jobs
  can run for hours; slices also let queued jobs take turns with long ones.
- SIGTERM to a worker stops its job at the next step: it commits a checkpoint, is handed back
  and published again, and the worker exits.
"""

from __future__ import annotations

import logging
import os
import warnings

from celery import Celery, signals
from celery.exceptions import CPendingDeprecationWarning

from service.core.observability import configure_logging
from service.core.settings import Settings
from service.jobs.manager import JobManager
from service.store import store_for

log = logging.getLogger("backprop.jobs")

TASK = "backprop.run_job"
QUEUE = "backprop.jobs"


def celery_app(broker_url: str) -> Celery:
    app = Celery("backprop", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # On a lost connection the attempt goes on and hands its job back at the end of its
        # slice; the copy the broker redelivers meanwhile finds the attempt running, alive.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_default_queue=QUEUE,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True},  # published means on the broker
        worker_hijack_root_logger=False,
    )
    return app


class BrokerQueue:
    """Publishes attempts at jobs (:class:`~service.jobs.manager.JobQueue`)."""

    def __init__(self, broker_url: str) -> None:
        self.app = celery_app(broker_url)

    def publish(self, job_id: str, attempt: int) -> None:
        self.app.send_task(
            TASK,
            args=(job_id, attempt),
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.4},
        )

    def close(self) -> None:
        self.app.close()


def serve(settings: Settings, concurrency: int = 1) -> None:
    """``backprop-service worker``: run the jobs of the queue until SIGTERM."""
    configure_logging(settings.log_format, settings.log_level)
    store = store_for(settings)
    broker = BrokerQueue(settings.queue_url)
    jobs = JobManager(settings, lambda: store, lambda: None, queue_=broker, kind="worker")
    broker.app.task(name=TASK, ignore_result=True)(jobs.run_message)
    # Celery warns, at each lost connection, that it lets such attempts go on: as we want.
    warnings.filterwarnings(
        "ignore",
        r"(?s).*worker_cancel_long_running_tasks_on_connection_loss",
        CPendingDeprecationWarning,
    )
    # Sent from the worker's SIGTERM handler, before its warm shutdown waits for the attempt:
    # the attempt then checkpoints and hands its job back instead of training to the end.
    signals.worker_shutting_down.connect(lambda **_: jobs.interrupt(), weak=False)
    jobs.start()
    log.info("worker %s runs the jobs of %s", jobs.runner, QUEUE)
    try:
        broker.app.worker_main(
            [
                "worker",
                "--pool=threads",  # the consumer keeps the broker connection alive meanwhile
                f"--concurrency={concurrency}",
                f"--queues={QUEUE}",
                f"--hostname=backprop-{os.getpid()}@%h",
                f"--loglevel={settings.log_level.upper()}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        jobs.stop()
        broker.close()
        store.close()
