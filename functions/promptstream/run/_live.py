"""The resumable executions of this instance (``Lives``): each generation runs in a task
of its own that outlives the connection, writing its events into a ``Live`` (the event
log, encoded, with ids), which any number of connections follow. When the last one
leaves, the generation goes on for ``RESUME_GRACE_SECONDS``, then is cancelled.

See docs/adr/0600-durable-streams.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from starlette.types import Message

from .. import _logging as logger

__all__ = ["Live", "Lives"]


class Live:
    """One resumable execution's events: ``events[i]`` is the encoded event with id
    ``i + 1`` (content events, then ``end`` or ``error``); ``head`` the ``start`` data and
    the encoded ``sources`` event, which a follower sends first."""

    __slots__ = (
        "_changed",
        "_ended",
        "abort",
        "cancel_requested",
        "checkpointed",
        "done",
        "end_reason",
        "events",
        "execution_id",
        "finishing",
        "first_fields",
        "record_time",
        "sources",
        "start",
        "status",
        "stopped",
        "subscribers",
        "task",
        "uid",
    )

    def __init__(
        self, execution_id: str, uid: str, start: dict[str, Any], sources: bytes = b""
    ) -> None:
        self.execution_id = execution_id
        self.uid = uid
        self.start = start
        self.sources = sources
        self.events: list[bytes] = []
        self.done = False
        self.subscribers = 0
        # The last event id in the segments, and the record's update time as this
        # instance last wrote it (None until the first checkpoint read it).
        self.checkpointed = 0
        self.record_time: str | None = None
        # Record fields the first checkpoint writes (the sources, for a resume elsewhere).
        self.first_fields: dict[str, Any] | None = None
        # Set by the checkpoints: another instance asked to cancel; the repair gave the
        # execution up (it must not be finished again).
        self.cancel_requested = False
        self.stopped = False
        # Its last checkpoint and finish are under way: the passes leave it alone.
        self.finishing = False
        # Why it was cut short, when it was: "cancelled" (a cancel, the grace ran out) or
        # "interrupted" (the instance's shutdown).
        self.end_reason: str | None = None
        # The record's final status, once finished.
        self.status: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.abort: Callable[[], None] | None = None
        self._changed = asyncio.Event()
        self._ended = asyncio.Event()

    async def send(self, message: Message) -> None:
        """The ASGI ``send`` the generation's ``EventStream`` writes to: events with an id
        are kept, pings and ``[DONE]`` dropped (each follower writes its own)."""
        body = message.get("body", b"")
        if body:
            # An encoded event ends at its blank line and holds no other (data lines are
            # JSON, one line each), so splitting there gives back the events written.
            for part in body.split(b"\n\n"):
                if part.startswith(b"id: "):
                    self.events.append(part + b"\n\n")
            self._wake()
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.close()

    def append(self, event: bytes) -> None:
        """One more event (a closing ``error`` written here rather than by the relay)."""
        self.events.append(event)
        self._wake()

    def close(self) -> None:
        """No more events: followers write ``[DONE]`` once they have sent them all."""
        if not self.done:
            self.done = True
            self._wake()

    def finished(self) -> None:
        """The record is final (after ``close``)."""
        self._ended.set()

    async def wait_finished(self) -> None:
        await self._ended.wait()

    async def wait(self, seconds: float) -> bool:
        """Until an event is appended or the log closes (True), or ``seconds`` pass (False)."""
        changed = self._changed
        try:
            async with asyncio.timeout(seconds):
                await changed.wait()
        except TimeoutError:
            return False
        return True

    def wake(self) -> None:
        """Wake the followers (to see the instance draining, say)."""
        self._wake()

    def _wake(self) -> None:
        # A fresh event for the next wait: every follower waiting now wakes once.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the generation now: the upstream closed at once, then its task cancelled
        (its ``finally`` finishes the record)."""
        if self.done or self.task is None or self.task.done():
            return
        if self.end_reason is None:
            self.end_reason = reason
        if self.abort is not None:
            self.abort()
        self.task.cancel()


class Lives:
    """This instance's resumable executions, by id. A finished one stays for
    ``keep_seconds`` (resumes of it then come from memory), then goes."""

    def __init__(self, grace_seconds: float, keep_seconds: float) -> None:
        self._grace = grace_seconds
        self._keep = keep_seconds
        self._lives: dict[str, Live] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.draining = False
        # The loop's time when the drain began.
        self.drained_at = 0.0

    def __iter__(self) -> Iterator[Live]:
        return iter(list(self._lives.values()))

    def __len__(self) -> int:
        return len(self._lives)

    def get(self, execution_id: str) -> Live | None:
        return self._lives.get(execution_id)

    def start(self, live: Live, generation: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``generation`` as ``live``'s task. A task of the instance rather than of
        the request: it must outlive the connection that started it."""
        self._lives[live.execution_id] = live
        task = asyncio.get_running_loop().create_task(generation)
        live.task = task
        task.add_done_callback(lambda _: self._ended(live))
        return task

    def attach(self, live: Live) -> None:
        live.subscribers += 1
        timer = self._timers.pop(live.execution_id, None)
        if timer is not None and not live.done:
            timer.cancel()
        elif timer is not None:
            self._timers[live.execution_id] = timer  # the keep timer of a finished one

    def detach(self, live: Live) -> None:
        """A follower left: with nobody left, the grace period starts."""
        live.subscribers -= 1
        if live.subscribers == 0 and not live.done and live.execution_id not in self._timers:
            self._timers[live.execution_id] = asyncio.get_running_loop().call_later(
                self._grace, self._unattended, live
            )

    def drain(self) -> None:
        """The instance is shutting down: followers tell their clients to resume."""
        self.draining = True
        self.drained_at = asyncio.get_running_loop().time()
        for live in self:
            live.wake()

    def _unattended(self, live: Live) -> None:
        self._timers.pop(live.execution_id, None)
        if live.subscribers == 0 and not live.done:
            logger.info("resumable execution unattended; cancelled", execution_id=live.execution_id)
            live.cancel()

    def _ended(self, live: Live) -> None:
        live.close()
        live.finished()
        timer = self._timers.pop(live.execution_id, None)
        if timer is not None:
            timer.cancel()
        self._timers[live.execution_id] = asyncio.get_running_loop().call_later(
            self._keep, self._forget, live.execution_id
        )

    def _forget(self, execution_id: str) -> None:
        self._timers.pop(execution_id, None)
        self._lives.pop(execution_id, None)
