"""The content watchdog of one streamed answer: the idle, first-chunk and hard stops,
at one clock read per chunk (docs/adr/0300-hostile-upstream.md).
"""

from __future__ import annotations

import asyncio

import aiohttp

__all__ = ["Watchdog"]


class Watchdog:
    """The content watchdog: wakes a pending read with ``TimeoutError`` once no content
    has arrived for ``idle`` seconds, or at the hard stop, or at the first-chunk stop
    while no content has arrived at all.

    Keep-alive comments do not feed it. Content only stamps ``last_content``; the timer
    is re-armed lazily when it fires early, so the per-chunk cost is one clock read, not
    a timer created and cancelled for every read. It never cancels a task, so it cannot
    hit the caller while the caller holds a chunk.
    """

    __slots__ = (
        "_first_stop",
        "_handle",
        "_hard_stop",
        "_idle",
        "_loop",
        "_reader",
        "_started",
        "last_content",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: aiohttp.StreamReader,
        idle: float,
        hard_stop: float,
        first_stop: float,
    ) -> None:
        self._loop = loop
        self._reader = reader
        self._idle = idle
        self._hard_stop = hard_stop
        self._first_stop = first_stop
        self._started = self.last_content = loop.time()
        self._handle = loop.call_at(self._due(), self._check)

    def _due(self) -> float:
        # Content moves last_content on; the first-chunk stop is read only here, on the
        # timer, so the per-chunk cost stays one clock read.
        stop = self._hard_stop
        if self.last_content == self._started:
            stop = min(stop, self._first_stop)
        return min(self.last_content + self._idle, stop)

    def _check(self) -> None:
        due = self._due()
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
        else:
            self._reader.set_exception(TimeoutError("no content from upstream in time"))

    def cancel(self) -> None:
        self._handle.cancel()
