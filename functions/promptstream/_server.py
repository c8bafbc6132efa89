"""The HTTP server's own limits, for the worker functions-framework starts.

functions-framework serves a coroutine function on gunicorn with uvicorn's worker and
offers no way to configure uvicorn. uvicorn-worker documents ``CONFIG_KWARGS`` as the
worker's uvicorn settings; ``configure_server`` sets them before gunicorn builds its
worker (functions-framework imports main.py first):

- h11 as the parser, with the request line and headers bounded together
  (``MAX_REQUEST_HEAD_BYTES``; over it: 400 and the connection closed);
- a deadline on the request head (``HEAD_TIMEOUT_SECONDS``): a connection that has not
  sent a whole request head that long after it opened, or after a request head began,
  is closed. uvicorn bounds only the idle time between requests.

The body has its own cap and deadline in ``_request.read_body``. See
docs/adr/0005-native-async-path.md and docs/failures.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn_worker
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._config import Settings

__all__ = ["BoundedH11Protocol", "configure_server"]


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request head."""

    head_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.head_timeout, self._head_overdue
        )

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and self._between_requests():
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_overdue)
        super().data_received(data)
        if self._head_deadline is not None and not self._between_requests():
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self._between_requests() and not self.transport.is_closing():
            if self.conn.our_state != h11.ERROR:
                try:
                    self.conn.send(h11.ConnectionClosed())
                except h11.LocalProtocolError:
                    pass  # a head was half received: nothing to say, just close
            self.transport.close()


def configure_server(settings: Settings) -> None:
    """Give the worker functions-framework is about to start our protocol and limits."""
    BoundedH11Protocol.head_timeout = settings.head_timeout_seconds
    config: dict[str, Any] = {
        **uvicorn_worker.UvicornWorker.CONFIG_KWARGS,
        "http": BoundedH11Protocol,
        "h11_max_incomplete_event_size": settings.max_request_head_bytes,
    }
    uvicorn_worker.UvicornWorker.CONFIG_KWARGS = config
