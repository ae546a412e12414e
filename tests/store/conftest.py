"""Every store test runs on both backends: a SQLite file in the test's directory, and a fresh
schema in a scratch PostgreSQL database (one per session; see ``tests/support/postgres.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.store import Store, open_store
from tests.support.postgres import scratch_database, scratch_schema, server_url_or_skip

OpenStore = Callable[[], Store]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    with scratch_database(server_url_or_skip()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return scratch_schema(request.getfixturevalue("postgres_database"))


@pytest.fixture
def open_another(store_url: str) -> Iterator[OpenStore]:
    """Opens more stores on the same database (as other processes or replicas would), and
    closes them after the test."""
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(open_store(store_url))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_another: OpenStore) -> Store:
    return open_another()
