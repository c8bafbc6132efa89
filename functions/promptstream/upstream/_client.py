"""The async OpenRouter client: chat completions, streamed (``ChatStream``) or whole,
over one ``Transport`` (``_transport``), with the fallback to the next model before the
first chunk (``_routing``; docs/adr/0400-model-comparison-and-fallback.md).
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from pydantic import Field, SecretStr

from .._config import DEFAULTS, Settings, UpstreamTuning
from .._errors import InvalidResponseError, OpenRouterError
from .._sanitize import safe_usage
from .._usage import check_usage
from ._chat import (
    MAX_FINISH_REASON_CHARS,
    ChatResponse,
    ChatStream,
    OnChunk,
    StreamChunk,
    request_cap,
    whole_characters,
)
from ._messages import History, chat_messages
from ._routing import Route, Routing, native_routing
from ._transport import RETRY_AFTER_CAP, Retry, Transport, read_capped, translate_errors

__all__ = [
    "DEFAULT_BASE_URL",
    "RETRY_AFTER_CAP",
    "ChatResponse",
    "ChatStream",
    "OpenRouterClient",
    "OpenRouterConfig",
    "StreamChunk",
]

DEFAULT_BASE_URL = DEFAULTS.openrouter_base_url

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
    """Client settings. ``base_url`` may point at any OpenAI-compatible server. Left out,
    a field is what ``from_settings`` gives for the default ``Settings``."""

    api_key: SecretStr
    model: str = DEFAULTS.default_model
    base_url: str = DEFAULT_BASE_URL
    max_tokens: int | None = Field(default=DEFAULTS.default_max_tokens, ge=1)
    # Not a setting: the functions send a request's own temperature or none (the
    # model's default), and so does a client built directly.
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_connections: int = Field(default=1000, ge=1)
    app_url: str | None = DEFAULTS.app_url
    app_title: str | None = DEFAULTS.app_title
    # How a call with fallback models falls back (see _routing).
    fallback_routing: Routing = DEFAULTS.fallback_routing

    @classmethod
    def from_settings(cls, settings: Settings, api_key: str) -> OpenRouterConfig:
        """The upstream client's configuration, from the service's settings."""
        return cls(
            api_key=SecretStr(api_key),
            model=settings.default_model,
            base_url=settings.openrouter_base_url,
            max_tokens=settings.default_max_tokens,
            app_url=settings.app_url,
            app_title=settings.app_title,
            fallback_routing=settings.fallback_routing,
            **dict(settings.upstream),
        )


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


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
        extra = {"HTTP-Referer": config.app_url, "X-Title": config.app_title}
        self._transport = Transport(
            config.base_url.rstrip("/") + "/chat/completions",
            config.api_key,
            Retry(
                config.max_retries, config.backoff_base, config.backoff_max, config.max_retry_after
            ),
            session=self._session_or_fail,
            first_byte_timeout=config.first_byte_timeout,
            headers={k: v for k, v in extra.items() if v},
        )
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
        history: History = (),
        **overrides: Any,
    ) -> ChatStream:
        """Stream a completion. Iterate the result with ``async for``.

        ``fallbacks`` are the models to try, in order, when the model fails before its
        first chunk (see ``_routing``). The returned ``ChatStream`` also exposes
        ``generation_id``, ``usage``, ``model``, ``finish_reason`` and ``attempts`` as
        they become known, and closes the upstream response on ``aclose()`` or when used
        as ``async with``. ``history``: a conversation's earlier turns (see ``_messages``).
        """
        body = self._body(prompt, system_prompt, context, overrides, history, stream=True)
        return ChatStream(
            self._transport, self.config, body, on_chunk, self._route(body, fallbacks)
        )

    async def generate_response(
        self,
        prompt: str,
        system_prompt: str | None = None,
        context: str | None = None,
        *,
        fallbacks: Sequence[str] = (),
        history: History = (),
        **overrides: Any,
    ) -> ChatResponse:
        """One completion, not streamed, falling back like the stream does. A failure is
        raised with its ``attempts``."""
        base = self._body(prompt, system_prompt, context, overrides, history, stream=False)
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
                    await self._transport.backoff_or_raise(error, attempt, deadline)
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
        history: History,
        *,
        stream: bool,
    ) -> dict[str, Any]:
        unknown = set(overrides) - _OVERRIDABLE
        if unknown:
            raise TypeError(f"unknown override(s): {', '.join(sorted(unknown))}")
        messages = chat_messages(prompt, system_prompt, context, history)
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

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._state is not _State.OPENED or self._session is None:
            raise RuntimeError("use the client inside 'async with OpenRouterClient(...)'")
        return self._session

    async def _complete_once(self, body: dict[str, Any], *, by: float) -> ChatResponse:
        transport = self._transport
        response = await transport.open(body, stream=False, by=by)
        limit = self.config.max_message_bytes
        with translate_errors(str):
            async with asyncio.timeout(self.config.idle_timeout):
                raw = await read_capped(response, limit + 1)
        if len(raw) > limit:
            raise InvalidResponseError(f"upstream answered with more than {limit} bytes")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidResponseError("upstream answered with invalid JSON") from exc
        if not isinstance(data, dict):
            raise InvalidResponseError("upstream answered with a non-object")
        if "error" in data:
            raise transport.in_band_error(data["error"])
        choices = data.get("choices") or [{}]
        choice = choices[0] if isinstance(choices, list) and isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        if not isinstance(message, dict):
            raise InvalidResponseError("upstream answered without a message")
        content = message.get("content") or ""
        reasoning = message.get("reasoning") or None
        if not isinstance(content, str) or not isinstance(reasoning, str | None):
            raise InvalidResponseError("upstream answered with content that is not text")
        check_usage(data.get("usage"), request_cap(body))
        if reasoning is not None:
            reasoning = transport.redact(whole_characters("", reasoning, final=True)[0])
        return ChatResponse(
            content=transport.redact(whole_characters("", content, final=True)[0]),
            finish_reason=transport.clean(choice.get("finish_reason"), MAX_FINISH_REASON_CHARS),
            model=transport.clean(data.get("model")),
            usage=safe_usage(data.get("usage")),
            reasoning=reasoning,
            generation_id=transport.clean(
                response.headers.get("X-Generation-Id") or data.get("id")
            ),
        )
