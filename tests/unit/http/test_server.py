"""The worker's own limits: configure_server hands uvicorn's worker our protocol and the
head limit. The table of the connection rules (docs/adr/0306-server-edge.md) runs on an
in-memory transport against both protocols, h11's and httptools' (ADR 1004), and the
answers each writes are compared byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import uvicorn_worker
from uvicorn.server import ServerState

from promptstream import Settings, configure_server
from promptstream.http import _connection
from promptstream.http._connection import ConnectionRules
from promptstream.http._server import BoundedH11Protocol, BoundedHttpToolsProtocol

PROTOCOLS = [BoundedH11Protocol, BoundedHttpToolsProtocol]
Protocol = BoundedH11Protocol | BoundedHttpToolsProtocol


@pytest.fixture(params=PROTOCOLS, ids=["h11", "httptools"])
def kind(request: pytest.FixtureRequest) -> type[Protocol]:
    """Each row of the table runs on both protocols."""
    cls: type[Protocol] = request.param
    return cls


@pytest.fixture
def worker_config() -> Iterator[None]:
    saved = (
        dict(uvicorn_worker.UvicornWorker.CONFIG_KWARGS),
        [(cls.head_timeout, cls.linger_bytes) for cls in PROTOCOLS],
    )
    try:
        yield
    finally:
        uvicorn_worker.UvicornWorker.CONFIG_KWARGS = saved[0]
        for cls, (head_timeout, linger_bytes) in zip(PROTOCOLS, saved[1], strict=True):
            cls.head_timeout, cls.linger_bytes = head_timeout, linger_bytes


@pytest.mark.usefixtures("worker_config")
@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_configure_server_gives_the_worker_our_protocol_and_limits(parser: str) -> None:
    configure_server(
        Settings(
            head_timeout_seconds=2.5,
            max_request_head_bytes=4096,
            keep_alive_seconds=700,
            http_parser=parser,
        )
    )
    config = uvicorn_worker.UvicornWorker.CONFIG_KWARGS
    cls: type[ConnectionRules] = config["http"]
    assert cls is {"h11": BoundedH11Protocol, "httptools": BoundedHttpToolsProtocol}[parser]
    assert config["h11_max_incomplete_event_size"] == 4096
    assert config["timeout_keep_alive"] == 700
    assert cls.head_timeout == 2.5
    # A lingering close drops at most the largest body the API takes.
    assert cls.linger_bytes == Settings().max_document_bytes


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


def connected(kind: type[Protocol], head_timeout: float) -> tuple[Protocol, Transport]:
    config = uvicorn.Config(app, http=kind, lifespan="off", log_level="error")
    config.load()
    protocol = kind(config=config, server_state=ServerState(), app_state={})
    protocol.head_timeout = head_timeout
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "])
async def test_a_connection_without_a_whole_head_is_closed_after_the_timeout(
    kind: type[Protocol], sent: bytes
) -> None:
    protocol, transport = connected(kind, 0.05)
    if sent:
        protocol.data_received(sent)
    for _ in range(100):
        if transport.closed:
            break
        await asyncio.sleep(0.01)
    assert transport.closed
    protocol.connection_lost(None)


async def test_a_request_being_served_is_not_cut_by_the_head_deadline(
    kind: type[Protocol],
) -> None:
    protocol, transport = connected(kind, 0.05)
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


def serving(kind: type[Protocol], asgi: Any) -> tuple[Protocol, Transport, list[str]]:
    """A protocol with the head limit LIMIT serving ``asgi``; the paths it was called for."""
    paths: list[str] = []

    async def recorded(scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await asgi(scope, receive, send)

    config = uvicorn.Config(
        recorded,
        http=kind,
        lifespan="off",
        log_level="error",
        h11_max_incomplete_event_size=LIMIT,
    )
    config.load()
    protocol = kind(config=config, server_state=ServerState(), app_state={})
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


def feed(protocol: Protocol, data: bytes, piece: int) -> None:
    for at in range(0, len(data), piece):
        if protocol.transport.is_closing():
            return
        protocol.data_received(data[at : at + piece])


async def settle(transport: Transport) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize("piece", [1 << 20, 1000, 1], ids=["one send", "1000 B", "1 B"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["first", "pipelined"])
async def test_the_head_limit_holds_however_the_head_arrives(
    kind: type[Protocol], piece: int, pipelined: bool
) -> None:
    first = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n" if pipelined else b""
    protocol, transport, paths = serving(kind, answer_after_the_body)
    feed(protocol, first + head_of(LIMIT), piece)
    await settle(transport)
    assert paths == (["/first", "/"] if pipelined else ["/"])
    assert not transport.closed

    protocol, transport, paths = serving(kind, answer_after_the_body)
    feed(protocol, first + head_of(LIMIT + 1), piece)
    await settle(transport)
    assert paths == (["/first"] if pipelined else [])
    status = transport.written.split(b"HTTP/1.1 ")[-1]
    assert status.startswith(b"431 "), transport.written[-300:]
    assert b"connection: close" in status.lower()
    assert b'"request_head_too_large"' in status
    assert ended(transport)
    protocol.connection_lost(None)


async def test_a_request_with_both_lengths_is_refused_and_what_follows_never_parsed(
    kind: type[Protocol],
) -> None:
    protocol, transport, paths = serving(kind, answer_after_the_body)
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


async def test_a_malformed_head_is_refused_as_json_and_closed(kind: type[Protocol]) -> None:
    protocol, transport, paths = serving(kind, answer_after_the_body)
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
    [b"Content-Length: 1000000000\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n3e8\r\n"],
    ids=["declared", "chunked"],
)
async def test_an_answer_before_the_whole_body_closes_the_connection(
    kind: type[Protocol], framing: bytes
) -> None:
    protocol, transport, paths = serving(kind, answer_at_once)
    protocol.data_received(b"OPTIONS / HTTP/1.1\r\nHost: x\r\n" + framing + b"x" * 100)
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


async def test_a_lingering_close_ends_after_its_time(
    kind: type[Protocol], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_connection, "LINGER_SECONDS", 0.05)
    protocol, transport, _ = serving(kind, answer_at_once)
    protocol.data_received(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    await settle(transport)
    assert transport.eof and not transport.closed
    await asyncio.sleep(0.2)
    assert transport.closed
    protocol.connection_lost(None)


async def test_an_answer_after_the_whole_body_keeps_the_connection(kind: type[Protocol]) -> None:
    protocol, transport, paths = serving(kind, answer_at_once)
    protocol.data_received(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    await settle(transport)
    protocol.data_received(b"OPTIONS /next HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle(transport)
    assert paths == ["/", "/next"]
    assert transport.written.count(b"HTTP/1.1 204 ") == 2
    assert b"connection: close" not in transport.written.lower()
    assert not transport.closed
    protocol.connection_lost(None)


# -- the same bytes on the wire from both protocols ----------------------------------


async def streamed(scope: Any, receive: Any, send: Any) -> None:
    """A stream: no length declared, its body in pieces."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    for piece in (b"data: a\n\n", b"data: b\n\n"):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def sized(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 405, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def failing(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("before the answer: uvicorn's own 500")


EXCHANGES = {
    "stream 1.1": (streamed, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    "stream 1.0": (streamed, b"GET / HTTP/1.0\r\n\r\n"),
    "stream 1.0 keep-alive asked": (streamed, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    "stream HEAD": (streamed, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"),
    "stream, client closes": (streamed, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    "sized 1.1": (sized, b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"),
    "sized 1.0": (sized, b"GET / HTTP/1.0\r\n\r\n"),
    "204": (answer_at_once, b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n"),
    "500": (failing, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    "pipelined": (
        sized,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"\r\nhiGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "no Host": (sized, b"GET / HTTP/1.1\r\n\r\n"),
    "two Hosts": (sized, b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
    "gzip": (sized, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
    "two codings": (
        sized,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    "malformed behind a request": (
        sized,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ),
    "two requests, then a malformed head": (
        sized,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\n"
        b"Host: x\r\nBad Header\r\n\r\n",
    ),
    "a bad chunk behind a request": (
        answer_after_the_body,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    ),
    "an upgrade asked, a body, a request behind": (
        answer_after_the_body,
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhelloGET /next "
        b"HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "an upgrade asked, no body": (
        sized,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "a bad chunk": (
        answer_after_the_body,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ),
}


async def exchange(
    kind: type[Protocol], asgi: Any, request: bytes
) -> tuple[bytes, bool, list[str]]:
    protocol, transport, paths = serving(kind, asgi)
    protocol.data_received(request)
    for _ in range(5):
        await settle(transport)
    answer = transport.written, ended(transport), paths
    protocol.connection_lost(None)  # the app's task, if still waiting, told and ended
    await settle(transport)
    return answer


@pytest.mark.parametrize("name", list(EXCHANGES))
async def test_both_protocols_write_the_same_bytes(name: str) -> None:
    asgi, request = EXCHANGES[name]
    h11_side = await exchange(BoundedH11Protocol, asgi, request)
    httptools_side = await exchange(BoundedHttpToolsProtocol, asgi, request)
    assert httptools_side[:2] == h11_side[:2]
    assert h11_side[0]  # every row is answered
    if name == "a bad chunk behind a request":
        # h11 parses /b's head after /a's answer and calls the app before the body
        # fails; httptools has already seen the body fail and never calls it.
        assert (h11_side[2], httptools_side[2]) == (["/a", "/b"], ["/a"])
    else:
        assert httptools_side[2] == h11_side[2]


async def test_an_http_1_0_stream_is_delimited_by_the_close(kind: type[Protocol]) -> None:
    written, ended_, _ = await exchange(kind, streamed, b"GET / HTTP/1.0\r\n\r\n")
    assert b"transfer-encoding" not in written.lower()
    assert written.endswith(b"\r\n\r\ndata: a\n\ndata: b\n\n")
    assert ended_


@pytest.mark.parametrize(
    "request_", [b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"]
)
async def test_a_request_without_one_host_is_refused(kind: type[Protocol], request_: bytes) -> None:
    written, ended_, paths = await exchange(kind, sized, request_)
    assert paths == [] and written.startswith(b"HTTP/1.1 400 ") and ended_


async def test_pipelined_requests_are_answered_in_order(kind: type[Protocol]) -> None:
    request = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(5))
    written, ended_, paths = await exchange(kind, sized, request)
    assert paths == [f"/{n}" for n in range(5)]
    assert written.count(b"HTTP/1.1 405 ") == 5 and not ended_


async def test_a_malformed_head_behind_a_request_is_refused_after_its_answer(
    kind: type[Protocol],
) -> None:
    request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nBad Header\r\n\r\n"
    written, ended_, paths = await exchange(kind, sized, request)
    assert paths == ["/a"]
    assert written.startswith(b"HTTP/1.1 405 ")
    assert written.split(b"{}", 1)[1].startswith(b"HTTP/1.1 400 ")
    assert ended_


async def test_trailing_whitespace_of_a_header_value_is_not_the_apps(kind: type[Protocol]) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def headers(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["headers"])
        await sized(scope, receive, send)

    await exchange(
        kind, headers, b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t \t\r\n\r\n"
    )
    assert (b"authorization", b"Bearer t") in seen[0]


@pytest.mark.parametrize("over", [0, 1], ids=["at the limit", "one byte over"])
async def test_a_request_line_is_bounded_with_the_headers(kind: type[Protocol], over: int) -> None:
    bare = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    head = bare.replace(b"/", b"/" + b"a" * (LIMIT + over - len(bare)), 1)
    written, _, paths = await exchange(kind, answer_after_the_body, head)
    assert (paths == []) is bool(over)
    assert written.startswith(b"HTTP/1.1 431 " if over else b"HTTP/1.1 200 ")


@pytest.mark.parametrize("over", [0, 1], ids=["at the limit", "one byte over"])
@pytest.mark.parametrize("piece", [1 << 20, 7], ids=["one send", "7 B"])
async def test_a_head_behind_a_chunked_body_is_bounded(
    kind: type[Protocol], over: int, piece: int
) -> None:
    protocol, transport, paths = serving(kind, answer_after_the_body)
    first = (
        b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    feed(protocol, first + head_of(LIMIT + over), piece)
    for _ in range(5):
        await settle(transport)
    assert paths == (["/first"] if over else ["/first", "/"])
    assert transport.written.split(b"HTTP/1.1 ")[-1].startswith(b"431 " if over else b"200 ")


@pytest.mark.parametrize("piece", [1 << 20, 3], ids=["one send", "3 B"])
async def test_the_body_of_a_request_asking_for_an_upgrade_reaches_the_app(
    kind: type[Protocol], piece: int
) -> None:
    bodies: list[bytes] = []

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        bodies.append(body)
        await sized(scope, receive, send)

    protocol, transport, paths = serving(kind, echo)
    feed(
        protocol,
        b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Content-Length: 11\r\n\r\nhello world"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        piece,
    )
    for _ in range(5):
        await settle(transport)
    assert paths == ["/a", "/b"] and bodies == [b"hello world", b"hi"]
    assert transport.written.count(b"HTTP/1.1 405 ") == 2 and not ended(transport)


async def test_a_chunked_body_asking_for_an_upgrade_is_refused_on_httptools() -> None:
    # The one request h11 serves and ours refuses (ADR 1004): llhttp would skip the body
    # and parse it as the next request, and only llhttp can decode chunks.
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    h11_side = await exchange(BoundedH11Protocol, answer_after_the_body, request)
    httptools_side = await exchange(BoundedHttpToolsProtocol, answer_after_the_body, request)
    assert h11_side[0].startswith(b"HTTP/1.1 200 ") and h11_side[2] == ["/"]
    assert httptools_side[0].startswith(b"HTTP/1.1 400 ") and httptools_side[2] == []
    assert httptools_side[1]
