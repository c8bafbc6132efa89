"""One streamed chat completion (``ChatStream``), and the typed chunks and answers the
chat client hands out. The per-chunk path is bytes → dict → slotted dataclass; no pydantic
object is built per chunk. Retries and fallbacks happen only before the first chunk
(docs/adr/0400-model-comparison-and-fallback.md); the upstream is distrusted throughout
(docs/adr/0300-hostile-upstream.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .._config import UpstreamTuning
from .._errors import InvalidResponseError, OpenRouterError, StreamInterruptedError
from .._json import loads
from .._sanitize import safe_usage
from .._sse import SSEDecoder, SSELimitError
from .._usage import check_usage, token_cap
from ._routing import Attempt, Route
from ._transport import Transport, translate_errors, unread
from ._watchdog import Watchdog

__all__ = ["ChatResponse", "ChatStream", "OnChunk", "StreamChunk"]

OnChunk = Callable[["StreamChunk"], Awaitable[None] | None]

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_FINISH_REASON_CHARS = 64


@dataclass(slots=True)
class StreamChunk:
    content: str
    finish_reason: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    reasoning: str | None = None


@dataclass(slots=True)
class ChatResponse:
    content: str
    finish_reason: str | None
    model: str | None
    usage: dict[str, Any] | None
    reasoning: str | None = None
    generation_id: str | None = None
    # Every model tried or skipped, in order (see _routing.Route.attempts).
    attempts: list[Attempt] = field(default_factory=list)


def whole_characters(held: str, text: str, *, final: bool = False) -> tuple[str, str]:
    """``held + text`` as valid Unicode, and what to hold back for the next event.

    JSON escapes a character outside the BMP as two UTF-16 surrogates, and a server that
    cuts text by UTF-16 index can put the two halves in two events; ``json.loads`` then
    gives a lone surrogate, which cannot be encoded as UTF-8 (our events, Firestore). A
    high surrogate at the end is held back to meet its other half; pairs are joined, and
    any surrogate left alone becomes U+FFFD. With ``final``, nothing is held back.
    """
    text = held + text
    keep = ""
    if text and not final and "\ud800" <= text[-1] <= "\udbff":
        text, keep = text[:-1], text[-1]
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text, keep


class ChatStream:
    """An async iterator of ``StreamChunk`` over one streamed completion.

    Retries, and the fallback to the next model, happen only before the first chunk has
    reached the caller; once one has, either would duplicate text, so errors are raised
    with ``partial`` instead.
    """

    def __init__(
        self,
        transport: Transport,
        tuning: UpstreamTuning,
        body: dict[str, Any],
        on_chunk: OnChunk | None,
        route: Route | None = None,
    ) -> None:
        self._transport = transport
        self._tuning = tuning
        self._base = body
        self._route = route or Route([body["model"]], native=False)
        self._body = self._route.body(body)
        # Tries of the model being asked (each model gets its own retries).
        self._tries = 0
        # Whether a chunk has reached the caller, and how the stream failed, if it did.
        self._served = False
        self._error: OpenRouterError | None = None
        self._on_chunk = on_chunk
        self._on_chunk_is_async = on_chunk is not None and inspect.iscoroutinefunction(on_chunk)
        self._gen: AsyncIterator[StreamChunk] | None = None
        self._response: aiohttp.ClientResponse | None = None
        # The response being read, for abort().
        self._reading: aiohttp.ClientResponse | None = None
        self._deadline = time.monotonic() + tuning.deadline
        # Until a first chunk has reached the caller, the attempts share a shorter one.
        self._first_deadline = min(self._deadline, time.monotonic() + tuning.first_chunk_deadline)
        self._parts: list[str] = []
        self._token_cap: int | None = None
        # A high surrogate waiting for its other half (see whole_characters).
        self._held_content = ""
        self._held_reasoning = ""
        # The key is taken out here, so nothing downstream (events, record, logs) sees it;
        # a key split across two events is caught by holding back a possible start of it.
        self._redact_content = transport.redactor()
        self._redact_reasoning = transport.redactor()
        # The model as last sent, to clean it only when it changes (it comes with every
        # event).
        self._raw_model: Any = None
        # Everything below is safe to store and show: cleaned by _sanitize, key redacted.
        self.generation_id: str | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        # Events already decoded from the last read and not yet handed out: while it is
        # above zero, the next chunk comes without waiting for the upstream.
        self.buffered = 0

    @property
    def content(self) -> str:
        """The content received so far."""
        return "".join(self._parts)

    @property
    def models(self) -> tuple[str, ...]:
        """The models to try, in order: the primary, then the fallbacks."""
        return self._route.models

    @property
    def attempts(self) -> list[Attempt]:
        """Every model tried or skipped so far, and what became of it."""
        return self._route.attempts(served=self._served, reported=self.model, error=self._error)

    @property
    def answered_model(self) -> str:
        """The model that answered, as the upstream named it; else the one asked if it
        served, else the primary (none answered)."""
        return self.model or (self._route.model if self._served else self._route.models[0])

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._gen is None:
            self._gen = self._run()
        chunk = await self._gen.__anext__()
        if self._on_chunk is not None:
            if self._on_chunk_is_async:
                await self._on_chunk(chunk)  # type: ignore[misc]
            else:
                result = self._on_chunk(chunk)
                if inspect.isawaitable(result):
                    await result
        return chunk

    def abort(self) -> None:
        """Close the upstream connection now, from a plain callback (the caller has gone):
        the upstream stops generating at once, before ``aclose`` runs. Safe any time."""
        for response in (self._response, self._reading):
            if response is not None:
                response.close()

    async def aclose(self) -> None:
        """Close the upstream response now. Safe to call more than once."""
        if self._response is not None:
            self._response.close()
            self._response = None
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the upstream response now (retrying as allowed), without reading content.

        A refusal (401, 402, 429 after retries, 503 ...) is raised here, before anything
        has been streamed, so a relay can still answer with a proper HTTP status.
        """
        if self._response is None and self._gen is None:
            self._response = await self._open_with_retries()

    async def _open_with_retries(self) -> aiohttp.ClientResponse:
        while True:
            self._tries += 1
            try:
                return await self._transport.open(self._body, stream=True, by=self._first_deadline)
            except OpenRouterError as error:
                await self._retry_or_fall_back(error)

    async def _retry_or_fall_back(self, error: OpenRouterError) -> None:
        """Before the first chunk: wait for the next try of the same model, or move on
        to the next model, or raise ``error`` (with the attempts made)."""
        by = self._first_deadline
        try:
            await self._transport.backoff_or_raise(error, self._tries - 1, by)
        except OpenRouterError:
            if not self._route.fall_back(error, move=time.monotonic() < by):
                self._error = error
                error.attempts = self.attempts
                raise
            self._body = self._route.body(self._base)
            self._tries = 0
        # Whatever the failed attempt said of itself is not the answer's.
        self.model = self._raw_model = self.generation_id = None

    async def _run(self) -> AsyncIterator[StreamChunk]:
        while True:
            response = self._response or await self._open_with_retries()
            self._response = None
            self._reading = response
            try:
                self.generation_id = self._transport.clean(response.headers.get("X-Generation-Id"))
                async for chunk in self._chunks(response, self._deadline):
                    self._served = True
                    yield chunk
                return
            except OpenRouterError as error:
                if self._served:
                    self._error = error
                    error.attempts = self.attempts
                    raise
                await self._retry_or_fall_back(error)
            finally:
                self._reading = None
                # A response read to its end goes back to the pool; one left early is
                # closed, which tells the upstream to stop generating.
                if response.content.at_eof():
                    response.release()
                else:
                    response.close()

    async def _chunks(
        self, response: aiohttp.ClientResponse, deadline: float
    ) -> AsyncIterator[StreamChunk]:
        loop = asyncio.get_running_loop()
        reader = response.content
        now = time.monotonic()
        # A timer, not a task in a TaskGroup: this generator yields between reads, and a
        # group's cancellation would land in whichever task iterates it (the caller,
        # holding a chunk); the timer only fails the pending read, and the finally ends it.
        watchdog = Watchdog(
            loop,
            reader,
            self._tuning.idle_timeout,
            loop.time() + max(0.0, deadline - now),
            loop.time() + max(0.0, self._first_deadline - now),
        )
        limit = self._tuning.max_message_bytes
        decoder = SSEDecoder(max_line_bytes=limit, max_event_bytes=limit)
        failure: Exception | None = None
        try:
            while True:
                if failure is not None:
                    # Translated only on the way out: no context manager per read.
                    with translate_errors(lambda: self.content):
                        raise failure
                try:
                    data = await reader.readany()
                except Exception as exc:
                    # What arrived before the failure is the upstream's text too.
                    failure, data = exc, unread(reader)
                    if not data:
                        continue
                if not data:
                    break
                try:
                    events = decoder.feed(data)
                except SSELimitError as exc:
                    raise InvalidResponseError(
                        f"upstream sent an oversized event: {exc}", partial=self.content
                    ) from None
                left = len(events)
                for event in events:
                    left -= 1
                    self.buffered = left
                    if event.data == "[DONE]":
                        watchdog.cancel()
                        await self._drain(reader)
                        # Without a finish_reason, text may still be held back.
                        last = self._flush()
                        if last is not None:
                            yield last
                        return
                    chunk = self._parse(event.data)
                    if chunk is None:
                        continue
                    if chunk.content or chunk.reasoning:
                        watchdog.last_content = loop.time()
                        if chunk.content:
                            self._parts.append(chunk.content)
                    yield chunk
        finally:
            watchdog.cancel()
        if self.finish_reason is None:
            raise StreamInterruptedError(
                "upstream stream ended without [DONE] or a finish_reason", partial=self.content
            )

    @staticmethod
    async def _drain(reader: aiohttp.StreamReader) -> None:
        """Read the few bytes after ``[DONE]`` so the connection can go back to the pool."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                while await reader.readany():
                    pass

    def _flush(self) -> StreamChunk | None:
        """What is still held back (half a surrogate pair, a possible start of the key),
        as a last chunk, or ``None``."""
        content = whole_characters(self._held_content, "", final=True)[0]
        reasoning = whole_characters(self._held_reasoning, "", final=True)[0]
        self._held_content = self._held_reasoning = ""
        content = self._redact_content.feed(content) + self._redact_content.flush()
        reasoning = self._redact_reasoning.feed(reasoning) + self._redact_reasoning.flush()
        if not (content or reasoning):
            return None
        if content:
            self._parts.append(content)
        return StreamChunk(content, None, self.model, None, reasoning or None)

    def _parse(self, raw: str) -> StreamChunk | None:
        try:
            data = loads(raw)
        except ValueError:
            raise InvalidResponseError(
                "upstream sent a data line that is not JSON", partial=self.content
            ) from None
        if not isinstance(data, dict):
            raise InvalidResponseError("upstream sent a non-object event", partial=self.content)
        transport = self._transport
        model = data.get("model")
        if model and model != self._raw_model:
            self._raw_model = model
            self.model = transport.clean(model)
        # After the model: an error event names the model that failed (native routing).
        if "error" in data:
            raise transport.in_band_error(data["error"], partial=self.content)
        if self.generation_id is None and data.get("id"):
            self.generation_id = transport.clean(data["id"])
        content = ""
        reasoning = None
        finish_reason = None
        choices = data.get("choices")
        if choices:
            choice = choices[0] if type(choices) is list else None
            delta = choice.get("delta") or {} if type(choice) is dict else None
            if type(choice) is not dict or type(delta) is not dict:
                raise InvalidResponseError(
                    "upstream sent an event without a choice delta", partial=self.content
                )
            content = delta.get("content") or ""
            reasoning = delta.get("reasoning") or None
            finish_reason = choice.get("finish_reason")
            if type(content) is not str or not isinstance(reasoning, str | None):
                raise InvalidResponseError(
                    "upstream sent content that is not text", partial=self.content
                )
            if finish_reason is not None:
                finish_reason = transport.clean(finish_reason, MAX_FINISH_REASON_CHARS)
            final = finish_reason is not None
            # ASCII, nearly every chunk, costs one check.
            if self._held_content or not content.isascii():
                content, self._held_content = whole_characters(
                    self._held_content, content, final=final
                )
            if self._held_reasoning or (reasoning and not reasoning.isascii()):
                text, self._held_reasoning = whole_characters(
                    self._held_reasoning, reasoning or "", final=final
                )
                reasoning = text or None
            if content:
                content = self._redact_content.feed(content)
            if reasoning:
                reasoning = self._redact_reasoning.feed(reasoning) or None
            if final:
                content += self._redact_content.flush()
                reasoning = (reasoning or "") + self._redact_reasoning.flush() or None
            if finish_reason == "error":
                error = data.get("error") or {"message": "upstream reported an error"}
                raise transport.in_band_error(error, partial=self.content)
            if finish_reason:
                self.finish_reason = finish_reason
        usage = data.get("usage")
        if usage:
            if self._token_cap is None:
                # Once: a hostile upstream may send usage in every event.
                self._token_cap = request_cap(self._body)
            check_usage(usage, self._token_cap, self.content)
            usage = self.usage = safe_usage(usage)
        if not (content or reasoning or finish_reason or usage):
            return None
        return StreamChunk(content, finish_reason, self.model, usage, reasoning)


def request_cap(body: dict[str, Any]) -> int:
    """The most tokens the request ``body`` can believably be counted (see _usage)."""
    max_tokens = body.get("max_tokens")
    if type(max_tokens) is not int or max_tokens <= 0:
        max_tokens = None
    return token_cap(len(json.dumps(body).encode()), max_tokens)
