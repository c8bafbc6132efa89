"""The store on the Firestore emulator, including a commit that loses to another writer;
and the function against a Firestore that refuses connections, one that never answers,
and one that goes away in the middle of a stream. (The REST client's codec and its
production calls are tests/unit/store/test_firestore.py's.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from promptstream._config import Settings
from promptstream.store._limits import LimitExceeded
from promptstream.store._store import Store
from support import (
    PROJECT,
    FirestoreEmulator,
    Serve,
    TcpProxy,
    add_prompt,
    auth,
    body,
    free_port,
    wait_until,
)
from support.http import post

# -- the store, on the emulator ----------------------------------------------------------


@pytest.fixture
async def store(firestore_emulator: FirestoreEmulator) -> AsyncIterator[Store]:
    store = Store(
        Settings(project_id=PROJECT, max_concurrent_streams=2),
        emulator_host=firestore_emulator.host,
    )
    try:
        yield store
    finally:
        await store.close()


def record(prompt: Any) -> tuple[dict[str, Any], int, Any]:
    assert prompt is not None
    return {"prompt_id": prompt.id, "output": "", "usage": None}, 0, prompt


async def test_an_execution_is_opened_and_closed(store: Store, db: Any) -> None:
    add_prompt(db, "p1", content="Hello {{name}}", system_prompt="Be brief.")
    execution_id, prompt = await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    assert (prompt.id, prompt.content, prompt.system_prompt) == (
        "p1",
        "Hello {{name}}",
        "Be brief.",
    )
    opened = db.collection("executions").document(execution_id).get().to_dict()
    assert (opened["status"], opened["owner_uid"], opened["prompt_id"]) == (
        "streaming",
        "alice",
        "p1",
    )
    assert isinstance(opened["created_at"], dt.datetime)
    limits = db.collection("user_limits").document("alice").get().to_dict()
    assert list(limits["leases"]) == [execution_id]

    await store.finish_execution(
        uid="alice",
        execution_id=execution_id,
        fields={"status": "completed", "output": "Hi", "usage": {"total_tokens": 7}},
        tokens=7,
    )
    closed = db.collection("executions").document(execution_id).get().to_dict()
    assert (closed["status"], closed["output"], closed["usage"]) == (
        "completed",
        "Hi",
        {"total_tokens": 7},
    )
    assert closed["created_at"] == opened["created_at"]
    assert isinstance(closed["finished_at"], dt.datetime)
    limits = db.collection("user_limits").document("alice").get().to_dict()
    assert (limits["leases"], limits["tokens_today"]) == ({}, 7)


async def test_release_settles_the_limits_once(store: Store, db: Any) -> None:
    """The settle apart, after a failed final commit: it releases the lease and the
    reservation and debits; if the final commit was applied after all (it failed in
    transit), the lease is gone and nothing is debited twice."""
    add_prompt(db, "p1")

    def reserving(prompt: Any) -> tuple[dict[str, Any], int, Any]:
        return {"prompt_id": prompt.id}, 500, prompt

    first, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=reserving)
    second, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=reserving)
    limits = db.collection("user_limits").document("alice")
    assert limits.get().to_dict()["reserved"] == {first: 500, second: 500}
    assert await store.release(uid="alice", execution_id=first, tokens=7) is True
    await store.finish_execution(uid="alice", execution_id=second, fields={}, tokens=5)
    assert await store.release(uid="alice", execution_id=second, tokens=5) is False
    assert await store.release(uid="alice", execution_id=first, tokens=7) is False
    doc = limits.get().to_dict()
    assert (doc["leases"], doc["reserved"], doc["tokens_today"]) == ({}, {}, 12)


async def test_an_absent_prompt_reaches_build_as_none_and_a_refusal_writes_nothing(
    store: Store, db: Any
) -> None:
    seen: list[Any] = []

    def refuse(prompt: Any) -> tuple[dict[str, Any], int, None]:
        seen.append(prompt)
        raise LookupError("no such prompt")

    with pytest.raises(LookupError):
        await store.begin_execution(uid="alice", prompt_id="absent", build=refuse)
    assert seen == [None]
    assert list(db.collection("executions").stream()) == []
    assert list(db.collection("user_limits").stream()) == []


async def test_a_commit_that_loses_to_another_writer_reads_again(store: Store, db: Any) -> None:
    """Another instance takes a lease between our read and our commit: our commit's
    precondition fails, nothing of ours is written, and the second attempt reads the
    limits again and sees both (the build of the first read stands: ADR 1000)."""
    add_prompt(db, "p1")
    limits = db.collection("user_limits").document("alice")
    limits.set({"leases": {}, "day": dt.date.today().isoformat(), "tokens_today": 0})
    calls = 0

    def build(prompt: Any) -> tuple[dict[str, Any], int, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            lease = {"leases": {"elsewhere": int(time.time() * 1000)}}
            limits.set(lease, merge=True)
        return record(prompt)

    execution_id, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=build)
    assert calls == 1
    assert sorted(limits.get().to_dict()["leases"]) == sorted(["elsewhere", execution_id])
    assert [d.id for d in db.collection("executions").stream()] == [execution_id]

    # Now at the cap of 2: refused, and nothing written.
    with pytest.raises(LimitExceeded) as refused:
        await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    assert refused.value.code == "concurrency_limit"
    assert len(list(db.collection("executions").stream())) == 1


async def test_many_openings_of_one_user_never_exceed_the_cap(
    firestore_emulator: FirestoreEmulator, db: Any
) -> None:
    """Six openings at once, through two stores (two instances): their locks cannot
    serialise them, only the conditional commits can."""
    add_prompt(db, "p1")
    settings = Settings(project_id=PROJECT, max_concurrent_streams=2)
    stores = [Store(settings, emulator_host=firestore_emulator.host) for _ in range(2)]
    outcomes: list[str] = []

    async def one(store: Store) -> None:
        try:
            await store.begin_execution(uid="bob", prompt_id="p1", build=record)
            outcomes.append("opened")
        except LimitExceeded as exc:
            outcomes.append(exc.code)

    try:
        await asyncio.gather(*(one(stores[i % 2]) for i in range(6)))
    finally:
        for store in stores:
            await store.close()
    assert sorted(outcomes) == ["concurrency_limit"] * 4 + ["opened"] * 2
    leases = db.collection("user_limits").document("bob").get().to_dict()["leases"]
    assert sorted(leases) == sorted(d.id for d in db.collection("executions").stream())


# -- the function, when Firestore is not there -------------------------------------------


@pytest.fixture(scope="module")
def silent_firestore() -> Iterator[str]:
    """A listener that never accepts: the kernel completes connections into its backlog,
    and requests sent on them are never answered."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize("firestore", ["refused", "silent"])
def test_firestore_out_of_reach_is_503_and_nothing_goes_upstream(
    firestore: str, silent_firestore: str, fake_upstream: FakeOpenRouterThread, serve: Serve
) -> None:
    host = f"127.0.0.1:{free_port()}" if firestore == "refused" else silent_firestore
    fake_upstream.reset()
    env = {"FIRESTORE_TIMEOUT_SECONDS": "1"}
    with serve(env=env, firestore_host=host) as server:
        got = post(server, body(variables={"topic": "x"}))
        assert got.status == 503
        assert got.error()["code"] == "unavailable"
        assert got.seconds < 5  # one timeout of 1 s (reads are retried only on error statuses)
        assert fake_upstream.stats()["requests"] == 0
        # The instance still serves: a second request is refused the same way.
        assert post(server, body(variables={"topic": "x"})).status == 503
        assert "request failed" in server.log_text()


def test_a_final_commit_that_fails_is_logged_and_the_stream_still_ends_cleanly(
    firestore_emulator: FirestoreEmulator, serve: Serve, db: Any
) -> None:
    add_prompt(db, content="Tell me about {{topic}}. [[fake chunks=20 delay=0.05]]")
    proxy = TcpProxy(firestore_emulator.host)
    env = {"FIRESTORE_TIMEOUT_SECONDS": "2"}
    with serve(env=env, firestore_host=proxy.host) as server:
        # Read by hand: the start event, then Firestore goes away, then the rest.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("POST", "/", body=body(variables={"topic": "x"}), headers=auth())
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.readline().startswith(b"event: start")  # the record is open
            proxy.cut()
            # The whole body, through the closing chunk (http.client raises
            # IncompleteRead otherwise).
            rest = resp.read()
        finally:
            conn.close()
        assert b"event: end" in rest and rest.endswith(b"data: [DONE]\n\n")
        wait_until(lambda: "record not finalised" in server.log_text())
        logged = [r for r in server.log_records() if r.get("message") == "record not finalised"]
    assert len(logged) == 1
    [record] = [d.to_dict() for d in db.collection("executions").stream()]
    assert record["status"] == "streaming"  # left for the lease to lapse
    assert logged[0]["execution_id"] == db.collection("executions").get()[0].id
