"""The request both execution endpoints take: its model and its checks (the body is read
within its limits by ``http/_endpoint.read_body``).

Everything here runs before the first byte and before any database read: a request that
fails it costs no Firestore call and nothing upstream.

Models and fallbacks: docs/adr/0400-model-comparison-and-fallback.md; the web client's
types are generated from ``ExecuteRequest`` (docs/adr/0500-generated-wire-types.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from .. import _logging as logger
from .._config import Settings
from .._errors import ErrorCode, HttpError
from .._json import loads

__all__ = [
    "CancelRequest",
    "ExecuteRequest",
    "ResumeRequest",
    "allowed",
    "check",
    "check_stream",
    "choose_models",
]


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
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# A label's name (firestore.rules repeats it): no dot, as the web app writes
# `labels.<name>` as a field path.
LabelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]


class ExecuteRequest(BaseModel):
    """The body of both endpoints. snake_case only; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt_id: PromptId
    variables: dict[VariableName, str] = Field(default_factory=dict)
    # Absent: the prompt's preferred_model when it is allowed, else DEFAULT_MODEL.
    model: ModelId | None = None
    # Tried in order when the model fails before its first chunk. Absent: the prompt's;
    # [] for none.
    fallback_models: Annotated[list[ModelId], Field(max_length=3)] | None = None
    # The executions of one comparison (one per model) share it; the client makes it.
    comparison_id: DocumentId | None = None
    context: str | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    # Knowledge bases: instead of the prompt's documents and top_k. Only the caller's own
    # ready documents are searched, whatever is named.
    document_ids: Annotated[list[DocumentId], Field(max_length=50)] | None = None
    top_k: Annotated[int, Field(ge=1, le=50)] | None = None
    # Issue 27: the prompt's version to run, or the label naming it (one of the two);
    # absent: its latest (docs/adr/0900-prompt-versions.md).
    version: Annotated[int, Field(ge=1, le=999_999_999)] | None = None
    label: LabelName | None = None
    # Conversations (issue 25, docs/adr/0700-conversations.md). A follow-up names the
    # conversation, the turn it follows and its text; absent, a run starts a conversation
    # of its own. Regenerate: the same parent and no message (the text the parent's latest
    # answer replied to is answered again); edit: a new message, the same parent.
    conversation_id: DocumentId | None = None
    parent_execution_id: DocumentId | None = None
    message: Annotated[str, StringConstraints(min_length=1)] | None = None
    regenerate: bool = False
    # Durable streams (docs/adr/0600-durable-streams.md): the generation outlives the
    # connection for RESUME_GRACE_SECONDS and may be resumed or cancelled by its id.
    resumable: bool = False


# The ids auto_id makes (20 letters and digits); anything else names no execution.
ExecutionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,64}$")]


class ResumeRequest(BaseModel):
    """``{"resume": id, "last_event_id": n}``: the events after ``n``, then the live ones."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    resume: ExecutionId
    # Absent: the Last-Event-ID header, else 0 (from the start).
    last_event_id: Annotated[int, Field(ge=0)] | None = None


class CancelRequest(BaseModel):
    """``{"cancel": id}``: stop the execution now."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    cancel: ExecutionId


def check(raw: bytes, settings: Settings) -> ExecuteRequest:
    """Parse and check the body (the models it names included; the prompt's are checked
    once it is read, see ``choose_models``)."""
    try:
        body = ExecuteRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            _validation_message(exc),
            {"errors": exc.errors(include_url=False, include_input=False, include_context=False)},
        ) from None
    if body.version is not None and body.label is not None:
        raise HttpError(ErrorCode.INVALID_REQUEST, "Give a version or a label, not both")
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
    _check_conversation(body, settings)
    # A model the request names is refused here, before any read; the prompt's own are
    # checked once it is read (see choose_models).
    for model in [body.model or settings.default_model, *(body.fallback_models or ())]:
        allowed(model, settings)
    fallbacks = body.fallback_models or []
    if len(fallbacks) > settings.max_fallback_models:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            f"At most {settings.max_fallback_models} fallback models",
        )
    if len(set(fallbacks)) < len(fallbacks):
        raise HttpError(ErrorCode.INVALID_REQUEST, "fallback_models: each model at most once")
    return body


def _check_conversation(body: ExecuteRequest, settings: Settings) -> None:
    """The conversation fields, together: a follow-up carries its conversation, parent and
    message (or ``regenerate``), and none of what only a first turn has."""
    if body.conversation_id is None:
        if body.parent_execution_id is not None or body.message is not None or body.regenerate:
            raise HttpError(
                ErrorCode.INVALID_REQUEST,
                "parent_execution_id, message and regenerate need a conversation_id",
            )
        return
    if body.parent_execution_id is None:
        raise HttpError(ErrorCode.INVALID_REQUEST, "A follow-up needs its parent_execution_id")
    if body.regenerate == (body.message is not None):
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            "A follow-up has either a message or regenerate: true (not both)",
        )
    if body.message is not None:
        if not body.message.strip():
            raise HttpError(ErrorCode.INVALID_REQUEST, "message is empty")
        if len(body.message) > settings.max_variable_chars:
            raise HttpError(
                ErrorCode.INVALID_REQUEST,
                f"message is limited to {settings.max_variable_chars} characters",
            )
    # The first turn's values, context and version stand for the whole conversation.
    if body.variables or body.context is not None:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            "variables and context belong to a conversation's first turn",
        )
    if body.version is not None or body.label is not None:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            "version and label belong to a conversation's first turn",
        )


def check_stream(raw: bytes, settings: Settings) -> ExecuteRequest | ResumeRequest | CancelRequest:
    """The streaming endpoint's body: a resume, a cancel or (as ``check``) an execution.
    Only a body that names ``resume`` or ``cancel`` is parsed twice."""
    if b'"resume"' in raw or b'"cancel"' in raw:
        try:
            data = loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict) and ("resume" in data or "cancel" in data):
            model: type[ResumeRequest | CancelRequest] = (
                ResumeRequest if "resume" in data else CancelRequest
            )
            try:
                return model.model_validate(data)
            except ValidationError as exc:
                raise HttpError(
                    ErrorCode.INVALID_REQUEST,
                    _validation_message(exc),
                    {
                        "errors": exc.errors(
                            include_url=False, include_input=False, include_context=False
                        )
                    },
                ) from None
    return check(raw, settings)


def allowed(model: str, settings: Settings) -> str:
    """``model``, if ALLOWED_MODELS has it; else the refusal that names the allowed ones."""
    if model not in settings.allowed_models:
        raise HttpError(
            ErrorCode.MODEL_NOT_ALLOWED,
            f"Model {model!r} is not allowed. Allowed: {', '.join(settings.allowed_models)}",
            {"allowed": list(settings.allowed_models)},
        )
    return model


def choose_models(
    body: ExecuteRequest,
    preferred: str | None,
    prompt_fallbacks: Sequence[str],
    settings: Settings,
) -> tuple[str, ...]:
    """The models to try, primary first, once the prompt is read: the request's model,
    else the prompt's preferred one if allowed, else DEFAULT_MODEL; then the request's
    fallbacks, else the prompt's allowed ones. Raises ``HttpError`` when the request's
    fallbacks repeat the primary."""
    if body.model is not None:
        primary = body.model
    elif preferred is not None and preferred in settings.allowed_models:
        primary = preferred
    else:
        if preferred is not None:
            logger.info("preferred model not allowed; using the default", model=preferred)
        primary = settings.default_model
    if body.fallback_models is not None:
        if primary in body.fallback_models:
            raise HttpError(
                ErrorCode.INVALID_REQUEST,
                f"fallback_models must not repeat the model {primary!r}",
            )
        return (primary, *body.fallback_models)
    fallbacks: list[str] = []
    for model in prompt_fallbacks:
        if model not in settings.allowed_models:
            logger.info("prompt fallback model not allowed; dropped", model=model)
        elif model != primary and model not in fallbacks:
            fallbacks.append(model)
    return (primary, *fallbacks[: settings.max_fallback_models])


def _validation_message(exc: ValidationError) -> str:
    messages = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(part) for part in err["loc"]) or "body"
        messages.append(f"{loc}: {err['msg']}")
    return "Invalid request: " + "; ".join(messages)
