"""The HTTP server's own limits, for the worker functions-framework starts:
``configure_server`` sets uvicorn-worker's ``CONFIG_KWARGS`` before gunicorn builds its
worker: the protocol ``HTTP_PARSER`` names (h11's, here, or httptools', ``_httptools``),
the request head bounded (``MAX_REQUEST_HEAD_BYTES``, 431), the idle keep-alive
(``KEEP_ALIVE_SECONDS``). What both protocols share (the head deadline, the lingering
close) is ``_connection``'s. The body's own cap and deadline are ``_endpoint.read_body``'s.
Why each, and what was tried: docs/adr/0306-server-edge.md,
docs/adr/1004-the-server-on-httptools.md and docs/adr/0005-native-async-path.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import h11
import uvicorn_worker
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.server import ServerState

from .._config import Settings
from .._errors import ErrorCode
from ._connection import ConnectionRules, head_limit, refusal
from ._httptools import BoundedHttpToolsProtocol

__all__ = ["BoundedH11Protocol", "BoundedHttpToolsProtocol", "configure_server"]

_CLOSE = (b"connection", b"close")


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


class BoundedH11Protocol(ConnectionRules, H11Protocol):
    """uvicorn's h11 protocol with our connection rules and a deadline on every head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = self._guarded = _GuardedConnection(head_limit(config))

    def body_arriving(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def send_400_response(self, msg: str) -> None:
        """The parser's refusal, in our JSON error shape, and the connection closed."""
        status, headers, body = refusal(self._guarded.refusal)
        try:
            for event in (
                h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:
            pass  # an answer was already under way: nothing more can be said, just close
        self.transport.close()

    def received(self, data: bytes) -> None:
        H11Protocol.data_received(self, data)

    def close_now(self) -> None:
        if self.conn.our_state != h11.ERROR:
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass  # a head was half received: nothing to say, just close
        self.transport.close()


PROTOCOLS: dict[str, type[ConnectionRules]] = {
    "h11": BoundedH11Protocol,
    "httptools": BoundedHttpToolsProtocol,
}


def configure_server(settings: Settings) -> None:
    """Give the worker functions-framework is about to start our protocol and limits."""
    protocol = PROTOCOLS[settings.http_parser]
    protocol.head_timeout = settings.head_timeout_seconds
    protocol.linger_bytes = max(settings.max_body_bytes, settings.max_document_bytes)
    config: dict[str, Any] = {
        **uvicorn_worker.UvicornWorker.CONFIG_KWARGS,
        "http": protocol,
        "h11_max_incomplete_event_size": settings.max_request_head_bytes,
        "timeout_keep_alive": settings.keep_alive_seconds,
    }
    uvicorn_worker.UvicornWorker.CONFIG_KWARGS = config
