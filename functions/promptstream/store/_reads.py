"""Batch reads that meet go to Firestore as one ``batchGet``.

The reads asked for in one turn of the event loop go together, as one request, at the end
of that turn: a burst of openings makes fewer requests, each costing the relay's loop a
client request and Firestore its own work, and the busier the loop, the more reads share a
turn. No read waits for another to come back, nor for a window of time: a lone read goes
at the end of its turn, from its caller's own task. The documents of one ``batchGet`` are
read at one time, as each caller's were; each caller gets back exactly the documents it
named. See docs/adr/1003-reads-that-meet.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["BatchReads"]

# The most document names one merged request carries; a read naming more goes alone, as
# it always did (a merged request is never larger than what callers sent before).
MAX_NAMES = 100

BatchGet = Callable[[list[str]], Awaitable[list[Any]]]
Items = dict[str, Any]


def _shared(exc: Exception) -> Exception:
    return exc


class _Waiting:
    __slots__ = ("future", "names")

    def __init__(self, names: Sequence[str], future: asyncio.Future[Items | None]) -> None:
        self.names = names
        # Its documents, or None: it is alone in its turn and goes from its own task.
        self.future = future


class BatchReads:
    """``read(names)``: the answer items of a ``batchGet`` of ``names`` (``found`` or
    ``missing``), by document name, through ``send`` (one ``batchGet`` of a list of names,
    its answer items); merged with the reads asked for in the same turn of the loop
    (``merge`` off: every read its own request, at once). A merged request's failure
    reaches each of its callers as ``own(error)``: the client gives each its own copy of a
    refusal, so that one caller's traceback never grows on another's; by default the error
    is shared, as an ``asyncio`` future shares it."""

    def __init__(
        self,
        send: BatchGet,
        *,
        merge: bool = True,
        max_names: int = MAX_NAMES,
        own: Callable[[Exception], Exception] = _shared,
    ) -> None:
        self._send = send
        self._merge = merge
        self._max_names = max_names
        self._own = own
        # The reads of this turn, sent when it ends (None: none yet).
        self._turn: list[_Waiting] | None = None
        # The merged requests, owned here: no caller owns a request others wait on.
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, names: Sequence[str]) -> Items:
        if self._merge:
            loop = asyncio.get_running_loop()
            if self._turn is None:
                self._turn = []
                loop.call_soon(self._dispatch)
            future: asyncio.Future[Items | None] = loop.create_future()
            self._turn.append(_Waiting(names, future))
            # A caller that leaves cancels its future only: the merged request goes on
            # for the others, and a read not yet sent is left out of it.
            items = await future
            if items is not None:
                return items
        return _pick(_index(await self._send(list(names))), names)

    def _dispatch(self) -> None:
        waiting, self._turn = self._turn or [], None
        group: list[_Waiting] = []
        names: dict[str, None] = {}
        for read in waiting:
            if read.future.done():
                continue  # its caller left
            fresh = [n for n in read.names if n not in names]
            if group and len(names) + len(fresh) > self._max_names:
                self._send_group(group, names)
                group, names = [], {}
                fresh = list(dict.fromkeys(read.names))
            group.append(read)
            names.update(dict.fromkeys(fresh))
        if group:
            self._send_group(group, names)

    def _send_group(self, group: list[_Waiting], names: dict[str, None]) -> None:
        if len(group) == 1:
            group[0].future.set_result(None)  # alone: its caller sends it, as before
            return
        task = asyncio.get_running_loop().create_task(self._merged(group, list(names)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _merged(self, group: list[_Waiting], names: list[str]) -> None:
        try:
            items = _index(await self._send(names))
        except asyncio.CancelledError:
            for read in group:
                read.future.cancel()
            raise
        except Exception as exc:
            for read in group:
                if not read.future.done():
                    read.future.set_exception(self._own(exc))
        else:
            for read in group:
                if not read.future.done():
                    read.future.set_result(_pick(items, read.names))

    async def aclose(self) -> None:
        """Stop the merged requests still out (their callers see them cancelled)."""
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
