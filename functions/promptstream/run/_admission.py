"""Admission: the bound on executions opening at once in this instance, and the
per-user limits (stream leases and the day's token budget) an opening must pass.

The bound: opening an execution puts Firestore round trips on the loop that relays every
open stream. A burst of a thousand new requests would queue a thousand of them ahead of
the streams' chunks, so at most ``OPEN_CONCURRENCY`` requests open at once and the rest
wait their turn, up to ``OPEN_QUEUE_TIMEOUT_SECONDS`` (then 503). See
docs/adr/0004-bound-on-openings.md. The turns are fair across users: each holds at most
one, and a user's other requests wait behind their own (docs/adr/0309-per-user-rates.md).

The limits live in ``user_limits/{uid_key(uid)}``, the raw ``uid`` stored in it: a map
of leases (one per open execution, so a crashed instance's lease simply lapses) and the
day's token count, with the tokens each open execution reserved of the day's budget
(``reserved``, keyed like the leases, settled when it finishes). Uploads hold leases of
their own (``upload_leases``) under the same budget, and the set of the user's documents
(``documents``) caps how many they have (docs/adr/0308-uploads-under-the-budget.md).
The pure transitions on that document (``take_lease``, ``claim_document``) live with its
fields in ``store/_limits.py``; the store's commits apply them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from .. import _logging as logger
from .._config import DEFAULTS
from .._errors import ErrorCode, HttpError
from ..store._limits import LimitExceeded

__all__ = ["LagBound", "Openings"]


class LagBound:
    """The number of turns, moved by the loop's lag: halved (not below ``low``) when a
    measured lag is over ``target`` seconds, one more (up to ``high``) when it is under
    and requests wait for a turn. Below ``low`` it never goes: the fixed bound's
    protection is the floor (docs/adr/1001-realistic-latency-and-the-bound.md)."""

    __slots__ = ("high", "limit", "low", "target")

    def __init__(self, low: int, high: int, target: float) -> None:
        self.low = low
        self.high = high
        self.target = target
        self.limit = low

    def observe(self, lag: float, *, backlog: bool) -> None:
        if lag > self.target:
            self.limit = max(self.low, self.limit // 2)
        elif backlog:
            self.limit = min(self.high, self.limit + 1)


class Openings:
    """Turns for opening an execution: at most ``size`` at once in this instance (0: no
    bound) and at most one per user, so that one user's backlog never holds the turns
    other users need. A user's other requests wait behind their own, at most
    ``per_user`` of them (more are refused at once); a turn given back goes to the next
    user with a request waiting, round-robin over users. A wait longer than
    ``queue_timeout`` is 503. See docs/adr/0309-per-user-rates.md."""

    def __init__(
        self,
        size: int,
        queue_timeout: float,
        per_user: int = DEFAULTS.open_queue_per_user,
        *,
        lag_target: float = 0.0,
        ceiling: int = 0,
    ) -> None:
        self._size = size
        self._busy = 0
        # With a lag target, the bound moves between ``size`` and ``ceiling`` with the
        # loop's lag (docs/adr/1001-realistic-latency-and-the-bound.md); without, it is fixed.
        self._bound = (
            LagBound(size, max(size, ceiling), lag_target) if size and lag_target > 0 else None
        )
        self._queue_timeout = queue_timeout
        self._per_user = per_user
        self._holding: set[str] = set()
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}
        # The users with a request waiting and no turn, in the order they are served.
        self._ready: collections.OrderedDict[str, None] = collections.OrderedDict()

    @contextlib.asynccontextmanager
    async def turn(self, uid: str) -> AsyncIterator[None]:
        """Hold a turn of ``uid`` for the block; ``HttpError``: 429 when too many of the
        user's requests wait already, 503 when no turn came in time. A client that
        leaves while waiting cancels the wait like any other step."""
        await self._acquire(uid)
        try:
            yield
        finally:
            self._give_back(uid)

    @property
    def limit(self) -> int:
        """How many turns there are now (0: no bound)."""
        return self._size if self._bound is None else self._bound.limit

    def _has_free(self) -> bool:
        return self._size == 0 or self._busy < self.limit

    def _take(self, uid: str) -> None:
        self._holding.add(uid)
        self._busy += 1
        if self._bound is not None:
            # Runs once the callbacks ready now have run: how long a chunk arriving now
            # would wait for the loop.
            loop = asyncio.get_running_loop()
            loop.call_soon(self._probe, loop.time())

    def _probe(self, since: float) -> None:
        assert self._bound is not None
        lag = asyncio.get_running_loop().time() - since
        before = self._bound.limit
        self._bound.observe(lag, backlog=bool(self._ready))
        if self._bound.limit > before:
            self._hand_out()

    async def _acquire(self, uid: str) -> None:
        if uid not in self._holding and self._has_free():
            # Nobody waits while turns are free (_give_back hands them out at once).
            self._take(uid)
            return
        queue = self._waiting.setdefault(uid, collections.deque())
        if len(queue) >= self._per_user:
            raise LimitExceeded(
                ErrorCode.RATE_LIMITED,
                f"Too many of your requests are waiting to start (at most {self._per_user})",
                retry_after=1,
            )
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        queue.append(waiter)
        if uid not in self._holding:
            self._ready.setdefault(uid, None)
            if self._bound is not None and self._bound.limit < self._bound.high:
                loop.call_soon(self._probe, loop.time())  # a backlog: may the bound grow?
        try:
            async with asyncio.timeout(self._queue_timeout):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the turn came as the time ran out: take it
            self._forget(uid, waiter)
            logger.warn("open queue timeout", waited_s=self._queue_timeout)
            raise HttpError(
                ErrorCode.UNAVAILABLE,
                "The server is busy starting other executions; try again.",
                retry_after=5,
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(uid)
            else:
                self._forget(uid, waiter)
            raise

    def _forget(self, uid: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(uid)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        if not queue:
            del self._waiting[uid]
            self._ready.pop(uid, None)

    def _give_back(self, uid: str) -> None:
        self._holding.discard(uid)
        self._busy -= 1
        if uid in self._waiting:
            self._ready[uid] = None  # behind the users already waiting: round-robin
        self._hand_out()

    def _hand_out(self) -> None:
        while self._ready and self._has_free():
            user, _ = self._ready.popitem(last=False)
            queue = self._waiting[user]
            # A waiter cancelled (its client gone, its time up) may not have run yet.
            while queue and queue[0].done():
                queue.popleft()
            if queue:
                self._take(user)
                queue.popleft().set_result(None)
            if not queue:
                del self._waiting[user]
