"""The async OpenRouter client: chat-completion streams, one typed chunk at a time.

The per-chunk path is bytes → dict → slotted dataclass; no pydantic object is built per
chunk. aiohttp exceptions are translated to the ``_errors`` tree in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import inspect
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import Field, SecretStr

from .._config import Settings, UpstreamTuning
from .._errors import (
    APIConnectionError,
    APITimeoutError,
    ErrorCode,
    InvalidResponseError,
    MidStreamError,
    OpenRouterError,
    StreamInterruptedError,
    status_error_for,
)
from .._json import loads
from .._redact import Redactor, redact, redact_json
from .._sanitize import safe_text, safe_usage
from .._sse import SSEDecoder, SSELimitError
from .._usage import check_usage, token_cap
from ._messages import chat_messages
from ._routing import Attempt, Route, Routing, native_routing

__all__ = [
    "DEFAULT_BASE_URL",
    "ChatResponse",
    "ChatStream",
    "OpenRouterClient",
    "OpenRouterConfig",
    "StreamChunk",
]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"

OnChunk = Callable[["StreamChunk"], Awaitable[None] | None]

# Body parameters a caller may set per call. Anything else is a typo, not a request.
_OVERRIDABLE = frozenset(
    {
        "model",
        "models",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
        "stop",
        "seed",
        "reasoning",
        "provider",
        "user",
    }
)


class OpenRouterConfig(UpstreamTuning):
    """Client settings. ``base_url`` may point at any OpenAI-compatible server."""

    api_key: SecretStr
    model: str = "x-ai/grok-4-fast:free"
    base_url: str = DEFAULT_BASE_URL
    max_tokens: int | None = Field(default=1024, ge=1)
    temperature: float | None = Field(default=0.7, ge=0, le=2)
    max_connections: int = Field(default=1000, ge=1)
    app_url: str | None = None
    app_title: str | None = None
    # How a call with fallback models falls back (see _routing).
    fallback_routing: Routing = "auto"

    @classmethod
    def from_settings(cls, settings: Settings, api_key: str) -> OpenRouterConfig:
        """The upstream client's configuration, from the service's settings."""
        return cls(
            api_key=SecretStr(api_key),
            model=settings.default_model,
            base_url=settings.openrouter_base_url,
            max_tokens=settings.default_max_tokens,
            temperature=None,
            app_url=settings.app_url,
            app_title=settings.app_title,
            fallback_routing=settings.fallback_routing,
            **dict(settings.upstream),
        )


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


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


_RETRYABLE_STATUS = frozenset({408, 409, 429})
_SURROGATE = re.compile("[\ud800-\udfff]")
# What any upstream Retry-After is clamped to (a day); it still goes to the browser.
RETRY_AFTER_CAP = 86_400.0
# An error body is read only this far: enough for any message, and no more memory.
_ERROR_BODY_BYTES = 64 * 1024
_MAX_FINISH_REASON_CHARS = 64


def _whole_characters(held: str, text: str, *, final: bool = False) -> tuple[str, str]:
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


def _should_retry(error: OpenRouterError) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    status = getattr(error, "status_code", None)
    if status is None:
        return False
    if status == 402:
        return error.retry_after is not None
    return status in _RETRYABLE_STATUS or status >= 500


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, in ``[0, RETRY_AFTER_CAP]``, or ``None`` for no usable value.

    Never raises: ``1e999``, ``nan``, a 5,000-digit number or an HTTP-date in the year
    9999 come from an upstream we do not control, and the value ends up in our own
    ``Retry-After`` header.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_CAP)


@contextlib.contextmanager
def _translate_errors(partial: Callable[[], str]) -> Iterator[None]:
    """The one boundary where aiohttp and timeout exceptions become ours."""
    try:
        yield
    except OpenRouterError:
        raise
    except TimeoutError as exc:
        raise APITimeoutError("upstream timed out", partial=partial()) from exc
    except aiohttp.ClientPayloadError as exc:
        raise StreamInterruptedError(
            "upstream connection dropped mid-stream", partial=partial()
        ) from exc
    except aiohttp.ServerDisconnectedError as exc:
        text = partial()
        if text:
            raise StreamInterruptedError(
                "upstream connection dropped mid-stream", partial=text
            ) from exc
        raise APIConnectionError("upstream closed the connection") from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise APIConnectionError(f"cannot reach upstream: {type(exc).__name__}") from exc
    except aiohttp.ClientError as exc:
        raise APIConnectionError(f"upstream request failed: {type(exc).__name__}") from exc


class OpenRouterClient:
    """``async with OpenRouterClient(config) as client: ...``

    It owns its ``aiohttp.ClientSession``, or borrows the one it is given and leaves it
    open. One session pools connections: N calls in a row reuse one upstream connection.
    """

    def __init__(
        self, config: OpenRouterConfig, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.config = config
        self._session = session
        self._owns_session = session is None
        self._state = _State.UNOPENED
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._secret = config.api_key.get_secret_value()
        self._native = native_routing(config.fallback_routing, config.base_url)

    async def __aenter__(self) -> OpenRouterClient:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("an OpenRouterClient can be opened once")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.config.max_connections, keepalive_timeout=60
                ),
                # No total cap: it would cut long generations short. Our own watchdogs
                # (first byte, content idle, deadline) do that job.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout),
                auto_decompress=True,
            )
        self._state = _State.OPENED
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._state is _State.OPENED and self._owns_session and self._session is not None:
            await self._session.close()
        self._state = _State.CLOSED

    # -- public calls ---------------------------------------------------------------

    def generate_response_stream(
        self,
        prompt: str,
        system_prompt: str | None = None,
        context: str | None = None,
        on_chunk: OnChunk | None = None,
        *,
        fallbacks: Sequence[str] = (),
        **overrides: Any,
    ) -> ChatStream:
        """Stream a completion. Iterate the result with ``async for``.

        ``fallbacks`` are the models to try, in order, when the model fails before its
        first chunk (see ``_routing``). The returned ``ChatStream`` also exposes
        ``generation_id``, ``usage``, ``model``, ``finish_reason`` and ``attempts`` as
        they become known, and closes the upstream response on ``aclose()`` or when used
        as ``async with``.
        """
        body = self._body(prompt, system_prompt, context, overrides, stream=True)
        return ChatStream(self, body, on_chunk, self._route(body, fallbacks))

    async def generate_response(
        self,
        prompt: str,
        system_prompt: str | None = None,
        context: str | None = None,
        *,
        fallbacks: Sequence[str] = (),
        **overrides: Any,
    ) -> ChatResponse:
        """One completion, not streamed, falling back like the stream does. A failure is
        raised with its ``attempts``."""
        base = self._body(prompt, system_prompt, context, overrides, stream=False)
        route = self._route(base, fallbacks)
        now = time.monotonic()
        # Nothing is answered before the whole body, so every attempt is one before the
        # first chunk: none starts after the first-chunk deadline.
        deadline = now + min(self.config.deadline, self.config.first_chunk_deadline)
        attempt = 0
        while True:
            try:
                result = await self._complete_once(route.body(base), by=deadline)
            except OpenRouterError as error:
                try:
                    await self._backoff_or_raise(error, attempt, deadline)
                except OpenRouterError:
                    if route.fall_back(error, move=time.monotonic() < deadline):
                        attempt = 0
                        continue
                    error.attempts = route.attempts(served=False, reported=None, error=error)
                    raise
                attempt += 1
                continue
            result.attempts = route.attempts(served=True, reported=result.model, error=None)
            return result

    def _route(self, body: dict[str, Any], fallbacks: Sequence[str]) -> Route:
        return Route([body["model"], *fallbacks], native=self._native)

    # -- internals ------------------------------------------------------------------

    def _body(
        self,
        prompt: str,
        system_prompt: str | None,
        context: str | None,
        overrides: dict[str, Any],
        *,
        stream: bool,
    ) -> dict[str, Any]:
        unknown = set(overrides) - _OVERRIDABLE
        if unknown:
            raise TypeError(f"unknown override(s): {', '.join(sorted(unknown))}")
        messages = chat_messages(prompt, system_prompt, context)
        cfg = self.config
        body: dict[str, Any] = {"model": cfg.model, "messages": messages, "stream": stream}
        if cfg.max_tokens is not None:
            body["max_tokens"] = cfg.max_tokens
        if cfg.temperature is not None:
            body["temperature"] = cfg.temperature
        if stream:
            # OpenRouter always sends usage; other OpenAI-compatible servers need asking.
            body["stream_options"] = {"include_usage": True}
        body.update({k: v for k, v in overrides.items() if v is not None})
        return body

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.config.api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }
        if self.config.app_url:
            headers["HTTP-Referer"] = self.config.app_url
        if self.config.app_title:
            headers["X-Title"] = self.config.app_title
        return headers

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._state is not _State.OPENED or self._session is None:
            raise RuntimeError("use the client inside 'async with OpenRouterClient(...)'")
        return self._session

    async def _open(
        self, body: dict[str, Any], *, stream: bool, by: float
    ) -> aiohttp.ClientResponse:
        """POST and return the response once its status says it is usable: within the
        first-byte timeout, and before ``by`` (``time.monotonic()``)."""
        session = self._session_or_fail()
        wait = min(self.config.first_byte_timeout, by - time.monotonic())
        with _translate_errors(str):
            async with asyncio.timeout(wait):
                response = await session.post(
                    self._url, data=json.dumps(body), headers=self._headers()
                )
            if response.status >= 400:
                async with asyncio.timeout(self.config.first_byte_timeout):
                    raw = await _read_capped(response, _ERROR_BODY_BYTES)
                raise _status_error(response, raw, self._secret)
            if stream:
                ctype = response.headers.get("Content-Type", "")
                if not ctype.startswith("text/event-stream"):
                    async with asyncio.timeout(self.config.first_byte_timeout):
                        raw = await _read_capped(response, _ERROR_BODY_BYTES)
                    raise _unexpected_body(response, raw, self._secret)
            return response

    async def _complete_once(self, body: dict[str, Any], *, by: float) -> ChatResponse:
        response = await self._open(body, stream=False, by=by)
        limit = self.config.max_message_bytes
        with _translate_errors(str):
            async with asyncio.timeout(self.config.idle_timeout):
                raw = await _read_capped(response, limit + 1)
        if len(raw) > limit:
            raise InvalidResponseError(f"upstream answered with more than {limit} bytes")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidResponseError("upstream answered with invalid JSON") from exc
        if not isinstance(data, dict):
            raise InvalidResponseError("upstream answered with a non-object")
        if "error" in data:
            raise _in_band_error(data["error"], partial="", secret=self._secret)
        choices = data.get("choices") or [{}]
        choice = choices[0] if isinstance(choices, list) and isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        if not isinstance(message, dict):
            raise InvalidResponseError("upstream answered without a message")
        content = message.get("content") or ""
        reasoning = message.get("reasoning") or None
        if not isinstance(content, str) or not isinstance(reasoning, str | None):
            raise InvalidResponseError("upstream answered with content that is not text")
        check_usage(data.get("usage"), _cap(body))
        secret = self._secret
        if reasoning is not None:
            reasoning = redact(_whole_characters("", reasoning, final=True)[0], secret)
        return ChatResponse(
            content=redact(_whole_characters("", content, final=True)[0], secret),
            finish_reason=safe_text(choice.get("finish_reason"), secret, _MAX_FINISH_REASON_CHARS),
            model=safe_text(data.get("model"), secret),
            usage=safe_usage(data.get("usage")),
            reasoning=reasoning,
            generation_id=safe_text(
                response.headers.get("X-Generation-Id") or data.get("id"), secret
            ),
        )

    async def _backoff_or_raise(
        self, error: OpenRouterError, attempt: int, deadline: float
    ) -> None:
        """Sleep before the next attempt, or re-raise ``error`` if it should not be retried."""
        cfg = self.config
        if attempt >= cfg.max_retries or not _should_retry(error):
            raise error
        if error.retry_after is not None:
            if error.retry_after > cfg.max_retry_after:
                raise error
            delay = error.retry_after
        else:
            ceiling = min(cfg.backoff_max, cfg.backoff_base * (2**attempt))
            delay = ceiling * (0.5 + random.random() / 2)
        if time.monotonic() + delay >= deadline:
            raise error
        await asyncio.sleep(delay)


class ChatStream:
    """An async iterator of ``StreamChunk`` over one streamed completion.

    Retries, and the fallback to the next model, happen only before the first chunk has
    reached the caller; once one has, either would duplicate text, so errors are raised
    with ``partial`` instead.
    """

    def __init__(
        self,
        client: OpenRouterClient,
        body: dict[str, Any],
        on_chunk: OnChunk | None,
        route: Route | None = None,
    ) -> None:
        self._client = client
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
        self._deadline = time.monotonic() + client.config.deadline
        # Until a first chunk has reached the caller, the attempts share a shorter one.
        self._first_deadline = min(
            self._deadline, time.monotonic() + client.config.first_chunk_deadline
        )
        self._parts: list[str] = []
        self._token_cap: int | None = None
        # A high surrogate waiting for its other half (see _whole_characters).
        self._held_content = ""
        self._held_reasoning = ""
        # The key is taken out here, so nothing downstream (events, record, logs) sees it;
        # a key split across two events is caught by holding back a possible start of it.
        self._redact_content = Redactor(client._secret)
        self._redact_reasoning = Redactor(client._secret)
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
        client = self._client
        while True:
            self._tries += 1
            try:
                return await client._open(self._body, stream=True, by=self._first_deadline)
            except OpenRouterError as error:
                await self._retry_or_fall_back(error)

    async def _retry_or_fall_back(self, error: OpenRouterError) -> None:
        """Before the first chunk: wait for the next try of the same model, or move on
        to the next model, or raise ``error`` (with the attempts made)."""
        by = self._first_deadline
        try:
            await self._client._backoff_or_raise(error, self._tries - 1, by)
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
        client = self._client
        while True:
            response = self._response or await self._open_with_retries()
            self._response = None
            self._reading = response
            try:
                self.generation_id = safe_text(
                    response.headers.get("X-Generation-Id"), client._secret
                )
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
        watchdog = _Watchdog(
            loop,
            reader,
            self._client.config.idle_timeout,
            loop.time() + max(0.0, deadline - now),
            loop.time() + max(0.0, self._first_deadline - now),
        )
        limit = self._client.config.max_message_bytes
        decoder = SSEDecoder(max_line_bytes=limit, max_event_bytes=limit)
        try:
            while True:
                try:
                    data = await reader.readany()
                except Exception:
                    # Translated only on the way out: no context manager per read.
                    with _translate_errors(lambda: self.content):
                        raise
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
        content = _whole_characters(self._held_content, "", final=True)[0]
        reasoning = _whole_characters(self._held_reasoning, "", final=True)[0]
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
        secret = self._client._secret
        model = data.get("model")
        if model and model != self._raw_model:
            self._raw_model = model
            self.model = safe_text(model, secret)
        # After the model: an error event names the model that failed (native routing).
        if "error" in data:
            raise _in_band_error(data["error"], partial=self.content, secret=secret)
        if self.generation_id is None and data.get("id"):
            self.generation_id = safe_text(data["id"], secret)
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
                finish_reason = safe_text(finish_reason, secret, _MAX_FINISH_REASON_CHARS)
            final = finish_reason is not None
            # ASCII, nearly every chunk, costs one check.
            if self._held_content or not content.isascii():
                content, self._held_content = _whole_characters(
                    self._held_content, content, final=final
                )
            if self._held_reasoning or (reasoning and not reasoning.isascii()):
                text, self._held_reasoning = _whole_characters(
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
                raise _in_band_error(error, partial=self.content, secret=secret)
            if finish_reason:
                self.finish_reason = finish_reason
        usage = data.get("usage")
        if usage:
            if self._token_cap is None:
                # Once: a hostile upstream may send usage in every event.
                self._token_cap = _cap(self._body)
            check_usage(usage, self._token_cap, self.content)
            usage = self.usage = safe_usage(usage)
        if not (content or reasoning or finish_reason or usage):
            return None
        return StreamChunk(content, finish_reason, self.model, usage, reasoning)


class _Watchdog:
    """The content watchdog: wakes a pending read with ``TimeoutError`` once no content
    has arrived for ``idle`` seconds, or at the hard stop, or at the first-chunk stop
    while no content has arrived at all.

    Keep-alive comments do not feed it. Content only stamps ``last_content``; the timer
    is re-armed lazily when it fires early, so the per-chunk cost is one clock read, not
    a timer created and cancelled for every read. It never cancels a task, so it cannot
    hit the caller while the caller holds a chunk.
    """

    __slots__ = (
        "_first_stop",
        "_handle",
        "_hard_stop",
        "_idle",
        "_loop",
        "_reader",
        "_started",
        "last_content",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: aiohttp.StreamReader,
        idle: float,
        hard_stop: float,
        first_stop: float,
    ) -> None:
        self._loop = loop
        self._reader = reader
        self._idle = idle
        self._hard_stop = hard_stop
        self._first_stop = first_stop
        self._started = self.last_content = loop.time()
        self._handle = loop.call_at(self._due(), self._check)

    def _due(self) -> float:
        # Content moves last_content on; the first-chunk stop is read only here, on the
        # timer, so the per-chunk cost stays one clock read.
        stop = self._hard_stop
        if self.last_content == self._started:
            stop = min(stop, self._first_stop)
        return min(self.last_content + self._idle, stop)

    def _check(self) -> None:
        due = self._due()
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
        else:
            self._reader.set_exception(TimeoutError("no content from upstream in time"))

    def cancel(self) -> None:
        self._handle.cancel()


def _cap(body: dict[str, Any]) -> int:
    """The most tokens the request ``body`` can believably be counted (see _usage)."""
    max_tokens = body.get("max_tokens")
    if type(max_tokens) is not int or max_tokens <= 0:
        max_tokens = None
    return token_cap(len(json.dumps(body).encode()), max_tokens)


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (more only if one read brought them); the
    response is released if read to its end, closed otherwise."""
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit:
            piece = await response.content.readany()
            if not piece:
                break
            parts.append(piece)
            size += len(piece)
    finally:
        if response.content.at_eof():
            response.release()
        else:
            response.close()
    return b"".join(parts)


def _error_message(body: Any, fallback: str, secret: str) -> str:
    """The upstream's message, with our own API key (in any case) taken out *before* it
    is cut to 500 characters (a cut could otherwise leave a recognisable piece of the
    key), and made safe to encode."""
    message = fallback
    if isinstance(body, dict):
        error = body.get("error")
        found = error.get("message") if isinstance(error, dict) else error
        if isinstance(found, str):
            message = found
    message = redact(message, secret)[:500]
    if _SURROGATE.search(message):
        message = _SURROGATE.sub("\ufffd", message)
    return message


def _status_error(response: aiohttp.ClientResponse, raw: bytes, secret: str) -> OpenRouterError:
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    message = _error_message(body, f"upstream answered HTTP {response.status}", secret)
    if isinstance(body, str):
        body = message
    return status_error_for(
        response.status,
        message,
        body=redact_json(body, secret),
        retry_after=_parse_retry_after(response.headers.get("Retry-After")),
    )


def _unexpected_body(response: aiohttp.ClientResponse, raw: bytes, secret: str) -> OpenRouterError:
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return _in_band_error(body["error"], partial="", secret=secret)
    ctype = safe_text(response.headers.get("Content-Type"), secret, 100) or "none"
    return InvalidResponseError(f"upstream answered {ctype}, not an event stream")


_IN_BAND_CODES = {
    402: ErrorCode.OUT_OF_CREDITS,
    403: ErrorCode.CONTENT_BLOCKED,
    408: ErrorCode.UPSTREAM_TIMEOUT,
    429: ErrorCode.RATE_LIMITED,
    502: ErrorCode.UPSTREAM_UNAVAILABLE,
    503: ErrorCode.UPSTREAM_UNAVAILABLE,
    504: ErrorCode.UPSTREAM_TIMEOUT,
}


def _in_band_error(error: Any, *, partial: str, secret: str) -> MidStreamError:
    """An error object inside a 200 answer (OpenRouter's mid-stream error)."""
    message = _error_message({"error": error}, "upstream reported an error", secret)
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        code = safe_text(code, secret, 100)
    typed = MidStreamError(
        message, upstream_code=code, partial=partial, body=redact_json({"error": error}, secret)
    )
    if isinstance(code, int) and code in _IN_BAND_CODES:
        typed.code = _IN_BAND_CODES[code]
    return typed
