"""The token counts an upstream reports: believed only as integers from 0 to a cap drawn
from the request's size; anything else is an ``InvalidResponseError`` (upstream_error).
And whatever is added up, a record's finish never writes a count Firestore refuses."""

from __future__ import annotations

from typing import Any

import pytest

from promptstream import ExecuteRequest, Settings
from promptstream._errors import InvalidResponseError
from promptstream._usage import check_usage, token_cap, tokens_reported
from promptstream.run._executions import Executions
from promptstream.run._prepare import Outcome
from support.fakes import FakeStore, prompt

CAP = token_cap(100, 10)


def test_the_cap_is_twice_the_body_and_four_times_the_answer_allowed() -> None:
    assert CAP == 2 * 100 + 4 * 10
    assert token_cap(100, 0) == 200  # embeddings write nothing
    assert token_cap(100, None) == 200 + 4_000_000  # no max_tokens sent
    assert token_cap(300_000, 32_000) < 2**63


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 0, "completion_tokens": CAP, "total_tokens": CAP},
        {"total_tokens": 5.0},  # an integral float is a count
        {"total_tokens": None, "cost": -1.5, "is_byok": True},  # not counts: not checked here
        {"completion_tokens_details": {"reasoning_tokens": 3, "note": "x"}},
        "not an object",
    ],
)
def test_believable_counts_pass(usage: Any) -> None:
    check_usage(usage, CAP)


@pytest.mark.parametrize(
    "usage",
    [
        {"total_tokens": 2**64},
        {"total_tokens": CAP + 1},
        {"prompt_tokens": -1},
        {"completion_tokens": True},
        {"total_tokens": "12"},
        {"total_tokens": 1.5},
        {"total_tokens": float("inf")},
        {"completion_tokens_details": {"reasoning_tokens": 2**63}},
        {"prompt_tokens_details": {"cached_tokens": -3}},
    ],
    ids=repr,
)
def test_an_impossible_count_is_an_invalid_response_with_the_partial_text(usage: Any) -> None:
    with pytest.raises(InvalidResponseError) as info:
        check_usage(usage, CAP, "so far")
    assert info.value.code == "upstream_error"
    assert info.value.partial == "so far"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, None),
        ({}, None),
        ({"total_tokens": None}, None),
        ({"total_tokens": 0}, 0),
        ({"total_tokens": 7}, 7),
    ],
)
def test_an_embeddings_count_is_none_when_not_sent(usage: Any, expected: int | None) -> None:
    assert tokens_reported(usage, CAP) == expected


def test_an_impossible_embeddings_count_is_an_invalid_response() -> None:
    with pytest.raises(InvalidResponseError):
        tokens_reported({"total_tokens": CAP + 1}, CAP)


async def test_finish_never_writes_a_count_past_int64() -> None:
    settings = Settings(max_prompt_chars=200, max_context_chars=100)
    store = FakeStore(settings, {"p1": prompt()})
    executions = Executions(settings, store, str)  # type: ignore[arg-type]
    ex = await executions.open("alice", ExecuteRequest(prompt_id="p1", variables={"topic": "o"}))
    ex.retrieval_tokens = 2**64  # however it came to be
    await executions.finish(ex, Outcome("completed", usage={"total_tokens": 10}))
    assert store.records[ex.execution_id]["tokens_debited"] == 2**63 - 1
    assert store.limits["alice"]["leases"] == {}
