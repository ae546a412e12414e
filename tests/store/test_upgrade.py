"""A database that round 1 wrote (networks as ``.npz`` archives) opens with this store on both
backends: every network arrives with the same parameters, moments and counters, its last
gradients as a flat vector, and a job that was active ends failed, saying why."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from model import Network, OptimizerSpec, build_spec, create_network
from service.store import open_store
from service.store.dialects import Dialect, PostgresDialect, SQLiteDialect
from service.store.schema import _POSTGRES_ROUND_1, _SQLITE_ROUND_1, UPGRADED, _apply
from service.store.sql import Store


def _round_1_body(network: Network, steps: int, t: int) -> bytes:
    """A network as round 1's ``model.serialize.to_bytes`` wrote it."""
    spec = network.spec.to_dict()
    del spec["dropout"]  # round 1's specs had no dropout
    header = {
        "format": "backprop-service/network",
        "version": 1,
        "spec": spec,
        "steps_trained": steps,
        "optimizer_t": t,
    }
    arrays: dict[str, Any] = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for l, (W, b) in enumerate(zip(network.W, network.b, strict=True), start=1):
        arrays[f"W{l}"], arrays[f"b{l}"] = W, b
    for name, (vW, vb) in network.moment_views.items():
        for l, (w, b) in enumerate(zip(vW, vb, strict=True), start=1):
            arrays[f"{name}W{l}"], arrays[f"{name}b{l}"] = w, b
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _round_1_gradients(dW: list[Any], db: list[Any]) -> bytes:
    arrays = {f"dW{i}": w for i, w in enumerate(dW)} | {f"db{i}": b for i, b in enumerate(db)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write_round_1(dialect: Dialect, networks: dict[str, Network]) -> None:
    steps = _SQLITE_ROUND_1 if isinstance(dialect, SQLiteDialect) else _POSTGRES_ROUND_1
    with dialect.writing() as conn:
        for step in steps:
            _apply(dialect, conn, step)
        if isinstance(dialect, PostgresDialect):
            conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at "
                "TIMESTAMPTZ)"
            )
            for number in range(1, len(steps) + 1):
                conn.execute("INSERT INTO schema_migrations VALUES (%s, now())", (number,))
        else:
            conn.execute(f"PRAGMA user_version = {len(steps)}")
        run = dialect.execute
        now = "2026-11-01T00:00:00.000Z"
        for network_id, network in networks.items():
            spec = network.spec.to_dict()
            del spec["dropout"]
            body = _round_1_body(network, steps=3, t=3)
            run(
                conn,
                "INSERT INTO networks (id, owner, name, spec, version, steps_trained, body, "
                "created_at, "
                "updated_at) VALUES (?, 'o', NULL, ?, 4, 3, ?, ?, ?)",
                (network_id, json.dumps(spec), body, now, now),
            )
            run(
                conn,
                "INSERT INTO history (network_id, step, cost) VALUES (?, 1, 0.5), (?, 2, "
                "0.4), (?, 3, 0.3)",
                (network_id, network_id, network_id),
            )
            grads = _round_1_gradients([w * 0.5 for w in network.W], [b + 1.0 for b in network.b])
            run(
                conn,
                "INSERT INTO last_gradients (network_id, version, step, cost, body) "
                "VALUES (?, 4, 3, 0.3, ?)",
                (network_id, grads),
            )
        request = b"an old npz request" if isinstance(dialect, SQLiteDialect) else b""
        columns = "id, network_id, owner, status, step, total_steps, runner, request, created_at"
        run(
            conn,
            f"INSERT INTO jobs ({columns}) "
            "VALUES ('old-job', 'adam64', 'o', 'running', 2, 9, 'r', ?, ?)",
            (request, now),
        )


def _dialect(store_url: str) -> Dialect:
    if store_url.startswith("sqlite:///"):
        return SQLiteDialect(Path(store_url.removeprefix("sqlite:///")), 5.0)
    return PostgresDialect(store_url, 2, 5.0)


def test_a_round_1_database_is_upgraded_in_place(store_url: str) -> None:
    networks = {}
    kinds = (
        ("adam64", "adam", "float64"),
        ("gd32", "gd", "float32"),
        ("mom", "momentum", "float64"),
    )
    for name, optimizer, dtype in kinds:
        spec = build_spec([2, 3, 1], seed=1, dtype=dtype, optimizer=OptimizerSpec(optimizer, 0.01))
        network = create_network(spec)
        network.theta[:] = np.arange(network.theta.size) / 7.0
        network.moments[:] = np.arange(network.moments.size).reshape(network.moments.shape) / 11.0
        networks[name] = network
    dialect = _dialect(store_url)
    _write_round_1(dialect, networks)
    dialect.close()
    store: Store = open_store(store_url)
    try:
        for name, network in networks.items():
            record = store.get_network(name, "o")
            assert (record.meta.version, record.meta.steps_trained, record.network.optimizer_t) == (
                4,
                3,
                3,
            )
            assert record.meta.spec.dropout is None
            assert record.network.theta.dtype == network.theta.dtype
            np.testing.assert_array_equal(record.network.theta, network.theta)
            np.testing.assert_array_equal(record.network.moments, network.moments)
            assert store.history(name) == [(1, 0.5), (2, 0.4), (3, 0.3)]
            gradients = store.last_gradients(name)
            assert gradients is not None
            expected = np.concatenate(
                [(w * 0.5).ravel() for w in network.W] + [(b + 1.0).ravel() for b in network.b]
            )
            np.testing.assert_array_equal(gradients.grad, expected.astype(network.theta.dtype))
        job = store.get_job("old-job", "o")
        assert (job.status, job.error) == ("failed", UPGRADED.format(status="running"))
        assert store.active_job("adam64") is None  # free to train again
    finally:
        store.close()
