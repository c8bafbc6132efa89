"""Turns for opening an execution: at most ``OPEN_CONCURRENCY`` requests per instance run
their checks and Firestore calls at once; the rest wait, up to ``OPEN_QUEUE_TIMEOUT_SECONDS``.

Firestore is the emulator behind a TCP proxy that can hold what the function sends: the
requests holding a turn stay in the middle of their Firestore read for as long as the test
wants, and the proxy counts them.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import (
    FunctionServer,
    Serve,
    TcpProxy,
    add_prompt,
    body,
    executions,
    read_until,
    wait_until,
)
from support.http import Call, request_bytes

PROMPT = "Tell me about {{topic}}. [[fake chunks=3 delay=0.01]]"


@pytest.fixture(autouse=True)
def prompt(db: Any) -> None:
    add_prompt(db, content=PROMPT, public=True)


def raw_post(server: FunctionServer, uid: str) -> tuple[socket.socket, bytes]:
    """A connection that has sent a request's headers, and the body still to send."""
    conn = socket.create_connection(("127.0.0.1", server.port))
    payload = body(variables={"topic": "x"})
    conn.sendall(request_bytes(uid=uid, headers={"Content-Length": str(len(payload))}))
    return conn, payload


def held_at_once(
    server: FunctionServer, proxy: TcpProxy, *, users: int, held: int, timeout: float
) -> list[Call]:
    """One request per user with Firestore held: exactly ``held`` of them reach it (their
    reads wait at the proxy), the rest wait for a turn; then Firestore is let go and every
    request is waited for."""
    proxy.hold()
    calls = [Call(server, f"user{i}") for i in range(users)]
    assert wait_until(lambda: proxy.held_requests >= held, timeout=timeout)
    time.sleep(1.0)  # room for more to arrive, if the bound did not hold
    assert proxy.held_requests == held
    assert all(call.is_alive() for call in calls)
    proxy.release()
    for call in calls:
        call.join(30)
    return calls


def test_at_most_open_concurrency_requests_open_at_once(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    with serve(env=dict(OPEN_CONCURRENCY="2"), firestore_host=proxy.host) as server:
        calls = held_at_once(server, proxy, users=6, held=2, timeout=15)
    assert [call.status for call in calls] == [200] * 6
    assert all(call.text.endswith("data: [DONE]\n\n") for call in calls)
    assert sorted(r["status"] for r in executions(db)) == ["completed"] * 6


def test_with_a_lag_target_a_quick_loop_opens_up_to_the_ceiling(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    # Nothing else runs in the instance, so its loop's lag stays far under a second: the
    # bound grows past OPEN_CONCURRENCY, one turn per grant, to OPEN_CONCURRENCY_MAX.
    env = dict(OPEN_CONCURRENCY="2", OPEN_LAG_TARGET_MS="1000", OPEN_CONCURRENCY_MAX="4")
    with serve(env=env, firestore_host=proxy.host) as server:
        # Well inside FIRESTORE_TIMEOUT_SECONDS (10 s), after which held reads are retried
        # and counted again.
        calls = held_at_once(server, proxy, users=7, held=4, timeout=5)
    assert [call.status for call in calls] == [200] * 7
    assert sorted(r["status"] for r in executions(db)) == ["completed"] * 7


def test_a_request_that_waits_too_long_gets_503_and_nothing_is_written(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    with serve(
        env=dict(OPEN_CONCURRENCY="1", OPEN_QUEUE_TIMEOUT_SECONDS="1"), firestore_host=proxy.host
    ) as server:
        proxy.hold()
        first = Call(server, "first")
        assert wait_until(lambda: proxy.held_requests >= 1, timeout=15)  # its Firestore read
        second = Call(server, "second")
        second.join(30)
        assert first.is_alive()  # the turn is still taken: the second gave up waiting
        proxy.release()
        first.join(30)
        log = server.log_text()
    assert second.status == 503
    assert json.loads(second.text)["error"]["code"] == "unavailable"
    assert "busy" in json.loads(second.text)["error"]["message"]
    assert second.headers["Retry-After"] == "5"
    assert first.status == 200 and first.text.endswith("data: [DONE]\n\n")
    assert [(r["owner_uid"], r["status"]) for r in executions(db)] == [("first", "completed")]
    assert fake_upstream.stats()["requests"] == 1
    assert "open queue timeout" in log


def test_a_client_that_leaves_while_waiting_costs_nothing(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    with serve(env=dict(OPEN_CONCURRENCY="1"), firestore_host=proxy.host) as server:
        proxy.hold()
        first = Call(server, "first")
        assert wait_until(lambda: proxy.held_requests >= 1, timeout=15)  # its Firestore read
        # The second request arrives, waits for the turn, and its client leaves.
        leaving, payload = raw_post(server, "leaver")
        leaving.sendall(payload)
        time.sleep(0.5)
        leaving.close()
        proxy.release()
        first.join(30)
        # The waiting request notices its client left.
        assert wait_until(
            lambda: "client left while waiting to start" in server.log_text(), timeout=15
        )
    assert first.status == 200
    assert [(r["owner_uid"], r["status"]) for r in executions(db)] == [("first", "completed")]
    assert fake_upstream.stats()["requests"] == 1


def test_a_client_sending_its_body_slowly_holds_no_turn(
    db: Any, proxy: TcpProxy, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    with serve(env=dict(OPEN_CONCURRENCY="1"), firestore_host=proxy.host) as server:
        # Headers and half the body, then nothing: the request is still being read.
        slow, payload = raw_post(server, "slow")
        slow.sendall(payload[: len(payload) // 2])
        try:
            time.sleep(0.5)
            other = Call(server, "other")
            other.join(30)
            assert other.status == 200 and other.text.endswith("data: [DONE]\n\n")
            # The slow request gets its turn once its body is in, and is served in full.
            slow.sendall(payload[len(payload) // 2 :])
            slow.settimeout(30)
            received = read_until(slow, lambda got: got.endswith(b"0\r\n\r\n"), timeout=30)
        finally:
            slow.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert b"data: [DONE]" in received
    assert sorted(r["owner_uid"] for r in executions(db)) == ["other", "slow"]
