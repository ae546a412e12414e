"""The Open Inference Protocol (V2) routes, in-process: the raw protocol (JSON and binary
tensors, both directions), checked against POST /networks/{id}/predict, and every error
answered as {"error": message}."""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from fastapi import FastAPI, Request
from numpy.testing import assert_allclose, assert_array_equal

from service.core.capacity import HeavyWork
from service.core.settings import Settings
from service.deps import Service, get_service
from service.main import create_app
from service.store import StoreUnavailable, open_store
from tests.service.helpers import XOR_X, XOR_Y, app_client, create

HEADER_LENGTH = "Inference-Header-Content-Length"
ROWS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]  # XOR_X, one row per example

pytestmark = pytest.mark.anyio


def infer_body(data: Any = ROWS, shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    tensor = {"name": "X", "shape": shape or [4, 2], "datatype": "FP64", "data": data}
    return {"inputs": [tensor], **extra}


async def infer(
    client: httpx.AsyncClient,
    model: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
    version: str | None = None,
) -> httpx.Response:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(path, content=content, headers=headers)


def binary_request(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    """The binary tensor extension by hand: the JSON header, then the raw bytes."""
    head = orjson.dumps(header)
    return head + b"".join(chunks), {HEADER_LENGTH: str(len(head))}


def read_binary(response: httpx.Response) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a binary answer into its JSON header and its tensors, as a client would."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    header = orjson.loads(response.content[:length])
    tensors, offset = {}, length
    for output in header["outputs"]:
        dtype = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8"}[output["datatype"]]
        if "parameters" in output:
            size = output["parameters"]["binary_data_size"]
            raw = response.content[offset : offset + size]
            offset += size
            tensors[output["name"]] = np.frombuffer(raw, dtype=dtype).reshape(output["shape"])
        else:
            tensors[output["name"]] = np.array(output["data"], dtype=dtype).reshape(output["shape"])
    assert offset == len(response.content)
    return header, tensors


def read_json(response: httpx.Response) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert HEADER_LENGTH.lower() not in response.headers
    answer = response.json()
    tensors = {}
    for output in answer["outputs"]:
        dtype = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8"}[output["datatype"]]
        tensors[output["name"]] = np.array(output["data"], dtype=dtype).reshape(output["shape"])
    return answer, tensors


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The protocol's error: ``status``, application/json, exactly ``{"error": message}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert list(body) == ["error"], body
    message: str = body["error"]
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


async def predicted(client: httpx.AsyncClient, model: str, rows: Any) -> dict[str, np.ndarray]:
    """POST /networks/{id}/predict on the same examples, as rows (its answer transposed)."""
    X = np.asarray(rows, dtype=np.float64).T.tolist()
    response = await client.post(f"/networks/{model}/predict", json={"X": X})
    assert response.status_code == 200, response.text
    answer = response.json()
    return {name: np.asarray(answer[name]).T for name in ("A", "predictions")}


# ---- server and model metadata --------------------------------------------------------------


async def test_server_metadata_and_health(client: httpx.AsyncClient) -> None:
    server = await client.get("/v2")
    assert server.status_code == 200
    assert server.json() == {
        "name": "backprop-service",
        "version": "0.2.0",
        "extensions": ["binary_tensor_data"],
    }
    live = await client.get("/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    ready = await client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_not_ready_when_the_store_is_gone(app: FastAPI, client: httpx.AsyncClient) -> None:
    class Gone:
        def ready(self) -> None:
            raise StoreUnavailable("disk unplugged")

    app.state.store = Gone()
    assert_error(await client.get("/v2/health/ready"), 503, "disk unplugged")
    assert (await client.get("/v2/health/live")).status_code == 200


@pytest.mark.parametrize(
    ("spec", "expected_inputs", "expected_outputs"),
    [
        (
            {"layer_dims": [2, 4, 1]},
            [{"name": "X", "datatype": "FP64", "shape": [-1, 2]}],
            [
                {"name": "A", "datatype": "FP64", "shape": [-1, 1]},
                {"name": "predictions", "datatype": "INT64", "shape": [-1, 1]},
            ],
        ),
        (
            {"layer_dims": [3, 5, 4], "output_activation": "softmax", "dtype": "float32"},
            [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}],
            [
                {"name": "A", "datatype": "FP32", "shape": [-1, 4]},
                {"name": "predictions", "datatype": "INT64", "shape": [-1, 1]},
            ],
        ),
        (
            {"layer_dims": [3, 2], "output_activation": "linear"},
            [{"name": "X", "datatype": "FP64", "shape": [-1, 3]}],
            [
                {"name": "A", "datatype": "FP64", "shape": [-1, 2]},
                {"name": "predictions", "datatype": "FP64", "shape": [-1, 2]},
            ],
        ),
    ],
)
async def test_model_metadata_follows_the_network(
    client: httpx.AsyncClient,
    spec: dict[str, Any],
    expected_inputs: list[dict[str, Any]],
    expected_outputs: list[dict[str, Any]],
) -> None:
    net = await create(client, **spec)
    for path in (f"/v2/models/{net['id']}", f"/v2/models/{net['id']}/versions/1"):
        response = await client.get(path)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "name": net["id"],
            "versions": ["1"],
            "platform": "backprop-numpy",
            "inputs": expected_inputs,
            "outputs": expected_outputs,
        }


async def test_only_the_current_version_is_served(client: httpx.AsyncClient) -> None:
    net = await create(client)
    model = net["id"]
    trained = await client.post(f"/networks/{model}/train", json={"X": XOR_X, "Y": XOR_Y})
    assert trained.json()["network"]["version"] == 2
    ready = await client.get(f"/v2/models/{model}/ready")
    assert (ready.status_code, ready.json()) == (200, {"name": model, "ready": True})
    assert (await client.get(f"/v2/models/{model}/versions/2/ready")).status_code == 200
    assert (await client.get(f"/v2/models/{model}")).json()["versions"] == ["2"]
    current = read_json(await infer(client, model, infer_body(), version="2"))
    assert current[0]["model_version"] == "2"
    for version in ("1", "3", "latest", "02"):
        for response in (
            await client.get(f"/v2/models/{model}/versions/{version}"),
            await client.get(f"/v2/models/{model}/versions/{version}/ready"),
            await infer(client, model, infer_body(), version=version),
        ):
            assert_error(response, 404, f"no version '{version}'", "current version, 2")


# ---- inference: JSON ------------------------------------------------------------------------

SPECS = [
    pytest.param({"layer_dims": [2, 4, 3]}, id="sigmoid-float64"),
    pytest.param(
        {"layer_dims": [2, 5, 3], "output_activation": "softmax", "dtype": "float32"},
        id="softmax-float32",
    ),
    pytest.param({"layer_dims": [2, 3, 2], "output_activation": "linear"}, id="linear-float64"),
]


@pytest.mark.parametrize("spec", SPECS)
async def test_infer_matches_predict_transposed(
    client: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    net = await create(client, **spec)
    rows = np.random.default_rng(0).normal(size=(6, 2)) * 3
    expected = await predicted(client, net["id"], rows)
    flat = read_json(await infer(client, net["id"], infer_body(rows.ravel().tolist(), [6, 2])))
    nested = read_json(await infer(client, net["id"], infer_body(rows.tolist(), [6, 2])))
    own = "FP32" if spec.get("dtype") == "float32" else "FP64"
    for answer, tensors in (flat, nested):
        assert answer["model_name"] == net["id"]
        assert answer["model_version"] == "1"
        assert "id" not in answer
        assert [o["name"] for o in answer["outputs"]] == ["A", "predictions"]
        assert answer["outputs"][0]["datatype"] == own
        assert_allclose(tensors["A"], expected["A"], rtol=1e-6)
        assert_array_equal(tensors["predictions"], expected["predictions"])
        assert tensors["A"].shape == (6, spec["layer_dims"][-1])
    width = 1 if spec.get("output_activation") == "softmax" else spec["layer_dims"][-1]
    assert flat[1]["predictions"].shape == (6, width)


async def test_requested_outputs_their_order_and_the_id(client: httpx.AsyncClient) -> None:
    net = await create(client)
    body = infer_body(id="request-7", outputs=[{"name": "predictions"}, {"name": "A"}])
    answer, _ = read_json(await infer(client, net["id"], body))
    assert answer["id"] == "request-7"
    assert [o["name"] for o in answer["outputs"]] == ["predictions", "A"]
    only = read_json(await infer(client, net["id"], infer_body(outputs=[{"name": "A"}])))
    assert [o["name"] for o in only[0]["outputs"]] == ["A"]
    every = read_json(await infer(client, net["id"], infer_body(outputs=[])))
    assert [o["name"] for o in every[0]["outputs"]] == ["A", "predictions"]


@pytest.mark.parametrize(
    "content_type", [None, "application/octet-stream", "application/json", "text/plain"]
)
async def test_the_body_is_parsed_whatever_its_content_type(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    net = await create(client)
    headers = {"Content-Type": content_type} if content_type else {}
    response = await infer(client, net["id"], infer_body(), headers)
    expected = await predicted(client, net["id"], ROWS)
    assert_allclose(read_json(response)[1]["A"], expected["A"])


async def test_fp32_input_to_a_float64_network_and_output_datatypes(
    client: httpx.AsyncClient,
) -> None:
    net = await create(client)
    body = infer_body(
        outputs=[
            {"name": "A", "parameters": {"datatype": "FP32"}},
            {"name": "predictions", "parameters": {"datatype": "FP64"}},
        ]
    )
    body["inputs"][0]["datatype"] = "FP32"
    answer, tensors = read_json(await infer(client, net["id"], body))
    assert [o["datatype"] for o in answer["outputs"]] == ["FP32", "FP64"]
    expected = await predicted(client, net["id"], ROWS)
    assert_allclose(tensors["A"], expected["A"], rtol=1e-6)
    assert_array_equal(tensors["predictions"], expected["predictions"])


# ---- inference: binary tensors --------------------------------------------------------------


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
async def test_binary_input_by_hand(client: httpx.AsyncClient, datatype: str) -> None:
    net = await create(client, dtype="float32")
    rows = np.asarray(ROWS, dtype="<f4" if datatype == "FP32" else "<f8")
    header = {
        "inputs": [
            {
                "name": "X",
                "shape": [4, 2],
                "datatype": datatype,
                "parameters": {"binary_data_size": rows.nbytes},
            }
        ]
    }
    body, headers = binary_request(header, rows.tobytes())
    answer, tensors = read_json(await infer(client, net["id"], body, headers))
    assert answer["outputs"][0]["datatype"] == "FP32"  # the network's
    expected = await predicted(client, net["id"], ROWS)
    assert_allclose(tensors["A"], expected["A"], rtol=1e-6)
    assert_array_equal(tensors["predictions"], expected["predictions"])


async def test_binary_outputs(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[2, 3, 4], output_activation="softmax")
    expected = await predicted(client, net["id"], ROWS)
    everything = await infer(
        client, net["id"], infer_body(id="b", parameters={"binary_data_output": True})
    )
    header, tensors = read_binary(everything)
    assert header["id"] == "b"
    assert [o["parameters"] for o in header["outputs"]] == [
        {"binary_data_size": 4 * 4 * 8},
        {"binary_data_size": 4 * 1 * 8},
    ]
    assert tensors["A"].dtype == np.float64
    assert tensors["predictions"].dtype == np.int64
    assert_allclose(tensors["A"], expected["A"])
    assert_array_equal(tensors["predictions"], expected["predictions"])
    # Per output, binary_data overrides the request's default either way.
    mixed = infer_body(
        parameters={"binary_data_output": True},
        outputs=[
            {"name": "predictions", "parameters": {"binary_data": False}},
            {"name": "A", "parameters": {"binary_data": True, "datatype": "FP32"}},
        ],
    )
    header, tensors = read_binary(await infer(client, net["id"], mixed))
    assert header["outputs"][0]["data"] == expected["predictions"].ravel().tolist()
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 4 * 4 * 4}
    assert_allclose(tensors["A"], expected["A"], rtol=1e-6)


@pytest.mark.parametrize(
    ("coding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_compressed_requests(
    client: httpx.AsyncClient, coding: str, compress: Callable[[bytes], bytes]
) -> None:
    net = await create(client)
    rows = np.asarray(ROWS)
    header = {
        "inputs": [
            {
                "name": "X",
                "shape": [4, 2],
                "datatype": "FP64",
                "parameters": {"binary_data_size": 64},
            }
        ]
    }
    body, headers = binary_request(header, rows.tobytes())
    headers["Content-Encoding"] = coding
    response = await infer(client, net["id"], compress(body), headers)
    expected = await predicted(client, net["id"], ROWS)
    assert_allclose(read_json(response)[1]["A"], expected["A"])
    headers["Content-Encoding"] = "br"
    assert_error(await infer(client, net["id"], body, headers), 415, "'br'")
    headers["Content-Encoding"] = coding
    assert_error(await infer(client, net["id"], body, headers), 400, f"not valid {coding}")
    cut = compress(body)[:-12]
    assert_error(await infer(client, net["id"], cut, headers), 400, "ends too early")


# ---- errors ---------------------------------------------------------------------------------


def _tensor(**changes: Any) -> dict[str, Any]:
    tensor = {"name": "X", "shape": [4, 2], "datatype": "FP64", "data": ROWS}
    tensor.update(changes)
    return {"inputs": [tensor]}


BAD_REQUESTS: list[Any] = [
    pytest.param(b"{not json", "not valid JSON", id="not-json"),
    pytest.param(b"", "not valid JSON", id="empty"),
    pytest.param(b'{"inputs": [{"data": [NaN]}]}', "not valid JSON", id="nan"),
    pytest.param(b"[1, 2]", "must be a JSON object", id="array"),
    pytest.param({}, "inputs is required: an array of input tensors", id="no-inputs"),
    pytest.param(
        {"inputs": []},
        "inputs must be an array of input tensors, [{name, shape, datatype, data}] with at "
        "least one item; received an empty array.",
        id="empty-inputs",
    ),
    pytest.param(
        {"inputs": [{"name": "X", "datatype": "FP64", "data": []}]},
        "inputs[0].shape is required: an array of dimensions, [m, n_x].",
        id="no-shape",
    ),
    pytest.param(
        {**_tensor(), "id": 7},
        "id must be a string (it is echoed in the answer); received 7.",
        id="id-number",
    ),
    pytest.param(
        _tensor(shape=[4, "2"]),
        'inputs[0].shape[1] must be a dimension, an integer >= 0; received "2".',
        id="shape-string",
    ),
    pytest.param(
        _tensor(shape=[4, -2]),
        "inputs[0].shape[1] must be a dimension, an integer >= 0; received -2.",
        id="shape-negative",
    ),
    pytest.param(
        _tensor(shape=[3, 5]),
        "input X must have shape [m, 2] (one row per example); received [3, 5]",
        id="wrong-width",
    ),
    pytest.param(
        _tensor(shape=[2, 4], data=XOR_X), "received [2, 4]. It looks like one column", id="cols"
    ),
    pytest.param(_tensor(shape=[8]), "received [8]", id="one-d"),
    pytest.param(_tensor(shape=[0, 2], data=[]), "at least one example", id="no-examples"),
    pytest.param(
        _tensor(datatype="INT32"), "datatype FP32 or FP64; received 'INT32'", id="datatype"
    ),
    pytest.param(
        _tensor(name="x"), "exactly one input, X [m, 2]; received unknown input 'x'", id="name"
    ),
    pytest.param({"inputs": _tensor()["inputs"] * 2}, "received X 2 times", id="duplicate-input"),
    pytest.param(_tensor(data=None), "input X has no data", id="no-data"),
    pytest.param(_tensor(data=[0.0] * 7), "[4, 2] needs 8 values; data holds 7", id="count"),
    pytest.param(
        _tensor(data=[[0.0, 1.0, 2.0, 3.0]] * 2),
        "nested data has shape [2, 4] but the tensor declares shape [4, 2]",
        id="nested-shape",
    ),
    pytest.param(_tensor(data=[[0.0, 1.0], [2.0]] * 2), "rectangular", id="ragged"),
    pytest.param(_tensor(data=[[0.0, 1.0], 2.0] * 2), "mix of arrays", id="mixed-depth"),
    pytest.param(_tensor(data=["0"] * 8), "received a string", id="strings"),
    pytest.param(_tensor(data=[True] * 8), "received true/false", id="bools"),
    pytest.param(_tensor(data=[None] * 8), "received null", id="nulls"),
    pytest.param(_tensor(data={"a": 1}), "data must be an array", id="data-object"),
    pytest.param(
        _tensor(datatype="FP32", data=[1e39] * 8), "beyond FP32's range", id="fp32-overflow"
    ),
    pytest.param(
        {**_tensor(), "outputs": [{"name": "Y"}]},
        "Unknown output 'Y'; this model's outputs are A, predictions",
        id="output-name",
    ),
    pytest.param(
        {**_tensor(), "outputs": [{"name": "A"}, {"name": "A"}]}, "twice", id="output-twice"
    ),
    pytest.param(
        {**_tensor(), "outputs": [{"name": "A", "parameters": {"datatype": "INT64"}}]},
        "output 'A' can be answered as FP32 or FP64; received datatype 'INT64'",
        id="output-datatype",
    ),
    pytest.param(
        {**_tensor(), "outputs": [{"name": "A", "parameters": {"binary_data": "yes"}}]},
        "parameter 'binary_data' must be true/false; received 'yes'",
        id="binary-data-type",
    ),
    pytest.param(
        {**_tensor(), "parameters": {"binary_data_output": 1}},
        "parameter 'binary_data_output' must be true/false",
        id="binary-output-type",
    ),
    pytest.param(
        {**_tensor(), "outputs": [{"name": "A", "parameters": {"classification": 2}}]},
        "classification extension is not supported",
        id="classification",
    ),
]


async def test_bad_requests_answer_400_with_an_error(client: httpx.AsyncClient) -> None:
    net = await create(client)
    failures = []
    for case in BAD_REQUESTS:
        body, fragment = case.values
        try:
            assert_error(await infer(client, net["id"], body), 400, fragment)
        except AssertionError as failure:  # report every case, not only the first
            failures.append(f"{case.id}: {failure}")
    assert not failures, "\n".join(failures)


# The header's own mistakes, in sentences: the field, what it must be, what it was.
READABLE_ERRORS: list[Any] = [
    pytest.param(
        {"inputs": [{"name": "X", "shape": [-1, 2], "datatype": "FP64", "data": ROWS}]},
        "inputs[0].shape[0] must be a dimension, an integer >= 0; received -1.",
        id="negative-dimension",
    ),
    pytest.param(
        _tensor(shape=[4, 2.0]),
        "inputs[0].shape[1] must be a dimension, an integer >= 0; received 2.0.",
        id="float-dimension",
    ),
    pytest.param(
        _tensor(shape="4x2"),
        'inputs[0].shape must be an array of dimensions, [m, n_x]; received "4x2".',
        id="shape-string",
    ),
    pytest.param(
        {"inputs": {"name": "X"}},
        "inputs must be an array of input tensors, [{name, shape, datatype, data}]; received "
        "an object.",
        id="inputs-object",
    ),
    pytest.param(
        {"inputs": [[4, 2]]},
        "inputs[0] must be an input tensor: an object {name, shape, datatype, data}; received "
        "an array.",
        id="tensor-array",
    ),
    pytest.param(
        _tensor(name=None),
        'inputs[0].name must be a string, the input\'s name ("X"); received null.',
        id="name-null",
    ),
    pytest.param(
        _tensor(datatype=64),
        'inputs[0].datatype must be a string, "FP32" or "FP64"; received 64.',
        id="datatype-number",
    ),
    pytest.param(
        _tensor(parameters=["binary_data_size", 64]),
        "inputs[0].parameters must be an object of parameters; received an array.",
        id="tensor-parameters-array",
    ),
    pytest.param(
        {**_tensor(), "parameters": "binary"},
        'parameters must be an object of parameters; received "binary".',
        id="parameters-string",
    ),
    pytest.param(
        {**_tensor(), "outputs": {"name": "A"}},
        'outputs must be an array of requested outputs, [{"name": "A"}, {"name": '
        '"predictions"}]; received an object.',
        id="outputs-object",
    ),
    pytest.param(
        {**_tensor(), "outputs": [{"parameters": {"binary_data": True}}]},
        'outputs[0].name is required: a string, "A" or "predictions".',
        id="output-without-name",
    ),
    pytest.param(
        {"inputs": [{"name": 1, "shape": {}, "datatype": None, "parameters": 0}]},
        'inputs[0].name must be a string, the input\'s name ("X"); received 1. '
        "inputs[0].shape must be an array of dimensions, [m, n_x]; received an object. "
        'inputs[0].datatype must be a string, "FP32" or "FP64"; received null. '
        "(1 more problem not listed.)",
        id="several",
    ),
    pytest.param(
        b"7",
        "The request must be a JSON object {inputs, outputs?, id?, parameters?}; "
        "received a number.",
        id="number",
    ),
]


async def test_header_errors_read_as_sentences(client: httpx.AsyncClient) -> None:
    net = await create(client)
    failures = []
    for case in READABLE_ERRORS:
        body, expected = case.values
        try:
            assert assert_error(await infer(client, net["id"], body), 400) == expected
        except AssertionError as failure:
            failures.append(f"{case.id}: {failure}")
    assert not failures, "\n".join(failures)


def _with_extras(body: dict[str, Any], other_model: str) -> dict[str, Any]:
    """``body`` with every field the protocol allows and this service does not use."""
    tensor = dict(body["inputs"][0])
    tensor["parameters"] = {**tensor.get("parameters", {}), "content_type": "np", "n": 1.5}
    tensor["comment"] = {"anything": ["at all"]}
    return {
        "model_name": other_model,  # the path names the model: this one is not read
        "model_version": "7",
        "id": "kserve-1234",
        "parameters": {"sequence_id": 3, "priority": 1, "timeout": 100, "custom": "x"},
        "inputs": [tensor],
        "outputs": [
            {"name": "A", "parameters": {"content_type": "np"}, "shape": [4, 1]},
            {"name": "predictions", "datatype": "INT64"},
        ],
        "trace": {"span": 1},
    }


async def test_fields_the_protocol_allows_are_ignored(client: httpx.AsyncClient) -> None:
    net = await create(client)
    expected = await predicted(client, net["id"], ROWS)
    answer, tensors = read_json(await infer(client, net["id"], _with_extras(infer_body(), "x")))
    assert answer["model_name"] == net["id"]
    assert answer["model_version"] == "1"
    assert answer["id"] == "kserve-1234"
    assert [o["name"] for o in answer["outputs"]] == ["A", "predictions"]
    assert [o["datatype"] for o in answer["outputs"]] == ["FP64", "INT64"]
    assert_allclose(tensors["A"], expected["A"])
    assert_array_equal(tensors["predictions"], expected["predictions"])
    # A request's model_name and model_version never stand in for the path's.
    versioned = await infer(client, net["id"], _with_extras(infer_body(), "x"), version="1")
    assert read_json(versioned)[0]["model_version"] == "1"


async def test_fields_the_protocol_allows_are_ignored_in_binary_bodies(
    client: httpx.AsyncClient,
) -> None:
    net = await create(client, layer_dims=[2, 3, 4], output_activation="softmax")
    rows = np.asarray(ROWS)
    plain = {
        "inputs": [
            {
                "name": "X",
                "shape": [4, 2],
                "datatype": "FP64",
                "parameters": {"binary_data_size": rows.nbytes},
            }
        ]
    }
    header = _with_extras(plain, net["id"])
    header["parameters"]["binary_data_output"] = True
    body, headers = binary_request(header, rows.tobytes())
    answer, tensors = read_binary(await infer(client, net["id"], body, headers))
    assert answer["id"] == "kserve-1234"
    expected = await predicted(client, net["id"], ROWS)
    assert_allclose(tensors["A"], expected["A"])
    assert_array_equal(tensors["predictions"], expected["predictions"])
    assert tensors["predictions"].shape == (4, 1)


async def test_what_is_read_is_still_checked_beside_ignored_fields(
    client: httpx.AsyncClient,
) -> None:
    net = await create(client)
    body = _with_extras(infer_body(), net["id"])
    body["inputs"][0]["shape"] = [4, -2]
    assert_error(await infer(client, net["id"], body), 400, "inputs[0].shape[1] must be")
    body = _with_extras(infer_body(), net["id"])
    body["inputs"][0]["name"] = "x"
    assert_error(await infer(client, net["id"], body), 400, "received unknown input 'x'")
    body = _with_extras(infer_body(), net["id"])
    body["outputs"][0]["parameters"]["binary_data"] = "yes"
    assert_error(await infer(client, net["id"], body), 400, "'binary_data' must be true/false")
    body = _with_extras(infer_body(), net["id"])
    body["outputs"][1]["name"] = "labels"
    assert_error(await infer(client, net["id"], body), 400, "Unknown output 'labels'")


async def test_v2_with_a_slash_is_v2(client: httpx.AsyncClient, tmp_path: Path) -> None:
    plain, slash = await client.get("/v2"), await client.get("/v2/")
    assert (slash.status_code, slash.headers["content-type"]) == (200, "application/json")
    assert slash.json() == plain.json()
    # ... and needs a key as /v2 does, when keys are configured.
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'keys.db'}", api_keys="k")
    store = open_store(settings.database_url)
    try:
        async with app_client(settings, store) as keyed:
            for path in ("/v2", "/v2/"):
                assert_error(await keyed.get(path), 401, "API key")
            authorized = await keyed.get("/v2/", headers={"Authorization": "Bearer k"})
            assert authorized.json() == plain.json()
    finally:
        store.close()


def _binary(size: int | str, payload: bytes, header_length: str | None = None) -> Any:
    header = {
        "inputs": [
            {
                "name": "X",
                "shape": [4, 2],
                "datatype": "FP64",
                "parameters": {"binary_data_size": size},
            }
        ]
    }
    body, headers = binary_request(header, payload)
    if header_length is not None:
        headers[HEADER_LENGTH] = header_length
    return body, headers


BAD_BINARY: list[Any] = [
    pytest.param(
        _binary(64, bytes(63)), "declares 64 bytes of binary data; the body holds 63", id="short"
    ),
    pytest.param(_binary(64, bytes(65)), "the body holds 65 bytes", id="long"),
    pytest.param(
        _binary(32, bytes(32)), "FP64 needs binary_data_size 64; received 32", id="size-vs-shape"
    ),
    pytest.param(_binary("64", bytes(64)), "binary_data_size' must be int", id="size-string"),
    pytest.param(_binary(64, bytes(64), "12x"), "must be a byte count", id="header-not-int"),
    pytest.param(_binary(64, bytes(64), "99999"), "is 99999, but the body holds only", id="beyond"),
    pytest.param(_binary(64, bytes(64), "10"), "(its first 10 bytes) is not valid JSON", id="cut"),
    pytest.param(_binary(64, np.full(8, np.nan).tobytes()), "finite numbers", id="nan-bytes"),
    pytest.param(
        binary_request(_tensor(), bytes(8)),
        "8 bytes after its JSON header, but no input declares binary_data_size",
        id="stray-bytes",
    ),
    pytest.param(
        binary_request(_tensor(parameters={"binary_data_size": 64}), bytes(64)),
        "both data and binary_data_size",
        id="data-and-binary",
    ),
    pytest.param(
        (orjson.dumps(_tensor(data=None, parameters={"binary_data_size": 64})), {}),
        f"holds 0 bytes after its JSON header (send {HEADER_LENGTH}",
        id="no-header-length",
    ),
]


async def test_bad_binary_requests_answer_400(client: httpx.AsyncClient) -> None:
    net = await create(client)
    failures = []
    for case in BAD_BINARY:
        (body, headers), fragment = case.values
        try:
            assert_error(await infer(client, net["id"], body, headers), 400, fragment)
        except AssertionError as failure:
            failures.append(f"{case.id}: {failure}")
    assert not failures, "\n".join(failures)


async def test_unknown_models_answer_404(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/v2/models/nope"),
        await client.get("/v2/models/nope/ready"),
        await client.get("/v2/models/nope/versions/1"),
        await client.get("/v2/models/nope/versions/1/ready"),
        await infer(client, "nope", infer_body()),
        await infer(client, "nope", b"not even json"),
        await infer(client, "nope", infer_body(), version="1"),
    ):
        assert_error(response, 404, "There is no model (network) with id 'nope'")


async def test_another_owners_network_is_unknown(app: FastAPI, client: httpx.AsyncClient) -> None:
    net = await create(client)

    async def someone_else(request: Request) -> Service:
        return dataclasses.replace(await get_service(request), owner="someone-else")

    app.dependency_overrides[get_service] = someone_else
    assert_error(await client.get(f"/v2/models/{net['id']}"), 404)
    assert_error(await infer(client, net["id"], infer_body()), 404)
    assert (await client.get("/v2/health/ready")).status_code == 200


async def test_routes_the_server_does_not_offer(client: httpx.AsyncClient) -> None:
    net = await create(client)
    for path in (f"/v2/models/{net['id']}/config", "/v2/repository/index", "/v2/logging"):
        assert_error(await client.get(path), 404, "This server does not offer GET", "/infer")
    wrong = await client.get(f"/v2/models/{net['id']}/infer")
    assert_error(wrong, 405, "use POST")
    assert wrong.headers["allow"] == "POST"
    assert_error(await client.delete("/v2/health/live"), 405, "use GET")


async def test_limits(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'limits.db'}", max_examples=3, max_body_bytes=2048
    )
    store = open_store(settings.database_url)
    transport = httpx.ASGITransport(app=create_app(settings, store))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            net = await create(client)
            assert_error(await infer(client, net["id"], infer_body()), 400, "the limit is 3")
            # The service-wide body limit applies here too, before any route, in the
            # protocol's own {"error"} form.
            big = infer_body([0.0] * 1000, [500, 2])
            assert_error(await infer(client, net["id"], big), 413, "limit of 2048 bytes")
            # ... and to what a compressed body expands to.
            headers = {"Content-Encoding": "gzip"}
            expanded = await infer(client, net["id"], gzip.compress(orjson.dumps(big)), headers)
            assert_error(expanded, 413, "once decompressed")
    finally:
        store.close()


async def test_output_overflow_is_refused(client: httpx.AsyncClient) -> None:
    net = await create(client, layer_dims=[2, 1], output_activation="linear")
    big = infer_body([[1e308, 1e308]], [1, 2])
    parameters = {"layers": [{"W": [[10.0, 10.0]], "b": [[0.0]]}]}
    assert (await client.put(f"/networks/{net['id']}/parameters", json=parameters)).is_success
    assert_error(await infer(client, net["id"], big), 400, "overflowed")


# ---- documentation --------------------------------------------------------------------------


async def test_openapi_documents_the_v2_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = {p: ops for p, ops in schema["paths"].items() if p.startswith("/v2")}
    assert set(paths) == {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/versions/{model_version}/ready",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    }
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation["summary"], (method, path)
            assert operation["description"], (method, path)
            assert operation["tags"] == ["v2"]
            assert "422" not in operation["responses"], (method, path)
            if path.startswith("/v2/models"):
                for code in ("404", "4XX"):
                    answer = operation["responses"][code]
                    assert answer["content"] == {"application/json": {"schema": error_ref}}
    infer_op = paths["/v2/models/{model_name}/infer"]["post"]
    assert set(infer_op["requestBody"]["content"]) == {
        "application/json",
        "application/octet-stream",
    }
    assert set(infer_op["responses"]["200"]["content"]) == {
        "application/json",
        "application/octet-stream",
    }
    assert infer_op["responses"]["400"]["content"] == {"application/json": {"schema": error_ref}}
    assert "ErrorBody" in schema["components"]["schemas"]


async def test_the_documented_example_runs(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    create_ref = schema["paths"]["/networks"]["post"]["requestBody"]["content"]["application/json"]
    create_example = schema["components"]["schemas"][create_ref["schema"]["$ref"].rsplit("/")[-1]]
    net = (await client.post("/networks", json=create_example["examples"][0])).json()
    operation = schema["paths"]["/v2/models/{model_name}/infer"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["schema"]["examples"][0]
    answer, tensors = read_json(await infer(client, net["id"], example))
    assert answer["id"] == example["id"]
    assert tensors["predictions"].shape == (4, 1)


async def test_inference_takes_one_thread_turn_per_call(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = await create(client, layer_dims=[2, 4, 1])
    turns = 0
    original = HeavyWork.run

    async def counted(self: HeavyWork, *args: Any, **kwargs: Any) -> Any:
        nonlocal turns
        turns += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(HeavyWork, "run", counted)
    # Loading the network (a cache miss, then a hit) and the inference share one turn.
    for version in (None, None, "1"):
        read_json(await infer(client, net["id"], infer_body(), version=version))
    assert turns == 3
    missing = await infer(client, "nope", infer_body())
    assert_error(missing, 404, "no model")
    stale = await infer(client, net["id"], infer_body(), version="7")
    assert_error(stale, 404, "no version '7'")
