"""The embeddings client with a scripted server on loopback playing the endpoint
(tests/support/scripted.py): batches, the exception
tree at its one boundary, retries, the checks on the answer's shape. (The client against
the fake's /embeddings is tests/integration/test_fake_embeddings.py's.)"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import aiohttp.web
import pytest
from aiohttp.test_utils import TestServer

from promptstream._config import Settings
from promptstream._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidResponseError,
    OpenRouterError,
    RateLimitError,
)
from promptstream._tokens import estimate_tokens
from promptstream.upstream._embeddings import EmbeddingsClient, EmbeddingsConfig, answer_bound
from support.scripted import ScriptedServer

PATH = "/api/v1/embeddings"
SECRET = "sk-or-v1-embed-SECRET-0123"


def config(endpoint: ScriptedServer, **overrides: Any) -> EmbeddingsConfig:
    values: dict[str, Any] = {
        "api_key": SECRET,
        "model": "test/embed",
        "dimensions": 3,
        "base_url": endpoint.url("/api/v1"),
        "batch_size": 2,
        # The script answers in arrival order: one batch at a time keeps that the input's.
        "concurrency": 1,
        "backoff_base": 0.0,
        **overrides,
    }
    return EmbeddingsConfig(**values)


def answer(count: int, start: float = 1.0, dims: int = 3, tokens: int = 5) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [start + i] + [0.0] * (dims - 1)}
            for i in range(count)
        ],
        "model": "test/embed",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def sent(endpoint: ScriptedServer) -> list[dict[str, Any]]:
    return [request.json() for request in endpoint.sent(PATH)]


async def test_texts_go_in_batches_and_vectors_come_back_in_input_order(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    scripted.post(PATH, payload=answer(2, start=1.0))
    # The second batch answers out of order: index decides, not position.
    reversed_answer = answer(2, start=3.0)
    reversed_answer["data"].reverse()
    scripted.post(PATH, payload=reversed_answer)
    scripted.post(PATH, payload=answer(1, start=5.0))
    result = await EmbeddingsClient(config(scripted), session).embed(["a", "b", "c", "d", "e"])
    bodies = sent(scripted)
    assert [v[0] for v in result.vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert result.tokens == 15
    assert [b["input"] for b in bodies] == [["a", "b"], ["c", "d"], ["e"]]
    assert bodies[0] == {
        "model": "test/embed",
        "input": ["a", "b"],
        "dimensions": 3,
        "encoding_format": "float",
    }
    assert not session.closed  # borrowed, left open


async def test_the_key_goes_as_a_bearer_token(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    scripted.post(PATH, payload=answer(1))
    await EmbeddingsClient(config(scripted), session).embed(["x"])
    [call] = scripted.sent(PATH)
    assert call.headers["Authorization"] == f"Bearer {SECRET}"


async def test_no_texts_no_request(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    result = await EmbeddingsClient(config(scripted), session).embed([])
    assert result.vectors == [] and result.tokens == 0
    assert scripted.all_sent() == []


@pytest.mark.parametrize(
    ("status", "error", "attempts"),
    [
        (400, BadRequestError, 1),
        (401, AuthenticationError, 1),
        (429, RateLimitError, 3),
        (500, InternalServerError, 3),
    ],
)
async def test_non_2xx_is_the_typed_error_after_the_retries_its_status_allows(
    session: aiohttp.ClientSession,
    scripted: ScriptedServer,
    status: int,
    error: type[OpenRouterError],
    attempts: int,
) -> None:
    body = {"error": {"code": status, "message": f"refused, key {SECRET}"}}
    scripted.post(PATH, status=status, payload=body, repeat=True)
    with pytest.raises(error) as raised:
        await EmbeddingsClient(config(scripted), session).embed(["a"])
    assert len(scripted.sent(PATH)) == attempts
    assert type(raised.value) is error
    assert SECRET not in str(raised.value) and "[redacted]" in raised.value.message


async def test_a_429_is_retried_after_its_retry_after(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    scripted.post(PATH, status=429, headers={"Retry-After": "0"}, payload={"error": {}})
    scripted.post(PATH, payload=answer(1))
    result = await EmbeddingsClient(config(scripted), session).embed(["a"])
    assert result.vectors == [[1.0, 0.0, 0.0]]


async def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    scripted.post(PATH, status=429, headers={"Retry-After": "60"}, payload={"error": {}})
    with pytest.raises(RateLimitError) as raised:
        await EmbeddingsClient(config(scripted), session).embed(["a"])
    assert len(scripted.sent(PATH)) == 1
    assert raised.value.retry_after == 60


def deployed(endpoint: ScriptedServer, **env: str) -> EmbeddingsConfig:
    """The embeddings config the functions build from these ``UPSTREAM_*`` variables."""
    base = {"EMBEDDINGS_BASE_URL": endpoint.url("/api/v1"), "EMBEDDING_DIMENSIONS": "3"}
    settings = Settings.from_env({**base, **env})
    return EmbeddingsConfig.from_settings(settings, SECRET)


async def test_upstream_max_retry_after_reaches_the_embeddings_client(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    # Waited for under the default (10 s); not under UPSTREAM_MAX_RETRY_AFTER=0.
    scripted.post(PATH, status=429, headers={"Retry-After": "1"}, payload={"error": {}})
    scripted.post(PATH, payload=answer(1))
    client = EmbeddingsClient(deployed(scripted, UPSTREAM_MAX_RETRY_AFTER="0"), session)
    with pytest.raises(RateLimitError):
        await client.embed(["a"])
    assert len(scripted.sent(PATH)) == 1


async def test_upstream_backoff_max_reaches_the_embeddings_client(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    # A base of 100 s would wait at least the default ceiling's half (4 s); a ceiling of
    # 0 retries at once.
    scripted.post(PATH, status=500, payload={"error": {"message": "boom"}})
    scripted.post(PATH, payload=answer(1))
    env = {"UPSTREAM_BACKOFF_BASE": "100", "UPSTREAM_BACKOFF_MAX": "0"}
    client = EmbeddingsClient(deployed(scripted, **env), session)
    async with asyncio.timeout(2):
        result = await client.embed(["a"])
    assert result.vectors == [[1.0, 0.0, 0.0]]
    assert len(scripted.sent(PATH)) == 2


async def test_connection_failures_and_timeouts_are_ours(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    # A port bound but not listening refuses the connection for as long as it is held.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/v1"
        with pytest.raises(APIConnectionError) as refused:
            await EmbeddingsClient(
                config(scripted, max_retries=0, base_url=refused_url), session
            ).embed(["a"])
    assert isinstance(refused.value.__cause__, aiohttp.ClientConnectionError)

    scripted.post(PATH, payload=answer(1), delay=1)
    with pytest.raises(APITimeoutError):
        await EmbeddingsClient(config(scripted, max_retries=0, timeout=0.05), session).embed(["a"])


@pytest.mark.parametrize(
    "payload",
    [
        {"data": []},
        {"object": "list"},
        answer(1, dims=4),
        {"data": [{"index": 0, "embedding": [1.0, "x", 0.0]}]},
        {"data": [{"index": 0, "embedding": [0.0, 0.0, 0.0]}]},
        {"data": [{"index": 3, "embedding": [1.0, 0.0, 0.0]}]},
        {"data": [{"index": 0, "embedding": [True, 0.0, 0.0]}]},
        ["not", "an", "object"],
    ],
)
async def test_an_answer_of_the_wrong_shape_is_invalid(
    session: aiohttp.ClientSession, scripted: ScriptedServer, payload: Any
) -> None:
    scripted.post(PATH, payload=payload)
    with pytest.raises(InvalidResponseError):
        await EmbeddingsClient(config(scripted), session).embed(["a"])


async def test_non_json_and_non_finite_answers_are_invalid(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    scripted.post(PATH, body="<html>oops</html>")
    scripted.post(PATH, body='{"data":[{"index":0,"embedding":[NaN,1,0]}]}')
    client = EmbeddingsClient(config(scripted), session)
    for _ in range(2):
        with pytest.raises(InvalidResponseError):
            await client.embed(["a"])
    assert len(scripted.sent(PATH)) == 2


async def test_an_error_inside_a_200_is_raised(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    scripted.post(PATH, payload={"error": {"code": 429, "message": "slow down"}})
    with pytest.raises(OpenRouterError) as raised:
        await EmbeddingsClient(config(scripted), session).embed(["a"])
    assert raised.value.code == "rate_limited"


@pytest.mark.parametrize("usage", [None, {}, {"total_tokens": None}, {"total_tokens": 0}], ids=repr)
async def test_a_missing_or_zero_count_is_the_estimate(
    usage: dict[str, Any] | None, session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    # Zero tokens for a text that is never empty is not a count: the embedding is not free.
    payload = answer(1)
    if usage is None:
        del payload["usage"]
    else:
        payload["usage"] = usage
    scripted.post(PATH, payload=payload)
    result = await EmbeddingsClient(config(scripted), session).embed(["x" * 40])
    assert result.tokens == estimate_tokens("x" * 40) > 0


@pytest.mark.parametrize("count", [2**64, -1, "12", True, 1.5, 10**6], ids=repr)
async def test_an_impossible_count_fails_the_call_and_counts_the_estimate_as_spent(
    count: Any, session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    first, second = answer(1), answer(1)
    second["usage"] = {"total_tokens": count}
    scripted.post(PATH, payload=first)
    scripted.post(PATH, payload=second)
    with pytest.raises(InvalidResponseError) as info:
        await EmbeddingsClient(config(scripted, batch_size=1), session).embed(["a", "b" * 40])
    assert info.value.code == "upstream_error"
    # The batch before it as counted, the failed one as estimated.
    assert info.value.tokens_spent == 5 + estimate_tokens("b" * 40)


# -- batches at once: a server that answers by content -----------------------------------


class ByContent:
    """An /embeddings endpoint on loopback whose answer depends on the texts: "tN" is
    embedded as [N + 1, 0, 0], each text costs 7 tokens, and ``script`` maps a text to
    (seconds to wait, status). It counts the requests in flight."""

    def __init__(self, script: dict[str, tuple[float, int]] | None = None) -> None:
        self.script = script or {}
        self.inputs: list[list[str]] = []
        self.in_flight = self.most_in_flight = 0
        app = aiohttp.web.Application()
        app.router.add_post(PATH, self._answer)
        self.server = TestServer(app, host="127.0.0.1")

    async def _answer(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        texts = (await request.json())["input"]
        self.inputs.append(texts)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            delay, status = self.script.get(texts[0], (0.0, 200))
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        if status != 200:
            return aiohttp.web.json_response({"error": {"message": "no"}}, status=status)
        vectors = [[float(text[1:]) + 1, 0.0, 0.0] for text in texts]
        return aiohttp.web.json_response(
            {
                "data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": 7 * len(texts), "total_tokens": 7 * len(texts)},
            }
        )


@pytest.fixture
async def by_content() -> AsyncIterator[ByContent]:
    endpoint = ByContent()
    await endpoint.server.start_server()
    yield endpoint
    await endpoint.server.close()


def content_config(endpoint: ByContent, **overrides: Any) -> EmbeddingsConfig:
    values: dict[str, Any] = {
        "api_key": SECRET,
        "model": "test/embed",
        "dimensions": 3,
        "base_url": str(endpoint.server.make_url("/api/v1")),
        "backoff_base": 0.0,
        **overrides,
    }
    return EmbeddingsConfig(**values)


async def test_batches_go_a_few_at_once_and_come_back_in_input_order(
    session: aiohttp.ClientSession, by_content: ByContent
) -> None:
    # The earlier batches answer last, and the first three all take long enough to be in
    # flight together.
    by_content.script = {f"t{n}": (0.3 - 0.025 * n, 200) for n in range(0, 10, 2)}
    texts = [f"t{n}" for n in range(10)]
    client = EmbeddingsClient(content_config(by_content, batch_size=2, concurrency=3), session)
    result = await client.embed(texts)
    assert [v[0] for v in result.vectors] == [n + 1 for n in range(10)]
    assert result.tokens == 70
    assert by_content.most_in_flight == 3
    assert sorted(by_content.inputs) == [texts[n : n + 2] for n in range(0, 10, 2)]


async def test_after_a_failure_no_batch_starts_and_those_in_flight_are_counted(
    session: aiohttp.ClientSession, by_content: ByContent
) -> None:
    # t2 fails at once (401) and t0 a little later (400) while t1 is still being
    # embedded: t1 is answered and counted though it comes after t0, nothing after t2 is
    # sent, and the upload's error is the first batch's in input order, not the first to
    # arrive.
    by_content.script = {"t0": (0.05, 400), "t1": (0.2, 200), "t2": (0.0, 401)}
    client = EmbeddingsClient(content_config(by_content, batch_size=1, concurrency=3), session)
    with pytest.raises(BadRequestError) as raised:
        await client.embed([f"t{n}" for n in range(6)])
    assert sorted(by_content.inputs) == [["t0"], ["t1"], ["t2"]]
    assert raised.value.tokens_spent == 7


async def test_what_is_not_an_upstream_error_is_raised_as_itself(
    session: aiohttp.ClientSession, by_content: ByContent, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(EmbeddingsClient, "_parse", broken)
    client = EmbeddingsClient(content_config(by_content, batch_size=1, concurrency=2), session)
    with pytest.raises(ZeroDivisionError):
        await client.embed(["t0", "t1", "t2"])


# -- the answer's size -----------------------------------------------------------------


async def test_an_answer_larger_than_any_honest_one_is_refused(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    # Valid JSON either way: only its size tells the two apart.
    bound = answer_bound(1, 3)
    honest = json.dumps(answer(1))
    scripted.post(PATH, body=honest + " " * (bound - len(honest)))
    scripted.post(PATH, body=honest + " " * (bound - len(honest) + 1), repeat=True)
    client = EmbeddingsClient(config(scripted, batch_size=1), session)
    assert (await client.embed(["a"])).vectors == [[1.0, 0.0, 0.0]]
    with pytest.raises(InvalidResponseError) as raised:
        await client.embed(["a"])
    assert f"larger than {bound} bytes" in raised.value.message


def test_the_bound_holds_the_longest_numbers_json_writes() -> None:
    dims = 256
    vector = [-1.2345678901234567e-308] * dims
    worst = {
        "object": "list",
        "data": [{"object": "embedding", "index": 2047, "embedding": vector}] * 64,
        "model": "x" * 200,
        "usage": {"prompt_tokens": 10**9, "total_tokens": 10**9},
    }
    assert len(json.dumps(worst, indent=1)) <= answer_bound(64, dims)
