"""What both of the server's protocols (h11's and httptools') do to a connection the same
way: the deadline on every request head, the lingering close after an answer given
before the whole body, the refusal of a head in our JSON error shape, and the drain on
SIGTERM. Why each: docs/adr/0306-server-edge.md; the two protocols:
docs/adr/1004-the-server-on-httptools.md.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import FrameType
from typing import Any

from uvicorn.config import Config

from .._config import DEFAULTS, Settings
from .._errors import ErrorCode, HttpError
from ._asgi import error_body
from ._resumable import drain

__all__ = ["ClosingTransport", "ConnectionRules", "head_limit", "refusal"]

# After an answer given before the whole body the server half-closes, then drops what
# still arrives for at most this long (and at most the largest body the API accepts,
# ``ConnectionRules.linger_bytes``) before it closes: a client that reads only once it
# has sent finds the answer rather than a reset (RFC 9112 9.6).
LINGER_SECONDS = 2.0


def head_limit(config: Config) -> int:
    """The request head's limit configure_server gave uvicorn's config."""
    limit = config.h11_max_incomplete_event_size
    if limit is None:  # not through configure_server (a test's uvicorn.Config)
        return int(Settings.model_fields["max_request_head_bytes"].default)
    return limit


def refusal(code: ErrorCode) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The parser's refusal of a head: status, headers and body, ``Connection: close``."""
    message = (
        "The request line and headers are too large."
        if code is ErrorCode.REQUEST_HEAD_TOO_LARGE
        else "Malformed HTTP request."
    )
    body = error_body(HttpError(code, message))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return code.status, headers, body


def status_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class ClosingTransport(asyncio.Transport):
    """The connection's transport as uvicorn holds it, with ``close`` handed to the
    protocol (which may linger first); everything else goes straight through."""

    def __init__(self, raw: asyncio.Transport, close: Callable[[], None]) -> None:
        super().__init__()
        self._raw = raw
        self._close = close
        self._closing = False

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._close()

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def abort(self) -> None:
        self._closing = True
        self._raw.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._raw.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._raw.writelines(list_of_data)

    def write_eof(self) -> None:
        self._raw.write_eof()

    def can_write_eof(self) -> bool:
        return self._raw.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()

    def is_reading(self) -> bool:
        return self._raw.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits()


class ConnectionRules(asyncio.Protocol):
    """Mixed in before a uvicorn protocol class: the head deadline, the lingering close,
    the drain on shutdown. The protocol says when a request's body is still arriving and
    when it is between requests."""

    head_timeout = DEFAULTS.head_timeout_seconds
    linger_bytes = DEFAULTS.max_document_bytes

    # uvicorn's protocols have these.
    loop: asyncio.AbstractEventLoop
    tasks: set[asyncio.Task[None]]
    transport: asyncio.Transport

    def body_arriving(self) -> bool:
        """Whether the current request's body has not all arrived yet."""
        raise NotImplementedError

    def between_requests(self) -> bool:
        """Whether no request is being served (none yet, or the last one answered)."""
        raise NotImplementedError

    def received(self, data: bytes) -> None:
        """Hand ``data`` to the parser (outside a lingering close)."""
        raise NotImplementedError

    def close_now(self) -> None:
        """The head deadline's close (h11 is told first)."""
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _hook_sigterm(self.loop, self._keep)
        self._raw = transport
        # Bytes dropped since a lingering close began (None: not lingering), and its end.
        self._lingered: int | None = None
        self._linger_end: asyncio.TimerHandle | None = None
        super().connection_made(ClosingTransport(transport, self._close))
        self._head_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.head_timeout, self._head_overdue
        )

    def _close(self) -> None:
        """uvicorn closing the connection: at once, unless the request's body is still
        arriving; then send the FIN after the answer and linger."""
        raw = self._raw
        if self.body_arriving() and raw.can_write_eof() and not raw.is_closing():
            self._lingered = 0
            self._linger_end = self.loop.call_later(LINGER_SECONDS, raw.close)
            raw.write_eof()
            raw.resume_reading()  # uvicorn may have paused it; the rest is dropped
        else:
            raw.close()

    def data_received(self, data: bytes) -> None:
        if self._lingered is not None:
            self._lingered += len(data)
            if self._lingered > self.linger_bytes:
                self._raw.close()
            return
        if self._head_deadline is None and self.between_requests():
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_overdue)
        self.received(data)
        if self._head_deadline is not None and not self.between_requests():
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_deadline, self._linger_end):
            if timer is not None:
                timer.cancel()
        self._head_deadline = self._linger_end = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown reaches every connection here; the drain (already
        begun by the SIGTERM hook) comes first, then each connection ends as uvicorn's
        does (an open stream once its response is complete)."""
        drain(self._keep)
        super().shutdown()  # type: ignore[misc]

    def _keep(self, task: asyncio.Task[None]) -> None:
        # uvicorn waits for the tasks of this set before it lets the worker exit.
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.between_requests() and not self.transport.is_closing():
            self.close_now()


_hooked = False


def _hook_sigterm(
    loop: asyncio.AbstractEventLoop, keep: Callable[[asyncio.Task[None]], None]
) -> None:
    """Once per worker, on its first connection (uvicorn's own handler is in place by
    then): SIGTERM drains the service at once, then goes on to uvicorn's handler. A
    worker with no connection open is never told ``shutdown``, yet its detached
    generations must be drained (docs/adr/0600-durable-streams.md)."""
    global _hooked
    if _hooked or threading.current_thread() is not threading.main_thread():
        return
    _hooked = True
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(drain, keep)
        if callable(previous):
            previous(sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
