"""One round trip before the upstream (ADR 1000): the upstream call starts as the commit
that opens the record goes out. A commit that loses its race and is refused on the read
again stops the upstream and answers only today's refusal; a client gone during the
commit stops the upstream at once; a request the read refuses never reaches the
upstream; and the limits hold exactly when 60 requests of one user race on two instances.

Firestore sits behind a proxy that can hold the function's commits (and only them), so
that a test writes between an opening's read and its commit.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import (
    Serve,
    TcpProxy,
    add_prompt,
    body,
    executions,
    limits,
    wait_until,
)
from support.http import Reply, post, request_bytes

# The upstream answers its headers only after this long: the race is lost while it waits.
SLOW_START = "[[fake first_byte_delay=20 chunks=3]]"
# Timeouts far beyond the tests' waits: only what a test does may stop the upstream call.
COMMIT = b":commit "
PATIENT = {"UPSTREAM_FIRST_BYTE_TIMEOUT": "60", "FIRESTORE_TIMEOUT_SECONDS": "60"}
LONG = "[[fake chunks=200 delay=0.05]]"  # ten seconds of content unless cut short


class Posted(threading.Thread):
    """``post`` of ``body`` as Alice in a thread of its own; ``reply`` once done."""

    def __init__(self, server: Any, payload: bytes) -> None:
        super().__init__(daemon=True)
        self.server, self.payload = server, payload
        self.reply: Reply | None = None
        self.start()

    def run(self) -> None:  # threading.Thread's
        self.reply = post(self.server, self.payload)


def upstream_at_work_beside_the_commit(proxy: TcpProxy, fake: FakeOpenRouterThread) -> None:
    """Wait until the one request's upstream call has started and its commit is held."""
    assert wait_until(lambda: fake.stats()["requests"] == 1, timeout=15)
    assert wait_until(lambda: proxy.held_requests == 1)


def now_ms() -> int:
    return int(time.time() * 1000)


def another_instances_lease(db: Any, uid: str = "alice") -> None:
    """What an opening on another instance leaves: a live lease and its reservation."""
    db.collection("user_limits").document(uid).set(
        {
            "uid": uid,
            "day": dt.datetime.now(dt.UTC).date().isoformat(),
            "tokens_today": 0,
            "leases": {"elsewhere": now_ms()},
            "reserved": {"elsewhere": 10},
        }
    )


def refused_as_today(got: Reply, fresh: Reply) -> None:
    """``got`` (a race lost) is byte for byte the refusal of a request the read refused."""
    assert got.status == fresh.status == 429, got.raw
    assert got.error()["code"] == "concurrency_limit"
    assert got.headers["Retry-After"] == fresh.headers["Retry-After"]
    assert got.raw == fresh.raw
    assert got.headers.get("X-Execution-Id") is None


def test_a_lost_race_refused_on_the_read_again_stops_the_upstream_and_sends_only_the_refusal(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    add_prompt(db, content=f"{{{{topic}}}} {SLOW_START}", public=True)
    env = {**PATIENT, "MAX_CONCURRENT_STREAMS": "1"}
    with serve(env=env, firestore_host=proxy.host) as server:
        proxy.hold(only=COMMIT)
        call = Posted(server, body(variables={"topic": "x"}))
        # The read showed room: the upstream works while the commit is held.
        upstream_at_work_beside_the_commit(proxy, fake_upstream)
        # Another instance takes the last lease between the read and the commit.
        another_instances_lease(db)
        proxy.release()
        call.join(30)
        assert not call.is_alive()
        # The upstream was stopped before anything reached the client.
        assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1, timeout=5)
        fresh = post(server, body(variables={"topic": "x"}))
    assert call.reply is not None
    refused_as_today(call.reply, fresh)
    # The request refused on its read never reached the upstream.
    assert fake_upstream.stats()["requests"] == 1
    # Nothing left behind: no record, no lease, no reservation.
    assert executions(db) == []
    left = limits(db)
    assert list(left["leases"]) == ["elsewhere"] and left["reserved"] == {"elsewhere": 10}


def test_a_client_gone_during_the_commit_stops_the_upstream_and_the_record_ends_cancelled(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    add_prompt(db, content=f"{{{{topic}}}} {SLOW_START}", public=True)
    with serve(env=PATIENT, firestore_host=proxy.host) as server:
        proxy.hold(only=COMMIT)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(request_bytes(body(variables={"topic": "x"}), headers={"Connection": "close"}))
        upstream_at_work_beside_the_commit(proxy, fake_upstream)
        sock.close()
        # Stopped at once, while the commit is still held.
        assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1, timeout=5)
        assert executions(db) == []
        proxy.release()
        # The commit was not cut in two: its record is finished, its lease released.
        assert wait_until(lambda: [r["status"] for r in executions(db)] == ["cancelled"])
        assert wait_until(lambda: limits(db)["leases"] == {} and limits(db)["reserved"] == {})


def test_a_commit_that_fails_otherwise_stops_the_upstream_and_is_503(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    add_prompt(db, content=f"{{{{topic}}}} {SLOW_START}", public=True)
    env = {**PATIENT, "FIRESTORE_TIMEOUT_SECONDS": "1"}
    with serve(env=env, firestore_host=proxy.host) as server:
        proxy.hold(only=COMMIT)
        call = Posted(server, body(variables={"topic": "x"}))
        upstream_at_work_beside_the_commit(proxy, fake_upstream)
        # Firestore out of reach: the commit never arrives and times out.
        call.join(30)
        assert call.reply is not None
        assert call.reply.status == 503, call.reply.raw
        assert call.reply.error()["code"] == "unavailable"
        assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1)


@pytest.mark.parametrize("limit", ["concurrency_limit", "budget_exceeded"])
def test_a_request_the_read_refuses_never_reaches_the_upstream(
    db: Any, fake_upstream: FakeOpenRouterThread, stream_server: Any, limit: str
) -> None:
    add_prompt(db, content=f"{{{{topic}}}} {SLOW_START}", public=True)
    day = dt.datetime.now(dt.UTC).date().isoformat()
    if limit == "concurrency_limit":
        held = {f"elsewhere{i}": now_ms() for i in range(5)}  # MAX_CONCURRENT_STREAMS
        doc = {"uid": "alice", "day": day, "tokens_today": 0, "leases": held}
    else:
        doc = {"uid": "alice", "day": day, "tokens_today": 10**9, "leases": {}}
    db.collection("user_limits").document("alice").set(doc)
    got = post(stream_server, body(variables={"topic": "x"}))
    assert got.status == 429 and got.error()["code"] == limit
    assert fake_upstream.stats()["requests"] == 0
    assert executions(db) == []


CAP = 5
BUDGET = 100_000
RACERS = 60
# The winners' upstream answers its headers only after this: every loser's call is stopped
# while it waits, and the winners hold their leases until every racer has its answer.
RACE = "[[fake first_byte_delay=2 chunks=100 delay=0.05]]"


@pytest.fixture(scope="module")
def two_instances(serve: Serve) -> Iterator[tuple[Any, Any]]:
    env = {
        "MAX_CONCURRENT_STREAMS": str(CAP),
        "DAILY_TOKEN_BUDGET": str(BUDGET),
        # Neither the rate nor the per-user queue may refuse a racer: only the limits.
        "OPEN_RATE_PER_MINUTE": "0",
        "OPEN_QUEUE_PER_USER": str(RACERS),
        **PATIENT,
    }
    with serve(env=env) as a, serve(env=env) as b:
        yield a, b


def race(servers: tuple[Any, Any], payload: bytes) -> tuple[list[bytes], list[socket.socket]]:
    """``RACERS`` requests of Alice sent at once, alternately to each instance; each one's
    answer as far as its head (and, for a refusal, its body), and the open sockets."""
    start = threading.Barrier(RACERS)
    heads: list[bytes] = [b""] * RACERS
    socks: list[socket.socket] = []
    lock = threading.Lock()

    def fire(i: int) -> None:
        server = servers[i % 2]
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        with lock:
            socks.append(sock)
        raw = request_bytes(payload, headers={"Connection": "close"})
        start.wait(30)
        sock.sendall(raw)
        got = b""
        while b"\r\n\r\n" not in got or (b" 429 " in got[:13] and not got.endswith(b"}")):
            data = sock.recv(65536)
            if not data:
                break
            got += data
        heads[i] = got

    threads = [threading.Thread(target=fire, args=(i,), daemon=True) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return heads, socks


@pytest.mark.parametrize("limit", ["concurrency_limit", "budget_exceeded"])
def test_the_limits_hold_exactly_with_60_racing_on_two_instances(
    db: Any, fake_upstream: FakeOpenRouterThread, two_instances: tuple[Any, Any], limit: str
) -> None:
    add_prompt(db, content=f"{{{{topic}}}} {RACE}", public=True)
    payload = body(variables={"topic": "x"})
    winners = CAP
    if limit == "budget_exceeded":
        # What one opening reserves, from a probe of another user (hung up at once).
        probe = socket.create_connection(("127.0.0.1", two_instances[0].port), timeout=10)
        probe.sendall(request_bytes(payload, uid="probe", headers={"Connection": "close"}))
        assert wait_until(lambda: len(executions(db)) == 1, timeout=15)
        probe.close()
        reserve = executions(db)[0]["tokens_reserved"]
        assert wait_until(lambda: executions(db)[0]["status"] != "streaming")
        assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1)
        # Room for exactly three reservations under the rule (ADR 0308): the budget refuses
        # once the tokens used and reserved reach it.
        winners = 3
        used = BUDGET - (winners - 1) * reserve - 1
        day = dt.datetime.now(dt.UTC).date().isoformat()
        db.collection("user_limits").document("alice").set(
            {"uid": "alice", "day": day, "tokens_today": used, "leases": {}}
        )
        fake_upstream.reset()
    heads, socks = race(two_instances, payload)
    try:
        statuses = sorted(int(h.split()[1]) for h in heads)
        assert statuses == [200] * winners + [429] * (RACERS - winners), statuses
        for head in heads:
            if b" 429 " in head[:13]:
                assert f'"code":"{limit}"'.encode() in head.replace(b" ", b""), head
        left = limits(db)
        assert len(left["leases"]) == winners
        assert set(left["reserved"]) == set(left["leases"])
        if limit == "budget_exceeded":
            reserved = sum(left["reserved"].values())
            assert reserved == winners * reserve
            # Never over-reserved: over the budget by at most the last one's reservation.
            assert left["tokens_today"] + reserved - reserve < BUDGET
        # Every upstream call a lost race started was stopped before its first byte.
        stats = fake_upstream.stats()
        assert stats["requests"] >= winners
        assert wait_until(
            lambda: fake_upstream.stats()["early_closes"] == stats["requests"] - winners
        )
        assert fake_upstream.stats()["streams_started"] == winners
    finally:
        for sock in socks:
            sock.close()
    assert wait_until(lambda: limits(db)["leases"] == {}, timeout=20)
    opened = [r for r in executions(db) if r["owner_uid"] == "alice"]
    assert len(opened) == winners
