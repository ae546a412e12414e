"""GET /playground and its assets: served by the service itself, public, and built from the
sources in playground/ (the committed build must not be older than them)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from service.main import create_app
from service.playground.routes import STATIC
from service.store import Store

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "playground"
REBUILD = "npm --prefix playground ci && npm --prefix playground run build"


@pytest.fixture
def keyed_app(app: FastAPI, store: Store) -> FastAPI:
    """The same service with an API key required."""
    return create_app(app.state.settings.model_copy(update={"api_keys": "secret"}), store)


@pytest.fixture
async def keyed(keyed_app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=keyed_app)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.anyio
async def test_the_page_and_its_assets_need_no_key(keyed: httpx.AsyncClient) -> None:
    async with keyed as client:
        page = await client.get("/playground")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "connect-src 'self'" in policy
        script = await client.get("/playground/assets/playground.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        # The API itself still needs the key.
        assert (await client.get("/networks")).status_code == 401
        assert (
            await client.get("/networks", headers={"Authorization": "Bearer secret"})
        ).json() == {"networks": []}


@pytest.mark.anyio
async def test_every_asset_the_page_names_is_served(client: httpx.AsyncClient) -> None:
    html = (await client.get("/playground")).text
    named = re.findall(r'(?:src|href)="(/playground/assets/[^"]+)"', html)
    assert sorted(named) == [
        "/playground/assets/playground.css",
        "/playground/assets/playground.js",
    ]
    css = (await client.get("/playground/assets/playground.css")).text
    fonts = sorted(set(re.findall(r"url\(\"?\./(fonts/[^)\"]+)\"?\)", css)))
    assert fonts, "KaTeX's fonts are named by the stylesheet"
    assert all(font.endswith(".woff2") for font in fonts)
    for path in [*named, *(f"/playground/assets/{font}" for font in fonts)]:
        response = await client.get(path)
        assert response.status_code == 200, path
    # Nothing the page names lives on another host.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        local = url.startswith("/") and not url.startswith("//")
        assert local or url in {"data:,", "#calls"}, url


@pytest.mark.anyio
async def test_assets_outside_the_folder_and_missing_ones_are_404(
    client: httpx.AsyncClient,
) -> None:
    for path in ["/playground/assets/nothing.js", "/playground/assets/../routes.py"]:
        response = await client.get(path)
        assert response.status_code == 404, path
    assert (await client.get("/openapi.json")).json()["paths"].get("/playground") is None


def sources_digest() -> str:
    """The digest build.mjs writes: sha256 over '<path>\\n<sha256 of the file>\\n' for
    build.mjs, package-lock.json, package.json and every file under src/, sorted by path."""
    files = ["build.mjs", "package-lock.json", "package.json"]
    files += [
        p.relative_to(SOURCES).as_posix() for p in (SOURCES / "src").rglob("*") if p.is_file()
    ]
    digest = hashlib.sha256()
    for name in sorted(files):
        content = hashlib.sha256((SOURCES / name).read_bytes()).hexdigest()
        digest.update(f"{name}\n{content}\n".encode())
    return digest.hexdigest()


def test_the_committed_build_is_built_from_the_current_sources() -> None:
    info = json.loads((STATIC / "build-info.json").read_text())
    assert info["sources_sha256"] == sources_digest(), (
        f"playground/ changed since service/playground/static/ was built; run: {REBUILD}"
    )
