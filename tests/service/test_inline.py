"""Small work runs on the event loop, told not to wait (service/core/capacity.py): where it
would wait for a lock it changes nothing, tries again on the loop a few times, a moment apart,
and then waits for the lock on a heavy thread instead, while the loop goes on answering."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from service.core.capacity import INLINE_PAUSES, HeavyWork, Stop
from service.core.settings import Settings
from service.store import WouldWait, sqlite_path
from service.store.dialects import SQLiteDialect
from service.warm import INLINE_MULTIPLY_ADDS, INLINE_STEPS, WarmNetworks
from tests.service.helpers import XOR_X, XOR_Y, create
from tests.support.waiting import poll

pytestmark = pytest.mark.anyio
ONE_STEP = {"X": XOR_X, "Y": XOR_Y, "epochs": 1}


async def test_small_work_runs_on_the_loop_and_what_would_wait_runs_on_a_thread() -> None:
    heavy = HeavyWork(1, 0)
    seen: list[tuple[str, bool]] = []
    refusals = [0]  # how many of the next tries on the loop find the lock taken

    def work(stop: Stop) -> str:
        seen.append((threading.current_thread().name, stop.may_wait))
        if not stop.may_wait and refusals[0]:
            refusals[0] -= 1
            raise WouldWait
        return "done"

    on_loop = (threading.current_thread().name, False)
    assert await heavy.run(work, small=True) == "done"
    assert seen == [on_loop]
    seen.clear()
    refusals[0] = 2  # a lock held for a moment: taken at the loop's third try
    assert await heavy.run(work, small=True) == "done"
    assert seen == [on_loop] * 3
    seen.clear()
    refusals[0] = 1_000  # held past the loop's tries: the work waits for it on a thread
    assert await heavy.run(work, small=True) == "done"
    assert seen[:-1] == [on_loop] * (len(INLINE_PAUSES) + 1)
    assert seen[-1][0].startswith("heavy")
    assert seen[-1][1] is True
    assert await heavy.run(work) == "done"
    assert seen[-1][0].startswith("heavy")
    assert heavy.in_flight == 0
    heavy.close()


def test_a_write_that_may_not_wait_is_refused_at_once_and_the_next_waits(tmp_path: Path) -> None:
    dialect = SQLiteDialect(tmp_path / "db.sqlite3", timeout=5.0)
    with dialect.writing() as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    blocker = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(WouldWait), dialect.writing(wait=False) as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    with dialect.reading() as conn:  # reads and later writes wait as long as before
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    blocker.execute("ROLLBACK")
    with dialect.writing(wait=False) as conn:
        conn.execute("INSERT INTO t VALUES (2)")
    with dialect.reading() as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]
    blocker.close()
    dialect.close()


async def test_small_means_warm_and_within_the_bounds(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    warm: WarmNetworks = app.state.warm
    net = await create(client)  # [2, 4, 1]: 17 parameters
    assert not warm.small(net["id"], "", 1)  # not warm yet
    assert (await client.post(f"/networks/{net['id']}/train", json=ONE_STEP)).status_code == 200
    assert warm.small(net["id"], "", 4, 1)
    assert not warm.small(net["id"], "someone-else", 4, 1)
    assert not warm.small(net["id"], "", 4, INLINE_STEPS + 1)
    most = INLINE_MULTIPLY_ADDS // 17
    assert warm.small(net["id"], "", most)
    assert not warm.small(net["id"], "", most + 1)
    assert not warm.small(net["id"], "", most // 4 + 1, 1)  # a step costs three passes


async def _held_while_training(
    client: httpx.AsyncClient,
    app: FastAPI,
    hold: Callable[[], object],
    release: Callable[[], object],
) -> None:
    """A one-step /train while ``hold()`` keeps a lock it needs: /healthz answers meanwhile,
    and once ``release()``, the call commits one step, once."""
    net = await create(client)
    url = f"/networks/{net['id']}/train"
    assert (await client.post(url, json=ONE_STEP)).status_code == 200  # warm: small from now
    assert app.state.warm.small(net["id"], "", 4, 1)
    hold()
    call = asyncio.create_task(client.post(url, json=ONE_STEP))
    try:
        await asyncio.to_thread(poll, lambda: app.state.heavy.in_flight, lambda n: n == 1)
        assert (await client.get("/healthz")).status_code == 200  # the loop is not waiting
        assert not call.done()
    finally:
        release()
    answered = await call
    assert answered.status_code == 200, answered.text
    assert answered.json()["network"]["version"] == 3
    assert (await client.get(f"/networks/{net['id']}")).json()["steps_trained"] == 2


async def test_a_small_train_waits_for_the_database_lock_on_a_thread(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    blocker = sqlite3.connect(sqlite_path(settings.database_url), isolation_level=None)
    try:
        await _held_while_training(
            client,
            app,
            lambda: blocker.execute("BEGIN IMMEDIATE"),
            lambda: blocker.execute("ROLLBACK"),
        )
    finally:
        blocker.close()


async def test_a_small_train_waits_for_the_network_lock_on_a_thread(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    locks: list[threading.Lock] = []

    def hold() -> None:
        (entry,) = app.state.warm._entries.values()
        locks.append(entry.lock)
        entry.lock.acquire()

    await _held_while_training(client, app, hold, lambda: locks[0].release())
