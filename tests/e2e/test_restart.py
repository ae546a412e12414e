"""Through a real uvicorn server: networks survive a restart, bit for bit."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.service.helpers import XOR_X, XOR_Y
from tests.support.server import ServerProcess


def test_trained_parameters_survive_a_restart(tmp_path: Path) -> None:
    env = {"BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'restart.db'}"}
    with ServerProcess(env=env) as server:
        created = httpx.post(
            f"{server.url}/networks",
            json={
                "layer_dims": [2, 4, 1],
                "seed": 2,
                "optimizer": {"name": "adam", "learning_rate": 0.01},
            },
        ).json()
        trained = httpx.post(
            f"{server.url}/networks/{created['id']}/train",
            json={"X": XOR_X, "Y": XOR_Y, "epochs": 20},
        )
        assert trained.status_code == 200
        before = httpx.get(
            f"{server.url}/networks/{created['id']}/parameters?encoding=base64"
        ).json()
        history_before = httpx.get(f"{server.url}/networks/{created['id']}/history").json()
        gradients_before = httpx.get(f"{server.url}/networks/{created['id']}/gradients").json()

    with ServerProcess(env=env) as server:
        after = httpx.get(
            f"{server.url}/networks/{created['id']}/parameters?encoding=base64"
        ).json()
        assert after == before  # the same bytes, so identical parameters
        assert httpx.get(f"{server.url}/networks/{created['id']}/history").json() == history_before
        assert (
            httpx.get(f"{server.url}/networks/{created['id']}/gradients").json() == gradients_before
        )
        # Adam's moments survived too: training on continues exactly as it would have.
        more = httpx.post(
            f"{server.url}/networks/{created['id']}/train",
            json={"X": XOR_X, "Y": XOR_Y, "epochs": 1},
        ).json()
        assert more["costs"][0]["step"] == 21
        assert more["network"]["version"] == 3
