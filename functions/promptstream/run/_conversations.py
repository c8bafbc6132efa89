"""Conversations: a follow-up's chain of turns, read from the records and from what each
turn sent (never from the client), checked, and turned into the messages sent upstream.

A conversation is a tree of executions: each follow-up names its parent, and a regenerated
or edited turn is a sibling of the one it replaces, under the same parent. Each record keeps
``ancestors`` (the ids from turn 1 to its parent), so a follow-up reads its whole chain in
two batch reads whatever its depth. See docs/adr/0700-conversations.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._config import Settings
from .._errors import ErrorCode, HttpError
from .._tokens import estimate_tokens
from ..store._firestore import Document, FirestoreRest, structured_query
from ..store._store import EXECUTIONS, sent_path
from ._request import ExecuteRequest

__all__ = ["Chain", "check_window", "load_chain", "turn_one_fields"]

# A turn may be followed once it ended with text the model wrote; an error is regenerated.
_FOLLOWABLE = frozenset({"completed", "cancelled", "interrupted"})
# How much of the user's previous text a follow-up's search carries ahead of its own
# ("and its price?" needs the subject named before).
_QUERY_CONTEXT_CHARS = 1000
# Children of one parent looked at to find the text a regenerate answers again.
_SIBLINGS = 100
_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Chain:
    """A follow-up's conversation so far, as the records hold it."""

    conversation_id: str
    parent_id: str
    # The ids from turn 1 to the parent, in order: the new record's ``ancestors``.
    ancestors: tuple[str, ...]
    prompt_id: str
    # The first turn's rendered system prompt and request context.
    system: str | None
    context: str | None
    # Every earlier turn: the user message as sent, then the answer as recorded.
    history: tuple[dict[str, str], ...]
    # The new user text: the request's, or on a regenerate the one answered again.
    message: str
    regenerate: bool
    # The model the parent asked for: a follow-up's default.
    model: str | None
    # The documents the first turn searched: every turn searches them again.
    document_ids: tuple[str, ...]
    # The search query: the user's previous text, cut, then the new one.
    query: str
    # The tokens of the conversation up to the parent, its answer included: what the
    # parent's record debited for its messages and answer (the upstream's count when it
    # gave one), so that a follow-up never re-reads the whole conversation on the loop.
    earlier_tokens: int = 0
    # The prompt version the first turn ran: every turn continues what it sent.
    prompt_version: int | None = None

    @property
    def turn(self) -> int:
        return len(self.ancestors) + 1

    def tokens(self) -> int:
        """The tokens of every message sent upstream: the conversation so far as the
        parent counted it, and an estimate of the new message (ADR 0302)."""
        return self.earlier_tokens + estimate_tokens(self.message)

    def record(self) -> dict[str, Any]:
        """The new record's conversation fields."""
        fields: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "parent_execution_id": self.parent_id,
            "turn": self.turn,
            "message": self.message,
            "ancestors": list(self.ancestors),
            # What turn 1 ran (null for one from before versions), not the latest now.
            "prompt_version": self.prompt_version,
        }
        if self.regenerate:
            fields["regenerate"] = True
        return fields


def turn_one_fields() -> dict[str, Any]:
    """A first turn's conversation fields (its ``conversation_id`` is its own id, which
    the store gives it)."""
    return {"parent_execution_id": None, "turn": 1, "message": None, "ancestors": []}


def check_window(needed: int, settings: Settings) -> None:
    """Refuse a follow-up whose conversation and answer (``needed`` tokens, estimated)
    would not fit the model's context: refused, not cut, so nothing is lost silently."""
    window = settings.context_window_tokens
    if needed > window:
        raise HttpError(
            ErrorCode.CONVERSATION_TOO_LONG,
            f"This conversation needs about {needed} tokens with its answer; the model's "
            f"context holds {window}. Start a new conversation.",
            {"tokens": needed, "context_window_tokens": window},
        )


def _not_found() -> HttpError:
    # One answer for "absent", "another user's" and "not that conversation's".
    return HttpError(ErrorCode.CONVERSATION_NOT_FOUND, "Conversation not found.")


def _out_of_order(message: str, reason: str) -> HttpError:
    return HttpError(ErrorCode.TURN_OUT_OF_ORDER, message, {"reason": reason})


def _too_long(message: str) -> HttpError:
    return HttpError(ErrorCode.CONVERSATION_TOO_LONG, message)


def _check_turn(
    uid: str, conversation_id: str, doc: Document | None, sent: Document | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One turn of the chain (record, sent) once it is known to be ``uid``'s, in this
    conversation, followable and kept whole."""
    if doc is None or not doc.data or doc.data.get("owner_uid") != uid:
        raise _not_found()
    record = doc.data
    # A record from before conversations is the first turn of its own.
    if record.get("conversation_id", doc.path.rsplit("/", 1)[1]) != conversation_id:
        raise _out_of_order("That turn is not part of this conversation.", "other_conversation")
    status = record.get("status")
    if status == "streaming":
        raise _out_of_order("The turn it follows has not finished yet.", "not_finished")
    output = record.get("output")
    if status not in _FOLLOWABLE or not isinstance(output, str) or not output:
        raise _out_of_order(
            "The turn it follows has no answer to follow; regenerate it instead.", "no_answer"
        )
    if record.get("truncated") is True:
        raise _too_long("An answer in this conversation was too long to keep whole.")
    data = sent.data if sent is not None else None
    if not data or not isinstance(data.get("user"), str):
        raise _out_of_order(
            "This run was made before conversations were kept; it cannot be continued.",
            "not_kept",
        )
    return record, data


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def load_chain(
    rest: FirestoreRest, uid: str, body: ExecuteRequest, settings: Settings
) -> Chain:
    """The chain a follow-up continues: the parent and its ancestors with what each sent,
    in two batch reads (one more on a regenerate). Raises ``HttpError``: 404 for a
    conversation that is absent or another user's, 409 for a turn out of order or one that
    cannot be followed, 413 past ``MAX_CONVERSATION_TURNS``; 400 for another prompt."""
    conversation_id, parent_id = body.conversation_id, body.parent_execution_id
    assert conversation_id is not None and parent_id is not None  # _request.check
    parent_path = f"{EXECUTIONS}/{parent_id}"
    first = await rest.get_all([parent_path, sent_path(parent_id)])
    parent, parent_sent = _check_turn(
        uid, conversation_id, first.get(parent_path), first.get(sent_path(parent_id))
    )
    raw = parent.get("ancestors")
    earlier = [a for a in raw if isinstance(a, str)] if isinstance(raw, list) else []
    ancestors = (*earlier, parent_id)
    if len(ancestors) + 1 > settings.max_conversation_turns:
        raise _too_long(
            f"A conversation has at most {settings.max_conversation_turns} turns; start a new one."
        )
    turns = [(parent, parent_sent)]
    if earlier:
        paths = [p for a in earlier for p in (f"{EXECUTIONS}/{a}", sent_path(a))]
        docs = await rest.get_all(paths)
        turns = [
            _check_turn(uid, conversation_id, docs.get(f"{EXECUTIONS}/{a}"), docs.get(sent_path(a)))
            for a in earlier
        ] + turns
    root, root_sent = turns[0]
    if root.get("prompt_id") != body.prompt_id:
        raise HttpError(
            ErrorCode.INVALID_REQUEST,
            "prompt_id is not the conversation's prompt",
            {"prompt_id": root.get("prompt_id")},
        )
    history: list[dict[str, str]] = []
    for record, sent in turns:
        history.append({"role": "user", "content": sent["user"]})
        history.append({"role": "assistant", "content": record["output"]})
    if body.message is not None:
        message = body.message
    else:
        message = await _regenerated(rest, uid, conversation_id, parent_id)
    previous = _text(parent.get("message")) or _text(parent_sent.get("query")) or ""
    previous = previous[-_QUERY_CONTEXT_CHARS:]
    raw_ids = root.get("document_ids")
    return Chain(
        conversation_id=conversation_id,
        parent_id=parent_id,
        ancestors=ancestors,
        prompt_id=body.prompt_id,
        system=_text(root_sent.get("system")),
        context=_text(root_sent.get("context")),
        history=tuple(history),
        message=message,
        regenerate=body.regenerate,
        model=_text(parent.get("requested_model")),
        document_ids=tuple(d for d in raw_ids if isinstance(d, str))
        if isinstance(raw_ids, list)
        else (),
        query=f"{previous}\n{message}" if previous else message,
        earlier_tokens=_int(parent.get("tokens_debited")) - _int(parent.get("retrieval_tokens")),
        prompt_version=_int(root.get("prompt_version")) or None,
    )


async def _regenerated(rest: FirestoreRest, uid: str, conversation_id: str, parent_id: str) -> str:
    """The text a regenerate answers again: that of the parent's latest child (the answer
    shown last under it)."""
    query = structured_query(
        EXECUTIONS,
        {"owner_uid": uid, "conversation_id": conversation_id, "parent_execution_id": parent_id},
        select=["message", "created_at"],
    )
    query["limit"] = _SIBLINGS
    children = await rest.run_query(query)
    latest = max(
        (c.data for c in children if c.data and isinstance(c.data.get("message"), str)),
        key=_created,
        default=None,
    )
    if latest is None:
        raise _out_of_order(
            "There is no answer under that turn to regenerate.", "nothing_to_regenerate"
        )
    return str(latest["message"])


def _created(data: Mapping[str, Any]) -> dt.datetime:
    created = data.get("created_at")
    return created if isinstance(created, dt.datetime) else _EPOCH
