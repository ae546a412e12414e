"""Heavy work (training, gradients, gradient checks, large predictions) runs on threads of its
own, apart from the thread pool that serves reads, so a flood of it never starves
``GET /networks/{id}``, ``/readyz`` or ``/metrics``.

At most ``workers`` calls run and ``queue`` more wait; past that a call is refused at once
with 503 and ``Retry-After``. Each call gets a :class:`Stop` that its work polls between steps:
it is set when the client disconnects (nobody would read the answer) and when the server's
drain time runs out, and the work then raises :class:`Stopped` before committing anything.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from starlette.types import Receive

from service.core.errors import Unavailable

T = TypeVar("T")


class Stopped(Unavailable):
    """The work was stopped before it finished (its client left, or the server is stopping):
    a 503, nothing committed."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The work was stopped before it finished: {reason}. Nothing was committed; retry "
            "(on another replica, if this one is shutting down)."
        )
        self.reason = reason


class Stop:
    """Why a piece of work should stop, if it should."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        self.reason = self.reason or reason
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Stopped` if the work should stop."""
        if self._event.is_set():
            raise Stopped(self.reason)


DISCONNECTED = "the client disconnected"
DRAINING = "the service is shutting down"


class HeavyWork:
    def __init__(self, workers: int, queue: int) -> None:
        self.workers, self.capacity = workers, workers + queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="heavy")
        self._guard = threading.Lock()
        self._running: set[Stop] = set()
        self.draining = False

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def _admit(self, stop: Stop) -> None:
        with self._guard:
            if self.draining:
                raise Unavailable(
                    "The service is shutting down; retry on another replica or later."
                )
            if len(self._running) >= self.capacity:
                raise Unavailable(
                    f"The service is at capacity for heavy work ({self.workers} calls running and "
                    f"{self.capacity - self.workers} waiting); retry in a moment."
                )
            self._running.add(stop)

    async def run(self, work: Callable[[Stop], T], receive: Receive | None = None) -> T:
        """``work(stop)`` on a heavy thread; ``receive`` (the request's) to stop it when the
        client disconnects."""
        stop = Stop()
        self._admit(stop)
        watcher = None if receive is None else asyncio.ensure_future(_watch(receive, stop))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, stop)
        finally:
            if watcher is not None:
                watcher.cancel()
            with self._guard:
                self._running.discard(stop)

    def drain(self) -> None:
        """Refuse new work, and stop what runs."""
        with self._guard:
            self.draining = True
            running = list(self._running)
        for stop in running:
            stop.set(DRAINING)

    def close(self) -> None:
        self.drain()
        self._executor.shutdown(wait=True, cancel_futures=True)


async def _watch(receive: Receive, stop: Stop) -> None:
    """Wait for the client to leave (the body is read by then: only a disconnect comes)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            stop.set(DISCONNECTED)
            return
