"""The writes of one execution's checkpoint: segments under Firestore's document size,
append-only, and the record's conditional update; a cancel's mark on a record that its
checkpoints keep changing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import pytest

from promptstream.store._firestore import Document, FirestoreError, FirestoreRest, decode_fields
from promptstream.store._segments import (
    SEGMENT_BYTES,
    Checkpoint,
    checkpoint_writes,
    request_cancel,
)


@pytest.fixture
def db() -> Any:
    class Named:
        root = "projects/p/databases/(default)/documents"

        def name(self, path: str) -> str:
            return f"{self.root}/{path}"

    return Named()


def test_events_over_the_segment_size_split_into_consecutive_segments(db: FirestoreRest) -> None:
    big = b"id: %d\ndata: " + b"x" * (SEGMENT_BYTES // 3) + b"\n\n"
    events = [big.replace(b"%d", str(n).encode()) for n in range(7, 14)]
    writes = checkpoint_writes(db, Checkpoint("e", 7, events, "t1"))
    *segments, record = writes
    firsts = [decode_fields(w["update"]["fields"])["first_id"] for w in segments]
    sizes = [sum(map(len, decode_fields(w["update"]["fields"])["events"])) for w in segments]
    assert firsts == [7, 9, 11, 13] and max(sizes) <= SEGMENT_BYTES
    assert all(w["currentDocument"] == {"exists": False} for w in segments)
    assert segments[1]["update"]["name"].endswith("/executions/e/segments/00000009")
    assert decode_fields(record["update"]["fields"]) == {"checkpoint_id": 13}
    assert record["currentDocument"] == {"updateTime": "t1"}
    assert record["updateTransforms"][0]["fieldPath"] == "alive_at"


def test_no_new_events_writes_the_record_alone(db: FirestoreRest) -> None:
    [record] = checkpoint_writes(db, Checkpoint("e", 5, [], None))
    assert decode_fields(record["update"]["fields"]) == {"checkpoint_id": 4}
    assert record["currentDocument"] == {"exists": True}


class OneRecord(FirestoreRest):
    """One execution record with update times; ``between`` runs after each read (another
    writer: a checkpoint, the end), as if it landed before the mark."""

    def __init__(self, status: str, between: Sequence[dict[str, Any] | None] = ()) -> None:
        super().__init__("p", cast(Any, None))
        self.data: dict[str, Any] | None = {"status": status}
        self.version = 1
        self.between = list(between)
        self.marks = 0

    def read(self) -> Document:
        return Document("executions/e", dict(self.data) if self.data else None, f"t{self.version}")

    async def get_all(self, paths: Sequence[str]) -> dict[str, Document]:
        found = self.read()
        self.land()
        return {path: found for path in paths}

    def land(self) -> None:
        if self.between:
            change = self.between.pop(0)
            self.data = None if change is None else {**(self.data or {}), **change}
            self.version += 1

    async def commit(self, writes: Iterable[Mapping[str, Any]]) -> list[str | None]:
        [write] = list(writes)
        if write["currentDocument"] != {"updateTime": f"t{self.version}"} or self.data is None:
            raise FirestoreError(400, "FAILED_PRECONDITION", "changed")
        self.data.update(decode_fields(write["update"]["fields"]))
        self.version += 1
        self.marks += 1
        return [f"t{self.version}"]


async def test_a_checkpoint_between_the_read_and_the_mark_is_read_again_and_marked() -> None:
    db = OneRecord("streaming", between=[{"checkpoint_id": 3}, {"checkpoint_id": 5}])
    first = db.read()
    db.land()  # the cancel's own read, then a checkpoint
    assert await request_cancel(db, first) == "streaming"
    assert db.marks == 1 and db.data == {
        "status": "streaming",
        "checkpoint_id": 5,
        "cancel_requested": True,
    }


async def test_an_execution_that_ended_before_the_mark_is_not_written() -> None:
    db = OneRecord("streaming", between=[{"status": "completed"}])
    first = db.read()
    db.land()
    assert await request_cancel(db, first) == "completed"
    assert db.marks == 0 and "cancel_requested" not in (db.data or {})


async def test_a_record_gone_before_the_mark_says_so() -> None:
    db = OneRecord("streaming", between=[None])
    first = db.read()
    db.land()
    assert await request_cancel(db, first) is None and db.marks == 0
