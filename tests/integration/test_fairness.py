"""Per-user fairness, against the function as deployed: one user's flood of openings is
held to that user's rate (GCRA: a bucket in the instance, a time in the limits document
that every instance shares) and queues behind that user's own turn, so another user
starts at once; the rate holds across two processes; a user's queue is bounded.

Every server is on 127.0.0.1; every flood is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.parse
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import (
    ROOT,
    FunctionServer,
    Serve,
    TcpProxy,
    add_prompt,
    auth,
    body,
    executions,
    limits,
    wait_until,
)
from support.http import Call, Reply, post, request, request_bytes, stream

PROMPT = "Tell me about {{topic}}. [[fake chunks=3 delay=0.01]]"
FLOOD = 600
BURST, PER_MINUTE = 20, 60
# The rates of the servers that test them (TEST_ENV sets them out of reach elsewhere).
RATED = {"OPEN_RATE_BURST": str(BURST), "OPEN_RATE_PER_MINUTE": str(PER_MINUTE)}


@pytest.fixture(autouse=True)
def prompt(db: Any) -> None:
    add_prompt(db, content=PROMPT, public=True)


async def flood_and_time_another(
    server: FunctionServer,
) -> tuple[list[int], float, Reply, float]:
    """Alice opens and closes FLOOD requests at once (support/flood.py, in a process of
    its own); while they are in, Bob runs one. Alice's statuses, how long her flood
    took, Bob's answer and his time to its ``start`` event."""
    raw = request_bytes(body(variables={"topic": "x"}), headers={"Connection": "close"})
    alice = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "support" / "flood.py"),
        str(server.port),
        str(FLOOD),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert alice.stdin is not None and alice.stdout is not None
        alice.stdin.write(raw)
        alice.stdin.close()
        started = time.monotonic()
        assert await asyncio.wait_for(alice.stdout.readline(), 60) == b"sent\n"
        await asyncio.sleep(0.2)  # the flood is in: its requests wait, or are refused
        sent = time.monotonic()
        bob = await stream(server.url, body(variables={"topic": "y"}), auth("bob"), timeout=60)
        bob_started = time_to_start(bob, sent)
        statuses = json.loads(await asyncio.wait_for(alice.stdout.readline(), 120))
        took = time.monotonic() - started
        assert await asyncio.wait_for(alice.wait(), 10) == 0
    finally:
        if alice.returncode is None:
            alice.kill()
            await alice.wait()
    assert len(statuses) == FLOOD
    return statuses, took, bob, bob_started


def time_to_start(reply: Reply, sent: float) -> float:
    assert reply.status == 200, reply.raw[:300]
    return reply.arrivals[reply.kinds.index("start")] - sent


def assert_rate_limited(got: Reply | Call, max_retry_after: int = 60) -> None:
    assert got.status == 429, (got.status, got.headers)
    error = got.error() if isinstance(got, Reply) else json.loads(got.text)["error"]
    assert error["code"] == "rate_limited"
    assert 1 <= int(got.headers["Retry-After"]) <= max_retry_after


async def test_a_flood_of_one_user_neither_delays_another_nor_reaches_the_upstream(
    db: Any, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    env = {**RATED, "MAX_CONCURRENT_STREAMS": "1000"}
    with serve(env=env) as server:
        statuses, took, bob, bob_started = await flood_and_time_another(server)
        log = server.log_text()
    alice_upstream = fake_upstream.stats()["requests"] - 1
    print(f"flood: Bob started in {bob_started:.2f} s; {alice_upstream} of Alice's {FLOOD}")
    print(f"reached the upstream; her answers took {took:.2f} s")
    # Before: 6.5 s behind the flood's turns (0.015 s without it).
    assert bob_started < 1.0, bob_started
    assert bob.text() and bob.kinds[-1] == "message"
    allowance = BURST + PER_MINUTE * took / 60
    # Before: every one of the 600 reached the upstream.
    assert alice_upstream <= allowance, (alice_upstream, allowance, took)
    assert statuses.count(200) == alice_upstream
    assert statuses.count(429) >= FLOOD - allowance - 1
    assert set(statuses) <= {200, 429}
    assert "Traceback" not in log
    # The refused wrote nothing; the rate's time is in the limits document.
    assert len([r for r in executions(db) if r["owner_uid"] == "alice"]) == alice_upstream
    assert wait_until(lambda: limits(db)["leases"] == {}, timeout=30)
    assert limits(db)["open_tat"] > 0


async def test_one_users_backlog_holds_one_turn_and_not_the_others(
    db: Any, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    # No rate limit and room for the whole backlog: the turns alone must be fair.
    env = {"MAX_CONCURRENT_STREAMS": "1000", "OPEN_QUEUE_PER_USER": "1000"}
    with serve(env=env) as server:
        statuses, _, _, bob_started = await flood_and_time_another(server)
    print(f"backlog: Bob started in {bob_started:.2f} s")
    assert bob_started < 1.0, bob_started  # before: seconds, behind Alice's backlog
    assert statuses.count(200) + statuses.count(0) >= FLOOD - 5, sorted(set(statuses))


def test_the_opening_rate_holds_across_two_processes(
    db: Any, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    # One request a minute past a burst of 4: only the document's time can hold it
    # across the two, since each process's own bucket would let 4 through.
    env = {"OPEN_RATE_BURST": "4", "OPEN_RATE_PER_MINUTE": "1"}
    payload = body(variables={"topic": "x"})
    with serve(env=env) as a, serve(env=env) as b:
        started = time.monotonic()
        replies = [post(server, payload) for server in (a, b) * 5]
        took = time.monotonic() - started
        # Another user has a rate of their own.
        assert post(b, payload, auth("bob")).status == 200
    passed = [got.status for got in replies].count(200)
    assert passed <= 4 + took / 60, [got.status for got in replies]
    assert passed >= 4
    for got in replies[passed:]:
        assert_rate_limited(got)
    assert fake_upstream.stats()["requests"] == passed + 1
    assert sorted(r["owner_uid"] for r in executions(db)) == ["alice"] * passed + ["bob"]


def test_the_upload_rate_holds_across_two_processes(
    db: Any, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    # A patient first byte: a retried embedding on a loaded machine would count twice.
    env = {
        "UPLOAD_RATE_BURST": "2",
        "UPLOAD_RATE_PER_MINUTE": "1",
        "UPSTREAM_FIRST_BYTE_TIMEOUT": "30",
    }

    def upload(server: FunctionServer, n: int) -> Reply:
        query = urllib.parse.urlencode({"document_id": f"doc{n}", "filename": "a.md"})
        headers = {**auth(), "Content-Type": "text/markdown"}
        return request(server, "POST", b"# Title\n\nSome text.", headers, path="/?" + query)

    with serve("ingest_document", env=env) as a, serve("ingest_document", env=env) as b:
        replies = [upload(server, n) for n, server in enumerate((a, b) * 3)]
    assert [got.status for got in replies] == [200, 200, 429, 429, 429, 429], [
        got.raw[:200] for got in replies
    ]
    for got in replies[2:]:
        assert_rate_limited(got)
        assert got.headers["Connection"] == "close"  # refused before its body was read
    assert fake_upstream.stats()["embedding_requests"] == 2
    assert limits(db)["upload_tat"] > 0


def test_past_a_users_queue_bound_a_request_is_refused_at_once(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    env = {"OPEN_QUEUE_PER_USER": "2", "MAX_CONCURRENT_STREAMS": "10"}
    with serve(env=env, firestore_host=proxy.host) as server:
        proxy.hold()
        first = Call(server, "alice")  # its turn held in its Firestore read
        assert wait_until(lambda: proxy.held_requests >= 1, timeout=15)
        queued = [Call(server, "alice") for _ in range(2)]
        time.sleep(0.5)
        sent = time.monotonic()
        over = Call(server, "alice")
        over.join(5)  # before: it waited with the others, for as long as Firestore did
        refused_in = time.monotonic() - sent
        assert over.status, "not refused at once"
        assert all(call.is_alive() for call in [first, *queued])
        proxy.release()
        for call in [first, *queued]:
            call.join(30)
    assert refused_in < 2.0
    assert_rate_limited(over, max_retry_after=1)
    assert "waiting" in json.loads(over.text)["error"]["message"]
    assert [call.status for call in [first, *queued]] == [200] * 3
    assert fake_upstream.stats()["requests"] == 3
    assert [r["status"] for r in executions(db)] == ["completed"] * 3


def test_past_the_burst_a_request_is_refused_before_any_firestore_call(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    # Firestore stalls: only the instance's own bucket can answer the fourth request.
    env = {"OPEN_RATE_BURST": "3", "OPEN_RATE_PER_MINUTE": "1", "OPEN_QUEUE_PER_USER": "100"}
    with serve(env=env, firestore_host=proxy.host) as server:
        proxy.hold()
        calls = [Call(server, "alice") for _ in range(3)]
        assert wait_until(lambda: proxy.held_requests >= 1, timeout=15)
        time.sleep(0.5)
        over = Call(server, "alice")
        over.join(5)  # without the front bucket: queued behind the stalled three
        assert over.status, "not refused at once"
        assert proxy.held_requests == 1  # one user, one turn: one read in Firestore
        proxy.release()
        for call in calls:
            call.join(30)
    assert_rate_limited(over)
    assert over.headers["Connection"] == "close"  # refused before its body was read
    assert [call.status for call in calls] == [200] * 3
    assert fake_upstream.stats()["requests"] == 3
