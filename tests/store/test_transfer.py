"""Copying the embedded SQLite store into PostgreSQL (``backprop-copy-store``): everything a
network is arrives unchanged, jobs arrive (active ones failed, saying why), and a refused or
failed copy leaves the target as it was."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model import TrainOptions
from service.store import JobRequest, Store, open_store, transfer
from service.store.dialects import SQLiteDialect
from service.store.transfer import MOVED, CopyRefused, copy_store, main
from tests.store.helpers import XOR_X, XOR_Y, assert_same_network, new_network, training_update
from tests.support.postgres import scratch_schema


@pytest.fixture
def target_url(postgres_database: str) -> str:
    return scratch_schema(postgres_database)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'backprop.db'}")
    yield store
    store.close()


def source_url(store: Store) -> str:
    assert isinstance(store.dialect, SQLiteDialect)
    return f"sqlite:///{store.dialect.path}"


def _fill(store: Store) -> None:
    """Two owners' networks, one trained twice (history, last gradients, version 3), and
    three jobs: one finished, one running, one queued."""
    trained = store.create_network("trained", "alice", "xor", new_network(seed=1))
    trained = store.commit_update("trained", "alice", 1, training_update(trained, epochs=5))
    store.commit_update("trained", "alice", 2, training_update(trained, epochs=3))
    store.create_network("plain", "bob", None, new_network(seed=2, optimizer="gd"))
    store.create_network("busy", "alice", None, new_network(seed=3))
    store.create_network("waiting", "bob", None, new_network(seed=4))
    request = JobRequest(X=XOR_X, Y=XOR_Y, options=TrainOptions(epochs=9))
    store.create_job("done", "trained", "alice", request, 9, "r1")
    store.claim_job("done", "r1")
    store.finish_job("done", 1, "succeeded", step=9, cost=0.5, final_cost=0.4)
    store.create_job("running", "busy", "alice", request, 9, "r1")
    store.claim_job("running", "r1")
    store.record_progress("running", 1, 4, 0.6)
    store.create_job("queued", "waiting", "bob", request, 9, "r1")


def _assert_same(actual: Store, expected: Store) -> None:
    for network_id, owner in (("trained", "alice"), ("plain", "bob"), ("busy", "alice")):
        got, want = actual.get_network(network_id, owner), expected.get_network(network_id, owner)
        assert got.meta == want.meta  # id, name, spec, version, steps, timestamps
        assert_same_network(got.network, want.network)
        assert actual.history(network_id) == expected.history(network_id)
    gradients, wanted = actual.last_gradients("trained"), expected.last_gradients("trained")
    assert gradients is not None
    assert wanted is not None
    assert (gradients.version, gradients.step, gradients.cost) == (3, 8, wanted.cost)
    np.testing.assert_array_equal(gradients.grad, wanted.grad)
    assert actual.last_gradients("plain") is None
    assert [m.id for m in actual.list_networks("alice")] == ["trained", "busy"]


def test_everything_arrives_and_active_jobs_arrive_failed(source: Store, target_url: str) -> None:
    _fill(source)
    counts = copy_store(source_url(source), target_url)
    assert counts == {"networks": 4, "history": 8, "last_gradients": 1, "jobs": 3}
    target = open_store(target_url)
    try:
        _assert_same(target, source)
        # Leases and runners belong to the source's processes: none come along.
        assert target.get_job("done", "alice") == replace(
            source.get_job("done", "alice"), runner=None
        )
        for job_id, owner, status in (("running", "alice", "running"), ("queued", "bob", "queued")):
            job = target.get_job(job_id, owner)
            assert job.status == "failed"
            assert job.error == MOVED.format(status=status)
            assert job.finished_at is not None
            assert job.step == source.get_job(job_id, owner).step
        assert target.active_job("busy") is None  # the network is free to train again
        assert target.count_jobs() == {"succeeded": 1, "failed": 2}
        assert [j.id for j in target.list_jobs("trained", "alice")] == ["done"]
    finally:
        target.close()


def test_a_target_holding_networks_is_refused_and_left_alone(
    source: Store, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(source)
    target = open_store(target_url)
    try:
        target.create_network("mine", "carol", None, new_network())
        with pytest.raises(CopyRefused, match="already holds 1 networks"):
            copy_store(source_url(source), target_url)
        with pytest.raises(SystemExit) as exit_:
            main([source_url(source), target_url])
        assert exit_.value.code == 2
        assert "already holds 1 networks" in capsys.readouterr().err
        assert target.count_networks() == 1
        assert target.count_jobs() == {}
    finally:
        target.close()


def test_the_command_copies_and_says_what(
    source: Store, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(source)
    main([source_url(source), target_url])
    assert capsys.readouterr().out.strip() == (
        "4 networks, 8 history, 1 last_gradients, 3 jobs copied"
    )


@pytest.mark.parametrize(
    ("source_url", "target", "fragment"),
    [
        ("postgresql://x/y", "postgresql://x/y", "source must be a sqlite:///"),
        ("sqlite:///{tmp}/backprop.db", "sqlite:///z.db", "target must be a postgresql://"),
        ("sqlite:///{tmp}/missing.db", "postgresql://x/y", "does not exist"),
    ],
)
def test_bad_urls_are_refused_before_anything_is_touched(
    tmp_path: Path, source_url: str, target: str, fragment: str
) -> None:
    open_store(f"sqlite:///{tmp_path / 'backprop.db'}").close()
    with pytest.raises(ValueError, match=fragment):
        copy_store(source_url.format(tmp=tmp_path), target)
    assert not (tmp_path / "missing.db").exists()


def test_a_copy_that_fails_midway_leaves_the_target_empty(
    source: Store, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(source)

    def broken(row: object, now: str) -> tuple[object, ...]:
        raise OSError("the disk went away")  # after networks, history and gradients went in

    monkeypatch.setattr(transfer, "_job_row", broken)
    with pytest.raises(OSError, match="disk"):
        copy_store(source_url(source), target_url)
    target = open_store(target_url)
    try:
        assert target.count_networks() == 0
        assert target.history("trained") == []
    finally:
        target.close()
