"""Browser tests of the playground: Playwright driving Debian's Chromium against a real
server (one per module, with API keys on, so every call the page makes must carry one).

Each page records console errors, uncaught exceptions and any request that would leave the
server's origin (those are aborted); a test that leaves any of them behind fails. Screenshots
go to ``tests/browser/screenshots/`` (not committed).

Chromium comes from ``apt-get install chromium`` (``.ci/run`` installs it). Without it these
tests skip, except under ``CI=true``, where they fail: CI never passes by skipping them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.server import ServerProcess

KEY = "playground-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SCREENSHOTS = Path(__file__).parent / "screenshots"
WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}
DEADLINE_MS = 30_000  # waits on state, generous for a loaded machine
expect.set_options(timeout=DEADLINE_MS)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if _in_ci():
            pytest.fail(f"{reason}. The browser tests must run in CI.", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    database = tmp_path_factory.mktemp("playground") / "playground.db"
    env = {
        "BACKPROP_DATABASE_URL": f"sqlite:///{database}",
        "BACKPROP_API_KEYS": KEY,
        # Checkpoints (and so decision-boundary redraws) several times while a test trains.
        "BACKPROP_CHECKPOINT_SECONDS": "0.5",
    }
    with ServerProcess(env=env) as process:
        yield process


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """The test's own client of the same API, to check what the page shows."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(chromium: Path, playwright: Playwright) -> Iterator[Browser]:
    # launch() gives every run a fresh, temporary user data directory.
    browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    context: BrowserContext
    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def goto(self, query: str = "") -> None:
        self.page.goto(f"{self.origin}/playground{query}")

    def shoot(self, name: str, *, at: str | None = None, full_page: bool = False) -> Path:
        """A screenshot of the window (or the whole page), ``at`` an element scrolled to
        the top of the window."""
        if at is not None:
            self.page.locator(at).evaluate("(element) => element.scrollIntoView()")
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=full_page)
        return path


def open_page(browser: Browser, server: ServerProcess, *, with_key: bool) -> Watched:
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(DEADLINE_MS)
    if with_key:
        # As if the key had been typed into the page's field in this tab before.
        context.add_init_script(f"sessionStorage.setItem('backprop.apiKey', {json.dumps(KEY)})")
    page = context.new_page()
    watched = Watched(page=page, context=context, origin=server.url)

    def guard(route: Route, request: Request) -> None:
        if request.url.startswith(f"{server.url}/"):
            route.continue_()
        else:
            watched.foreign.append(request.url)
            route.abort()

    context.route("**/*", guard)
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    return watched


def _checked(watched: Watched) -> Iterator[Watched]:
    yield watched
    watched.context.close()
    assert watched.errors == [], "console errors or uncaught exceptions on the page"
    assert watched.foreign == [], "requests that would have left the server's host"


@pytest.fixture
def fresh(browser: Browser, server: ServerProcess) -> Iterator[Watched]:
    """A page in a new tab that has no API key yet."""
    yield from _checked(open_page(browser, server, with_key=False))


@pytest.fixture
def keyed(browser: Browser, server: ServerProcess) -> Iterator[Watched]:
    """A page in a tab that has the API key already."""
    yield from _checked(open_page(browser, server, with_key=True))
