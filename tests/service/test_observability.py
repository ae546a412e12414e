"""Request ids, metrics and JSON log lines."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.core.observability import JsonFormatter, request_id_var
from tests.service.helpers import XOR_X, XOR_Y, create

pytestmark = pytest.mark.anyio


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/nowhere")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "a b;c" * 10})
    assert unsafe.headers["x-request-id"] != "a b;c" * 10


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_requests_steps_and_networks(client: httpx.AsyncClient) -> None:
    net = await create(client)
    await client.post(f"/networks/{net['id']}/train", json={"X": XOR_X, "Y": XOR_Y, "epochs": 7})
    await client.get("/networks/missing")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    route = "/networks/{network_id}/train"
    assert (
        samples[
            (
                "backprop_http_requests_total",
                (("method", "POST"), ("route", route), ("status", "200")),
            )
        ]
        == 1
    )
    assert (
        samples[
            (
                "backprop_http_requests_total",
                (("method", "GET"), ("route", "/networks/{network_id}"), ("status", "404")),
            )
        ]
        == 1
    )
    assert (
        samples[
            ("backprop_http_request_duration_seconds_count", (("method", "POST"), ("route", route)))
        ]
        == 1
    )
    assert samples[("backprop_training_steps_total", ())] == 7
    assert samples[("backprop_networks", ())] == 1
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert samples[("backprop_jobs", (("status", status),))] == 0


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord(
        "backprop.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None
    )
    record.status = 200
    token = request_id_var.set("abc123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "GET /x"
    assert line["request_id"] == "abc123"
    assert line["status"] == 200
    assert line["level"] == "INFO"
