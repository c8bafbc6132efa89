"""Batch reads that meet go to Firestore as one ``batchGet``.

At most ``in_flight`` batch reads are out at once. A read that comes while they all are
waits for the first to come back, and then goes with every other read that waited, as one
request: a burst of openings makes fewer requests, each costing the relay's loop a
client request and Firestore its own work, while a lone read is sent at once, with no
window to wait for. The documents of one ``batchGet`` are read at one time, as each
caller's were; each caller gets back exactly the documents it named. No read waits longer
than ``patience`` behind the ones out: a read stuck on a dead connection holds the others
up that long, not for the client's whole timeout. See docs/adr/1003-reads-that-meet.md.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["BatchReads"]

# The most document names one merged request carries; a read naming more goes alone, as
# it always did (a merged request is never larger than what callers sent before).
MAX_NAMES = 100
# How long a read waits behind the reads out before it goes without them: far longer than
# a round trip to Firestore, far shorter than the client's timeout.
PATIENCE = 0.5

BatchGet = Callable[[list[str]], Awaitable[list[Any]]]
Items = dict[str, Any]


def _shared(exc: Exception) -> Exception:
    return exc


class _Waiting:
    __slots__ = ("future", "names", "since")

    def __init__(self, names: Sequence[str], future: asyncio.Future[Items], since: float) -> None:
        self.names = names
        self.future = future
        self.since = since


class BatchReads:
    """``read(names)``: the answer items of a ``batchGet`` of ``names`` (``found`` or
    ``missing``), by document name, through ``send`` (one ``batchGet`` of a list of names,
    its answer items); merged with the reads that wait beside it (``in_flight`` 0: never,
    every read its own request). A merged request's failure reaches each of its callers
    as ``own(error)``: the client gives each its own copy of a refusal, so that one
    caller's traceback never grows on another's; by default the error is shared, as an
    ``asyncio`` future shares it."""

    def __init__(
        self,
        send: BatchGet,
        in_flight: int,
        *,
        max_names: int = MAX_NAMES,
        patience: float = PATIENCE,
        own: Callable[[Exception], Exception] = _shared,
    ) -> None:
        self._send = send
        self._own = own
        self._limit = in_flight
        self._max_names = max_names
        self._patience = patience
        self._busy = 0
        self._queue: collections.deque[_Waiting] = collections.deque()
        # Due when the read at the head of the queue has waited ``patience``.
        self._timer: asyncio.TimerHandle | None = None
        # The merged requests, owned here: no caller owns a request others wait on.
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """How many batch reads are out now."""
        return self._busy

    async def read(self, names: Sequence[str]) -> Items:
        if self._limit == 0:
            return _pick(_index(await self._send(list(names))), names)
        if self._busy < self._limit:
            # A free slot means nobody waits (a slot that frees sends the queue at once):
            # this read goes now, alone, from the caller's own task.
            self._busy += 1
            try:
                items = await self._send(list(names))
            finally:
                self._busy -= 1
                self._flush()
            return _pick(_index(items), names)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Items] = loop.create_future()
        self._queue.append(_Waiting(names, future, loop.time()))
        self._arm()
        # A caller that leaves cancels its future only: the merged request goes on for
        # the others, and a read still queued is left out of it.
        return await future

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue:
            due = self._queue[0].since + self._patience
            self._timer = asyncio.get_running_loop().call_at(due, self._flush, True)

    def _flush(self, overdue: bool = False) -> None:
        """Send what waits, as one request (or more, past the cap) per free slot; when
        ``overdue``, all of it whatever is out."""
        while self._queue and (overdue or self._busy < self._limit):
            batch: list[_Waiting] = []
            names: dict[str, None] = {}
            while self._queue:
                waiting = self._queue[0]
                if waiting.future.done():
                    self._queue.popleft()  # its caller left
                    continue
                fresh = [n for n in waiting.names if n not in names]
                if batch and len(names) + len(fresh) > self._max_names:
                    break
                self._queue.popleft()
                batch.append(waiting)
                names.update(dict.fromkeys(fresh))
            if not batch:
                break
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._merged(batch, list(names)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._arm()

    async def _merged(self, batch: list[_Waiting], names: list[str]) -> None:
        try:
            items = _index(await self._send(names))
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.future.cancel()
            raise
        except Exception as exc:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(self._own(exc))
        else:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_result(_pick(items, waiting.names))
        finally:
            self._busy -= 1
            self._flush()

    async def aclose(self) -> None:
        """Stop the merged requests still out (their callers see them cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


def _index(items: list[Any]) -> Items:
    out: Items = {}
    for item in items:
        found = item.get("found")
        name = found["name"] if found else item.get("missing")
        if name is not None:
            out[name] = item  # a read time alone names nothing
    return out


def _pick(items: Items, names: Sequence[str]) -> Items:
    return {name: items[name] for name in names if name in items}
