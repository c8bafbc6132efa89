"""The repair of an execution whose instance died (docs/adr/0601-leases-that-prove-alive.md):
the text of its checkpoints, the fields that end it ``interrupted``, and its commits, with
a scripted server on loopback playing Firestore's REST API: alone (resume, the sweep)
and in a refused opening's commit; the sweep (run/_repair.py) past a record it cannot
repair. (Against the emulator, with a worker killed: tests/integration/test_crash.py.)"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from promptstream import Settings
from promptstream._sse import encode_event
from promptstream._tokens import estimate_tokens
from promptstream.run._repair import Repair
from promptstream.store._firestore import encode_fields
from promptstream.store._limits import LimitExceeded
from promptstream.store._records import (
    checkpointed_text,
    interrupted_fields,
    repair_execution,
    silent_query,
)
from promptstream.store._store import Store
from support import ROOT as ROOT_DIR
from support.fakes import FakeCredentials
from support.scripted import ScriptedServer

ROOT = "projects/prod/databases/(default)/documents"
BATCH_GET = f"/v1/{ROOT}:batchGet"
COMMIT = f"/v1/{ROOT}:commit"
RECORD_TIME = "2026-12-07T11:00:00.000001Z"
LIMITS_TIME = "2026-12-07T11:00:00.000002Z"
SETTINGS = Settings(project_id="prod", max_concurrent_streams=1, lease_ttl_seconds=60)


def content(n: int, text: str, reasoning: str | None = None) -> str:
    data: dict[str, Any] = {"content": text, "finish_reason": None}
    if reasoning is not None:
        data["reasoning"] = reasoning
    return encode_event(json.dumps(data), id=n).decode()


def segment(first_id: int, *events: str) -> dict[str, Any]:
    return {"first_id": first_id, "events": list(events)}


def test_the_checkpointed_text_is_every_content_event_once_in_order() -> None:
    end = encode_event(json.dumps({"execution_id": "e1"}), event="end", id=5).decode()
    segments = [
        segment(1, content(1, "Hel"), content(2, "lo", "think")),
        # Written twice (a checkpoint retried, a segment split): each id counts once.
        segment(2, content(2, "lo", "think"), content(3, " wor")),
        segment(4, content(4, "ld\n\u00e9\U0001f600"), end),
        {"first_id": 9, "events": "not a list"},
        segment(10, "junk", 7),  # type: ignore[arg-type]
    ]
    assert checkpointed_text(segments) == ("Hello world\n\u00e9\U0001f600", "think")
    assert checkpointed_text([]) == ("", "")


def test_the_interrupted_fields_keep_the_text_within_the_bound_and_debit_an_estimate() -> None:
    text = "word " * 50
    record = {"status": "streaming", "prompt_tokens_estimate": 120}
    settings = Settings(record_text_chars=100)
    fields, tokens = interrupted_fields(record, [segment(1, content(1, text, "r"))], settings)
    assert (fields["status"], fields["error_code"]) == ("interrupted", "interrupted")
    assert fields["output"] == text[:100] and fields["reasoning"] is None
    assert fields["truncated"] is True
    # The estimate counts the whole text, as a finish without usage does.
    assert tokens == fields["tokens_debited"] == 120 + estimate_tokens(text) + estimate_tokens("r")


@pytest.fixture
async def store(scripted: ScriptedServer) -> AsyncIterator[Store]:
    store = Store(
        SETTINGS, emulator_host=f"127.0.0.1:{scripted.port}", credentials=FakeCredentials()
    )
    try:
        yield store
    finally:
        await store.close()


def doc(path: str, fields: dict[str, Any], update_time: str) -> dict[str, Any]:
    return {"name": f"{ROOT}/{path}", "fields": encode_fields(fields), "updateTime": update_time}


def now_ms(seconds_ago: float = 0) -> int:
    return int((dt.datetime.now(dt.UTC).timestamp() - seconds_ago) * 1000)


def silent_record(execution_id: str = "e1", owner: str = "alice", **fields: Any) -> Any:
    silent = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120)
    record = {
        "owner_uid": owner,
        "status": "streaming",
        "resumable": True,
        "alive_at": silent,
        "prompt_tokens_estimate": 10,
        **fields,
    }
    return {"found": doc(f"executions/{execution_id}", record, RECORD_TIME)}


def limits_doc(leases: dict[str, int], **fields: Any) -> Any:
    day = dt.datetime.now(dt.UTC).date().isoformat()
    data = {"uid": "alice", "leases": leases, "reserved": dict.fromkeys(leases, 500)}
    return {
        "found": doc(
            "user_limits/alice", {"day": day, "tokens_today": 0, **data, **fields}, LIMITS_TIME
        )
    }


def segments_reply(scripted: ScriptedServer, execution_id: str = "e1") -> None:
    found = [
        {
            "document": doc(
                f"executions/{execution_id}/segments/00000001",
                segment(1, content(1, "partial")),
                RECORD_TIME,
            )
        }
    ]
    scripted.post(f"/v1/{ROOT}/executions/{execution_id}:runQuery", payload=found)


async def test_a_silent_record_is_ended_with_its_lease_in_one_commit_on_both_update_times(
    store: Store, scripted: ScriptedServer
) -> None:
    scripted.post(BATCH_GET, payload=[silent_record(), limits_doc({"e1": now_ms(120)})])
    segments_reply(scripted)
    scripted.post(COMMIT, payload={})
    record, ended = await repair_execution(
        store.rest, SETTINGS, owner_uid="alice", execution_id="e1"
    )
    assert ended and record is not None and record["status"] == "interrupted"
    assert record["output"] == "partial"
    [commit] = [r.json() for r in scripted.sent(COMMIT)]
    ended, released = commit["writes"]
    assert ended["currentDocument"] == {"updateTime": RECORD_TIME}
    assert ended["update"]["fields"]["status"] == {"stringValue": "interrupted"}
    assert ended["update"]["fields"]["output"] == {"stringValue": "partial"}
    assert released["currentDocument"] == {"updateTime": LIMITS_TIME}
    assert released["updateMask"]["fieldPaths"] == ["leases.e1", "reserved.e1"]
    tokens = 10 + estimate_tokens("partial")
    assert released["updateTransforms"] == [
        {"fieldPath": "tokens_today", "increment": {"integerValue": str(tokens)}}
    ]


async def test_a_record_that_shows_life_or_ended_or_is_anothers_is_left_as_it_is(
    store: Store, scripted: ScriptedServer
) -> None:
    alive = dt.datetime.now(dt.UTC)
    cases = [
        (silent_record(alive_at=alive), "streaming"),
        (silent_record(status="completed"), "completed"),
        (silent_record(owner="bob"), None),
        ({"missing": f"{ROOT}/executions/e1"}, None),
    ]
    for found, status in cases:
        scripted.post(BATCH_GET, payload=[found, limits_doc({"e1": now_ms(120)})])
        record, ended = await repair_execution(
            store.rest, SETTINGS, owner_uid="alice", execution_id="e1"
        )
        assert (record or {}).get("status") == status and not ended
    assert scripted.sent(COMMIT) == []


async def test_a_record_whose_lease_is_gone_is_ended_and_debited_nothing(
    store: Store, scripted: ScriptedServer
) -> None:
    scripted.post(BATCH_GET, payload=[silent_record(), limits_doc({})])
    segments_reply(scripted)
    scripted.post(COMMIT, payload={})
    record, _ = await repair_execution(store.rest, SETTINGS, owner_uid="alice", execution_id="e1")
    assert record is not None and record["tokens_debited"] == 0
    [commit] = [r.json() for r in scripted.sent(COMMIT)]
    [ended] = commit["writes"]
    assert ended["update"]["fields"]["tokens_debited"] == {"integerValue": "0"}


PROMPT = {"found": doc("prompts/p1", {"owner_uid": "alice", "content": "Hi"}, RECORD_TIME)}


def build(prompt: Any) -> tuple[dict[str, Any], int, Any]:
    return {"prompt_id": prompt.id}, 100, prompt


async def test_an_opening_at_the_cap_repairs_the_dead_execution_in_its_own_commit(
    store: Store, scripted: ScriptedServer
) -> None:
    scripted.post(BATCH_GET, payload=[PROMPT, limits_doc({"e1": now_ms(120)})])
    scripted.post(BATCH_GET, payload=[silent_record()])
    segments_reply(scripted)
    scripted.post(COMMIT, payload={})
    execution_id, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=build)
    [commit] = [r.json() for r in scripted.sent(COMMIT)]
    ended, limits, opened = commit["writes"]
    assert ended["update"]["name"] == f"{ROOT}/executions/e1"
    assert ended["currentDocument"] == {"updateTime": RECORD_TIME}
    assert limits["currentDocument"] == {"updateTime": LIMITS_TIME}
    fields = limits["update"]["fields"]
    assert list(fields["leases"]["mapValue"]["fields"]) == [execution_id]
    assert fields["tokens_today"] == {"integerValue": str(10 + estimate_tokens("partial"))}
    assert opened["update"]["name"] == f"{ROOT}/executions/{execution_id}"


async def test_an_opening_at_the_cap_with_live_executions_is_refused_after_one_more_read(
    store: Store, scripted: ScriptedServer
) -> None:
    alive = dt.datetime.now(dt.UTC)
    scripted.post(BATCH_GET, payload=[PROMPT, limits_doc({"e1": now_ms(120)})])
    scripted.post(BATCH_GET, payload=[silent_record(alive_at=alive)])
    with pytest.raises(LimitExceeded):
        await store.begin_execution(uid="alice", prompt_id="p1", build=build)
    assert scripted.sent(COMMIT) == []


async def test_a_repair_that_leaves_the_user_over_the_budget_is_committed_then_refused(
    store: Store, scripted: ScriptedServer
) -> None:
    spent = limits_doc({"e1": now_ms(120)}, tokens_today=SETTINGS.daily_token_budget)
    scripted.post(BATCH_GET, payload=[PROMPT, spent])
    scripted.post(BATCH_GET, payload=[silent_record()])
    segments_reply(scripted)
    scripted.post(COMMIT, payload={})
    with pytest.raises(LimitExceeded) as refused:
        await store.begin_execution(uid="alice", prompt_id="p1", build=build)
    assert refused.value.code == "budget_exceeded"
    [commit] = [r.json() for r in scripted.sent(COMMIT)]
    ended, limits = commit["writes"]
    assert ended["update"]["name"] == f"{ROOT}/executions/e1"
    assert limits["update"]["fields"]["leases"] == {"mapValue": {"fields": {}}}


def test_the_sweep_s_query_has_its_composite_index() -> None:
    query = silent_query(dt.datetime.now(dt.UTC), 10)
    filters = query["where"]["compositeFilter"]["filters"]
    wanted = [f["fieldFilter"]["field"]["fieldPath"] for f in filters]
    indexes = json.loads((ROOT_DIR / "firestore.indexes.json").read_text())["indexes"]
    declared = [
        [f["fieldPath"] for f in index["fields"]]
        for index in indexes
        if index["collectionGroup"] == "executions"
    ]
    assert wanted in declared


async def test_the_sweep_goes_on_past_a_record_it_cannot_repair(
    store: Store, scripted: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    query = f"/v1/{ROOT}:runQuery"
    owners = [
        {"document": doc("executions/e1", {"owner_uid": "alice"}, RECORD_TIME)},
        {"document": doc("executions/e2", {"owner_uid": "alice"}, RECORD_TIME)},
    ]
    scripted.post(query, payload=owners)
    for _ in range(3):  # e1's reads fail, retries and all
        scripted.post(BATCH_GET, status=503, payload={"error": {"status": "UNAVAILABLE"}})
    scripted.post(BATCH_GET, payload=[silent_record("e2"), limits_doc({"e2": now_ms(120)})])
    segments_reply(scripted, "e2")
    scripted.post(COMMIT, payload={})
    assert await Repair(SETTINGS, store).sweep(dt.datetime.now(dt.UTC)) == 1
    assert len(scripted.sent(COMMIT)) == 1
    logged = capsys.readouterr()
    assert '"repair failed"' in logged.err and '"execution_id": "e1"' in logged.err
