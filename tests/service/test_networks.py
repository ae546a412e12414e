"""Networks and parameters through the HTTP API (in-process)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.core.settings import Settings
from service.store import open_store
from tests.service.helpers import assert_problem, b64, create, unb64

pytestmark = pytest.mark.anyio


async def test_create_answers_201_with_location_and_the_resource(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/networks",
        json={"name": "cat-classifier", "layer_dims": [12, 5, 1], "seed": 3},
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/networks/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["name"] == "cat-classifier"
    assert body["layer_dims"] == [12, 5, 1]
    assert body["activations"] == ["relu", "sigmoid"]
    assert body["loss"] == "binary_cross_entropy"
    assert body["initialization"] == "he"
    assert body["seed"] == 3
    assert body["dtype"] == "float64"
    assert body["optimizer"]["name"] == "gd"
    assert body["optimizer"]["learning_rate"] == 0.0075
    assert body["l2_lambda"] == 0.0
    assert body["parameter_count"] == 12 * 5 + 5 + 5 * 1 + 1
    assert body["steps_trained"] == 0
    assert body["version"] == 1
    assert body["created_at"]
    assert body["updated_at"]


async def test_same_seed_same_parameters_and_the_course_stream(client: httpx.AsyncClient) -> None:
    first = await create(client, layer_dims=[5, 4, 3, 1], seed=1, initialization="xavier")
    second = await create(client, layer_dims=[5, 4, 3, 1], seed=1, initialization="xavier")
    p1 = (await client.get(f"/networks/{first['id']}/parameters")).json()
    p2 = (await client.get(f"/networks/{second['id']}/parameters")).json()
    assert p1["layers"] == p2["layers"]
    # The course's initialize_parameters_deep: np.random.seed(1), randn / sqrt(n_prev).
    rng = np.random.RandomState(1)
    for layer, (n_prev, n) in zip(p1["layers"], [(5, 4), (4, 3), (3, 1)], strict=True):
        expected = rng.randn(n, n_prev) / np.sqrt(n_prev)
        np.testing.assert_array_equal(np.array(layer["W"]), expected)
        assert layer["b"] == [[0.0]] * n


async def test_defaults_follow_the_output_activation(client: httpx.AsyncClient) -> None:
    softmax = await create(client, layer_dims=[3, 4, 3], output_activation="softmax")
    assert softmax["loss"] == "categorical_cross_entropy"
    linear = await create(client, layer_dims=[3, 1], output_activation="linear")
    assert linear["loss"] == "mean_squared_error"
    explicit = await create(client, layer_dims=[3, 2, 2, 1], activations=["tanh", "relu", "linear"])
    assert explicit["activations"] == ["tanh", "relu", "linear"]


async def test_seed_is_chosen_and_reported_when_absent(client: httpx.AsyncClient) -> None:
    response = await client.post("/networks", json={"layer_dims": [2, 1]})
    assert response.status_code == 201
    assert isinstance(response.json()["seed"], int)


async def test_list_get_delete(client: httpx.AsyncClient) -> None:
    a = await create(client, name="a")
    b = await create(client, name="b")
    listing = (await client.get("/networks")).json()["networks"]
    assert [n["id"] for n in listing] == [a["id"], b["id"]]
    got = await client.get(f"/networks/{a['id']}")
    assert got.status_code == 200
    assert got.json() == a
    assert got.headers["etag"] == '"1"'
    deleted = await client.delete(f"/networks/{a['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await client.get(f"/networks/{a['id']}"), 404, a["id"])
    assert_problem(await client.delete(f"/networks/{a['id']}"), 404, a["id"])
    assert [n["id"] for n in (await client.get("/networks")).json()["networks"]] == [b["id"]]


async def test_unknown_network_is_404_everywhere(client: httpx.AsyncClient) -> None:
    batch = {"X": [[0.0], [1.0]], "Y": [[1.0]]}
    for method, path, body in [
        ("GET", "/networks/nope", None),
        ("GET", "/networks/nope/parameters", None),
        ("PUT", "/networks/nope/parameters", {"layers": [{"W": [[1.0, 1.0]], "b": [[0.0]]}]}),
        ("POST", "/networks/nope/train", batch),
        ("POST", "/networks/nope/gradients", batch),
        ("GET", "/networks/nope/gradients", None),
        ("POST", "/networks/nope/gradient-check", batch),
        ("POST", "/networks/nope/predict", {"X": [[0.0], [1.0]]}),
        ("POST", "/networks/nope/evaluate", batch),
        ("GET", "/networks/nope/history", None),
        ("DELETE", "/networks/nope", None),
    ]:
        response = await client.request(method, path, json=body)
        assert_problem(response, 404, "'nope'")


async def test_create_with_parameters_and_put_parameters(client: httpx.AsyncClient) -> None:
    layers = [
        {"W": [[1.0, -1.0], [0.5, 0.25]], "b": [[0.1], [-0.1]]},
        {"W": [[2.0, 3.0]], "b": [[0.0]]},
    ]
    net = await create(client, layer_dims=[2, 2, 1], parameters=layers)
    params = (await client.get(f"/networks/{net['id']}/parameters")).json()
    assert params["version"] == 1
    assert [{"W": l["W"], "b": l["b"]} for l in params["layers"]] == layers
    assert [l["layer"] for l in params["layers"]] == [1, 2]

    new_layers = [
        {"W": b64([[0.0, 1.0], [1.0, 0.0]]), "b": [[0.0], [0.0]]},
        {"W": [[1.0, 1.0]], "b": [[0.5]]},
    ]
    put = await client.put(
        f"/networks/{net['id']}/parameters",
        json={"layers": new_layers},
        headers={"If-Match": '"1"'},
    )
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 2
    assert put.headers["etag"] == '"2"'
    assert put.json()["layers"][0]["W"] == [[0.0, 1.0], [1.0, 0.0]]
    assert (await client.get(f"/networks/{net['id']}")).json()["version"] == 2

    stale = await client.put(
        f"/networks/{net['id']}/parameters", json={"layers": new_layers}, headers={"If-Match": "1"}
    )
    assert_problem(stale, 409, "version 1", "version 2")
    without = await client.put(f"/networks/{net['id']}/parameters", json={"layers": new_layers})
    assert without.status_code == 200
    assert without.json()["version"] == 3


async def test_put_parameters_checks_every_shape(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[2, 3, 1])
    wrong = [{"W": [[1.0, 1.0]] * 3, "b": [[0.0]] * 3}, {"W": [[1.0, 1.0]], "b": [[0.0]]}]
    response = await client.put(f"/networks/{net['id']}/parameters", json={"layers": wrong})
    assert_problem(response, 422, "(1, 3)", "(1, 2)")
    too_few = await client.put(f"/networks/{net['id']}/parameters", json={"layers": wrong[:1]})
    assert_problem(too_few, 422, "2")
    bad_etag = await client.put(
        f"/networks/{net['id']}/parameters", json={"layers": wrong}, headers={"If-Match": "abc"}
    )
    assert_problem(bad_etag, 422, "If-Match")
    assert (await client.get(f"/networks/{net['id']}")).json()["version"] == 1


async def test_parameters_as_base64_in_the_network_dtype(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[3, 2, 1], dtype="float32", seed=5)
    plain = (await client.get(f"/networks/{net['id']}/parameters")).json()
    encoded = (await client.get(f"/networks/{net['id']}/parameters?encoding=base64")).json()
    for p, e in zip(plain["layers"], encoded["layers"], strict=True):
        assert e["W"]["dtype"] == "float32"
        assert e["W"]["shape"] == [len(p["W"]), len(p["W"][0])]
        np.testing.assert_array_equal(unb64(e["W"]), np.array(p["W"], dtype=np.float32))
        np.testing.assert_array_equal(unb64(e["b"]), np.array(p["b"], dtype=np.float32))
    bad = await client.get(f"/networks/{net['id']}/parameters?encoding=xml")
    assert_problem(bad, 422, "encoding")


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"layer_dims": [3]}, ["layer_dims"]),
        ({"layer_dims": [3, 0, 1]}, ["layer_dims"]),
        ({"layer_dims": [3, -2, 1]}, ["layer_dims"]),
        ({"layer_dims": [3, "2", 1]}, ["layer_dims"]),
        ({"layer_dims": [3, 1], "hidden_activation": "swish"}, ["hidden_activation"]),
        ({"layer_dims": [3, 1], "loss": "hinge"}, ["loss"]),
        ({"layer_dims": [3, 1], "initialization": "orthogonal"}, ["initialization"]),
        ({"layer_dims": [3, 1], "dtype": "float16"}, ["dtype"]),
        ({"layer_dims": [3, 1], "optimizer": {"name": "rmsprop"}}, ["optimizer"]),
        ({"layer_dims": [3, 1], "optimizer": {"learning_rate": -1}}, ["learning_rate"]),
        ({"layer_dims": [3, 1], "activations": ["relu", "relu"]}, ["1"]),
        ({"layer_dims": [3, 1], "seed": -1}, ["seed"]),
        ({"layer_dims": [3, 1], "l2_lambda": -0.5}, ["l2_lambda"]),
        ({"layer_dims": [3, 1], "unknown": 1}, ["unknown"]),
        ({"layer_dims": [3, 2, 1], "activations": ["softmax", "sigmoid"]}, ["softmax"]),
        ({"layer_dims": [3, 1], "parameters": [{"W": [[1.0, 2.0]], "b": [[0.0]]}]}, ["(1, 3)"]),
    ],
)
async def test_create_refuses_invalid_specs(
    client: httpx.AsyncClient, spec: dict[str, object], fragments: list[str]
) -> None:
    assert_problem(await client.post("/networks", json=spec), 422, *fragments)
    assert (await client.get("/networks")).json()["networks"] == []


async def test_limits_from_settings(client: httpx.AsyncClient) -> None:
    too_deep = await client.post("/networks", json={"layer_dims": [2] * 70})
    assert_problem(too_deep, 422, "69 layers", "64")
    too_big = await client.post("/networks", json={"layer_dims": [100_000, 100_000, 1]})
    assert_problem(too_big, 422, "parameters", "10000000")
    too_wide = await client.post("/networks", json={"layer_dims": [200_000, 1]})
    assert_problem(too_wide, 422, "200000 units")


async def test_a_network_deleted_by_another_process_leaves_this_ones_memory(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    net = await create(client)
    predicted = await client.post(f"/networks/{net['id']}/predict", json={"X": [[0.0], [1.0]]})
    assert predicted.status_code == 200
    assert len(app.state.warm) == 1
    other = open_store(settings.database_url)  # another worker or replica on the same store
    try:
        other.delete_network(net["id"], "")
    finally:
        other.close()
    gone = await client.post(f"/networks/{net['id']}/predict", json={"X": [[0.0], [1.0]]})
    assert_problem(gone, 404, net["id"])
    assert len(app.state.warm) == 0
