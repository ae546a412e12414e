"""The README's configuration table names every setting."""

from __future__ import annotations

from pathlib import Path

from service.core.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented() -> None:
    table = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in Settings.model_fields if f"| `{name.upper()}` |" not in table]
    assert missing == []
