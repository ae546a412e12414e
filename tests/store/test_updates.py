"""commit_update on both backends: versions, conflicts, history, last gradients, and
concurrent writers (threads, and several store instances as replicas) that lose nothing."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model import replace_parameters
from service.store import (
    Idempotency,
    IdempotencyKeyTaken,
    IdempotencyMismatch,
    NetworkMissing,
    Store,
    StoredResponse,
    Update,
    VersionConflict,
)
from tests.store.conftest import OpenStore
from tests.store.helpers import assert_same_network, new_network, training_update


def test_a_commit_moves_version_steps_history_and_gradients(store: Store) -> None:
    created = store.create_network("n1", "", None, new_network())
    update = training_update(created, epochs=3)
    committed = store.commit_update("n1", "", 1, update)
    assert committed.meta.version == 2
    assert committed.meta.steps_trained == 3
    assert committed.meta.created_at == created.meta.created_at
    assert committed.meta.updated_at >= created.meta.updated_at

    record = store.get_network("n1", "")
    assert record.meta == committed.meta
    assert_same_network(record.network, update.network)
    assert store.history("n1") == list(update.history)

    gradients = store.last_gradients("n1")
    assert gradients is not None
    assert update.gradients is not None
    assert (gradients.version, gradients.step, gradients.cost) == (2, 3, update.gradients.cost)
    np.testing.assert_array_equal(gradients.grad, update.gradients.grad)


def test_history_appends_in_order_and_gradients_are_the_last_steps(store: Store) -> None:
    record = store.create_network("n1", "", None, new_network())
    steps: list[tuple[int, float]] = []
    for epochs in (2, 1, 4):
        update = training_update(record, epochs)
        steps.extend(update.history)
        record = store.commit_update("n1", "", record.meta.version, update)
    assert [step for step, _ in store.history("n1")] == list(range(1, 8))
    assert store.history("n1") == steps
    gradients = store.last_gradients("n1")
    assert gradients is not None
    assert (gradients.version, gradients.step) == (4, 7)


def test_a_commit_without_history_or_gradients_keeps_the_last_ones(store: Store) -> None:
    record = store.create_network("n1", "", None, new_network())
    record = store.commit_update("n1", "", 1, training_update(record, 2))
    other = new_network(seed=9)
    replaced = replace_parameters(record.network, other.W, other.b)  # as PUT /parameters does
    record = store.commit_update("n1", "", 2, Update(replaced))
    assert record.meta.version == 3
    assert_same_network(store.get_network("n1", "").network, replaced)
    assert len(store.history("n1")) == 2
    gradients = store.last_gradients("n1")
    assert gradients is not None
    assert gradients.version == 2


def test_a_stale_version_conflicts_and_changes_nothing(store: Store) -> None:
    record = store.create_network("n1", "", None, new_network())
    first = store.commit_update("n1", "", 1, training_update(record))
    with pytest.raises(VersionConflict) as raised:
        store.commit_update("n1", "", 1, training_update(record, 5))
    assert raised.value.current == 2
    assert store.get_meta("n1", "") == first.meta
    assert store.get_version("n1", "") == 2
    assert [step for step, _ in store.history("n1")] == [1]
    assert_same_network(store.get_network("n1", "").network, first.network)


def test_committing_to_a_missing_network(store: Store) -> None:
    record = store.create_network("n1", "alice", None, new_network())
    with pytest.raises(NetworkMissing):
        store.commit_update("n1", "bob", 1, training_update(record))
    store.delete_network("n1", "alice")
    with pytest.raises(NetworkMissing):
        store.commit_update("n1", "alice", 1, training_update(record))


def test_a_conflict_seen_through_another_instance(store: Store, open_another: OpenStore) -> None:
    """If-Match across replicas: a commit through one makes the other's version stale."""
    other = open_another()
    record = store.create_network("n1", "", None, new_network())
    other.commit_update("n1", "", 1, training_update(record))
    with pytest.raises(VersionConflict) as raised:
        store.commit_update("n1", "", 1, training_update(record))
    assert raised.value.current == 2


THREADS = 8
COMMITS = 10


@pytest.mark.parametrize("instances", [1, 2])
def test_concurrent_read_compute_commit_loses_nothing(
    store: Store, open_another: OpenStore, instances: int
) -> None:
    """8 threads x 25 read-compute-commit loops (with no lock but the store's), over one store
    instance or two (as two replicas): every step lands once, in order."""
    stores = [store, *(open_another() for _ in range(instances - 1))]
    store.create_network("n1", "", None, new_network())
    conflicts = 0
    guard = threading.Lock()

    def writer(number: int) -> None:
        nonlocal conflicts
        mine = stores[number % len(stores)]
        for _ in range(COMMITS):
            while True:
                record = mine.get_network("n1", "")
                try:
                    mine.commit_update("n1", "", record.meta.version, training_update(record))
                    break
                except VersionConflict:
                    with guard:
                        conflicts += 1

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(writer, range(THREADS)))

    total = THREADS * COMMITS
    meta = store.get_meta("n1", "")
    assert (meta.version, meta.steps_trained) == (1 + total, total)
    assert [step for step, _ in store.history("n1")] == list(range(1, total + 1))
    gradients = store.last_gradients("n1")
    assert gradients is not None
    assert (gradients.version, gradients.step) == (1 + total, total)
    assert conflicts > 0, "the threads never raced: the test proves nothing"


def test_history_is_thinned_evenly_and_stays_bounded(open_another: OpenStore) -> None:
    """Past 2 x history_points rows, every other kept step goes (by step number), and later
    steps are kept at the doubled stride: the history stays even and bounded."""
    store = open_another()
    store.history_points = 100
    record = store.create_network("n1", "", None, new_network(optimizer="gd"))
    for _ in range(9):
        record = store.commit_update("n1", "", record.meta.version, training_update(record, 100))
    steps = [step for step, _ in store.history("n1")]
    assert record.meta.steps_trained == 900
    assert 100 <= len(steps) <= 200
    assert steps[0] == 1
    stride = steps[2] - steps[1]
    assert stride > 1
    assert all(b - a == stride for a, b in itertools.pairwise(steps[1:]))
    assert all(step % stride == 0 for step in steps[1:])


def _answer(body: bytes) -> Callable[[object], StoredResponse]:
    return lambda record: StoredResponse(200, body, {"etag": '"2"'})


def test_an_idempotent_answer_is_kept_with_its_change(store: Store) -> None:
    record = store.create_network("n1", "alice", None, new_network())
    kept = Idempotency("alice", "key-1", "print-1", _answer(b"first"))
    update = dataclasses.replace(training_update(record), idempotency=kept)
    store.commit_update("n1", "alice", 1, update)
    assert store.replay("alice", "key-1", "print-1") == StoredResponse(
        200, b"first", {"etag": '"2"'}
    )
    assert store.replay("bob", "key-1", "print-1") is None  # keys belong to their owner
    with pytest.raises(IdempotencyMismatch):
        store.replay("alice", "key-1", "another request")


def test_a_change_whose_key_is_taken_is_not_applied(store: Store) -> None:
    record = store.create_network("n1", "alice", None, new_network())
    first = dataclasses.replace(
        training_update(record), idempotency=Idempotency("alice", "k", "p", _answer(b"1"))
    )
    store.commit_update("n1", "alice", 1, first)
    record = store.get_network("n1", "alice")
    again = Idempotency("alice", "k", "p", _answer(b"2"))
    with pytest.raises(IdempotencyKeyTaken):
        store.commit_update(
            "n1", "alice", 2, dataclasses.replace(training_update(record), idempotency=again)
        )
    assert store.get_version("n1", "alice") == 2  # the second change rolled back
    assert store.replay("alice", "k", "p") == StoredResponse(200, b"1", {"etag": '"2"'})


def test_kept_answers_go_with_their_network(store: Store) -> None:
    record = store.create_network("n1", "alice", None, new_network())
    kept = Idempotency("alice", "k", "p", _answer(b"1"))
    store.commit_update(
        "n1", "alice", 1, dataclasses.replace(training_update(record), idempotency=kept)
    )
    store.delete_network("n1", "alice")
    assert store.replay("alice", "k", "p") is None  # a retry after the delete changes afresh
