"""The OpenRouter client against the fake server on loopback. (Its small cases with a
scripted server playing the upstream are tests/unit/upstream/test_client.py's.)"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fake_openrouter import FakeOpenRouter
from promptstream import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentBlockedError,
    InvalidResponseError,
    MidStreamError,
    OpenRouterClient,
    OpenRouterConfig,
    OpenRouterError,
    PaymentRequiredError,
    RateLimitError,
    StreamChunk,
    StreamInterruptedError,
    UpstreamUnavailableError,
)
from promptstream.upstream._transport import RETRY_AFTER_CAP


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    async with FakeOpenRouter(delay=0.0) as server:
        yield server


def config(fake: FakeOpenRouter, **kwargs: Any) -> OpenRouterConfig:
    return OpenRouterConfig(
        api_key="sk-or-test-key",
        base_url=fake.base_url,
        backoff_base=0.01,
        **kwargs,
    )


async def collect(client: OpenRouterClient, prompt: str, **kwargs: Any) -> list[StreamChunk]:
    return [chunk async for chunk in client.generate_response_stream(prompt, **kwargs)]


async def wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


# -- the happy path ------------------------------------------------------------------


async def test_stream_yields_content_in_order_then_usage(fake: FakeOpenRouter) -> None:
    text = "one two three four five six"
    async with OpenRouterClient(config(fake)) as client:
        chunks = await collect(client, f"hi [[fake text='{text}' chunks=6]]")
    assert "".join(c.content for c in chunks) == text
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    # The usage chunk comes after the finish_reason chunk and reaches the caller.
    assert chunks[-1].usage is not None
    assert chunks[-1].usage["completion_tokens"] == 6
    assert chunks[-1].usage["total_tokens"] == (
        chunks[-1].usage["prompt_tokens"] + chunks[-1].usage["completion_tokens"]
    )
    finish_index = next(i for i, c in enumerate(chunks) if c.finish_reason)
    assert finish_index < len(chunks) - 1
    assert all(c.model == "x-ai/grok-4-fast:free" for c in chunks)


async def test_stream_exposes_generation_id_usage_and_model(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, model="openai/gpt-4o-mini")) as client:
        stream = client.generate_response_stream("hello [[fake chunks=3]]")
        async for _ in stream:
            pass
    sent = fake.requests()[-1]
    assert stream.generation_id and stream.generation_id.startswith("gen-")
    assert stream.model == "openai/gpt-4o-mini"
    assert stream.finish_reason == "stop"
    assert stream.usage is not None and stream.usage["completion_tokens"] == 3
    assert sent["json"]["stream"] is True


async def test_messages_carry_system_prompt_and_context(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(
        config(fake, app_url="https://app.example", app_title="RAG")
    ) as client:
        await collect(client, "question", system_prompt="be brief", context="the docs say X")
    sent = fake.requests()[-1]
    messages = sent["json"]["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert messages[0]["content"] == "be brief"
    assert "the docs say X" in messages[1]["content"]
    assert messages[2]["content"] == "question"
    assert sent["headers"]["Authorization"] == "Bearer sk-or-test-key"
    assert sent["headers"]["HTTP-Referer"] == "https://app.example"
    assert sent["headers"]["X-Title"] == "RAG"


async def test_per_call_overrides_and_fallback_models(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, max_tokens=100, temperature=0.7)) as client:
        await collect(
            client,
            "q",
            model="openai/gpt-4o-mini",
            models=["openai/gpt-4o-mini", "x-ai/grok-4-fast:free"],
            temperature=0.1,
            max_tokens=50,
        )
        with pytest.raises(TypeError, match="temprature"):
            client.generate_response_stream("q", temprature=1)
    sent = fake.requests()[-1]["json"]
    assert sent["model"] == "openai/gpt-4o-mini"
    assert sent["models"] == ["openai/gpt-4o-mini", "x-ai/grok-4-fast:free"]
    assert sent["temperature"] == 0.1
    assert sent["max_tokens"] == 50


async def test_on_chunk_plain_and_coroutine(fake: FakeOpenRouter) -> None:
    seen_sync: list[str] = []
    seen_async: list[str] = []

    async def on_async(chunk: StreamChunk) -> None:
        await asyncio.sleep(0)
        seen_async.append(chunk.content)

    async with OpenRouterClient(config(fake)) as client:
        a = await collect(
            client, "q [[fake chunks=4]]", on_chunk=lambda c: seen_sync.append(c.content)
        )
        b = await collect(client, "q [[fake chunks=4]]", on_chunk=on_async)
    assert seen_sync == [c.content for c in a]
    assert seen_async == [c.content for c in b]
    assert len(seen_sync) >= 4


async def test_reasoning_is_kept_apart_from_content(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        chunks = await collect(client, "q [[fake reasoning=3 chunks=2 text='a b']]")
    reasoning = [c.reasoning for c in chunks if c.reasoning]
    assert len(reasoning) == 3
    assert all(not c.content for c in chunks if c.reasoning)
    assert "".join(c.content for c in chunks) == "a b"


async def test_keepalive_comments_are_not_content(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        chunks = await collect(client, "q [[fake comments=5 text='x y' chunks=2]]")
    assert "".join(c.content for c in chunks) == "x y"


async def test_long_chunk_has_no_line_limit(fake: FakeOpenRouter) -> None:
    big = "w" * 300_000
    async with OpenRouterClient(config(fake)) as client:
        chunks = await collect(client, f"q [[fake chunks=1 text={big}]]")
    assert "".join(c.content for c in chunks) == big


async def test_multibyte_text_survives(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        chunks = await collect(client, "q [[fake unicode=1 chunks=0]]")
    text = "".join(c.content for c in chunks)
    assert "日本語" in text and "🚀" in text and "\ufffd" not in text


async def test_pooling_reuses_one_connection(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        for _ in range(5):
            await collect(client, "q [[fake chunks=3]]")
        await client.generate_response("q")
    assert fake.stats()["requests"] == 6
    assert fake.stats()["connections_opened"] == 1


async def test_borrowed_session_is_left_open_owned_one_is_closed(fake: FakeOpenRouter) -> None:
    async with aiohttp.ClientSession() as session:
        async with OpenRouterClient(config(fake), session=session) as client:
            await collect(client, "q [[fake chunks=2]]")
        assert not session.closed
    owned = OpenRouterClient(config(fake))
    async with owned:
        await collect(owned, "q [[fake chunks=2]]")
        inner = owned._session
    assert inner is not None and inner.closed


async def test_client_used_outside_context_is_an_error(fake: FakeOpenRouter) -> None:
    client = OpenRouterClient(config(fake))
    with pytest.raises(RuntimeError):
        await collect(client, "q")


async def test_non_streaming_response(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        result = await client.generate_response("q [[fake text='all at once']]", system_prompt="s")
    assert result.content == "all at once"
    assert result.finish_reason == "stop"
    assert result.usage is not None and result.usage["total_tokens"] > 0
    assert result.generation_id and result.generation_id.startswith("gen-")
    assert fake.requests()[-1]["json"]["stream"] is False


# -- status errors and retries --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (400, BadRequestError, "upstream_bad_request"),
        (401, AuthenticationError, "upstream_auth"),
        (402, PaymentRequiredError, "out_of_credits"),
        (403, ContentBlockedError, "content_blocked"),
    ],
)
async def test_client_errors_are_typed_and_never_retried(
    fake: FakeOpenRouter, status: int, error_type: type[OpenRouterError], code: str
) -> None:
    async with OpenRouterClient(config(fake, max_retries=3)) as client:
        with pytest.raises(error_type) as info:
            await collect(client, f"q [[fake status={status}]]")
    assert info.value.code == code
    assert fake.stats()["requests"] == 1


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, RateLimitError),
        (500, OpenRouterError),
        (502, UpstreamUnavailableError),
        (503, UpstreamUnavailableError),
    ],
)
async def test_retryable_statuses_are_retried_then_raised(
    fake: FakeOpenRouter, status: int, error_type: type[OpenRouterError]
) -> None:
    async with OpenRouterClient(config(fake, max_retries=2)) as client:
        with pytest.raises(error_type):
            await collect(client, f"q [[fake status={status}]]")
    assert fake.stats()["requests"] == 3


async def test_retry_recovers_before_the_first_chunk(fake: FakeOpenRouter) -> None:
    # The original design's decorator wrapped an async generator function and so
    # retried nothing. This one retries, and the caller sees one clean stream.
    async with OpenRouterClient(config(fake, max_retries=3)) as client:
        chunks = await collect(client, "q [[fake status=503 fail_times=2 text='ok then' chunks=2]]")
    assert "".join(c.content for c in chunks) == "ok then"
    assert fake.stats()["requests"] == 3


async def test_retry_after_is_honoured(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, max_retries=1)) as client:
        started = time.monotonic()
        chunks = await collect(client, "q [[fake status=429 retry_after=1 fail_times=1 chunks=2]]")
        waited = time.monotonic() - started
    assert chunks and fake.stats()["requests"] == 2
    assert waited >= 0.95


async def test_retry_after_longer_than_allowed_is_passed_to_the_caller(
    fake: FakeOpenRouter,
) -> None:
    async with OpenRouterClient(config(fake, max_retries=3, max_retry_after=1)) as client:
        with pytest.raises(RateLimitError) as info:
            await collect(client, "q [[fake status=429 retry_after=30]]")
    assert info.value.retry_after == 30
    assert fake.stats()["requests"] == 1


async def test_payment_required_is_retried_only_with_retry_after(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, max_retries=2)) as client:
        chunks = await collect(client, "q [[fake status=402 retry_after=0 fail_times=1 chunks=2]]")
    assert chunks and fake.stats()["requests"] == 2


async def test_drop_before_first_chunk_is_retried(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, max_retries=2)) as client:
        chunks = await collect(client, "q [[fake disconnect=1 fail_times=1 text='fine' chunks=1]]")
    assert "".join(c.content for c in chunks) == "fine"
    assert fake.stats()["requests"] == 2


async def test_retry_stops_after_first_chunk(fake: FakeOpenRouter) -> None:
    # With fail_times=1 a retry would succeed, so an error here proves none was made.
    received: list[str] = []
    async with OpenRouterClient(config(fake, max_retries=3)) as client:
        with pytest.raises(StreamInterruptedError) as info:
            async for chunk in client.generate_response_stream(
                "q [[fake drop_after=2 fail_times=1 chunks=5 text='a b c d e']]"
            ):
                received.append(chunk.content)
    assert fake.stats()["requests"] == 1
    assert info.value.partial == "".join(received) == "a b"
    assert info.value.code == "upstream_disconnected"


async def test_a_drop_keeps_what_arrived_while_the_caller_was_busy(fake: FakeOpenRouter) -> None:
    # "b" and the drop land while the caller still holds "a"; aiohttp raises a failure
    # before the bytes it holds, so without the salvage "b" was lost (and with no text
    # at all, the request was retried as if nothing had been generated).
    received: list[str] = []
    async with OpenRouterClient(config(fake, max_retries=3)) as client:
        with pytest.raises(StreamInterruptedError) as info:
            async for chunk in client.generate_response_stream(
                "q [[fake drop_after=2 fail_times=1 delay=0.02 chunks=5 text='a b c d e']]"
            ):
                received.append(chunk.content)
                if len(received) == 1:
                    await wait_for(lambda: fake.stats()["drops"] == 1)
                    await asyncio.sleep(0.05)
    assert fake.stats()["drops"] == 1
    assert fake.stats()["requests"] == 1
    assert info.value.partial == "".join(received) == "a b"


# -- mid-stream faults ----------------------------------------------------------------


async def test_mid_stream_error_event_raises_with_partial(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        with pytest.raises(MidStreamError) as info:
            await collect(client, "q [[fake error_after=2 chunks=4 text='a b c d']]")
    assert info.value.partial == "a b"
    assert "Provider disconnected" in info.value.message
    assert fake.stats()["requests"] == 1


async def test_truncated_stream_without_done_or_finish_is_an_error(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        with pytest.raises(StreamInterruptedError) as info:
            await collect(client, "q [[fake truncate_after=2 chunks=4 text='a b c d']]")
    assert info.value.partial == "a b"


async def test_missing_done_after_finish_reason_is_a_clean_end(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        chunks = await collect(client, "q [[fake no_done=1 chunks=2 text='a b']]")
    assert "".join(c.content for c in chunks) == "a b"
    assert chunks[-1].usage is not None


async def test_malformed_json_line_raises_typed_error(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        with pytest.raises(InvalidResponseError) as info:
            await collect(client, "q [[fake malformed_after=1 chunks=3 text='a b c']]")
    assert info.value.partial == "a"


async def test_first_byte_timeout(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, first_byte_timeout=0.2, max_retries=1)) as client:
        with pytest.raises(APITimeoutError):
            await collect(client, "q [[fake first_byte_delay=2]]")
    assert fake.stats()["requests"] == 2


@pytest.mark.parametrize(
    "silence", ["first_byte_delay=5", "first_chunk_delay=5 comment_every=0.05"]
)
@pytest.mark.parametrize("routing", ["client", "native"])
async def test_the_first_chunk_deadline_bounds_every_try_of_every_model(
    silence: str, routing: str, fake: FakeOpenRouter
) -> None:
    # Before it, 4 models × 3 tries × 0.5 s (client) or 3 tries × 0.5 s (native).
    settings = config(
        fake,
        first_byte_timeout=0.5,
        idle_timeout=0.5,
        first_chunk_deadline=0.8,
        max_retries=2,
        fallback_routing=routing,
    )
    async with OpenRouterClient(settings) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            await collect(client, f"q [[fake {silence}]]", fallbacks=["b/1", "c/2", "d/3"])
        assert time.monotonic() - started < 1.4
    assert info.value.attempts and info.value.attempts[-1]["outcome"] == "failed"
    assert info.value.attempts[-1]["error_code"] == "upstream_timeout"


async def test_the_first_chunk_deadline_ends_with_the_first_content(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, first_chunk_deadline=0.3, idle_timeout=2)) as client:
        chunks = await collect(client, "q [[fake chunks=4 delay=0.2 text='a b c d']]")
    assert "".join(c.content for c in chunks) == "a b c d"


async def test_content_watchdog_is_not_fooled_by_keepalive_comments(fake: FakeOpenRouter) -> None:
    # Comments arrive every 50 ms, so a socket read timeout would never fire.
    async with OpenRouterClient(config(fake, idle_timeout=0.4)) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            await collect(
                client, "q [[fake stall_after=1 stall=10 comment_every=0.05 chunks=3 text='a b c']]"
            )
        assert time.monotonic() - started < 5
    assert info.value.partial == "a"


async def test_long_generation_is_not_cut_by_a_total_cap(fake: FakeOpenRouter) -> None:
    # Content keeps flowing, so the idle watchdog never fires even though the whole
    # stream lasts several times longer than it.
    async with OpenRouterClient(config(fake, idle_timeout=0.3)) as client:
        chunks = await collect(client, "q [[fake chunks=20 delay=0.05]]")
    assert sum(1 for c in chunks if c.content) == 20


async def test_connection_refused_is_typed() -> None:
    from support import free_port

    cfg = OpenRouterConfig(
        api_key="k", base_url=f"http://127.0.0.1:{free_port()}/api/v1", backoff_base=0.01
    )
    async with OpenRouterClient(cfg) as client:
        with pytest.raises(APIConnectionError) as info:
            await collect(client, "q")
    assert info.value.code == "upstream_unavailable"
    assert not isinstance(info.value, aiohttp.ClientError)


# -- closing early --------------------------------------------------------------------


async def test_break_closes_the_upstream_response(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        stream = client.generate_response_stream("q [[fake chunks=50 delay=0.5]]")
        async with stream:
            async for _ in stream:
                break
        assert await wait_for(lambda: fake.stats()["early_closes"] == 1)
    assert fake.stats()["active_streams"] == 0


async def test_cancelling_the_consumer_closes_the_upstream(fake: FakeOpenRouter) -> None:
    got_one = asyncio.Event()

    async with OpenRouterClient(config(fake)) as client:

        async def consume() -> None:
            async for _ in client.generate_response_stream("q [[fake chunks=50 delay=0.5]]"):
                got_one.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_one.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_for(lambda: fake.stats()["early_closes"] == 1)


async def test_started_but_unread_stream_is_closed_by_aclose(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake)) as client:
        stream = client.generate_response_stream("q [[fake chunks=50 delay=0.5]]")
        await stream.start()
        await stream.aclose()
        assert await wait_for(lambda: fake.stats()["early_closes"] == 1)


async def test_start_raises_refusal_before_any_content(fake: FakeOpenRouter) -> None:
    async with OpenRouterClient(config(fake, max_retries=0)) as client:
        stream = client.generate_response_stream("q [[fake status=402]]")
        with pytest.raises(PaymentRequiredError):
            await stream.start()


# -- a hostile upstream ---------------------------------------------------------------

KEY = "sk-or-test-key"


def no_key(text: str) -> bool:
    return KEY.lower() not in text.lower()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1e999", RETRY_AFTER_CAP),
        ("9" * 5000, RETRY_AFTER_CAP),
        ("inf", RETRY_AFTER_CAP),
        ("-5", 0.0),
        ("-inf", 0.0),
        ("nan", None),
        ("0x10", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_CAP),
        ("Mon, 01 Jan 1990 00:00:00 GMT", 0.0),
        ("Mon, 01 Jan 99999999 00:00:00 GMT", None),
        ("2", 2.0),
    ],
)
async def test_retry_after_from_a_hostile_upstream_is_bounded_and_never_raises(
    fake: FakeOpenRouter, header: str, expected: float | None
) -> None:
    async with OpenRouterClient(config(fake, max_retries=0)) as client:
        with pytest.raises(RateLimitError) as info:
            await collect(client, f"q [[fake status=429 retry_after='{header}']]")
    assert info.value.retry_after == expected
    if expected is not None:
        # What the relay does with it: a whole number of seconds in its own header.
        assert 0 <= math.ceil(info.value.retry_after or 0) <= RETRY_AFTER_CAP


@pytest.mark.parametrize("case", ["same", "upper", "lower"])
async def test_key_echoed_in_an_error_is_redacted_in_any_case(
    fake: FakeOpenRouter, case: str
) -> None:
    async with OpenRouterClient(config(fake, max_retries=0)) as client:
        with pytest.raises(BadRequestError) as info:
            await collect(client, f"q [[fake status=400 leak=error leak_case={case}]]")
        with pytest.raises(MidStreamError) as mid:
            await collect(client, f"q [[fake error_after=1 leak=error leak_case={case}]]")
    for error in (info.value, mid.value):
        assert "[redacted]" in error.message
        assert no_key(error.message) and no_key(json.dumps(error.body)) and no_key(str(error))


@pytest.mark.parametrize("case", ["same", "upper", "lower"])
async def test_key_echoed_in_content_split_across_chunks_is_redacted(
    fake: FakeOpenRouter, case: str
) -> None:
    async with OpenRouterClient(config(fake)) as client:
        stream = client.generate_response_stream(
            f"q [[fake chunks=4 reasoning=4 text='a b c d' leak=content,reasoning leak_case={case}]]"
        )
        chunks = [chunk async for chunk in stream]
    content = "".join(c.content for c in chunks)
    reasoning = "".join(c.reasoning or "" for c in chunks)
    assert content == "a b [redacted] c d" == stream.content
    assert "[redacted]" in reasoning and no_key(reasoning)
    # The halves were sent in two events; no piece of the key got out on its own.
    half = KEY[: len(KEY) // 2].lower()
    assert not any(half in (c.content + (c.reasoning or "")).lower() for c in chunks)


async def test_key_echoed_in_model_generation_id_and_usage_is_redacted(
    fake: FakeOpenRouter,
) -> None:
    async with OpenRouterClient(config(fake)) as client:
        stream = client.generate_response_stream(
            "q [[fake chunks=2 leak=model,gen_id,usage leak_case=upper]]"
        )
        chunks = [chunk async for chunk in stream]
        answer = await client.generate_response("q [[fake leak=content,model,gen_id,usage]]")
    assert stream.model == "x-ai/grok-4-fast:free:[redacted]"
    assert stream.generation_id == "gen-[redacted]"
    assert stream.usage is not None and "note" not in stream.usage
    assert answer.model == "x-ai/grok-4-fast:free:[redacted]"
    assert answer.generation_id == "gen-[redacted]"
    assert "[redacted]" in answer.content
    everything = repr([chunks, stream.usage, stream.model, stream.generation_id, answer])
    assert no_key(everything)


async def test_lone_surrogates_and_control_characters_from_upstream_are_replaced(
    fake: FakeOpenRouter,
) -> None:
    fake.configure(model="bad\ud800model\n" + "m" * 500)
    async with OpenRouterClient(config(fake)) as client:
        stream = client.generate_response_stream("q [[fake chunks=2]]")
        chunks = [chunk async for chunk in stream]
        answer = await client.generate_response("q")
    for model in (stream.model, chunks[0].model, answer.model):
        assert model is not None and model.startswith("bad\ufffdmodel\ufffdmmm")
        assert len(model) == 200
        model.encode()  # valid UTF-8: an event, a record and a log line can carry it


async def test_usage_is_reduced_to_known_keys_and_finite_numbers(fake: FakeOpenRouter) -> None:
    fake.configure(
        usage_extra={
            "__bad__": 1,
            "cost": -1,
            "completion_tokens_details": {"__x__": 1, "image_tokens": 3},
            "nested": {"deep": {"deeper": 1}},
        }
    )
    async with OpenRouterClient(config(fake)) as client:
        stream = client.generate_response_stream("q [[fake chunks=2]]")
        chunks = [chunk async for chunk in stream]
        answer = await client.generate_response("q")
    for usage in (stream.usage, chunks[-1].usage, answer.usage):
        assert usage is not None
        assert set(usage) == {
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "is_byok",
            "prompt_tokens_details",
            "cost_details",
            "completion_tokens_details",
        }
        assert usage["completion_tokens_details"] == {"image_tokens": 3}


@pytest.mark.parametrize(
    "extra",
    [
        {"total_tokens": 2**63},
        {"total_tokens": 10**9},  # within int64, far past what "q" and max_tokens cost
        {"prompt_tokens": True},
        {"completion_tokens": -1},
        {"completion_tokens_details": {"reasoning_tokens": 1e309}},
    ],
    ids=repr,
)
async def test_an_impossible_token_count_is_an_invalid_response(
    extra: dict[str, Any], fake: FakeOpenRouter
) -> None:
    fake.configure(usage_extra=extra)
    async with OpenRouterClient(config(fake, max_retries=0)) as client:
        stream = client.generate_response_stream("q [[fake chunks=2 text='a b']]")
        with pytest.raises(InvalidResponseError) as streamed:
            async for _ in stream:
                pass
        with pytest.raises(InvalidResponseError) as whole:
            await client.generate_response("q")
    for info in (streamed, whole):
        assert info.value.code == "upstream_error"
        assert "impossible token count" in info.value.message
    # The answer had been streamed whole; it stays with the error.
    assert streamed.value.partial == "a b" and stream.usage is None


async def test_an_endless_sse_line_fails_as_upstream_error_without_reading_it_all(
    fake: FakeOpenRouter,
) -> None:
    async with OpenRouterClient(config(fake, max_retries=0)) as client:
        started = time.process_time()
        with pytest.raises(InvalidResponseError) as info:
            await collect(client, "q [[fake chunks=3 text='a b c' long_line=40000000]]")
        cpu = time.process_time() - started
        assert await wait_for(lambda: fake.stats()["active_streams"] == 0)
    assert info.value.code == "upstream_error"
    assert info.value.partial == "a"
    assert "oversized" in info.value.message
    # The fake's writes share this process; reading 40 MB whole cost seconds.
    assert cpu < 2.0


async def test_a_non_streamed_body_over_the_limit_is_an_invalid_response(
    fake: FakeOpenRouter,
) -> None:
    big = "w" * 5000
    async with OpenRouterClient(config(fake, max_message_bytes=4096)) as client:
        with pytest.raises(InvalidResponseError):
            await client.generate_response(f"q [[fake text={big}]]")
        small = await client.generate_response("q [[fake text=fine]]")
    assert small.content == "fine"
