"""Connections that cannot hold the process: uvicorn's HTTP protocol (httptools, which
``uvicorn[standard]`` brings), with the bounds it lacks.

- **A request head has ``header_timeout_seconds``** to arrive, from the moment the connection
  opens or its previous answer was sent; past it the connection closes (with a 408 if part of
  a head came). uvicorn's own keep-alive timeout restarts with every byte, so a client that
  dribbles its headers one byte at a time would otherwise hold the connection for ever.
- **A request head has at most ``max_header_bytes``** (its request line and headers); past it,
  431 and the connection closes. httptools sets no such limit.
- **At most ``max_connections`` connections are open.** When one more comes, a connection
  that waits for its client (one whose head or body has not all arrived, or an idle keep-alive
  one) is closed to make room: the one that has waited longest among those that never had an
  answer, else the one that has waited longest. If every connection is busy answering a
  request, the newcomer gets a 503 and is closed. So slow or idle clients cannot keep new ones
  out, clients that were answered before are the last to go, and the process never runs out
  of file descriptors.
- **A body may wait unread up to ``BODY_BUFFER_BYTES``** while the application has not yet
  asked for it, as long as all connections together hold at most ``BODY_BUFFERS_BYTES``
  beyond uvicorn's 64 KiB each. uvicorn stops reading a connection at 64 KiB, until the
  application asks for more: a 1 MB body then takes a dozen turns of the event loop, 0.6-0.9
  ms of a one-step ``/train`` call of a [784, 128, 64, 10] network (measured side by side).
  Past the budget, a connection waits at 64 KiB as in uvicorn.
- **An answer the client does not read** (its bytes stay in the send buffer) is dropped when
  the buffer has not shrunk in ``header_timeout_seconds`` after the answer was written.

The time a request's body may take is bounded one level up, in the ASGI application
(:class:`service.core.http.BodyLimits`), where it can be answered as problem+json.

``backprop-service`` runs uvicorn with this protocol; with bare uvicorn, pass
``--http service.core.connections:BoundedHttp``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.core.settings import get_settings

logger = logging.getLogger("backprop.connections")


def _answer(status: str, detail: str) -> bytes:
    """A complete answer written straight to the socket, before (or instead of) any request."""
    body = f'{{"title": "{status[4:]}", "status": {status[:3]}, "detail": "{detail}"}}'.encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
        + ("retry-after: 1\r\n" if status.startswith("503") else "")
        + "\r\n"
    ).encode() + body


HEAD_TIMEOUT = _answer("408 Request Timeout", "The request head did not arrive in time.")
HEAD_TOO_LARGE = _answer(
    "431 Request Header Fields Too Large", "The request line and headers are too large."
)
FULL = _answer("503 Service Unavailable", "The service has no room for another connection.")
BODY_BUFFER_BYTES = 8 * 1024 * 1024  # a [784, 512, 512, 10] m=1024 float32 batch is 5.4 MB
BODY_BUFFERS_BYTES = 32 * 1024 * 1024


class BoundedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a head size limit and a bound on
    open connections (see the module's docstring)."""

    # The connections of this process that let more than uvicorn's 64 KiB of a body wait.
    _holding: ClassVar[set[BoundedHttp]] = set()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout = settings.header_timeout_seconds
        self.max_header_bytes = settings.max_header_bytes
        self.max_connections = settings.max_connections
        # Since when the connection waits for its client (a head, or the rest of a body); None
        # while a request is being answered.
        self.waiting_since: float | None = None
        self.answered = 0  # requests answered on this connection
        self._head_bytes = 0
        self._head_begun = False
        self._timer: asyncio.TimerHandle | None = None
        self._unsent = 0  # the send buffer's size when the head deadline last passed

    # ---- the connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if self._open_connections() > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        BoundedHttp._holding.discard(self)
        self.waiting_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A chunk fed while a head is awaited, and still unfinished after it, was all head
        # (counted here, by the chunk, as httptools keeps an unfinished header line itself)
        # unless the end of the previous request's body came first, which is read and dropped:
        # so after an answer, the chunk a head begins in is not counted, and a head may exceed
        # the limit by that one chunk, never more.
        counting = self._timer is not None and (self._head_begun or not self.answered)
        super().data_received(data)
        if counting and self._timer is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._close(HEAD_TOO_LARGE)

    # ---- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        # uvicorn's (0.55), with _may_hold in place of its 64 KiB bound.
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        if upgrading or self.cycle.response_complete:
            return
        self.cycle.body += body
        held = len(self.cycle.body)
        if held > HIGH_WATER_LIMIT and not self._may_hold(held):
            self.flow.pause_reading()
        self.cycle.message_event.set()

    def on_message_complete(self) -> None:
        self.waiting_since = None  # the whole request is in: it is being answered
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.answered += 1
        super().on_response_complete()
        # uvicorn armed its keep-alive timer unless a pipelined request starts now.
        if self.timeout_keep_alive_task is not None and not self.transport.is_closing():
            self._await_head()

    # ---- bounds ---------------------------------------------------------------------------

    def _await_head(self) -> None:
        self.waiting_since = self.loop.time()
        self._head_bytes, self._head_begun, self._unsent = 0, False, 0
        self._cancel_timer()
        self._timer = self.loop.call_later(self.header_timeout, self._head_overdue)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_overdue(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        unsent = self.transport.get_write_buffer_size()
        if unsent and (self._unsent == 0 or unsent < self._unsent):
            # The client is still reading the last answer: give it another period, as long as
            # it makes progress.
            self._unsent = unsent
            self._timer = self.loop.call_later(self.header_timeout, self._head_overdue)
            return
        if unsent:
            self.transport.abort()  # an answer nobody reads is not kept for ever
            return
        self._close(HEAD_TIMEOUT if self._head_begun else None)

    def _close(self, answer: bytes | None) -> None:
        self._cancel_timer()
        self.waiting_since = None
        if self.transport.is_closing():
            return
        if answer is not None and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(answer)
        self.transport.close()

    def _may_hold(self, held: int) -> bool:
        """Whether this connection may let ``held`` bytes of its body wait unread (past 64 KiB:
        see the module's docstring)."""
        holding = BoundedHttp._holding
        holding.add(self)  # counted while it holds more than 64 KiB, reading or not
        beyond = 0
        for connection in list(holding):
            waiting = 0 if connection.cycle is None else len(connection.cycle.body)
            if waiting > HIGH_WATER_LIMIT:
                beyond += waiting - HIGH_WATER_LIMIT
            else:
                holding.discard(connection)  # its application took what it held
        return held <= BODY_BUFFER_BYTES and beyond <= BODY_BUFFERS_BYTES

    def _open_connections(self) -> int:
        return sum(1 for c in self.connections if not c.transport.is_closing())

    def _make_room(self) -> None:
        """Close a connection that waits for its client (see the module's docstring), or this
        one."""
        waiting = [
            c
            for c in self.connections
            if isinstance(c, BoundedHttp)
            and c is not self
            and c.waiting_since is not None
            and not c.transport.is_closing()
        ]
        if waiting:
            oldest = min(waiting, key=lambda c: (c.answered > 0, c.waiting_since or 0.0))
            oldest._close(FULL if oldest._head_begun else None)
        else:
            logger.warning(
                "%d connections are open, every one busy: refusing a new one (%s)",
                len(self.connections),
                "BACKPROP_MAX_CONNECTIONS",
            )
            self._close(FULL)
