"""The fake's `POST /embeddings`: OpenAI's wire shape, the local model's vectors, its
checks, and the fault knobs (a status at the Nth call, so a fault can land midway).

The expected shape is written out from OpenAI's embeddings API reference
(`{"object":"list","data":[{"object":"embedding","index":i,"embedding":[...]}],
"model":...,"usage":{"prompt_tokens":n,"total_tokens":n}}`), not taken from the server.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fake_openrouter import EMBEDDING_DIMENSIONS, EMBEDDING_MODEL, FakeOpenRouter
from promptstream._errors import InternalServerError
from promptstream.upstream._embeddings import EmbeddingsClient, EmbeddingsConfig

KEY = {"Authorization": "Bearer sk-or-v1-test"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenRouter]:
    async with FakeOpenRouter() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def embed(
    session: aiohttp.ClientSession,
    fake: FakeOpenRouter,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async with session.post(
        fake.base_url + "/embeddings", json=body, headers={**KEY, **(headers or {})}
    ) as resp:
        return resp.status, json.loads(await resp.read())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_answer_has_openai_shape_with_unit_vectors_in_input_order(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    texts = [
        "The cat sat on the mat.",
        "Quarterly revenue grew by 12 percent.",
        "日本語のテキスト ✨",
    ]
    status, body = await embed(session, fake, {"model": EMBEDDING_MODEL, "input": texts})
    assert status == 200
    assert list(body) == ["object", "data", "model", "usage"]
    assert body["object"] == "list" and body["model"] == EMBEDDING_MODEL
    assert [(d["object"], d["index"]) for d in body["data"]] == [
        ("embedding", 0),
        ("embedding", 1),
        ("embedding", 2),
    ]
    for item in body["data"]:
        assert list(item) == ["object", "index", "embedding"]
        assert len(item["embedding"]) == EMBEDDING_DIMENSIONS
        assert math.isclose(
            math.sqrt(cosine(item["embedding"], item["embedding"])), 1.0, abs_tol=1e-5
        )
    usage = body["usage"]
    assert list(usage) == ["prompt_tokens", "total_tokens"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > len(texts)
    # Each vector is the one the same text gets alone: batching changes nothing.
    _, alone = await embed(session, fake, {"model": EMBEDDING_MODEL, "input": texts[1]})
    assert cosine(alone["data"][0]["embedding"], body["data"][1]["embedding"]) > 0.9999


async def test_vectors_rank_related_text_above_unrelated(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    texts = [
        "How do I reset my password?",
        "To reset your password, open Settings and choose Reset password.",
        "The recipe needs two cups of flour and an egg.",
    ]
    _, body = await embed(session, fake, {"model": EMBEDDING_MODEL, "input": texts})
    query, answer, other = (d["embedding"] for d in body["data"])
    assert cosine(query, answer) > cosine(query, other) + 0.1


async def test_dimensions_cut_the_vector_and_keep_it_unit_length(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    status, body = await embed(
        session, fake, {"model": "any/model", "input": ["hello world"], "dimensions": 64}
    )
    assert status == 200 and body["model"] == "any/model"
    vector = body["data"][0]["embedding"]
    assert len(vector) == 64
    assert math.isclose(cosine(vector, vector), 1.0, abs_tol=1e-5)


async def test_base64_encoding_is_little_endian_float32(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    request = {"model": EMBEDDING_MODEL, "input": "hello world", "dimensions": 8}
    _, floats = await embed(session, fake, request)
    _, packed = await embed(session, fake, {**request, "encoding_format": "base64"})
    raw = base64.b64decode(packed["data"][0]["embedding"])
    unpacked = struct.unpack("<8f", raw)
    assert unpacked == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": EMBEDDING_MODEL}, "input must be"),
        ({"model": EMBEDDING_MODEL, "input": []}, "input must be"),
        ({"model": EMBEDDING_MODEL, "input": [1, 2]}, "input[0] must be"),
        ({"model": EMBEDDING_MODEL, "input": ["ok", "  "]}, "input[1] must be"),
        ({"model": EMBEDDING_MODEL, "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": EMBEDDING_MODEL, "input": "x", "dimensions": 257}, "dimensions"),
        ({"model": EMBEDDING_MODEL, "input": "x", "dimensions": True}, "dimensions"),
        ({"model": EMBEDDING_MODEL, "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": EMBEDDING_MODEL, "input": ["x"] * 2049}, "at most 2048"),
        (["not", "an", "object"], "Invalid JSON body"),
    ],
)
async def test_bad_requests_are_refused_with_openrouter_error_shape(
    fake: FakeOpenRouter, session: aiohttp.ClientSession, body: Any, message: str
) -> None:
    status, answer = await embed(session, fake, body)
    assert status == 400
    assert answer["error"]["code"] == 400
    assert message in answer["error"]["message"]


async def test_a_missing_or_wrong_key_is_refused(session: aiohttp.ClientSession) -> None:
    async with FakeOpenRouter(api_key="sk-right") as fake:
        async with session.post(fake.base_url + "/embeddings", json={"input": "x"}) as resp:
            assert resp.status == 401
        status, _ = await embed(
            session, fake, {"input": "x"}, headers={"Authorization": "Bearer sk-wrong"}
        )
        assert status == 401
        status, _ = await embed(
            session, fake, {"input": "x"}, headers={"Authorization": "Bearer sk-right"}
        )
        assert status == 200


async def test_embed_status_at_fails_only_the_nth_call(session: aiohttp.ClientSession) -> None:
    async with FakeOpenRouter(embed_status=500, embed_status_at=3) as fake:
        statuses = [(await embed(session, fake, {"input": f"text {i}"}))[0] for i in range(5)]
        assert statuses == [200, 200, 500, 200, 200]
        assert fake.stats()["embedding_requests"] == 5
        # Counted again from a reset.
        fake.state.reset()
        statuses = [(await embed(session, fake, {"input": f"text {i}"}))[0] for i in range(3)]
        assert statuses == [200, 200, 500]


async def test_embed_status_429_carries_retry_after_from_the_header_knobs(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    scenario = {"X-Fake-Scenario": json.dumps({"embed_status": 429, "retry_after": "7"})}
    async with session.post(
        fake.base_url + "/embeddings", json={"input": "x"}, headers={**KEY, **scenario}
    ) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        answer = await resp.json()
    assert answer["error"]["code"] == 429
    assert "Rate limit" in answer["error"]["message"]


async def test_a_directive_in_an_input_steers_that_call_and_is_not_embedded(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    status, _ = await embed(session, fake, {"input": ["fine", "[[fake embed_status=502]] bad"]})
    assert status == 502
    _, plain = await embed(session, fake, {"input": "hello world"})
    _, steered = await embed(session, fake, {"input": "hello world [[fake embed_delay=0]]"})
    assert cosine(plain["data"][0]["embedding"], steered["data"][0]["embedding"]) > 0.9999


async def test_chat_knobs_do_not_fail_embeddings(session: aiohttp.ClientSession) -> None:
    async with FakeOpenRouter(status=500) as fake:
        status, _ = await embed(session, fake, {"input": "x"})
    assert status == 200


async def test_embedding_models_are_listed_as_the_local_demo_model(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    async with session.get(fake.base_url + "/embeddings/models") as resp:
        models = (await resp.json())["data"]
    assert [m["id"] for m in models] == [EMBEDDING_MODEL]
    assert "local demo" in models[0]["name"]


# -- the package's embeddings client against the fake ----------------------------------


def client_config(fake: FakeOpenRouter, max_retries: int) -> EmbeddingsConfig:
    return EmbeddingsConfig(
        api_key="sk-or-v1-test",
        model=EMBEDDING_MODEL,
        dimensions=EMBEDDING_DIMENSIONS,
        base_url=fake.base_url,
        batch_size=2,
        backoff_base=0.0,
        max_retries=max_retries,
    )


async def test_the_client_against_the_fake_a_fault_midway_fails_the_call_or_is_retried(
    session: aiohttp.ClientSession,
) -> None:
    texts = [f"passage number {i} about gardening and tomatoes" for i in range(5)]
    async with FakeOpenRouter(embed_status=500, embed_status_at=2) as fake:
        strict = client_config(fake, max_retries=0)
        with pytest.raises(InternalServerError):
            await EmbeddingsClient(strict, session).embed(texts)
        # The three batches go at once (EMBEDDING_CONCURRENCY): one fails, and the call
        # fails once the other two are answered.
        assert fake.stats()["embedding_requests"] == 3
        fake.state.reset()
        patient = client_config(fake, max_retries=1)
        result = await EmbeddingsClient(patient, session).embed(texts)
        assert fake.stats()["embedding_requests"] == 4  # 3 batches, one of them twice
    assert len(result.vectors) == 5 and all(len(v) == 256 for v in result.vectors)
    assert result.tokens > 5


@pytest.mark.parametrize("count", [2**64, 0, -1, None, "12"], ids=repr)
async def test_embed_usage_merges_a_hostile_count_into_the_usage(
    count: Any, fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    _, honest = await embed(session, fake, {"input": "hello world"})
    scenario = {"X-Fake-Scenario": json.dumps({"embed_usage": {"total_tokens": count}})}
    status, answer = await embed(session, fake, {"input": "hello world"}, scenario)
    assert status == 200
    assert answer["usage"] == {
        "prompt_tokens": honest["usage"]["prompt_tokens"],
        "total_tokens": count,
    }
    assert answer["data"] == honest["data"]


async def test_a_bad_embed_usage_is_a_400(
    fake: FakeOpenRouter, session: aiohttp.ClientSession
) -> None:
    scenario = {"X-Fake-Scenario": json.dumps({"embed_usage": "[1]"})}
    status, _ = await embed(session, fake, {"input": "x"}, scenario)
    assert status == 400
