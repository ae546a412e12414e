"""The real ``tritonclient.http`` (sync and asyncio) against a real uvicorn server, unchanged:
health, metadata, and inference with JSON and binary tensors, FP32 and FP64, checked against
POST /networks/{id}/predict on the same examples (transposed: V2 batches are rows)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from numpy.testing import assert_allclose, assert_array_equal
from tritonclient.utils import InferenceServerException

from tests.e2e.test_readme import README, walkthrough
from tests.service.helpers import XOR_X, XOR_Y
from tests.support.server import ServerProcess

ROWS = np.random.default_rng(7).normal(size=(5, 3))  # m = 5 examples of n_x = 3


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        yield client


@pytest.fixture(scope="module")
def triton_client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield client
    client.close()


def create(http: httpx.Client, **spec: Any) -> str:
    body = {"layer_dims": [3, 6, 2], "seed": 3, **spec}
    response = http.post("/networks", json=body)
    assert response.status_code == 201, response.text
    network_id: str = response.json()["id"]
    return network_id


@pytest.fixture(scope="module")
def sigmoid(http: httpx.Client) -> str:
    return create(http)


@pytest.fixture(scope="module")
def softmax32(http: httpx.Client) -> str:
    return create(http, layer_dims=[3, 6, 4], output_activation="softmax", dtype="float32")


def predicted(http: httpx.Client, model: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    response = http.post(f"/networks/{model}/predict", json={"X": rows.T.tolist()})
    assert response.status_code == 200, response.text
    return {
        name: np.asarray(value).T for name, value in response.json().items() if name != "version"
    }


def x_input(rows: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("X", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows.astype("float32" if datatype == "FP32" else "float64"), binary)
    return tensor


def test_health_and_metadata(
    triton_client: triton.InferenceServerClient, sigmoid: str, softmax32: str
) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert triton_client.is_model_ready(sigmoid)
    assert triton_client.is_model_ready(sigmoid, "1")
    assert not triton_client.is_model_ready(sigmoid, "2")
    assert not triton_client.is_model_ready("no-such-network")
    metadata = triton_client.get_model_metadata(softmax32)
    assert metadata["name"] == softmax32
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "backprop-numpy"
    assert metadata["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}]
    assert metadata["outputs"] == [
        {"name": "A", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "predictions", "datatype": "INT64", "shape": [-1, 1]},
    ]


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
@pytest.mark.parametrize("network", ["sigmoid", "softmax32"])
def test_infer_matches_predict(
    request: pytest.FixtureRequest,
    http: httpx.Client,
    triton_client: triton.InferenceServerClient,
    network: str,
    datatype: str,
    binary: bool,
    binary_out: bool,
) -> None:
    model = request.getfixturevalue(network)
    outputs = [
        triton.InferRequestedOutput("A", binary_data=binary_out),
        triton.InferRequestedOutput("predictions", binary_data=binary_out),
    ]
    result = triton_client.infer(
        model, [x_input(ROWS, datatype, binary)], outputs=outputs, request_id="r1"
    )
    expected = predicted(http, model, ROWS)
    A = result.as_numpy("A")
    assert A.dtype == (np.float32 if network == "softmax32" else np.float64)
    # /predict's JSON carries the network's own numbers; FP32 inputs round X first.
    assert_allclose(A, expected["A"].astype(A.dtype), rtol=1e-5 if datatype == "FP32" else 0)
    labels = result.as_numpy("predictions")
    assert labels.dtype == np.int64
    assert_array_equal(labels, expected["predictions"])
    response = result.get_response()
    assert response["id"] == "r1"
    assert response["model_version"] == "1"
    assert ("parameters" in response["outputs"][0]) is binary_out


def test_default_outputs_are_binary_and_complete(
    http: httpx.Client, triton_client: triton.InferenceServerClient, sigmoid: str
) -> None:
    result = triton_client.infer(sigmoid, [x_input(ROWS, "FP64", True)])
    expected = predicted(http, sigmoid, ROWS)
    assert_allclose(result.as_numpy("A"), expected["A"])
    assert_array_equal(result.as_numpy("predictions"), expected["predictions"])
    assert all("parameters" in output for output in result.get_response()["outputs"])


def test_model_version_and_compression(
    http: httpx.Client, triton_client: triton.InferenceServerClient
) -> None:
    model = create(http, layer_dims=[2, 4, 1])
    trained = http.post(f"/networks/{model}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 1})
    assert trained.json()["network"]["version"] == 2
    rows = np.asarray(XOR_X).T
    result = triton_client.infer(
        model,
        [x_input(rows, "FP64", True)],
        model_version="2",
        request_compression_algorithm="gzip",
    )
    assert_allclose(result.as_numpy("A"), predicted(http, model, rows)["A"])
    with pytest.raises(InferenceServerException) as older:
        triton_client.infer(model, [x_input(rows, "FP64", True)], model_version="1")
    assert older.value.status() == "404"
    assert "no version '1'" in older.value.message()
    assert "current version, 2" in older.value.message()


@pytest.mark.parametrize("binary", [True, False])
def test_errors_are_readable(
    triton_client: triton.InferenceServerClient, sigmoid: str, binary: bool
) -> None:
    with pytest.raises(InferenceServerException) as wrong:
        triton_client.infer(sigmoid, [x_input(np.zeros((4, 5)), "FP64", binary)])
    assert wrong.value.status() == "400"
    assert wrong.value.message() == (
        "input X must have shape [m, 3] (one row per example); received [4, 5]."
    )
    with pytest.raises(InferenceServerException) as missing:
        triton_client.get_model_metadata("no-such-network")
    assert missing.value.status() == "404"
    assert "no model (network) with id 'no-such-network'" in missing.value.message()
    with pytest.raises(InferenceServerException) as config:
        triton_client.get_model_config(sigmoid)
    assert "does not offer GET" in config.value.message()


def test_asyncio_client(server: ServerProcess, http: httpx.Client, softmax32: str) -> None:
    """The asyncio client sends Content-Type: application/octet-stream."""

    async def run() -> tuple[Any, Any]:
        client = triton_aio.InferenceServerClient(url=server.url.removeprefix("http://"))
        try:
            assert await client.is_server_ready()
            tensor = triton_aio.InferInput("X", list(ROWS.shape), "FP32")
            tensor.set_data_from_numpy(ROWS.astype(np.float32))
            result = await client.infer(softmax32, [tensor])
            narrow = triton_aio.InferInput("X", [5, 2], "FP32")
            narrow.set_data_from_numpy(np.zeros((5, 2), np.float32))
            with pytest.raises(InferenceServerException) as wrong:
                await client.infer(softmax32, [narrow])
            return result, wrong.value
        finally:
            await client.close()

    result, error = asyncio.run(run())
    expected = predicted(http, softmax32, ROWS)
    assert_allclose(result.as_numpy("A"), expected["A"], rtol=1e-5)
    assert_array_equal(result.as_numpy("predictions"), expected["predictions"])
    assert "received [5, 2]" in error.message()


def _readme_v2_blocks() -> tuple[str, str]:
    section = README.read_text().split("## V2 inference protocol", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", section, re.S)
    sh = re.search(r"```sh\n(.*?)```", section, re.S)
    assert python, "the V2 section has no python block"
    assert sh, "the V2 section has no sh block"
    return python.group(1), sh.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's example uses curl")
def test_readme_examples_run(server: ServerProcess, tmp_path: Path) -> None:
    python, sh = _readme_v2_blocks()
    script = walkthrough().replace("BASE=http://127.0.0.1:8000", f"BASE={server.url}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + sh + 'echo "ID=$ID"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"name":"predictions","datatype":"INT64","shape":[4,1],"data":[0,1,1,0]' in done.stdout
    network_id = done.stdout.rsplit("ID=", 1)[1].strip()
    assert '"127.0.0.1:8000"' in python
    code = python.replace('"127.0.0.1:8000"', repr(server.url.removeprefix("http://")))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {"ID": network_id})
    assert printed.getvalue().strip().endswith("[0 1 1 0]")
