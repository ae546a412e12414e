"""API keys: 401 without a valid key, each key sees only its own networks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.core.auth import owner_of
from service.core.settings import Settings
from service.main import create_app
from service.store import open_store
from tests.service.helpers import PROBLEM_JSON, XOR_X, XOR_Y, app_client, assert_problem

pytestmark = pytest.mark.anyio
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'keys.db'}", api_keys="alice-key, bob-key"
    )
    store = open_store(settings.database_url)
    async with app_client(settings, store) as client:
        yield client
    store.close()


async def test_missing_or_wrong_key_is_401_with_www_authenticate(keyed: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YWxpY2Uta2V5"}):
        for method, path in [
            ("GET", "/networks"),
            ("POST", "/networks"),
            ("GET", "/metrics"),
            ("GET", "/networks/x/history"),
        ]:
            response = await keyed.request(method, path, headers=headers, json={})
            assert_problem(response, 401, "API key")
            assert response.headers["www-authenticate"].startswith("Bearer")
    for path in ["/v2/models/x", "/v2"]:
        v2 = await keyed.get(path)
        assert v2.status_code == 401
        assert v2.headers["content-type"] == "application/json"
        assert "API key" in v2.json()["error"]


async def test_public_routes_need_no_key(keyed: httpx.AsyncClient) -> None:
    for path in ["/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"]:
        assert (await keyed.get(path)).status_code == 200, path
    js = (await keyed.get("/docs")).text.split('src="', 1)[1].split('"', 1)[0]
    assert (await keyed.get(js)).status_code == 200


async def test_each_key_sees_only_its_own(keyed: httpx.AsyncClient) -> None:
    created = await keyed.post(
        "/networks", json={"layer_dims": [2, 3, 1], "seed": 1}, headers=ALICE
    )
    assert created.status_code == 201
    net = created.json()["id"]
    assert [n["id"] for n in (await keyed.get("/networks", headers=ALICE)).json()["networks"]] == [
        net
    ]
    assert (await keyed.get("/networks", headers=BOB)).json()["networks"] == []
    batch = {"X": XOR_X, "Y": XOR_Y}
    for method, path, body in [
        ("GET", f"/networks/{net}", None),
        ("GET", f"/networks/{net}/parameters", None),
        ("POST", f"/networks/{net}/train", batch),
        ("POST", f"/networks/{net}/predict", {"X": XOR_X}),
        ("GET", f"/networks/{net}/history", None),
        ("DELETE", f"/networks/{net}", None),
    ]:
        assert_problem(await keyed.request(method, path, json=body, headers=BOB), 404, net)
    trained = await keyed.post(f"/networks/{net}/train", json=batch, headers=ALICE)
    assert trained.status_code == 200


async def test_openapi_declares_the_bearer_scheme(keyed: httpx.AsyncClient) -> None:
    schema = (await keyed.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    assert "401" in schema["paths"]["/networks"]["post"]["responses"]
    assert list(schema["paths"]["/networks"]["post"]["responses"]["401"]["content"]) == [
        PROBLEM_JSON
    ]


def test_owner_ids_are_digests_not_keys() -> None:
    assert owner_of("alice-key") != "alice-key"
    assert "alice" not in owner_of("alice-key")
    assert owner_of("alice-key") == owner_of("alice-key")
    assert owner_of("alice-key") != owner_of("bob-key")


def test_open_service_warns_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'open.db'}")
    app = create_app(settings, open_store(settings.database_url))
    with caplog.at_level(logging.WARNING, logger="backprop.auth"):
        logging.getLogger("backprop").propagate = True
        try:
            app.middleware_stack = app.build_middleware_stack()
        finally:
            logging.getLogger("backprop").propagate = False
    assert any("open to anyone" in r.getMessage() for r in caplog.records)


async def test_keys_are_never_logged(
    keyed: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("backprop").propagate = True
    try:
        with caplog.at_level(logging.DEBUG):
            await keyed.get("/networks", headers=ALICE)
            await keyed.get("/networks", headers={"Authorization": "Bearer wrong-secret"})
    finally:
        logging.getLogger("backprop").propagate = False
    text = caplog.text
    assert "alice-key" not in text
    assert "wrong-secret" not in text
