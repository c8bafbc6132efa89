"""A comparison: N ordinary streamed executions, one per model, sharing a comparison_id.
Each takes its own lease and reservation and is debited on its own; the per-user
concurrency limit refuses the ones past it; one column's failure or cancellation ends
that column only."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from promptstream import SSEDecoder
from support import (
    FunctionServer,
    Serve,
    add_prompt,
    auth,
    body,
    executions,
    read_until,
    wait_until,
)

MODELS = ["demo/local-model", "demo/fast-model", "demo/careful-model", "demo/backup-model"]
ENV = {"ALLOWED_MODELS": ",".join(MODELS), "DEFAULT_MODEL": MODELS[0]}
COMPARISON = "cmp-0001"


@pytest.fixture(scope="module")
def compare_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("execute_prompt_stream", env=ENV) as server:
        yield server


@pytest.fixture(scope="module")
def narrow_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("execute_prompt_stream", env={**ENV, "MAX_CONCURRENT_STREAMS": "3"}) as server:
        yield server


def post(server: FunctionServer, model: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        payload = body(variables={"topic": "otters"}, model=model, comparison_id=COMPARISON)
        conn.request("POST", "/", body=payload, headers=auth())
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def compare(server: FunctionServer, models: list[str]) -> dict[str, tuple[int, bytes]]:
    """Every model's request at once, as the web app sends them; each one's answer."""
    replies: dict[str, tuple[int, bytes]] = {}

    def one(model: str) -> None:
        replies[model] = post(server, model)

    threads = [threading.Thread(target=one, args=(m,)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return replies


def events(raw: bytes) -> dict[str, dict[str, Any]]:
    decoder = SSEDecoder()
    return {
        e.event: json.loads(e.data)
        for e in decoder.feed(raw)
        if e.event in ("start", "end", "error")
    }


def limits(db: Any) -> dict[str, Any]:
    """The user's limits document ({} before the first opening)."""
    docs = [d.to_dict() for d in db.collection("user_limits").stream()]
    return dict(docs[0]) if docs else {}


def test_a_comparison_of_four_takes_four_leases_and_debits_four_times(
    compare_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    # Slow enough that the four streams are open together.
    fake_upstream.configure(first_chunk_delay=1.5)
    seen: list[int] = []

    def watch() -> None:
        wait_until(lambda: seen.append(len(limits(db).get("leases") or {})) or seen[-1] >= 4)

    watcher = threading.Thread(target=watch)
    watcher.start()
    replies = compare(compare_server, MODELS)
    watcher.join(15)
    assert max(seen) == 4
    assert {m: status for m, (status, _) in replies.items()} == dict.fromkeys(MODELS, 200)
    records = {r["requested_model"]: r for r in executions(db)}
    assert set(records) == set(MODELS)
    for model, (_, raw) in replies.items():
        found = events(raw)
        record = records[model]
        assert found["start"]["comparison_id"] == COMPARISON
        assert found["start"]["models"] == [model]
        assert found["end"]["model"] == model == record["model"]
        assert record["comparison_id"] == COMPARISON
        assert record["status"] == "completed"
        assert found["start"]["execution_id"] == record["id"]
    # One debit each: the day's total is the four records' sum, every lease gone.
    after = limits(db)
    assert after["leases"] == {} and after.get("reserved", {}) == {}
    assert after["tokens_today"] == sum(r["tokens_debited"] for r in records.values())
    assert all(r["tokens_debited"] > 0 for r in records.values())
    assert fake_upstream.stats()["attempts"] == dict.fromkeys(MODELS, 1)


def test_a_comparison_wider_than_the_concurrency_limit_is_refused_past_it(
    narrow_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    fake_upstream.configure(first_chunk_delay=1.5)
    replies = compare(narrow_server, MODELS)
    statuses = sorted(status for status, _ in replies.values())
    assert statuses == [200, 200, 200, 429]
    [refused] = [raw for status, raw in replies.values() if status == 429]
    assert json.loads(refused)["error"]["code"] == "concurrency_limit"
    # The refused one wrote nothing and cost nothing upstream.
    assert len(executions(db)) == 3
    assert fake_upstream.stats()["requests"] == 3
    assert limits(db)["leases"] == {}


def test_one_column_failing_mid_stream_ends_only_that_column(
    compare_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    failing = MODELS[1]
    fake_upstream.configure(per_model={failing: {"error_after": 2}})
    replies = compare(compare_server, MODELS[:3])
    records = {r["requested_model"]: r for r in executions(db)}
    for model in MODELS[:3]:
        status, raw = replies[model]
        assert status == 200
        found = events(raw)
        if model == failing:
            assert found["error"]["code"] == "upstream_error"
            assert records[model]["status"] == "error"
            assert records[model]["output"]  # the partial text stays
        else:
            assert "error" not in found
            assert records[model]["status"] == "completed"
    assert limits(db)["leases"] == {}


def test_cancelling_one_column_leaves_the_others_streaming(
    compare_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    fake_upstream.configure(delay=0.3, chunks=8)
    cancelled = MODELS[0]
    # The column to cancel: a raw socket, closed after its first content event.
    sock = socket.create_connection(("127.0.0.1", compare_server.port), timeout=30)
    payload = body(variables={"topic": "otters"}, model=cancelled, comparison_id=COMPARISON)
    headers = "".join(f"{k}: {v}\r\n" for k, v in auth().items())
    sock.sendall(
        f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    others: dict[str, tuple[int, bytes]] = {}
    thread = threading.Thread(target=lambda: others.update(compare(compare_server, MODELS[1:])))
    thread.start()
    read_until(sock, lambda got: b"\nid: 1\n" in got or got.startswith(b"id: 1"))
    sock.close()
    thread.join(60)
    assert {m: s for m, (s, _) in others.items()} == dict.fromkeys(MODELS[1:], 200)
    wait_until(lambda: {r["status"] for r in executions(db)} <= {"completed", "cancelled"})
    records = {r["requested_model"]: r for r in executions(db)}
    assert records[cancelled]["status"] == "cancelled"
    assert all(records[m]["status"] == "completed" for m in MODELS[1:])
    assert all(r["comparison_id"] == COMPARISON for r in records.values())
    wait_until(lambda: limits(db)["leases"] == {})
    assert limits(db)["leases"] == {}
