"""Real faults against real servers: the database going away, a full disk, SIGKILL and
SIGTERM under load, and memory over many networks' lives.

Clients here retry as the README tells a client to: one ``Idempotency-Key`` per logical
change, reused by every retry of it, until it is answered. Each test then checks that the
network holds exactly the steps the clients were told succeeded (a replayed answer is the
same step, not another), that its history has no gaps or duplicates, and that every answer
was a documented status, errors as problem+json. They wait on state, never on fixed sleeps
(a fault is held for a stated time, which is what is being measured).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.helpers import PROBLEM_JSON, XOR_X, XOR_Y, b64
from tests.support.pg_instance import in_ci, private_postgres_or_skip
from tests.support.server import ServerProcess, free_port
from tests.support.waiting import poll, server_sent_events

TRAIN = {"X": XOR_X, "Y": XOR_Y}  # one full-batch step
SPEC = {
    "layer_dims": [2, 4, 1],
    "seed": 1,
    "hidden_activation": "tanh",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
}
DB_TIMEOUT = 2.0  # BACKPROP_DATABASE_TIMEOUT_SECONDS for these servers
SLACK = 1.5  # seconds an answer may take beyond the database timeout (a loaded 2-core CI box)


def uvicorn_args(port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port",
        str(port), *extra,
    ]  # fmt: skip


def cli_args(port: int) -> list[str]:
    return [sys.executable, "-m", "service.cli", "--host", "127.0.0.1", "--port", str(port)]


# ---- answers, and clients that retry ------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange as a client saw it; ``status`` None: no answer (refused, reset)."""

    status: int | None
    content_type: str
    headers: dict[str, str]
    body: Any
    sent: float
    received: float
    error: str = ""
    port: int = 0  # the client's port of the connection that carried it

    @property
    def waited(self) -> float:
        return self.received - self.sent

    @property
    def replayed(self) -> bool:
        return self.headers.get("idempotent-replayed") == "true"


def exchange(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Answer:
    sent = time.monotonic()
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as error:
        return Answer(
            None, "", {}, None, sent, time.monotonic(), f"{type(error).__name__}: {error}"
        )
    received = time.monotonic()
    port = 0  # the connection was closed by then (it said Connection: close)
    with contextlib.suppress(KeyError, OSError):
        port = local_port(response)
    content_type = response.headers.get("content-type", "")
    body: Any = None
    if "json" in content_type:
        body = response.json()
    elif response.content:
        body = response.text
    return Answer(
        response.status_code, content_type, dict(response.headers), body, sent, received, port=port
    )


def assert_documented(answers: list[Answer], allowed: set[int]) -> None:
    """Every answer has a status of ``allowed``; every error is problem+json, a 503 with
    Retry-After and a detail saying what became of the change."""
    for answer in answers:
        if answer.status is None:
            continue
        assert answer.status in allowed, answer
        if answer.status >= 400:
            assert answer.content_type == PROBLEM_JSON, answer
            assert {"type", "title", "status", "detail"} <= set(answer.body), answer
            assert answer.body["status"] == answer.status, answer
        if answer.status in (503, 507):
            detail = answer.body["detail"]
            assert "not applied" in detail or "unknown" in detail, answer
        if answer.status == 503:
            assert answer.headers.get("retry-after", "").isdigit(), answer


@dataclass(eq=False)
class Trainers:
    """``count`` clients, each training one network step after step through ``urls`` (in
    turn): one Idempotency-Key per step, retried after ``backoff`` seconds on a 503 or no
    answer, until the step is answered 200 (a replay included)."""

    urls: list[str]
    network_id: str
    count: int = 4
    backoff: float = 0.1
    answers: list[Answer] = field(default_factory=list)
    acknowledged: int = 0  # steps answered 200
    replayed: int = 0  # of which the answer was a replay (the first answer was lost)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _halt: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Trainers:
        for number in range(self.count):
            thread = threading.Thread(target=self._client, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Let every client finish the step it is on (so none is left in doubt), then stop."""
        self._halt.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a client never got its step answered"

    def _client(self, number: int) -> None:
        clients = [httpx.Client(base_url=url, timeout=30) for url in self.urls]
        turn = number
        try:
            while not self._halt.is_set():
                key = uuid.uuid4().hex
                while True:
                    turn += 1
                    answer = exchange(
                        clients[turn % len(clients)],
                        "POST",
                        f"/networks/{self.network_id}/train",
                        json=TRAIN,
                        headers={"Idempotency-Key": key},
                    )
                    with self._guard:
                        self.answers.append(answer)
                        if answer.status == 200:
                            self.acknowledged += 1
                            self.replayed += answer.replayed
                    if answer.status == 200:
                        break
                    time.sleep(self.backoff)  # every answer is checked at the end
        finally:
            for client in clients:
                client.close()

    def since(self, moment: float) -> list[Answer]:
        with self._guard:
            return [a for a in self.answers if a.sent >= moment]

    def first_success_after(self, moment: float) -> float | None:
        with self._guard:
            done = [a.received for a in self.answers if a.status == 200 and a.sent >= moment]
        return min(done, default=None)


def wait_for_steps(trainers: Trainers, more: int, timeout: float = 60.0) -> None:
    """Until the clients have been told of ``more`` steps than now."""
    target = trainers.acknowledged + more
    poll(lambda: trainers.acknowledged, lambda done: done >= target, timeout, interval=0.02)


def wait_for_success_after(trainers: Trainers, moment: float, timeout: float = 30.0) -> float:
    """When the first step sent after ``moment`` was answered 200."""
    deadline = time.monotonic() + timeout
    while (answered := trainers.first_success_after(moment)) is None:
        assert time.monotonic() < deadline, "training did not resume"
        time.sleep(0.01)
    return answered


def wait_until_ready(url: str, timeout: float = 30.0) -> None:
    poll(lambda: readiness(url).status, lambda status: status == 200, timeout, interval=0.02)


def job_step(url: str, job_id: str) -> int:
    """A running job's step, as the store has it."""
    job = httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "running", job
    step: int = job["step"]
    return step


def create(url: str, **spec: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/networks", json={**SPEC, **spec}, timeout=30)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_consistent(url: str, network_id: str, steps: int) -> None:
    """The network holds exactly ``steps`` steps, its history each once and in order."""
    network = httpx.get(f"{url}/networks/{network_id}", timeout=30).json()
    history = httpx.get(f"{url}/networks/{network_id}/history", timeout=30).json()["costs"]
    assert network["steps_trained"] == steps
    assert network["version"] == 1 + steps  # one step per committed call
    assert [point["step"] for point in history] == list(range(1, steps + 1))


def readiness(url: str) -> Answer:
    with httpx.Client(timeout=10) as client:
        return exchange(client, "GET", f"{url}/readyz")


# ---- PostgreSQL going away --------------------------------------------------------------


OUTAGES = (1.0, 3 * DB_TIMEOUT)  # one shorter than the database timeout, one well past it


def test_postgres_outages_are_answered_503_and_training_resumes_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two replicas on a PostgreSQL server of the test's own, four training clients; the
    server is stopped as by a crash (``-m immediate``: connections drop, a COMMIT's
    acknowledgement can be lost), held down, started again; twice."""
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(private_postgres_or_skip())
        env = {
            "BACKPROP_DATABASE_URL": pg.url,
            "BACKPROP_DATABASE_TIMEOUT_SECONDS": str(DB_TIMEOUT),
            "BACKPROP_DATABASE_POOL_SIZE": "4",
        }
        replicas = [stack.enter_context(ServerProcess(env=env)) for _ in range(2)]
        urls = [replica.url for replica in replicas]
        net = create(urls[0])
        # A job on another network trains through the outages too.
        job_net = create(urls[1])
        job = httpx.post(
            f"{urls[1]}/networks/{job_net['id']}/jobs", json={**TRAIN, "epochs": 10_000_000}
        ).json()
        trainers = Trainers(urls, net["id"]).start()
        stack.callback(trainers._halt.set)
        figures: list[str] = []
        for held in OUTAGES:
            wait_for_steps(trainers, 20)
            pg.stop_immediately()
            down_at = time.monotonic()
            # /readyz says 503 within a second, on every replica, while the database is down.
            for url in urls:
                ready = readiness(url)
                assert ready.status == 503, ready
                assert ready.waited < 1.0 + 0.5, ready
                assert ready.content_type == PROBLEM_JSON
            time.sleep(max(0.0, held - (time.monotonic() - down_at)))  # the outage is the test
            assert all(readiness(url).status == 503 for url in urls)
            during = trainers.since(down_at)
            up_at = pg.start()
            resumed_at = wait_for_success_after(trainers, up_at)
            figures.append(
                f"outage {held:g} s: {len(during)} answers during it, longest wait "
                f"{max(a.waited for a in during):.2f} s; training resumed "
                f"{resumed_at - up_at:.2f} s after the database accepted connections"
            )
            assert resumed_at - up_at < 2.0, figures[-1]
            for url in urls:
                wait_until_ready(url)
            # The job goes on: its progress reaches the store again, through either replica.
            at = job_step(urls[0], job["id"])
            while job_step(urls[0], job["id"]) <= at:
                assert time.monotonic() - up_at < 30, "the job did not go on"
                time.sleep(0.05)
        trainers.stop()
        assert_consistent(urls[1], net["id"], trainers.acknowledged)
        cancelled = httpx.post(f"{urls[0]}/jobs/{job['id']}/cancel", timeout=10).json()
        ended = poll(
            lambda: httpx.get(f"{urls[0]}/jobs/{job['id']}", timeout=10).json(),
            lambda j: j["status"] not in ("queued", "running"),
            interval=0.02,
        )
        assert ended["status"] == "cancelled", (cancelled, ended)
        job_network = httpx.get(f"{urls[0]}/networks/{job_net['id']}", timeout=10).json()
        assert job_network["steps_trained"] == ended["step"] > 0
        history = httpx.get(f"{urls[0]}/networks/{job_net['id']}/history", timeout=30).json()
        assert [p["step"] for p in history["costs"]] == list(range(1, ended["step"] + 1))
        figures.append(
            f"the job ended cancelled at step {ended['step']}, {ended['restarts']} restarts"
        )

    # Every answer was 200 or a 503 problem+json with Retry-After, none waited longer than the
    # database timeout, and the network held exactly the steps the clients were told of.
    assert_documented(trainers.answers, {200, 503})
    assert all(a.status is not None for a in trainers.answers), "a request went unanswered"
    longest = max(a.waited for a in trainers.answers)
    assert any(a.status == 503 for a in trainers.answers)
    with capsys.disabled():
        print(
            f"\n[postgres outages] {'; '.join(figures)}; longest wait overall {longest:.2f} s; "
            f"{trainers.acknowledged} steps acknowledged, {trainers.replayed} by a replay"
        )
    assert longest < DB_TIMEOUT + SLACK, longest


# ---- a full disk --------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "20m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root, as in CI)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs to fill up ({mounted.stderr.strip() or 'not root?'})"
        if in_ci():
            pytest.fail(f"{reason}; the disk-full test must run in CI.", pytrace=False)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill_up(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\xff" * 65536, b"\xff" * 512):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    assert free_bytes(path.parent) == 0


def local_port(response: httpx.Response) -> int:
    """The client's port of the connection that carried ``response``."""
    stream = response.extensions["network_stream"]
    port: int = stream.get_extra_info("socket").getsockname()[1]
    return port


BIG = {"layer_dims": [500, 500, 1], "optimizer": {"name": "gd", "learning_rate": 0.1}}  # 2 MB


def test_a_full_disk_is_answered_507_and_deleting_frees_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite on a 20 MB tmpfs, filled with networks through one keep-alive connection."""
    with contextlib.ExitStack() as stack:
        disk = stack.enter_context(small_tmpfs(tmp_path / "disk"))
        env = {
            "BACKPROP_DATABASE_URL": f"sqlite:///{disk / 'backprop.db'}",
            "BACKPROP_DISK_RESERVE_BYTES": str(4 << 20),  # twice a big network, as the README asks
        }
        server = stack.enter_context(ServerProcess(env=env))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
        small = client.post("/networks", json=SPEC).json()
        trained = client.post(f"/networks/{small['id']}/train", json=TRAIN)
        assert trained.status_code == 200
        port = local_port(trained)

        created: list[str] = []
        for _ in range(40):  # 20 MB hold fewer than 10 of them
            answer = client.post("/networks", json=BIG)
            if answer.status_code != 201:
                break
            created.append(answer.json()["id"])
        assert answer.status_code == 507, answer.text
        assert local_port(answer) == port  # the same connection, kept open
        assert "connection" not in answer.headers
        big = created.pop()
        rng = np.random.RandomState(0)
        batch = {"X": b64(rng.randn(500, 4)), "Y": [[0.0, 1.0, 1.0, 0.0]]}
        full = [
            exchange(client, "POST", "/networks", json=BIG),
            exchange(client, "POST", f"/networks/{big}/train", json=batch),  # 4 MB to write
        ]
        assert [a.status for a in full] == [507, 507], (full, server.output()[-3000:])
        ready = exchange(client, "GET", "/readyz")
        assert (ready.status, ready.content_type) == (503, PROBLEM_JSON), ready
        assert ready.waited < 1.0
        # Deleting works on the disk the networks filled (and gives their space back).
        assert client.delete(f"/networks/{created.pop(0)}").status_code == 204

        # Then something else takes every byte left, with SQLite's WAL just emptied: now even
        # the smallest write has no room, and a delete has only the reserve's.
        fill_up(disk / "filler")
        full.append(exchange(client, "POST", f"/networks/{small['id']}/train", json=TRAIN))
        full.append(exchange(client, "POST", "/networks", json=SPEC))
        assert [a.status for a in full[2:]] == [507, 507]
        assert_documented(full, {507})
        assert all("not applied" in a.body["detail"] for a in full)
        assert all(a.port == port for a in full)  # every answer on one connection
        assert client.get(f"/networks/{big}").json()["steps_trained"] == 0
        ready = exchange(client, "GET", "/readyz")
        assert (ready.status, ready.content_type) == (503, PROBLEM_JSON), ready
        assert ready.waited < 1.0
        assert client.get("/healthz").status_code == 200
        assert len(client.get("/networks").json()["networks"]) == 2 + len(created)

        # Deleting works on the full disk, and frees it: /readyz is ready again, writes succeed.
        reserve = disk / "backprop.db.reserve"
        assert reserve.stat().st_size == 4 << 20
        before = free_bytes(disk)
        deleted = 0
        while (status := client.get("/readyz").status_code) != 200:
            assert status == 503
            assert deleted < len(created), "deleting every big network did not free the disk"
            response = client.delete(f"/networks/{created[deleted]}")
            assert response.status_code == 204, response.text
            assert local_port(response) == port
            deleted += 1
        after = free_bytes(disk)
        assert after > before
        assert reserve.stat().st_size == 4 << 20  # made again
        assert client.post("/networks", json=SPEC).status_code == 201
        assert client.post(f"/networks/{small['id']}/train", json=TRAIN).status_code == 200
        for network_id in created[deleted:]:  # room for the big network's 4 MB, too
            assert client.delete(f"/networks/{network_id}").status_code == 204
        trained_again = client.post(f"/networks/{big}/train", json=batch)
        assert trained_again.status_code == 200, trained_again.text
        last = client.get("/readyz")
        assert local_port(last) == port  # one connection all along
        assert_consistent(server.url, big, 1)
        assert_consistent(server.url, small["id"], 2)
        with capsys.disabled():
            print(
                f"\n[disk full] {len(created) + 3} networks of 2 MB filled 20 MB, then a filler "
                f"the rest; {deleted} delete(s) took the free space from {before} to {after} "
                "bytes and /readyz back to 200"
            )


# ---- SIGTERM ------------------------------------------------------------------------------


def events(url: str, into: list[tuple[str, dict[str, Any]]]) -> None:
    """Collect the (event, data) pairs of a server-sent event stream until it ends."""
    for event in server_sent_events(url, timeout=60):
        into.append(event)


def heavy_calls(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("backprop_heavy_calls "):
            return float(line.split()[1])
    raise AssertionError("no backprop_heavy_calls gauge")


GRACE = 2


def test_sigterm_answers_a_long_train_503_with_nothing_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A /train that would take many seconds, an open event stream, then SIGTERM with a grace
    period of 2 s: the train is answered 503 (nothing committed) or 200 (all of it), the
    stream ends with ``interrupted``, the process exits 0 in time."""
    port = free_port()
    env = {
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'term.db'}",
        "BACKPROP_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        "BACKPROP_MAX_TRAIN_WORK": str(10**13),
    }
    server = ServerProcess(env=env, args=cli_args(port), port=port).start()
    try:
        slow = create(server.url, layer_dims=[256, 256, 256, 1])
        rng = np.random.RandomState(0)
        long_train = {  # 4,000 steps: 15 s or more
            "X": b64(rng.randn(256, 500)),
            "Y": b64((rng.rand(1, 500) > 0.5).astype(np.float64)),
            "epochs": 4000,
        }
        follower = create(server.url)
        job = httpx.post(
            f"{server.url}/networks/{follower['id']}/jobs", json={**TRAIN, "epochs": 10_000_000}
        ).json()
        seen: list[tuple[str, dict[str, Any]]] = []
        stream = threading.Thread(
            target=events, args=(f"{server.url}/jobs/{job['id']}/events", seen), daemon=True
        )
        stream.start()
        answers: list[Answer] = []

        def train() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                answers.append(
                    exchange(
                        client,
                        "POST",
                        f"/networks/{slow['id']}/train",
                        json=long_train,
                        headers={"Idempotency-Key": "the-long-one"},
                    )
                )

        caller = threading.Thread(target=train, daemon=True)
        caller.start()
        poll(lambda: heavy_calls(server.url), lambda calls: calls >= 1, interval=0.02)
        poll(lambda: len(seen), lambda count: count >= 1, interval=0.02)  # the stream is open
        terminated_at = time.monotonic()
        server.process.terminate()
        code = server.process.wait(GRACE + 15)
        exited_after = time.monotonic() - terminated_at
        caller.join(10)
        stream.join(10)
    finally:
        if server.process.poll() is None:
            server.kill()
        else:
            server.stop()
    [answer] = answers
    assert_documented(answers, {200, 503})
    assert code == 0, server.output()
    assert exited_after < GRACE + 5, exited_after
    assert seen[-1][0] == "interrupted", seen[-3:]
    assert all(name == "progress" for name, _ in seen[:-1])

    with ServerProcess(env=env) as restarted:
        network = httpx.get(f"{restarted.url}/networks/{slow['id']}").json()
        if answer.status == 503:
            assert "not applied" in answer.body["detail"]
            assert (network["version"], network["steps_trained"]) == (1, 0)
        else:
            assert network["steps_trained"] == long_train["epochs"]
    with capsys.disabled():
        print(
            f"\n[sigterm] the long /train was answered {answer.status} "
            f"{answer.received - terminated_at:.2f} s after SIGTERM; the process exited "
            f"{exited_after:.2f} s after it (grace {GRACE} s), code {code}"
        )


# ---- SIGKILL ------------------------------------------------------------------------------

KILLS = 5


def test_sigkill_under_load_with_retrying_clients_applies_each_step_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four clients train one network through a server that is SIGKILLed five times and
    started again on the same port and database; they retry each step with its key."""
    database = tmp_path / "killed.db"
    env = {"BACKPROP_DATABASE_URL": f"sqlite:///{database}"}
    port = free_port()
    server = ServerProcess(env=env, args=uvicorn_args(port), port=port).start()
    net = create(server.url)
    trainers = Trainers([server.url], net["id"], backoff=0.05)
    try:
        url = server.url
        trainers.start()
        for _ in range(KILLS):
            wait_for_steps(trainers, 10)
            server.kill()  # with requests in flight: some committed, their answers lost
            server = ServerProcess(env=env, args=uvicorn_args(port), port=port).start()
        wait_for_steps(trainers, 10)
        trainers.stop()
        assert_consistent(url, net["id"], trainers.acknowledged)
    finally:
        trainers._halt.set()
        server.stop()
    assert_documented(trainers.answers, {200, 503})
    unanswered = sum(a.status is None for a in trainers.answers)
    assert unanswered > 0  # the kills did cut requests off
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with capsys.disabled():
        print(
            f"\n[sigkill x{KILLS}] {trainers.acknowledged} steps acknowledged, "
            f"{trainers.replayed} of them by a replay (committed, answer lost); "
            f"{unanswered} requests cut off"
        )


# ---- memory -------------------------------------------------------------------------------

CYCLES = 150
WARMUP = 20
RSS_GROWTH_BOUND = 40 * 2**20  # bytes; a leak of every network would be 150 x 2.6 MB


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def gauge(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} gauge")


def test_deleted_networks_leave_no_memory_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Create, predict, train, delete, 150 times, in one server process: each network is warm
    (its state, moments, spares and step buffers: about 2.6 MB) until deleted."""
    env = {"BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'memory.db'}"}
    spec = {"layer_dims": [256, 256, 1], "optimizer": {"name": "adam", "learning_rate": 0.01}}
    rng = np.random.RandomState(0)
    X = b64(rng.randn(256, 8))
    Y = b64((rng.rand(1, 8) > 0.5).astype(np.float64))
    with ServerProcess(env=env) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        pid = server.process.pid
        started = time.monotonic()
        for cycle in range(CYCLES):
            if cycle == WARMUP:
                baseline = resident_bytes(pid)
            network_id = client.post("/networks", json=spec).json()["id"]
            assert client.post(f"/networks/{network_id}/predict", json={"X": X}).status_code == 200
            trained = client.post(f"/networks/{network_id}/train", json={"X": X, "Y": Y})
            assert trained.status_code == 200
            if cycle == 0:
                assert gauge(server.url, "backprop_warm_networks") == 1
            assert client.delete(f"/networks/{network_id}").status_code == 204
        took = time.monotonic() - started
        final = resident_bytes(pid)
        assert gauge(server.url, "backprop_warm_networks") == 0
        assert gauge(server.url, "backprop_networks") == 0
    with capsys.disabled():
        print(
            f"\n[memory] {CYCLES} create-predict-train-delete cycles in {took:.1f} s: resident "
            f"{baseline / 2**20:.1f} MB after {WARMUP}, {final / 2**20:.1f} MB after {CYCLES}"
        )
    assert final - baseline < RSS_GROWTH_BOUND
