"""The bounds of issue #16 that can be pinned in-process: a body's time, size and the bytes of
bodies held at once (BodyLimits), parsing (keys counted before the parse, unknown keys at
every level, one parse, large bodies validated off the loop), the V2 request's lists,
heavy work stopped at the drain, MemoryError outside a route, the metrics rule and the
command line. tests/e2e/test_bounds.py replays the issue's reproductions against real
servers."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from service import cli
from service.core import connections, http
from service.core.capacity import DISCONNECTED, DRAINING, Stopped
from service.core.errors import ProblemError
from service.core.http import LOOP_PARSE_BYTES, MAX_BODY_KEYS, BodyLimits
from service.core.observability import escape_controls
from service.core.settings import Settings, get_settings
from service.main import create_app
from service.store import Store
from service.training.svg import Curve, line_chart
from tests.service.helpers import XOR_X, XOR_Y, app_client, assert_problem, create

pytestmark = pytest.mark.anyio
JSON_TYPE = {"Content-Type": "application/json"}
KiB = 1024


# ---- BodyLimits, driven as uvicorn drives it -------------------------------------------------


async def _reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _answering(app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> Any:
    """The app, turning a ProblemError raised by receive into its status and headers, as the
    service's handlers do."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except ProblemError as error:
            headers = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": error.detail.encode()})

    return wrapped


def _scope(length: int | None = None) -> Scope:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "path": "/networks", "method": "POST", "headers": headers}


async def _call(
    limits: BodyLimits, scope: Scope, chunks: asyncio.Queue[Message]
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await limits(scope, chunks.get, send)
    start, body = sent[0], sent[1]
    return start["status"], dict(start["headers"]), body["body"]


def _body(*parts: bytes) -> asyncio.Queue[Message]:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for index, part in enumerate(parts):
        queue.put_nowait(
            {"type": "http.request", "body": part, "more_body": index < len(parts) - 1}
        )
    return queue


async def test_a_body_that_does_not_arrive_in_time_is_a_408_that_closes() -> None:
    limits = BodyLimits(_answering(_reading_app), max_bytes=1024, in_flight=4096, timeout=0.05)
    stalled = _body(b"{")
    stalled.get_nowait()
    stalled.put_nowait({"type": "http.request", "body": b"{", "more_body": True})  # then nothing
    status, headers, detail = await _call(limits, _scope(), stalled)
    assert status == 408
    assert headers[b"connection"] == b"close"
    assert b"BACKPROP_BODY_TIMEOUT_SECONDS" in detail
    assert limits.held == 0


async def test_a_body_over_the_limit_is_a_413_that_keeps_the_connection() -> None:
    limits = BodyLimits(_answering(_reading_app), max_bytes=1024, in_flight=4096, timeout=5)
    status, headers, _ = await _call(limits, _scope(2048), _body(b"x" * 2048))
    assert status == 413  # by its Content-Length, before reading it
    assert b"connection" not in headers  # the server reads the rest and drops it
    status, headers, _ = await _call(limits, _scope(), _body(b"x" * 1000, b"x" * 1000))
    assert status == 413  # chunked: as it streams in
    assert b"connection" not in headers
    assert limits.held == 0


async def test_the_bytes_of_bodies_held_at_once_are_bounded() -> None:
    release = asyncio.Event()

    async def holding_app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body", False):
            pass
        await release.wait()  # answered when the test says so: its body is held until then
        await _reading_app(scope, _body(b"").get, send)

    limits = BodyLimits(_answering(holding_app), max_bytes=1024, in_flight=1500, timeout=5)
    first = asyncio.ensure_future(_call(limits, _scope(1000), _body(b"a" * 500, b"a" * 500)))
    while limits.held < 1000:  # the first body is in, and held until it is answered
        await asyncio.sleep(0)
    status, headers, detail = await _call(limits, _scope(1000), _body(b"b" * 1000))
    assert status == 503  # by its Content-Length: nothing of it was read
    assert headers[b"retry-after"] == b"1"
    assert b"holds 1000 bytes" in detail
    assert b"BACKPROP_MAX_BODY_BYTES_IN_FLIGHT" in detail
    status, _, detail = await _call(limits, _scope(), _body(b"c" * 400, b"c" * 400))
    assert status == 503  # chunked: refused at the chunk that would pass the budget
    assert limits.held == 1000
    release.set()
    assert (await first)[0] == 200
    assert limits.held == 0  # let go with the answer
    status, _, _ = await _call(limits, _scope(1000), _body(b"d" * 1000))
    assert status == 200


def test_the_budget_is_never_below_one_body() -> None:
    settings = Settings(max_body_bytes=8192, max_body_bytes_in_flight=1024)
    assert settings.body_bytes_in_flight == 8192


# ---- bodies waiting in the protocol (BoundedHttp), fed as the event loop feeds it ----------


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_a_body_may_wait_unread_past_64_kib_within_a_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connections, "BODY_BUFFER_BYTES", 1024 * KiB)
    monkeypatch.setattr(connections, "BODY_BUFFERS_BYTES", 1536 * KiB)
    # Each request's application asks for its body once its event is set.
    read = {path: asyncio.Event() for path in ("/first", "/second", "/third")}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await read[scope["path"]].wait()
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    state = uvicorn.server.ServerState()

    def connect(path: str, length: int) -> tuple[connections.BoundedHttp, _Transport]:
        protocol = connections.BoundedHttp(config, state, {})
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.data_received(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), length)
        )
        return protocol, transport

    def feed(protocol: connections.BoundedHttp, kib: int) -> None:
        for _ in range(kib // 256):  # the event loop reads at most 256 KiB at a time
            protocol.data_received(b"0" * 256 * KiB)

    first, first_transport = connect("/first", 2048 * KiB)
    feed(first, 1024)  # uvicorn alone stops reading at 64 KiB
    assert not first_transport.paused
    feed(first, 256)  # past BODY_BUFFER_BYTES
    assert first_transport.paused

    # A second connection may hold what the budget has left beyond 64 KiB each.
    second, second_transport = connect("/second", 1024 * KiB)
    feed(second, 256)
    assert not second_transport.paused
    feed(second, 256)
    assert second_transport.paused
    # Once the first one's application has taken what it held, the room is another's.
    read["/first"].set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert not first_transport.paused  # its application asked for more
    third, third_transport = connect("/third", 1024 * KiB)
    feed(third, 768)
    assert not third_transport.paused
    assert connections.BoundedHttp._holding == {second, third}
    for protocol in (first, second, third):
        protocol.connection_lost(None)
    assert not connections.BoundedHttp._holding
    for event in read.values():
        event.set()
    while len(state.tasks):  # the applications see the disconnects and end
        await asyncio.sleep(0)


# ---- parsing ---------------------------------------------------------------------------------


async def test_a_body_of_too_many_keys_is_refused_before_it_is_parsed(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_parse(body: bytes) -> Any:
        raise AssertionError("parsed")

    monkeypatch.setattr(http, "parse_json", no_parse)
    keys = ",".join(f'"k{i}":1' for i in range(MAX_BODY_KEYS + 1))
    response = await client.post("/networks", content="{" + keys + "}", headers=JSON_TYPE)
    body = assert_problem(response, 422, f"about {MAX_BODY_KEYS + 1} keys", str(MAX_BODY_KEYS))
    assert "errors" not in body


async def test_unknown_keys_are_refused_at_every_level_before_validation(
    client: httpx.AsyncClient,
) -> None:
    net = await create(client)
    for path, body, loc in [
        ("/networks", {"layer_dims": [2, 1], "optimizer": {"name": "gd", "mu": 1}}, "optimizer"),
        ("/networks", {"layer_dims": [2, 3, 1], "dropout": {"keep_prob": 0.5, "p": 1}}, "dropout"),
        (
            "/networks",
            {"layer_dims": [2, 1], "parameters": [{"W": [[1.0, 1.0]], "b": [[0.0]], "c": 1}]},
            "parameters.0",
        ),
        (f"/networks/{net['id']}/train", {"X": XOR_X, "Y": XOR_Y, "epoch": 2}, None),
    ]:
        response = await client.post(path, json=body)
        where = "The body has" if loc is None else f"body.{loc} has"
        problem = assert_problem(response, 422, where, "1 key(s)", "does not take")
        assert problem["errors"][0]["msg"] == "Extra inputs are not permitted"
    many = {"layer_dims": [2, 1], "optimizer": {f"k{i}": 1 for i in range(5000)}}
    response = await client.post("/networks", json=many)
    problem = assert_problem(response, 422, "body.optimizer has 5000 key(s)", "'k0', 'k1'", "...")
    assert len(problem["errors"]) == 20
    assert problem["errors"][0]["loc"] == ["body", "optimizer", "k0"]


async def test_a_body_that_is_not_json_is_parsed_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[int] = []
    parse = http.parse_json

    def counting(body: bytes) -> Any:
        parses.append(len(body))
        return parse(body)

    def stdlib(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed again, by the standard library")

    net = await create(client)
    for size in (100, 4 * LOOP_PARSE_BYTES):  # on the loop, and on a thread
        truncated = '{"X": [[' + ",".join(["0.5"] * (size // 4))
        parses.clear()
        with monkeypatch.context() as patched:
            patched.setattr(http, "parse_json", counting)
            patched.setattr(json, "loads", stdlib)
            response = await client.post(
                f"/networks/{net['id']}/predict", content=truncated, headers=JSON_TYPE
            )
        assert_problem(response, 400, "not valid JSON")
        assert len(parses) == 1


async def test_a_large_body_is_validated_as_a_small_one_is(client: httpx.AsyncClient) -> None:
    net = await create(client)
    for m in (10, 40_000):  # under and over LOOP_PARSE_BYTES
        X = np.random.RandomState(0).rand(2, m).tolist()
        Y = [[1.0] * m]
        trained = await client.post(f"/networks/{net['id']}/evaluate", json={"X": X, "Y": Y})
        assert trained.status_code == 200, trained.text
        assert trained.json()["m"] == m
        wrong = await client.post(
            f"/networks/{net['id']}/train", json={"X": X, "Y": Y, "epochs": 0}
        )
        assert_problem(wrong, 422, "body.epochs")
        assert wrong.json()["errors"][0]["loc"] == ["body", "epochs"]
        strings = await client.post(f"/networks/{net['id']}/predict", json={"X": [["a"] * m]})
        assert_problem(strings, 422, "body.X")


async def test_validation_errors_are_capped(settings: Settings, store: Store) -> None:
    capped = Settings(database_url=settings.database_url, max_validation_errors=5)
    async with app_client(capped, store) as client:
        layers = [{"W": "no", "b": "no"}] * 50
        response = await client.post("/networks", json={"layer_dims": [2, 1], "parameters": layers})
        problem = assert_problem(response, 422, "and 95 more")
        assert len(problem["errors"]) == 5


async def test_v2_requests_list_at_most_sixteen_tensors(client: httpx.AsyncClient) -> None:
    net = await create(client)
    tensor = {"name": 1}  # each invalid three ways: refused before any is validated
    for field, body in [
        ("inputs", {"inputs": [tensor] * 5000}),
        ("outputs", {"inputs": [{"name": "X"}], "outputs": [{"name": "A"}] * 17}),
    ]:
        response = await client.post(f"/v2/models/{net['id']}/infer", json=body)
        assert response.status_code == 400
        assert f"{field} must be" in response.json()["error"]
        assert "at most 16 items" in response.json()["error"]


async def test_a_dropout_list_is_bounded(client: httpx.AsyncClient) -> None:
    body = {"layer_dims": [2, 3, 1], "dropout": {"keep_prob": [0.5] * 1001}}
    assert_problem(await client.post("/networks", json=body), 422, "body.dropout.keep_prob")


# ---- names, logs, the chart --------------------------------------------------------------


async def test_names_refuse_what_logs_and_svg_cannot_hold(client: httpx.AsyncClient) -> None:
    for name in ("a\nb", "a\x1b[0m", "a\x85", "a\u2028", "a\ufffe", "a\uffff"):
        response = await client.post("/networks", json={"layer_dims": [2, 1], "name": name})
        assert_problem(response, 422, "body.name")
    ok = await client.post("/networks", json={"layer_dims": [2, 1], "name": "é <&> \ufffd"})
    assert ok.status_code == 201


def test_log_lines_escape_control_characters_and_line_separators() -> None:
    assert escape_controls("a\r\nb\x1b\u2028c\x9f") == "a\\x0d\\x0ab\\x1b\\u2028c\\x9f"
    assert escape_controls("é ü 漢") == "é ü 漢"


def test_an_old_name_with_control_characters_still_draws_well_formed_svg() -> None:
    import xml.etree.ElementTree as ET

    svg = line_chart([Curve("a\x01b\uffff", [1, 2], [0.5, 0.25])], title="t\x0b<")
    ET.fromstring(svg)


# ---- heavy work, memory, metrics ---------------------------------------------------------


def test_stopped_work_is_a_503_with_retry_after() -> None:
    for reason in (DRAINING, DISCONNECTED):
        stopped = Stopped(reason)
        assert isinstance(stopped, ProblemError)
        assert stopped.status == 503
        assert stopped.headers == {"Retry-After": "1"}
        assert stopped.reason == reason
        assert reason in stopped.detail


async def test_memory_errors_outside_a_route_are_503(settings: Settings, store: Store) -> None:
    app = create_app(settings, store)

    class Exhausted:  # a middleware that runs out of memory
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/boom":
                raise MemoryError
            if scope["type"] == "http" and scope["path"] == "/bug":
                raise RuntimeError("a bug")
            await self.inner(scope, receive, send)

    app.add_middleware(Exhausted)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert_problem(await client.get("/boom"), 503, "ran out of memory")
        assert_problem(await client.get("/bug"), 500, "a bug; it is logged")
        assert (await client.get("/healthz")).status_code == 200


async def test_metrics_with_api_keys_need_the_operator_key(
    settings: Settings, store: Store
) -> None:
    keyed = Settings(database_url=settings.database_url, api_keys="tenant")
    async with app_client(keyed, store) as client:
        assert_problem(await client.get("/metrics"), 401, "needs an API key")
        tenant = {"Authorization": "Bearer tenant"}
        assert_problem(await client.get("/metrics", headers=tenant), 403, "BACKPROP_METRICS_KEY")
    operated = Settings(database_url=settings.database_url, api_keys="tenant", metrics_key="ops")
    async with app_client(operated, store) as client:
        assert_problem(await client.get("/metrics", headers=tenant), 401, "operator")
        scraped = await client.get("/metrics", headers={"Authorization": "Bearer ops"})
        assert scraped.status_code == 200
        assert "backprop_http_requests_total" in scraped.text


# ---- the command line ----------------------------------------------------------------------


def test_every_option_of_the_command_has_a_help_text() -> None:
    parser = cli._parser()
    for action in parser._actions:
        assert action.help, action.dest
    assert "BACKPROP_MAX_CONNECTIONS" in parser.format_help()


def test_the_command_serves_with_the_bounded_protocol(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setenv("BACKPROP_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    try:
        cli.main(["--port", "9999"])
    finally:
        get_settings.cache_clear()
    assert calls[0]["http"] == "service.core.connections:BoundedHttp"
    assert calls[0]["port"] == 9999
    protocol = cli.PROTOCOL.replace(":", ".").rsplit(".", 1)
    module = __import__(protocol[0], fromlist=[protocol[1]])
    assert hasattr(module, protocol[1])


def test_the_open_files_limit_is_raised_to_fit_the_connections(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {"soft": 256, "hard": 4096}

    def getrlimit(_: int) -> tuple[int, int]:
        return limits["soft"], limits["hard"]

    def setrlimit(_: int, value: tuple[int, int]) -> None:
        limits["soft"], limits["hard"] = value

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    cli._room_for_connections(1000)
    assert limits == {"soft": 1000 + cli.SPARE_FILES, "hard": 4096}
    with caplog.at_level(logging.WARNING, logger="backprop.cli"):
        cli._room_for_connections(10_000)
    assert limits["soft"] == 4096
    assert "BACKPROP_MAX_CONNECTIONS is 10000" in caplog.text
