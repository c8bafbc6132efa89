"""One exception tree for the upstream client, and the mapping from status to class.

Every error carries a stable ``code`` (the string the browser sees), the HTTP ``status``
the relay answers with while nothing has been streamed yet, and ``retry_after`` when the
upstream asked us to wait. Errors raised after the first chunk carry ``partial``: the
content that had already reached the caller.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ContentBlockedError",
    "InternalServerError",
    "InvalidResponseError",
    "MidStreamError",
    "OpenRouterError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "StreamInterruptedError",
    "UpstreamUnavailableError",
    "status_error_for",
]


class OpenRouterError(Exception):
    """Base of everything the OpenRouter client raises."""

    code = "upstream_error"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        partial: str = "",
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.partial = partial
        self.body = body


class APIConnectionError(OpenRouterError):
    """The upstream could not be reached, or the connection failed before any content."""

    code = "upstream_unavailable"
    status = 503


class APITimeoutError(APIConnectionError):
    """No response, or no content, within the configured time."""

    code = "upstream_timeout"
    status = 504


class StreamInterruptedError(APIConnectionError):
    """The stream ended without ``[DONE]`` and without a finish_reason: dropped or truncated.

    Before the first chunk it is retried like any connection error; after, it carries
    ``partial``.
    """

    code = "upstream_disconnected"
    status = 502


class InvalidResponseError(OpenRouterError):
    """The upstream answered something that is not the chat-completions wire format."""

    code = "upstream_error"
    status = 502


class MidStreamError(OpenRouterError):
    """An ``{"error": ...}`` event (finish_reason ``error``) arrived inside the stream."""

    code = "upstream_error"
    status = 502

    def __init__(self, message: str, *, upstream_code: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream_code = upstream_code


class APIStatusError(OpenRouterError):
    """The upstream answered with a non-2xx status before streaming."""

    def __init__(self, message: str, *, status_code: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code


class BadRequestError(APIStatusError):
    code = "upstream_bad_request"
    status = 400


class AuthenticationError(APIStatusError):
    code = "upstream_auth"
    status = 502


class PaymentRequiredError(APIStatusError):
    code = "out_of_credits"
    status = 402


class PermissionDeniedError(APIStatusError):
    code = "upstream_auth"
    status = 502


class ContentBlockedError(PermissionDeniedError):
    """OpenRouter's moderation refused the input (403 with moderation metadata)."""

    code = "content_blocked"
    status = 403


class RequestTimeoutError(APIStatusError):
    code = "upstream_timeout"
    status = 504


class RateLimitError(APIStatusError):
    code = "rate_limited"
    status = 429


class InternalServerError(APIStatusError):
    code = "upstream_error"
    status = 502


class UpstreamUnavailableError(APIStatusError):
    code = "upstream_unavailable"
    status = 503


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    408: RequestTimeoutError,
    429: RateLimitError,
    502: UpstreamUnavailableError,
    503: UpstreamUnavailableError,
    504: RequestTimeoutError,
}


def status_error_for(
    status_code: int, message: str, *, body: Any = None, retry_after: float | None = None
) -> APIStatusError:
    """Build the typed error for a non-2xx upstream answer."""
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else BadRequestError
    if cls is PermissionDeniedError and _is_moderation(body):
        cls = ContentBlockedError
    return cls(message, status_code=status_code, body=body, retry_after=retry_after)


def _is_moderation(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    metadata = error.get("metadata") if isinstance(error, dict) else None
    return isinstance(metadata, dict) and ("reasons" in metadata or "flagged_input" in metadata)
