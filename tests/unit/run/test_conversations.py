"""A follow-up's pure parts: the request's conversation fields checked together, the
first turn's fields and what it keeps of what it sent, and a follow-up prepared from its
chain (the messages, the model it continues with, the context window)."""

from __future__ import annotations

from typing import Any

import pytest

from promptstream import ExecuteRequest, HttpError, Settings
from promptstream.run._conversations import Chain
from promptstream.run._executions import Executions
from promptstream.run._prepare import prepare_follow_up
from promptstream.run._request import check
from promptstream.upstream._messages import chat_messages
from support.fakes import FakeStore, prompt

SETTINGS = Settings(
    allowed_models=("m/a", "m/b"),
    default_model="m/a",
    max_variable_chars=10,
    context_window_tokens=5000,
    default_max_tokens=1000,
)


def raw(**fields: Any) -> bytes:
    return ExecuteRequest(prompt_id="p1", **fields).model_dump_json(exclude_unset=True).encode()


FOLLOW = {"conversation_id": "c1", "parent_execution_id": "e1"}


@pytest.mark.parametrize(
    "fields",
    [
        {"conversation_id": "c1", "message": "m"},  # no parent
        {"parent_execution_id": "e1", "message": "m"},  # no conversation
        {"message": "m"},
        {"regenerate": True},
        {**FOLLOW},  # neither a message nor regenerate
        {**FOLLOW, "message": "m", "regenerate": True},  # both
        {**FOLLOW, "message": "   "},
        {**FOLLOW, "message": "m" * 11},  # past MAX_VARIABLE_CHARS
        {**FOLLOW, "message": "m", "variables": {"topic": "x"}},
        {**FOLLOW, "message": "m", "context": "c"},
        # A conversation continues the version its first turn ran.
        {**FOLLOW, "message": "m", "version": 2},
        {**FOLLOW, "message": "m", "label": "production"},
    ],
)
def test_conversation_fields_that_do_not_go_together_are_400(fields: dict[str, Any]) -> None:
    with pytest.raises(HttpError) as refused:
        check(raw(**fields), SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")


@pytest.mark.parametrize(
    "fields",
    [{}, {**FOLLOW, "message": "m" * 10}, {**FOLLOW, "regenerate": True, "model": "m/b"}],
)
def test_a_first_turn_a_follow_up_and_a_regenerate_pass(fields: dict[str, Any]) -> None:
    assert check(raw(**fields), SETTINGS)


def chain(**fields: Any) -> Chain:
    values: dict[str, Any] = {
        "conversation_id": "c1",
        "parent_id": "e2",
        "ancestors": ("c1", "e2"),
        "prompt_id": "p1",
        "system": "Be brief.",
        "context": "ctx",
        "history": (
            {"role": "user", "content": "Tell me about owls."},
            {"role": "assistant", "content": "Owls hunt at night."},
            {"role": "user", "content": "Barn owls?"},
            {"role": "assistant", "content": "Heart-shaped faces."},
        ),
        "message": "Why?",
        "regenerate": False,
        "model": "m/b",
        "document_ids": (),
        "query": "Barn owls?\nWhy?",
        **fields,
    }
    return Chain(**values)


def follow_up(**fields: Any) -> ExecuteRequest:
    return ExecuteRequest(prompt_id="p1", **{**FOLLOW, "message": "Why?", **fields})


def test_a_follow_up_sends_its_chain_and_continues_with_the_parent_s_model() -> None:
    ex = prepare_follow_up("alice", follow_up(), prompt(), chain(), SETTINGS)
    assert (ex.model, ex.turn, ex.conversation_id, ex.parent_execution_id) == ("m/b", 3, "c1", "e2")
    messages = chat_messages(ex.upstream_prompt, ex.system_prompt, ex.context, ex.history)
    assert [m["role"] for m in messages] == [
        "system",
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[-1] == {"role": "user", "content": "Why?"}
    assert ex.prompt_tokens == chain().tokens() > 0
    # The conversation so far counts as the parent counted it, the new message estimated.
    assert chain(earlier_tokens=1000).tokens() == 1000 + chain().tokens()
    # The request's model wins over the parent's.
    assert (
        prepare_follow_up("alice", follow_up(model="m/a"), prompt(), chain(), SETTINGS).model
        == "m/a"
    )
    assert ex.conversation == {"conversation_id": "c1", "parent_execution_id": "e2", "turn": 3}


def test_a_follow_up_records_the_version_its_first_turn_ran() -> None:
    assert chain(prompt_version=2).record()["prompt_version"] == 2
    # A first turn from before versions recorded none: the follow-up claims none either.
    assert chain().record()["prompt_version"] is None


def test_a_follow_up_searches_the_first_turn_s_documents_with_its_query() -> None:
    ex = prepare_follow_up(
        "alice",
        follow_up(top_k=1),
        prompt(document_ids=("other",)),
        chain(document_ids=("d1",)),
        SETTINGS,
    )
    assert (ex.document_ids, ex.query) == (("d1",), "Barn owls?\nWhy?")


def test_a_follow_up_past_the_context_window_is_413_with_its_figures() -> None:
    long = chain(earlier_tokens=4500)
    with pytest.raises(HttpError) as refused:
        prepare_follow_up("alice", follow_up(), prompt(), long, SETTINGS)
    error = refused.value
    assert (error.status, error.code) == (413, "conversation_too_long")
    assert error.details["context_window_tokens"] == 5000
    assert error.details["tokens"] > 5000
    # max_tokens counts: the same chain fits with a small enough answer.
    fits = chain(earlier_tokens=300)
    prepare_follow_up("alice", follow_up(max_tokens=100), prompt(), fits, SETTINGS)
    with pytest.raises(HttpError):
        prepare_follow_up("alice", follow_up(max_tokens=4900), prompt(), fits, SETTINGS)


def test_another_user_s_private_prompt_is_not_found_on_a_follow_up_too() -> None:
    with pytest.raises(HttpError) as refused:
        prepare_follow_up("alice", follow_up(), prompt(owner_uid="bob"), chain(), SETTINGS)
    assert refused.value.code == "prompt_not_found"


async def test_a_first_turn_is_its_own_conversation_and_keeps_what_it_sent() -> None:
    store = FakeStore(SETTINGS, {"p1": prompt(system_prompt="Be {{topic}}.")})
    executions = Executions(SETTINGS, store, str)  # type: ignore[arg-type]
    body = ExecuteRequest(prompt_id="p1", variables={"topic": "owls"}, context="ctx")
    ex = await executions.open("alice", body)
    record = store.records[ex.execution_id]
    assert {
        k: record[k] for k in ("conversation_id", "parent_execution_id", "turn", "message")
    } == {
        "conversation_id": ex.execution_id,
        "parent_execution_id": None,
        "turn": 1,
        "message": None,
    }
    assert store.sent[ex.execution_id] == {
        "system": "Be owls.",
        "context": "ctx",
        "user": "Tell me about owls.",
        "query": None,
        "owner_uid": "alice",
    }
