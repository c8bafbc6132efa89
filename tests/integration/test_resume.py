"""Durable streams (issue 24, docs/adr/0600-durable-streams.md): a resumable execution
survives its connection. A client cut after k events resumes (on the same instance or on
another one, mid-stream or after the end) and gets every event after its last id exactly
once, in order: the text equals an unbroken run's. An explicit cancel stops it at once; a
SIGTERM tells the client to resume elsewhere; another user gets the 404 of an absent id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from fake_openrouter import FakeOpenRouterThread
from promptstream import SSEDecoder
from support import (
    FunctionServer,
    Serve,
    TcpProxy,
    add_prompt,
    auth,
    body,
    executions,
    wait_until,
    worker_pids,
)
from support.http import JSON, Reply, post, stream

# Long enough to cut anywhere, short enough to run in a second or two.
SLOW = "[[fake chunks=24 delay=0.05]] Tell me about {{topic}}."
# Long enough that only a cancel or a disconnect ends it within the test.
LONG = "[[fake chunks=200 delay=0.05]] Tell me about {{topic}}."
ENV = {
    "HEARTBEAT_SECONDS": "0.3",
    "CHECKPOINT_SECONDS": "0.2",
    "RESUME_GRACE_SECONDS": "5",
}


@pytest.fixture(scope="module")
def pair(serve: Serve) -> Iterator[tuple[FunctionServer, FunctionServer]]:
    """Two instances on one emulator: A generates, B is where a reconnect may land."""
    with serve(env=ENV) as a, serve(env=ENV) as b:
        yield a, b


def url(server: FunctionServer) -> str:
    return f"http://127.0.0.1:{server.port}/"


def headers(uid: str = "alice") -> dict[str, str]:
    return {**auth(uid), **JSON}


def run(server: FunctionServer, payload: bytes, *, uid: str = "alice", **kw: Any) -> Reply:
    return asyncio.run(stream(url(server), payload, headers(uid), **kw))


def resume_body(execution_id: str, last: int) -> bytes:
    return json.dumps({"resume": execution_id, "last_event_id": last}).encode()


def ids(reply: Reply) -> list[int]:
    # (The decoder keeps the last id for every later event, [DONE] included, as the
    # spec says: the ids the server sent are those of the events that carry one.)
    return [
        int(e.id)
        for e in reply.events
        if e.event in ("message", "end", "error") and e.id and e.data != "[DONE]"
    ]


def last_id(reply: Reply) -> int:
    """The last id the client got (what a browser keeps as its Last-Event-ID)."""
    got = [int(e.id) for e in reply.events if e.id]
    return max(got, default=0)


def execution_id(reply: Reply) -> str:
    return str(reply.named("start")[0]["execution_id"])


@pytest.fixture
def unbroken(db: Any, pair: tuple[FunctionServer, FunctionServer]) -> Reply:
    """An unbroken resumable run: the text and ids every resumed run must equal."""
    add_prompt(db, content=SLOW)
    reply = run(pair[0], body(variables={"topic": "tides"}, resumable=True))
    assert reply.status == 200 and reply.kinds[-2:] == ["end", "message"], reply.raw[-300:]
    # Gone once final, so that each test sees only its own records.
    ended(db, execution_id(reply))
    db.collection("executions").document(execution_id(reply)).delete()
    return reply


def ended(db: Any, eid: str, timeout: float = 10) -> dict[str, Any]:
    """The record of ``eid`` once it is no longer ``streaming``."""

    def final() -> dict[str, Any] | None:
        doc = db.collection("executions").document(eid).get().to_dict()
        return doc if doc and doc["status"] != "streaming" else None

    found = wait_until(final, timeout)
    assert found is not None, f"{eid} still streaming"
    return dict(found)


def joined(first: Reply, second: Reply) -> tuple[str, list[int]]:
    """The text and ids a client assembles from a cut stream and its resume."""
    text = first.text() + second.text()
    return text, ids(first) + ids(second)


def test_start_says_resumable_and_every_event_has_its_id(unbroken: Reply) -> None:
    start = unbroken.named("start")[0]
    assert start["resumable"] is True and "resumed" not in start
    n = len(unbroken.content_events())
    assert n > 10
    # Content 1..n, then end n + 1; start, sources and [DONE] carry none.
    assert ids(unbroken) == list(range(1, n + 2))
    assert unbroken.events[0].id in ("", None) and unbroken.events[-1].data == "[DONE]"


@pytest.mark.parametrize("where", ["first", "mid", "before_end"])
@pytest.mark.parametrize("on", ["same", "other"])
def test_a_cut_stream_resumes_with_the_unbroken_text(
    db: Any, pair: tuple[FunctionServer, FunctionServer], unbroken: Reply, where: str, on: str
) -> None:
    n = len(unbroken.content_events())
    k = {"first": 1, "mid": n // 2, "before_end": n - 1}[where]
    a, b = pair
    first = run(a, body(variables={"topic": "tides"}, resumable=True), stop_after_content=k)
    assert "end" not in first.kinds
    second = run(a if on == "same" else b, resume_body(execution_id(first), last_id(first)))
    assert second.status == 200, second.raw[:300]
    start = second.named("start")[0]
    assert start["resumed"] is True and start["execution_id"] == execution_id(first)
    text, seen = joined(first, second)
    assert text == unbroken.text()
    assert seen == list(range(1, n + 2))
    assert second.kinds[-2:] == ["end", "message"] and second.events[-1].data == "[DONE]"
    record = ended(db, execution_id(first))
    assert record["status"] == "completed" and record["output"] == unbroken.text()


def test_a_resume_after_the_end_replays_on_either_instance(
    db: Any, pair: tuple[FunctionServer, FunctionServer], unbroken: Reply
) -> None:
    a, b = pair
    first = run(a, body(variables={"topic": "tides"}, resumable=True), stop_after_content=3)
    assert ended(db, execution_id(first))["status"] == "completed"
    for server in (a, b):
        again = run(server, resume_body(execution_id(first), 0))
        assert again.text() == unbroken.text()
        assert ids(again) == ids(unbroken)
        # The Last-Event-ID header, as EventSource sends it, when the body names none.
        tail = asyncio.run(
            stream(
                url(server),
                json.dumps({"resume": execution_id(first)}).encode(),
                {**headers(), "Last-Event-ID": "5"},
            )
        )
        assert ids(tail) == ids(unbroken)[5:]


def test_another_user_gets_the_404_of_an_absent_execution(
    db: Any, pair: tuple[FunctionServer, FunctionServer], unbroken: Reply
) -> None:
    a, b = pair
    first = run(a, body(variables={"topic": "tides"}, resumable=True), stop_after_content=2)
    mine = execution_id(first)
    answers = []
    for server in (a, b):
        for payload in (resume_body(mine, 0), json.dumps({"cancel": mine}).encode()):
            answers.append(post(server, payload, headers("mallory")))
        for payload in (resume_body("absent0000", 0), json.dumps({"cancel": "absent0"}).encode()):
            answers.append(post(server, payload, headers("alice")))
    assert {(r.status, r.raw) for r in answers} == {(404, answers[0].raw)}
    assert answers[0].error()["code"] == "execution_not_found"
    # Still Alice's, and still running to its end.
    assert ended(db, execution_id(first))["status"] == "completed"


def _wait_streaming(db: Any) -> str:
    found = wait_until(
        lambda: next((r for r in executions(db) if r["status"] == "streaming"), None)
    )
    assert found is not None
    return str(found["id"])


def test_an_explicit_cancel_stops_the_upstream_at_once(
    db: Any, pair: tuple[FunctionServer, FunctionServer], fake_upstream: FakeOpenRouterThread
) -> None:
    a, _ = pair
    add_prompt(db, content=LONG)

    async def cancel_while_attached() -> tuple[Reply, Reply, float]:
        # The client stays attached: only the cancel can end the stream early.
        attached = asyncio.create_task(
            stream(url(a), body(variables={"topic": "tides"}, resumable=True), headers())
        )
        eid = await asyncio.to_thread(_wait_streaming, db)
        answer = await asyncio.to_thread(post, a, json.dumps({"cancel": eid}).encode())
        answered = time.monotonic()
        return answer, await attached, answered

    answer, attached, answered = asyncio.run(cancel_while_attached())
    eid = execution_id(attached)
    assert answer.status == 200 and answer.json == {"execution_id": eid, "status": "cancelled"}
    [closed] = fake_upstream.stats()["early_close_ns"]
    # The upstream was closed before the answer went out (50 ms: a liveness bound).
    assert closed / 1e9 <= answered + 0.05
    # The attached client is told, then [DONE]; its ids run on without a gap.
    assert attached.named("error")[0]["code"] == "cancelled"
    n = len(attached.content_events())
    assert n < 100 and ids(attached) == list(range(1, n + 2))
    record = ended(db, eid)
    assert record["status"] == "cancelled" and record["tokens_debited"] > 0
    # A resume now replays what was sent, then says it was cancelled.
    again = run(a, resume_body(eid, 0))
    assert again.named("error")[0]["code"] == "cancelled"


def test_a_cancel_on_another_instance_reaches_the_generator(
    db: Any, pair: tuple[FunctionServer, FunctionServer], fake_upstream: FakeOpenRouterThread
) -> None:
    a, b = pair
    add_prompt(db, content=LONG)
    first = run(a, body(variables={"topic": "tides"}, resumable=True), stop_after_content=2)
    answer = post(b, json.dumps({"cancel": execution_id(first)}).encode())
    assert answer.status == 200 and answer.json["status"] == "cancelled", answer.raw
    assert fake_upstream.stats()["early_closes"] == 1
    assert ended(db, execution_id(first))["status"] == "cancelled"


def test_a_detached_execution_is_cancelled_after_the_grace(
    db: Any, serve: Serve, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content=LONG)
    with serve(env={**ENV, "RESUME_GRACE_SECONDS": "0.5"}) as server:
        run(server, body(variables={"topic": "tides"}, resumable=True), stop_after_content=2)
        # Still going with nobody attached, then given up.
        assert executions(db)[0]["status"] == "streaming"
        record = ended(db, executions(db)[0]["id"])
    assert record["status"] == "cancelled"
    assert fake_upstream.stats()["early_closes"] == 1


def test_a_plain_stream_still_cancels_on_disconnect(
    db: Any, pair: tuple[FunctionServer, FunctionServer], fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content=LONG)
    first = run(pair[0], body(variables={"topic": "tides"}), stop_after_content=2)
    assert first.named("start")[0]["resumable"] is False
    # Nothing to resume it from: as absent.
    assert post(pair[1], resume_body(execution_id(first), 0)).status == 404
    # At once (2 s: a liveness bound, far below RESUME_GRACE_SECONDS of a resumable one).
    assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1, timeout=2)
    record = ended(db, execution_id(first))
    assert record["status"] == "cancelled" and "resumable" not in record


def test_checkpoints_write_segments_and_prove_the_execution_alive(
    db: Any, pair: tuple[FunctionServer, FunctionServer]
) -> None:
    add_prompt(db, content="[[fake chunks=60 delay=0.05]] Tell me about {{topic}}.")
    first = run(pair[0], body(variables={"topic": "tides"}, resumable=True), stop_after_content=2)
    eid = execution_id(first)
    mid = wait_until(lambda: (executions(db)[0].get("checkpoint_id") or 0) > 2)
    assert mid and executions(db)[0]["alive_at"] is not None
    record = ended(db, execution_id(first))
    segments = [
        d.to_dict()
        for d in db.collection("executions").document(eid).collection("segments").stream()
    ]
    events = [e for s in sorted(segments, key=lambda s: s["first_id"]) for e in s["events"]]
    assert [int(e.split("\n", 1)[0].removeprefix("id: ")) for e in events] == list(
        range(1, len(events) + 1)
    )
    assert record["checkpoint_id"] == len(events) and "event: end" in events[-1]


def test_sigterm_tells_the_client_to_resume_elsewhere(
    db: Any, serve: Serve, pair: tuple[FunctionServer, FunctionServer], unbroken: Reply
) -> None:
    _, b = pair
    with serve(env=ENV) as doomed:

        async def cut_by_sigterm() -> Reply:
            # SIGTERM once the first content event has arrived (the worker is serving).
            decoder = SSEDecoder()
            raw = b""
            killed = False
            payload = body(variables={"topic": "tides"}, resumable=True)
            async with aiohttp.ClientSession() as session:
                async with session.post(url(doomed), data=payload, headers=headers()) as resp:
                    async for data in resp.content.iter_any():
                        raw += data
                        if not killed and any(e.id for e in decoder.feed(data)):
                            killed = True
                            for pid in worker_pids(doomed):
                                os.kill(pid, signal.SIGTERM)
            return Reply(resp.status, {}, raw)

        first = asyncio.run(cut_by_sigterm())
        assert first.kinds[-1] == "resume", first.raw[-300:]
        told = first.named("resume")[0]
        assert told == {"execution_id": execution_id(first), "last_event_id": last_id(first)}
        assert "[DONE]" not in first.raw.decode()
        # The draining worker goes on generating (and checkpointing) meanwhile.
        second = run(b, resume_body(told["execution_id"], told["last_event_id"]))
    text, seen = joined(first, second)
    assert text == unbroken.text() and seen == ids(unbroken)
    assert ended(db, execution_id(first))["status"] == "completed"


def test_past_the_shutdown_grace_the_generation_ends_interrupted_with_its_text(
    db: Any, serve: Serve, pair: tuple[FunctionServer, FunctionServer]
) -> None:
    _, b = pair
    add_prompt(db, content=LONG)
    with serve(env={**ENV, "SHUTDOWN_GRACE_SECONDS": "0.5"}) as doomed:
        first = run(
            doomed, body(variables={"topic": "tides"}, resumable=True), stop_after_content=3
        )
        for pid in worker_pids(doomed):
            os.kill(pid, signal.SIGTERM)
        eid = execution_id(first)
        record = ended(db, eid)
    assert record["status"] == "interrupted" and record["error_code"] == "interrupted"
    assert record["tokens_debited"] > 0 and record["output"].startswith(first.text())
    # Replayed elsewhere: the checkpointed text, then the error, then [DONE].
    again = run(b, resume_body(eid, 0))
    assert again.text() == record["output"]
    assert again.named("error")[0]["code"] == "interrupted"
    assert ids(again) == list(range(1, len(again.content_events()) + 2))
    assert again.events[-1].data == "[DONE]"


def test_a_resume_of_a_record_nobody_keeps_alive_ends_interrupted(
    db: Any, pair: tuple[FunctionServer, FunctionServer]
) -> None:
    # A record as a crashed instance leaves it: streaming, its last sign of life long ago.
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    eid = "crashed0000000000000"
    record = db.collection("executions").document(eid)
    record.set(
        {
            "owner_uid": "alice",
            "status": "streaming",
            "resumable": True,
            "alive_at": long_ago,
            "prompt_id": "p1",
            "requested_model": "m",
            "models": ["m"],
            "checkpoint_id": 1,
        }
    )
    record.collection("segments").document(f"{1:08d}").set(
        {"first_id": 1, "events": ['id: 1\ndata: {"content":"so far","finish_reason":null}\n\n']}
    )
    reply = run(pair[1], resume_body(eid, 0), timeout=10)
    assert reply.text() == "so far"
    assert reply.named("error")[0]["code"] == "interrupted"
    assert ids(reply) == [1, 2]


@pytest.mark.parametrize("k", [0, 7])
def test_a_network_cut_by_a_proxy_resumes_with_the_unbroken_text(
    db: Any, pair: tuple[FunctionServer, FunctionServer], unbroken: Reply, k: int
) -> None:
    """The connection dies in the network (a TCP proxy drops both sides), not by a
    client's close: after the start (k = 0) or after k content events."""
    a, b = pair
    proxy = TcpProxy(f"127.0.0.1:{a.port}")

    async def cut_after(k: int) -> Reply:
        decoder = SSEDecoder()
        raw = b""
        seen = 0
        payload = body(variables={"topic": "tides"}, resumable=True)
        async with aiohttp.ClientSession() as session:
            try:
                async with session.post(
                    f"http://{proxy.host}/", data=payload, headers=headers()
                ) as resp:
                    async for data in resp.content.iter_any():
                        raw += data
                        for event in decoder.feed(data):
                            if event.event == "message":
                                seen += 1
                        if seen >= k and b"event: start" in raw:
                            proxy.cut()
                            break
            except aiohttp.ClientError:
                pass  # the cut, as a client sees it
        return Reply(200, {}, raw)

    first = asyncio.run(cut_after(k))
    assert "end" not in first.kinds
    second = run(b, resume_body(execution_id(first), last_id(first)))
    text, seen = joined(first, second)
    assert text == unbroken.text() and seen == ids(unbroken)
