"""End to end: the wheel, installed as the Dockerfile installs it, serves the API over HTTP.

No Docker engine here, so the image is replayed on the host: the builder stage's COPY
instructions lay out the build context (through .dockerignore), pip builds the wheel from it,
a fresh venv installs it, and the server starts with the Dockerfile's own CMD and ENV, with the
container's paths (the venv, the /data volume, the WORKDIR) moved into a tmp dir and the address
moved to 127.0.0.1 on a free port. Dependencies come from the package index through pip's cache.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.packaging import (
    Instruction,
    copy_build_context,
    env_of,
    exec_form,
    read_dockerfile,
    stage_of,
)
from tests.support.server import HOST, ServerProcess, free_port

X = [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]]  # (n_x, m) = (2, 4): one column per example
Y = [[0.0, 1.0, 1.0, 0.0]]  # (n_L, m) = (1, 4): XOR
EPOCHS = 5


def run(args: list[str], cwd: Path | None = None, timeout: float = 240) -> str:
    """Run a command; on failure, fail with its output."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def one(stage: list[Instruction], keyword: str) -> str:
    [value] = [i.value for i in stage if i.keyword == keyword]
    return value


def relocate(value: str, moves: Mapping[str, Path]) -> str:
    """Move container paths (whole path components only) to their places on the host."""
    for container, host in moves.items():
        value = re.sub(rf"(?<![\w.-]){re.escape(container)}(?=/|:|$)", str(host), value)
    return value


def readdress(cmd: list[str], port: int) -> list[str]:
    """The CMD with its --host and --port values replaced by loopback and ``port``."""
    out = list(cmd)
    for flag, value in (("--host", HOST), ("--port", str(port))):
        assert flag in out, f"CMD has no {flag}: {cmd}"
        out[out.index(flag) + 1] = value
    return out


def shape(matrix: Any) -> tuple[int, int]:
    """The (rows, cols) of a nested-list matrix, checking it is rectangular and finite."""
    assert isinstance(matrix, list)
    assert matrix
    assert all(isinstance(row, list) for row in matrix)
    assert len({len(row) for row in matrix}) == 1, "ragged"
    assert all(isinstance(x, int | float) and math.isfinite(x) for row in matrix for x in row)
    return len(matrix), len(matrix[0])


def test_wheel_serves_the_api_with_the_dockerfiles_cmd_and_env(tmp_path: Path) -> None:
    instructions = read_dockerfile()
    builder, runtime = stage_of(instructions, 0), stage_of(instructions)

    # Builder stage: its COPYs, through .dockerignore, then `pip wheel --no-deps`.
    context = tmp_path / "src"
    copy_build_context(builder, context)
    wheels = tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), "."],
        context,
    )
    [wheel] = wheels.glob("backprop_service-*.whl")

    # Runtime stage: a fresh venv with the wheel (pip's cache is kept, unlike in the image).
    env = env_of(runtime, {"PATH": os.environ["PATH"]})
    moves = {
        env["VIRTUAL_ENV"]: tmp_path / "venv",
        one(runtime, "VOLUME").strip('[]"'): tmp_path / "data",
        [i.value for i in runtime if i.keyword == "WORKDIR"][-1]: tmp_path / "app",
    }
    env = {key: relocate(value, moves) for key, value in env.items()}
    venv, data, workdir = moves.values()
    data.mkdir()
    workdir.mkdir()
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "python"), "-m", "pip", "install", str(wheel)])
    imported_from = run(
        [str(venv / "bin" / "python"), "-c", "import service; print(service.__file__)"], workdir
    )
    assert Path(imported_from.strip()).is_relative_to(venv), "the wheel, not the work tree"

    # The CMD, readdressed; its program found on the image's PATH, i.e. in the venv.
    port = free_port()
    cmd = readdress(exec_form(one(runtime, "CMD")), port)
    program = shutil.which(cmd[0], path=env["PATH"])
    assert program is not None
    assert Path(program).parent == venv / "bin"
    env["PYTHONPATH"] = ""  # whatever the test runner's is, the server imports the wheel

    server = ServerProcess(args=[program, *cmd[1:]], env=env, cwd=workdir, port=port)
    with server, httpx.Client(base_url=server.url, timeout=30) as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert isinstance(health.json(), dict)

        created = client.post("/networks", json={"layer_dims": [2, 3, 1], "seed": 1})
        assert created.status_code == 201, created.text
        network = created.json()
        assert created.headers["location"] == f"/networks/{network['id']}"
        assert network["layer_dims"] == [2, 3, 1]
        assert len(network["activations"]) == 2
        assert network["parameter_count"] == (3 * 2 + 3) + (1 * 3 + 1)
        assert (network["steps_trained"], network["version"]) == (0, 1)
        path = f"/networks/{network['id']}"

        trained = client.post(f"{path}/train", json={"X": X, "Y": Y, "epochs": EPOCHS})
        assert trained.status_code == 200, trained.text
        body = trained.json()
        assert body["steps"] == EPOCHS
        assert [c["step"] for c in body["costs"]] == list(range(1, EPOCHS + 1))
        assert all(math.isfinite(c["cost"]) for c in body["costs"])
        assert math.isfinite(body["final_cost"])
        assert body["network"]["steps_trained"] == EPOCHS
        version = body["network"]["version"]
        assert version > 1

        gradients = client.post(f"{path}/gradients", json={"X": X, "Y": Y, "include": ["dW", "db"]})
        assert gradients.status_code == 200, gradients.text
        body = gradients.json()
        assert body["version"] == version
        assert math.isfinite(body["cost"])
        assert [layer["layer"] for layer in body["layers"]] == [1, 2]
        shapes = [(shape(layer["dW"]), shape(layer["db"])) for layer in body["layers"]]
        assert shapes == [((3, 2), (3, 1)), ((1, 3), (1, 1))]

        predicted = client.post(f"{path}/predict", json={"X": X})
        assert predicted.status_code == 200, predicted.text
        body = predicted.json()
        assert body["version"] == version
        assert shape(body["A"]) == shape(body["predictions"]) == (1, 4)
        assert all(0 < a < 1 for a in body["A"][0]), "sigmoid output"
        assert body["predictions"] == [[int(a > 0.5) for a in body["A"][0]]]

        unknown = re.sub(r"[0-9a-fA-F]", "0", str(network["id"]))  # same form, no such network
        missing = client.post(f"/networks/{unknown}/predict", json={"X": X})
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")

    # A clean shutdown on SIGTERM (as `docker stop` sends), the store on the /data volume.
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in server.output()
    assert (data / "backprop.db").is_file(), "BACKPROP_DATABASE_URL points into /data"
    assert not (workdir / "data").exists(), "nothing on the default ./data/ path"

    # The image's other command, for moving to PostgreSQL: installed beside it, and it runs.
    copier = venv / "bin" / "backprop-copy-store"
    assert "sqlite:///" in run([str(copier), "--help"], workdir)
