"""The request both endpoints take: its body read within limits (with ASGI ``receive``
played by a list of messages), and its checks against the settings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from promptstream import ExecuteRequest, HttpError, Settings
from promptstream._errors import ClientGone
from promptstream.http._endpoint import read_body
from promptstream.run._request import CancelRequest, ResumeRequest, check, check_stream

SETTINGS = Settings(
    allowed_models=("m/a", "m/b"),
    default_model="m/a",
    max_body_bytes=100,
    body_timeout_seconds=0.2,
    max_variables=3,
    max_variable_chars=10,
    max_tokens_cap=1000,
    max_documents_per_prompt=2,
    retrieval_top_k_max=5,
)


def receiving(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(60)  # a client that sends nothing more
        return queue.pop(0)

    return receive


def part(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_the_body_is_joined_from_its_parts() -> None:
    got = await read_body(receiving(part(b"ab"), part(b""), part(b"cd", more=False)), SETTINGS)
    assert got == b"abcd"


async def test_a_body_over_the_limit_is_413_as_soon_as_it_grows_past_it() -> None:
    with pytest.raises(HttpError) as refused:
        # The third part is never read: the limit is passed by the second.
        await read_body(receiving(part(b"x" * 60), part(b"x" * 60), part(b"never")), SETTINGS)
    assert (refused.value.status, refused.value.code) == (413, "payload_too_large")


async def test_a_body_that_stops_arriving_is_408() -> None:
    with pytest.raises(HttpError) as refused:
        await read_body(receiving(part(b"{")), SETTINGS)
    assert (refused.value.status, refused.value.code) == (408, "request_timeout")


async def test_the_limit_and_deadline_may_be_given() -> None:
    with pytest.raises(HttpError) as refused:
        await read_body(receiving(part(b"x" * 20, more=False)), SETTINGS, limit=10)
    assert refused.value.status == 413


async def test_a_disconnect_while_reading_is_client_gone() -> None:
    with pytest.raises(ClientGone):
        await read_body(receiving(part(b"{"), {"type": "http.disconnect"}), SETTINGS)


def test_a_valid_body_parses_with_the_model_it_names() -> None:
    body = check(b'{"prompt_id": "p1", "variables": {"a": "1"}}', SETTINGS)
    assert body == ExecuteRequest(prompt_id="p1", variables={"a": "1"})
    assert body.model is None  # the prompt's preferred model or the default: choose_models
    assert check(b'{"prompt_id": "p1", "model": "m/b"}', SETTINGS).model == "m/b"


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b'{"prompt_id": "p1", "x": 1}', "invalid_request", "x"),
        (b'{"promptId": "p1"}', "invalid_request", "prompt_id"),
        (b'{"prompt_id": "__p__"}', "invalid_request", "prompt_id"),
        (
            b'{"prompt_id": "p1", "variables": {"a": "1", "b": "", "c": "", "d": ""}}',
            "invalid_request",
            "3",
        ),
        (b'{"prompt_id": "p1", "variables": {"a": "12345678901"}}', "invalid_request", "a"),
        (b'{"prompt_id": "p1", "max_tokens": 1001}', "invalid_request", "1000"),
        (b'{"prompt_id": "p1", "document_ids": ["a", "b", "c"]}', "invalid_request", "2"),
        (b'{"prompt_id": "p1", "top_k": 6}', "invalid_request", "5"),
        (b'{"prompt_id": "p1", "model": "m/c"}', "model_not_allowed", "m/a, m/b"),
    ],
)
def test_each_refusal_names_what_is_wrong(raw: bytes, code: str, words: str) -> None:
    with pytest.raises(HttpError) as refused:
        check(raw, SETTINGS)
    assert refused.value.code == code
    assert words in refused.value.message


def test_a_too_long_value_is_named_in_the_details() -> None:
    with pytest.raises(HttpError) as refused:
        check(b'{"prompt_id": "p1", "variables": {"b": "x", "a": "12345678901"}}', SETTINGS)
    assert refused.value.details == {"too_long": ["a"]}


def test_validation_details_never_echo_the_input() -> None:
    with pytest.raises(HttpError) as refused:
        check(b'{"prompt_id": 12345, "variables": {"k": 987654}}', SETTINGS)
    assert refused.value.details is not None
    assert "987654" not in str(refused.value.details)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (
            b'{"resume": "abc123", "last_event_id": 7}',
            ResumeRequest(resume="abc123", last_event_id=7),
        ),
        (b'{"resume": "abc123"}', ResumeRequest(resume="abc123")),
        (b'{"cancel": "abc123"}', CancelRequest(cancel="abc123")),
        # A variable that says "resume" is still an execution.
        (
            b'{"prompt_id": "p", "variables": {"resume": "cancel"}, "resumable": true}',
            ExecuteRequest(prompt_id="p", variables={"resume": "cancel"}, resumable=True),
        ),
    ],
)
def test_the_stream_endpoint_tells_a_resume_and_a_cancel_from_an_execution(
    raw: bytes, parsed: Any
) -> None:
    assert check_stream(raw, SETTINGS) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        b'{"resume": "a/b"}',
        b'{"resume": "abc", "last_event_id": -1}',
        b'{"resume": "abc", "last_event_id": "3"}',
        b'{"resume": "abc", "prompt_id": "p"}',
        b'{"cancel": ""}',
        b'{"cancel": "abc", "last_event_id": 1}',
    ],
)
def test_a_malformed_resume_or_cancel_is_refused(raw: bytes) -> None:
    with pytest.raises(HttpError) as refused:
        check_stream(raw, SETTINGS)
    assert refused.value.code == "invalid_request"
