"""An execution's record: opened with the lease once every check passed, finished
exactly once (completed, error or cancelled, with the output so far), and one log line.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _logging as logger
from ._config import Settings
from ._errors import ErrorCode, HttpError
from ._request import ExecuteRequest
from ._retrieval import Embedder, Source, build_context, check_document_id, search
from ._store import Prompt, Store
from ._templates import VariableError, VariableSpec, placeholders, render, resolve_variables

__all__ = ["Execution", "Executions", "Outcome"]


@dataclass
class Execution:
    """One prepared execution: everything checked, the record opened."""

    uid: str
    request: ExecuteRequest
    prompt: Prompt
    model: str
    user_prompt: str
    system_prompt: str | None
    values: dict[str, str]
    execution_id: str = ""
    started: float = field(default_factory=time.monotonic)
    # Knowledge bases: what to search (empty: no retrieval), and what was found.
    document_ids: tuple[str, ...] = ()
    top_k: int = 0
    query: str = ""
    sources: list[Source] = field(default_factory=list)
    retrieval_tokens: int = 0
    unavailable: list[str] = field(default_factory=list)

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


def prepare(
    uid: str, body: ExecuteRequest, model: str, prompt: Prompt | None, settings: Settings
) -> Execution:
    """The checks that need the prompt: access, variables, size. Pure; raises HttpError."""
    if prompt is None or not (prompt.public or prompt.owner_uid == uid):
        # The same answer for "absent" and "someone else's private prompt".
        raise HttpError(ErrorCode.PROMPT_NOT_FOUND, "Prompt not found.")
    declared = [s for s in map(VariableSpec.from_doc, prompt.variables) if s is not None]
    try:
        values = resolve_variables(
            declared, placeholders(prompt.content, prompt.system_prompt), body.variables
        )
    except VariableError as exc:
        key = "missing" if exc.code == "missing_variables" else "unknown"
        raise HttpError(ErrorCode(exc.code), str(exc), {key: exc.names}) from None
    user_prompt = render(prompt.content, values)
    system_prompt = render(prompt.system_prompt, values) if prompt.system_prompt else None
    context = body.context or ""
    size = len(user_prompt) + len(system_prompt or "") + len(context)
    if len(context) > settings.max_context_chars or size > settings.max_prompt_chars:
        raise HttpError(
            ErrorCode.PROMPT_TOO_LARGE,
            f"The rendered prompt and context are {size} characters; "
            f"the limit is {settings.max_prompt_chars}.",
        )
    ex = Execution(uid, body, prompt, model, user_prompt, system_prompt, values)
    _plan_retrieval(ex, settings)
    return ex


def _plan_retrieval(ex: Execution, settings: Settings) -> None:
    """The documents, top_k and query of ``ex``: the request's documents and top_k over
    the prompt's, each within the settings' bounds."""
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
    ex.query = chosen if chosen.strip() else ex.user_prompt


class Executions:
    """Opens and finishes execution records."""

    def __init__(self, settings: Settings, store: Store, redact: Callable[[str], str]) -> None:
        self._settings = settings
        self._store = store
        self._redact = redact

    async def open(self, uid: str, body: ExecuteRequest, model: str) -> Execution:
        """Load and check the prompt, take a lease and open the record (one read, one
        commit). Raises ``HttpError`` and writes nothing on a refusal."""

        def build(prompt: Prompt | None) -> tuple[dict[str, Any], Execution]:
            ex = prepare(uid, body, model, prompt, self._settings)
            record: dict[str, Any] = {
                "prompt_id": ex.prompt.id,
                "model": ex.model,
                "variables": ex.values,
                "output": "",
                "usage": None,
                "finish_reason": None,
                "error_code": None,
                "error_message": None,
            }
            if ex.document_ids:
                record["document_ids"] = list(ex.document_ids)
            return record, ex

        execution_id, ex = await self._store.begin_execution(
            uid=uid, prompt_id=body.prompt_id, build=build
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
        )
        ex.sources = found.sources
        ex.retrieval_tokens = found.tokens
        ex.unavailable = found.unavailable

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
            # No usage (a disconnect, an error): debit an estimate so the budget holds.
            request = ex.request
            size = (
                len(ex.upstream_prompt) + len(ex.system_prompt or "") + len(request.context or "")
            )
            tokens = math.ceil((size + len(outcome.output) + len(outcome.reasoning)) / 4)
        # The query's embedding is spent whatever became of the generation.
        tokens += ex.retrieval_tokens
        error = outcome.error
        fields: dict[str, Any] = {
            "status": outcome.status,
            "output": outcome.output,
            "reasoning": outcome.reasoning or None,
            "usage": usage,
            "finish_reason": outcome.finish_reason,
            "generation_id": outcome.generation_id,
            "model": outcome.model or ex.model,
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
            await self._store.finish_execution(
                uid=ex.uid, execution_id=ex.execution_id, fields=fields, tokens=tokens
            )
        except Exception:
            # Firestore out of reach, say. The record stays "streaming" and the lease
            # lapses after STREAM_LEASE_SECONDS.
            self.log_failure("record not finalised", ex)
        entry: dict[str, Any] = {
            "execution_id": ex.execution_id,
            "uid": ex.uid,
            "prompt_id": ex.prompt.id,
            "model": fields["model"],
            "status": outcome.status,
            "ttft_ms": ttft_ms,
            "duration_ms": duration_ms,
            "tokens": tokens,
            "usage_reported": usage is not None,
            "error_code": fields["error_code"],
        }
        if ex.document_ids:
            entry["sources"] = len(ex.sources)
            entry["retrieval_tokens"] = ex.retrieval_tokens
            entry["unavailable_documents"] = len(ex.unavailable)
        if self._settings.debug_logging:
            entry["prompt"] = ex.user_prompt
        (logger.warn if outcome.status == "error" else logger.info)("execution", **entry)

    def log_failure(self, message: str, ex: Execution | None = None) -> None:
        """Log the exception being handled, its traceback redacted."""
        fields: dict[str, Any] = {"traceback": self._redact(traceback.format_exc())}
        if ex is not None:
            fields["execution_id"] = ex.execution_id
        logger.error(message, **fields)
