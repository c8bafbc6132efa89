"""SocketSink on its own: which connections the loop may take over, the bytes it puts on
the wire, and the socket it gives back. Real sockets, on uvloop (the bridge's loop); the
end-to-end tests are in test_endpoint.py."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop

from promptstream._socket import ClientGone, SocketSink


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.setblocking(True)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def environ(sock: Any, **extra: Any) -> dict[str, Any]:
    env = {
        "gunicorn.socket": sock,
        "SERVER_SOFTWARE": "gunicorn/27.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }
    env.update(extra)
    return env


def taken(server: socket.socket, stall_timeout: float = 30) -> SocketSink:
    """The sink for a plain HTTP/1.1 connection under gunicorn (which always qualifies)."""
    sink = SocketSink.from_environ(environ(server), stall_timeout)
    assert sink is not None
    return sink


def test_plain_http_1_1_under_gunicorn_is_taken_over_chunked(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sink = SocketSink.from_environ(environ(pair[0]), 30)
    assert sink is not None and sink._chunked


def test_http_1_0_is_taken_over_unframed(pair: tuple[socket.socket, socket.socket]) -> None:
    sink = SocketSink.from_environ(environ(pair[0], SERVER_PROTOCOL="HTTP/1.0"), 30)
    assert sink is not None and not sink._chunked


def test_a_forwarded_https_scheme_does_not_matter(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # Behind a trusted proxy gunicorn sets wsgi.url_scheme from X-Forwarded-Proto; the
    # connection to gunicorn is still plain.
    assert SocketSink.from_environ(environ(pair[0], **{"wsgi.url_scheme": "https"}), 30)


@pytest.mark.parametrize(
    "change",
    [
        {"SERVER_SOFTWARE": "Werkzeug/3.1.9"},
        {"SERVER_PROTOCOL": "HTTP/2"},
        {"gunicorn.http2.priority_weight": 16},
        {"gunicorn.socket": None},
        {"gunicorn.socket": object()},
    ],
    ids=["werkzeug", "http2-protocol", "http2-stream", "no-socket", "not-a-socket"],
)
def test_anything_else_keeps_the_thread_writer(
    pair: tuple[socket.socket, socket.socket], change: dict[str, Any]
) -> None:
    assert SocketSink.from_environ(environ(pair[0], **change), 30) is None


def test_tls_in_gunicorn_keeps_the_thread_writer(pair: tuple[socket.socket, socket.socket]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls = context.wrap_socket(socket.socket(), server_side=True, do_handshake_on_connect=False)
    try:
        assert SocketSink.from_environ(environ(tls), 30) is None
    finally:
        tls.close()


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_writes_chunks_and_gives_the_socket_back_blocking(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    sink = taken(server)
    gone: list[bool] = []

    async def go() -> None:
        await sink.open(on_gone=lambda: gone.append(True))
        # Non-blocking while the loop writes (the duplicate shares the file's flags) ...
        assert not os.get_blocking(server.fileno())
        sink.write(b"data: a\n\n")
        sink.write(b"data: bc\n\n")
        await sink.drain()
        await sink.close()

    uvloop.run(go())
    # ... and blocking again, as gunicorn left it, once given back.
    assert os.get_blocking(server.fileno()) and server.gettimeout() is None
    server.sendall(b"0\r\n\r\n")  # what gunicorn writes next, on its own descriptor
    server.shutdown(socket.SHUT_WR)
    assert read_all(client) == b"9\r\ndata: a\n\n\r\na\r\ndata: bc\n\n\r\n0\r\n\r\n"
    assert not gone and not sink.gone


def test_a_peer_that_closes_is_noticed_while_idle(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    sink = taken(server)

    async def go() -> bool:
        noticed = asyncio.Event()
        await sink.open(on_gone=noticed.set)
        client.close()  # nothing is being written: only the watch can tell
        try:
            await asyncio.wait_for(noticed.wait(), 5)
        finally:
            await sink.close()
        with pytest.raises(ClientGone):
            sink.write(b"late")
        return sink.gone

    assert uvloop.run(go())
    assert os.get_blocking(server.fileno())


def test_a_client_that_takes_nothing_is_given_up_after_the_stall_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _client = pair  # the client never reads
    sink = taken(server, 0.3)

    async def go() -> None:
        await sink.open(on_gone=lambda: None)
        try:
            with pytest.raises(ClientGone):
                for _ in range(10_000):  # far more than the socket buffers hold
                    sink.write(b"x" * 4096)
                    await sink.drain()
        finally:
            await sink.close()

    uvloop.run(go())
    assert sink.gone
    assert os.get_blocking(server.fileno())


def test_bytes_the_client_sends_meanwhile_are_left_for_gunicorn(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    sink = taken(server)

    async def go() -> None:
        await sink.open(on_gone=lambda: None)
        client.sendall(b"GET /next HTTP/1.1\r\n\r\n")  # a pipelined request
        for _ in range(5):
            sink.write(b"data: x\n\n")
            await asyncio.sleep(0.02)  # the loop runs its reader callback meanwhile
        await sink.close()

    uvloop.run(go())
    assert not sink.gone
    server.settimeout(5)
    assert server.recv(100) == b"GET /next HTTP/1.1\r\n\r\n"


def test_bytes_read_before_the_pause_end_the_body_and_the_connection(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # A request already waiting when the loop takes over may be read by the transport
    # (uvloop reads before it can be paused). Then the body is ended here and the
    # connection shut down; otherwise the bytes are still there for gunicorn.
    server, client = pair
    pipelined = b"GET /next HTTP/1.1\r\n\r\n"
    client.sendall(pipelined)
    sink = taken(server)

    async def go() -> bool:
        await sink.open(on_gone=lambda: None)
        sink.write(b"data: x\n\n")
        await asyncio.sleep(0.05)
        read = sink._protocol is not None and sink._protocol.read_ahead
        await sink.close()
        return read

    read_ahead = uvloop.run(go())
    assert os.get_blocking(server.fileno())
    if read_ahead:
        with pytest.raises(OSError):  # shut down: gunicorn's own last chunk fails
            server.sendall(b"0\r\n\r\n")
        assert read_all(client) == b"9\r\ndata: x\n\n\r\n0\r\n\r\n"
    else:
        server.settimeout(5)
        assert server.recv(100) == pipelined
