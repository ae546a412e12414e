"""``backprop-copy-store SOURCE TARGET``: copy an embedded SQLite store into PostgreSQL, the
way from the default single process to replicas.

Everything a network is carries over unchanged: its id, owner, name, spec, version (so the
ETags clients hold stay valid), steps, parameters and optimizer state, history, last
gradients and timestamps; and every job's record, oldest first. A job still queued or
running in the copy (stop the service first; a crash leaves such jobs behind too) arrives
failed, saying why: its process does not serve the target. The copy reads one snapshot of
the source and writes one PostgreSQL transaction, so a failure leaves the target as it was;
a target that already holds networks is refused, so two services' data never mix.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

import psycopg

from service.store.base import ACTIVE_STATUSES, utc_now
from service.store.postgres import PostgresStore
from service.store.sqlite import SQLiteStore, sqlite_path

# Rows are streamed, never all held at once: one network's body can be tens of megabytes.
_COPIES: tuple[tuple[str, str, str], ...] = (
    (
        "networks",
        "SELECT id, owner, name, spec, version, steps_trained, body, created_at, updated_at "
        "FROM networks ORDER BY created_at, rowid",
        "id, owner, name, spec, version, steps_trained, body, created_at, updated_at",
    ),
    (
        "history",
        "SELECT network_id, step, cost FROM history ORDER BY network_id, step",
        "network_id, step, cost",
    ),
    (
        "last_gradients",
        "SELECT network_id, version, step, cost, body FROM last_gradients",
        "network_id, version, step, cost, body",
    ),
)
_JOBS = (
    "SELECT j.id, j.network_id, j.owner, j.status, j.step, j.total_steps, j.cost, j.final_cost, "
    "j.error, j.cancel_requested, coalesce(r.body, j.request), j.created_at, j.started_at, "
    "j.finished_at FROM jobs AS j LEFT JOIN job_requests AS r ON r.job_id = j.id "
    "ORDER BY j.created_at, j.rowid"
)
_JOB_COLUMNS = (
    "id, network_id, owner, status, step, total_steps, cost, final_cost, error, "
    "cancel_requested, runner, request, created_at, started_at, finished_at"
)
MOVED = (
    "This job was {status} when its store was copied to PostgreSQL; it did not move with it. "
    "Start a new job to continue from the network's last checkpoint."
)


class CopyRefused(Exception):
    """The target cannot take the copy (it already holds networks)."""


def _rows(conn: sqlite3.Connection, query: str) -> Iterator[tuple[Any, ...]]:
    cursor = conn.execute(query)
    while batch := cursor.fetchmany(256):
        yield from batch


def _job_row(row: tuple[Any, ...], now: str) -> tuple[Any, ...]:
    (id_, network_id, owner, status, step, total, cost, final, error, cancel, request) = row[:11]
    created, started, finished = row[11:]
    if status in ACTIVE_STATUSES:
        status, error, finished = "failed", MOVED.format(status=status), now
    return (
        id_,
        network_id,
        owner,
        status,
        step,
        total,
        cost,
        final,
        error,
        bool(cancel),
        None,  # no runner: leases belong to the source's processes
        bytes(request),
        created,
        started,
        finished,
    )


def copy_store(source_url: str, target_url: str) -> dict[str, int]:
    """Copy the SQLite store ``source_url`` names into the PostgreSQL one ``target_url``
    names (both schemas migrated to this version first); how many rows of each table."""
    if not source_url.startswith("sqlite:///"):
        raise ValueError(f"the source must be a sqlite:/// URL; received {source_url!r}")
    if not target_url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"the target must be a postgresql:// URL; received {target_url!r}")
    path = sqlite_path(source_url)
    if not path.is_file():
        raise ValueError(f"the source {path} does not exist")
    SQLiteStore(path).close()  # brings an older file's schema up to date
    target = PostgresStore.from_url(target_url, max_connections=1)
    counts: dict[str, int] = {}
    try:
        with (
            closing(sqlite3.connect(path, isolation_level=None)) as source,
            target._transaction() as conn,
        ):
            source.execute("BEGIN")  # one snapshot of everything, however long the copy
            row = conn.execute("SELECT count(*) FROM networks").fetchone()
            if row is not None and row[0]:
                raise CopyRefused(
                    f"the target already holds {row[0]} networks; copy into an empty database"
                )
            for table, query, columns in _COPIES:
                counts[table] = _copy_rows(conn, table, columns, _rows(source, query))
            now = utc_now()
            jobs = (_job_row(row, now) for row in _rows(source, _JOBS))
            counts["jobs"] = _copy_rows(conn, "jobs", _JOB_COLUMNS, jobs)
    finally:
        target.close()
    return counts


def _copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: str, rows: Iterator[tuple[Any, ...]]
) -> int:
    """COPY ``rows`` into ``table`` (PostgreSQL parses each text value as its column's type:
    the ISO timestamps, 0/1 integers, blobs)."""
    count = 0
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="backprop-copy-store", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("source", help="sqlite:///path/to/backprop.db (the service stopped)")
    parser.add_argument("target", help="postgresql://user:password@host:5432/dbname")
    args = parser.parse_args(argv)
    try:
        counts = copy_store(args.source, args.target)
    except (CopyRefused, ValueError) as refused:
        parser.exit(2, f"backprop-copy-store: {refused}\n")
    print(", ".join(f"{count} {table}" for table, count in counts.items()), "copied")


if __name__ == "__main__":
    main()
