"""The HTTP server's own limits, for the worker functions-framework starts:
``configure_server`` sets uvicorn-worker's ``CONFIG_KWARGS`` before gunicorn builds its
worker. h11 with the request head bounded (``MAX_REQUEST_HEAD_BYTES``, 431) and given a
deadline (``HEAD_TIMEOUT_SECONDS``); ``Connection: close`` on every refusal of the parser
and on every answer given before the whole body, then a lingering close; the idle
keep-alive (``KEEP_ALIVE_SECONDS``). The body's own cap and deadline are
``_endpoint.read_body``'s. Why each, and what was tried: docs/adr/0306-server-edge.md and
docs/adr/0005-native-async-path.md.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

import h11
import uvicorn_worker
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.server import ServerState

from .._config import DEFAULTS, Settings
from .._errors import ErrorCode, HttpError
from ._asgi import error_body
from ._resumable import drain

__all__ = ["BoundedH11Protocol", "configure_server"]

_CLOSE = (b"connection", b"close")
# After an answer given before the whole body the server half-closes, then drops what
# still arrives for at most this long (and at most the largest body the API accepts,
# ``BoundedH11Protocol.linger_bytes``) before it closes: a client that reads only once it
# has sent finds the answer rather than a reset (RFC 9112 9.6).
_LINGER_SECONDS = 2.0


def _says_close(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(name == b"connection" and b"close" in value.lower() for name, value in headers)


class _GuardedConnection(h11.Connection):
    """h11's server side with the rules RFC 9112 leaves to the server, which h11 does not
    apply itself: the head limit on a head that arrived whole, a refusal of a request that
    declares both lengths, and ``Connection: close`` on an answer given while the request's
    body is still arriving."""

    def __init__(self, max_head_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self._max_head_bytes = max_head_bytes
        self.refusal = ErrorCode.INVALID_REQUEST

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        # h11 bounds only a head still incomplete; one that is whole in the buffer (one
        # send, or pipelined behind a request) is parsed at any size. What the parse took
        # from the buffer is the head, however it arrived. (_receive_buffer is h11's own;
        # h11 is pinned, and test_server.py's table fails if it changes.)
        before = len(self._receive_buffer)
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == ErrorCode.REQUEST_HEAD_TOO_LARGE.status:
                self.refusal = ErrorCode.REQUEST_HEAD_TOO_LARGE
            raise
        if type(event) is h11.Request:
            if before - len(self._receive_buffer) > self._max_head_bytes:
                self.refusal = ErrorCode.REQUEST_HEAD_TOO_LARGE
                raise h11.RemoteProtocolError("request head too large", self.refusal.status)
            names = {name for name, _ in event.headers}
            if b"content-length" in names and b"transfer-encoding" in names:
                # h11 lets chunked win; RFC 9112 6.3 says to close after answering such a
                # request, and a refusal closes before anything behind it is parsed.
                raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", 400)
        return event

    def send_with_data_passthrough(self, event: h11.Event) -> list[bytes] | None:
        # h11's send() comes here too: the one place every response goes out.
        if (
            type(event) is h11.Response
            and self.their_state is h11.SEND_BODY
            and not _says_close(event.headers)
        ):
            # The answer comes before the whole body (a preflight, a 405, a probe, a
            # refusal): keeping the connection would mean reading the rest of that body,
            # however long, to find the next request. h11 then ends in MUST_CLOSE and
            # uvicorn closes the connection after the answer.
            event = h11.Response(
                status_code=event.status_code,
                headers=[*event.headers, _CLOSE],
                reason=event.reason,
                http_version=event.http_version,
            )
        return super().send_with_data_passthrough(event)


class _Closing(asyncio.Transport):
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


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with our connection rules and a deadline on every head."""

    head_timeout = DEFAULTS.head_timeout_seconds
    linger_bytes = DEFAULTS.max_document_bytes

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        max_head = config.h11_max_incomplete_event_size
        if max_head is None:  # not through configure_server (a test's uvicorn.Config)
            max_head = Settings.model_fields["max_request_head_bytes"].default
        self.conn = self._guarded = _GuardedConnection(max_head)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _hook_sigterm(self.loop, self._keep)
        self._raw = transport
        # Bytes dropped since a lingering close began (None: not lingering), and its end.
        self._lingered: int | None = None
        self._linger_end: asyncio.TimerHandle | None = None
        super().connection_made(_Closing(transport, self._close))
        self._head_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.head_timeout, self._head_overdue
        )

    def _close(self) -> None:
        """uvicorn closing the connection: at once, unless the request's body is still
        arriving; then send the FIN after the answer and linger."""
        raw = self._raw
        if self.conn.their_state is h11.SEND_BODY and raw.can_write_eof() and not raw.is_closing():
            self._lingered = 0
            self._linger_end = self.loop.call_later(_LINGER_SECONDS, raw.close)
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
        if self._head_deadline is None and self._between_requests():
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_overdue)
        super().data_received(data)
        if self._head_deadline is not None and not self._between_requests():
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
        super().shutdown()

    def _keep(self, task: asyncio.Task[None]) -> None:
        # uvicorn waits for the tasks of this set before it lets the worker exit.
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def send_400_response(self, msg: str) -> None:
        """The parser's refusal, in our JSON error shape, and the connection closed."""
        code = self._guarded.refusal
        message = (
            "The request line and headers are too large."
            if code is ErrorCode.REQUEST_HEAD_TOO_LARGE
            else "Malformed HTTP request."
        )
        body = error_body(HttpError(code, message))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            _CLOSE,
        ]
        try:
            for event in (
                h11.Response(
                    status_code=code.status, headers=headers, reason=STATUS_PHRASES[code.status]
                ),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:
            pass  # an answer was already under way: nothing more can be said, just close
        self.transport.close()

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


def configure_server(settings: Settings) -> None:
    """Give the worker functions-framework is about to start our protocol and limits."""
    BoundedH11Protocol.head_timeout = settings.head_timeout_seconds
    BoundedH11Protocol.linger_bytes = max(settings.max_body_bytes, settings.max_document_bytes)
    config: dict[str, Any] = {
        **uvicorn_worker.UvicornWorker.CONFIG_KWARGS,
        "http": BoundedH11Protocol,
        "h11_max_incomplete_event_size": settings.max_request_head_bytes,
        "timeout_keep_alive": settings.keep_alive_seconds,
    }
    uvicorn_worker.UvicornWorker.CONFIG_KWARGS = config
