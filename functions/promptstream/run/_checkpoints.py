"""The checkpoints of this instance's resumable executions: every ``CHECKPOINT_SECONDS``
one pass commits, for all of them at once, their new events as segment documents and
their records' ``alive_at`` and ``checkpoint_id`` (commits of at most 500 writes); an
execution with nothing new refreshes ``alive_at`` only every ``IDLE_TICKS`` passes. A
record write is conditional on the update time of this instance's last write to it: when
it fails, someone else wrote (a cancel from another instance, the repair), and one read
says who. The final checkpoint of an execution precedes its finish. Every other execution
open on the instance (a plain one, or a resumable one before its generation starts) is
``held``: its record's ``alive_at`` alone is refreshed every ``IDLE_TICKS`` passes, so its
lease too lapses within ``LEASE_TTL_SECONDS`` of a crash (docs/adr/0601).

See docs/adr/0600-durable-streams.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .. import _logging as logger
from ..store._firestore import Document, FirestoreError, FirestoreRest
from ..store._segments import (
    SEGMENT_BYTES,
    Checkpoint,
    alive_write,
    checkpoint_writes,
    read_records,
)
from ._live import Live, Lives

__all__ = ["IDLE_TICKS", "Checkpoints"]

# A commit holds at most 500 writes (Firestore's limit).
_MAX_WRITES = 500
# An execution with no new events refreshes alive_at every this many passes: its lease
# stays alive (LEASE_TTL_SECONDS is far longer) for a fifth of the writes.
IDLE_TICKS = 5


class Checkpoints:
    """The instance's one checkpoint task over ``lives``; ``flush`` for an execution's
    last one. Counts what it did (``commits``, ``writes``, ``cpu_seconds``)."""

    def __init__(
        self,
        every: float,
        lives: Lives,
        db: Callable[[], FirestoreRest],
        note: Callable[[str, str | None], None] = lambda _id, _time: None,
    ) -> None:
        self._every = every
        self._lives = lives
        self._db = db
        # Told each held record's update time after a refresh: its finish is conditional
        # on it (Store.note_record_time).
        self._note = note
        self._held: set[str] = set()
        # One commit at a time: a flush never races a pass over the same execution.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._ticks = 0
        self._alive: dict[str, int] = {}
        self.commits = 0
        self.writes = 0
        self.cpu_seconds = 0.0

    def ensure_running(self) -> None:
        """Start the task on the running loop (the one that serves the requests)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def hold(self, execution_id: str) -> None:
        """Keep ``execution_id``'s record alive until ``release``: it runs outside a
        ``Live`` (its lease is proved alive by ``alive_at`` all the same)."""
        self._held.add(execution_id)
        self.ensure_running()

    def release(self, execution_id: str) -> None:
        self._held.discard(execution_id)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.tick()
            except Exception:
                logger.warn("checkpoint failed; the next pass tries again")

    async def tick(self) -> None:
        """One pass: every open execution with new events, or due for ``alive_at``."""
        self._ticks += 1
        due = [
            live
            for live in self._lives
            if not live.done
            and not live.stopped
            and not live.finishing
            and (
                live.checkpointed < len(live.events)
                or live.record_time is None
                or self._ticks - self._alive.get(live.execution_id, 0) >= IDLE_TICKS
            )
        ]
        if due:
            async with self._lock:
                await self._checkpoint(due)
        if self._held and self._ticks % IDLE_TICKS == 0:
            async with self._lock:
                await self._refresh(list(self._held))

    async def _refresh(self, held: list[str]) -> None:
        """``alive_at`` of every held record, in commits of at most 500 writes."""
        started = time.process_time()
        db = self._db()
        for at in range(0, len(held), _MAX_WRITES):
            ids = held[at : at + _MAX_WRITES]
            times = await db.commit([alive_write(db, execution_id) for execution_id in ids])
            self.commits += 1
            self.writes += len(ids)
            for execution_id, update_time in zip(ids, times, strict=False):
                # One finished meanwhile is done with: nothing to remember of it.
                if execution_id in self._held:
                    self._note(execution_id, update_time)
        self.cpu_seconds += time.process_time() - started

    async def flush(self, live: Live) -> None:
        """``live``'s events not yet committed (its last checkpoint: before its finish)."""
        async with self._lock:
            if not live.stopped and (live.checkpointed < len(live.events) or not live.record_time):
                await self._checkpoint([live])
        self._alive.pop(live.execution_id, None)

    async def _checkpoint(self, due: list[Live]) -> None:
        started = time.process_time()
        db = self._db()
        unknown = [live for live in due if live.record_time is None]
        if unknown:
            # The first checkpoint reads the record: a cancel may have come before it.
            found = await read_records(db, [live.execution_id for live in unknown])
            for live in unknown:
                _see(live, found.get(live.execution_id))
        group: list[Live] = []
        size = 0
        for live in due:
            if live.stopped:
                continue
            # The record's write and the segments' (split by size).
            new = sum(map(len, live.events[live.checkpointed :]))
            writes = 2 + new // SEGMENT_BYTES
            if group and size + writes > _MAX_WRITES:
                await self._commit(db, group)
                group, size = [], 0
            group.append(live)
            size += writes
        if group:
            await self._commit(db, group)
        self.cpu_seconds += time.process_time() - started

    async def _commit(self, db: FirestoreRest, group: list[Live], again: bool = True) -> None:
        plans = [
            Checkpoint(
                live.execution_id,
                live.checkpointed + 1,
                live.events[live.checkpointed :],
                live.record_time,
                live.first_fields,
            )
            for live in group
        ]
        writes = []
        ends: list[int] = []
        for plan in plans:
            writes += checkpoint_writes(db, plan)
            ends.append(len(writes) - 1)
        try:
            times = await db.commit(writes)
        except FirestoreError as exc:
            if not exc.conflict or not again:
                raise
            # Someone else wrote a record since this instance did: see who, then commit
            # again for the executions still going.
            found = await read_records(db, [live.execution_id for live in group])
            for live in group:
                _see(live, found.get(live.execution_id))
            going = [live for live in group if not live.stopped]
            if going:
                await self._commit(db, going, again=False)
            return
        self.commits += 1
        self.writes += len(writes)
        for live, plan, end in zip(group, plans, ends, strict=True):
            live.record_time = times[end] if end < len(times) else None
            live.checkpointed = max(live.checkpointed, plan.last_id)
            live.first_fields = None
            self._alive[live.execution_id] = self._ticks


def _see(live: Live, record: Document | None) -> None:
    """What the record says of ``live`` since this instance last wrote it."""
    data = record.data if record is not None else None
    if record is None or data is None or data.get("status") != "streaming":
        # The repair finished it (interrupted): it must not be finished again.
        logger.warn("execution given up elsewhere; stopping", execution_id=live.execution_id)
        live.stopped = True
        live.cancel("interrupted")
        return
    live.record_time = record.update_time
    checkpointed = data.get("checkpoint_id")
    if isinstance(checkpointed, int) and checkpointed > live.checkpointed:
        # A commit that failed in transit was applied after all.
        live.checkpointed = checkpointed
    if data.get("cancel_requested") and not live.cancel_requested:
        live.cancel_requested = True
        logger.info("cancel requested from another instance", execution_id=live.execution_id)
        live.cancel()
