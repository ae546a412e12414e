"""Every bound from settings answers a clear 422 before anything big is allocated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.core.settings import Settings
from service.store import open_store
from tests.service.helpers import XOR_X, XOR_Y, app_client, assert_problem, b64, create

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'tight.db'}",
        max_examples=10,
        max_activations=500,
        max_networks_per_owner=2,
    )
    store = open_store(settings.database_url)
    async with app_client(settings, store) as client:
        yield client
    store.close()


async def test_examples_per_request(tight: httpx.AsyncClient) -> None:
    net = await create(tight, layer_dims=[2, 3, 1])
    X = np.zeros((2, 11)).tolist()
    Y = np.zeros((1, 11)).tolist()
    for path, body in [
        ("train", {"X": X, "Y": Y}),
        ("gradients", {"X": X, "Y": Y}),
        ("gradient-check", {"X": X, "Y": Y}),
        ("predict", {"X": X}),
        ("evaluate", {"X": X, "Y": Y}),
    ]:
        response = await tight.post(f"/networks/{net['id']}/{path}", json=body)
        assert_problem(response, 422, "11 examples", "limit is 10")
    assert (
        await tight.post(f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y})
    ).status_code == 200


async def test_activations_per_batch(tight: httpx.AsyncClient) -> None:
    # 10 examples through 60 + 1 units: 610 activations, over the 500 allowed.
    net = await create(tight, layer_dims=[2, 60, 1])
    X = b64(np.zeros((2, 10)))
    response = await tight.post(f"/networks/{net['id']}/predict", json={"X": X})
    assert_problem(response, 422, "610 activations", "limit is 500")


async def test_networks_per_owner(tight: httpx.AsyncClient) -> None:
    await create(tight)
    await create(tight)
    response = await tight.post("/networks", json={"layer_dims": [2, 1]})
    assert_problem(response, 422, "2 networks", "delete one")


async def test_huge_declared_base64_shape_allocates_nothing(client: httpx.AsyncClient) -> None:
    net = await create(client)
    X = {"shape": [2, 10**12], "dtype": "float64", "base64": "AAAAAAAAAAA="}
    response = await client.post(f"/networks/{net['id']}/predict", json={"X": X})
    assert_problem(response, 422, "16000000000000 bytes", "holds 8")


async def test_overflowing_inputs_never_answer_non_finite_numbers(
    client: httpx.AsyncClient,
) -> None:
    parameters = [{"W": [[10.0, 10.0]], "b": [[0.0]]}]
    net = await create(client, layer_dims=[2, 1], output_activation="linear", parameters=parameters)
    X = [[1e308, 1.0], [1e308, 1.0]]  # Z = 10 * 1e308 + 10 * 1e308 overflows
    for path, body in [
        ("predict", {"X": X}),
        ("evaluate", {"X": X, "Y": [[0.0, 1.0]]}),
        ("gradients", {"X": X, "Y": [[0.0, 1.0]], "include": ["Z", "A", "dZ", "dA", "dW", "db"]}),
        ("gradient-check", {"X": X, "Y": [[0.0, 1.0]]}),
    ]:
        response = await client.post(f"/networks/{net['id']}/{path}", json=body)
        assert_problem(response, 422, "overflow")
