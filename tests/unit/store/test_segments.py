"""The writes of one execution's checkpoint: segments under Firestore's document size,
append-only, and the record's conditional update."""

from __future__ import annotations

from typing import Any

import pytest

from promptstream.store._firestore import FirestoreRest, decode_fields
from promptstream.store._segments import SEGMENT_BYTES, Checkpoint, checkpoint_writes


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
