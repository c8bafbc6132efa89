"""A resumable execution's checkpoints in Firestore: its events, append-only, as segment
documents ``executions/{id}/segments/{first_id:08d}`` (``first_id``, ``events``: the
encoded events with ids ``first_id``, ``first_id + 1``, ..., ``created_at``), and on its
record ``alive_at`` and ``checkpoint_id``; the reads a resume on another instance makes.

See docs/adr/0600-durable-streams.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._firestore import (
    Document,
    FirestoreRest,
    encode_fields,
    encode_value,
    field_path,
)

__all__ = [
    "EXECUTIONS",
    "SEGMENT_BYTES",
    "Checkpoint",
    "checkpoint_writes",
    "read_record",
    "read_records",
    "read_segments",
    "request_cancel",
]

EXECUTIONS = "executions"
SEGMENTS = "segments"
# Under Firestore's 1 MiB per document, with room for the field names and the id.
SEGMENT_BYTES = 900_000


@dataclass(slots=True)
class Checkpoint:
    """One execution's share of a checkpoint commit: its events ``first_id`` onwards
    (possibly none), and the update time its record must still have (``None``: only
    that it exists)."""

    execution_id: str
    first_id: int
    events: Sequence[bytes]
    record_time: str | None
    fields: dict[str, Any] | None = None

    @property
    def last_id(self) -> int:
        return self.first_id + len(self.events) - 1


def _segment_write(db: FirestoreRest, execution_id: str, first_id: int, events: list[str]) -> Any:
    name = db.name(f"{EXECUTIONS}/{execution_id}/{SEGMENTS}/{first_id:08d}")
    return {
        "update": {"name": name, "fields": encode_fields({"first_id": first_id, "events": events})},
        "updateTransforms": [{"fieldPath": "created_at", "setToServerValue": "REQUEST_TIME"}],
        # Append-only: a segment is never written twice.
        "currentDocument": {"exists": False},
    }


def checkpoint_writes(db: FirestoreRest, checkpoint: Checkpoint) -> list[dict[str, Any]]:
    """The segment documents of ``checkpoint``'s events (each under ``SEGMENT_BYTES``),
    then the record's ``alive_at`` (the server's time) and ``checkpoint_id``, conditional
    on its update time: a write by anyone else since (a cancel, the repair) fails the
    commit, and the checkpoints read the record to see why."""
    writes: list[dict[str, Any]] = []
    batch: list[str] = []
    size = 0
    first = checkpoint.first_id
    for index, event in enumerate(checkpoint.events):
        if batch and size + len(event) > SEGMENT_BYTES:
            writes.append(_segment_write(db, checkpoint.execution_id, first, batch))
            first, batch, size = checkpoint.first_id + index, [], 0
        batch.append(event.decode())
        size += len(event)
    if batch:
        writes.append(_segment_write(db, checkpoint.execution_id, first, batch))
    fields = {"checkpoint_id": checkpoint.last_id, **(checkpoint.fields or {})}
    writes.append(
        {
            "update": {
                "name": db.name(f"{EXECUTIONS}/{checkpoint.execution_id}"),
                "fields": encode_fields(fields),
            },
            "updateMask": {"fieldPaths": [field_path(key) for key in fields]},
            "updateTransforms": [{"fieldPath": "alive_at", "setToServerValue": "REQUEST_TIME"}],
            "currentDocument": (
                {"updateTime": checkpoint.record_time}
                if checkpoint.record_time is not None
                else {"exists": True}
            ),
        }
    )
    return writes


def alive_write(db: FirestoreRest, execution_id: str) -> dict[str, Any]:
    """The record's ``alive_at`` alone (the server's time), for an execution that is not
    checkpointing (a plain one, or a resumable one before its generation starts).
    Unconditional: a record is never deleted while it runs, and one failed write must not
    fail the others' in the commit."""
    return {
        "update": {"name": db.name(f"{EXECUTIONS}/{execution_id}"), "fields": {}},
        "updateMask": {"fieldPaths": []},
        "updateTransforms": [{"fieldPath": "alive_at", "setToServerValue": "REQUEST_TIME"}],
    }


async def read_record(db: FirestoreRest, execution_id: str) -> Document | None:
    """The execution's record, or ``None`` when there is none."""
    path = f"{EXECUTIONS}/{execution_id}"
    found = (await db.get_all([path])).get(path)
    return found if found is not None and found.data is not None else None


async def read_records(db: FirestoreRest, execution_ids: Sequence[str]) -> dict[str, Document]:
    """The records of ``execution_ids`` that exist, in one read, by id."""
    paths = [f"{EXECUTIONS}/{e}" for e in execution_ids]
    found = await db.get_all(paths) if paths else {}
    return {path.rsplit("/", 1)[1]: doc for path, doc in found.items() if doc.data is not None}


async def read_segments(db: FirestoreRest, execution_id: str, from_first: int) -> list[Document]:
    """The segments whose ``first_id`` is ``from_first`` or more, in order."""
    query = {
        "from": [{"collectionId": SEGMENTS}],
        "where": {
            "fieldFilter": {
                "field": {"fieldPath": "first_id"},
                "op": "GREATER_THAN_OR_EQUAL",
                "value": encode_value(from_first),
            }
        },
        "orderBy": [{"field": {"fieldPath": "first_id"}, "direction": "ASCENDING"}],
    }
    return await db.run_query(query, parent=f"{EXECUTIONS}/{execution_id}")


async def request_cancel(db: FirestoreRest, record: Document) -> str | None:
    """Mark ``record`` ``cancel_requested`` while it is streaming (its generator notices at
    its next checkpoint); the status last read: ``"streaming"`` when marked, ``None`` when
    the record is gone.

    The mark is conditional on the record as read, so an execution that ended meanwhile
    is never written to. Its own checkpoints change the record every few tenths of a
    second, so when one lands between the read and the mark, the record is read again and
    the mark retried."""
    reads = [record]

    async def step() -> tuple[list[dict[str, Any]], str | None]:
        found = reads.pop() if reads else (await db.get_all([record.path])).get(record.path)
        data = found.data if found is not None else None
        status = data.get("status") if data is not None else None
        if found is None or status != "streaming":
            return [], status
        mark = {
            "update": {
                "name": db.name(found.path),
                "fields": encode_fields({"cancel_requested": True}),
            },
            "updateMask": {"fieldPaths": ["cancel_requested"]},
            "currentDocument": {"updateTime": found.update_time},
        }
        return [mark], status

    status, _ = await db.committed(step)
    return status
