"""Per-user limits, enforced by conditional Firestore commits: a concurrency cap and a daily token
budget. Over a limit the caller gets 429 with Retry-After before any upstream call; a
disconnect is still debited by an estimate; the limits hold across two function server
processes sharing one emulator.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import FunctionServer, Serve, add_prompt, auth, body, executions, limits, wait_until
from support.http import Reply, post, request_bytes

MAX_STREAMS = 2
# Large, so that the streams' reservations (max_tokens and the prompt's estimate each)
# leave the concurrency cap to refuse; the budget tests start LEFT tokens short of it.
BUDGET = 100_000
LEFT = 60
LONG = "[[fake chunks=200 delay=0.05]]"  # ten seconds of content unless cut short


@pytest.fixture(scope="module")
def servers(serve: Serve) -> Iterator[tuple[FunctionServer, FunctionServer]]:
    env = {"MAX_CONCURRENT_STREAMS": str(MAX_STREAMS), "DAILY_TOKEN_BUDGET": str(BUDGET)}
    with serve(env=env) as a, serve(env=env) as b:
        yield a, b


class OpenStream:
    """A raw-socket stream that has received its first content event; close() hangs up."""

    def __init__(self, server: FunctionServer, payload: bytes, uid: str = "alice") -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock.sendall(request_bytes(payload, uid=uid, headers={"Connection": "close"}))
        self.received = b""
        deadline = time.monotonic() + 10
        while b"\nid: 1\n" not in self.received:
            assert time.monotonic() < deadline, self.received
            data = self.sock.recv(65536)
            assert data, self.received
            self.received += data
        assert self.received.startswith(b"HTTP/1.1 200"), self.received[:300]

    def close(self) -> None:
        self.sock.close()


def near_the_budget(db: Any, uid: str = "alice") -> None:
    day = dt.datetime.now(dt.UTC).date().isoformat()
    db.collection("user_limits").document(uid).set(
        {"uid": uid, "day": day, "tokens_today": BUDGET - LEFT, "leases": {}}
    )


def assert_refused(got: Reply, code: str, max_retry_after: int = 86_401) -> None:
    assert got.status == 429, got.raw
    assert got.error()["code"] == code
    assert 1 <= int(got.headers["Retry-After"]) <= max_retry_after


def test_concurrency_cap_is_429_before_any_upstream_call(
    servers: tuple[FunctionServer, FunctionServer], db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    a, _ = servers
    add_prompt(db, content=f"{{{{topic}}}} {LONG}", public=True)
    payload = body(variables={"topic": "x"})
    streams = [OpenStream(a, payload) for _ in range(MAX_STREAMS)]
    try:
        assert len(limits(db)["leases"]) == MAX_STREAMS
        assert_refused(post(a, payload), "concurrency_limit", max_retry_after=60)
        assert fake_upstream.stats()["requests"] == MAX_STREAMS
        assert len(executions(db)) == MAX_STREAMS
        # Another user is not affected.
        other = OpenStream(a, payload, uid="bob")
        other.close()
        # Hanging up frees the slot.
        streams.pop().close()
        assert wait_until(lambda: len(limits(db)["leases"]) == MAX_STREAMS - 1)
        streams.append(OpenStream(a, payload))
    finally:
        for stream in streams:
            stream.close()
    assert wait_until(lambda: limits(db)["leases"] == {} and limits(db, "bob")["leases"] == {})
    records = executions(db)
    assert len(records) == MAX_STREAMS + 2
    assert {r["status"] for r in records} == {"cancelled"}


def test_concurrency_cap_holds_across_two_processes(
    servers: tuple[FunctionServer, FunctionServer], db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    a, b = servers
    add_prompt(db, content=f"{{{{topic}}}} {LONG}")
    payload = body(variables={"topic": "x"})
    streams = [OpenStream(a, payload), OpenStream(b, payload)]
    try:
        assert_refused(post(a, payload), "concurrency_limit", max_retry_after=60)
        assert_refused(post(b, payload), "concurrency_limit", max_retry_after=60)
        assert fake_upstream.stats()["requests"] == 2
    finally:
        for stream in streams:
            stream.close()
    assert wait_until(lambda: limits(db)["leases"] == {})


def test_concurrent_requests_on_two_processes_never_exceed_the_cap(
    servers: tuple[FunctionServer, FunctionServer], db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    # Six requests race on both processes at once; the conditional commit lets exactly two in.
    import threading

    a, b = servers
    add_prompt(db, content=f"{{{{topic}}}} {LONG}")
    payload = body(variables={"topic": "x"})
    socks: list[socket.socket] = []
    lock = threading.Lock()

    def fire(server: FunctionServer) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(request_bytes(payload, headers={"Connection": "close"}))
        with lock:
            socks.append(sock)

    threads = [threading.Thread(target=fire, args=(s,)) for s in (a, b) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    try:
        statuses = []
        for sock in socks:
            head = b""
            deadline = time.monotonic() + 30
            while b"\r\n" not in head and time.monotonic() < deadline:
                head += sock.recv(1024)
            statuses.append(int(head.split()[1]))
        assert sorted(statuses) == [200, 200, 429, 429, 429, 429]
        # A race lost after the read admitted it may have started its upstream call
        # (ADR 1000): stopped before anything was streamed.
        stats = fake_upstream.stats()
        assert stats["requests"] >= 2
        assert wait_until(lambda: fake_upstream.stats()["early_closes"] == stats["requests"] - 2)
    finally:
        for sock in socks:
            sock.close()
    assert wait_until(lambda: limits(db)["leases"] == {})
    assert len(executions(db)) == 2


def test_daily_budget_is_debited_from_reported_usage_and_then_refused(
    servers: tuple[FunctionServer, FunctionServer], db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    a, b = servers
    add_prompt(db, content="Tell me about {{topic}}. [[fake chunks=70 delay=0]]", public=True)
    near_the_budget(db)
    payload = body(variables={"topic": "x"})
    got = post(a, payload)
    assert got.status == 200 and got.raw.endswith(b"data: [DONE]\n\n")
    [record] = executions(db)
    usage_total = record["usage"]["total_tokens"]
    assert usage_total > LEFT
    assert record["tokens_debited"] == usage_total
    assert limits(db)["tokens_today"] == BUDGET - LEFT + usage_total
    for server in (a, b):  # the budget is shared by every instance
        assert_refused(post(server, payload), "budget_exceeded")
    assert fake_upstream.stats()["requests"] == 1
    assert len(executions(db)) == 1
    # Others still have their budget.
    assert post(a, payload, auth("bob")).status == 200


def test_a_disconnect_is_debited_by_an_estimate(
    servers: tuple[FunctionServer, FunctionServer], db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    a, b = servers
    # About 300 characters of prompt: an estimate of at least 75 tokens, over what is left.
    add_prompt(db, content="{{topic}} " + "lorem ipsum " * 25 + LONG)
    near_the_budget(db)
    payload = body(variables={"topic": "x"})
    stream = OpenStream(a, payload)
    stream.close()
    assert wait_until(lambda: executions(db)[0]["status"] != "streaming")
    [record] = executions(db)
    assert record["status"] == "cancelled"
    assert record["usage"] is None  # the upstream never reported it
    assert record["tokens_debited"] >= 300 // 4
    assert limits(db)["tokens_today"] == BUDGET - LEFT + record["tokens_debited"]
    assert limits(db)["leases"] == {}
    assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1)
    assert_refused(post(b, payload), "budget_exceeded")
    assert fake_upstream.stats()["requests"] == 1
