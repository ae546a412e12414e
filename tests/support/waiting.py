"""Waiting on state, not on the clock: polling a reading until it satisfies a condition, and
following a server-sent event stream (the end-to-end tests' two ways to see a job move)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import orjson

T = TypeVar("T")


def poll(
    read: Callable[[], T], until: Callable[[T], bool], timeout: float = 30.0, interval: float = 0.05
) -> T:
    """``read()`` every ``interval`` seconds until ``until`` holds for its value; return it."""
    deadline = time.monotonic() + timeout
    while not until(value := read()):
        assert time.monotonic() < deadline, f"timed out; last reading: {value}"
        time.sleep(interval)
    return value


def server_sent_events(url: str, timeout: float = 30.0) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a server-sent event stream, as they arrive, until it ends."""
    with httpx.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        name, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data += line.removeprefix("data:").strip()
            elif not line and data:
                yield name, orjson.loads(data)
                name, data = "message", ""
