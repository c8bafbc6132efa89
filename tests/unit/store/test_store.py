"""The store's writes, with a scripted server on loopback playing Firestore's REST API
(tests/support/scripted.py; the store calls it as it calls the emulator): what an opening
reads and commits (and on which precondition), a loser reading again, a refusal writing
nothing, the settle apart, and the day's count (an upload's too, through the
``UploadStore`` built beside it). (The same calls against the emulator are
tests/integration/test_firestore_rest.py's.)"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from promptstream import Settings
from promptstream.store._limits import LimitExceeded
from promptstream.store._store import Store, auto_id
from promptstream.store._uploads import UploadStore
from support.fakes import FakeCredentials
from support.scripted import ScriptedServer

ROOT = "projects/prod/databases/(default)/documents"
BATCH_GET = f"/v1/{ROOT}:batchGet"
COMMIT = f"/v1/{ROOT}:commit"
UPDATED = "2026-11-30T10:00:00.000001Z"


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


@pytest.fixture
def firestore(scripted: ScriptedServer) -> ScriptedServer:
    return scripted


@pytest.fixture
async def store(firestore: ScriptedServer) -> AsyncIterator[Store]:
    store = Store(
        Settings(project_id="prod", max_concurrent_streams=1),
        emulator_host=f"127.0.0.1:{firestore.port}",
        credentials=FakeCredentials(),
    )
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def uploads(store: Store) -> UploadStore:
    """The uploads' calls, built beside the store as the service builds them."""
    return UploadStore(Settings(project_id="prod", max_concurrent_streams=1), store)


def found(path: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"found": {"name": f"{ROOT}/{path}", "fields": fields, "updateTime": UPDATED}}


def missing(path: str) -> dict[str, Any]:
    return {"missing": f"{ROOT}/{path}"}


PROMPT = found(
    "prompts/p1",
    {"owner_uid": {"stringValue": "alice"}, "content": {"stringValue": "Hi {{x}}"}},
)


def sent(firestore: ScriptedServer, path: str) -> list[Any]:
    return [request.json() for request in firestore.sent(path)]


def record(prompt: Any) -> tuple[dict[str, Any], int, Any]:
    return {"prompt_id": prompt.id}, 100, prompt


async def test_an_opening_reads_both_documents_and_commits_lease_and_record(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[PROMPT, missing("user_limits/alice")])
    firestore.post(COMMIT, payload={"writeResults": [{}, {}]})
    execution_id, prompt = await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    assert (prompt.id, prompt.owner_uid, prompt.content) == ("p1", "alice", "Hi {{x}}")
    [read] = sent(firestore, BATCH_GET)
    assert read["documents"] == [f"{ROOT}/prompts/p1", f"{ROOT}/user_limits/alice"]
    [commit] = sent(firestore, COMMIT)
    limits, opened = commit["writes"]
    assert limits["currentDocument"] == {"exists": False}  # no limits read: none may appear
    assert limits["update"]["fields"]["uid"] == {"stringValue": "alice"}
    assert set(limits["update"]["fields"]["leases"]["mapValue"]["fields"]) == {execution_id}
    assert opened["update"]["name"] == f"{ROOT}/executions/{execution_id}"
    assert opened["currentDocument"] == {"exists": False}
    assert opened["update"]["fields"]["status"] == {"stringValue": "streaming"}
    assert opened["updateTransforms"][0]["fieldPath"] == "created_at"


async def test_a_commit_that_loses_reads_again_on_the_new_update_time(
    store: Store, firestore: ScriptedServer
) -> None:
    limits = found("user_limits/alice", {"day": {"stringValue": today()}})
    conflict = {"error": {"status": "FAILED_PRECONDITION", "message": "changed"}}
    firestore.post(BATCH_GET, payload=[PROMPT, missing("user_limits/alice")])
    firestore.post(COMMIT, status=400, payload=conflict)
    firestore.post(BATCH_GET, payload=[limits])
    firestore.post(COMMIT, payload={})
    told: list[tuple[str, int]] = []

    def admitted(execution_id: str, _: Any) -> None:
        told.append((execution_id, len(firestore.sent(COMMIT))))

    execution_id, _ = await store.begin_execution(
        uid="alice", prompt_id="p1", build=record, admitted=admitted
    )
    first, second = sent(firestore, COMMIT)
    assert first["writes"][0]["currentDocument"] == {"exists": False}
    assert second["writes"][0]["currentDocument"] == {"updateTime": UPDATED}
    # The second attempt reads the limits alone; the caller was told once, before the
    # first commit went out (its upstream call overlaps the commit: ADR 1000).
    assert [r["documents"] for r in sent(firestore, BATCH_GET)][1] == [f"{ROOT}/user_limits/alice"]
    assert told == [(execution_id, 0)]


async def test_a_lost_race_refused_on_the_read_again_raises_after_the_caller_was_told(
    store: Store, firestore: ScriptedServer
) -> None:
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    leases = {"mapValue": {"fields": {"elsewhere": {"integerValue": str(now_ms)}}}}
    conflict = {"error": {"status": "FAILED_PRECONDITION", "message": "changed"}}
    firestore.post(BATCH_GET, payload=[PROMPT, missing("user_limits/alice")])
    firestore.post(COMMIT, status=400, payload=conflict)
    firestore.post(BATCH_GET, payload=[found("user_limits/alice", {"leases": leases})])
    told: list[str] = []
    with pytest.raises(LimitExceeded) as refused:
        await store.begin_execution(
            uid="alice", prompt_id="p1", build=record, admitted=lambda i, _: told.append(i)
        )
    assert refused.value.code == "concurrency_limit"
    assert len(told) == 1 and len(sent(firestore, COMMIT)) == 1


async def test_a_refusal_writes_nothing(store: Store, firestore: ScriptedServer) -> None:
    seen: list[Any] = []

    def refuse(prompt: Any) -> Any:
        seen.append(prompt)
        raise LookupError

    firestore.post(BATCH_GET, payload=[missing("prompts/p1"), missing("user_limits/alice")])
    with pytest.raises(LookupError):
        await store.begin_execution(uid="alice", prompt_id="p1", build=refuse)
    assert seen == [None] and sent(firestore, COMMIT) == []


async def test_a_user_at_the_cap_is_refused_before_any_commit(
    store: Store, firestore: ScriptedServer
) -> None:
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    leases = {"mapValue": {"fields": {"e0": {"integerValue": str(now_ms)}}}}
    limits = found("user_limits/alice", {"leases": leases})
    firestore.post(BATCH_GET, payload=[PROMPT, limits])
    told: list[str] = []
    with pytest.raises(LimitExceeded):
        await store.begin_execution(
            uid="alice", prompt_id="p1", build=record, admitted=lambda i, _: told.append(i)
        )
    # Refused on the read: nobody was told, so no upstream call was started.
    assert sent(firestore, COMMIT) == [] and told == []


async def test_a_uid_with_a_slash_is_kept_under_its_key(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[PROMPT, missing("user_limits/~a~2Fb")])
    firestore.post(COMMIT, payload={})
    await store.begin_execution(uid="a/b", prompt_id="p1", build=record)
    [read] = sent(firestore, BATCH_GET)
    assert read["documents"][1] == f"{ROOT}/user_limits/~a~2Fb"


def streaming(execution_id: str = "e1", status: str = "streaming") -> dict[str, Any]:
    return found(f"executions/{execution_id}", {"status": {"stringValue": status}})


async def test_finishing_updates_the_record_and_debits_in_one_commit(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[streaming()])
    firestore.post(COMMIT, payload={})
    assert await store.finish_execution(
        uid="alice", execution_id="e1", fields={"status": "completed"}, tokens=-5
    )
    [commit] = sent(firestore, COMMIT)
    update, release = commit["writes"]
    assert update["updateMask"] == {"fieldPaths": ["status"]}
    # Only while the record is the streaming one read: a repair may have ended it since.
    assert update["currentDocument"] == {"updateTime": UPDATED}
    assert release["updateMask"]["fieldPaths"] == ["leases.e1", "reserved.e1"]
    # A negative count is never debited as a credit.
    assert release["updateTransforms"] == [
        {"fieldPath": "tokens_today", "increment": {"integerValue": "0"}}
    ]


async def test_a_record_the_repair_ended_is_not_finished_nor_debited_again(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[streaming(status="interrupted")])
    assert not await store.finish_execution(
        uid="alice", execution_id="e1", fields={"status": "completed"}, tokens=5
    )
    assert sent(firestore, COMMIT) == []


OPENED = "2026-11-30T10:00:01.000002Z"
# What the emulator answers an opening's commit: the limits' and the record's update times.
OPENING = {"writeResults": [{"updateTime": UPDATED}, {"updateTime": OPENED}]}


async def test_a_finish_commits_on_the_update_time_of_the_opening_without_a_read(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[PROMPT, missing("user_limits/alice")])
    firestore.post(COMMIT, payload=OPENING)
    firestore.post(COMMIT, payload={})
    execution_id, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    assert await store.finish_execution(
        uid="alice", execution_id=execution_id, fields={"status": "completed"}, tokens=5
    )
    assert len(sent(firestore, BATCH_GET)) == 1  # the opening's read alone
    finish = sent(firestore, COMMIT)[1]
    assert finish["writes"][0]["currentDocument"] == {"updateTime": OPENED}


async def test_a_finish_whose_condition_fails_reads_the_record_and_commits_on_it(
    store: Store, firestore: ScriptedServer
) -> None:
    conflict = {"error": {"status": "FAILED_PRECONDITION", "message": "changed"}}
    firestore.post(BATCH_GET, payload=[PROMPT, missing("user_limits/alice")])
    firestore.post(COMMIT, payload=OPENING)
    # A checkpoint wrote the record since the opening.
    firestore.post(COMMIT, status=400, payload=conflict)
    execution_id, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    firestore.post(BATCH_GET, payload=[streaming(execution_id)])
    firestore.post(COMMIT, payload={})
    assert await store.finish_execution(
        uid="alice", execution_id=execution_id, fields={"status": "completed"}, tokens=5
    )
    last = sent(firestore, COMMIT)[-1]
    assert last["writes"][0]["currentDocument"] == {"updateTime": UPDATED}


async def test_release_is_false_when_the_lease_is_already_gone(
    store: Store, firestore: ScriptedServer
) -> None:
    limits = found("user_limits/alice", {"leases": {"mapValue": {"fields": {}}}})
    firestore.post(BATCH_GET, payload=[limits])
    assert await store.release(uid="alice", execution_id="e1", tokens=3) is False
    assert sent(firestore, COMMIT) == []


def lease_held(day: str) -> dict[str, Any]:
    return found(
        "user_limits/alice",
        {
            "day": {"stringValue": day},
            "upload_leases": {"mapValue": {"fields": {"u1": {"integerValue": "5"}}}},
            "documents": {"mapValue": {"fields": {"doc": {"integerValue": "5"}}}},
        },
    )


async def test_settling_an_upload_on_a_new_day_starts_the_count_and_else_increments(
    uploads: UploadStore, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[lease_held("2020-01-01"), missing("documents/doc")])
    firestore.post(COMMIT, payload={})
    firestore.post(BATCH_GET, payload=[lease_held(today()), found("documents/doc", {})])
    firestore.post(COMMIT, payload={})
    for _ in range(2):
        assert await uploads.settle_upload(
            uid="alice", upload_id="u1", document_id="doc", stamp=5, tokens=7
        )
    first, second = (c["writes"][0] for c in sent(firestore, COMMIT))
    assert first["update"]["fields"]["tokens_today"] == {"integerValue": "7"}
    # The upload left no document: its id leaves the user's set with the lease.
    assert first["updateMask"]["fieldPaths"] == [
        "upload_leases.u1",
        "reserved.u1",
        "documents.doc",
        "day",
        "tokens_today",
    ]
    assert second["updateTransforms"][0]["increment"] == {"integerValue": "7"}
    # Someone else's document of that id is not the user's: still not counted.
    assert "documents.doc" in second["updateMask"]["fieldPaths"]
    assert second["currentDocument"] == {"updateTime": UPDATED}


async def test_an_upload_settled_already_is_not_debited_twice(
    uploads: UploadStore, firestore: ScriptedServer
) -> None:
    settled = found("user_limits/alice", {"day": {"stringValue": today()}})
    firestore.post(BATCH_GET, payload=[settled, missing("documents/doc")])
    assert not await uploads.settle_upload(
        uid="alice", upload_id="u1", document_id="doc", stamp=5, tokens=7
    )
    assert sent(firestore, COMMIT) == []


def test_auto_ids_are_twenty_letters_and_digits_and_differ() -> None:
    ids = {auto_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 20 and i.isalnum() and i.isascii() for i in ids)


async def test_the_user_lock_holds_one_user_never_another_and_is_dropped_when_free(
    store: Store,
) -> None:
    # A uid that a striping by hash over 64 locks would have put with "a".
    other = next(u for u in (f"u{i}" for i in range(100_000)) if hash(u) % 64 == hash("a") % 64)
    async with store.user_lock("a"):
        async with asyncio.timeout(1), store.user_lock(other):
            pass  # another user never waits for this one's round trips
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05), store.user_lock("a"):
                pass
    # Bounded: a lock lives only while it is held or waited for.
    assert store._user_locks == {}
