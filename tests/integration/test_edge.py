"""The connection rules at the server's edge, against the function served as deployed
(functions-framework, gunicorn, uvicorn's worker with our protocol: ``HTTP_PARSER``'s, h11
or httptools), on raw sockets:
an answer given before the body has all arrived closes the connection, a request with
both lengths is refused and closed, the head limit holds however the head arrives, and an
idle connection outlives the pools of the proxies in front (docs/adr/0306-server-edge.md).
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from support import FunctionServer, Serve, auth, read_to_close, read_until

LIMIT = 16 * 1024  # MAX_REQUEST_HEAD_BYTES' default
# Node's http.globalAgent (the Functions emulator's proxy) keeps an idle socket 5 s.
NODE_AGENT_IDLE = 5.0


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("execute_prompt_stream") as server:
        yield server


def connect(server: FunctionServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes an idle connection within ``seconds``."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def head_of(size: int, path: str = "/__/health") -> bytes:
    """A GET head of exactly ``size`` bytes, its blank line included."""
    bare = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: \r\n\r\n".encode()
    return bare.replace(b"X-Pad: ", b"X-Pad: " + b"a" * (size - len(bare)))


# -- item 6: answers that do not read the body -------------------------------------------

FLOOD_SECONDS = 3.0
HUGE = "Content-Length: 1000000000000"
FLOOD_CAP = 256 << 20  # far past what the socket buffers hold; before: GBs in 3 s


def flood(sock: socket.socket, chunked: bool) -> tuple[bytes, int, float | None]:
    """Send body bytes as fast as the server takes them, reading its answer, until the
    server refuses more (a reset) or the flood's time or size is up: the answer, how many
    bytes the server took after the answer began, and how long after the answer it
    stopped taking them (None: it had not)."""
    sock.setblocking(False)
    piece = b"x" * (1 << 20)
    if chunked:
        piece = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = b""
    sent = sent_at_answer = 0
    answered_at: float | None = None
    reading = [sock]  # until the server's FIN: a lingering close still takes bytes
    deadline = time.monotonic() + FLOOD_SECONDS
    while time.monotonic() < deadline and sent < FLOOD_CAP:
        readable, writable, _ = select.select(reading, [sock], [], 0.1)
        try:
            if readable:
                data = sock.recv(65536)
                if not data:
                    reading = []
                elif answered_at is None:
                    answered_at, sent_at_answer = time.monotonic(), sent
                answer += data
            if writable:
                sent += sock.send(piece)
        except (BrokenPipeError, ConnectionResetError):
            refused_after = time.monotonic() - answered_at if answered_at is not None else 0.0
            return answer, sent - sent_at_answer, refused_after
    return answer, sent - sent_at_answer, None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("OPTIONS", "/", b"204"),
        ("GET", "/", b"405"),
        ("PUT", "/", b"405"),
        ("GET", "/__/health", b"200"),
        ("GET", "/robots.txt", b"404"),  # functions-framework's own answer
        ("TRACE", "/", b"405"),  # functions-framework's (Starlette's) plain 405
    ],
)
@pytest.mark.parametrize(
    "framing",
    [HUGE, "Transfer-Encoding: chunked"],
    ids=["declared", "chunked"],
)
def test_an_answer_that_does_not_read_the_body_closes_the_connection(
    server: FunctionServer, method: str, path: str, status: bytes, framing: str
) -> None:
    with connect(server) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n\r\n".encode())
        answer, taken_after, closed_after = flood(sock, chunked="chunked" in framing)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\nconnection: close" in head, head
    assert closed_after is not None, f"still taking bytes after {taken_after >> 20} MiB"
    assert closed_after < 3
    # What a lingering close drops plus the kernel's socket buffers; before: GBs.
    assert taken_after < 64 << 20


@pytest.mark.parametrize(("method", "status"), [("GET", b"405"), ("OPTIONS", b"204")])
def test_a_client_that_writes_until_refused_still_reads_the_answer(
    server: FunctionServer, method: str, status: bytes
) -> None:
    """The close comes with the body unread, so the kernel resets the connection: what a
    client that only reads once its writes fail still finds is the whole answer."""
    with connect(server) as sock:
        sock.sendall(f"{method} / HTTP/1.1\r\nHost: 127.0.0.1\r\n{HUGE}\r\n\r\n".encode())
        refused: OSError | None = None
        deadline = time.monotonic() + FLOOD_SECONDS
        try:
            while time.monotonic() < deadline:
                sock.sendall(b"x" * (1 << 20))
        except OSError as exc:
            refused = exc
        answer = read_to_close(sock, 3)
    assert refused is not None, "the server took the body for 3 s"
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


def test_an_answer_after_the_whole_body_keeps_the_connection(server: FunctionServer) -> None:
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"OPTIONS / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc")
            answer = read_until(sock, lambda r: b"\r\n\r\n" in r, timeout=5)
            assert answer.startswith(b"HTTP/1.1 204"), answer
            assert b"connection: close" not in answer.lower()


# -- item 7: both lengths, the parser's refusals, the head limit ------------------------


@pytest.mark.parametrize(
    "lengths",
    [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 43",
        "Content-Length: 0\r\nTransfer-Encoding: chunked",
    ],
    ids=["CL then TE", "TE then CL", "CL 0"],
)
def test_a_request_smuggled_behind_both_lengths_gets_no_answer_of_its_own(
    server: FunctionServer, lengths: str
) -> None:
    token = auth()["Authorization"]
    smuggled = b"GET /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(
            f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
            f"Content-Type: application/json\r\n{lengths}\r\n\r\n0\r\n\r\n".encode()
            + smuggled
        )
        received = read_to_close(sock)
    assert received.startswith(b"HTTP/1.1 400"), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert b"\r\nconnection: close" in received.lower()
    assert received.endswith(b'"invalid_request", "message": "Malformed HTTP request."}}')


@pytest.mark.parametrize(
    "bad_head",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["no colon", "not chunked", "two lengths"],
)
def test_a_refusal_of_the_parser_closes_the_connection(
    server: FunctionServer, bad_head: bytes
) -> None:
    with connect(server) as sock:
        sock.sendall(bad_head + b"GET /__/health HTTP/1.1\r\nHost: x\r\n\r\n")
        received = read_to_close(sock)
    assert received.startswith(b"HTTP/1.1 400"), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1
    assert b"\r\nconnection: close" in received.lower()


@pytest.mark.parametrize(
    "arrival",
    [
        "one send 120 KB",
        "one send 60 KB",
        "pipelined",
        "in 1 KiB pieces",
        "many small headers",
        "a long URL",
    ],
)
def test_a_head_over_the_limit_is_431_and_closed_however_it_arrives(
    server: FunctionServer, arrival: str
) -> None:
    big = head_of(60_000 if arrival == "one send 60 KB" else 120_000)
    if arrival == "many small headers":
        fields = "".join(f"X-{i}: {'v' * 40}\r\n" for i in range(1000))
        big = f"GET /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{fields}\r\n".encode()
    elif arrival == "a long URL":
        big = b"GET /__/health?" + b"q" * 60_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connect(server) as sock:
        if arrival == "pipelined":
            sock.sendall(b"GET /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + big)
        elif arrival == "in 1 KiB pieces":
            try:
                for at in range(0, len(big), 1024):
                    sock.sendall(big[at : at + 1024])
            except OSError:
                pass  # closed on us mid-head: what we want
        else:
            sock.sendall(big)
        received = read_to_close(sock)
    if arrival == "pipelined":
        first, _, received = received.partition(b"ok")
        assert first.startswith(b"HTTP/1.1 200"), first
    assert received.startswith(b"HTTP/1.1 431"), received[:200]
    assert b"\r\nconnection: close" in received.lower()
    assert b'"request_head_too_large"' in received


def test_a_head_exactly_at_the_limit_is_served_and_one_byte_more_is_not(
    server: FunctionServer,
) -> None:
    with connect(server) as sock:
        sock.sendall(head_of(LIMIT))
        served = read_until(sock, lambda r: r.endswith(b"ok"), timeout=5)
    with connect(server) as sock:
        sock.sendall(head_of(LIMIT + 1))
        refused = read_to_close(sock)
    assert served.startswith(b"HTTP/1.1 200"), served[:200]
    assert refused.startswith(b"HTTP/1.1 431"), refused[:200]


# -- item 11: the idle connection outlives a pooling proxy's ----------------------------


def test_a_pooled_connection_reused_after_the_agents_idle_time_is_still_served(
    server: FunctionServer,
) -> None:
    """A proxy that pools connections (node's agent in the Functions emulator, Google's
    front ends) sends the next request on an idle connection as late as its own idle
    limit. Were the server to close first, that request could meet the close: a reset,
    "socket hang up" (before: the worker kept gunicorn's 2 s, node's agent keeps 5 s)."""
    request = b"OPTIONS / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(request)
        assert read_until(sock, lambda r: b"\r\n\r\n" in r, timeout=5).startswith(b"HTTP/1.1 204")
        time.sleep(NODE_AGENT_IDLE + 0.5)
        try:
            sock.sendall(request)
            again = read_until(sock, lambda r: b"\r\n\r\n" in r, timeout=5)
        except (BrokenPipeError, ConnectionResetError) as exc:
            again = repr(exc).encode()
    assert again.startswith(b"HTTP/1.1 204"), again or b"empty reply: the server had closed"


def test_the_keep_alive_setting_reaches_the_worker(serve: Serve) -> None:
    # Without it the worker took gunicorn's keep-alive (2 s) through uvicorn-worker.
    with serve("execute_prompt_stream", env={"KEEP_ALIVE_SECONDS": "4"}) as short:
        with connect(short) as sock:
            sock.sendall(b"OPTIONS / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = read_until(sock, lambda r: b"\r\n\r\n" in r, timeout=5)
            assert answer.startswith(b"HTTP/1.1 204")
            idle = time.monotonic()
            assert closed_within(sock, 10)
            assert 3 < time.monotonic() - idle < 7


@pytest.mark.parametrize(("parser", "status"), [("h11", b"400"), ("httptools", b"200")])
def test_the_parser_setting_reaches_the_worker(serve: Serve, parser: str, status: bytes) -> None:
    # The one head the two parsers answer differently (docs/adr/1004): h11 takes a single
    # space between the method and the target, llhttp more.
    with serve("execute_prompt_stream", env={"HTTP_PARSER": parser}) as chosen:
        with connect(chosen) as sock:
            sock.sendall(b"GET  /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = read_until(sock, lambda r: b"\r\n\r\n" in r, timeout=5)
    assert answer.startswith(b"HTTP/1.1 " + status), answer
