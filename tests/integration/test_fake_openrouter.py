"""The fake OpenRouter server: its bytes, every knob, its counters, its CLI.

Expected bytes are written out from OpenRouter's documented format (API reference:
Streaming, Errors, Usage Accounting), not taken from the server's output.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from fake_openrouter import (
    KNOB_NAMES,
    UNICODE_SAMPLE,
    FakeOpenRouter,
    FakeOpenRouterThread,
    demo_text,
    split_text,
)
from support import ROOT

KEY = {"Authorization": "Bearer sk-or-v1-test"}
PINNED: dict[str, Any] = {"gen_id": "gen-test-1", "created": 1700000000, "provider": "TestProvider"}
COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
HEAD = (
    'data: {"id":"gen-test-1","provider":"TestProvider","model":"test/model",'
    '"object":"chat.completion.chunk","created":1700000000'
)


# --- the documented wire format, written out by hand ----------------------------------


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def content_event(text: str, finish: str | None = None) -> bytes:
    reason = "null" if finish is None else _q(finish)
    return (
        HEAD + ',"choices":[{"index":0,"delta":{"role":"assistant","content":' + _q(text) + "},"
        '"finish_reason":' + reason + ',"native_finish_reason":' + reason + ',"logprobs":null}]}'
        "\n\n"
    ).encode()


def reasoning_event(text: str) -> bytes:
    return (
        HEAD
        + ',"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":'
        + _q(text)
        + ',"reasoning_details":[{"type":"reasoning.text","text":'
        + _q(text)
        + ',"format":"unknown","index":0}]},'
        '"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    ).encode()


def usage_event(prompt: int, completion: int, reasoning: int = 0) -> bytes:
    return (
        HEAD + ',"choices":[],"usage":{'
        f'"prompt_tokens":{prompt},"completion_tokens":{completion},'
        f'"total_tokens":{prompt + completion},"cost":0,"is_byok":false,'
        '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
        '"cost_details":{"upstream_inference_cost":null},'
        f'"completion_tokens_details":{{"reasoning_tokens":{reasoning},"image_tokens":0}}}}}}'
        "\n\n"
    ).encode()


def error_event(code: str, message: str) -> bytes:
    return (
        HEAD + ',"error":{"code":' + _q(code) + ',"message":' + _q(message) + "},"
        '"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}\n\n'
    ).encode()


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    async with FakeOpenRouter(delay=0.0, **PINNED) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def chat_body(prompt: str = "Say hi", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "test/model",
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }


async def post_raw(
    session: aiohttp.ClientSession,
    fake: FakeOpenRouter,
    body: Any,
    headers: dict[str, str] | None = None,
    path: str = "/api/v1/chat/completions",
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(fake.url + path, json=body, headers={**KEY, **(headers or {})}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def eventually(check: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def data_lines(raw: bytes) -> list[bytes]:
    return [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data_lines(raw) if line != b"[DONE]"]


def contents(raw: bytes) -> list[str]:
    return [c["choices"][0]["delta"]["content"] for c in chunks_of(raw) if c["choices"]]


async def read_until_broken(resp: aiohttp.ClientResponse) -> tuple[bytes, BaseException | None]:
    data = b""
    try:
        async for piece in resp.content.iter_any():
            data += piece
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        return data, exc
    return data, None


# --- exact bytes ------------------------------------------------------------------------

STREAM_CASES: list[tuple[str, str, dict[str, Any], bytes]] = [
    (
        "two_chunks",
        "Say hi [[fake text='Hello brave new world' chunks=2]]",
        {},
        content_event("Hello brave")
        + content_event(" new world", "stop")
        + usage_event(2, 2)
        + DONE,
    ),
    (
        "max_tokens_stops_with_length",
        "Say hi [[fake text='one two three four' chunks=4]]",
        {"max_tokens": 2},
        content_event("one") + content_event(" two", "length") + usage_event(2, 2) + DONE,
    ),
    (
        "reasoning_first",
        "Say hi [[fake text='Hi' chunks=1 reasoning=1]]",
        {},
        reasoning_event("The user wants a short answer. I will reply plainly and keep it brief.")
        + content_event("Hi", "stop")
        + usage_event(2, 2, reasoning=1)
        + DONE,
    ),
    (
        "no_usage_multibyte",
        "Say hi [[fake text='naïve 日本 🚀' chunks=3 usage=0]]",
        {},
        content_event("naïve") + content_event(" 日本") + content_event(" 🚀", "stop") + DONE,
    ),
    (
        "keepalive_comments_then_finish_reason_override",
        "Say hi [[fake text='ok' chunks=1 comments=2 finish_reason=content_filter]]",
        {},
        COMMENT + COMMENT + content_event("ok", "content_filter") + usage_event(2, 1) + DONE,
    ),
    (
        "mid_stream_error",
        "Say hi [[fake text='a b c' chunks=3 error_after=1]]",
        {},
        content_event("a") + error_event("server_error", "Provider disconnected unexpectedly"),
    ),
    (
        "truncated",
        "Say hi [[fake text='a b c' chunks=3 truncate_after=2]]",
        {},
        content_event("a") + content_event(" b"),
    ),
    (
        "no_done",
        "Say hi [[fake text='a b' chunks=2 no_done=1]]",
        {},
        content_event("a") + content_event(" b", "stop") + usage_event(2, 2),
    ),
    (
        "malformed_line_then_continue",
        "Say hi [[fake text='a b' chunks=2 malformed_after=1]]",
        {},
        content_event("a")
        + b'data: {"id":"gen-malformed","object":"chat.completion.chunk","choices":[{"delta":\n\n'
        + content_event(" b", "stop")
        + usage_event(2, 2)
        + DONE,
    ),
]


@pytest.mark.parametrize(
    ("prompt", "extra", "expected"),
    [case[1:] for case in STREAM_CASES],
    ids=[case[0] for case in STREAM_CASES],
)
async def test_stream_bytes_match_documented_format(
    fake: FakeOpenRouter,
    session: aiohttp.ClientSession,
    prompt: str,
    extra: dict[str, Any],
    expected: bytes,
) -> None:
    status, _, raw = await post_raw(session, fake, chat_body(prompt, **extra))
    assert status == 200
    assert raw == expected


async def test_stream_headers(fake: FakeOpenRouter, session: aiohttp.ClientSession) -> None:
    status, headers, _ = await post_raw(session, fake, chat_body())
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Generation-Id"] == "gen-test-1"
    assert headers.get("Transfer-Encoding") == "chunked"


async def test_generation_id_has_openrouter_shape_when_not_pinned(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeOpenRouter(delay=0.0) as server:
        status, headers, raw = await post_raw(session, server, chat_body())
    assert status == 200
    gen_id = headers["X-Generation-Id"]
    assert re.fullmatch(r"gen-\d{10}-[A-Za-z0-9]{20}", gen_id)
    first = chunks_of(raw)[0]
    assert first["id"] == gen_id
    assert abs(first["created"] - time.time()) < 60


async def test_non_stream_answer_is_a_chat_completion(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    prompt = "Say hi [[fake text='Hello brave new world' chunks=2]]"
    status, headers, raw = await post_raw(session, fake, chat_body(prompt, stream=False))
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Generation-Id"] == "gen-test-1"
    assert json.loads(raw) == {
        "id": "gen-test-1",
        "provider": "TestProvider",
        "model": "test/model",
        "object": "chat.completion",
        "created": 1700000000,
        "choices": [
            {
                "logprobs": None,
                "finish_reason": "stop",
                "native_finish_reason": "stop",
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello brave new world",
                    "refusal": None,
                    "reasoning": None,
                },
            }
        ],
        "usage": {
            "prompt_tokens": 2,
            "completion_tokens": 2,
            "total_tokens": 4,
            "cost": 0,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "cost_details": {"upstream_inference_cost": None},
            "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
        },
    }
    body = chat_body(prompt)
    del body["stream"]  # absent means not streaming
    _, _, raw = await post_raw(session, fake, body)
    assert json.loads(raw)["object"] == "chat.completion"


# --- text and model ---------------------------------------------------------------------


def test_split_text_keeps_words_whole_and_joins_back() -> None:
    assert split_text("Hello brave new world", 2) == ["Hello brave", " new world"]
    assert split_text("a b c d e", 2) == ["a b c", " d e"]
    assert split_text("ab", 4) == ["a", "b", "", ""]
    assert split_text("héllo", 3) == ["hé", "ll", "o"]
    assert split_text("one two three", 0) == ["one", " two", " three"]
    text = demo_text("x " * 200, unicode=True)
    for pieces in (1, 3, 8, 50, 500):
        parts = split_text(text, pieces)
        assert len(parts) == pieces
        assert "".join(parts) == text


async def test_default_text_is_readable_and_echoes_the_prompt(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    _, _, raw = await post_raw(session, fake, chat_body("Write a haiku about otters"))
    text = "".join(contents(raw))
    assert len(contents(raw)) == 8
    assert "local demo model" in text
    assert 'You asked: "Write a haiku about otters"' in text
    assert text.encode() == text.encode("ascii")

    _, _, raw = await post_raw(session, fake, chat_body("Hi [[fake unicode=1]]"))
    text = "".join(contents(raw))
    assert text.endswith(UNICODE_SAMPLE)
    assert '"Hi"' in text  # the directive is not echoed
    assert len(text.encode()) > len(text)


async def test_model_is_echoed_or_first_of_models(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    body = chat_body()
    body["model"] = "x-ai/grok-4-fast:free"
    _, _, raw = await post_raw(session, fake, body)
    assert {c["model"] for c in chunks_of(raw)} == {"x-ai/grok-4-fast:free"}
    del body["model"]
    body["models"] = ["a/first", "b/second"]
    _, _, raw = await post_raw(session, fake, body)
    assert {c["model"] for c in chunks_of(raw)} == {"a/first"}


async def test_both_paths_and_models_list(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    status, _, raw = await post_raw(session, fake, chat_body(), path="/v1/chat/completions")
    assert status == 200 and data_lines(raw)[-1] == b"[DONE]"
    async with session.get(fake.base_url + "/models") as resp:
        models = await resp.json()
    assert "x-ai/grok-4-fast:free" in [m["id"] for m in models["data"]]


# --- request checks -------------------------------------------------------------------


async def test_missing_or_wrong_auth_is_401(session: aiohttp.ClientSession) -> None:
    async with FakeOpenRouter(delay=0.0, api_key="sk-right") as server:
        url = server.base_url + "/chat/completions"
        async with session.post(url, json=chat_body()) as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "error": {"code": 401, "message": "No auth credentials found"}
            }
        bad = {"Authorization": "Bearer sk-wrong"}
        async with session.post(url, json=chat_body(), headers=bad) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == 401
        good = {"Authorization": "Bearer sk-right"}
        async with session.post(url, json=chat_body(), headers=good) as resp:
            assert resp.status == 200
            assert (await resp.read()).endswith(DONE)
        assert server.stats()["streams_started"] == 1


@pytest.mark.parametrize(
    ("payload", "message_part"),
    [
        (b"{not json", "Invalid JSON"),
        (b"[1, 2]", "Invalid JSON"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"messages": [{"role": "user", "content": "[[fake nosuch=1]]"}]}', "nosuch"),
        (b'{"messages": [{"role": "user", "content": "[[fake chunks=many]]"}]}', "chunks"),
    ],
)
async def test_bad_bodies_are_400(
    fake: FakeOpenRouter, session: aiohttp.ClientSession, payload: bytes, message_part: str
) -> None:
    headers = {**KEY, "Content-Type": "application/json"}
    async with session.post(
        fake.base_url + "/chat/completions", data=payload, headers=headers
    ) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["code"] == 400
    assert message_part in error["message"]


# --- pre-stream errors --------------------------------------------------------------------


async def test_status_answers_have_openrouter_error_shape(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    status, headers, raw = await post_raw(
        session, fake, chat_body("hi [[fake status=429 retry_after=7]]")
    )
    assert status == 429
    assert headers["Retry-After"] == "7"
    error = json.loads(raw)["error"]
    assert error["code"] == 429 and "Rate limit" in error["message"]

    status, _, raw = await post_raw(session, fake, chat_body("hi [[fake status=402]]"))
    assert status == 402
    assert json.loads(raw)["error"]["code"] == 402

    long_prompt = "bad words " * 30
    status, _, raw = await post_raw(session, fake, chat_body(long_prompt + "[[fake status=403]]"))
    assert status == 403
    metadata = json.loads(raw)["error"]["metadata"]
    assert metadata["reasons"] == ["harassment"]
    assert len(metadata["flagged_input"]) == 100 and "..." in metadata["flagged_input"]
    assert metadata["model_slug"] == "test/model"

    status, headers, raw = await post_raw(
        session, fake, chat_body("hi [[fake status=503 message='all down']]")
    )
    assert status == 503 and "Retry-After" not in headers
    assert json.loads(raw) == {"error": {"code": 503, "message": "all down"}}
    assert fake.stats()["status_answers"] == 4
    assert fake.stats()["streams_started"] == 0


async def test_fail_times_fails_only_the_first_requests_with_the_same_key(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    prompt = "hi [[fake status=503 fail_times=2]]"
    statuses = [(await post_raw(session, fake, chat_body(prompt)))[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]

    # Same knobs through the header with explicit keys: counted per key.
    for key, expected in (("k1", 500), ("k2", 500), ("k1", 200), ("k2", 200)):
        header = {"X-Fake-Scenario": json.dumps({"status": 500, "fail_times": 1, "fail_key": key})}
        status, _, _ = await post_raw(session, fake, chat_body(), headers=header)
        assert status == expected

    # fail_times also switches off in-stream failures once used up.
    prompt = "hi [[fake text='a b' chunks=2 error_after=1 fail_times=1]]"
    _, _, first = await post_raw(session, fake, chat_body(prompt))
    _, _, second = await post_raw(session, fake, chat_body(prompt))
    assert b'"finish_reason":"error"' in first and not first.endswith(DONE)
    assert second.endswith(DONE) and b'"error"' not in second


async def test_disconnect_closes_without_an_answer(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_raw(session, fake, chat_body("hi [[fake disconnect=1]]"))
    assert fake.stats()["disconnects"] == 1
    assert fake.stats()["early_closes"] == 0


# --- in-stream failures -------------------------------------------------------------------


async def test_drop_after_leaves_the_chunked_body_unfinished(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    body = chat_body("hi [[fake text='a b c' chunks=3 drop_after=2]]")
    async with session.post(fake.base_url + "/chat/completions", json=body, headers=KEY) as resp:
        assert resp.status == 200
        data, exc = await read_until_broken(resp)
    assert isinstance(exc, aiohttp.ClientPayloadError)
    assert data == content_event("a") + content_event(" b")
    stats = fake.stats()
    assert stats["drops"] == 1 and stats["early_closes"] == 0 and stats["active_streams"] == 0


async def test_stall_sends_only_comments_then_continues_or_ends(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    prompt = "hi [[fake text='a b' chunks=2 stall_after=1 stall=0.25 comment_every=0.1]]"
    started = time.monotonic()
    _, _, raw = await post_raw(session, fake, chat_body(prompt))
    assert time.monotonic() - started >= 0.25
    head, _, rest = raw.partition(COMMENT)
    assert head == content_event("a")
    # One comment when the stall starts, then one per 0.1 s of silence.
    assert rest.startswith(COMMENT + COMMENT)
    assert rest.lstrip(COMMENT[:1]).count(b"OPENROUTER PROCESSING") >= 2
    assert raw.endswith(content_event(" b", "stop") + usage_event(1, 2) + DONE)

    prompt = "hi [[fake text='a b' chunks=2 stall_after=1 stall=0.05 stall_then=end]]"
    _, _, raw = await post_raw(session, fake, chat_body(prompt))
    assert raw.startswith(content_event("a") + COMMENT)
    assert raw.replace(COMMENT, b"") == content_event("a")


# --- timing knobs -------------------------------------------------------------------------


async def test_delay_and_first_byte_delay(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    body = chat_body("hi [[fake chunks=5 delay=0.05 first_byte_delay=0.2]]")
    started = time.monotonic()
    async with session.post(fake.base_url + "/chat/completions", json=body, headers=KEY) as resp:
        headers_at = time.monotonic() - started
        await resp.read()
    total = time.monotonic() - started
    assert 0.2 <= headers_at < 0.5
    assert total >= 0.2 + 4 * 0.05  # four gaps between five chunks


async def test_comment_every_fills_a_silent_first_chunk_delay(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    prompt = "hi [[fake text='x' chunks=1 first_chunk_delay=0.35 comment_every=0.1]]"
    _, _, raw = await post_raw(session, fake, chat_body(prompt))
    assert raw == COMMENT * 3 + content_event("x", "stop") + usage_event(1, 1) + DONE


async def test_stamp_carries_send_time(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    before = time.monotonic_ns()
    _, _, raw = await post_raw(session, fake, chat_body("hi [[fake stamp=1 chunks=4]]"))
    after = time.monotonic_ns()
    content_chunks = [c for c in chunks_of(raw) if c["choices"]]
    assert len(content_chunks) == 4
    stamps = []
    for chunk in content_chunks:
        match = re.fullmatch(r"<t:(\d+)>", chunk["choices"][0]["delta"]["content"])
        assert match
        assert int(match.group(1)) == chunk["x_sent_ns"]
        stamps.append(chunk["x_sent_ns"])
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= after


async def test_stamped_streams_keep_their_schedule_after_a_late_wake(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    # Two stamped streams; the loop (the fake's too) blocked for more than three periods
    # wakes both late at once. Each must go back to its own schedule (chunk n at its first
    # chunk's time plus n delays): with a sleep after each write, every later chunk would
    # stay as late as the block, and the streams merged into one burst for the rest of the
    # run. Judged on each stream's own schedule, not on the two streams' offset, which the
    # machine's load sets when they start.
    period = 40_000_000
    prompt = f"hi [[fake stamp=1 chunks=14 delay={period / 1e9}]]"

    async def stamps(after: float) -> list[int]:
        await asyncio.sleep(after)
        _, _, raw = await post_raw(session, fake, chat_body(prompt))
        return [c["x_sent_ns"] for c in chunks_of(raw) if c["choices"]]

    async def block() -> None:
        await asyncio.sleep(0.2)
        time.sleep(0.15)  # noqa: ASYNC251  (the late wake under test)

    first, second, _ = await asyncio.gather(stamps(0.0), stamps(0.02), block())
    assert len(first) == len(second) == 14

    def late_at_the_end(sent: list[int]) -> float:
        # The median lateness of the last five chunks, in periods: back on schedule it is
        # a timer's wake-up; kept late by the block it is three periods or more.
        return statistics.median(
            (at - sent[0] - n * period) / period for n, at in enumerate(sent) if n >= 9
        )

    assert late_at_the_end(first) < 1 and late_at_the_end(second) < 1, (first, second)


# --- knob sources -------------------------------------------------------------------------


async def test_directive_beats_header_beats_defaults(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    fake.configure(chunks=3)
    _, _, raw = await post_raw(session, fake, chat_body())
    assert len(contents(raw)) == 3

    header = {"X-Fake-Scenario": json.dumps({"chunks": 5})}
    _, _, raw = await post_raw(session, fake, chat_body(), headers=header)
    assert len(contents(raw)) == 5

    _, _, raw = await post_raw(session, fake, chat_body("[[fake chunks=2]] hi"), headers=header)
    assert len(contents(raw)) == 2

    # Directives may sit in any message, also in content parts.
    body = chat_body()
    body["messages"].insert(
        0, {"role": "system", "content": [{"type": "text", "text": "[[fake chunks=6]]"}]}
    )
    _, _, raw = await post_raw(session, fake, body)
    assert len(contents(raw)) == 6


async def test_config_and_reset_over_http(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    async with session.post(fake.url + "/_fake/config", json={"chunks": 2, "usage": False}) as r:
        assert r.status == 200
        assert (await r.json())["chunks"] == 2
    _, _, raw = await post_raw(session, fake, chat_body())
    assert len(contents(raw)) == 2 and b'"usage"' not in raw

    async with session.post(fake.url + "/_fake/config", json={"chunk": 2}) as r:
        assert r.status == 400

    async with session.post(fake.url + "/_fake/reset") as r:
        assert r.status == 200
    async with session.get(fake.url + "/_fake/stats") as r:
        stats = await r.json()
    assert stats["requests"] == 0 and stats["streams_started"] == 0
    _, _, raw = await post_raw(session, fake, chat_body())
    assert len(contents(raw)) == 8 and b'"usage"' in raw


def test_every_knob_is_documented_in_the_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fake_openrouter", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    flat = " ".join(out.split())
    for name in KNOB_NAMES:
        assert name in flat


# --- stats and the request log ------------------------------------------------------------


async def test_stats_count_requests_streams_and_connections(fake: FakeOpenRouter) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as pooled:
        for _ in range(3):
            await post_raw(pooled, fake, chat_body())
        await post_raw(pooled, fake, chat_body(stream=False))
        await post_raw(pooled, fake, chat_body("[[fake status=500]]"))
    async with aiohttp.ClientSession() as other:
        await post_raw(other, fake, chat_body())
    stats = fake.stats()
    assert stats["requests"] == 6
    assert stats["streams_started"] == 4
    assert stats["streams_completed"] == 4
    assert stats["non_stream_answers"] == 1
    assert stats["status_answers"] == 1
    assert stats["connections_opened"] == 2  # keep-alive reuse is visible
    assert stats["active_streams"] == 0
    assert stats["early_closes"] == 0


async def test_request_log_keeps_headers_and_body(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    headers = {"HTTP-Referer": "http://localhost:5173", "X-Title": "RAG Prompt Library"}
    await post_raw(session, fake, chat_body("log me", temperature=0.3), headers=headers)
    async with session.get(fake.url + "/_fake/requests") as resp:
        log = await resp.json()
    assert len(log) == 1
    entry = log[0]
    assert entry["path"] == "/api/v1/chat/completions"
    assert entry["headers"]["Authorization"] == "Bearer sk-or-v1-test"
    assert entry["headers"]["HTTP-Referer"] == "http://localhost:5173"
    assert entry["headers"]["X-Title"] == "RAG Prompt Library"
    assert entry["json"]["temperature"] == 0.3
    assert entry["json"]["messages"][0]["content"] == "log me"


async def test_request_log_is_capped_at_1000(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    for index in range(1003):
        await post_raw(session, fake, chat_body(f"n{index} [[fake status=500]]"))
    log = fake.requests()
    assert len(log) == 1000
    assert log[0]["json"]["messages"][0]["content"].startswith("n3 ")
    assert fake.stats()["requests"] == 1003


async def test_early_close_is_detected_within_milliseconds_while_sleeping(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    body = chat_body("hi [[fake chunks=4 delay=5]]")
    resp = await session.post(fake.base_url + "/chat/completions", json=body, headers=KEY)
    first = await resp.content.readuntil(b"\n\n")
    assert first.startswith(b"data: {")
    assert fake.stats()["active_streams"] == 1
    closed_at = time.monotonic_ns()
    resp.close()
    await eventually(lambda: fake.stats()["early_closes"] == 1, within=1.0)
    stats = fake.stats()
    lag_ms = (stats["early_close_ns"][0] - closed_at) / 1e6
    assert 0 <= lag_ms < 50
    assert stats["active_streams"] == 0
    assert stats["streams_completed"] == 0


async def test_early_close_before_headers_is_counted(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    body = chat_body("hi [[fake first_byte_delay=5]]")
    task = asyncio.create_task(post_raw(session, fake, body))
    await eventually(lambda: fake.stats()["requests"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: fake.stats()["early_closes"] == 1, within=1.0)
    assert fake.stats()["streams_started"] == 0


async def test_a_thousand_concurrent_streams(session: aiohttp.ClientSession) -> None:
    async with FakeOpenRouter(delay=0.2, chunks=5) as server:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as client:

            async def one() -> bytes:
                async with client.post(
                    server.base_url + "/chat/completions", json=chat_body(), headers=KEY
                ) as resp:
                    return await resp.read()

            peak = 0

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, server.stats()["active_streams"])
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch())
            started = time.monotonic()
            bodies = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(1000))), 60)
            elapsed = time.monotonic() - started
            watcher.cancel()
    assert all(body.endswith(DONE) for body in bodies)
    stats = server.stats()
    assert stats["streams_completed"] == 1000
    assert stats["connections_opened"] == 1000
    assert peak >= 500, peak
    assert elapsed < 30


# --- sync runner and CLI ------------------------------------------------------------------


def _sync_post(url: str, body: dict[str, Any], key: str = "sk-x") -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_thread_runner_serves_sync_code() -> None:
    with FakeOpenRouterThread(delay=0.0, chunks=3) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/api/v1"
        status, raw = _sync_post(server.base_url + "/chat/completions", chat_body())
        assert status == 200 and raw.endswith(DONE)
        assert len(contents(raw)) == 3
        server.configure(chunks=2)
        status, raw = _sync_post(server.base_url + "/chat/completions", chat_body())
        assert len(contents(raw)) == 2
        assert server.stats()["streams_completed"] == 2
        assert server.requests()[0]["json"]["model"] == "test/model"
        server.reset()
        assert server.stats()["requests"] == 0
        port = server.port
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/stats", timeout=2)


def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fake_openrouter",
            "--port",
            "0",
            "--chunks",
            "3",
            "--delay",
            "0",
            "--api-key",
            "sk-cli",
            "--set",
            "provider=CliProvider",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(
            r"fake-openrouter listening on (http://127\.0\.0\.1:\d+/api/v1)\n", line
        )
        assert match, line
        base_url = match.group(1)
        status, raw = _sync_post(base_url + "/chat/completions", chat_body(), key="sk-cli")
        assert status == 200
        chunks = chunks_of(raw)
        assert len(contents(raw)) == 3
        assert {c["provider"] for c in chunks} == {"CliProvider"}
        status, _ = _sync_post(base_url + "/chat/completions", chat_body(), key="sk-other")
        assert status == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_cli_rejects_unknown_knobs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fake_openrouter", "--port", "0", "--set", "nosuch=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "nosuch" in result.stderr
