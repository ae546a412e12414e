"""API keys, request ids, JSON logs and metrics, through a real uvicorn server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.service.helpers import XOR_X, XOR_Y
from tests.support.server import ServerProcess

ALICE = {"Authorization": "Bearer alice-secret"}
BOB = {"Authorization": "Bearer bob-secret"}
OPERATOR = {"Authorization": "Bearer operator-secret"}


def test_keys_logs_and_metrics_through_a_real_server(tmp_path: Path) -> None:
    env = {
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}",
        "BACKPROP_API_KEYS": "alice-secret,bob-secret",
        "BACKPROP_METRICS_KEY": "operator-secret",
        "BACKPROP_LOG_FORMAT": "json",
    }
    with ServerProcess(env=env) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/v2/health/live").status_code == 200
        refused = client.get("/networks")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.headers["content-type"] == "application/problem+json"
        assert client.get("/networks", headers={"Authorization": "Bearer alice"}).status_code == 401

        created = client.post("/networks", json={"layer_dims": [2, 3, 1]}, headers=ALICE)
        assert created.status_code == 201
        net = created.json()["id"]
        trained = client.post(
            f"/networks/{net}/train",
            json={"X": XOR_X, "Y": XOR_Y, "epochs": 4},
            headers={**ALICE, "X-Request-ID": "req-train-1"},
        )
        assert trained.status_code == 200
        assert trained.headers["x-request-id"] == "req-train-1"
        assert client.get(f"/networks/{net}", headers=BOB).status_code == 404
        assert client.get("/networks", headers=BOB).json() == {"networks": []}

        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=BOB).status_code == 401  # a tenant's key: no
        metrics = client.get("/metrics", headers=OPERATOR).text
        assert "backprop_training_steps_total 4.0" in metrics
        assert "backprop_networks 1.0" in metrics
        assert 'route="/networks/{network_id}/train",status="200"' in metrics
        log = server.output()

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    train_line = next(line for line in lines if line.get("request_id") == "req-train-1")
    assert train_line["status"] == 200
    assert train_line["route"] == "/networks/{network_id}/train"
    assert train_line["duration_ms"] > 0
    assert any("open to anyone" in line["message"] for line in lines) is False
    assert "alice-secret" not in log
    assert "bob-secret" not in log
    assert "operator-secret" not in log
