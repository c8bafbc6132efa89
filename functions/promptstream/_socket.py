"""Writing the rest of a streamed body straight to the client's socket, from the event loop.

Under gunicorn a WSGI body is written by the request thread, so every event the loop
produces would have to wake that thread (a futex, then a wait for the GIL among up to a
thousand threads) before it reached the socket. For a token stream that hand-off costs
more than all the other work per chunk put together, and under load it is what delays
tokens. So once gunicorn has sent the status line, the headers and the first event, the
loop takes the connection over: it writes the remaining HTTP/1.1 chunks itself through
an asyncio transport on a duplicate of gunicorn's socket, then gives the socket back,
blocking as it found it, and the request thread returns so gunicorn writes the last,
empty chunk. It is the same socket that websocket libraries take over under gunicorn
(``environ["gunicorn.socket"]``).

Why a transport and not ``socket.send`` from the loop: each ``send`` from Python lets go
of the GIL, and with a thousand request threads wanting it the loop waited to get it back
(bench S3: 170-490 ms added p99 against 2-40 ms with the transport, whose writes stay in
C). The price: a transport reads, and uvloop starts reading right after
``connection_made``, before it can be paused. Reading is paused at once, so it reads only
if the client had already sent more (a pipelined request) when the loop took over. Those
bytes were gunicorn's, and cannot be given back; so then the sink ends the body itself
and closes the connection, which HTTP allows at any time (a pipelining client retries
what was not answered).

Only plain HTTP/1.x connections served by gunicorn qualify, which is how Cloud Run, the
Functions emulator and the tests serve the function; anything else (TLS terminated in
gunicorn, HTTP/2, another server) keeps the thread hand-off. gunicorn's ``uwsgi``
protocol cannot be told apart from the environ and is not used by functions-framework:
``DIRECT_SOCKET_WRITES=false`` turns this off.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ClientGone", "SocketSink"]


class ClientGone(Exception):
    """The client closed the connection, or stopped reading for too long."""


class SocketSink:
    """The client's connection, written from the loop. Made in the request thread, used
    on the loop from ``open()`` to ``close()``, then the request thread may use the
    socket again."""

    def __init__(self, sock: socket.socket, *, chunked: bool, stall_timeout: float) -> None:
        self._sock = sock
        self._chunked = chunked
        self._stall_timeout = stall_timeout
        self._timeout = sock.gettimeout()
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching = False
        self._on_gone: Callable[[], None] | None = None
        self.gone = False
        self.last_write = 0.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], stall_timeout: float) -> SocketSink | None:
        """A sink for this request, or ``None`` when it is not a plain HTTP/1.x
        connection served by gunicorn."""
        sock = environ.get("gunicorn.socket")
        protocol = environ.get("SERVER_PROTOCOL")
        # TLS shows in the socket's type; wsgi.url_scheme does not tell (gunicorn sets it
        # from X-Forwarded-Proto for trusted proxies).
        if (
            not isinstance(sock, socket.socket)
            or isinstance(sock, ssl.SSLSocket)
            or not str(environ.get("SERVER_SOFTWARE", "")).startswith("gunicorn/")
            or protocol not in ("HTTP/1.1", "HTTP/1.0")
            or any(key.startswith("gunicorn.http2") for key in environ)
        ):
            return None
        # gunicorn frames a body of unknown length in chunks for HTTP/1.1 and sends it
        # raw (then closes) for HTTP/1.0; the sink does as gunicorn would.
        return cls(sock, chunked=protocol == "HTTP/1.1", stall_timeout=stall_timeout)

    # -- on the loop ------------------------------------------------------------------------

    async def open(self, on_gone: Callable[[], None]) -> None:
        """Take the connection over. ``on_gone`` runs (on the loop) once the client has
        closed it, or a write failed."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._on_gone = on_gone
        self.last_write = loop.time()
        # The transport owns (and will close) a duplicate descriptor; gunicorn's stays
        # open. Both share the file status flags, so the socket is non-blocking until
        # close() restores it.
        dup = self._sock.dup()
        try:
            transport, protocol = await loop.connect_accepted_socket(
                lambda: _Protocol(self._lost), sock=dup
            )
        except BaseException:
            dup.close()
            self._restore()
            raise
        # asyncio's loop starts reading after connection_made, which pauses it; uvloop
        # starts reading right after connection_made: pause it here as well.
        transport.pause_reading()
        self._transport = transport
        self._protocol = protocol
        # A closed connection shows as a readable socket that has nothing to read
        # (peeked, not read, on gunicorn's own descriptor).
        loop.add_reader(self._sock.fileno(), self._readable)
        self._watching = True

    def write(self, data: bytes) -> None:
        """Queue ``data`` as one chunk of the body; sent at once if the socket takes it."""
        transport = self._transport
        if transport is None or self.gone:
            raise ClientGone
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        transport.write(data)
        self.last_write = self._loop.time()  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait while the client is behind by more than the transport's high-water mark.
        A client that takes nothing for ``stall_timeout`` seconds counts as gone."""
        protocol = self._protocol
        if protocol is None or self.gone:
            raise ClientGone
        if protocol.paused is None:
            return
        try:
            async with asyncio.timeout(self._stall_timeout):
                await asyncio.shield(protocol.paused)
        except TimeoutError:
            # Raised to the writer here, not through on_gone (which would cancel it).
            self._on_gone = None
            self._lost(None)
            raise ClientGone from None
        if self.gone:
            raise ClientGone

    async def close(self) -> None:
        """Flush what is queued (within ``stall_timeout``), let go of the duplicate, and
        make gunicorn's socket blocking again. Safe to call more than once.

        If the transport read bytes that were gunicorn's, the body is ended here and the
        connection shut down, so gunicorn's own last chunk fails and it closes too.
        """
        # From here on a lost connection only shows in ``gone``; the writer is done.
        self._on_gone = None
        self._unwatch()
        transport, protocol = self._transport, self._protocol
        self._transport = None
        read_ahead = protocol is not None and protocol.read_ahead
        try:
            if transport is not None and protocol is not None:
                if self.gone:
                    transport.abort()
                else:
                    if read_ahead and self._chunked:
                        transport.write(b"0\r\n\r\n")
                    transport.close()
                try:
                    async with asyncio.timeout(self._stall_timeout):
                        await asyncio.shield(protocol.closed)
                except TimeoutError:
                    self.gone = True
                    transport.abort()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await asyncio.shield(protocol.closed)
        finally:
            if read_ahead:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
            self._restore()

    # -- internals -------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = self._sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            # The client sent more (a pipelined request, say): leave it to gunicorn and
            # stop watching; a failed write still tells that the client is gone.
            self._unwatch()
            return
        self._lost(None)

    def _lost(self, exc: BaseException | None) -> None:
        if self.gone:
            return
        if exc is None and self._transport is None and self._protocol is not None:
            return  # our own close() finished: nothing was lost
        self.gone = True
        self._unwatch()
        on_gone, self._on_gone = self._on_gone, None
        if on_gone is not None:
            on_gone()

    def _unwatch(self) -> None:
        if self._watching and self._loop is not None:
            self._watching = False
            self._loop.remove_reader(self._sock.fileno())

    def _restore(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.settimeout(self._timeout)


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: Callable[[BaseException | None], None]) -> None:
        self._on_lost = on_lost
        # The transport read bytes (before it was paused): they were gunicorn's.
        self.read_ahead = False
        self.paused: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.read_ahead = True

    def pause_writing(self) -> None:
        if self.paused is None:
            self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.paused is not None:
            if not self.paused.done():
                self.paused.set_result(None)
            self.paused = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(exc)
