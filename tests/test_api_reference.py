"""The repository's API reference (docs/api.md) and the OpenAPI schema name the same routes,
and every setting the reference names exists."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from service.core.settings import Settings
from service.main import create_app

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ROUTE = re.compile(r"`(GET|POST|PUT|DELETE) (/[^`\s?]*)")


def _normal(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path.rstrip("/") or "/")


def _documented() -> set[tuple[str, str]]:
    return {(method.lower(), _normal(path)) for method, path in ROUTE.findall(DOCS.read_text())}


def test_every_route_of_the_schema_is_in_the_reference_and_back(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
    served = {
        (method, _normal(path))
        for path, operations in schema["paths"].items()
        for method in operations
        if "/versions/" not in path  # documented once, as "the same under .../versions/{version}"
    }
    documented = _documented()
    assert served - documented == set(), "routes the reference does not name"
    pages = {("get", "/playground"), ("get", "/docs"), ("get", "/redoc"), ("get", "/openapi.json")}
    assert documented - served - pages == set(), "routes that do not exist"


def test_every_setting_the_reference_names_exists() -> None:
    names = set(re.findall(r"BACKPROP_([A-Z0-9_]+)", DOCS.read_text()))
    assert names - {name.upper() for name in Settings.model_fields} == set()
