"""An execution prepared: the checks that need the prompt (access, models, variables,
size; a follow-up's from its chain), what retrieval will search and reserve, and how an
execution ended. Pure: no I/O; ``_executions`` opens and finishes the record.

Retrieval's query: docs/adr/0800-retrieval-quality.md; its reservation:
docs/adr/0308-uploads-under-the-budget.md.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from .._config import Settings
from .._errors import ErrorCode, HttpError
from .._templates import (
    VariableError,
    VariableSpec,
    placeholders,
    render_prompt,
    resolve_variables,
)
from .._tokens import estimate_tokens
from ..knowledge._context import build_context
from ..knowledge._passages import Source, check_document_id
from ..store._prompts import Prompt
from ..upstream._messages import chat_messages, sent_chars
from ._conversations import Chain, check_window
from ._request import ExecuteRequest, choose_models

__all__ = [
    "Execution",
    "Outcome",
    "prepare",
    "prepare_follow_up",
    "retrieval_reserve",
    "sent_fields",
]


@dataclass
class Execution:
    """One prepared execution: everything checked, the record opened."""

    uid: str
    request: ExecuteRequest
    prompt: Prompt
    # The models to try, in order: the primary (the requested one), then its fallbacks.
    models: tuple[str, ...]
    user_prompt: str
    system_prompt: str | None
    # The values the render used, each cut to RECORD_VARIABLE_CHARS: what the record keeps.
    values: dict[str, str]
    # An estimate of the tokens sent upstream (every message), for the budget.
    prompt_tokens: int = 0
    execution_id: str = ""
    started: float = field(default_factory=time.monotonic)
    # Knowledge bases: what to search (empty: no retrieval), and what was found.
    document_ids: tuple[str, ...] = ()
    top_k: int = 0
    query: str = ""
    sources: list[Source] = field(default_factory=list)
    retrieval_tokens: int = 0
    unavailable: list[str] = field(default_factory=list)
    # The request's context; on a follow-up, the first turn's (docs/adr/0700).
    context: str | None = None
    # A follow-up's earlier turns (user and assistant messages), rebuilt from the records.
    history: tuple[dict[str, str], ...] = ()
    conversation_id: str = ""
    parent_execution_id: str | None = None
    turn: int = 1

    @property
    def conversation(self) -> dict[str, Any]:
        """Where the execution sits in its conversation, for the client."""
        return {
            "conversation_id": self.conversation_id or self.execution_id,
            "parent_execution_id": self.parent_execution_id,
            "turn": self.turn,
        }

    @property
    def model(self) -> str:
        """The primary model."""
        return self.models[0]

    @property
    def fallbacks(self) -> tuple[str, ...]:
        return self.models[1:]

    @property
    def upstream_prompt(self) -> str:
        """The user message: the retrieved passages, quoted and numbered, then the
        rendered prompt. Passages never go into the system prompt."""
        context = build_context(self.sources)
        return f"{context}\n\n{self.user_prompt}" if context else self.user_prompt

    def overrides(self, default_max_tokens: int) -> dict[str, Any]:
        """The per-call parameters for the upstream client."""
        return {
            "model": self.model,
            "max_tokens": self.request.max_tokens or default_max_tokens,
            "temperature": self.request.temperature,
        }


@dataclass(slots=True)
class Outcome:
    """How an execution ended, as the record keeps it."""

    status: str
    output: str = ""
    reasoning: str = ""
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    generation_id: str | None = None
    model: str | None = None
    # time.monotonic() when the first content arrived, if it did
    first_content: float | None = None
    error: tuple[str, str] | None = None
    # Every model tried or skipped (see _routing.Route.attempts).
    attempts: list[dict[str, Any]] = field(default_factory=list)


# VariableError.code -> the key of ``details`` that names the variables.
_VARIABLE_DETAILS: dict[ErrorCode, str] = {
    ErrorCode.MISSING_VARIABLES: "missing",
    ErrorCode.UNKNOWN_VARIABLES: "unknown",
    ErrorCode.INVALID_VARIABLE_NAMES: "invalid",
}


def prepare(uid: str, body: ExecuteRequest, prompt: Prompt | None, settings: Settings) -> Execution:
    """The checks that need the prompt: access, models, variables, size. Pure; raises
    HttpError."""
    if prompt is None or not prompt.readable_by(uid):
        # The same answer for "absent" and "someone else's private prompt".
        raise HttpError(ErrorCode.PROMPT_NOT_FOUND, "Prompt not found.")
    models = choose_models(body, prompt.preferred_model, prompt.fallback_models, settings)
    declared = [s for s in map(VariableSpec.from_doc, prompt.variables) if s is not None]
    try:
        values = resolve_variables(
            declared, placeholders(prompt.content, prompt.system_prompt), body.variables
        )
    except VariableError as exc:
        key = _VARIABLE_DETAILS[exc.code]
        raise HttpError(exc.code, str(exc), {key: exc.names}) from None
    rendered = render_prompt(prompt.content, prompt.system_prompt, values)
    user_prompt, system_prompt = rendered.user_prompt, rendered.system_prompt
    context = body.context or ""
    # Everything sent upstream counts, the context's framing included.
    size = sent_chars(user_prompt, system_prompt, context)
    if len(context) > settings.max_context_chars or size > settings.max_prompt_chars:
        raise HttpError(
            ErrorCode.PROMPT_TOO_LARGE,
            f"The rendered prompt and context are {size} characters; "
            f"the limit is {settings.max_prompt_chars}.",
        )
    prompt_tokens = sum(
        estimate_tokens(m["content"]) for m in chat_messages(user_prompt, system_prompt, context)
    )
    ex = Execution(
        uid,
        body,
        prompt,
        models,
        user_prompt,
        system_prompt,
        rendered.recorded(settings.record_variable_chars),
        prompt_tokens,
        context=body.context,
    )
    _plan_retrieval(ex, settings)
    return ex


def prepare_follow_up(
    uid: str, body: ExecuteRequest, prompt: Prompt | None, chain: Chain, settings: Settings
) -> Execution:
    """A follow-up's checks once the prompt is read: access, models (the parent's by
    default), and the conversation's size against the model's context window. Pure;
    raises HttpError."""
    if prompt is None or not (prompt.public or prompt.owner_uid == uid):
        raise HttpError(ErrorCode.PROMPT_NOT_FOUND, "Prompt not found.")
    preferred = chain.model or prompt.preferred_model
    models = choose_models(body, preferred, prompt.fallback_models, settings)
    # The first turn's documents, whatever the prompt names now.
    prompt = dataclasses.replace(prompt, document_ids=chain.document_ids)
    ex = Execution(
        uid,
        body,
        prompt,
        models,
        chain.message,
        chain.system,
        {},
        chain.tokens(),
        context=chain.context,
        history=chain.history,
        conversation_id=chain.conversation_id,
        parent_execution_id=chain.parent_id,
        turn=chain.turn,
    )
    _plan_retrieval(ex, settings)
    if ex.document_ids:
        ex.query = chain.query
    max_tokens = ex.overrides(settings.default_max_tokens)["max_tokens"]
    check_window(ex.prompt_tokens + max_tokens + retrieval_reserve(ex, settings), settings)
    return ex


def sent_fields(ex: Execution) -> dict[str, Any]:
    """What the execution sends as its own turn, kept for its follow-ups: a first turn's
    system prompt and context, the user message (its passages added once found), and the
    search query."""
    return {
        "system": ex.system_prompt if ex.turn == 1 else None,
        "context": ex.context if ex.turn == 1 else None,
        "user": ex.user_prompt,
        "query": ex.query if ex.document_ids else None,
    }


def retrieval_reserve(ex: Execution, settings: Settings) -> int:
    """What retrieval may add to a run's cost, reserved with the rest (ADR 0308): the
    query's embedding, and the passages quoted into the prompt (``top_k`` of them, each
    reckoned at a token a character of its ``PASSAGE_CHARS``, heading and framing included
    in the margin)."""
    if not ex.document_ids:
        return 0
    return estimate_tokens(ex.query) + ex.top_k * settings.passage_chars


def _plan_retrieval(ex: Execution, settings: Settings) -> None:
    """The documents, top_k and query of ``ex``: the request's documents and top_k over
    the prompt's, each within the settings' bounds; the query is the value of the
    prompt's ``retrieval_query_variable``, else the values of its variables, else (none,
    or all blank) the rendered prompt."""
    prompt, request = ex.prompt, ex.request
    named = request.document_ids if request.document_ids is not None else prompt.document_ids
    ids: list[str] = []
    for document_id in named:
        try:
            ids.append(check_document_id(document_id))
        except ValueError:
            continue  # a prompt written around the rules: such an id names nothing
    ex.document_ids = tuple(dict.fromkeys(ids))[: settings.max_documents_per_prompt]
    top_k = request.top_k or prompt.top_k or settings.retrieval_top_k_default
    ex.top_k = max(1, min(top_k, settings.retrieval_top_k_max))
    variable = prompt.retrieval_query_variable
    chosen = ex.values.get(variable, "") if variable else ""
    if not chosen.strip():
        # The caller's values are the question; the template's own words are the same on
        # every run and pull every search toward one passage (docs/adr/0800).
        chosen = "\n".join(value for value in ex.values.values() if value.strip())
    ex.query = chosen if chosen.strip() else ex.user_prompt
