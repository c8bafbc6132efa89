"""Streaming LLM prompt executions from Firebase to the browser."""

from __future__ import annotations

from ._config import Settings
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientGone,
    ContentBlockedError,
    ErrorCode,
    HttpError,
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
from ._sse import ServerSentEvent, SSEDecoder, SSELimitError, encode_comment, encode_event
from .http._documents_api import documents_app
from .http._endpoint import with_cors
from .http._firebase import https_endpoint
from .http._handler import execute_app, stream_app
from .http._server import configure_server
from .http._service import Service, get_service, set_service
from .run._repair import sweep_streams
from .run._request import ExecuteRequest
from .upstream._client import (
    DEFAULT_BASE_URL,
    ChatResponse,
    ChatStream,
    OpenRouterClient,
    OpenRouterConfig,
    StreamChunk,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChatResponse",
    "ChatStream",
    "ClientGone",
    "ContentBlockedError",
    "ErrorCode",
    "ExecuteRequest",
    "HttpError",
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
    "Service",
    "Settings",
    "StreamChunk",
    "StreamInterruptedError",
    "UpstreamUnavailableError",
    "configure_server",
    "documents_app",
    "encode_comment",
    "encode_event",
    "execute_app",
    "get_service",
    "https_endpoint",
    "set_service",
    "stream_app",
    "sweep_streams",
    "with_cors",
]
