"""/readyz through a real server: 503 while its PostgreSQL database refuses connections,
200 again once it accepts them; /healthz answers throughout."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql

from tests.support.postgres import scratch_database, server_url_or_skip
from tests.support.server import ServerProcess


def _wait_for(url: str, status: int, seconds: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = httpx.get(url, timeout=15)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_readyz_is_503_while_the_store_cannot_be_reached() -> None:
    server_url = server_url_or_skip()
    with (
        scratch_database(server_url) as url,
        ServerProcess(env={"BACKPROP_DATABASE_URL": url}) as server,
    ):
        name = sql.Identifier(urlsplit(url).path.lstrip("/"))
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (urlsplit(url).path.lstrip("/"),),
            )
            try:
                down = _wait_for(f"{server.url}/readyz", 503)
                assert down.status_code == 503
                assert down.headers["content-type"] == "application/problem+json"
                assert "store cannot take writes" in down.json()["detail"]
                assert httpx.get(f"{server.url}/healthz").status_code == 200
            finally:
                admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))
        assert _wait_for(f"{server.url}/readyz", 200).status_code == 200
