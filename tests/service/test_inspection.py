"""Gradients of any batch, gradient checking, prediction and evaluation (in-process)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from model import compute_gradients
from service.store import Store
from tests.service.helpers import XOR_X, XOR_Y, assert_problem, b64, create, unb64

pytestmark = pytest.mark.anyio


async def test_gradients_include_everything_with_the_notations_shapes(
    client: httpx.AsyncClient, store: Store
) -> None:
    net = await create(client, layer_dims=[2, 4, 3, 1])
    body = {"X": XOR_X, "Y": XOR_Y, "include": ["Z", "A", "dZ", "dA", "dW", "db"]}
    response = await client.post(f"/networks/{net['id']}/gradients", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["version"] == 1
    assert response.headers["etag"] == '"1"'
    network = store.get_network(net["id"], "").network
    grads = compute_gradients(network, np.array(XOR_X), np.array(XOR_Y), intermediate=True)
    assert answer["cost"] == pytest.approx(grads.cost, rel=1e-12)
    dims = [2, 4, 3, 1]
    for l, layer in enumerate(answer["layers"], start=1):
        assert layer["layer"] == l
        assert np.shape(layer["Z"]) == (dims[l], 4)
        assert np.shape(layer["A"]) == (dims[l], 4)
        assert np.shape(layer["dZ"]) == (dims[l], 4)
        assert np.shape(layer["dA"]) == (dims[l], 4)
        assert np.shape(layer["dW"]) == (dims[l], dims[l - 1])
        assert np.shape(layer["db"]) == (dims[l], 1)
        np.testing.assert_allclose(layer["dW"], grads.dW[l - 1], rtol=1e-12)
    # The last layer: A[L] is the prediction and dZ[L] = A[L] - Y (sigmoid + cross-entropy).
    last = answer["layers"][-1]
    np.testing.assert_allclose(last["dZ"], np.array(last["A"]) - np.array(XOR_Y), rtol=1e-12)
    # dW[l] = (1/m) dZ[l] A[l-1]^T and db[l] = (1/m) sum(dZ[l]).
    for l, layer in enumerate(answer["layers"], start=1):
        A_prev = np.array(XOR_X) if l == 1 else np.array(answer["layers"][l - 2]["A"])
        np.testing.assert_allclose(layer["dW"], np.array(layer["dZ"]) @ A_prev.T / 4, rtol=1e-12)
        np.testing.assert_allclose(
            layer["db"], np.array(layer["dZ"]).sum(axis=1, keepdims=True) / 4, rtol=1e-12
        )
    # dA[l-1] = W[l]^T dZ[l].
    params = (await client.get(f"/networks/{net['id']}/parameters")).json()["layers"]
    for l in range(2, 4):
        W = np.array(params[l - 1]["W"])
        np.testing.assert_allclose(
            answer["layers"][l - 2]["dA"], W.T @ np.array(answer["layers"][l - 1]["dZ"]), rtol=1e-12
        )


async def test_gradients_default_and_base64(client: httpx.AsyncClient) -> None:
    net = await create(client, dtype="float32")
    answer = (
        await client.post(
            f"/networks/{net['id']}/gradients?encoding=base64", json={"X": XOR_X, "Y": XOR_Y}
        )
    ).json()
    assert set(answer["layers"][0]) == {"layer", "dW", "db"}
    assert answer["layers"][0]["dW"]["dtype"] == "float32"
    assert unb64(answer["layers"][0]["dW"]).shape == (4, 2)
    bad = await client.post(
        f"/networks/{net['id']}/gradients", json={"X": XOR_X, "Y": XOR_Y, "include": ["dQ"]}
    )
    assert_problem(bad, 422, "include")


async def test_gradient_check_passes_for_backprop(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[2, 5, 3, 1], l2_lambda=0.1)
    response = await client.post(
        f"/networks/{net['id']}/gradient-check", json={"X": XOR_X, "Y": XOR_Y, "epsilon": 1e-7}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["passed"] is True
    assert body["difference"] < 2e-7
    assert body["threshold"] == 2e-7
    assert body["parameters_checked"] == 2 * 5 + 5 + 5 * 3 + 3 + 3 + 1
    assert [l["layer"] for l in body["layers"]] == [1, 2, 3]
    assert all(l["dW_difference"] < 1e-6 for l in body["layers"])


async def test_gradient_check_is_refused_above_the_limit(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[200, 120, 1])
    X = np.zeros((200, 2)).tolist()
    response = await client.post(
        f"/networks/{net['id']}/gradient-check", json={"X": X, "Y": [[0.0, 1.0]]}
    )
    assert_problem(response, 422, "24241", "20000")


async def test_predict_softmax_gives_class_indices(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[2, 4, 3], output_activation="softmax")
    answer = (await client.post(f"/networks/{net['id']}/predict", json={"X": XOR_X})).json()
    A = np.array(answer["A"])
    assert A.shape == (3, 4)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=1e-12)
    assert answer["predictions"] == [A.argmax(axis=0).tolist()]
    # base64 answers are in the network's dtype, class indices included.
    path = f"/networks/{net['id']}/predict?encoding=base64"
    encoded = (await client.post(path, json={"X": XOR_X})).json()["predictions"]
    assert encoded["dtype"] == "float64"
    np.testing.assert_array_equal(unb64(encoded), [A.argmax(axis=0)])
    evaluated = (
        await client.post(f"/networks/{net['id']}/evaluate", json={"X": XOR_X, "Y": [[0, 1, 2, 1]]})
    ).json()
    assert 0.0 <= evaluated["accuracy"] <= 1.0
    assert evaluated["m"] == 4


async def test_predict_regression_and_base64(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[2, 3, 2], output_activation="linear")
    answer = (
        await client.post(f"/networks/{net['id']}/predict?encoding=base64", json={"X": b64(XOR_X)})
    ).json()
    A = unb64(answer["A"])
    assert A.shape == (2, 4)
    np.testing.assert_array_equal(unb64(answer["predictions"]), A)
    evaluated = (
        await client.post(
            f"/networks/{net['id']}/evaluate", json={"X": XOR_X, "Y": [[0, 1, 1, 0], [1, 0, 0, 1]]}
        )
    ).json()
    assert evaluated["accuracy"] is None
    assert evaluated["cost"] > 0


async def test_predict_names_the_expected_shape(client: httpx.AsyncClient) -> None:
    net = await create(client)
    wrong = await client.post(f"/networks/{net['id']}/predict", json={"X": [[0.0, 1.0, 2.0]]})
    assert_problem(wrong, 422, "(2, m)", "(1, 3)")
    rows = await client.post(
        f"/networks/{net['id']}/predict", json={"X": [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]}
    )
    assert_problem(rows, 422, "transpose")
