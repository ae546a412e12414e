"""The explorer's examples, run in order as a person clicking "Try it out" would, through a
real server: each succeeds. The network id comes from the create answer, and the job id from
the job's, as a person would paste them."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.server import ServerProcess

# The order a person would click: create first, delete last.
ORDER = [
    ("post", "/networks"),
    ("get", "/networks"),
    ("get", "/networks/{network_id}"),
    ("get", "/networks/{network_id}/parameters"),
    ("put", "/networks/{network_id}/parameters"),
    ("post", "/networks/{network_id}/train"),
    ("get", "/networks/{network_id}/history"),
    ("post", "/networks/{network_id}/jobs"),
    ("get", "/jobs/{job_id}"),
    ("get", "/jobs/{job_id}/events"),  # streams until the job ends
    ("post", "/jobs/{job_id}/cancel"),  # a finished job: answers its final state
    ("get", "/networks/{network_id}/jobs"),
    ("delete", "/jobs/{job_id}"),  # removes the ended job
    ("get", "/networks/{network_id}/history.svg"),
    ("get", "/networks/{network_id}/onnx"),
    ("post", "/networks/{network_id}/gradients"),
    ("get", "/networks/{network_id}/gradients"),
    ("post", "/networks/{network_id}/gradient-check"),
    ("post", "/networks/{network_id}/predict"),
    ("post", "/networks/{network_id}/evaluate"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("delete", "/networks/{network_id}"),
]


def _example(schema: dict[str, Any], operation: dict[str, Any]) -> Any:
    body = operation["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[1]
    return schema["components"]["schemas"][ref]["examples"][0]


def test_every_example_succeeds_in_order() -> None:
    with ServerProcess() as server, httpx.Client(base_url=server.url) as client:
        schema = client.get("/openapi.json").json()
        # The V2 inference protocol's routes have their own: tests/service/test_v2.py.
        documented = {
            (m, p) for p, ops in schema["paths"].items() if not p.startswith("/v2") for m in ops
        }
        assert documented <= set(ORDER), documented - set(ORDER)
        network_id = job_id = ""
        for method, path in ORDER:
            if (method, path) not in documented:
                continue
            operation = schema["paths"][path][method]
            body = _example(schema, operation) if "requestBody" in operation else None
            url = path.format(network_id=network_id, job_id=job_id)
            response = client.request(method, url, json=body)
            assert response.status_code < 300, (method, path, response.text)
            if (method, path) == ("post", "/networks"):
                network_id = response.json()["id"]
            if (method, path) == ("post", "/networks/{network_id}/jobs"):
                job_id = response.json()["id"]
        trained = client.get(f"/networks/{network_id}")
        assert trained.status_code == 404  # deleted last
