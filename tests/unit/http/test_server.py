"""The worker's own limits: configure_server hands uvicorn's worker our protocol and the
head limit; BoundedH11Protocol, on an in-memory transport, closes a connection whose
request head does not arrive in time and leaves alone one that is being served."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import uvicorn_worker
from uvicorn.server import ServerState

from promptstream import Settings, configure_server
from promptstream.http import _server
from promptstream.http._server import BoundedH11Protocol


@pytest.fixture
def worker_config() -> Iterator[None]:
    saved = (
        dict(uvicorn_worker.UvicornWorker.CONFIG_KWARGS),
        BoundedH11Protocol.head_timeout,
        BoundedH11Protocol.linger_bytes,
    )
    try:
        yield
    finally:
        (
            uvicorn_worker.UvicornWorker.CONFIG_KWARGS,
            BoundedH11Protocol.head_timeout,
            BoundedH11Protocol.linger_bytes,
        ) = saved


@pytest.mark.usefixtures("worker_config")
def test_configure_server_gives_the_worker_our_protocol_and_limits() -> None:
    configure_server(
        Settings(head_timeout_seconds=2.5, max_request_head_bytes=4096, keep_alive_seconds=700)
    )
    config = uvicorn_worker.UvicornWorker.CONFIG_KWARGS
    assert config["http"] is BoundedH11Protocol
    assert config["h11_max_incomplete_event_size"] == 4096
    assert config["timeout_keep_alive"] == 700
    assert BoundedH11Protocol.head_timeout == 2.5
    # A lingering close drops at most the largest body the API takes.
    assert BoundedH11Protocol.linger_bytes == Settings().max_document_bytes


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.eof = False  # our FIN sent (write_eof)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(60)  # a long request: the head deadline must not cut it


def connected(head_timeout: float) -> tuple[BoundedH11Protocol, Transport]:
    config = uvicorn.Config(app, http=BoundedH11Protocol, lifespan="off", log_level="error")
    config.load()
    protocol = BoundedH11Protocol(config=config, server_state=ServerState(), app_state={})
    protocol.head_timeout = head_timeout
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "])
async def test_a_connection_without_a_whole_head_is_closed_after_the_timeout(sent: bytes) -> None:
    protocol, transport = connected(0.05)
    if sent:
        protocol.data_received(sent)
    for _ in range(100):
        if transport.closed:
            break
        await asyncio.sleep(0.01)
    assert transport.closed
    protocol.connection_lost(None)


async def test_a_request_being_served_is_not_cut_by_the_head_deadline() -> None:
    protocol, transport = connected(0.05)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.2)
    assert not transport.closed
    protocol.connection_lost(None)
    await asyncio.sleep(0)


# -- the connection rules: head limit, both lengths, close before the body -------------

LIMIT = 2048


async def answer_at_once(scope: Any, receive: Any, send: Any) -> None:
    """An answer given without reading the body, as a preflight, a 405 or a probe is."""
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def answer_after_the_body(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def serving(asgi: Any) -> tuple[BoundedH11Protocol, Transport, list[str]]:
    """A protocol with the head limit LIMIT serving ``asgi``; the paths it was called for."""
    paths: list[str] = []

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await asgi(scope, receive, send)

    config = uvicorn.Config(
        recorded,
        http=BoundedH11Protocol,
        lifespan="off",
        log_level="error",
        h11_max_incomplete_event_size=LIMIT,
    )
    config.load()
    protocol = BoundedH11Protocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport, paths


def head_of(size: int) -> bytes:
    """A GET head of exactly ``size`` bytes, blank line included."""
    bare = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"
    return bare.replace(b"X-Pad: ", b"X-Pad: " + b"a" * (size - len(bare)))


def ended(transport: Transport) -> bool:
    """Whether the server has ended the connection: closed it, or sent its FIN (a
    lingering close, which drops whatever arrives after)."""
    return transport.closed or transport.eof


def feed(protocol: BoundedH11Protocol, data: bytes, piece: int) -> None:
    for at in range(0, len(data), piece):
        if protocol.transport.is_closing():
            return
        protocol.data_received(data[at : at + piece])


async def settle(transport: Transport) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize("piece", [1 << 20, 1000, 1], ids=["one send", "1000 B", "1 B"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["first", "pipelined"])
async def test_the_head_limit_holds_however_the_head_arrives(piece: int, pipelined: bool) -> None:
    first = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n" if pipelined else b""
    protocol, transport, paths = serving(answer_after_the_body)
    feed(protocol, first + head_of(LIMIT), piece)
    await settle(transport)
    assert paths == (["/first", "/"] if pipelined else ["/"])
    assert not transport.closed

    protocol, transport, paths = serving(answer_after_the_body)
    feed(protocol, first + head_of(LIMIT + 1), piece)
    await settle(transport)
    assert paths == (["/first"] if pipelined else [])
    status = transport.written.split(b"HTTP/1.1 ")[-1]
    assert status.startswith(b"431 "), transport.written[-300:]
    assert b"connection: close" in status.lower()
    assert b'"request_head_too_large"' in status
    assert ended(transport)
    protocol.connection_lost(None)


async def test_a_request_with_both_lengths_is_refused_and_what_follows_never_parsed() -> None:
    protocol, transport, paths = serving(answer_after_the_body)
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await settle(transport)
    assert paths == []
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert transport.written.count(b"HTTP/1.1") == 1
    assert b"connection: close" in transport.written.lower()
    assert ended(transport)


async def test_a_malformed_head_is_refused_as_json_and_closed() -> None:
    protocol, transport, paths = serving(answer_after_the_body)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert paths == []
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert transport.written.endswith(
        b'{"error": {"code": "invalid_request", "message": "Malformed HTTP request."}}'
    )
    assert b"connection: close" in transport.written.lower()
    assert transport.closed


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 1000000000\r\n", b"Transfer-Encoding: chunked\r\n"],
    ids=["declared", "chunked"],
)
async def test_an_answer_before_the_whole_body_closes_the_connection(framing: bytes) -> None:
    protocol, transport, paths = serving(answer_at_once)
    protocol.data_received(b"OPTIONS / HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n" + b"x" * 100)
    await settle(transport)
    assert transport.written.startswith(b"HTTP/1.1 204 ")
    assert b"connection: close" in transport.written.lower()
    # A lingering close: the FIN after the answer, what still arrives dropped unparsed
    # (a request in it is never served), then the close once a bound is passed.
    assert transport.eof and not transport.closed
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    protocol.data_received(smuggled)
    await settle(transport)
    assert paths == ["/"] and transport.written.count(b"HTTP/1.1") == 1
    protocol.data_received(b"x" * (protocol.linger_bytes - len(smuggled)))
    assert not transport.closed
    protocol.data_received(b"x")
    assert transport.closed


async def test_a_lingering_close_ends_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_server, "_LINGER_SECONDS", 0.05)
    protocol, transport, _ = serving(answer_at_once)
    protocol.data_received(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    await settle(transport)
    assert transport.eof and not transport.closed
    await asyncio.sleep(0.2)
    assert transport.closed
    protocol.connection_lost(None)


async def test_an_answer_after_the_whole_body_keeps_the_connection() -> None:
    protocol, transport, paths = serving(answer_at_once)
    protocol.data_received(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    await settle(transport)
    protocol.data_received(b"OPTIONS /next HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle(transport)
    assert paths == ["/", "/next"]
    assert transport.written.count(b"HTTP/1.1 204 ") == 2
    assert b"connection: close" not in transport.written.lower()
    assert not transport.closed
    protocol.connection_lost(None)
