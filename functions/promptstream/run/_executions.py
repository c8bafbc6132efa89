"""An execution's record: opened with the lease once every check passed, finished
exactly once (completed, error or cancelled, with the output so far; or ``interrupted``
by the repair when its instance died first), and one log line. What it opens is
prepared by ``_prepare``.

The commits: docs/adr/0002-conditional-commits.md; the repair's race with a finish:
docs/adr/0601-leases-that-prove-alive.md.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from .. import _logging as logger
from .._config import Settings
from .._tokens import estimate_tokens
from ..knowledge._context import build_context
from ..knowledge._passages import Embedder
from ..knowledge._search import search
from ..store._prompts import Prompt
from ..store._records import bounded
from ..store._store import Store
from ._conversations import load_chain, turn_one_fields
from ._prepare import (
    Execution,
    Outcome,
    prepare,
    prepare_follow_up,
    retrieval_reserve,
    sent_fields,
)
from ._request import ExecuteRequest

__all__ = ["Executions"]


class Executions:
    """Opens and finishes execution records."""

    def __init__(self, settings: Settings, store: Store, redact: Callable[[str], str]) -> None:
        self._settings = settings
        self._store = store
        self._redact = redact

    async def open(
        self,
        uid: str,
        body: ExecuteRequest,
        admitted: Callable[[Execution], None] | None = None,
    ) -> Execution:
        """Load and check the prompt, take a lease and open the record (one read, one
        commit; a follow-up reads its chain first, see ``_conversations``). Raises
        ``HttpError`` and writes nothing on a refusal. ``admitted`` sees the execution
        (its id set) once the read has shown it admissible, as its commit is sent: what
        it starts overlaps the commit, and is the caller's to stop when the commit
        refuses after all (docs/adr/1000-one-round-trip-before-the-upstream.md)."""
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
                + retrieval_reserve(ex, self._settings)
            )
            record["tokens_reserved"] = reserve
            # What the repair debits for the prompt if the instance dies (ADR 0601): the
            # estimate, with the passages at their reserved bound (not yet retrieved).
            record["prompt_tokens_estimate"] = ex.prompt_tokens + retrieval_reserve(
                ex, self._settings
            )
            return record, reserve, ex

        def told(execution_id: str, ex: Execution) -> None:
            ex.execution_id = execution_id
            if admitted is not None:
                admitted(ex)

        execution_id, ex = await self._store.begin_execution(
            uid=uid,
            prompt_id=body.prompt_id,
            version=body.version,
            label=body.label,
            build=build,
            sent=sent_fields,
            admitted=told,
        )
        ex.execution_id = execution_id
        return ex

    async def search(self, ex: Execution, embedder: Embedder) -> None:
        """Search the documents ``ex`` names (the caller's own, ready ones only) for its
        query; the passages and the query's embedding tokens go on ``ex``. Raises an
        ``OpenRouterError`` from the embedding, ``FirestoreError`` from the reads. Needs
        no record: it may run while the record's commit is in flight."""
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

    async def keep_passages(self, ex: Execution) -> None:
        """Once the record is open and the search done: a later turn sends this turn
        again as it went, with its passages."""
        if ex.sources:
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
