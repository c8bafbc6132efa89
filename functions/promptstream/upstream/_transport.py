"""The upstream transport: the one place that opens a request (POST, first-byte timeout,
the answer's status classified into the ``_errors`` tree), backs off and retries before
the first byte, and holds the API key (requests carry it; everything read back is
redacted of it). The chat client, its streams and the embeddings client all go through a
``Transport`` (docs/adr/0300-hostile-upstream.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

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
from .._json import dumps
from .._redact import Redactor, redact, redact_json
from .._sanitize import MAX_ID_CHARS, safe_text

__all__ = [
    "RETRY_AFTER_CAP",
    "Retry",
    "Transport",
    "parse_retry_after",
    "read_capped",
    "should_retry",
    "translate_errors",
    "unread",
]

_RETRYABLE_STATUS = frozenset({408, 409, 429})
_SURROGATE = re.compile("[\ud800-\udfff]")
# What any upstream Retry-After is clamped to (a day); it still goes to the browser.
RETRY_AFTER_CAP = 86_400.0
# An error body is read only this far: enough for any message, and no more memory.
_ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Retry:
    """How many times, and how long apart, a call is retried before its first byte."""

    max_retries: int
    backoff_base: float
    backoff_max: float
    max_retry_after: float


class Transport:
    """Requests to one upstream URL with one key, on a session the owner provides
    (``session`` is called at each request: the chat client opens its own late)."""

    __slots__ = ("_first_byte_timeout", "_headers", "_secret", "_session", "_url", "retry")

    def __init__(
        self,
        url: str,
        api_key: SecretStr,
        retry: Retry,
        *,
        session: Callable[[], aiohttp.ClientSession],
        first_byte_timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._url = url
        self._secret = api_key.get_secret_value()
        self.retry = retry
        self._session = session
        self._first_byte_timeout = first_byte_timeout
        self._headers = {
            "Authorization": f"Bearer {self._secret}",
            "Content-Type": "application/json",
            **(headers or {}),
        }

    def post(self, data: str) -> Any:
        """``session.post`` of ``data`` to the URL with the headers (for a caller that
        reads the whole answer under its own timeout)."""
        return self._session().post(self._url, data=data, headers=self._headers)

    # -- what is read back, without the key --------------------------------------------

    def redactor(self) -> Redactor:
        """A redactor of the key for one stream of text fed in pieces."""
        return Redactor(self._secret)

    def redact(self, text: str) -> str:
        return redact(text, self._secret)

    def clean(self, value: Any, limit: int = MAX_ID_CHARS) -> str | None:
        """``safe_text`` with the key taken out."""
        return safe_text(value, self._secret, limit)

    def status_error(self, response: aiohttp.ClientResponse, raw: bytes) -> OpenRouterError:
        return _status_error(response, raw, self._secret)

    def in_band_error(self, error: Any, *, partial: str = "") -> MidStreamError:
        return _in_band_error(error, partial=partial, secret=self._secret)

    # -- opening, and retrying before the first byte ------------------------------------

    async def open(
        self, body: dict[str, Any], *, stream: bool, by: float
    ) -> aiohttp.ClientResponse:
        """POST and return the response once its status says it is usable: within the
        first-byte timeout, and before ``by`` (``time.monotonic()``)."""
        session = self._session()
        wait = min(self._first_byte_timeout, by - time.monotonic())
        with translate_errors(str):
            async with asyncio.timeout(wait):
                response = await session.post(
                    self._url, data=dumps(body), headers=self._headers
                )
            if response.status >= 400:
                async with asyncio.timeout(self._first_byte_timeout):
                    raw = await read_capped(response, _ERROR_BODY_BYTES)
                raise _status_error(response, raw, self._secret)
            if stream:
                ctype = response.headers.get("Content-Type", "")
                if not ctype.startswith("text/event-stream"):
                    async with asyncio.timeout(self._first_byte_timeout):
                        raw = await read_capped(response, _ERROR_BODY_BYTES)
                    raise _unexpected_body(response, raw, self._secret)
            return response

    async def backoff_or_raise(
        self, error: OpenRouterError, attempt: int, deadline: float = math.inf
    ) -> None:
        """Sleep before the next attempt, or re-raise ``error`` if it should not be retried
        (the only retry rule of the upstream: chat, stream and embeddings)."""
        cfg = self.retry
        if attempt >= cfg.max_retries or not should_retry(error):
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


def should_retry(error: OpenRouterError) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    status = getattr(error, "status_code", None)
    if status is None:
        return False
    if status == 402:
        return error.retry_after is not None
    return status in _RETRYABLE_STATUS or status >= 500


def parse_retry_after(value: str | None) -> float | None:
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
def translate_errors(partial: Callable[[], str]) -> Iterator[None]:
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


def unread(reader: aiohttp.StreamReader) -> bytes:
    """The bytes ``reader`` holds that nobody has read, taken out of it. Once a failure
    is set on an aiohttp reader, every read raises it before returning what it holds
    (asyncio's own StreamReader is built the same way, CPython gh-75044), so a drop that
    lands while the caller is busy elsewhere would otherwise lose text that arrived."""
    buffer = getattr(reader, "_buffer", None)
    if not buffer:
        return b""
    data = b"".join(buffer)
    buffer.clear()
    return data


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
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
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
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
