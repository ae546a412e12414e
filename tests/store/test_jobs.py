"""Training jobs in the store, on both backends: the job's life (queued, claimed, progress,
cancel, finish), the one-active-job-per-network rule, and runners' leases, which is how one
process (or replica) tells a dead runner's jobs from a live one's."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model import TrainOptions
from service.store import (
    JobEnded,
    JobMissing,
    JobRequest,
    NetworkBusy,
    NetworkMissing,
    Store,
    Update,
    VersionConflict,
)
from tests.store.conftest import OpenStore
from tests.store.helpers import XOR_X, XOR_Y, new_network, training_update

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
OPTIONS = TrainOptions(epochs=50, batch_size=2, shuffle_seed=3, learning_rate=0.2)
REQUEST = JobRequest(X=XOR_X, Y=XOR_Y, options=OPTIONS)
LEASE = 30.0  # seconds: longer than any test, unless a test wants it to run out


@pytest.fixture
def network(store: Store) -> str:
    store.create_network("n1", "alice", None, new_network())
    return "n1"


def test_a_new_job_is_queued_and_holds_its_network(store: Store, network: str) -> None:
    job = store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    assert (job.id, job.network_id, job.owner, job.status) == ("j1", network, "alice", "queued")
    assert (job.step, job.total_steps, job.cost, job.final_cost, job.error) == (
        0,
        100,
        None,
        None,
        None,
    )
    assert (job.cancel_requested, job.runner) == (False, "r1")
    assert TIMESTAMP.fullmatch(job.created_at)
    assert (job.started_at, job.finished_at) == (None, None)
    assert job.active
    assert store.get_job("j1", "alice") == job
    assert store.list_jobs(network, "alice") == [job]
    assert store.active_job(network) == "j1"


def test_jobs_of_other_owners_and_unknown_ones_are_missing(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    with pytest.raises(JobMissing):
        store.get_job("j1", "bob")
    with pytest.raises(JobMissing):
        store.get_job("nope", "alice")
    with pytest.raises(JobMissing):
        store.request_cancel("j1", "bob")
    assert store.list_jobs(network, "bob") == []
    with pytest.raises(NetworkMissing):
        store.create_job("j2", network, "bob", REQUEST, 100, "r1")
    with pytest.raises(NetworkMissing):
        store.create_job("j2", "nope", "alice", REQUEST, 100, "r1")


def test_one_active_job_per_network(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    with pytest.raises(NetworkBusy) as busy:
        store.create_job("j2", network, "alice", REQUEST, 100, "r1")
    assert busy.value.job_id == "j1"
    store.finish_job("j1", "failed", step=0, cost=None, error="stopped")
    assert store.active_job(network) is None
    store.create_job("j2", network, "alice", REQUEST, 100, "r1")
    assert [job.id for job in store.list_jobs(network, "alice")] == ["j1", "j2"]


def test_only_one_of_many_concurrent_creates_wins(
    store: Store, open_another: OpenStore, network: str
) -> None:
    stores = [store, open_another()]

    def create(number: int) -> str:
        try:
            stores[number % 2].create_job(f"j{number}", network, "alice", REQUEST, 10, "r1")
        except NetworkBusy as busy:
            return f"busy:{busy.job_id}"
        return "created"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(8)))
    assert outcomes.count("created") == 1
    winner = store.active_job(network)
    assert set(outcomes) == {"created", f"busy:{winner}"}


def test_claim_hands_the_request_over_once(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    request = store.claim_job("j1", "r2")
    assert request is not None
    np.testing.assert_array_equal(request.X, XOR_X)
    np.testing.assert_array_equal(request.Y, XOR_Y)
    assert request.options == OPTIONS
    job = store.get_job("j1", "alice")
    assert (job.status, job.runner) == ("running", "r2")
    assert job.started_at is not None
    assert TIMESTAMP.fullmatch(job.started_at)
    assert store.claim_job("j1", "r3") is None
    assert store.claim_job("nope", "r3") is None


def test_exactly_one_claimer_wins_across_instances(
    store: Store, open_another: OpenStore, network: str
) -> None:
    stores = [store, open_another(), open_another()]
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    start = threading.Barrier(6)

    def claim(number: int) -> bool:
        start.wait()
        return stores[number % 3].claim_job("j1", f"r{number}") is not None

    with ThreadPoolExecutor(6) as pool:
        assert sorted(pool.map(claim, range(6))) == [False] * 5 + [True]


def test_progress_then_cancel_of_a_running_job(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    assert store.record_progress("j1", 5, 0.25)
    job = store.get_job("j1", "alice")
    assert (job.step, job.cost) == (5, 0.25)

    cancelling = store.request_cancel("j1", "alice")
    assert (cancelling.status, cancelling.cancel_requested) == ("running", True)
    assert not store.record_progress("j1", 6, 0.2)  # the runner hears of it here
    ended = store.finish_job("j1", "cancelled", step=6, cost=0.2)
    assert ended is not None
    assert (ended.status, ended.step, ended.cost) == ("cancelled", 6, 0.2)
    assert ended.finished_at is not None
    assert store.request_cancel("j1", "alice") == ended  # idempotent on a finished job


def test_cancelling_a_queued_job_ends_it_at_once(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    job = store.request_cancel("j1", "alice")
    assert (job.status, job.cancel_requested) == ("cancelled", True)
    assert job.finished_at is not None
    assert store.claim_job("j1", "r1") is None
    assert store.active_job(network) is None


def test_a_finished_job_keeps_its_end(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    done = store.finish_job("j1", "succeeded", step=100, cost=0.1, final_cost=0.09)
    assert done is not None
    assert (done.status, done.step, done.cost, done.final_cost) == ("succeeded", 100, 0.1, 0.09)
    again = store.finish_job("j1", "failed", step=3, cost=None, error="late")
    assert again == done
    assert not store.record_progress("j1", 101, 0.1)
    assert store.finish_job("nope", "failed", step=0, cost=None) is None


def test_an_active_job_holds_the_network_against_other_commits(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    record = store.get_network(network, "alice")
    with pytest.raises(NetworkBusy) as busy:
        store.commit_update(network, "alice", 1, training_update(record))
    assert busy.value.job_id == "j1"
    with pytest.raises(NetworkBusy):
        store.commit_update(network, "alice", 1, Update(new_network(seed=2)))
    checkpoint = store.commit_update(network, "alice", 1, training_update(record, job_id="j1"))
    assert checkpoint.meta.version == 2
    store.finish_job("j1", "succeeded", step=1, cost=0.5, final_cost=0.4)
    assert store.commit_update(network, "alice", 2, training_update(checkpoint)).meta.version == 3


def test_deleting_the_network_deletes_its_jobs(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    store.delete_network(network, "alice")
    with pytest.raises(JobMissing):
        store.get_job("j1", "alice")
    assert not store.record_progress("j1", 1, 0.5)
    assert store.finish_job("j1", "cancelled", step=1, cost=0.5) is None
    assert store.claim_job("j1", "r1") is None
    assert store.list_jobs(network, "alice") == []


# ---- runners' leases -------------------------------------------------------------------


def test_a_live_runners_jobs_are_not_orphans(store: Store, network: str) -> None:
    store.register_runner("r1", LEASE)
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    assert store.fail_orphaned_jobs("gone") == []
    store.claim_job("j1", "r1")
    assert store.fail_orphaned_jobs("gone") == []
    assert store.get_job("j1", "alice").status == "running"


def test_a_released_runners_active_jobs_fail(store: Store, network: str) -> None:
    store.register_runner("r1", LEASE)
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    store.release_runner("r1")
    assert store.fail_orphaned_jobs("the runner stopped") == ["j1"]
    job = store.get_job("j1", "alice")
    assert (job.status, job.error) == ("failed", "the runner stopped")
    assert job.finished_at is not None
    assert store.active_job(network) is None
    assert store.fail_orphaned_jobs("again") == []


def test_a_runner_that_never_registered_holds_nothing(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "ghost")
    assert store.fail_orphaned_jobs("gone") == ["j1"]
    assert store.get_job("j1", "alice").status == "failed"


def test_a_lease_runs_out_unless_renewed(store: Store, open_another: OpenStore) -> None:
    """Two runners on two instances (replicas); one keeps renewing a 0.5 s lease, the other
    stops (as a killed process would): only the second one's job is failed, by either."""
    other = open_another()
    for number, runner in enumerate(("alive", "dead"), start=1):
        store.create_network(f"n{number}", "", None, new_network())
        store.register_runner(runner, 0.5)
        store.create_job(f"j{number}", f"n{number}", "", REQUEST, 100, runner)
    store.claim_job("j1", "alive")
    other.claim_job("j2", "dead")
    assert other.fail_orphaned_jobs("gone") == []
    for _ in range(8):  # 0.8 s: "alive" renews its lease, "dead" does not
        time.sleep(0.1)
        store.register_runner("alive", 0.5)
    assert other.fail_orphaned_jobs("gone") == ["j2"]
    assert store.get_job("j1", "").status == "running"
    assert store.get_job("j2", "").status == "failed"


def test_a_runner_back_after_its_lease_ran_out_cannot_resume(store: Store, network: str) -> None:
    store.register_runner("r1", 0.2)
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    time.sleep(0.4)
    assert store.fail_orphaned_jobs("gone") == ["j1"]
    store.register_runner("r1", LEASE)  # its heartbeat comes back
    assert not store.record_progress("j1", 7, 0.3)  # so the job stops
    assert store.get_job("j1", "alice").status == "failed"


def test_a_job_failed_elsewhere_commits_nothing_more(store: Store, network: str) -> None:
    """The fence: once another process failed the job (its runner's lease ran out), that
    runner's next checkpoint is refused, and the network stays at the last one."""
    store.register_runner("r1", 0.2)
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    record = store.get_network(network, "alice")
    record = store.commit_update(network, "alice", 1, training_update(record, job_id="j1"))
    time.sleep(0.4)
    assert store.fail_orphaned_jobs("gone") == ["j1"]
    with pytest.raises(JobEnded) as ended:
        store.commit_update(network, "alice", 2, training_update(record, job_id="j1"))
    assert ended.value.job_id == "j1"
    assert store.get_meta(network, "alice").version == 2
    assert [step for step, _ in store.history(network)] == [1]


def test_no_commit_lands_after_a_job_takes_the_network(
    store: Store, open_another: OpenStore, network: str
) -> None:
    """Writers on two instances race a job's creation: every commit either lands before the
    job holds the network or is refused with NetworkBusy; none slips in after."""
    stores = [store, open_another()]
    refused: list[str] = []

    def writer(number: int) -> None:
        mine = stores[number % 2]
        while True:
            record = mine.get_network(network, "alice")
            try:
                mine.commit_update(network, "alice", record.meta.version, training_update(record))
            except NetworkBusy as busy:
                refused.append(busy.job_id)
                return
            except VersionConflict:
                continue

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(writer, number) for number in range(4)]
        time.sleep(0.3)
        stores[1].create_job("j1", network, "alice", REQUEST, 100, "r1")
        version = store.get_meta(network, "alice").version
        for future in futures:
            future.result()
    assert refused == ["j1"] * 4
    assert store.get_meta(network, "alice").version == version


def test_jobs_are_counted_by_status(store: Store, network: str) -> None:
    assert store.count_jobs() == {}
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    assert store.count_jobs() == {"queued": 1}
    store.request_cancel("j1", "alice")
    store.create_job("j2", network, "alice", REQUEST, 100, "r1")
    assert store.claim_job("j2", "r1") is not None
    assert store.count_jobs() == {"cancelled": 1, "running": 1}
