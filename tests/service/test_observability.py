"""Request ids, metrics, JSON log lines, and FastAPI's own OpenTelemetry, off unless asked for."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families

from service.core.observability import JsonFormatter, request_id_var
from service.core.settings import Settings
from service.store import Store
from tests.service.helpers import XOR_X, XOR_Y, app_client, create

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


class _RecordingTracers(trace.TracerProvider):
    """A configured provider, as opentelemetry-sdk would install: it notes who asks it."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(instrumenting_module_name)
        return trace.NoOpTracer()


@pytest.mark.parametrize("enabled", [False, True])
async def test_fastapi_s_opentelemetry_follows_its_setting(
    enabled: bool, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _RecordingTracers()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    on = settings.model_copy(update={"opentelemetry": enabled})
    async with app_client(on, store) as client:
        assert (await client.get("/healthz")).status_code == 200
    assert provider.asked == (["fastapi"] if enabled else [])
