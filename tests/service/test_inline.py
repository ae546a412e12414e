"""The fast lane of POST /networks/{id}/predict (service.inline): what it answers is what the
route answers, byte for byte, and everything it does not answer with a 200 reaches the route
unchanged.

Two apps share one store: the service as shipped, and the same service without the lane.
A probe just inside the shipped app's lane records every prediction the lane hands over,
so each test also says which of the two answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.inline import MAX_INLINE_BODY_BYTES, InlinePredictions
from service.main import create_app
from service.settings import Settings
from service.store import SQLiteStore

from .helpers import XOR_X, assert_problem, b64, create

pytestmark = pytest.mark.anyio


@dataclass
class Lanes:
    shipped: httpx.AsyncClient
    plain: httpx.AsyncClient  # the same store and settings, without the lane
    routed: list[str] = field(default_factory=list)  # ids the shipped app's lane handed over

    async def create(self, **spec: Any) -> str:
        network_id: str = (await create(self.shipped, **spec))["id"]
        return network_id

    async def both(
        self, path: str, *, warm: bool = True, **request: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        """The same request to both apps, once each app has cached the network (``warm``)."""
        if warm:
            for client in (self.shipped, self.plain):
                await client.post(path.partition("?")[0], json={"X": [[0.0]] * 2})
            self.routed.clear()
        shipped = await self.shipped.post(path, **request)
        plain = await self.plain.post(path, **request)
        assert shipped.status_code == plain.status_code, (shipped.text, plain.text)
        assert shipped.content == plain.content
        for header in ("content-type", "etag", "content-length"):
            assert shipped.headers.get(header) == plain.headers.get(header)
        return shipped, plain


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


class _Probe:
    """Records the network id of every prediction that gets past the lane."""

    def __init__(self, app: ASGIApp, routed: list[str]) -> None:
        self.app = app
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/predict"):
            self.routed.append(scope["path"].split("/")[2])
        await self.app(scope, receive, send)


def _apps(settings: Settings, store: SQLiteStore, routed: list[str]) -> tuple[FastAPI, FastAPI]:
    shipped = create_app(settings, store)
    shipped.user_middleware.append(Middleware(_Probe, routed=routed))  # innermost
    plain = create_app(settings, store)
    plain.user_middleware = [
        m for m in plain.user_middleware if m.cls is not cast(Any, InlinePredictions)
    ]
    assert len(plain.user_middleware) == len(shipped.user_middleware) - 2
    return shipped, plain


@pytest.fixture
async def lanes(settings: Settings, store: SQLiteStore) -> AsyncIterator[Lanes]:
    routed: list[str] = []
    shipped, plain = _apps(settings, store, routed)
    async with _client(shipped) as shipped_client, _client(plain) as plain_client:
        yield Lanes(shipped_client, plain_client, routed)


SPECS: dict[str, dict[str, Any]] = {
    "tanh-sigmoid": {},
    "relu-softmax-float32": {
        "layer_dims": [2, 5, 3],
        "hidden_activation": "relu",
        "output_activation": "softmax",
        "dtype": "float32",
    },
    "deep-linear": {"layer_dims": [2, 3, 3, 2], "output_activation": "linear"},
}


@pytest.mark.parametrize("spec", SPECS, ids=list(SPECS))
@pytest.mark.parametrize(
    ("query", "X"),
    [
        ("", XOR_X),
        ("?encoding=json", [[0.5], [-0.25]]),
        ("?encoding=base64", XOR_X),
        ("", b64(XOR_X, "float32")),
        ("?encoding=base64", b64([[1e-3], [2]], "float64")),
    ],
    ids=["lists", "encoding=json", "encoding=base64", "base64-body", "base64-both"],
)
async def test_the_lane_answers_as_the_route_does(
    lanes: Lanes, spec: str, query: str, X: Any
) -> None:
    network_id = await lanes.create(**SPECS[spec])
    shipped, _ = await lanes.both(f"/networks/{network_id}/predict{query}", json={"X": X})
    assert shipped.status_code == 200, shipped.text
    assert shipped.headers["etag"] == '"1"'
    assert lanes.routed == []  # answered by the lane


async def test_the_first_prediction_goes_to_the_route_which_caches_the_network(
    lanes: Lanes,
) -> None:
    network_id = await lanes.create()
    path = f"/networks/{network_id}/predict"
    await lanes.both(path, warm=False, json={"X": XOR_X})
    assert lanes.routed == [network_id]  # a miss: deserializing is thread-pool work
    await lanes.both(path, warm=False, json={"X": XOR_X})
    assert lanes.routed == [network_id]


async def test_a_new_version_is_never_answered_from_the_old_one(lanes: Lanes) -> None:
    network_id = await lanes.create()
    path = f"/networks/{network_id}/predict"
    before, _ = await lanes.both(path, json={"X": XOR_X})
    trained = await lanes.shipped.post(
        f"/networks/{network_id}/train", json={"X": XOR_X, "Y": [[0, 1, 1, 0]], "epochs": 10}
    )
    assert trained.status_code == 200
    after = await lanes.shipped.post(path, json={"X": XOR_X})
    assert (after.json()["version"], after.headers["etag"]) == (2, '"2"')
    assert after.json()["A"] != before.json()["A"]


JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class HandedOver:
    request: dict[str, Any]  # httpx's keyword arguments
    status: int  # what the route answers
    query: str = ""
    spec: dict[str, Any] = field(default_factory=dict)


HANDED_OVER = {
    "bad JSON": HandedOver({"content": b'{"X": [[1]', "headers": JSON}, 400),
    "NaN": HandedOver({"content": b'{"X": [[NaN], [1]]}', "headers": JSON}, 422),
    "an unknown field": HandedOver({"json": {"X": XOR_X, "Y": XOR_X}}, 422),
    "a string entry": HandedOver({"json": {"X": [["1"], [2]]}}, 422),
    "rows per example": HandedOver({"json": {"X": [[0, 1], [1, 0], [1, 1]]}}, 422),
    "an unknown encoding": HandedOver({"json": {"X": XOR_X}}, 422, "?encoding=xml"),
    "another query": HandedOver({"json": {"X": XOR_X}}, 200, "?encoding=json&pretty=1"),
    "plain text": HandedOver(
        {"content": b'{"X": [[1], [2]]}', "headers": {"content-type": "text/plain"}}, 422
    ),
    "a JSON subtype": HandedOver(
        {"content": b'{"X": [[1], [2]]}', "headers": {"content-type": "application/ld+json"}},
        200,
    ),
    "a batch too big to run inline": HandedOver({"json": {"X": [[0.5] * 3000] * 2}}, 200),
    "an overflowing answer": HandedOver(
        {"json": {"X": [[1e308], [1e308]]}},
        422,
        spec={
            "layer_dims": [2, 1],
            "output_activation": "linear",
            "parameters": [{"W": [[1.5, 1.5]], "b": [[0.0]]}],
        },
    ),
}


@pytest.mark.parametrize("case", HANDED_OVER, ids=list(HANDED_OVER))
async def test_what_the_lane_does_not_answer_reaches_the_route(lanes: Lanes, case: str) -> None:
    handed_over = HANDED_OVER[case]
    network_id = await lanes.create(**handed_over.spec)
    path = f"/networks/{network_id}/predict{handed_over.query}"
    shipped, _ = await lanes.both(path, **handed_over.request)
    assert shipped.status_code == handed_over.status, shipped.text
    assert lanes.routed == [network_id]


async def test_a_chunked_body_reaches_the_route(lanes: Lanes) -> None:
    network_id = await lanes.create()
    path = f"/networks/{network_id}/predict"
    await lanes.both(path, json={"X": XOR_X})
    lanes.routed.clear()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield b'{"X": [[1], '
        yield b"[2]]}"

    shipped = await lanes.shipped.post(path, content=chunks(), headers=JSON)
    plain = await lanes.plain.post(path, content=chunks(), headers=JSON)
    assert shipped.status_code == 200, shipped.text
    assert shipped.content == plain.content
    assert lanes.routed == [network_id]


async def test_a_missing_network_is_the_routes_404(lanes: Lanes) -> None:
    shipped, _ = await lanes.both("/networks/nope/predict", warm=False, json={"X": XOR_X})
    assert_problem(shipped, 404, "'nope'")
    assert lanes.routed == ["nope"]


async def test_a_body_over_the_lanes_bound_reaches_the_route(lanes: Lanes) -> None:
    network_id = await lanes.create()
    padding = " " * MAX_INLINE_BODY_BYTES
    body = f'{{"X": [[1], [2]]{padding}}}'.encode()
    shipped, _ = await lanes.both(
        f"/networks/{network_id}/predict",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert shipped.status_code == 200
    assert lanes.routed == [network_id]


async def test_the_limits_still_apply(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'limits.db'}", max_examples=3)
    store = SQLiteStore.from_url(settings.database_url)
    routed: list[str] = []
    shipped, plain = _apps(settings, store, routed)
    try:
        async with _client(shipped) as shipped_client, _client(plain) as plain_client:
            lanes = Lanes(shipped_client, plain_client, routed)
            network_id = await lanes.create()
            answer, _ = await lanes.both(
                f"/networks/{network_id}/predict", json={"X": [[0.0] * 4] * 2}
            )
            assert_problem(answer, 422, "4 examples", "limit is 3")
            assert routed == [network_id]
    finally:
        store.close()


async def test_the_api_key_check_comes_first(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'keys.db'}", api_keys="alice-key, bob-key"
    )
    store = SQLiteStore.from_url(settings.database_url)
    try:
        async with _client(create_app(settings, store)) as client:
            alice = {"Authorization": "Bearer alice-key"}
            bob = {"Authorization": "Bearer bob-key"}
            created = await client.post("/networks", json={"layer_dims": [2, 1]}, headers=alice)
            path = f"/networks/{created.json()['id']}/predict"
            cached = await client.post(path, json={"X": XOR_X}, headers=alice)
            assert cached.status_code == 200
            assert (await client.post(path, json={"X": XOR_X}, headers=alice)).json() == (
                cached.json()
            )
            assert_problem(await client.post(path, json={"X": XOR_X}), 401, "API key")
            assert_problem(await client.post(path, json={"X": XOR_X}, headers=bob), 404)
    finally:
        store.close()


async def test_the_request_log_and_metrics_name_the_route(lanes: Lanes) -> None:
    network_id = await lanes.create()
    await lanes.both(f"/networks/{network_id}/predict", json={"X": XOR_X})
    assert lanes.routed == []
    metrics = (await lanes.shipped.get("/metrics")).text
    line = (
        'backprop_http_requests_total{method="POST",'
        'route="/networks/{network_id}/predict",status="200"} 2.0'
    )
    assert line in metrics  # the warm-up (the route) and the lane's answer
    assert "unmatched" not in metrics


async def test_a_body_in_one_message_as_uvicorn_sends_it(
    settings: Settings, store: SQLiteStore
) -> None:
    """httpx's ASGI transport ends every body with an empty message; uvicorn sends a small
    body whole, in one message with ``more_body`` False."""
    routed: list[str] = []
    shipped, _ = _apps(settings, store, routed)
    async with _client(shipped) as client:
        network_id = (await create(client))["id"]
        path = f"/networks/{network_id}/predict"
        expected = await client.post(path, json={"X": [[1.0], [2.0]]})  # caches the network
    routed.clear()
    body = b'{"X": [[1.0], [2.0]]}'
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await shipped(scope, receive, send)
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == expected.content
    assert routed == []
