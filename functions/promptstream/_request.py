"""The request both endpoints take: reading its body within limits, and its checks.

Everything here runs before the first byte and before any database read: a request that
fails it costs no Firestore call and nothing upstream.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from ._asgi import Receive
from ._config import Settings
from ._errors import ClientGone, ErrorCode, HttpError

__all__ = ["ExecuteRequest", "check", "read_body"]


def _firestore_id(value: str) -> str:
    # Firestore refuses these as document ids; refuse them here with a clear message.
    if value in (".", "..") or (value.startswith("__") and value.endswith("__")):
        raise ValueError("not a valid prompt id")
    return value


PromptId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[^/]+$"),
    AfterValidator(_firestore_id),
]
VariableName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# The form check_document_id accepts (and firestore.rules repeats).
DocumentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")]


class ExecuteRequest(BaseModel):
    """The body of both endpoints. snake_case only; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt_id: PromptId
    variables: dict[VariableName, str] = Field(default_factory=dict)
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    context: str | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    # Knowledge bases: instead of the prompt's documents and top_k. Only the caller's own
    # ready documents are searched, whatever is named.
    document_ids: Annotated[list[DocumentId], Field(max_length=50)] | None = None
    top_k: Annotated[int, Field(ge=1, le=50)] | None = None


def too_large(limit: int) -> HttpError:
    return HttpError(ErrorCode.PAYLOAD_TOO_LARGE, f"The body is limited to {limit} bytes.")


async def read_body(
    receive: Receive, settings: Settings, *, limit: int | None = None, within: float | None = None
) -> bytes:
    """The whole body, refused as soon as it grows over ``limit`` (``MAX_BODY_BYTES``
    unless given), or when it is too slow to arrive (``BODY_TIMEOUT_SECONDS`` unless
    given, in seconds). Raises ``HttpError`` (413, 408) or ``ClientGone``.
    """
    limit = settings.max_body_bytes if limit is None else limit
    seconds = settings.body_timeout_seconds if within is None else within
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                parts.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(parts)
    except TimeoutError:
        raise HttpError(
            ErrorCode.REQUEST_TIMEOUT,
            f"The body did not arrive within {seconds:g} s.",
        ) from None


def check(raw: bytes, settings: Settings) -> tuple[ExecuteRequest, str]:
    """Parse and check the body: returns it with the model it will run on."""
    try:
        body = ExecuteRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            _validation_message(exc),
            {"errors": exc.errors(include_url=False, include_input=False, include_context=False)},
        ) from None
    if len(body.variables) > settings.max_variables:
        raise HttpError(ErrorCode.INVALID_REQUEST, f"At most {settings.max_variables} variables")
    too_long = sorted(k for k, v in body.variables.items() if len(v) > settings.max_variable_chars)
    if too_long:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            f"Variable values are limited to {settings.max_variable_chars} characters: "
            + ", ".join(too_long),
            {"too_long": too_long},
        )
    if body.max_tokens is not None and body.max_tokens > settings.max_tokens_cap:
        raise HttpError(
            ErrorCode.INVALID_REQUEST, f"max_tokens is limited to {settings.max_tokens_cap}"
        )
    if body.document_ids is not None and len(body.document_ids) > settings.max_documents_per_prompt:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            f"At most {settings.max_documents_per_prompt} documents per execution",
        )
    if body.top_k is not None and body.top_k > settings.retrieval_top_k_max:
        raise HttpError(
            ErrorCode.INVALID_REQUEST, f"top_k is limited to {settings.retrieval_top_k_max}"
        )
    model = body.model or settings.default_model
    if model not in settings.allowed_models:
        raise HttpError(
            ErrorCode.MODEL_NOT_ALLOWED,
            f"Model {model!r} is not allowed. Allowed: {', '.join(settings.allowed_models)}",
            {"allowed": list(settings.allowed_models)},
        )
    return body, model


def _validation_message(exc: ValidationError) -> str:
    messages = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(part) for part in err["loc"]) or "body"
        messages.append(f"{loc}: {err['msg']}")
    return "Invalid request: " + "; ".join(messages)
