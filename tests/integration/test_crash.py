"""A crashed instance no longer locks its user out (docs/adr/0601-leases-that-prove-alive.md):
``kill -9`` of the worker mid-stream, then within ``LEASE_TTL_SECONDS`` and a margin the
user opens all of their streams again, each dead record is ``interrupted`` with the text
of its last checkpoint and the budget is debited once; two repairs racing, and a repair
racing a late finish, debit once; the sweep ends what no one asks for.

The checkpoints are the stream helper's (issue 24): until they are on this branch, the
tests write what they would (``resumable``, ``alive_at``, ``checkpoint_id`` and the
segments) straight into the emulator, marked ``# checkpoint stand-in``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from google.cloud import firestore

from promptstream._config import Settings
from promptstream._sse import encode_event
from promptstream._tokens import estimate_tokens
from promptstream.run._repair import Repair, sweep_streams
from promptstream.store._store import Store
from support import (
    PROJECT,
    FirestoreEmulator,
    FunctionServer,
    Serve,
    add_prompt,
    body,
    executions,
    limits,
    read_to_close,
    wait_until,
    worker_pids,
)
from support.http import Reply, post, request_bytes

TTL = 3
# A tenth of the TTL, as the settings require: an idle execution refreshes every fifth pass.
CHECKPOINT = 0.3
STREAMS = 2
LONG = "[[fake chunks=400 delay=0.05]]"  # twenty seconds of content unless cut short


def content(n: int, text: str) -> str:
    return encode_event(json.dumps({"content": text, "finish_reason": None}), id=n).decode()


def checkpoint(db: Any, execution_id: str, texts: list[str], alive_at: dt.datetime) -> None:
    """What the stream helper's checkpoints write (C1): one segment of the events so far,
    and the record's ``resumable``, ``alive_at`` and ``checkpoint_id``."""
    record = db.collection("executions").document(execution_id)
    events = [content(n, text) for n, text in enumerate(texts, 1)]
    record.collection("segments").document("00000001").set(
        {"first_id": 1, "events": events, "created_at": alive_at}
    )
    record.update({"resumable": True, "alive_at": alive_at, "checkpoint_id": len(texts)})


class OpenStream:
    """A raw-socket stream that has received its first content event."""

    def __init__(self, server: FunctionServer, payload: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock.sendall(request_bytes(payload, headers={"Connection": "close"}))
        received = b""
        deadline = time.monotonic() + 10
        while b"\nid: 1\n" not in received:
            assert time.monotonic() < deadline, received
            data = self.sock.recv(65536)
            assert data, received
            received += data
        assert received.startswith(b"HTTP/1.1 200"), received[:300]
        start = received.split(b"event: start\ndata: ", 1)[1].split(b"\n", 1)[0]
        self.execution_id: str = json.loads(start)["execution_id"]
        # The body so far (chunked framing and all: a test reads only its text).
        self.received = received.split(b"\r\n\r\n", 1)[1]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(serve: Serve) -> Iterator[FunctionServer]:
    env = {
        "LEASE_TTL_SECONDS": str(TTL),
        "CHECKPOINT_SECONDS": str(CHECKPOINT),
        "MAX_CONCURRENT_STREAMS": str(STREAMS),
        "HEARTBEAT_SECONDS": "0.3",
    }
    with serve(env=env) as server:
        yield server


def test_after_a_kill_9_the_user_opens_all_their_streams_again_within_the_ttl(
    server: FunctionServer, db: Any
) -> None:
    add_prompt(db, content=f"{{{{topic}}}} {LONG}")
    add_prompt(db, "short", content="{{topic}}")
    payload = body(variables={"topic": "x"})
    streams = [OpenStream(server, payload) for _ in range(STREAMS)]
    texts = {s.execution_id: ["Once ", f"upon {n}"] for n, s in enumerate(streams)}
    for execution_id, parts in texts.items():
        checkpoint(db, execution_id, parts, dt.datetime.now(dt.UTC))  # checkpoint stand-in
    [worker] = worker_pids(server)
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    for stream in streams:
        stream.close()
    # Alive as far as anyone can tell, until the TTL has passed: refused.
    refused = post(server, payload)
    assert refused.status == 429 and refused.error()["code"] == "concurrency_limit"

    def opened() -> Any:
        got = post(server, body("short", variables={"topic": "short"}))
        return None if got.status == 429 else _fail_unless_200(got)

    assert wait_until(opened, timeout=TTL + 15)
    took = time.monotonic() - killed
    assert TTL <= took < TTL + 15
    print(f"\nLEASE_TTL_SECONDS={TTL}: the user opened again {took:.1f} s after the kill")
    # Both dead records were repaired by that one opening: the second one fits as well.
    again = [OpenStream(server, payload) for _ in range(STREAMS)]
    for stream in again:
        stream.close()
    dead = {r["id"]: r for r in executions(db) if r["id"] in texts}
    debits = 0
    for execution_id, record in dead.items():
        assert record["status"] == "interrupted", record
        assert record["output"] == "".join(texts[execution_id])
        assert record["error_code"] == "interrupted"
        expected = record["prompt_tokens_estimate"] + estimate_tokens(record["output"])
        assert record["tokens_debited"] == expected
        debits += expected
    held = limits(db)
    assert not set(held["leases"]) & set(texts)
    assert not set(held["reserved"]) & set(texts)
    # Debited once: the dead ones' estimates and whatever the runs after them used.
    assert wait_until(lambda: all(r["status"] != "streaming" for r in executions(db)), 30)
    others = [r for r in executions(db) if r["id"] not in texts]
    assert limits(db)["tokens_today"] == debits + sum(r["tokens_debited"] for r in others)


def test_after_a_kill_9_resumable_streams_end_interrupted_with_their_real_checkpoints(
    server: FunctionServer, db: Any
) -> None:
    # The test above with the real checkpoints instead of the stand-in.
    add_prompt(db, content=f"{{{{topic}}}} {LONG}")
    add_prompt(db, "short", content="{{topic}}")
    payload = body(variables={"topic": "x"}, resumable=True)
    streams = [OpenStream(server, payload) for _ in range(STREAMS)]
    ids = [s.execution_id for s in streams]

    def checkpointed() -> bool:
        records = {r["id"]: r for r in executions(db)}
        return all((records[i].get("checkpoint_id") or 0) >= 2 for i in ids)

    assert wait_until(checkpointed, timeout=15)
    [worker] = worker_pids(server)
    os.kill(worker, signal.SIGKILL)
    received = [read_to_close(s.sock) for s in streams]

    def opened() -> Any:
        got = post(server, body("short", variables={"topic": "short"}))
        return None if got.status == 429 else _fail_unless_200(got)

    assert wait_until(opened, timeout=TTL + 15)
    for stream, raw in zip(streams, received, strict=True):
        record = db.collection("executions").document(stream.execution_id).get().to_dict()
        assert record["status"] == "interrupted", record
        seen = Reply(200, {}, stream.received + raw).text()
        # What the client saw and what was checkpointed agree as far as both go.
        shared = min(len(seen), len(record["output"]))
        assert record["output"] and record["output"][:shared] == seen[:shared]


def test_a_plain_stream_longer_than_the_ttl_keeps_its_lease_and_completes(
    server: FunctionServer, db: Any
) -> None:
    # Its instance refreshes its record's alive_at while it runs, so a user at the cap is
    # still refused after the TTL has passed, and the stream ends completed.
    add_prompt(db, content="{{topic}} [[fake chunks=120 delay=0.05]]")
    payload = body(variables={"topic": "x"})
    streams = [OpenStream(server, payload) for _ in range(STREAMS)]
    time.sleep(TTL + 1)
    refused = post(server, payload)
    assert refused.status == 429 and refused.error()["code"] == "concurrency_limit"
    for stream in streams:
        raw = read_to_close(stream.sock)
        assert b"data: [DONE]" in raw
    records = {r["id"]: r for r in executions(db)}
    assert [records[s.execution_id]["status"] for s in streams] == ["completed"] * STREAMS


def test_after_a_kill_9_plain_streams_lapse_within_the_ttl_too(
    server: FunctionServer, db: Any
) -> None:
    add_prompt(db, content=f"{{{{topic}}}} {LONG}")
    add_prompt(db, "short", content="{{topic}}")
    streams = [OpenStream(server, body(variables={"topic": "x"})) for _ in range(STREAMS)]
    ids = [s.execution_id for s in streams]

    def refreshed() -> bool:
        records = {r["id"]: r for r in executions(db)}
        return all(records[i]["alive_at"] > records[i]["created_at"] for i in ids)

    assert wait_until(refreshed, timeout=10)
    [worker] = worker_pids(server)
    os.kill(worker, signal.SIGKILL)
    for stream in streams:
        stream.close()

    def opened() -> Any:
        got = post(server, body("short", variables={"topic": "short"}))
        return None if got.status == 429 else _fail_unless_200(got)

    assert wait_until(opened, timeout=TTL + 15)
    records = {r["id"]: r for r in executions(db)}
    for execution_id in ids:
        assert records[execution_id]["status"] == "interrupted", records[execution_id]
        # Nothing was checkpointed (a plain stream keeps no segments): the prompt's estimate.
        assert records[execution_id]["tokens_debited"] == records[execution_id][
            "prompt_tokens_estimate"
        ]


def _fail_unless_200(got: Any) -> Any:
    assert got.status == 200, got.raw[:300]
    return got


# -- races on the emulator, in process ----------------------------------------------------


SETTINGS = Settings(
    project_id=PROJECT,
    lease_ttl_seconds=TTL,
    checkpoint_seconds=CHECKPOINT,
    max_concurrent_streams=STREAMS,
)


@pytest.fixture
async def stores(firestore_emulator: FirestoreEmulator) -> AsyncIterator[tuple[Store, Store]]:
    # Two stores: two instances, each with its own session.
    a = Store(SETTINGS, emulator_host=firestore_emulator.host)
    b = Store(SETTINGS, emulator_host=firestore_emulator.host)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def build(prompt: Any) -> tuple[dict[str, Any], int, Any]:
    return {"prompt_id": prompt.id, "output": "", "prompt_tokens_estimate": 40}, 500, prompt


def silent(db: Any, execution_id: str, text: str) -> None:
    """The record as a dead instance left it, TTL and more ago."""
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=TTL + 5)
    checkpoint(db, execution_id, [text], long_ago)  # checkpoint stand-in


async def test_two_repairs_racing_debit_once(stores: tuple[Store, Store], db: Any) -> None:
    add_prompt(db)
    a, b = stores
    for round_ in range(5):
        execution_id, _ = await a.begin_execution(uid="alice", prompt_id="p1", build=build)
        silent(db, execution_id, f"text {round_}")
        before = limits(db).get("tokens_today", 0)
        first, second = await asyncio.gather(
            Repair(SETTINGS, a).stale_execution("alice", execution_id),
            Repair(SETTINGS, b).stale_execution("alice", execution_id),
        )
        assert first is not None and second is not None
        assert first["status"] == second["status"] == "interrupted"
        record = db.collection("executions").document(execution_id).get().to_dict()
        assert record["tokens_debited"] == 40 + estimate_tokens(f"text {round_}")
        assert limits(db)["tokens_today"] == before + record["tokens_debited"]
        assert execution_id not in limits(db)["leases"]


async def test_a_repair_racing_a_late_finish_debits_once(
    stores: tuple[Store, Store], db: Any
) -> None:
    add_prompt(db)
    a, b = stores
    outcomes = set()
    for _ in range(8):
        execution_id, _ = await a.begin_execution(uid="alice", prompt_id="p1", build=build)
        # Alive but slow: silent past the TTL as the repair sees it, finishing all the same.
        silent(db, execution_id, "late")
        before = limits(db).get("tokens_today", 0)
        finished, repaired = await asyncio.gather(
            a.finish_execution(
                uid="alice",
                execution_id=execution_id,
                fields={"status": "completed", "output": "late and whole", "tokens_debited": 7},
                tokens=7,
            ),
            Repair(SETTINGS, b).stale_execution("alice", execution_id),
        )
        record = db.collection("executions").document(execution_id).get().to_dict()
        assert record["status"] == ("completed" if finished else "interrupted")
        assert repaired is not None
        assert limits(db)["tokens_today"] == before + record["tokens_debited"]
        assert execution_id not in limits(db)["leases"]
        outcomes.add(record["status"])
    print(f"\nwinners over 8 races: {sorted(outcomes)}")


async def test_the_sweep_ends_the_silent_records_and_leaves_the_live_ones(
    stores: tuple[Store, Store],
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
    firestore_emulator: FirestoreEmulator,
) -> None:
    add_prompt(db)
    a, _ = stores
    opened = [
        (await a.begin_execution(uid=uid, prompt_id="p1", build=build))[0]
        for uid in ("alice", "alice", "bob", "bob")
    ]
    dead_resumable, live_resumable, plain, old = opened
    silent(db, dead_resumable, "dead")
    checkpoint(db, live_resumable, ["live"], dt.datetime.now(dt.UTC))  # checkpoint stand-in
    ten_minutes_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    # A plain execution's alive_at is refreshed too while it runs: silent, it is dead.
    db.collection("executions").document(plain).update({"alive_at": ten_minutes_ago})
    # A record from before liveness (no alive_at) keeps STREAM_LEASE_SECONDS.
    db.collection("executions").document(old).update(
        {"alive_at": firestore.DELETE_FIELD, "created_at": ten_minutes_ago}
    )
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    assert await asyncio.to_thread(sweep_streams, SETTINGS) == 2
    status = {r["id"]: r["status"] for r in executions(db)}
    assert status == {
        dead_resumable: "interrupted",
        live_resumable: "streaming",
        plain: "interrupted",
        old: "streaming",
    }
    assert db.collection("executions").document(dead_resumable).get().get("output") == "dead"
    # Only the sweep's own leases were released.
    assert set(limits(db)["leases"]) == {live_resumable}
    assert limits(db, "bob")["leases"].keys() == {old}
    # Nothing left to do: a second run ends nothing.
    assert await Repair(SETTINGS, a).sweep(dt.datetime.now(dt.UTC)) == 0
