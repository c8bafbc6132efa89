"""Issue 14, phase 2, through the server as production runs it, the Firestore emulator
and the hostile fake: names Firestore reserves, any uid Firebase accepts, everything sent
upstream counted, a per-script estimate after a disconnect, records and limits that never
stay stuck, and a budget reserved at admission."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import (
    FunctionServer,
    Serve,
    add_prompt,
    auth,
    body,
    closed_record,
    executions,
    limits,
    wait_until,
)
from support.http import Reply, post, post_prompt, stream

# -- names and uids ---------------------------------------------------------------------


def test_a_reserved_placeholder_name_is_400_not_a_failed_commit(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="Hello {{__x__}} and {{ok}}")
    got = post(stream_server, body(variables={"ok": "y"}))
    assert got.status == 400
    assert got.json["error"]["code"] == "invalid_variable_names"
    assert got.json["error"]["details"] == {"invalid": ["__x__"]}
    assert executions(db) == []


def test_any_uid_firebase_accepts_runs_and_is_limited_under_its_key(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="Say {{topic}}", public=True)
    for uid in ("a/b/c", "..", "__x__", "é.ü"):
        got = post(stream_server, body(variables={"topic": "t"}), auth(uid))
        assert got.status == 200, (uid, got.json)
        doc = limits(db, uid)
        assert doc["uid"] == uid and doc["leases"] == {} and doc["tokens_today"] > 0
    # Nothing was written under a path built from a raw uid.
    assert not db.collection("user_limits").document("a").collection("b").get()
    owners = {r["owner_uid"] for r in executions(db)}
    assert owners == {"a/b/c", "..", "__x__", "é.ü"}


# -- what counts against MAX_PROMPT_CHARS -----------------------------------------------


def test_the_context_framing_counts_against_the_prompt_limit(
    db: Any, stream_server: FunctionServer
) -> None:
    # 99,990 + 100,000 characters fit 200,000; with the context's framing sent upstream
    # too, they do not.
    add_prompt(db, content="{{topic}}" + "p" * (99_990 - 1))
    payload = body(variables={"topic": "t"}, context="c" * 100_000)
    got = post(stream_server, payload)
    assert got.status == 400
    assert got.json["error"]["code"] == "prompt_too_large"


def test_a_huge_unused_default_stays_out_of_the_record(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(
        db,
        content="Say {{topic}}",
        variables=[
            {"name": "topic", "required": True},
            {"name": "unused", "required": False, "default": "u" * 1_040_000},
        ],
    )
    got = post(stream_server, body(variables={"topic": "t" * 5000}))
    assert got.status == 200
    record = closed_record(db)
    assert record["status"] == "completed"
    # Only what the render used, each value cut to RECORD_VARIABLE_CHARS.
    assert record["variables"] == {"topic": "t" * 2000}
    assert limits(db)["leases"] == {} and limits(db)["tokens_today"] > 0


# -- the estimate after a disconnect ----------------------------------------------------


def test_a_disconnect_is_debited_per_script(db: Any, stream_server: FunctionServer) -> None:
    cjk = "漢字仮名交じり文" * 1000  # 8,000 characters: about a token each
    add_prompt(db, content="{{topic}} [[fake chunks=200 delay=0.05]]")
    got = asyncio.run(
        stream(stream_server.url, body(variables={"topic": cjk}), auth(), stop_after_content=1)
    )
    assert got.status == 200
    record = closed_record(db)
    assert record["status"] == "cancelled" and record["usage"] is None
    # Characters / 4 would have been about 2,000.
    assert record["tokens_debited"] >= 8000
    assert limits(db)["tokens_today"] == record["tokens_debited"]


# -- records and limits never stuck -----------------------------------------------------

LONG_ANSWER = "word " * 240_000  # 1.2 MB: more than a Firestore document holds


@pytest.fixture(scope="module")
def unbounded_server(serve: Serve) -> Iterator[FunctionServer]:
    """A server whose record bound is set too high, so that a final commit fails."""
    with serve("execute_prompt_stream", env={"RECORD_TEXT_CHARS": "2000000"}) as server:
        yield server


def post_long_answer(server: FunctionServer, db: Any, fake: FakeOpenRouterThread) -> Reply:
    """A run whose answer is LONG_ANSWER."""
    fake.configure(text=LONG_ANSWER, chunks=40, delay=0)
    return post_prompt(server, db, "Say {{topic}}")


def test_a_long_answer_is_cut_in_the_record_which_says_so(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    got = post_long_answer(stream_server, db, fake_upstream)
    assert got.status == 200 and len(got.text()) == len(LONG_ANSWER)
    record = closed_record(db)
    assert record["status"] == "completed" and record["truncated"] is True
    assert record["output"] == LONG_ANSWER[:200_000]
    assert limits(db)["leases"] == {} and limits(db)["reserved"] == {}


def test_a_failed_final_commit_still_releases_the_lease_and_debits(
    db: Any, unbounded_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    got = post_long_answer(unbounded_server, db, fake_upstream)
    assert got.status == 200
    record = closed_record(db)
    # The record's own commit was refused (too large); the limits were settled apart,
    # then a short record written.
    assert record["status"] == "completed" and record["truncated"] is True
    assert record["output"] == "" and record["tokens_debited"] > 0
    doc = limits(db)
    assert doc["leases"] == {} and doc["reserved"] == {}
    assert doc["tokens_today"] == record["tokens_debited"]
    messages = [r.get("message") for r in unbounded_server.log_records()]
    assert "record not finalised" in messages and "lease released apart" in messages


def test_hostile_usage_keys_do_not_block_the_final_commit(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    # (An impossible count is an upstream_error: tests/integration/test_upstream_bounds.py.)
    extra = json.dumps({"__bad__": 1, "cost": -1, "nested": {"__x__": 1}})
    add_prompt(db, content="Say {{topic}} [[fake usage_extra=" + repr(extra) + "]]")
    got = post(stream_server, body(variables={"topic": "t"}))
    assert got.status == 200
    record = closed_record(db)
    assert record["status"] == "completed"
    assert not {"__bad__", "cost", "nested"} & set(record["usage"])
    assert record["tokens_debited"] == record["usage"]["total_tokens"] > 0
    assert limits(db)["tokens_today"] == record["tokens_debited"]


# -- the budget reserved at admission ---------------------------------------------------


def test_concurrent_requests_at_the_budgets_edge_admit_at_most_one(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="Say {{topic}} [[fake chunks=20 delay=0.05]]")
    day = dt.datetime.now(dt.UTC).date().isoformat()
    db.collection("user_limits").document("alice").set(
        {"uid": "alice", "day": day, "tokens_today": 499_999, "leases": {}}
    )
    payload = body(variables={"topic": "t"}, max_tokens=32_000)

    async def five() -> list[Any]:
        return await asyncio.gather(*(stream(stream_server.url, payload, auth()) for _ in range(5)))

    got = asyncio.run(five())
    admitted = [g for g in got if g.status == 200]
    assert len(admitted) <= 1
    assert all(g.json["error"]["code"] == "budget_exceeded" for g in got if g.status != 200)
    wait_until(lambda: all(r["status"] != "streaming" for r in executions(db)))
    doc = limits(db)
    assert doc["leases"] == {} and doc["reserved"] == {}
