"""One checkpoint pass over an instance's resumable executions, against a Firestore held
in memory: one commit for all of them, segments in order, the idle rule for alive_at, and
a record written by someone else (a cancel, the repair) seen through a failed
precondition."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from promptstream.run._checkpoints import IDLE_TICKS, Checkpoints
from promptstream.run._live import Live, Lives
from promptstream.store._firestore import Document, FirestoreError, decode_fields

ROOT = "projects/p/databases/(default)/documents"


class MemoryDb:
    """The two calls the checkpoints make, on records kept in memory with update times."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.times: dict[str, str] = {}
        self.segments: dict[str, dict[str, Any]] = {}
        self.commits: list[list[Mapping[str, Any]]] = []
        self._clock = 0

    def name(self, path: str) -> str:
        return f"{ROOT}/{path}"

    def stamp(self, path: str) -> str:
        self._clock += 1
        self.times[path] = f"t{self._clock}"
        return self.times[path]

    def add(self, execution_id: str, **data: Any) -> None:
        path = f"executions/{execution_id}"
        self.records[path] = {"status": "streaming", **data}
        self.stamp(path)

    async def get_all(self, paths: Sequence[str]) -> dict[str, Document]:
        return {p: Document(p, self.records.get(p), self.times.get(p)) for p in paths}

    async def commit(self, writes: Sequence[Mapping[str, Any]]) -> list[str | None]:
        for write in writes:
            path = write["update"]["name"].removeprefix(ROOT + "/")
            wanted = write.get("currentDocument", {})
            if "updateTime" in wanted and self.times.get(path) != wanted["updateTime"]:
                raise FirestoreError(400, "FAILED_PRECONDITION", "changed")
        self.commits.append(list(writes))
        out: list[str | None] = []
        for write in writes:
            path = write["update"]["name"].removeprefix(ROOT + "/")
            fields = decode_fields(write["update"]["fields"])
            if "/segments/" in path:
                self.segments[path] = fields
            else:
                self.records[path].update(fields)
            out.append(self.stamp(path))
        return out


def _live(lives: Lives, execution_id: str, events: int) -> Live:
    live = Live(execution_id, "alice", {})
    for n in range(1, events + 1):
        live.events.append(b"id: %d\ndata: {}\n\n" % n)

    async def generation() -> None:
        await asyncio.sleep(10)

    lives.start(live, generation())
    return live


def _run(body: Any) -> Any:
    return asyncio.run(body())


def test_one_commit_writes_the_new_events_of_every_open_execution() -> None:
    db = MemoryDb()

    async def main() -> None:
        lives = Lives(30, 30)
        a, b = _live(lives, "a", 3), _live(lives, "b", 2)
        db.add("a")
        db.add("b")
        checkpoints = Checkpoints(1.0, lives, lambda: db)  # type: ignore[arg-type, return-value]
        await checkpoints.tick()
        a.events.append(b"id: 4\ndata: {}\n\n")
        await checkpoints.tick()
        assert (a.checkpointed, b.checkpointed) == (4, 2)
        for live in (a, b):
            live.cancel()

    _run(main)
    # First pass: two segments and two records in one commit; second: a's one new event
    # (b had nothing new and is not due yet).
    assert [len(c) for c in db.commits] == [4, 2]
    assert db.segments[f"executions/a/segments/{1:08d}"]["events"][0].startswith("id: 1\n")
    assert db.segments[f"executions/a/segments/{4:08d}"]["first_id"] == 4
    assert db.records["executions/a"]["checkpoint_id"] == 4


def test_an_execution_with_nothing_new_refreshes_alive_at_every_idle_ticks() -> None:
    db = MemoryDb()

    async def main() -> None:
        lives = Lives(30, 30)
        live = _live(lives, "a", 1)
        db.add("a")
        checkpoints = Checkpoints(1.0, lives, lambda: db)  # type: ignore[arg-type, return-value]
        for _ in range(1 + 2 * IDLE_TICKS):
            await checkpoints.tick()
        live.cancel()

    _run(main)
    # The first pass, then one every IDLE_TICKS.
    assert len(db.commits) == 3
    assert [len(c) for c in db.commits] == [2, 1, 1]


def test_a_cancel_written_by_another_instance_cancels_the_generation() -> None:
    db = MemoryDb()

    async def main() -> tuple[bool, bool, str | None]:
        lives = Lives(30, 30)
        live = _live(lives, "a", 1)
        db.add("a")
        checkpoints = Checkpoints(1.0, lives, lambda: db)  # type: ignore[arg-type, return-value]
        await checkpoints.tick()
        # Another instance marks the record (its update time changes).
        db.records["executions/a"]["cancel_requested"] = True
        db.stamp("executions/a")
        live.events.append(b"id: 2\ndata: {}\n\n")
        await checkpoints.tick()
        await live.wait_finished()
        return live.cancel_requested, live.stopped, live.end_reason

    assert _run(main) == (True, False, "cancelled")
    # The second pass committed after reading the record again.
    assert db.records["executions/a"]["checkpoint_id"] == 2


def test_a_record_the_repair_finished_stops_the_generation_without_a_write() -> None:
    db = MemoryDb()

    async def main() -> tuple[bool, str | None]:
        lives = Lives(30, 30)
        live = _live(lives, "a", 1)
        db.add("a")
        checkpoints = Checkpoints(1.0, lives, lambda: db)  # type: ignore[arg-type, return-value]
        await checkpoints.tick()
        db.records["executions/a"]["status"] = "interrupted"
        db.stamp("executions/a")
        live.events.append(b"id: 2\ndata: {}\n\n")
        await checkpoints.tick()
        await live.wait_finished()
        return live.stopped, live.end_reason

    assert _run(main) == (True, "interrupted")
    assert len(db.commits) == 1 and db.records["executions/a"]["checkpoint_id"] == 1


def test_a_held_execution_s_alive_at_is_refreshed_every_idle_ticks_until_released() -> None:
    async def body() -> None:
        db = MemoryDb()
        for execution_id in ("plain", "done"):
            db.add(execution_id)
        noted: list[tuple[str, str | None]] = []
        checkpoints = Checkpoints(
            3600, Lives(30, 30), lambda: db, lambda e, t: noted.append((e, t))  # type: ignore[arg-type, return-value]
        )
        checkpoints.hold("plain")
        checkpoints.hold("done")
        for _ in range(IDLE_TICKS - 1):
            await checkpoints.tick()
        assert db.commits == []
        await checkpoints.tick()
        [writes] = db.commits
        assert sorted(w["update"]["name"].rsplit("/", 1)[1] for w in writes) == ["done", "plain"]
        assert all(
            w["updateTransforms"] == [{"fieldPath": "alive_at", "setToServerValue": "REQUEST_TIME"}]
            and w["updateMask"] == {"fieldPaths": []}
            for w in writes
        )
        # Each record's new update time is what its finish will be conditional on.
        assert sorted(noted) == sorted(
            (e, db.times[f"executions/{e}"]) for e in ("done", "plain")
        )
        checkpoints.release("done")
        await checkpoints.aclose()
        for _ in range(IDLE_TICKS):
            await checkpoints.tick()
        assert [w["update"]["name"].rsplit("/", 1)[1] for w in db.commits[-1]] == ["plain"]

    _run(body)
