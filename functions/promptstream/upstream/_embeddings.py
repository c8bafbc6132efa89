"""An async client for an OpenAI-compatible ``POST /embeddings`` (OpenRouter's, or the
fake's), in batches, a few at once, on a session it borrows.

Errors are the package's one tree: a non-2xx answer is read and raised through
``status_error_for`` (the ``Transport``'s, as for chat), an aiohttp or timeout exception
through ``translate_errors``, and an answer of the wrong shape as ``InvalidResponseError``.
A batch is retried by the ``Transport``'s one retry rule, as a chat call before its first
chunk (connection errors, 408/409/429/5xx, ``Retry-After``): asking for the same vectors
twice has no side effect.

See docs/adr/0200-retrieval-design.md and docs/adr/0803-embedding-batches-at-once.md.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .._config import DEFAULTS, Settings
from .._errors import InvalidResponseError, OpenRouterError
from .._tokens import estimate_tokens
from .._usage import token_cap, tokens_reported
from ._client import DEFAULT_BASE_URL
from ._transport import Retry, Transport, read_capped, translate_errors

__all__ = ["Embeddings", "EmbeddingsClient", "EmbeddingsConfig", "answer_bound"]

_TUNING = DEFAULTS.upstream


class EmbeddingsConfig(BaseModel):
    """Where and how to embed. ``dimensions`` is sent to the endpoint (models that can
    shorten their vectors do) and every vector that comes back must have that length."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    model: str
    dimensions: int = Field(default=DEFAULTS.embedding_dimensions, ge=1, le=8192)
    base_url: str = DEFAULT_BASE_URL
    batch_size: int = Field(default=DEFAULTS.embedding_batch_size, ge=1, le=2048)
    concurrency: int = Field(default=DEFAULTS.embedding_concurrency, ge=1, le=16)
    # The upstream's tuning (UPSTREAM_*), as for chat: one batch's request, answer
    # included, gets the first-byte timeout; a batch is retried by the retry settings.
    timeout: float = Field(default=_TUNING.first_byte_timeout, gt=0)
    max_retries: int = Field(default=_TUNING.max_retries, ge=0, le=10)
    backoff_base: float = Field(default=_TUNING.backoff_base, ge=0)
    backoff_max: float = Field(default=_TUNING.backoff_max, ge=0)
    max_retry_after: float = Field(default=_TUNING.max_retry_after, ge=0)

    @classmethod
    def from_settings(cls, settings: Settings, api_key: str) -> EmbeddingsConfig:
        """The deployment's embeddings endpoint: ``embeddings_base_url``, or
        OpenRouter's base URL with the same key."""
        return cls(
            api_key=SecretStr(api_key),
            model=settings.embedding_model,
            dimensions=settings.embedding_dimensions,
            base_url=settings.embeddings_base_url or settings.openrouter_base_url,
            batch_size=settings.embedding_batch_size,
            concurrency=settings.embedding_concurrency,
            timeout=settings.upstream.first_byte_timeout,
            max_retries=settings.upstream.max_retries,
            backoff_base=settings.upstream.backoff_base,
            backoff_max=settings.upstream.backoff_max,
            max_retry_after=settings.upstream.max_retry_after,
        )


@dataclass(frozen=True, slots=True)
class Embeddings:
    """One vector per input text, in input order, and the tokens the endpoint counted."""

    vectors: list[list[float]]
    tokens: int


class EmbeddingsClient:
    """Embeds texts through ``config.base_url + "/embeddings"`` on ``session``, which it
    borrows: the caller opened it and closes it."""

    def __init__(self, config: EmbeddingsConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self._session = session
        self._transport = Transport(
            config.base_url.rstrip("/") + "/embeddings",
            config.api_key,
            Retry(
                config.max_retries, config.backoff_base, config.backoff_max, config.max_retry_after
            ),
            session=lambda: session,
            first_byte_timeout=config.timeout,
        )

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Vectors for ``texts``, in their order: ``config.batch_size`` texts per request,
        at most ``config.concurrency`` requests at once.

        Raises an ``OpenRouterError`` subclass: the first failed batch's, once the batches
        already in flight have been answered; no batch starts after a failure, and nothing
        partial is returned. ``tokens_spent`` on the error counts every batch answered
        (and a failed batch's own, when it was answered with an absurd usage).
        """
        size = self.config.batch_size
        batches = [list(texts[start : start + size]) for start in range(0, len(texts), size)]
        answered: list[tuple[list[list[float]], int] | None] = [None] * len(batches)
        failures: dict[int, OpenRouterError] = {}
        queue = iter(range(len(batches)))

        async def worker() -> None:
            # In flight batches are let finish, not cancelled: what they cost is billed
            # either way, and only their answers say how much.
            for index in queue:
                if failures:
                    return
                try:
                    answered[index] = await self._batch_with_retries(batches[index])
                except OpenRouterError as error:
                    failures[index] = error

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.config.concurrency, len(batches))):
                    group.create_task(worker())
        except BaseExceptionGroup as escaped:
            # Only what is not an upstream error gets here (a bug): raised as itself.
            raise escaped.exceptions[0] from None
        tokens = sum(found[1] for found in answered if found is not None)
        if failures:
            first = failures[min(failures)]
            first.tokens_spent += tokens + sum(
                error.tokens_spent for error in failures.values() if error is not first
            )
            raise first
        vectors = [vector for found in answered if found is not None for vector in found[0]]
        return Embeddings(vectors, tokens)

    async def _batch_with_retries(self, batch: list[str]) -> tuple[list[list[float]], int]:
        attempt = 0
        while True:
            try:
                return await self._batch(batch)
            except OpenRouterError as error:
                await self._transport.backoff_or_raise(error, attempt)
                attempt += 1

    async def _batch(self, batch: list[str]) -> tuple[list[list[float]], int]:
        cfg = self.config
        body = {
            "model": cfg.model,
            "input": batch,
            "dimensions": cfg.dimensions,
            "encoding_format": "float",
        }
        data = json.dumps(body)
        limit = answer_bound(len(batch), cfg.dimensions)
        with translate_errors(str):
            async with asyncio.timeout(cfg.timeout):
                async with self._transport.post(data) as response:
                    raw = await read_capped(response, limit + 1)
                    if response.status >= 400:
                        raise self._transport.status_error(response, raw)
        if len(raw) > limit:
            raise InvalidResponseError(f"embeddings answer is larger than {limit} bytes")
        return self._parse(raw, batch, token_cap(len(data.encode()), 0))

    def _parse(self, raw: bytes, batch: list[str], cap: int) -> tuple[list[list[float]], int]:
        expected = len(batch)
        try:
            data: Any = json.loads(raw)
        except ValueError as exc:
            raise InvalidResponseError("embeddings answer is not JSON") from exc
        if isinstance(data, dict) and "error" in data:
            raise self._transport.in_band_error(data["error"])
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != expected:
            raise InvalidResponseError(f"embeddings answer does not hold {expected} vectors")
        vectors: list[list[float] | None] = [None] * expected
        for item in items:
            index = item.get("index") if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if (
                not isinstance(index, int)
                or not 0 <= index < expected
                or vectors[index] is not None
            ):
                raise InvalidResponseError("embeddings answer has a bad or repeated index")
            vectors[index] = _checked_vector(vector, self.config.dimensions)
        try:
            tokens = tokens_reported(data.get("usage"), cap)
        except InvalidResponseError as error:
            # The batch was embedded and likely billed: the budget counts the estimate.
            error.tokens_spent = sum(map(estimate_tokens, batch))
            raise
        if not tokens:
            # No count, or 0 for texts that are never empty: not free, the estimate.
            tokens = sum(map(estimate_tokens, batch))
        return [v for v in vectors if v is not None], tokens


def answer_bound(texts: int, dimensions: int) -> int:
    """The most bytes an honest answer for ``texts`` vectors of ``dimensions`` numbers
    takes: 32 a number (the longest float JSON writes, its comma and a blank), 256 an
    item, and 64 KiB for the rest. A larger answer is refused unread, so that each batch
    in flight holds a bounded body, whatever the upstream sends."""
    return texts * (32 * dimensions + 256) + (64 << 10)


def _checked_vector(vector: Any, dimensions: int) -> list[float]:
    if not isinstance(vector, list) or len(vector) != dimensions:
        raise InvalidResponseError(f"embedding is not a list of {dimensions} numbers")
    out: list[float] = []
    for number in vector:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidResponseError("embedding holds something other than numbers")
        value = float(number)
        if not math.isfinite(value):
            raise InvalidResponseError("embedding holds a non-finite number")
        out.append(value)
    if not any(out):
        raise InvalidResponseError("embedding is all zeros (no direction for cosine)")
    return out
