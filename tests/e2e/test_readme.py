"""The README's curl walkthrough, run as written against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    section = README.read_text().split("## Walkthrough with curl", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the walkthrough section has no sh block"
    return match.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough uses curl")
def test_readme_walkthrough_runs(tmp_path: Path) -> None:
    script = walkthrough()
    assert "BASE=http://127.0.0.1:8000" in script
    with ServerProcess() as server:
        script = script.replace("BASE=http://127.0.0.1:8000", f"BASE={server.url}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '"layer_dims":[2,4,1]' in out
    assert "steps 1000 final cost" in out
    assert '"dW":' in out
    assert '"passed":true' in out
    assert '"predictions":[[0,1,1,0]]' in out
