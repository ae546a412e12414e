"""Problem+json for every error row, limits, health, docs and the OpenAPI schema."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import httpx
import pytest

from service.core.errors import is_v2
from service.core.settings import Settings
from service.main import create_app
from service.store import Store
from tests.service.helpers import PROBLEM_JSON, XOR_X, XOR_Y, app_client, assert_problem, create

pytestmark = pytest.mark.anyio


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_readyz_fails_when_the_store_is_gone(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unplugged(text: str, params: object = (), *, binary: bool = False) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    async with app_client(settings, store) as client:
        monkeypatch.setattr(store, "_read", unplugged)
        assert_problem(await client.get("/readyz"), 503, "disk I/O error")


async def test_readyz_fails_while_the_disk_is_full(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_client(settings, store) as client:
        monkeypatch.setattr(store.dialect, "free_bytes", lambda: 4096)
        assert_problem(await client.get("/readyz"), 503, "4096 bytes are left")


async def test_unknown_path_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404, "/docs")
    not_allowed = assert_problem(await client.patch("/networks"), 405, "not allowed", "GET, POST")
    assert not_allowed["status"] == 405
    assert (await client.patch("/networks")).headers["allow"] == "GET, POST"
    assert (await client.put("/networks/x")).headers["allow"] == "DELETE, GET"


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/networks", content=b"layer_dims=2,1", headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "not valid JSON")


async def test_body_over_the_limit_is_413_before_reading_it(
    settings: Settings, store: Store
) -> None:
    small = Settings(database_url=settings.database_url, max_body_bytes=2048)
    async with app_client(small, store) as client:
        big = {"layer_dims": [2, 1], "name": "x" * 5000}
        assert_problem(await client.post("/networks", json=big), 413, "2048 bytes")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"layer_dims": [2, 1], "name": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        v2 = await client.post("/v2/models/x/infer", json=big)
        assert v2.status_code == 413
        assert v2.json() == {"error": "The request body is larger than the limit of 2048 bytes."}
        model = (await client.post("/networks", json={"layer_dims": [2, 1]})).json()["id"]
        v2_streamed = await client.post(
            f"/v2/models/{model}/infer",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert v2_streamed.status_code == 413
        assert "2048 bytes" in v2_streamed.json()["error"]
        streamed = await client.post(
            "/networks", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_problem(streamed, 413, "2048 bytes")
        listed = (await client.get("/networks")).json()["networks"]
        assert [n["id"] for n in listed] == [model]  # nothing was created by the refused bodies


async def test_validation_errors_carry_locations(client: httpx.AsyncClient) -> None:
    body = assert_problem(
        await client.post("/networks", json={"layer_dims": "2,1"}), 422, "layer_dims"
    )
    assert body["errors"][0]["loc"][:2] == ["body", "layer_dims"]
    assert body["errors"][0]["msg"]


async def test_docs_are_served_with_their_own_assets(client: httpx.AsyncClient) -> None:
    for page, asset in [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]:
        html = (await client.get(page)).text
        assert asset in html
        assert "cdn" not in html.lower()
        src = next(part for part in html.split('"') if part.endswith(asset))
        served = await client.get(src)
        assert served.status_code == 200
        assert len(served.content) > 100_000
    css = await client.get("/static-offline-docs/swagger-ui.css")
    assert css.status_code == 200


async def test_openapi_documents_problems_and_the_derivation(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    description = schema["info"]["description"]
    assert "dW[l] = (1/m) dZ[l] A[l-1]^T" in description
    assert "dA[l-1] = W[l]^T dZ[l]" in description
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("description"), (method, path)
            for code, answer in operation["responses"].items():
                if code.startswith("4") and not is_v2(path):
                    assert list(answer["content"]) == [PROBLEM_JSON], (method, path, code)
            if "requestBody" in operation:
                content = operation["requestBody"]["content"]["application/json"]
                body_schema = content["schema"]
                if "$ref" in body_schema:
                    body_schema = schema["components"]["schemas"][
                        body_schema["$ref"].split("/")[-1]
                    ]
                examples = body_schema.get("examples") or content.get("examples")
                assert examples or content.get("example"), (method, path)


async def test_errors_never_5xx_on_odd_bodies(client: httpx.AsyncClient) -> None:
    net = await create(client)
    odd_bodies: list[object] = [
        None,
        [],
        "text",
        1,
        {"X": {}},
        {"X": {"shape": [1e30, 2], "dtype": "float64", "base64": ""}, "Y": XOR_Y},
        {"X": XOR_X, "Y": XOR_Y, "epochs": True},
        {"X": XOR_X, "Y": XOR_Y, "epochs": 10**30},
    ]
    for body in odd_bodies:
        for path in ["/train", "/gradients", "/gradient-check", "/predict", "/evaluate"]:
            response = await client.post(f"/networks/{net['id']}{path}", json=body)
            assert 400 <= response.status_code < 500, (path, body, response.text)
            assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_a_bug_is_a_problem_json_500_that_closes_the_connection(
    settings: Settings, store: Store
) -> None:
    app = create_app(settings, store)

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/broken")
    assert_problem(response, 500, "a bug; it is logged", "same Idempotency-Key")
    assert response.headers["connection"] == "close"  # the server closes it after the answer
