"""Admission: the bound on executions opening at once in this instance, and the
per-user limits (stream leases and the day's token budget) an opening must pass.

The bound: opening an execution puts Firestore round trips on the loop that relays every
open stream. A burst of a thousand new requests would queue a thousand of them ahead of
the streams' chunks, so at most ``OPEN_CONCURRENCY`` requests open at once and the rest
wait their turn, up to ``OPEN_QUEUE_TIMEOUT_SECONDS`` (then 503). See
docs/adr/0004-bound-on-openings.md.

The limits live in ``user_limits/{uid_key(uid)}``, the raw ``uid`` stored in it: a map
of leases (one per open execution, so a crashed instance's lease simply lapses) and the
day's token count, with the tokens each open execution reserved of the day's budget
(``reserved``, keyed like the leases, settled when it finishes). ``take_lease`` is pure:
given the document as read, it returns the new one or refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from . import _logging as logger
from ._config import Settings
from ._errors import ErrorCode, HttpError

__all__ = ["LimitExceeded", "Openings", "seconds_to_utc_midnight", "take_lease"]


class LimitExceeded(HttpError):
    """The user is over a per-user limit; nothing was written."""


class Openings:
    """Turns for opening an execution (``OPEN_CONCURRENCY``; 0 means no bound)."""

    def __init__(self, size: int, queue_timeout: float) -> None:
        self._turns = asyncio.Semaphore(size) if size else None
        self._queue_timeout = queue_timeout

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold a turn for the block; ``HttpError`` (503) when none came in time. A
        client that leaves while waiting cancels the wait like any other step."""
        turns = self._turns
        if turns is None:
            yield
            return
        if turns.locked():
            try:
                async with asyncio.timeout(self._queue_timeout):
                    await turns.acquire()
            except TimeoutError:
                logger.warn("open queue timeout", waited_s=self._queue_timeout)
                raise HttpError(
                    ErrorCode.UNAVAILABLE,
                    "The server is busy starting other executions; try again.",
                    retry_after=5,
                ) from None
        else:
            await turns.acquire()
        try:
            yield
        finally:
            turns.release()


def seconds_to_utc_midnight(now: dt.datetime) -> int:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def take_lease(
    limits: Mapping[str, Any] | None,
    execution_id: str,
    now: dt.datetime,
    settings: Settings,
    reserve: int = 0,
) -> dict[str, Any]:
    """The limits document with one more lease for ``execution_id``, reserving ``reserve``
    tokens of the day's budget until the execution is settled; raises ``LimitExceeded``
    when the user has too many streams, or when the tokens used today and those reserved
    by the user's other open executions already reach the budget.

    This reservation is not itself checked against what is left: a user's last request of
    the day still runs, and concurrent openings overshoot the budget by at most one
    reservation (each later one sees it). Reservations lapse with their leases.
    """
    now_ms = int(now.timestamp() * 1000)
    day = now.date().isoformat()
    lease_ms = settings.stream_lease_seconds * 1000
    data = limits or {}
    leases = {
        key: started
        for key, started in (data.get("leases") or {}).items()
        if isinstance(started, int) and now_ms - started < lease_ms
    }
    reserved = {
        key: tokens
        for key, tokens in (data.get("reserved") or {}).items()
        if key in leases and isinstance(tokens, int) and tokens > 0
    }
    used = int(data.get("tokens_today") or 0) if data.get("day") == day else 0
    if used + sum(reserved.values()) >= settings.daily_token_budget:
        raise LimitExceeded(
            ErrorCode.BUDGET_EXCEEDED,
            f"Daily token budget of {settings.daily_token_budget} is used up"
            + (" or reserved by executions still running" if reserved else ""),
            retry_after=(
                30 if used < settings.daily_token_budget else seconds_to_utc_midnight(now)
            ),
        )
    if len(leases) >= settings.max_concurrent_streams:
        raise LimitExceeded(
            ErrorCode.CONCURRENCY_LIMIT,
            f"At most {settings.max_concurrent_streams} executions may run at once",
            retry_after=5,
        )
    leases[execution_id] = now_ms
    reserved[execution_id] = max(0, reserve)
    return {"leases": leases, "reserved": reserved, "day": day, "tokens_today": used}
