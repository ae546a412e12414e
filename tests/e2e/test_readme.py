"""The README's curl walkthrough, run as written against a real server."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def sh_block(heading: str) -> str:
    """The first ```sh block after ``heading`` in the README."""
    section = README.read_text().split(heading, 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"the section {heading!r} has no sh block"
    return match.group(1)


def walkthrough() -> str:
    return sh_block("## Walkthrough with curl")


def run_script(script: str, url: str, cwd: Path, timeout: float) -> str:
    """Run ``script`` with bash (-euo pipefail) against ``url``; its standard output."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace(LOCAL, f"BASE={url}")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


LOCAL = "BASE=http://127.0.0.1:8000"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough uses curl")
def test_readme_walkthrough_runs(tmp_path: Path) -> None:
    script = walkthrough()
    assert LOCAL in script
    with ServerProcess() as server:
        out = run_script(script, server.url, tmp_path, timeout=120)
    assert '"layer_dims":[2,4,1]' in out
    assert "steps 1000 final cost" in out
    assert '"dW":' in out
    assert '"passed":true' in out
    assert '"predictions":[[0,1,1,0]]' in out
    assert '"accuracy":1.0' in out


@pytest.mark.skipif(shutil.which("curl") is None, reason="the job commands use curl")
def test_readme_job_commands_run(tmp_path: Path) -> None:
    # After the walkthrough (which sets BASE and ID), as a reader would type them: start a
    # job, follow its events until it ends, poll it, start a long one and cancel it, list the
    # network's jobs, remove the first and save the cost curves.
    script = walkthrough() + sh_block("## Training jobs")
    with ServerProcess() as server:
        out = run_script(script, server.url, tmp_path, timeout=300)
    job = json.loads((tmp_path / "job.json").read_text())
    assert job["status"] in ("queued", "running")
    assert job["total_steps"] == 200_000
    assert "event: progress" in out
    assert "event: succeeded" in out
    assert out.count('"status":"succeeded"') >= 3  # the event, the poll, the list
    assert out.count('"status":"cancelled"') >= 2  # the cancel's answer, the list
    assert "\n204\n" in out  # the ended job removed
    for name in ("cost.svg", "cost-log.svg"):
        svg = (tmp_path / name).read_text()
        assert "<svg" in svg, name
        assert svg.rstrip().endswith("</svg>"), name


def python_block(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    section = README.read_text().split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"the section {heading!r} has no python block"
    return match.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the export command uses curl")
def test_readme_onnx_export_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # After the walkthrough: download the model with curl, then run it in ONNX Runtime.
    script = walkthrough() + sh_block("## Export to ONNX")
    with ServerProcess() as server:
        run_script(script, server.url, tmp_path, timeout=120)
    assert (tmp_path / "net.onnx").stat().st_size > 0
    monkeypatch.chdir(tmp_path)  # the example opens net.onnx where curl saved it
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(python_block("## Export to ONNX"), "README.md", "exec"), {})
    labels, layer_dims = printed.getvalue().strip().splitlines()
    assert labels.endswith("[0 1 1 0]")
    assert layer_dims == "[2, 4, 1]"
