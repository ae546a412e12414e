"""The embedded default store: one SQLite file, WAL mode, a busy timeout.

Each thread gets its own connection (sqlite3 connections are not to be shared across
threads). Writes run in ``BEGIN IMMEDIATE`` transactions, so two processes serving the same
file serialize their writes in SQLite itself; the version check in :meth:`commit_update`
turns a lost race into a :class:`VersionConflict` the caller retries.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model import Network, from_bytes, to_bytes
from service.store.base import (
    LastGradients,
    NetworkMeta,
    NetworkMissing,
    NetworkRecord,
    Update,
    VersionConflict,
    utc_now,
)
from service.store.blobs import (
    gradients_from_bytes,
    gradients_to_bytes,
    spec_from_json,
    spec_to_json,
)

# Each entry runs once, in order; PRAGMA user_version remembers how many ran.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT,
        spec TEXT NOT NULL,
        version INTEGER NOT NULL,
        steps_trained INTEGER NOT NULL,
        body BLOB NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX networks_by_owner ON networks (owner, created_at);
    CREATE TABLE history (
        network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        cost REAL NOT NULL,
        PRIMARY KEY (network_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE last_gradients (
        network_id TEXT PRIMARY KEY REFERENCES networks (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        step INTEGER NOT NULL,
        cost REAL NOT NULL,
        body BLOB NOT NULL
    );
    """,
)

_META_COLUMNS = "id, owner, name, spec, version, steps_trained, created_at, updated_at"


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` → the file's path."""
    return Path(url.removeprefix("sqlite:///"))


class SQLiteStore:
    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(sqlite_path(url))

    # ---- connections -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses nothing on a process crash (only on power loss).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as conn:
            done = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[done:], start=done + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def ping(self) -> None:
        self._connection().execute("SELECT 1").fetchone()

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- networks ----------------------------------------------------------------------

    def create_network(
        self, network_id: str, owner: str, name: str | None, network: Network
    ) -> NetworkRecord:
        now = utc_now()
        meta = NetworkMeta(
            id=network_id,
            owner=owner,
            name=name,
            spec=network.spec,
            version=1,
            steps_trained=network.steps_trained,
            created_at=now,
            updated_at=now,
        )
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO networks ({_META_COLUMNS}, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    network_id,
                    owner,
                    name,
                    spec_to_json(network.spec),
                    1,
                    network.steps_trained,
                    now,
                    now,
                    to_bytes(network),
                ),
            )
        return NetworkRecord(meta=meta, network=network)

    @staticmethod
    def _meta(row: tuple[object, ...]) -> NetworkMeta:
        id_, owner, name, spec, version, steps, created, updated = row
        return NetworkMeta(
            id=str(id_),
            owner=str(owner),
            name=None if name is None else str(name),
            spec=spec_from_json(str(spec)),
            version=int(str(version)),
            steps_trained=int(str(steps)),
            created_at=str(created),
            updated_at=str(updated),
        )

    def get_meta(self, network_id: str, owner: str) -> NetworkMeta:
        row = (
            self._connection()
            .execute(
                f"SELECT {_META_COLUMNS} FROM networks WHERE id = ? AND owner = ?",
                (network_id, owner),
            )
            .fetchone()
        )
        if row is None:
            raise NetworkMissing(network_id)
        return self._meta(row)

    def get_network(self, network_id: str, owner: str) -> NetworkRecord:
        # One SELECT: the parameters and the version they belong to are read together.
        row = (
            self._connection()
            .execute(
                f"SELECT {_META_COLUMNS}, body FROM networks WHERE id = ? AND owner = ?",
                (network_id, owner),
            )
            .fetchone()
        )
        if row is None:
            raise NetworkMissing(network_id)
        return NetworkRecord(meta=self._meta(row[:-1]), network=from_bytes(row[-1]))

    def list_networks(self, owner: str) -> list[NetworkMeta]:
        rows = (
            self._connection()
            .execute(
                f"SELECT {_META_COLUMNS} FROM networks WHERE owner = ? ORDER BY created_at, id",
                (owner,),
            )
            .fetchall()
        )
        return [self._meta(row) for row in rows]

    def count_networks(self, owner: str | None = None) -> int:
        if owner is None:
            row = self._connection().execute("SELECT count(*) FROM networks").fetchone()
        else:
            row = (
                self._connection()
                .execute("SELECT count(*) FROM networks WHERE owner = ?", (owner,))
                .fetchone()
            )
        return int(row[0])

    def delete_network(self, network_id: str, owner: str) -> None:
        with self._write() as conn:
            deleted = conn.execute(
                "DELETE FROM networks WHERE id = ? AND owner = ?", (network_id, owner)
            ).rowcount
        if not deleted:
            raise NetworkMissing(network_id)

    def commit_update(
        self, network_id: str, owner: str, expected_version: int, update: Update
    ) -> NetworkRecord:
        network = update.network
        body = to_bytes(network)  # serialized before the write lock is taken
        gradients = None if update.gradients is None else gradients_to_bytes(update.gradients)
        now = utc_now()
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {_META_COLUMNS} FROM networks WHERE id = ? AND owner = ?",
                (network_id, owner),
            ).fetchone()
            if row is None:
                raise NetworkMissing(network_id)
            meta = self._meta(row)
            if meta.version != expected_version:
                raise VersionConflict(meta.version)
            version = meta.version + 1
            conn.execute(
                "UPDATE networks SET version = ?, steps_trained = ?, body = ?, updated_at = ? "
                "WHERE id = ?",
                (version, network.steps_trained, body, now, network_id),
            )
            conn.executemany(
                "INSERT INTO history (network_id, step, cost) VALUES (?, ?, ?)",
                [(network_id, step, cost) for step, cost in update.history],
            )
            if update.gradients is not None and gradients is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO last_gradients (network_id, version, step, cost, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (network_id, version, update.gradients.step, update.gradients.cost, gradients),
                )
        new_meta = NetworkMeta(
            id=meta.id,
            owner=meta.owner,
            name=meta.name,
            spec=meta.spec,
            version=version,
            steps_trained=network.steps_trained,
            created_at=meta.created_at,
            updated_at=now,
        )
        return NetworkRecord(meta=new_meta, network=network)

    def history(self, network_id: str) -> list[tuple[int, float]]:
        rows = (
            self._connection()
            .execute(
                "SELECT step, cost FROM history WHERE network_id = ? ORDER BY step", (network_id,)
            )
            .fetchall()
        )
        return [(int(step), float(cost)) for step, cost in rows]

    def last_gradients(self, network_id: str) -> LastGradients | None:
        row = (
            self._connection()
            .execute(
                "SELECT version, step, cost, body FROM last_gradients WHERE network_id = ?",
                (network_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        version, step, cost, body = row
        return gradients_from_bytes(body, int(version), int(step), float(cost))
