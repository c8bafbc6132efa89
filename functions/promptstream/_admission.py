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
``take_lease`` and ``claim_document`` are pure: given the document as read, they return
the new fields or refuse.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from . import _logging as logger
from ._config import Settings
from ._errors import ErrorCode, HttpError

__all__ = [
    "STREAMS",
    "UPLOADS",
    "LimitExceeded",
    "Openings",
    "claim_document",
    "seconds_to_utc_midnight",
    "take_lease",
]

# Settings holds the defaults; a caller that passes no value gets the deployment default.
_DEFAULTS = Settings()


class LimitExceeded(HttpError):
    """The user is over a per-user limit; nothing was written."""


class Openings:
    """Turns for opening an execution: at most ``size`` at once in this instance (0: no
    bound) and at most one per user, so that one user's backlog never holds the turns
    other users need. A user's other requests wait behind their own, at most
    ``per_user`` of them (more are refused at once); a turn given back goes to the next
    user with a request waiting, round-robin over users. A wait longer than
    ``queue_timeout`` is 503. See docs/adr/0309-per-user-rates.md."""

    def __init__(
        self, size: int, queue_timeout: float, per_user: int = _DEFAULTS.open_queue_per_user
    ) -> None:
        self._size = size
        self._free = size
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

    def _has_free(self) -> bool:
        return self._size == 0 or self._free > 0

    def _take(self, uid: str) -> None:
        self._holding.add(uid)
        self._free -= 1

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
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        if uid not in self._holding:
            self._ready.setdefault(uid, None)
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
        self._free += 1
        if uid in self._waiting:
            self._ready[uid] = None  # behind the users already waiting: round-robin
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


def seconds_to_utc_midnight(now: dt.datetime) -> int:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


# The two kinds of lease in the limits document: the map that holds them, and the
# settings that cap them and make them lapse. Both share one budget (``reserved``).
STREAMS = "leases"
UPLOADS = "upload_leases"


def _lease_rules(settings: Settings) -> dict[str, tuple[int, float, str]]:
    """Per kind: the cap, the lapse in seconds, and what a refusal calls them."""
    return {
        STREAMS: (settings.max_concurrent_streams, settings.stream_lease_seconds, "executions"),
        UPLOADS: (settings.max_concurrent_uploads, settings.upload_lease_seconds, "uploads"),
    }


def take_lease(
    limits: Mapping[str, Any] | None,
    lease_id: str,
    now: dt.datetime,
    settings: Settings,
    reserve: int = 0,
    *,
    kind: str = STREAMS,
    again: bool = False,
) -> dict[str, Any]:
    """The limits document's lease fields with one more lease of ``kind`` (an execution's
    stream, or an upload) for ``lease_id``, reserving ``reserve`` tokens of the day's
    budget until it is settled; raises ``LimitExceeded`` when the user has too many of that
    kind, or when the tokens used today and those reserved by the user's other open
    executions and uploads already reach the budget.

    The one budget rule for executions and uploads. The reservation is not itself checked
    against what is left: a user's last request of the day still runs, and concurrent
    openings overshoot the budget by at most one reservation (each later one sees it).
    Reservations lapse with their leases. ``again``: ``lease_id`` holds its lease already
    and asks for a larger reservation (an upload whose text turned out longer than its
    bytes promised): the same budget check, its own reservation left out, and no new
    lease counted.
    """
    now_ms = int(now.timestamp() * 1000)
    day = now.date().isoformat()
    data = limits or {}
    rules = _lease_rules(settings)
    live = {
        field: {
            key: started
            for key, started in (data.get(field) or {}).items()
            if isinstance(started, int) and now_ms - started < lapse * 1000
        }
        for field, (_, lapse, _) in rules.items()
    }
    held = live[kind]
    reserved = {
        key: tokens
        for key, tokens in (data.get("reserved") or {}).items()
        if any(key in leases for leases in live.values()) and isinstance(tokens, int) and tokens > 0
    }
    used = int(data.get("tokens_today") or 0) if data.get("day") == day else 0
    others = sum(tokens for key, tokens in reserved.items() if not (again and key == lease_id))
    if used + others >= settings.daily_token_budget:
        raise LimitExceeded(
            ErrorCode.BUDGET_EXCEEDED,
            f"Daily token budget of {settings.daily_token_budget} is used up"
            + (" or reserved by executions or uploads still running" if others else ""),
            retry_after=(
                30 if used < settings.daily_token_budget else seconds_to_utc_midnight(now)
            ),
        )
    cap, _, what = rules[kind]
    if not (again and lease_id in held) and len(held) >= cap:
        raise LimitExceeded(
            ErrorCode.CONCURRENCY_LIMIT,
            f"At most {cap} {what} may run at once",
            retry_after=5,
        )
    if not again or lease_id not in held:
        held[lease_id] = now_ms
    reserved[lease_id] = max(0, reserve, reserved.get(lease_id, 0) if again else 0)
    return {**live, "reserved": reserved, "day": day, "tokens_today": used}


def claim_document(
    limits: Mapping[str, Any] | None,
    document_id: str,
    now: dt.datetime,
    settings: Settings,
    *,
    known: Mapping[str, int] | None = None,
    gone: Collection[str] = (),
) -> dict[str, int]:
    """The user's set of documents (``documents``: id -> the time in ms of its latest
    upload) with ``document_id`` in it; raises ``LimitExceeded`` when it is a new one and
    the user has ``MAX_DOCUMENTS_PER_USER`` already.

    Kept in the limits document so that the claim of a new id races on that one document
    with the same conditional commit as the lease: the cap holds exactly under concurrency.
    ``known`` stands in for a document written before the set existed (the user's
    documents as a query found them). ``gone`` are ids whose document is missing or not
    the user's: dropped, unless an upload still in flight (a lease started at its stamp)
    may yet create it.
    """
    data = limits or {}
    found = data.get("documents")
    documents = found if isinstance(found, dict) else dict(known or {})
    in_flight = set((data.get(UPLOADS) or {}).values())
    owned = {
        key: stamp
        for key, stamp in documents.items()
        if isinstance(stamp, int) and not (key in gone and stamp not in in_flight)
    }
    if document_id not in owned and len(owned) >= settings.max_documents_per_user:
        raise LimitExceeded(
            ErrorCode.TOO_MANY_DOCUMENTS,
            f"You have {settings.max_documents_per_user} documents already: delete one first",
        )
    owned[document_id] = int(now.timestamp() * 1000)
    return owned
