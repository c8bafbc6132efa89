"""The server's limits on what a client sends, against the function served exactly as
production serves it (functions-framework, gunicorn, uvicorn's worker with our h11
protocol): no unauthenticated way to hold a connection forever or to fill the memory.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import (
    FunctionServer,
    Serve,
    add_prompt,
    executions,
    read_until,
    worker_pids,
)
from support.http import request_bytes

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
CHUNKED = {"Transfer-Encoding": "chunked"}


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[FunctionServer]:
    env = {
        "HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    }
    with serve("execute_prompt_stream", env=env) as server:
        yield server


def connect(server: FunctionServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``seconds`` pass), and when."""
    started = time.monotonic()
    sock.settimeout(seconds)
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except TimeoutError:
        pass
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started


def health_ok(server: FunctionServer) -> bool:
    with connect(server) as sock:
        sock.sendall(b"GET /__/health HTTP/1.1\r\nHost: x\r\n\r\n")
        return read_until(sock, lambda r: r.endswith(b"ok"), timeout=5).startswith(b"HTTP/1.1 200")


def test_a_request_head_that_never_ends_is_closed_after_the_head_timeout(
    server: FunctionServer,
) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /execute_prompt_stream HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert health_ok(server)  # the instance serves others meanwhile
        received, took = closed_within(sock, 10)
    assert received == b""
    assert HEAD_TIMEOUT * 0.8 <= took < HEAD_TIMEOUT + 3


def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(
    server: FunctionServer,
) -> None:
    with connect(server) as sock:
        received, took = closed_within(sock, 10)
    assert received == b"" and took < HEAD_TIMEOUT + 3


def test_a_request_line_over_the_head_limit_is_refused_at_once(server: FunctionServer) -> None:
    # h11 refuses a head still incomplete past MAX_REQUEST_HEAD_BYTES, at once; one that
    # arrives whole is measured when parsed (test_edge.py).
    [worker] = worker_pids(server)
    cpu = _cpu_s(worker)
    with connect(server) as sock:
        try:
            sock.sendall(b"GET /" + b"a" * (16 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass  # closed on us mid-line
        received, took = closed_within(sock, 10)
    assert received.startswith(b"HTTP/1.1 431"), received[:100]
    assert b"connection: close" in received.lower()
    assert took < 3
    print(f"\n16 MiB request line: 431 in {took:.2f} s, worker CPU {_cpu_s(worker) - cpu:.2f} s")


def test_a_declared_length_over_the_limit_is_413_before_any_body_is_read(
    db: Any, server: FunctionServer
) -> None:
    add_prompt(db)
    with connect(server) as sock:
        sock.sendall(
            request_bytes(headers={"Content-Length": str(10**12)}) + b'{"prompt_id": "p1"}'
        )
        received, took = closed_within(sock, 10)
    status, _, rest = received.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"connection: close" in rest.lower()
    assert b'"payload_too_large"' in rest
    assert took < 3
    assert executions(db) == []


def test_a_chunked_body_over_the_limit_is_413_and_the_connection_closed(
    db: Any, server: FunctionServer
) -> None:
    add_prompt(db)
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    with connect(server) as sock:
        sock.sendall(request_bytes(headers=CHUNKED))
        sent = 0
        try:
            for _ in range(64):  # 4 MiB at most, far past the 256 KiB cap
                sock.sendall(chunk)
                sent += len(piece)
        except OSError:
            pass  # the server closed while we were still sending: what we want
        received, _ = closed_within(sock, 10)
    assert received.startswith(b"HTTP/1.1 413"), received[:100]
    assert sent < 64 * len(piece) or b"connection: close" in received.lower()
    assert executions(db) == []


def test_a_body_that_never_finishes_is_408_after_the_body_timeout(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    with connect(server) as sock:
        sock.sendall(request_bytes(headers={"Content-Length": "100"}) + b"{")
        received, took = closed_within(sock, 10)
    assert received.startswith(b"HTTP/1.1 408"), received[:100]
    assert b'"request_timeout"' in received
    assert BODY_TIMEOUT * 0.8 <= took < BODY_TIMEOUT + 3
    assert executions(db) == []
    assert fake_upstream.stats()["requests"] == 0


def _rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def _cpu_s(pid: int) -> float:
    """The process's user + system CPU time so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_thirty_connections_sending_32_mib_bodies_leave_the_worker_small(
    serve: Serve, db: Any
) -> None:
    """Half of them unauthenticated, half signed in, all chunked without a length: each
    is refused (401 before the body, 413 after at most the body cap) and closed, and the
    worker's peak RSS stays far below the function's memory."""
    add_prompt(db)
    with serve() as fresh:
        [worker] = worker_pids(fresh)
        assert health_ok(fresh)
        before, cpu = _rss_mb(worker), _cpu_s(worker)
        piece = b"y" * (1 << 20)
        statuses: list[bytes] = []

        def attack(i: int) -> None:
            with connect(fresh) as sock:
                sock.sendall(request_bytes(uid="alice" if i % 2 else None, headers=CHUNKED))
                try:
                    for _ in range(32):
                        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                except OSError:
                    pass
                received, _ = closed_within(sock, 20)
                statuses.append(received[:12])

        threads = [threading.Thread(target=attack, args=(i,)) for i in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        peak, cpu = _rss_mb(worker), _cpu_s(worker) - cpu
        assert health_ok(fresh)
    # The figure for the README's failure table (pytest -s shows it).
    print(f"\n30 x 32 MiB: worker peak RSS {before:.0f} -> {peak:.0f} MB, CPU {cpu:.2f} s")
    assert sorted(set(statuses)) == [b"HTTP/1.1 401", b"HTTP/1.1 413"], statuses
    assert peak < 300, f"worker peak RSS {peak:.0f} MB"
