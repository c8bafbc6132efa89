"""Writing the rest of a streamed body straight to the client's socket, from the event loop.

Under gunicorn a WSGI body is written by the request thread, so every event the loop
produces would have to wake that thread (a futex, then a wait for the GIL among up to a
thousand threads) before it reached the socket. For a token stream that hand-off costs
more than all the other work per chunk put together, and under load it is what delays
tokens. So once gunicorn has sent the status line, the headers and the first event, the
loop takes the connection over: it makes gunicorn's socket non-blocking, writes the
remaining HTTP/1.1 chunks itself (``send`` at once, the rest queued for the loop's
writer callback), then gives the socket back, blocking as it found it, and the request
thread returns so gunicorn writes the last, empty chunk. It is the same socket that
websocket libraries take over under gunicorn (``environ["gunicorn.socket"]``). Not an
asyncio transport: a transport reads (uvloop's starts reading right after
``connection_made``), and a pipelined request it read would be lost to gunicorn.

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

    # ``drain()`` waits while more than HIGH_WATER bytes are queued, until LOW_WATER.
    HIGH_WATER = 64 * 1024
    LOW_WATER = 16 * 1024

    def __init__(self, sock: socket.socket, *, chunked: bool, stall_timeout: float) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._chunked = chunked
        self._stall_timeout = stall_timeout
        self._timeout = sock.gettimeout()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = bytearray()
        self._progress: asyncio.Future[None] | None = None
        self._watching = False
        self._closing = False
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
        """Take the connection over. ``on_gone`` runs (on the loop, soon after) once the
        client has closed it or a write failed, unless ``close()`` has begun."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._on_gone = on_gone
        self.last_write = loop.time()
        self._sock.setblocking(False)  # until close() gives it back as it was
        # A closed connection shows as a readable socket that has nothing to read. Only
        # peeked, never read: what the client sends next (a pipelined request) is
        # gunicorn's to read once the stream is over.
        loop.add_reader(self._fd, self._readable)
        self._watching = True

    def write(self, data: bytes) -> None:
        """Queue ``data`` as one chunk of the body; sent at once if the socket takes it.
        Raises ``ClientGone`` if the client is known to be gone."""
        if self._loop is None or self._closing or self.gone:
            raise ClientGone
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self.last_write = self._loop.time()
        if self._buffer:
            self._buffer += data  # the writer callback is already waiting for room
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            raise ClientGone from None
        if sent < len(data):
            self._buffer += data[sent:]
            self._loop.add_writer(self._fd, self._writable)

    async def drain(self) -> None:
        """Wait while more than ``HIGH_WATER`` bytes wait for the client. A client that
        takes nothing for ``stall_timeout`` seconds counts as gone."""
        if self.gone:
            raise ClientGone
        if len(self._buffer) <= self.HIGH_WATER:
            return
        if not await self._flushed(self.LOW_WATER):
            self._lost(None)
            raise ClientGone
        if self.gone:
            raise ClientGone

    async def close(self) -> None:
        """Send what is queued (within ``stall_timeout``), stop watching, and give the
        socket back as it was (blocking). Safe to call more than once."""
        if self._loop is None or self._closing:
            return
        # From here on a lost connection only shows in ``gone``; the writer is done.
        self._closing = True
        self._on_gone = None
        self._unwatch()
        try:
            if self._buffer and not self.gone and not await self._flushed(0):
                self.gone = True
        finally:
            if self._buffer:  # not sent in time, or the client is gone: dropped
                self._buffer.clear()
                self._stop_writing()
            self._restore()

    # -- internals -------------------------------------------------------------------------

    async def _flushed(self, level: int) -> bool:
        """Wait until at most ``level`` bytes are queued; False after ``stall_timeout``
        seconds of no progress or once the client is gone."""
        assert self._loop is not None
        while len(self._buffer) > level and not self.gone:
            progress = self._loop.create_future()
            self._progress = progress
            try:
                async with asyncio.timeout(self._stall_timeout):
                    await progress
            except TimeoutError:
                return False
            finally:
                self._progress = None
        return not self.gone

    def _writable(self) -> None:
        try:
            sent = self._sock.send(self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._buffer.clear()
            self._stop_writing()
            self._lost(exc)
            self._wake()
            return
        del self._buffer[:sent]
        if not self._buffer:
            self._stop_writing()
        self._wake()

    def _wake(self) -> None:
        if self._progress is not None and not self._progress.done():
            self._progress.set_result(None)

    def _stop_writing(self) -> None:
        if self._loop is not None:
            self._loop.remove_writer(self._fd)

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
        """The client is gone: say so now, and tell ``on_gone`` soon (never from inside
        a write, where cancelling the writer would hit it in the middle of its cleanup)."""
        if self.gone:
            return
        self.gone = True
        self._unwatch()
        self._wake()
        if self._loop is not None:
            self._loop.call_soon(self._notify)

    def _notify(self) -> None:
        on_gone, self._on_gone = self._on_gone, None
        if on_gone is not None:
            on_gone()

    def _unwatch(self) -> None:
        if self._watching and self._loop is not None:
            self._watching = False
            self._loop.remove_reader(self._fd)

    def _restore(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.settimeout(self._timeout)
