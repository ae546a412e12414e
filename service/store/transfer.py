"""``backprop-copy-store SOURCE TARGET``: copy an embedded SQLite store into PostgreSQL, the
way from the default single process to replicas.

Everything a network is carries over unchanged: its id, owner, name, spec, version (so the
ETags clients hold stay valid), steps, parameters and optimizer state, history, last
gradients and timestamps; and every job's record, oldest first (not its batch: an active job
does not move, and an ended one has none). A job still queued or
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
from pathlib import Path
from typing import Any

import psycopg

from service.store import open_store, sqlite_path
from service.store.dialects import PostgresDialect
from service.store.records import ACTIVE_STATUSES, utc_now
from service.store.sql import JOB, META

# Rows are streamed, never all held at once: one network's parameters can be tens of megabytes.
_NETWORK_COLUMNS = (
    f"{META}, optimizer_t, params, moments, stored_bytes, history_stride, history_rows"
)
_COPIES: tuple[tuple[str, str, str], ...] = (
    (
        "networks",
        f"SELECT {_NETWORK_COLUMNS} FROM networks ORDER BY created_at, rowid",
        _NETWORK_COLUMNS,
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
    """A job as the target keeps it: an active one fails (its process serves the source),
    and none keeps its runner (a token of the source's processes)."""
    values = list(row)
    status = values[3]
    if status in ACTIVE_STATUSES:
        values[3], values[8], values[13] = "failed", MOVED.format(status=status), now
    values[9] = bool(values[9])
    values[10] = None
    return tuple(values)


def copy_store(source_url: str, target_url: str) -> dict[str, int]:
    """Copy the SQLite store ``source_url`` names into the PostgreSQL one ``target_url``
    names (both schemas migrated to this version first); how many rows of each table."""
    if not source_url.startswith("sqlite:///"):
        raise ValueError(f"the source must be a sqlite:/// URL; received {source_url!r}")
    if not target_url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"the target must be a postgresql:// URL; received {target_url!r}")
    path = Path(sqlite_path(source_url))
    if not path.is_file():
        raise ValueError(f"the source {path} does not exist")
    open_store(source_url).close()  # brings an older file's schema up to date
    target = open_store(target_url, pool_size=1)
    assert isinstance(target.dialect, PostgresDialect)  # checked above
    counts: dict[str, int] = {}
    try:
        with (
            closing(sqlite3.connect(path, isolation_level=None)) as source,
            target.dialect.writing() as conn,
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
            jobs = (
                _job_row(row, now)
                for row in _rows(source, f"SELECT {JOB} FROM jobs ORDER BY created_at, rowid")
            )
            counts["jobs"] = _copy_rows(conn, "jobs", JOB, jobs)
    finally:
        target.close()
    return counts


def _copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: str, rows: Iterator[tuple[Any, ...]]
) -> int:
    """COPY ``rows`` into ``table`` (PostgreSQL parses each text value as its column's type:
    the ISO timestamps, integers, blobs)."""
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
