"""A PostgreSQL server for tests: find it, make a scratch database on it, drop it afterwards.

The server is the one ``BACKPROP_TEST_POSTGRES_URL`` names (default
``postgresql://postgres@127.0.0.1:5432/postgres``, what ``.ci/run`` starts). Tests never touch
that database: :func:`scratch_database` creates ``backprop_test_<random>`` beside it and
drops it at the end, and :func:`scratch_schema` gives one test a fresh, empty schema in it
(through libpq's ``options=-c search_path=...``, so the store needs no knowledge of it).

Without a server, tests skip with the reason, unless the variable is set or ``CI`` is true:
then a missing server is a failure, so CI can never pass by skipping the PostgreSQL tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ENV = "BACKPROP_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url_or_skip() -> str:
    """The test server's URL; skip (or, in CI or when asked for explicitly, fail) when no
    server answers there."""
    url = os.environ.get(ENV) or DEFAULT_URL
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = f"no PostgreSQL server answers at {url} ({error}); set {ENV}"
        if os.environ.get(ENV) or os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}. The PostgreSQL tests must run here.", pytrace=False)
        pytest.skip(f"{reason} to run the PostgreSQL tests")
    return url


def with_database(url: str, database: str, *, search_path: str | None = None) -> str:
    """``url`` naming another database (and, optionally, a search_path)."""
    parts = urlsplit(url)
    query = parts.query
    if search_path is not None:
        option = quote(f"-c search_path={search_path}", safe="")
        query = f"{query}&options={option}" if query else f"options={option}"
    return urlunsplit(parts._replace(path=f"/{database}", query=query))


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server (its URL), dropped on exit."""
    name = f"backprop_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def scratch_schema(database_url: str) -> str:
    """A new, empty schema in the database; the URL that works in it. (The schema goes with
    its database.)"""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    parts = urlsplit(database_url)
    return with_database(database_url, parts.path.lstrip("/"), search_path=name)
