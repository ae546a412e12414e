"""Heavy work (training, gradients, gradient checks, large predictions) runs on threads of its
own, apart from the thread pool that serves reads, so a flood of it never starves
``GET /networks/{id}``, ``/readyz`` or ``/metrics``.

Work known to be small runs on the event loop instead, told not to wait
(``Stop.may_wait`` False): a hop to a thread and back costs 30-100 µs alone, and under load
the threads' turns on the GIL cost the process more than such work does (one-step /train
calls of a [2, 4, 1] network from 8 clients: 999 a second through a thread, 1,425 on the
loop, one core either way). Where it would have to wait for a lock, it raises
:class:`WouldWait` having changed nothing, tries again on the loop a few times over 4 ms
(:data:`INLINE_PAUSES`), and then runs on a heavy thread instead.

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
from service.store import WouldWait

T = TypeVar("T")
# Small work that finds a lock taken tries again on the event loop after these pauses (locks
# are held for 0.1-5 ms: a commit, a FULL checkpoint), and only then waits on a heavy thread.
# A tiny call sent to a thread holds the lock there in turn, so the loop's next tries find it
# taken: one-step [2, 4, 1] calls from 8 clients, with a FULL checkpoint every 1-2 s, sent
# 1,454 of about 5,700 calls to threads, and made 960-1,140 a second instead of 1,300-1,540.
INLINE_PAUSES = (0.0002, 0.0005, 0.001, 0.002)


class Stopped(Unavailable):
    """The work was stopped before it finished, before committing anything (its client left,
    or the server is stopping): a 503 that says so."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The request was stopped before it finished ({reason}); the change was not "
            "applied: retry (on another replica, or once the service is back)."
        )
        self.reason = reason


class Stop:
    """Why a piece of work should stop, if it should; and whether it may wait for a lock
    (``may_wait``: False on the event loop, where it raises :class:`WouldWait` instead)."""

    def __init__(self, *, may_wait: bool = True) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.may_wait = may_wait

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

    async def run(
        self, work: Callable[[Stop], T], receive: Receive | None = None, *, small: bool = False
    ) -> T:
        """``work(stop)`` on a heavy thread; ``receive`` (the request's) to stop it when the
        client disconnects. ``small``: first on the event loop, told not to wait."""
        if small:  # it holds no thread: the bounds of the threads' work are not its own
            for pause in (*INLINE_PAUSES, None):
                try:
                    return work(Stop(may_wait=False))
                except WouldWait:  # nothing was changed: try again in a moment, then on a thread
                    if pause is None:
                        break
                    await asyncio.sleep(pause)
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
