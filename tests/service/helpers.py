"""Small helpers for the service tests."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np

from service.core.settings import Settings
from service.main import create_app
from service.store import Store

PROBLEM_JSON = "application/problem+json"
XOR_X = [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]]
XOR_Y = [[0.0, 1.0, 1.0, 0.0]]


@asynccontextmanager
async def app_client(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling a fresh app in-process, through the ASGI transport."""
    transport = httpx.ASGITransport(app=create_app(settings, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def b64(matrix: Any, dtype: str = "float64") -> dict[str, Any]:
    array = np.ascontiguousarray(matrix, dtype=np.dtype(dtype).newbyteorder("<"))
    return {
        "shape": list(array.shape),
        "dtype": dtype,
        "base64": b64encode(array.tobytes()).decode(),
    }


def unb64(matrix: dict[str, Any]) -> np.ndarray:
    from base64 import b64decode

    dtype = np.dtype(matrix["dtype"]).newbyteorder("<")
    return np.frombuffer(b64decode(matrix["base64"]), dtype=dtype).reshape(matrix["shape"])


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """The answer is problem+json with ``status`` and a detail naming every fragment."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    text = body["detail"] + " " + " ".join(str(e) for e in body.get("errors") or [])
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return body


async def create(client: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    body = {
        "layer_dims": [2, 4, 1],
        "seed": 1,
        "hidden_activation": "tanh",
        "initialization": "xavier",
        "optimizer": {"name": "gd", "learning_rate": 0.5},
    }
    body.update(spec)
    response = await client.post("/networks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
