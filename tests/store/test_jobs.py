"""Training jobs in the store, on both backends: a job's life (queued, claimed, progress,
cancel, finish, removal), the one-active-job-per-network rule, attempts (a resumed job's new
attempt fences off the old one), hand-backs, the restart limit, and runners' liveness tokens,
which is how a process tells a dead runner's jobs from a live one's."""

from __future__ import annotations

import os
import re
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model import TrainOptions
from service.store import (
    JobActive,
    JobEnded,
    JobMissing,
    JobRequest,
    NetworkBusy,
    NetworkMissing,
    Store,
    Update,
)
from service.store.sql import BROKER
from tests.store.conftest import OpenStore
from tests.store.helpers import XOR_X, XOR_Y, new_network, training_update

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
OPTIONS = TrainOptions(epochs=50, batch_size=2, shuffle_seed=3, learning_rate=0.2)
REQUEST = JobRequest(X=XOR_X, Y=XOR_Y, options=OPTIONS)


@pytest.fixture
def network(store: Store) -> str:
    store.create_network("n1", "alice", None, new_network())
    return "n1"


def test_a_new_job_is_queued_and_holds_its_network(store: Store, network: str) -> None:
    job = store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    assert (job.id, job.network_id, job.owner, job.status, job.runner) == (
        "j1",
        network,
        "alice",
        "queued",
        "r1",
    )
    assert (job.step, job.total_steps, job.cost, job.final_cost, job.error) == (
        0,
        100,
        None,
        None,
        None,
    )
    assert (job.cancel_requested, job.restarts, job.attempt, job.checkpoint_step) == (
        False,
        0,
        0,
        0,
    )
    assert TIMESTAMP.fullmatch(job.created_at)
    assert (job.started_at, job.finished_at) == (None, None)
    assert job.active
    assert store.get_job("j1", "alice") == job
    assert store.list_jobs(network, "alice") == [job]
    assert store.active_job(network) == "j1"


def test_jobs_of_other_owners_and_unknown_ones_are_missing(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    for call in (
        lambda: store.get_job("j1", "bob"),
        lambda: store.request_cancel("j1", "bob"),
        lambda: store.get_job("nope", "alice"),
        lambda: store.delete_job("j1", "bob"),
    ):
        with pytest.raises(JobMissing):
            call()
    assert store.list_jobs(network, "bob") == []
    with pytest.raises(NetworkMissing):
        store.create_job("j2", network, "bob", REQUEST, 100, None)


def test_one_active_job_per_network(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    with pytest.raises(NetworkBusy) as busy:
        store.create_job("j2", network, "alice", REQUEST, 100, None)
    assert busy.value.job_id == "j1"
    store.request_cancel("j1", "alice")  # queued: ends at once
    store.create_job("j2", network, "alice", REQUEST, 100, None)


def test_only_one_of_many_concurrent_creates_wins(
    store: Store, network: str, open_another: OpenStore
) -> None:
    stores = [store, open_another()]

    def create(number: int) -> str:
        try:
            stores[number % 2].create_job(f"j{number}", network, "alice", REQUEST, 100, None)
        except NetworkBusy:
            return "busy"
        return "created"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(8)))
    assert outcomes.count("created") == 1


def test_a_claim_starts_an_attempt_with_the_request(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.hold_runner("r1")
    claim = store.claim_job("j1", "r1", attempt=0)
    assert claim is not None
    assert (claim.job.status, claim.job.attempt, claim.job.restarts, claim.job.runner) == (
        "running",
        1,
        0,
        "r1",
    )
    assert claim.job.started_at is not None
    np.testing.assert_array_equal(claim.request.X, XOR_X)
    np.testing.assert_array_equal(claim.request.Y, XOR_Y)
    assert claim.request.options == OPTIONS
    assert store.claim_job("j1", "r2", attempt=0) is None  # that attempt was taken: stale
    store.release_runner("r1")  # r1 dies: the message that started its attempt comes again
    taken = store.claim_job("j1", "r2", attempt=0)
    assert taken is not None
    assert (taken.job.attempt, taken.job.restarts, taken.job.runner) == (2, 1, "r2")
    assert store.claim_job("j1", "r3", attempt=0) is None  # older than the attempt before


def test_exactly_one_claimer_wins_across_instances(
    store: Store, network: str, open_another: OpenStore
) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    stores = [store, open_another(), open_another()]
    for n in range(6):
        stores[n % 3].hold_runner(f"r{n}")  # alive: the losers may not take the winner's over
    with ThreadPoolExecutor(6) as pool:
        claims = list(
            pool.map(lambda n: stores[n % 3].claim_job("j1", f"r{n}", attempt=0), range(6))
        )
    assert sum(claim is not None for claim in claims) == 1


def test_progress_then_cancel_of_a_running_job(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.claim_job("j1", "r1")
    assert store.record_progress("j1", 1, 10, 0.5)
    job = store.get_job("j1", "alice")
    assert (job.step, job.cost) == (10, 0.5)
    cancelled = store.request_cancel("j1", "alice")
    assert (cancelled.status, cancelled.cancel_requested) == ("running", True)
    assert not store.record_progress("j1", 1, 11, 0.4)  # the runner learns it should stop
    ended = store.finish_job("j1", 1, "cancelled", step=11, cost=0.4)
    assert ended is not None
    assert ended.status == "cancelled"
    assert ended.finished_at is not None


def test_cancelling_a_queued_job_ends_it_at_once_and_it_never_runs(
    store: Store, network: str
) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    assert store.request_cancel("j1", "alice").status == "cancelled"
    assert store.claim_job("j1", "r1") is None
    assert store.active_job(network) is None


def test_an_ended_job_keeps_its_end_and_drops_its_batch(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.claim_job("j1", "r1")
    ended = store.finish_job("j1", 1, "succeeded", step=100, cost=0.1, final_cost=0.09)
    assert ended is not None
    assert (ended.status, ended.final_cost) == ("succeeded", 0.09)
    assert store.finish_job("j1", 1, "failed", step=3, cost=None, error="late") == ended
    assert store.request_cancel("j1", "alice") == ended
    rows = store._read("SELECT count(*) FROM job_requests WHERE job_id = ?", ("j1",))
    assert rows[0][0] == 0


def test_a_new_job_removes_the_networks_ended_jobs_but_the_newest(
    store: Store, network: str
) -> None:
    for number in range(1, 6):
        store.create_job(f"j{number}", network, "alice", REQUEST, 100, None, keep_ended=2)
        store.request_cancel(f"j{number}", "alice")  # ended at once, queued as it was
    assert [job.id for job in store.list_jobs(network, "alice")] == ["j3", "j4", "j5"]
    store.create_job("j6", network, "alice", REQUEST, 100, None, keep_ended=2)
    assert [job.id for job in store.list_jobs(network, "alice")] == ["j4", "j5", "j6"]
    with pytest.raises(JobMissing):
        store.get_job("j1", "alice")
    store.create_network("n2", "alice", None, new_network())
    store.create_job("other", "n2", "alice", REQUEST, 100, None, keep_ended=0)
    assert len(store.list_jobs(network, "alice")) == 3  # another network's jobs are its own


def test_an_ended_job_can_be_removed_an_active_one_not(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    with pytest.raises(JobActive):
        store.delete_job("j1", "alice")
    store.request_cancel("j1", "alice")
    store.delete_job("j1", "alice")
    with pytest.raises(JobMissing):
        store.get_job("j1", "alice")
    assert store.list_jobs(network, "alice") == []


def test_an_active_job_holds_the_network_and_only_its_attempt_commits(
    store: Store, network: str
) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    record = store.get_network(network, "alice")
    with pytest.raises(NetworkBusy):
        store.commit_update(network, "alice", 1, training_update(record))
    with pytest.raises(JobEnded):  # queued: no attempt holds it yet
        store.commit_update(network, "alice", 1, training_update(record, job=("j1", 1)))
    store.claim_job("j1", "r1")
    committed = store.commit_update(network, "alice", 1, training_update(record, 3, job=("j1", 1)))
    assert committed.meta.version == 2
    job = store.get_job("j1", "alice")
    assert (job.checkpoint_step, job.step) == (3, 3)  # with the network, in one transaction


def test_a_takeover_fences_off_the_old_attempt(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    taken = store.claim_job("j1", "r2", attempt=1)  # as after r1 died
    assert taken is not None
    store.hold_runner("r2")
    assert (taken.job.attempt, taken.job.restarts, taken.job.runner) == (2, 1, "r2")
    record = store.get_network(network, "alice")
    with pytest.raises(JobEnded):
        store.commit_update(network, "alice", 1, training_update(record, job=("j1", 1)))
    assert not store.record_progress("j1", 1, 5, 0.3)
    assert store.finish_job("j1", 1, "failed", step=5, cost=0.3).status == "running"  # type: ignore[union-attr]
    assert store.claim_job("j1", "r3", attempt=1) is None  # someone else resumed it first
    store.release_runner("r2")


def test_a_job_handed_back_is_queued_for_its_next_attempt(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "r1")
    store.claim_job("j1", "r1")
    store.hand_back("j1", 1, interrupted=True)
    job = store.get_job("j1", "alice")
    assert (job.status, job.runner, job.restarts) == ("queued", None, 1)
    resumed = store.claim_job("j1", "r2", attempt=1)
    assert resumed is not None
    assert (resumed.job.attempt, resumed.job.restarts) == (2, 1)
    store.hand_back("j1", 2, interrupted=False)  # a planned hand-back (a slice) is no restart
    assert store.get_job("j1", "alice").restarts == 1


def test_a_job_past_its_restart_limit_ends_failed(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.claim_job("j1", "r0", max_restarts=2)
    for attempt in (1, 2):
        assert store.claim_job("j1", f"r{attempt}", attempt=attempt, max_restarts=2) is not None
    assert store.claim_job("j1", "r3", attempt=3, max_restarts=2) is None
    job = store.get_job("j1", "alice")
    assert job.status == "failed"
    assert job.error is not None
    assert "interrupted 3 times" in job.error
    assert job.restarts == 2


def test_deleting_the_network_deletes_its_jobs(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.delete_network(network, "alice")
    with pytest.raises(JobMissing):
        store.get_job("j1", "alice")
    assert store.claim_job("j1", "r1") is None


def test_a_live_runners_jobs_are_not_orphans_a_dead_ones_are(store: Store, network: str) -> None:
    store.hold_runner("live-runner")
    store.create_job("j1", network, "alice", REQUEST, 100, "live-runner")
    assert store.orphaned_jobs() == []
    store.release_runner("live-runner")  # as when its process ends
    assert [job.id for job in store.orphaned_jobs()] == ["j1"]


def test_handed_back_and_never_held_jobs_are_there_to_resume(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    assert [job.id for job in store.orphaned_jobs()] == ["j1"]


def test_another_process_sees_a_runner_alive_while_its_token_is_held(
    store: Store, network: str, open_another: OpenStore
) -> None:
    other = open_another()  # as another process on the same database
    other.hold_runner("other-runner")
    store.create_job("j1", network, "alice", REQUEST, 100, "other-runner")
    assert store.orphaned_jobs() == []
    other.release_runner("other-runner")
    assert [job.id for job in store.orphaned_jobs()] == ["j1"]


def test_a_runner_is_alive_in_a_process_with_more_than_1024_open_files(
    store: Store, network: str, open_another: OpenStore
) -> None:
    """A busy server has descriptors past select()'s limit: its tokens' stay held and alive."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limits[0] < 1500:  # a default soft limit of 1024: raise it, as the service does
        if limits[1] != resource.RLIM_INFINITY and limits[1] < 1500:
            pytest.skip(f"the process may open only {limits[1]} files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1500, limits[1]))
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        store.hold_runner("busy-runner")  # its token's descriptor is past 1023
        store.create_job("j1", network, "alice", REQUEST, 100, "busy-runner")
        assert store.dialect.runner_alive("busy-runner")
        assert store.orphaned_jobs() == []
        assert open_another().orphaned_jobs() == []
        store.release_runner("busy-runner")
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_no_commit_lands_after_a_job_takes_the_network(
    store: Store, network: str, open_another: OpenStore
) -> None:
    """A /train racing a job's creation: either the train lands first, or it is refused."""
    other = open_another()
    record = store.get_network(network, "alice")
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def train() -> None:
        barrier.wait()
        try:
            other.commit_update(network, "alice", 1, training_update(record))
            outcome["train"] = "committed"
        except NetworkBusy:
            outcome["train"] = "busy"

    thread = threading.Thread(target=train)
    thread.start()
    barrier.wait()
    job = store.create_job("j1", network, "alice", REQUEST, 100, None)
    thread.join()
    assert job.status == "queued"
    version = store.get_version(network, "alice")
    assert (outcome["train"], version) in {("committed", 2), ("busy", 1)}


def test_jobs_are_counted_by_status(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.request_cancel("j1", "alice")
    store.create_job("j2", network, "alice", REQUEST, 100, None)
    assert store.count_jobs() == {"cancelled": 1, "queued": 1}


def test_a_plain_update_is_refused_while_a_job_runs(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.claim_job("j1", "r1")
    with pytest.raises(NetworkBusy):
        store.commit_update(network, "alice", 1, Update(new_network(seed=7)))


# ---- with a broker: where a queued job's message is ------------------------------------


def test_a_published_job_is_no_orphan_one_without_a_message_is(store: Store, network: str) -> None:
    store.hold_runner("api")
    store.create_job("j1", network, "alice", REQUEST, 100, "api")
    assert store.orphaned_jobs(broker=True) == []  # its publisher is at it
    store.enqueued("j1", 0, "api", published=True)
    assert store.get_job("j1", "alice").runner == BROKER
    assert store.orphaned_jobs(broker=True) == []
    assert [job.id for job in store.orphaned_jobs()] == ["j1"]  # no broker: nobody runs it
    store.request_cancel("j1", "alice")
    store.create_job("j2", network, "alice", REQUEST, 100, "api")
    store.enqueued("j2", 0, "api", published=False)  # the broker was away
    assert [job.id for job in store.orphaned_jobs(broker=True)] == ["j2"]
    store.release_runner("api")


def test_the_job_of_a_publisher_that_died_is_adopted_once(
    store: Store, network: str, open_another: OpenStore
) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, "dead-api")
    (orphan,) = store.orphaned_jobs(broker=True)
    stores = [store, open_another(), open_another()]
    for number, each in enumerate(stores):
        each.hold_runner(f"w{number}")
    with ThreadPoolExecutor(3) as pool:
        adopted = list(pool.map(lambda n: stores[n].adopt(orphan, f"w{n}"), range(3)))
    winners = [job for job in adopted if job is not None]
    assert len(winners) == 1
    assert (winners[0].status, winners[0].restarts) == ("queued", 0)
    assert store.orphaned_jobs(broker=True) == []  # its adopter is alive, publishing it
    for number, each in enumerate(stores):
        each.release_runner(f"w{number}")


def test_a_running_job_whose_worker_died_is_adopted_with_a_restart(
    store: Store, network: str
) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.claim_job("j1", "dead-worker")
    (orphan,) = store.orphaned_jobs(broker=True)
    store.hold_runner("w1")
    adopted = store.adopt(orphan, "w1")
    assert adopted is not None
    assert (adopted.status, adopted.attempt, adopted.restarts, adopted.runner) == (
        "queued",
        1,
        1,
        "w1",
    )
    assert store.adopt(orphan, "w1") is None  # as found, it is no more
    assert store.claim_job("j1", "w2", attempt=0) is None  # the dead attempt's message, late
    claim = store.claim_job("j1", "w2", attempt=1)  # the adopter's message
    assert claim is not None
    assert (claim.job.attempt, claim.job.restarts) == (2, 1)
    store.release_runner("w1")


def test_a_slice_handed_back_stays_its_workers_until_published(store: Store, network: str) -> None:
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.hold_runner("w1")
    store.claim_job("j1", "w1")
    handed = store.hand_back("j1", 1, interrupted=False, runner="w1")
    assert handed is not None
    assert (handed.status, handed.runner, handed.restarts) == ("queued", "w1", 0)
    assert store.hand_back("j1", 1, interrupted=False, runner="w1") is None  # not running
    assert store.orphaned_jobs(broker=True) == []
    store.release_runner("w1")  # it died before publishing
    assert [job.id for job in store.orphaned_jobs(broker=True)] == ["j1"]


def test_runners_are_counted_by_kind_while_alive(
    store: Store, network: str, open_another: OpenStore
) -> None:
    other = open_another()
    store.hold_runner("s1")
    other.hold_runner("w1", "worker")
    other.hold_runner("w2", "worker")
    assert store.count_runners() == {"service": 1, "worker": 2}
    other.release_runner("w1")
    other.close()  # as when its process dies: w2's token goes with it
    # (PostgreSQL frees a closed session's locks a moment after the client has closed it.)
    deadline = time.monotonic() + 30
    while (counts := store.count_runners()) != {"service": 1}:
        assert time.monotonic() < deadline, counts
        time.sleep(0.02)
    store.release_runner("s1")
    assert store.count_runners() == {}


def test_restarts_are_summed_over_the_jobs_on_record(store: Store, network: str) -> None:
    assert store.total_restarts() == 0
    store.create_job("j1", network, "alice", REQUEST, 100, None)
    store.claim_job("j1", "r1")
    store.claim_job("j1", "r2", attempt=1)
    store.claim_job("j1", "r3", attempt=2)
    assert store.total_restarts() == 2
