"""A small asyncio HTTP/1.1 load generator for loopback servers: a fixed number of
keep-alive connections, each sending one request after another for a bounded time.

Lighter than an HTTP client library (the request bytes are built once, the answer is read
by its Content-Length), so the server, not the client, is what gets measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_REQUESTS = 200_000  # per run, whatever the duration


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def request_bytes(url: str, method: str = "GET", body: bytes = b"") -> bytes:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load generator only targets loopback servers; received {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _run(url: str, payload: bytes, connections: int, seconds: float) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                start = time.perf_counter()
                writer.write(payload)
                status = await _read_answer(reader)
                latencies.append(time.perf_counter() - start)
                if status >= 400:
                    errors += 1
        finally:
            writer.close()
            await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return LoadResult(len(latencies), time.perf_counter() - start, errors, latencies)


def hammer(
    url: str, method: str = "GET", body: bytes = b"", connections: int = 8, seconds: float = 3.0
) -> LoadResult:
    """Send requests over ``connections`` keep-alive connections for ``seconds``."""
    return asyncio.run(_run(url, request_bytes(url, method, body), connections, seconds))
