"""An execution's record: opened with the lease once every check passed, finished
exactly once (completed, error or cancelled, with the output so far; or ``interrupted``
by the repair when its instance died first), and one log line.

The commits: docs/adr/0002-conditional-commits.md; the repair's race with a finish:
docs/adr/0601-leases-that-prove-alive.md.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import _logging as logger
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
from ..knowledge._passages import Embedder, Source, check_document_id
from ..knowledge._search import search
from ..store._prompts import Prompt
from ..store._records import bounded
from ..store._store import Store
from ..upstream._messages import chat_messages, sent_chars
from ._conversations import Chain, check_window, load_chain, turn_one_fields
from ._request import ExecuteRequest, choose_models

__all__ = ["Execution", "Executions", "Outcome"]


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
    check_window(ex.prompt_tokens + max_tokens + _retrieval_reserve(ex, settings), settings)
    return ex


def _sent(ex: Execution) -> dict[str, Any]:
    """What the execution sends as its own turn, kept for its follow-ups: a first turn's
    system prompt and context, the user message (its passages added once found), and the
    search query."""
    return {
        "system": ex.system_prompt if ex.turn == 1 else None,
        "context": ex.context if ex.turn == 1 else None,
        "user": ex.user_prompt,
        "query": ex.query if ex.document_ids else None,
    }


def _retrieval_reserve(ex: Execution, settings: Settings) -> int:
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


class Executions:
    """Opens and finishes execution records."""

    def __init__(self, settings: Settings, store: Store, redact: Callable[[str], str]) -> None:
        self._settings = settings
        self._store = store
        self._redact = redact

    async def open(self, uid: str, body: ExecuteRequest) -> Execution:
        """Load and check the prompt, take a lease and open the record (one read, one
        commit; a follow-up reads its chain first, see ``_conversations``). Raises
        ``HttpError`` and writes nothing on a refusal."""
        chain = None
        if body.conversation_id is not None:
            chain = await load_chain(self._store.rest, uid, body, self._settings)

        def build(prompt: Prompt | None) -> tuple[dict[str, Any], int, Execution]:
            if chain is None:
                ex = prepare(uid, body, prompt, self._settings)
            else:
                ex = prepare_follow_up(uid, body, prompt, chain, self._settings)
            record: dict[str, Any] = {
                "prompt_id": ex.prompt.id,
                # The version that ran (issue 27), and the label that named it if one did.
                "prompt_version": ex.prompt.version,
                # The model that answered, once one has; the primary until then.
                "model": ex.model,
                "requested_model": ex.model,
                "models": list(ex.models),
                "attempts": [],
                "variables": ex.values,
                "output": "",
                "usage": None,
                "finish_reason": None,
                "error_code": None,
                "error_message": None,
                **(turn_one_fields() if chain is None else chain.record()),
            }
            if ex.document_ids:
                record["document_ids"] = list(ex.document_ids)
            if body.resumable:
                # Its checkpoints add alive_at and checkpoint_id (docs/adr/0600).
                record["resumable"] = True
            if body.comparison_id is not None:
                record["comparison_id"] = body.comparison_id
            if body.label is not None:
                record["prompt_label"] = body.label
            # Held against the day's budget until finish settles it: the most it can cost.
            reserve = (
                ex.prompt_tokens
                + ex.overrides(self._settings.default_max_tokens)["max_tokens"]
                + _retrieval_reserve(ex, self._settings)
            )
            record["tokens_reserved"] = reserve
            # What the repair debits for the prompt if the instance dies (ADR 0601): the
            # estimate, with the passages at their reserved bound (not yet retrieved).
            record["prompt_tokens_estimate"] = ex.prompt_tokens + _retrieval_reserve(
                ex, self._settings
            )
            return record, reserve, ex

        execution_id, ex = await self._store.begin_execution(
            uid=uid,
            prompt_id=body.prompt_id,
            version=body.version,
            label=body.label,
            build=build,
            sent=_sent,
        )
        ex.execution_id = execution_id
        return ex

    async def retrieve(self, ex: Execution, embedder: Embedder) -> None:
        """Search the documents ``ex`` names (the caller's own, ready ones only) for its
        query; the passages and the query's embedding tokens go on ``ex``. Raises an
        ``OpenRouterError`` from the embedding, ``FirestoreError`` from the reads."""
        if not ex.document_ids:
            return
        found = await search(
            self._store.rest,
            embedder,
            owner_uid=ex.uid,
            document_ids=ex.document_ids,
            query=ex.query,
            top_k=ex.top_k,
            candidates=self._settings.retrieval_candidates,
        )
        ex.sources = found.sources
        ex.retrieval_tokens = found.tokens
        ex.unavailable = found.unavailable
        if ex.sources:
            # A later turn sends this turn again as it went: with its passages.
            await self._store.update_sent(
                execution_id=ex.execution_id, fields={"user": ex.upstream_prompt}
            )

    async def finish(self, ex: Execution, outcome: Outcome) -> None:
        """Finalise the record and release the lease (debiting the tokens), then log one
        line. Never raises: the client has had its answer whatever happens here."""
        duration_ms = round((time.monotonic() - ex.started) * 1000, 1)
        first = outcome.first_content
        ttft_ms = None if first is None else round((first - ex.started) * 1000, 1)
        usage = outcome.usage
        if usage and isinstance(usage.get("total_tokens"), int):
            tokens = usage["total_tokens"]
        else:
            # No usage (a disconnect, an error): debit an estimate so the budget holds,
            # per script and counting the reasoning (docs/adr/0302-token-estimate.md).
            tokens = (
                ex.prompt_tokens
                + estimate_tokens(outcome.output)
                + estimate_tokens(outcome.reasoning)
            )
            if ex.sources:
                tokens += estimate_tokens(build_context(ex.sources))
        # The query's embedding is spent whatever became of the generation.
        tokens += ex.retrieval_tokens
        # Within Firestore's int64 whatever was added up: a number out of range would
        # fail the final commit and the lease's release alike, and leave both stuck.
        tokens = min(max(0, tokens), 2**63 - 1)
        error = outcome.error
        output, reasoning, truncated = bounded(
            outcome.output, outcome.reasoning, self._settings.record_text_chars
        )
        fields: dict[str, Any] = {
            "status": outcome.status,
            "output": output,
            "reasoning": reasoning or None,
            "truncated": truncated,
            "usage": usage,
            "finish_reason": outcome.finish_reason,
            "generation_id": outcome.generation_id,
            "model": outcome.model or ex.model,
            "attempts": outcome.attempts,
            "ttft_ms": ttft_ms,
            "duration_ms": duration_ms,
            "error_code": error[0] if error else None,
            "error_message": error[1] if error else None,
            "tokens_debited": tokens,
        }
        if ex.document_ids:
            keep = self._settings.record_source_chars
            fields["sources"] = [
                {**source.to_json(), "text": source.text[:keep]} for source in ex.sources
            ]
            fields["retrieval_tokens"] = ex.retrieval_tokens
        try:
            finished = await self._store.finish_execution(
                uid=ex.uid, execution_id=ex.execution_id, fields=fields, tokens=tokens
            )
        except Exception:
            self.log_failure("record not finalised", ex)
            await self._release(ex, fields, tokens)
        else:
            if not finished:
                # The repair judged it dead and ended it ``interrupted``, debiting its
                # estimate: this outcome is debited nothing more.
                logger.warn(
                    "record finished by the repair already",
                    execution_id=ex.execution_id,
                    status=outcome.status,
                    tokens=tokens,
                )
                tokens = 0
        entry: dict[str, Any] = {
            "execution_id": ex.execution_id,
            "uid": ex.uid,
            "prompt_id": ex.prompt.id,
            "model": fields["model"],
            "requested_model": ex.model,
            "status": outcome.status,
            "ttft_ms": ttft_ms,
            "duration_ms": duration_ms,
            "tokens": tokens,
            "usage_reported": usage is not None,
            "error_code": fields["error_code"],
        }
        if len(outcome.attempts) > 1:
            entry["attempts"] = [
                (a["model"], a["outcome"], a["error_code"]) for a in outcome.attempts
            ]
        if ex.request.comparison_id is not None:
            entry["comparison_id"] = ex.request.comparison_id
        if ex.turn > 1:
            entry["conversation_id"] = ex.conversation_id
            entry["turn"] = ex.turn
        if ex.document_ids:
            entry["sources"] = len(ex.sources)
            entry["retrieval_tokens"] = ex.retrieval_tokens
            entry["unavailable_documents"] = len(ex.unavailable)
        if self._settings.debug_logging:
            entry["prompt"] = ex.user_prompt
        (logger.warn if outcome.status == "error" else logger.info)("execution", **entry)

    async def _release(self, ex: Execution, fields: dict[str, Any], tokens: int) -> None:
        """After a failed final commit: the limits first, alone (the lease, the reservation,
        the debit), then a short record. If Firestore is out of reach the lease and its
        reservation lapse after STREAM_LEASE_SECONDS, and the record stays "streaming"."""
        try:
            released = await self._store.release(
                uid=ex.uid, execution_id=ex.execution_id, tokens=tokens
            )
        except Exception:
            self.log_failure("lease not released", ex)
            return
        if not released:
            # The final commit was applied after all (it failed in transit).
            logger.warn("lease already released", execution_id=ex.execution_id)
            return
        logger.warn("lease released apart", execution_id=ex.execution_id, tokens=tokens)
        short = {k: v for k, v in fields.items() if k not in ("output", "reasoning", "usage")}
        short["truncated"] = True
        try:
            await self._store.finish_record(execution_id=ex.execution_id, fields=short)
        except Exception:
            self.log_failure("short record not written", ex)

    def log_failure(self, message: str, ex: Execution | None = None) -> None:
        """Log the exception being handled, its traceback redacted."""
        fields: dict[str, Any] = {"traceback": self._redact(traceback.format_exc())}
        if ex is not None:
            fields["execution_id"] = ex.execution_id
        logger.error(message, **fields)
