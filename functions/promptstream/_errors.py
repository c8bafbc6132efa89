"""One exception tree for the upstream client, and the mapping from status to class.

Every error carries a stable ``code`` (the string the browser sees), the HTTP ``status``
the relay answers with while nothing has been streamed yet, and ``retry_after`` when the
upstream asked us to wait. Errors raised after the first chunk carry ``partial``: the
content that had already reached the caller.

The codes travel to the web client as generated types
(docs/adr/0500-generated-wire-types.md).
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientGone",
    "ContentBlockedError",
    "DocumentReason",
    "ErrorCode",
    "HttpError",
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


class ErrorCode(enum.StrEnum):
    """Every error code the browser can see, each with the HTTP status it answers with
    while nothing has been streamed (after that it travels in an ``event: error``)."""

    INVALID_REQUEST = "invalid_request"
    MISSING_VARIABLES = "missing_variables"
    UNKNOWN_VARIABLES = "unknown_variables"
    INVALID_VARIABLE_NAMES = "invalid_variable_names"
    MODEL_NOT_ALLOWED = "model_not_allowed"
    PROMPT_TOO_LARGE = "prompt_too_large"
    UNAUTHENTICATED = "unauthenticated"
    PROMPT_NOT_FOUND = "prompt_not_found"
    # A version or label the prompt does not have (issue 27, docs/adr/0900).
    VERSION_NOT_FOUND = "version_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    REQUEST_HEAD_TOO_LARGE = "request_head_too_large"
    CONCURRENCY_LIMIT = "concurrency_limit"
    BUDGET_EXCEEDED = "budget_exceeded"
    CONFIGURATION_ERROR = "configuration_error"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    # Knowledge bases: uploads and deletions of documents.
    UNSUPPORTED_TYPE = "unsupported_type"
    INVALID_DOCUMENT = "invalid_document"
    DOCUMENT_TOO_LONG = "document_too_long"
    DOCUMENT_NOT_FOUND = "document_not_found"
    TOO_MANY_DOCUMENTS = "too_many_documents"
    DOCUMENT_CONFLICT = "document_conflict"
    # Conversations (issue 25, docs/adr/0700-conversations.md).
    CONVERSATION_NOT_FOUND = "conversation_not_found"
    TURN_OUT_OF_ORDER = "turn_out_of_order"
    CONVERSATION_TOO_LONG = "conversation_too_long"
    # Raised by the upstream client (rate_limited also by a user's own rate, ADR 0309).
    RATE_LIMITED = "rate_limited"
    OUT_OF_CREDITS = "out_of_credits"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_AUTH = "upstream_auth"
    UPSTREAM_BAD_REQUEST = "upstream_bad_request"
    CONTENT_BLOCKED = "content_blocked"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_DISCONNECTED = "upstream_disconnected"
    # Durable streams (docs/adr/0600-durable-streams.md): a resume or cancel of an
    # execution that is absent or another user's; an execution ended by its instance's
    # shutdown or crash (an in-stream code and a record status); one cancelled before the
    # resumer came back (in-stream only).
    EXECUTION_NOT_FOUND = "execution_not_found"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"

    @property
    def status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.MISSING_VARIABLES: 400,
    ErrorCode.UNKNOWN_VARIABLES: 400,
    ErrorCode.INVALID_VARIABLE_NAMES: 400,
    ErrorCode.MODEL_NOT_ALLOWED: 400,
    ErrorCode.PROMPT_TOO_LARGE: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PROMPT_NOT_FOUND: 404,
    ErrorCode.VERSION_NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.REQUEST_HEAD_TOO_LARGE: 431,
    ErrorCode.CONCURRENCY_LIMIT: 429,
    ErrorCode.BUDGET_EXCEEDED: 429,
    ErrorCode.CONFIGURATION_ERROR: 500,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.UNSUPPORTED_TYPE: 415,
    ErrorCode.INVALID_DOCUMENT: 422,
    ErrorCode.DOCUMENT_TOO_LONG: 422,
    ErrorCode.DOCUMENT_NOT_FOUND: 404,
    ErrorCode.TOO_MANY_DOCUMENTS: 403,
    ErrorCode.DOCUMENT_CONFLICT: 409,
    ErrorCode.CONVERSATION_NOT_FOUND: 404,
    ErrorCode.TURN_OUT_OF_ORDER: 409,
    ErrorCode.CONVERSATION_TOO_LONG: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.OUT_OF_CREDITS: 402,
    ErrorCode.UPSTREAM_ERROR: 502,
    ErrorCode.UPSTREAM_AUTH: 502,
    ErrorCode.UPSTREAM_BAD_REQUEST: 400,
    ErrorCode.CONTENT_BLOCKED: 403,
    ErrorCode.UPSTREAM_UNAVAILABLE: 503,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.UPSTREAM_DISCONNECTED: 502,
    ErrorCode.EXECUTION_NOT_FOUND: 404,
    ErrorCode.INTERRUPTED: 503,
    ErrorCode.CANCELLED: 409,
}


class DocumentReason(enum.StrEnum):
    """Why an upload or a deletion of a document was refused: ``details.reason`` on the
    wire, finer than its ``ErrorCode`` (``DocumentError`` and ``IngestError`` carry one).
    Each answers with the one ``ErrorCode`` of ``_REASON_CODE``."""

    # The bytes (DocumentError, from _documents and the PDF child).
    UNSUPPORTED_TYPE = "unsupported_type"
    EMPTY = "empty"
    BINARY = "binary"
    CORRUPT_PDF = "corrupt_pdf"
    ENCRYPTED_PDF = "encrypted_pdf"
    TOO_COMPLEX = "too_complex"
    TOO_LARGE = "too_large"
    TOO_MANY_PAGES = "too_many_pages"
    TOO_LONG = "too_long"
    BUSY = "busy"
    # Ingestion and deletion (IngestError).
    TOO_MANY_PASSAGES = "too_many_passages"
    NOT_FOUND = "not_found"
    SUPERSEDED = "superseded"
    BUDGET_EXCEEDED = "budget_exceeded"
    STORE_FAILED = "store_failed"
    # Its cause's code when the cause is an OpenRouterError.
    EMBEDDING_FAILED = "embedding_failed"

    @property
    def code(self) -> ErrorCode:
        return _REASON_CODE[self]


_REASON_CODE: dict[DocumentReason, ErrorCode] = {
    DocumentReason.UNSUPPORTED_TYPE: ErrorCode.UNSUPPORTED_TYPE,
    DocumentReason.EMPTY: ErrorCode.INVALID_DOCUMENT,
    DocumentReason.BINARY: ErrorCode.INVALID_DOCUMENT,
    DocumentReason.CORRUPT_PDF: ErrorCode.INVALID_DOCUMENT,
    DocumentReason.ENCRYPTED_PDF: ErrorCode.INVALID_DOCUMENT,
    DocumentReason.TOO_COMPLEX: ErrorCode.INVALID_DOCUMENT,
    DocumentReason.TOO_LARGE: ErrorCode.PAYLOAD_TOO_LARGE,
    DocumentReason.TOO_MANY_PAGES: ErrorCode.DOCUMENT_TOO_LONG,
    DocumentReason.TOO_LONG: ErrorCode.DOCUMENT_TOO_LONG,
    DocumentReason.BUSY: ErrorCode.UNAVAILABLE,
    DocumentReason.TOO_MANY_PASSAGES: ErrorCode.DOCUMENT_TOO_LONG,
    DocumentReason.NOT_FOUND: ErrorCode.DOCUMENT_NOT_FOUND,
    DocumentReason.SUPERSEDED: ErrorCode.DOCUMENT_CONFLICT,
    DocumentReason.BUDGET_EXCEEDED: ErrorCode.BUDGET_EXCEEDED,
    DocumentReason.STORE_FAILED: ErrorCode.UNAVAILABLE,
    DocumentReason.EMBEDDING_FAILED: ErrorCode.UPSTREAM_ERROR,
}


class HttpError(Exception):
    """A refusal before the first byte: the code's HTTP status with the JSON error shape
    ``{"error": {"code", "message", "details"?}}``."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return self.code.status


class ClientGone(Exception):
    """The client closed its connection: nothing more can reach it."""


class OpenRouterError(Exception):
    """Base of everything the OpenRouter client raises."""

    code: ErrorCode = ErrorCode.UPSTREAM_ERROR
    # From EmbeddingsClient.embed: the tokens the batches before the failed one were
    # billed, so a failed ingestion can still debit them.
    tokens_spent: int = 0

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
        # The models tried or skipped before it was raised (see _routing.Route.attempts).
        self.attempts: list[dict[str, Any]] = []

    @property
    def status(self) -> int:
        """What the relay answers with while nothing has been streamed."""
        return self.code.status


class APIConnectionError(OpenRouterError):
    """The upstream could not be reached, or the connection failed before any content."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE


class APITimeoutError(APIConnectionError):
    """No response, or no content, within the configured time."""

    code = ErrorCode.UPSTREAM_TIMEOUT


class StreamInterruptedError(APIConnectionError):
    """The stream ended without ``[DONE]`` and without a finish_reason: dropped or truncated.

    Before the first chunk it is retried like any connection error; after, it carries
    ``partial``.
    """

    code = ErrorCode.UPSTREAM_DISCONNECTED


class InvalidResponseError(OpenRouterError):
    """The upstream answered something that is not the chat-completions wire format."""

    code = ErrorCode.UPSTREAM_ERROR


class MidStreamError(OpenRouterError):
    """An ``{"error": ...}`` event (finish_reason ``error``) arrived inside the stream."""

    code = ErrorCode.UPSTREAM_ERROR

    def __init__(self, message: str, *, upstream_code: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream_code = upstream_code


class APIStatusError(OpenRouterError):
    """The upstream answered with a non-2xx status before streaming."""

    def __init__(self, message: str, *, status_code: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code


class BadRequestError(APIStatusError):
    code = ErrorCode.UPSTREAM_BAD_REQUEST


class AuthenticationError(APIStatusError):
    code = ErrorCode.UPSTREAM_AUTH


class PaymentRequiredError(APIStatusError):
    code = ErrorCode.OUT_OF_CREDITS


class PermissionDeniedError(APIStatusError):
    code = ErrorCode.UPSTREAM_AUTH


class ContentBlockedError(PermissionDeniedError):
    """OpenRouter's moderation refused the input (403 with moderation metadata)."""

    code = ErrorCode.CONTENT_BLOCKED


class RequestTimeoutError(APIStatusError):
    code = ErrorCode.UPSTREAM_TIMEOUT


class RateLimitError(APIStatusError):
    code = ErrorCode.RATE_LIMITED


class InternalServerError(APIStatusError):
    code = ErrorCode.UPSTREAM_ERROR


class UpstreamUnavailableError(APIStatusError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE


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
