"""GET /networks/{id}/onnx: every activation, as hidden layer and as output, in float32 and
float64, exported through the route, run in ONNX Runtime and compared with
POST /networks/{id}/predict (transposed: the model takes one row per example).

Tolerances: float64 within rtol = atol = 1e-12 and float32 within rtol = atol = 1e-5, each
``|onnx - predict| <= atol + rtol |predict|``. The two runtimes sum the products of each
layer in different orders and use their own exp/tanh, so they agree to a few units in the
last place (measured here: float64 within 7e-16, float32 within 1.2e-7; 3e-15 and 5e-7 on
wider layers): relative where an output
is large (linear and relu outputs grow with the inputs), absolute near zero, where a sum
that cancels keeps the rounding of its terms, not of its result, and where ONNX Runtime's
float32 sigmoid saturates at about 1.5e-8 instead of numpy's tiny values. The labels must
be equal exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from service.core.settings import Settings
from service.export import onnx as export
from service.store import open_store
from tests.service.helpers import app_client, assert_problem, b64, unb64

pytestmark = pytest.mark.anyio

HIDDEN = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
OUTPUTS = ("sigmoid", "softmax", "linear", "relu", "tanh", "leaky_relu")
DTYPES = ("float32", "float64")
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def _cases() -> list[Any]:
    cases = []
    for dtype in DTYPES:
        for output in OUTPUTS:
            width = 3 if output == "softmax" else 2
            cases.append(pytest.param([4, width], [output], dtype, id=f"L1-{output}-{dtype}"))
            for hidden in HIDDEN:
                cases.append(
                    pytest.param(
                        [5, 8, 6, width + 1],
                        [hidden, hidden, output],
                        dtype,
                        id=f"{hidden}-{output}-{dtype}",
                    )
                )
        cases.append(
            pytest.param(
                [6, 12, 9, 7, 5, 4],
                ["relu", "leaky_relu", "tanh", "sigmoid", "softmax"],
                dtype,
                id=f"mixed-softmax-{dtype}",
            )
        )
        cases.append(
            pytest.param(
                [3, 10, 10, 10, 1],
                ["sigmoid", "linear", "leaky_relu", "linear"],
                dtype,
                id=f"mixed-linear-{dtype}",
            )
        )
    return cases


def labels(output: str, n_L: int, m: int, rng: np.random.Generator) -> np.ndarray:
    if output == "sigmoid":
        return (rng.random((n_L, m)) > 0.5).astype(float)
    if output == "softmax":
        return np.eye(n_L)[rng.integers(0, n_L, m)].T
    return rng.normal(size=(n_L, m)) * 0.5


def session(content: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(content, providers=["CPUExecutionProvider"])


async def export_model(client: httpx.AsyncClient, network_id: str) -> httpx.Response:
    response = await client.get(f"/networks/{network_id}/onnx")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    return response


async def predicted(
    client: httpx.AsyncClient, network_id: str, rows: np.ndarray, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """/predict on ``rows`` (sent as the network's own dtype, bit for bit), as rows."""
    response = await client.post(
        f"/networks/{network_id}/predict?encoding=base64", json={"X": b64(rows.T, dtype)}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    return unb64(answer["A"]).T, unb64(answer["predictions"]).T


@pytest.mark.parametrize(("layer_dims", "activations", "dtype"), _cases())
async def test_the_export_runs_as_predict(
    client: httpx.AsyncClient, layer_dims: list[int], activations: list[str], dtype: str
) -> None:
    rng = np.random.default_rng(len(layer_dims) * 100 + len(activations[0]) + len(activations[-1]))
    created = await client.post(
        "/networks",
        json={
            "layer_dims": layer_dims,
            "activations": activations,
            "dtype": dtype,
            "seed": 5,
            "initialization": "xavier",
            "optimizer": {"name": "adam", "learning_rate": 0.01},
        },
    )
    assert created.status_code == 201, created.text
    network = created.json()
    n_x, n_L = layer_dims[0], layer_dims[-1]
    X_train = rng.normal(size=(n_x, 64))
    Y_train = labels(activations[-1], n_L, 64, rng)
    trained = await client.post(
        f"/networks/{network['id']}/train",
        json={"X": X_train.tolist(), "Y": Y_train.tolist(), "epochs": 25},
    )
    assert trained.status_code == 200, trained.text
    assert trained.json()["network"]["version"] == 2  # trained, not the initial parameters

    response = await export_model(client, network["id"])
    assert response.headers["etag"] == '"2"'
    model = onnx.load_model_from_string(response.content)
    onnx.checker.check_model(model, full_check=True)

    # Ordinary inputs, inputs 100 times larger (sigmoid and softmax saturate, ReLUs grow),
    # and one example alone: m is dynamic.
    rows = np.vstack([rng.normal(size=(40, n_x)), rng.normal(size=(20, n_x)) * 100])
    rows = rows.astype(dtype)
    runner = session(response.content)
    for batch in (rows, rows[:1]):
        A, predictions = runner.run(None, {"X": batch})
        expected_A, expected_predictions = await predicted(client, network["id"], batch, dtype)
        assert A.dtype == np.dtype(dtype)
        assert A.shape == (len(batch), n_L)
        tolerance = TOLERANCE[dtype]
        assert_allclose(A, expected_A, rtol=tolerance, atol=tolerance)
        assert predictions.shape == expected_predictions.shape
        if activations[-1] in ("sigmoid", "softmax"):
            # base64 /predict sends labels in the network's dtype; they are whole numbers.
            assert predictions.dtype == np.int64
            assert_array_equal(predictions, expected_predictions.astype(np.int64))
        else:  # A itself, in the network's dtype, as the V2 route answers it
            assert predictions.dtype == np.dtype(dtype)
            assert_allclose(predictions, expected_predictions, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    ("spec", "element", "predictions"),
    [
        ({"layer_dims": [3, 4, 2]}, "tensor(double)", ("tensor(int64)", ["m", 2])),
        (
            {"layer_dims": [3, 4, 5], "output_activation": "softmax", "dtype": "float32"},
            "tensor(float)",
            ("tensor(int64)", ["m", 1]),
        ),
        (
            {"layer_dims": [3, 2], "output_activation": "linear", "dtype": "float32"},
            "tensor(float)",
            ("tensor(float)", ["m", 2]),
        ),
    ],
)
async def test_the_model_declares_its_tensors_and_metadata(
    client: httpx.AsyncClient,
    spec: dict[str, Any],
    element: str,
    predictions: tuple[str, list[Any]],
) -> None:
    network = (await client.post("/networks", json={"seed": 1, **spec})).json()
    response = await export_model(client, network["id"])
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{network["id"]}.onnx"'
    )
    runner = session(response.content)
    [x] = runner.get_inputs()
    n_x, n_L = spec["layer_dims"][0], spec["layer_dims"][-1]
    assert (x.name, x.type, x.shape) == ("X", element, ["m", n_x])
    outputs = [(o.name, o.type, o.shape) for o in runner.get_outputs()]
    assert outputs == [("A", element, ["m", n_L]), ("predictions", *predictions)]

    model = onnx.load_model_from_string(response.content)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", export.OPSET)]
    assert export.OPSET >= 13
    assert model.ir_version == export.IR_VERSION
    assert model.producer_name == "backprop-service"
    assert model.producer_version == "0.1.0"
    assert model.model_version == 1
    metadata = runner.get_modelmeta().custom_metadata_map
    assert metadata == {
        "network_id": network["id"],
        "version": "1",
        "layer_dims": json.dumps(spec["layer_dims"]),
        "activations": json.dumps(network["activations"]),
        "loss": network["loss"],
        "dtype": network["dtype"],
    }


async def test_the_leaky_slope_is_the_engines(client: httpx.AsyncClient) -> None:
    # One unit, W = 1, b = 0: A is leaky_relu(x) itself.
    network = (
        await client.post(
            "/networks",
            json={
                "layer_dims": [1, 1],
                "activations": ["leaky_relu"],
                "parameters": [{"W": [[1.0]], "b": [[0.0]]}],
            },
        )
    ).json()
    runner = session((await export_model(client, network["id"])).content)
    x = np.array([[-3.0], [-1e-300], [0.0], [2.5]])
    [A, _] = runner.run(None, {"X": x})
    assert A.ravel().tolist() == [-3.0 * 0.01, -1e-300 * 0.01, 0.0, 2.5]


async def test_the_etag_and_metadata_follow_the_version(client: httpx.AsyncClient) -> None:
    network = (await client.post("/networks", json={"layer_dims": [2, 3, 1], "seed": 2})).json()
    first = await export_model(client, network["id"])
    assert first.headers["etag"] == '"1"'
    assert (await export_model(client, network["id"])).content == first.content  # deterministic
    batch = {"X": [[0.0, 1.0], [1.0, 0.0]], "Y": [[1.0, 0.0]], "epochs": 3}
    assert (await client.post(f"/networks/{network['id']}/train", json=batch)).is_success
    second = await export_model(client, network["id"])
    assert second.headers["etag"] == '"2"'
    assert second.content != first.content
    metadata = session(second.content).get_modelmeta().custom_metadata_map
    assert metadata["version"] == "2"
    assert onnx.load_model_from_string(second.content).model_version == 2


async def test_an_unknown_network_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/networks/nope/onnx"), 404, "no network with id 'nope'")


async def test_too_large_for_one_file_is_422(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = (await client.post("/networks", json={"layer_dims": [2, 3, 1]})).json()
    monkeypatch.setattr(export, "MAX_PARAMETER_BYTES", 64)
    response = await client.get(f"/networks/{network['id']}/onnx")
    assert_problem(response, 422, "take 104 bytes", "at most 64", "2 GiB")


async def test_a_key_is_needed_and_sees_only_its_own(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'keys.db'}", api_keys="alice,bob")
    store = open_store(settings.database_url)
    alice, bob = {"Authorization": "Bearer alice"}, {"Authorization": "Bearer bob"}
    try:
        async with app_client(settings, store) as client:
            created = await client.post("/networks", json={"layer_dims": [2, 1]}, headers=alice)
            path = f"/networks/{created.json()['id']}/onnx"
            response = await client.get(path)
            assert_problem(response, 401, "API key")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert_problem(await client.get(path, headers=bob), 404)
            assert (await client.get(path, headers=alice)).status_code == 200
    finally:
        store.close()


async def test_openapi_documents_the_export(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/networks/{network_id}/onnx"]["get"]
    assert operation["summary"] == "Export to ONNX"
    assert "**one row per example**" in " ".join(operation["description"].split())
    assert operation["responses"]["200"]["content"] == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    assert set(operation["responses"]) == {"200", "404", "422", "503"}
