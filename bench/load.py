"""A small asyncio HTTP/1.1 load generator for loopback servers: one keep-alive connection
per request given, each sending its request again and again for a bounded time.

Lighter than an HTTP client library (the request bytes are built once, the answer is read
by its Content-Length), so the server, not the client, is what gets measured. Two checks
that it is so: :attr:`LoadResult.cpu_share` (the generator's own CPU time over the run),
and ``python -m bench.load PORT``, a server that answers every request with the same few
bytes, against which the generator shows its own ceiling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MAX_REQUESTS = 200_000  # per run, whatever the duration
MAX_PLACEMENTS = 50  # connection sets opened at most, looking for one ``placed`` accepts


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int
    latencies: list[float]
    cpu_seconds: float  # this process's CPU time over the run: what generating the load cost
    placements: int = 1  # connection sets opened until ``placed`` accepted one
    server_cpu_seconds: float | None = None  # the server's processes' CPU time over the run
    machine_cpu_seconds: float | None = None  # every process's on this machine, the same way

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_share(self) -> float:
        """The generator's CPU time over the wall time (1.0: one core kept busy)."""
        return self.cpu_seconds / self.seconds

    @property
    def server_cores(self) -> float | None:
        """The server's CPU time over the wall time: the cores it got (of those it could use,
        on a machine that others share)."""
        return None if self.server_cpu_seconds is None else self.server_cpu_seconds / self.seconds

    @property
    def other_cores(self) -> float | None:
        """The cores that processes other than the server and the generator kept busy
        meanwhile: what a shared machine took from the measurement."""
        if self.server_cpu_seconds is None or self.machine_cpu_seconds is None:
            return None
        others = self.machine_cpu_seconds - self.server_cpu_seconds - self.cpu_seconds
        return max(0.0, others) / self.seconds


def request_bytes(url: str, method: str = "GET", body: bytes = b"") -> bytes:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load generator only targets loopback servers; received {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 message (an answer, or a request to the fixed server): its head, and its
    body skipped by its Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    if length := _content_length(head):
        await reader.readexactly(length)
    return head


def _content_length(head: bytes) -> int:
    """The Content-Length a message's head declares (0 if none)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class KeepAlive:
    """One keep-alive loopback connection that sends prebuilt requests (from
    :func:`request_bytes`) one at a time and waits for each answer: what one client's call
    costs the server, with next to nothing of the client's own (an httpx call costs its
    caller about a millisecond)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._socket = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._answers = self._socket.makefile("rb")

    def send(self, request: bytes) -> None:
        """Send ``request`` and read its answer; an answer other than 2xx raises."""
        self._socket.sendall(request)
        lines = [self._answers.readline()]
        while lines[-1] not in (b"\r\n", b""):
            lines.append(self._answers.readline())
        head = b"".join(lines)
        body = self._answers.read(_content_length(head))
        status = head.split(b"\r\n", 1)[0]
        if not status.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
            raise RuntimeError(f"answered {status.decode()!r}: {body[:500]!r}")

    def close(self) -> None:
        self._answers.close()
        self._socket.close()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(host: str, port: int, count: int) -> list[Connection]:
    return [await asyncio.open_connection(host, port) for _ in range(count)]


async def _close(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()
        await writer.wait_closed()


async def _run(
    url: str,
    payloads: Sequence[bytes],
    seconds: float,
    placed: Callable[[list[int]], bool] | None,
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections = await _connect(host, port, len(payloads))
    placements = 1
    while placed is not None and not placed(
        [writer.get_extra_info("sockname")[1] for _, writer in connections]
    ):
        if placements == MAX_PLACEMENTS:
            await _close(connections)
            raise RuntimeError(f"no set of connections was placed as asked in {placements} tries")
        await _close(connections)
        connections = await _connect(host, port, len(payloads))
        placements += 1
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(connection: Connection, payload: bytes) -> None:
        nonlocal errors
        reader, writer = connection
        while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
            start = time.perf_counter()
            writer.write(payload)
            head = await _read_message(reader)
            latencies.append(time.perf_counter() - start)
            if int(head.split(b" ", 2)[1]) >= 400:
                errors += 1

    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        await asyncio.gather(*(client(c, p) for c, p in zip(connections, payloads, strict=True)))
    finally:
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        await _close(connections)
    return LoadResult(len(latencies), elapsed, errors, latencies, cpu, placements)


def hammer(
    url: str,
    payloads: Sequence[bytes],
    seconds: float = 3.0,
    placed: Callable[[list[int]], bool] | None = None,
) -> LoadResult:
    """Send each of ``payloads`` (from :func:`request_bytes`) over a keep-alive connection of
    its own to the server at ``url``, one request after another, for ``seconds``.

    ``placed``, given the connections' local ports, says whether to keep them; the set is
    opened again until it does (a multi-process server's kernel hands each connection to
    whichever process accepts first).
    """
    return asyncio.run(_run(url, payloads, seconds, placed))


@dataclass(frozen=True)
class Load:
    """What one run of :func:`hammer` sends: to the server at ``url``, each of ``payloads``
    over a connection of its own, placed as ``placed`` asks."""

    url: str
    payloads: Sequence[bytes]
    placed: Callable[[list[int]], bool] | None = None
    server_pid: int | None = None  # whose CPU time (its children's included) to measure


def interleaved_loads(
    loads: Mapping[str, Load], rounds: int, seconds: float
) -> dict[str, list[LoadResult]]:
    """Each load for ``seconds`` once per round, in an order that rotates as
    :func:`bench.timing.interleaved`'s does, so a shared machine's load mostly cancels out of
    ratios taken within a round."""
    names = list(loads)
    results: dict[str, list[LoadResult]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            load = loads[name]
            pid = load.server_pid
            before = None if pid is None else (tree_cpu_seconds(pid), machine_cpu_seconds())
            result = hammer(load.url, load.payloads, seconds, load.placed)
            if pid is not None and before is not None:
                result = dataclasses.replace(
                    result,
                    server_cpu_seconds=tree_cpu_seconds(pid) - before[0],
                    machine_cpu_seconds=machine_cpu_seconds() - before[1],
                )
            results[name].append(result)
    return results


def median_rate(results: Sequence[LoadResult]) -> float:
    return statistics.median(r.rate for r in results)


def medians(
    results: Mapping[str, Sequence[LoadResult]], value: Callable[[LoadResult], float | None]
) -> dict[str, float]:
    """The median over rounds of ``value`` for each load (0 where it was not measured)."""
    return {
        name: statistics.median(value(r) or 0.0 for r in runs) for name, runs in results.items()
    }


def rate_ratio(results: Sequence[LoadResult], baseline: Sequence[LoadResult]) -> float:
    """The median over rounds of one rate over the baseline's, both of the same round."""
    return statistics.median(a.rate / b.rate for a, b in zip(results, baseline, strict=True))


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of a process and its children so far, in seconds."""
    ticks = 0
    for process in [pid, *_children(pid)]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used so far (all CPUs, idle and I/O wait
    left out), in seconds."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def serving_processes(server_pid: int, port: int, client_ports: Sequence[int]) -> list[int]:
    """The pid of the process, among ``server_pid`` and its children (uvicorn's workers),
    that holds the server's end of each loopback connection from ``client_ports``."""
    inodes: dict[int, int] = {}  # socket inode -> pid
    for pid in [server_pid, *_children(server_pid)]:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes[int(target[8:-1])] = pid
    ends: dict[int, int] = {}  # client port -> the server's socket inode
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
        if local == port:
            ends[remote] = int(fields[9])
    return [inodes.get(ends.get(p, -1), -1) for p in client_ports]


ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def _answer_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            await _read_message(reader)
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def _serve_fixed(port: int) -> None:
    server = await asyncio.start_server(_answer_forever, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # The fixed server: the same answer to every request, as fast as asyncio streams go.
    asyncio.run(_serve_fixed(int(sys.argv[1])))
