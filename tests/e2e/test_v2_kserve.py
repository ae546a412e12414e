"""The real KServe Python SDK (``kserve.InferenceRESTClient``, V2 protocol) against a real
uvicorn server, unchanged and with no adapter code: health, model readiness, and inference
with JSON and binary tensors, FP32 and FP64, with requested outputs, checked against
POST /networks/{id}/predict on the same examples (transposed: V2 batches are rows); and a
malformed request's 400 as the SDK reports it. The SDK always sends a top-level
``model_name`` and an ``id``, which the service ignores and echoes."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from numpy.testing import assert_allclose, assert_array_equal

from tests.e2e.test_readme import README, walkthrough
from tests.support.server import ServerProcess

pytestmark = pytest.mark.anyio
ROWS = np.random.default_rng(11).normal(size=(5, 3)) * 4  # m = 5 examples of n_x = 3


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        yield client


@pytest.fixture
async def kserve_client() -> AsyncIterator[InferenceRESTClient]:
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    yield client
    await client.close()


def create(http: httpx.Client, **spec: Any) -> str:
    response = http.post("/networks", json={"layer_dims": [3, 6, 2], "seed": 4, **spec})
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
    answer = response.json()
    return {name: np.asarray(answer[name]).T for name in ("A", "predictions")}


def x_input(rows: np.ndarray, datatype: str, binary: bool) -> InferInput:
    tensor = InferInput("X", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows.astype("float32" if datatype == "FP32" else "float64"), binary)
    return tensor


async def test_health_and_model_readiness(
    server: ServerProcess, kserve_client: InferenceRESTClient, sigmoid: str
) -> None:
    assert await kserve_client.is_server_live(server.url) is True
    assert await kserve_client.is_server_ready(server.url) is True
    assert await kserve_client.is_model_ready(server.url, sigmoid) is True
    assert await kserve_client.is_model_ready(server.url, "no-such-network") is False


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("network", ["sigmoid", "softmax32"])
async def test_infer_matches_predict(
    request: pytest.FixtureRequest,
    server: ServerProcess,
    http: httpx.Client,
    kserve_client: InferenceRESTClient,
    network: str,
    datatype: str,
    binary: bool,
) -> None:
    model = request.getfixturevalue(network)
    infer_request = InferRequest(model, [x_input(ROWS, datatype, binary)], request_id="k1")
    result = await kserve_client.infer(server.url, infer_request, model_name=model)
    assert result.model_name == model
    assert result.id == "k1"
    assert [output.name for output in result.outputs] == ["A", "predictions"]
    expected = predicted(http, model, ROWS)
    A = result.get_output_by_name("A").as_numpy()
    assert A.dtype == (np.float32 if network == "softmax32" else np.float64)
    # /predict's JSON carries the network's own numbers; FP32 inputs round X first.
    assert_allclose(A, expected["A"].astype(A.dtype), rtol=1e-5 if datatype == "FP32" else 0)
    labels = result.get_output_by_name("predictions").as_numpy()
    assert labels.dtype == np.int64
    assert_array_equal(labels, expected["predictions"])


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
async def test_requested_outputs(
    server: ServerProcess,
    http: httpx.Client,
    kserve_client: InferenceRESTClient,
    softmax32: str,
    binary_out: bool,
) -> None:
    outputs = [
        RequestedOutput("predictions", {"binary_data": binary_out}),
        RequestedOutput("A", {"binary_data": binary_out, "datatype": "FP64"}),
    ]
    infer_request = InferRequest(softmax32, [x_input(ROWS, "FP32", True)], request_outputs=outputs)
    headers: dict[str, str] = {}
    result = await kserve_client.infer(
        server.url, infer_request, model_name=softmax32, response_headers=headers
    )
    assert [output.name for output in result.outputs] == ["predictions", "A"]
    assert ("inference-header-content-length" in headers) is binary_out
    expected = predicted(http, softmax32, ROWS)
    labels = result.get_output_by_name("predictions").as_numpy()
    assert labels.shape == (5, 1)
    assert_array_equal(labels, expected["predictions"])
    A = result.get_output_by_name("A").as_numpy()
    assert A.dtype == np.float64
    assert_allclose(A, expected["A"], rtol=1e-6)
    only = InferRequest(
        softmax32, [x_input(ROWS, "FP32", False)], request_outputs=[RequestedOutput("A")]
    )
    answer = await kserve_client.infer(server.url, only, model_name=softmax32)
    assert [output.name for output in answer.outputs] == ["A"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary-in", "json-in"])
async def test_a_malformed_request_is_a_readable_400(
    server: ServerProcess, kserve_client: InferenceRESTClient, sigmoid: str, binary: bool
) -> None:
    wrong = InferRequest(sigmoid, [x_input(np.zeros((4, 5)), "FP64", binary)])
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await kserve_client.infer(server.url, wrong, model_name=sigmoid)
    assert refused.value.response.status_code == 400
    message = "input X must have shape [m, 3] (one row per example); received [4, 5]."
    assert refused.value.response.json() == {"error": message}
    assert message in str(refused.value)  # the SDK puts the service's sentence in its error
    negative = InferRequest(sigmoid, [InferInput("X", [-1, 3], "FP64", data=[0.0, 1.0, 2.0])])
    with pytest.raises(httpx.HTTPStatusError) as shape:
        await kserve_client.infer(server.url, negative, model_name=sigmoid)
    assert shape.value.response.status_code == 400
    assert "inputs[0].shape[0] must be a dimension, an integer >= 0; received -1." in str(
        shape.value
    )


def _readme_kserve_block() -> str:
    section = README.read_text().split("## V2 inference protocol", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.S)
    [kserve_block] = [block for block in blocks if "from kserve import" in block]
    return kserve_block


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's walkthrough uses curl")
def test_readme_kserve_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    script = walkthrough().replace("BASE=http://127.0.0.1:8000", f"BASE={server.url}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + 'echo "ID=$ID"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    network_id = done.stdout.rsplit("ID=", 1)[1].strip()
    code = _readme_kserve_block()
    assert '"http://127.0.0.1:8000"' in code
    code = code.replace('"http://127.0.0.1:8000"', repr(server.url))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {"ID": network_id})
    assert printed.getvalue().strip().endswith("[0 1 1 0]")
