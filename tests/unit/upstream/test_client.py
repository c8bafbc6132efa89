"""The OpenRouter client with a scripted server on loopback playing the upstream
(tests/support/scripted.py): Retry-After parsing,
an error or HTML inside a 200, events of the wrong shape, surrogates cut between events,
and text held back for redaction. (The client against the fake server on loopback is
tests/integration/test_client.py's.)"""

from __future__ import annotations

import json
import time

import pytest

from promptstream import (
    InvalidResponseError,
    MidStreamError,
    OpenRouterClient,
    OpenRouterConfig,
    StreamChunk,
)
from promptstream.upstream._transport import parse_retry_after
from support.scripted import ScriptedServer

KEY = "sk-or-test-key"


async def answered(
    body: str, content_type: str = "text/event-stream", api_key: str = "k"
) -> tuple[list[StreamChunk], str]:
    """The chunks a stream yields, and its ``content``, when the upstream answers 200
    with ``body``."""
    async with ScriptedServer() as upstream:
        upstream.post("/api/v1/chat/completions", body=body, content_type=content_type)
        config = OpenRouterConfig(api_key=api_key, base_url=upstream.url("/api/v1"), max_retries=0)
        async with OpenRouterClient(config) as client:
            stream = client.generate_response_stream("q")
            chunks = [chunk async for chunk in stream]
        assert upstream.unexpected == []
        return chunks, stream.content


def _sse(*events: str) -> str:
    return "".join(f"data: {event}\n\n" for event in events) + "data: [DONE]\n\n"


def _delta(content: str, finish: str | None = None) -> str:
    # Written by hand: the escapes are what a server cutting UTF-16 text would send.
    finish_json = "null" if finish is None else f'"{finish}"'
    return f'{{"choices":[{{"delta":{{"content":"{content}"}},"finish_reason":{finish_json}}}]}}'


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    parsed = parse_retry_after(future)
    assert parsed is not None and 25 <= parsed <= 31


async def test_json_error_with_200_status_is_raised_typed() -> None:
    error = {"error": {"code": 402, "message": "Insufficient credits"}}
    with pytest.raises(MidStreamError) as info:
        await answered(json.dumps(error), "application/json")
    assert info.value.code == "out_of_credits"
    assert "Insufficient credits" in info.value.message


async def test_html_answer_is_an_invalid_response() -> None:
    with pytest.raises(InvalidResponseError):
        await answered("<html>hi</html>", "text/html")


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # A surrogate pair cut in two: the halves meet again.
        ([_delta("a\\ud83d"), _delta("\\ude00b"), _delta("", "stop")], ["a", "\U0001f600b"]),
        # A half that never meets its other half becomes U+FFFD, never a lone surrogate.
        ([_delta("a\\ud83d"), _delta("b"), _delta("", "stop")], ["a", "\ufffdb"]),
        ([_delta("\\ude00x"), _delta("", "stop")], ["\ufffdx"]),
        ([_delta("end\\ud83d", "stop")], ["end\ufffd"]),
        # Whole pairs and other text pass as they are.
        ([_delta("\\ud83d\\ude00 caf\\u00e9"), _delta("", "stop")], ["\U0001f600 café"]),
    ],
)
async def test_surrogates_split_across_events_are_joined_or_replaced(
    events: list[str], expected: list[str]
) -> None:
    chunks, _ = await answered(_sse(*events))
    texts = [chunk.content for chunk in chunks if chunk.content]
    assert texts == expected
    for text in texts:
        text.encode()  # valid UTF-8, as our events and Firestore need


@pytest.mark.parametrize(
    "event",
    [
        '{"choices":[{"delta":{"content":42}}]}',
        '{"choices":[{"delta":{"content":"x","reasoning":["y"]}}]}',
        '{"choices":[{"delta":"text"}]}',
        '{"choices":["text"]}',
        '{"choices":{"0":{}}}',
    ],
)
async def test_events_of_the_wrong_shape_are_invalid_responses(event: str) -> None:
    with pytest.raises(InvalidResponseError) as info:
        await answered(_sse(_delta("before"), event))
    assert info.value.partial == "before"


async def test_text_held_back_is_released_at_done_without_a_finish_reason() -> None:
    # "…as" ends with the key's first letter, so the client holds the "s" back until it
    # knows what follows; [DONE] without a finish_reason must still release it.
    body = _sse(_delta("it was"), _delta(" sk-o"), _delta("\\ud83d"))
    chunks, content = await answered(body, api_key=KEY)
    assert "".join(c.content for c in chunks) == "it was sk-o\ufffd" == content
