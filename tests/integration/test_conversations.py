"""Conversations (issue 25): follow-ups, each one execution with every guarantee, their
messages rebuilt on the server from the records of the chain (what the fake upstream was
sent is checked message by message); regenerate and edit as siblings; isolation between
users; a turn out of order; a conversation too long for the model's context; a follow-up
on a comparison column; limits and the budget per turn."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import (
    ROOT,
    FunctionServer,
    Serve,
    add_prompt,
    auth,
    body,
    executions,
    limits,
    wait_until,
)
from support.http import Reply, post, request, stream

MODELS = ["demo/local-model", "demo/fast-model"]
# No retries: a model the fake fails falls back at once.
ENV = {"ALLOWED_MODELS": ",".join(MODELS), "DEFAULT_MODEL": MODELS[0], "UPSTREAM_MAX_RETRIES": "0"}


@pytest.fixture(scope="module")
def server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("execute_prompt_stream", env=ENV) as started:
        yield started


@pytest.fixture(scope="module")
def narrow(serve: Serve) -> Iterator[FunctionServer]:
    """A small context window and a small budget."""
    env = {
        **ENV,
        "CONTEXT_WINDOW_TOKENS": "3000",
        "DAILY_TOKEN_BUDGET": "6000",
        "MAX_CONVERSATION_TURNS": "3",
    }
    with serve("execute_prompt_stream", env=env) as started:
        yield started


def run(server: FunctionServer, uid: str = "alice", **fields: Any) -> Reply:
    return post(server, body(**fields), auth(uid))


def start(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.raw[:300]
    assert reply.kinds[-2:] == ["end", "message"], reply.kinds
    [event] = reply.named("start")
    return dict(event)


def first_turn(server: FunctionServer, uid: str = "alice", **fields: Any) -> str:
    event = start(run(server, uid, variables={"topic": "otters"}, **fields))
    assert event["conversation_id"] == event["execution_id"]
    assert (event["parent_execution_id"], event["turn"]) == (None, 1)
    return str(event["execution_id"])


def follow(
    server: FunctionServer, conversation: str, parent: str, uid: str = "alice", **fields: Any
) -> Reply:
    return run(server, uid, conversation_id=conversation, parent_execution_id=parent, **fields)


def chats(fake: FakeOpenRouterThread) -> list[dict[str, Any]]:
    return [r["json"] for r in fake.requests() if r["path"].endswith("/chat/completions")]


def record(db: Any, execution_id: str) -> dict[str, Any]:
    return dict(db.collection("executions").document(execution_id).get().to_dict() or {})


def refused(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.raw[:300]
    error = reply.error()
    assert error["code"] == code, error
    return error


def test_three_turns_send_the_conversation_rebuilt_from_the_records(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, system_prompt="You are terse about {{topic}}.")
    one = first_turn(server, context="Otters hold hands.")
    two = start(follow(server, one, one, message="And sea otters?"))
    assert (two["conversation_id"], two["parent_execution_id"], two["turn"]) == (one, one, 2)
    three = start(follow(server, one, two["execution_id"], message="Why?"))
    assert three["turn"] == 3
    first_sent, second_sent, third_sent = (c["messages"] for c in chats(fake_upstream))
    out1 = record(db, one)["output"]
    out2 = record(db, two["execution_id"])["output"]
    assert out1 and out2 and out1 != out2
    assert third_sent == [
        *first_sent,
        {"role": "assistant", "content": out1},
        {"role": "user", "content": "And sea otters?"},
        {"role": "assistant", "content": out2},
        {"role": "user", "content": "Why?"},
    ]
    assert second_sent == third_sent[:-2]
    # The first turn as it went: the system prompt rendered, the context, the prompt.
    assert first_sent == [
        {"role": "system", "content": "You are terse about otters."},
        {"role": "system", "content": first_sent[1]["content"]},
        {"role": "user", "content": "Tell me about otters."},
    ]
    assert first_sent[1]["content"].endswith("Otters hold hands.")
    third = record(db, three["execution_id"])
    assert {k: third[k] for k in ("conversation_id", "parent_execution_id", "turn", "message")} == {
        "conversation_id": one,
        "parent_execution_id": two["execution_id"],
        "turn": 3,
        "message": "Why?",
    }
    assert third["ancestors"] == [one, two["execution_id"]]
    assert third["status"] == "completed"
    first = record(db, one)
    assert (first["conversation_id"], first["parent_execution_id"]) == (one, None)
    assert (first["turn"], first["message"], first["ancestors"]) == (1, None, [])


def test_the_server_never_takes_history_from_the_client(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    """A record edited where the client may not write (the rules deny it) is the only
    source: here the emulator's admin write stands for the backend's own record."""
    add_prompt(db)
    one = first_turn(server)
    db.collection("executions").document(one).update({"output": "RECORDED ANSWER"})
    start(follow(server, one, one, message="More"))
    sent = chats(fake_upstream)[-1]["messages"]
    assert sent[-2] == {"role": "assistant", "content": "RECORDED ANSWER"}
    # Fields a follow-up may not carry are refused before any read.
    for extra in ({"variables": {"topic": "x"}}, {"context": "x"}):
        reply = follow(server, one, one, message="m", **extra)
        refused(reply, 400, "invalid_request")


def test_regenerate_and_edit_are_siblings_under_one_parent(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    one = first_turn(server)
    two = start(follow(server, one, one, message="First question"))["execution_id"]
    again = start(follow(server, one, one, regenerate=True, model=MODELS[1]))
    edited = start(follow(server, one, one, message="Better question"))
    requests = chats(fake_upstream)
    assert requests[2]["messages"] == requests[1]["messages"]
    assert requests[2]["model"] == MODELS[1]
    assert requests[3]["messages"][-1] == {"role": "user", "content": "Better question"}
    siblings = {two, again["execution_id"], edited["execution_id"]}
    children = [r for r in executions(db) if r.get("parent_execution_id") == one]
    assert {r["id"] for r in children} == siblings
    assert all(r["status"] == "completed" and r["output"] for r in children)
    regenerated = record(db, again["execution_id"])
    assert (regenerated["message"], regenerated["regenerate"]) == ("First question", True)
    # A regenerate answers again the latest answer's text: the edit's now.
    start(follow(server, one, one, regenerate=True))
    assert chats(fake_upstream)[-1]["messages"][-1]["content"] == "Better question"


def test_a_follow_up_continues_with_the_model_of_its_comparison_column(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    columns = {m: first_turn(server, model=m, comparison_id="cmp-1") for m in MODELS}
    fast = columns[MODELS[1]]
    event = start(follow(server, fast, fast, message="Go on"))
    assert event["model"] == MODELS[1]
    sent = chats(fake_upstream)[-1]
    assert sent["model"] == MODELS[1]
    assert sent["messages"][-2] == {"role": "assistant", "content": record(db, fast)["output"]}
    assert record(db, event["execution_id"])["conversation_id"] == fast


def test_another_users_or_an_absent_conversation_is_the_same_404(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, public=True)
    one = first_turn(server)
    before = len(chats(fake_upstream))
    theirs = refused(
        follow(server, one, one, uid="bob", message="hi"), 404, "conversation_not_found"
    )
    absent = refused(follow(server, "nope", "nope", message="hi"), 404, "conversation_not_found")
    assert theirs == absent
    # Bob's own conversation cannot adopt Alice's turn as its parent either.
    bobs = first_turn(server, uid="bob")
    refused(follow(server, bobs, one, uid="bob", message="hi"), 404, "conversation_not_found")
    assert len(chats(fake_upstream)) == before + 1
    assert len(executions(db)) == 2


def test_a_turn_out_of_order_is_refused_before_anything_is_sent(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    add_prompt(db, "p2")
    one = first_turn(server)
    other = first_turn(server)
    before = len(chats(fake_upstream))
    # A parent of another conversation.
    error = refused(follow(server, one, other, message="m"), 409, "turn_out_of_order")
    assert error["details"]["reason"] == "other_conversation"
    # A parent still streaming, then one that failed.
    db.collection("executions").document(other).update({"status": "streaming"})
    error = refused(follow(server, other, other, message="m"), 409, "turn_out_of_order")
    assert error["details"]["reason"] == "not_finished"
    db.collection("executions").document(other).update({"status": "error", "output": ""})
    error = refused(follow(server, other, other, message="m"), 409, "turn_out_of_order")
    assert error["details"]["reason"] == "no_answer"
    # A run from before conversations kept what they sent.
    db.collection("executions").document(one).collection("input").document("sent").delete()
    error = refused(follow(server, one, one, message="m"), 409, "turn_out_of_order")
    assert error["details"]["reason"] == "not_kept"
    # Another prompt's id, and the fields that go together.
    two = first_turn(server)
    refused(follow(server, two, two, prompt_id="p2", message="m"), 400, "invalid_request")
    refused(run(server, conversation_id=two, message="m"), 400, "invalid_request")
    refused(run(server, parent_execution_id=two, message="m"), 400, "invalid_request")
    refused(follow(server, two, two), 400, "invalid_request")
    refused(follow(server, two, two, message="m", regenerate=True), 400, "invalid_request")
    refused(follow(server, two, two, message=" "), 400, "invalid_request")
    assert len(chats(fake_upstream)) == before + 1
    assert len(executions(db)) == 3


def test_a_conversation_too_long_for_the_context_is_refused_before_the_first_byte(
    db: Any, narrow: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    one = first_turn(narrow, max_tokens=100)
    before = len(chats(fake_upstream))
    reply = follow(narrow, one, one, message="word " * 4000, max_tokens=100)
    error = refused(reply, 413, "conversation_too_long")
    assert error["details"]["context_window_tokens"] == 3000
    assert error["details"]["tokens"] > 3000
    assert len(chats(fake_upstream)) == before
    assert len(executions(db)) == 1
    # Nothing held: the lease and the reservation of the refused turn were never taken.
    assert limits(db)["leases"] == {} and limits(db)["reserved"] == {}
    two = start(follow(narrow, one, one, message="short", max_tokens=100))["execution_id"]
    three = start(follow(narrow, one, two, message="short", max_tokens=100))["execution_id"]
    # Past MAX_CONVERSATION_TURNS, and past an answer too long to keep whole.
    reply = follow(narrow, one, three, message="short", max_tokens=100)
    assert "at most 3 turns" in refused(reply, 413, "conversation_too_long")["message"]
    db.collection("executions").document(two).update({"truncated": True})
    refused(follow(narrow, one, two, message="short", max_tokens=100), 413, "conversation_too_long")
    # The conversation so far counts as its last turn's record counted it.
    db.collection("executions").document(one).update({"tokens_debited": 2950})
    reply = follow(narrow, one, one, message="short", max_tokens=100)
    assert refused(reply, 413, "conversation_too_long")["details"]["tokens"] > 3000


def test_each_turn_takes_its_lease_and_is_debited_under_the_days_budget(
    db: Any, narrow: FunctionServer
) -> None:
    add_prompt(db)
    one = first_turn(narrow, max_tokens=100)
    parent = one
    for n in range(2):  # turns 2 and 3: MAX_CONVERSATION_TURNS
        parent = start(follow(narrow, one, parent, message=f"more {n}", max_tokens=100))[
            "execution_id"
        ]
    records = executions(db)
    assert [r["turn"] for r in sorted(records, key=lambda r: r["turn"])] == [1, 2, 3]
    held = limits(db)
    assert held["leases"] == {} and held["reserved"] == {}
    assert held["tokens_today"] == sum(r["tokens_debited"] for r in records)
    assert all(r["tokens_debited"] > 0 for r in records)
    # A turn once the day's budget is used up is refused like any run.
    [held_doc] = db.collection("user_limits").stream()
    held_doc.reference.update({"tokens_today": 6000})
    refused(follow(narrow, one, one, message="again", max_tokens=100), 429, "budget_exceeded")


def test_execute_prompt_continues_a_conversation_too(
    db: Any, execute_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    first = post(execute_server, body(variables={"topic": "owls"}))
    assert first.status == 200, first.raw[:300]
    one = first.json
    assert (one["conversation_id"], one["turn"]) == (one["execution_id"], 1)
    payload = body(
        conversation_id=one["execution_id"],
        parent_execution_id=one["execution_id"],
        message="And barn owls?",
    )
    two = post(execute_server, payload).json
    assert (two["parent_execution_id"], two["turn"]) == (one["execution_id"], 2)
    sent = chats(fake_upstream)[-1]["messages"]
    assert sent[-2:] == [
        {"role": "assistant", "content": one["content"]},
        {"role": "user", "content": "And barn owls?"},
    ]
    assert json.loads(json.dumps(two))["content"]


@pytest.fixture(scope="module")
def ingest_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("ingest_document") as started:
        yield started


def test_a_follow_up_searches_again_with_its_text_and_has_its_own_sources(
    db: Any,
    server: FunctionServer,
    ingest_server: FunctionServer,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    query = urllib.parse.urlencode({"document_id": "bakery", "title": "Bakery", "filename": "b.md"})
    data = (ROOT / "tests" / "data" / "kb" / "bakery.md").read_bytes()
    headers = {**auth(), "Content-Type": "text/markdown"}
    assert (
        request(ingest_server, "POST", data, headers, path="/?" + query, timeout=60).status == 200
    )
    add_prompt(
        db,
        content="Answer: {{question}}",
        variables=[{"name": "question", "required": True}],
        document_ids=["bakery"],
        top_k=2,
        retrieval_query_variable="question",
    )
    one_reply = run(server, variables={"question": "When does the shop open on Saturdays?"})
    one = start(one_reply)["execution_id"]
    [first_sources] = one_reply.named("sources")
    assert any("8:00" in s["text"] for s in first_sources)
    two_reply = follow(server, one, one, message="And what does delivery beyond that cost?")
    two = start(two_reply)["execution_id"]
    [second_sources] = two_reply.named("sources")
    assert any("four pounds" in s["text"] for s in second_sources)
    # The search carried the previous question ahead of the follow-up's.
    embedded = [
        r["json"]["input"] for r in fake_upstream.requests() if r["path"].endswith("/embeddings")
    ]
    assert embedded[-1] in (
        ["When does the shop open on Saturdays?\nAnd what does delivery beyond that cost?"],
        "When does the shop open on Saturdays?\nAnd what does delivery beyond that cost?",
    )
    # Each turn went upstream with its own passages, the first one's kept in the history.
    sent = chats(fake_upstream)[-1]["messages"]
    first_user = sent[0]["content"]
    assert all(s["text"] in first_user for s in first_sources)
    assert all(s["text"] in sent[-1]["content"] for s in second_sources)
    assert sent[-1]["content"].endswith("And what does delivery beyond that cost?")
    assert record(db, two)["document_ids"] == ["bakery"]
    assert [s["text"] for s in record(db, two)["sources"]] == [s["text"] for s in second_sources]


def test_a_follow_up_falls_back_and_is_cancelled_by_a_disconnect_like_any_run(
    db: Any, server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    one = first_turn(server, model=MODELS[1])
    # The parent's model fails before its first chunk: the follow-up's fallback answers.
    fake_upstream.configure(per_model={MODELS[1]: {"status": 503}})
    event = start(follow(server, one, one, message="Again?", fallback_models=[MODELS[0]]))
    two = record(db, event["execution_id"])
    assert (two["requested_model"], two["model"]) == (MODELS[1], MODELS[0])
    assert [a["outcome"] for a in two["attempts"]] == ["failed", "answered"]
    fake_upstream.configure(per_model={})
    # A client that leaves mid-answer cancels the follow-up: partial text, lease released.
    payload = body(
        conversation_id=one,
        parent_execution_id=event["execution_id"],
        message="Slowly [[fake chunks=40 delay=0.05]]",
    )
    got = asyncio.run(stream(server.url, payload, auth(), stop_after_content=3))
    three_id = next(e for e in got.named("start"))["execution_id"]
    three = wait_until(lambda: (r := record(db, three_id))["status"] != "streaming" and r)
    assert three["status"] == "cancelled" and three["output"].startswith(got.text())
    assert wait_until(lambda: limits(db)["leases"] == {})
    # A cancelled turn with text is followed like any other: its partial answer is the history.
    start(follow(server, one, three_id, message="Go on [[fake delay=0]]"))
    sent = chats(fake_upstream)[-1]["messages"]
    assert sent[-2] == {"role": "assistant", "content": three["output"]}
