"""An execution record's last write, and the repair of one whose instance died.

A finish and a repair each end a ``streaming`` record in one commit conditional on the
record's update time, so exactly one of them lands. The repair finishes a record whose
execution has shown no sign of life for ``LEASE_TTL_SECONDS`` as ``interrupted``: the
text of its checkpoints (``executions/{id}/segments``), the tokens debited by estimate,
its lease and reservation released. docs/adr/0601-leases-that-prove-alive.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._config import Settings
from .._ids import uid_key
from .._json import loads
from .._sse import SSEDecoder
from .._tokens import estimate_tokens
from . import _segments as segments
from ._firestore import Document, FirestoreRest, encode_fields, encode_value, field_path
from ._limits import STREAMS, after_repair, shows_life, silent_leases

__all__ = [
    "EXECUTIONS",
    "INTERRUPTED",
    "bounded",
    "checkpointed_text",
    "interrupted_fields",
    "read_segments",
    "record_write",
    "repair_execution",
    "repairs_at_admission",
    "settle_write",
    "silent_executions",
    "silent_query",
]

EXECUTIONS = "executions"
USER_LIMITS = "user_limits"
# The status of a record the repair ended, and the error code it carries.
INTERRUPTED = "interrupted"
_INT64_MAX = 2**63 - 1


def bounded(output: str, reasoning: str, limit: int) -> tuple[str, str, bool]:
    """The output, then the reasoning, kept to ``limit`` characters together: a record
    must fit Firestore's 1 MiB document limit, or its commit fails."""
    if len(output) + len(reasoning) <= limit:
        return output, reasoning, False
    output = output[:limit]
    return output, reasoning[: limit - len(output)], True


def record_write(
    db: FirestoreRest, execution_id: str, fields: Mapping[str, Any], update_time: str | None
) -> dict[str, Any]:
    """``fields`` of the record, with ``finished_at``, on condition that it is still the
    one read at ``update_time`` (or, with none, that it exists)."""
    return {
        "update": {
            "name": db.name(f"{EXECUTIONS}/{execution_id}"),
            "fields": encode_fields(fields),
        },
        "updateMask": {"fieldPaths": [field_path(key) for key in fields]},
        "updateTransforms": [{"fieldPath": "finished_at", "setToServerValue": "REQUEST_TIME"}],
        "currentDocument": (
            {"updateTime": update_time} if update_time is not None else {"exists": True}
        ),
    }


def settle_write(
    db: FirestoreRest, limits: Document, paths: Sequence[str], tokens: int, now: dt.datetime
) -> dict[str, Any]:
    """The limits document without the fields at ``paths`` (a lease, its reservation),
    ``tokens`` debited on today's count (a new day's count starts with them), on
    condition that it is still the one read."""
    day = now.date().isoformat()
    mask = list(paths)
    fields: dict[str, Any] = {}
    transforms = []
    if (limits.data or {}).get("day") == day:
        transforms.append(
            {"fieldPath": "tokens_today", "increment": {"integerValue": str(max(0, tokens))}}
        )
    else:
        fields = {"day": day, "tokens_today": max(0, tokens)}
        mask += list(fields)
    return {
        "update": {"name": db.name(limits.path), "fields": encode_fields(fields)},
        "updateMask": {"fieldPaths": mask},
        "updateTransforms": transforms,
        "currentDocument": {"updateTime": limits.update_time},
    }


def checkpointed_text(segments: Iterable[Mapping[str, Any]]) -> tuple[str, str]:
    """The content and the reasoning of the events the segments hold (each event the
    encoded SSE text of one event with an id), every id once and in order."""
    decoder = SSEDecoder()
    last = 0
    output: list[str] = []
    reasoning: list[str] = []
    for segment in segments:
        events = segment.get("events")
        for text in events if isinstance(events, list) else ():
            if not isinstance(text, str):
                continue
            for event in decoder.feed(text.encode()):
                try:
                    n = int(event.id)
                except ValueError:
                    continue
                # A segment split or written twice repeats ids: each counts once.
                if n <= last:
                    continue
                last = n
                if event.event != "message":
                    continue
                try:
                    data = loads(event.data)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    if isinstance(content := data.get("content"), str):
                        output.append(content)
                    if isinstance(thought := data.get("reasoning"), str):
                        reasoning.append(thought)
    return "".join(output), "".join(reasoning)


def interrupted_fields(
    record: Mapping[str, Any], segments: Iterable[Mapping[str, Any]], settings: Settings
) -> tuple[dict[str, Any], int]:
    """The fields that end ``record`` ``interrupted`` with its checkpointed text, and the
    tokens to debit: an estimate, as a finish without usage makes one
    (docs/adr/0302-token-estimate.md), from the prompt's estimate the opening kept."""
    output, reasoning = checkpointed_text(segments)
    prompt = record.get("prompt_tokens_estimate")
    tokens = (prompt if isinstance(prompt, int) else 0) + estimate_tokens(output)
    tokens = min(max(0, tokens + estimate_tokens(reasoning)), _INT64_MAX)
    output, reasoning, truncated = bounded(output, reasoning, settings.record_text_chars)
    fields: dict[str, Any] = {
        "status": INTERRUPTED,
        "output": output,
        "reasoning": reasoning or None,
        "truncated": truncated,
        "usage": None,
        "finish_reason": None,
        "error_code": INTERRUPTED,
        "error_message": "The instance running this execution stopped; "
        "the output is the text of its last checkpoint.",
        "tokens_debited": tokens,
    }
    return fields, tokens


async def read_segments(db: FirestoreRest, execution_id: str) -> list[dict[str, Any]]:
    """The checkpoints of an execution, in order of their first event id."""
    return [doc.data or {} for doc in await segments.read_segments(db, execution_id, 1)]


async def repairs_at_admission(
    db: FirestoreRest, settings: Settings, limits: Mapping[str, Any] | None, now: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """When a limit refused an opening: the user's stream leases old enough to be
    silent whose executions show no life, repaired. The limits document as the repair
    leaves it (for ``take_lease`` to decide again) and the records' writes, all to go
    in the opening's commit; None when no lease is dead. One batch read of the
    suspects' records, and a query of each dead one's segments."""
    suspects = silent_leases(limits, now, settings)
    if not suspects:
        return None
    leases = (limits or {}).get(STREAMS) or {}
    paths = {key: f"{EXECUTIONS}/{key}" for key in suspects}
    records = await db.get_all(list(paths.values()))
    debits: dict[str, int] = {}
    writes: list[dict[str, Any]] = []
    for key, path in paths.items():
        found = records.get(path)
        record = found.data if found is not None else None
        if shows_life(record, leases.get(key), now, settings):
            continue
        if found is None or record is None or record.get("status") != "streaming":
            # Settled or gone already: the lease alone is left, with nothing to debit.
            debits[key] = 0
            continue
        fields, tokens = interrupted_fields(record, await read_segments(db, key), settings)
        debits[key] = tokens
        writes.append(record_write(db, key, fields, found.update_time))
    if not debits:
        return None
    return after_repair(limits, debits, now), writes


async def repair_execution(
    db: FirestoreRest, settings: Settings, *, owner_uid: str, execution_id: str
) -> tuple[dict[str, Any] | None, bool]:
    """Finish the record ``interrupted`` if it is ``owner_uid``'s, still ``streaming``
    and its execution silent past its allowance (``shows_life``): the text of its
    segments, the tokens debited by estimate, its lease and reservation released, in one
    commit conditional on the record's and the limits document's update times, so that
    two repairs, or a repair and a late finish, never both land. The record's fields
    after the call (None when it is absent or another user's), and whether this call
    ended it. A lease already gone (settled, or lapsed and dropped) is debited nothing:
    whether it was is unknown."""
    path = f"{EXECUTIONS}/{execution_id}"
    limits_path = f"{USER_LIMITS}/{uid_key(owner_uid)}"

    async def step() -> tuple[list[dict[str, Any]], tuple[dict[str, Any] | None, bool]]:
        docs = await db.get_all([path, limits_path])
        found = docs[path]
        record = found.data
        if record is None or record.get("owner_uid") != owner_uid:
            return [], (None, False)
        limits = docs[limits_path]
        leases = (limits.data or {}).get(STREAMS) or {}
        now = dt.datetime.now(dt.UTC)
        if record.get("status") != "streaming" or shows_life(
            record, leases.get(execution_id), now, settings
        ):
            return [], (record, False)
        fields, tokens = interrupted_fields(record, await read_segments(db, execution_id), settings)
        writes = [record_write(db, execution_id, fields, found.update_time)]
        if execution_id in leases:
            paths = [field_path(STREAMS, execution_id), field_path("reserved", execution_id)]
            writes.append(settle_write(db, limits, paths, tokens, now))
        else:
            fields["tokens_debited"] = 0
            writes[0] = record_write(db, execution_id, fields, found.update_time)
        return writes, ({**record, **fields}, True)

    return (await db.committed(step))[0]


def silent_query(cutoff: dt.datetime, limit: int) -> dict[str, Any]:
    """The records still ``streaming`` whose ``alive_at`` is older than ``cutoff``, oldest
    first, up to ``limit``: their ids and owners. Served by a composite index
    (firestore.indexes.json). A record without ``alive_at`` (from before liveness) is not
    found here: its lease lapses after STREAM_LEASE_SECONDS as it always did."""

    def equal(name: str, value: Any) -> dict[str, Any]:
        return {
            "fieldFilter": {
                "field": {"fieldPath": name},
                "op": "EQUAL",
                "value": encode_value(value),
            }
        }

    filters = [
        equal("status", "streaming"),
        {
            "fieldFilter": {
                "field": {"fieldPath": "alive_at"},
                "op": "LESS_THAN",
                "value": encode_value(cutoff),
            }
        },
    ]
    return {
        "from": [{"collectionId": EXECUTIONS}],
        "where": {"compositeFilter": {"op": "AND", "filters": filters}},
        "orderBy": [{"field": {"fieldPath": "alive_at"}, "direction": "ASCENDING"}],
        "select": {"fields": [{"fieldPath": "owner_uid"}]},
        "limit": limit,
    }


async def silent_executions(
    db: FirestoreRest, cutoff: dt.datetime, limit: int
) -> list[tuple[str, str]]:
    """(execution id, owner uid) of records still ``streaming`` last alive before
    ``cutoff``, oldest first, up to ``limit``."""
    seen: dict[str, str] = {}
    for doc in await db.run_query(silent_query(cutoff, limit)):
        owner = (doc.data or {}).get("owner_uid")
        if isinstance(owner, str):
            seen.setdefault(doc.path.rsplit("/", 1)[1], owner)
    return list(seen.items())
