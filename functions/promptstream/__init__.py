"""Streaming LLM prompt executions from Firebase to the browser."""

from __future__ import annotations

from ._client import (
    DEFAULT_BASE_URL,
    ChatResponse,
    ChatStream,
    OpenRouterClient,
    OpenRouterConfig,
    StreamChunk,
)
from ._config import Settings
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentBlockedError,
    InternalServerError,
    InvalidResponseError,
    MidStreamError,
    OpenRouterError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    StreamInterruptedError,
    UpstreamUnavailableError,
)
from ._handler import ExecuteRequest, get_service, handle_execute, handle_stream
from ._sse import ServerSentEvent, SSEDecoder, SSELimitError, encode_comment, encode_event

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChatResponse",
    "ChatStream",
    "ContentBlockedError",
    "ExecuteRequest",
    "InternalServerError",
    "InvalidResponseError",
    "MidStreamError",
    "OpenRouterClient",
    "OpenRouterConfig",
    "OpenRouterError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "SSEDecoder",
    "SSELimitError",
    "ServerSentEvent",
    "Settings",
    "StreamChunk",
    "StreamInterruptedError",
    "UpstreamUnavailableError",
    "encode_comment",
    "encode_event",
    "get_service",
    "handle_execute",
    "handle_stream",
]
