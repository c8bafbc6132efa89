"""Per-user request rates: openings (both execution endpoints) and uploads, each a GCRA
(a token bucket kept as one time, the "theoretical arrival time").

Two layers hold each rate. A front bucket in this instance refuses a flood before any
Firestore round trip; the time in the user's limits document (``open_tat``,
``upload_tat``, wall-clock milliseconds) holds the rate across instances, updated by a
conditional commit: for openings the commit that takes the lease, so it costs no round
trip of its own. The GCRA itself (``gcra``, ``take_rate``) is pure and lives with the
document's fields in ``store/_limits.py``. See docs/adr/0309-per-user-rates.md.
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .. import _logging as logger
from .._config import Settings
from .._errors import ErrorCode, HttpError
from ..store._limits import (
    UPLOAD_TAT,
    Rate,
    gcra,
    opening_rate,
    take_rate,
)

__all__ = ["FrontBuckets", "Rates"]

# Users remembered by one front bucket; past it the least recently seen are forgotten
# (their next burst then reaches the document's rate, which still holds).
_FRONT_USERS = 10_000


class FrontBuckets:
    """One rate's GCRA per user in this instance, on the monotonic clock; bounded (a
    user whose bucket is full again is no different from one never seen)."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        # uid -> tat, least recently seen first (an OrderedDict: O(1) at both ends).
        self._tats: collections.OrderedDict[str, float] = collections.OrderedDict()

    def take(self, uid: str) -> None:
        """Count one request of ``uid``; ``LimitExceeded`` past the rate."""
        if self.rate.per_minute <= 0:
            return
        now = self._clock()
        tats = self._tats
        tats[uid] = gcra(tats.get(uid), now, self.rate)
        tats.move_to_end(uid)
        while len(tats) > _FRONT_USERS:
            tats.popitem(last=False)
        # The least recently seen first: those whose bucket is full again go.
        while tats:
            first = next(iter(tats))
            if tats[first] > now:
                break
            del tats[first]

    def __len__(self) -> int:
        return len(self._tats)


class RateStore(Protocol):
    """The store's commit of one rate's time in the user's limits document."""

    async def take_rate(
        self, *, uid: str, take: Callable[[Mapping[str, Any] | None], dict[str, Any]]
    ) -> None: ...


class Rates:
    """A user's request rates in this process: openings and uploads."""

    def __init__(
        self, settings: Settings, store: RateStore, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.opening_rate = opening_rate(settings)
        self.upload_rate = Rate(
            "uploads", settings.upload_rate_per_minute, settings.upload_rate_burst
        )
        self._openings = FrontBuckets(self.opening_rate, clock)
        self._uploads = FrontBuckets(self.upload_rate, clock)
        self._store = store

    def opening(self, uid: str) -> None:
        """The front bucket of an opening; the document's part is in the lease's commit
        (``take_rate(..., OPEN_TAT, ...)`` in ``Store.begin_execution``)."""
        self._openings.take(uid)

    async def upload(self, uid: str) -> None:
        """The front bucket of an upload, then the document's time (a read and a commit
        of its own: uploads are few and each costs seconds of embedding). ``HttpError``:
        429 past the rate, 503 when Firestore failed."""
        self._uploads.take(uid)
        if self.upload_rate.per_minute <= 0:
            return
        rate = self.upload_rate
        try:
            await self._store.take_rate(
                uid=uid,
                take=lambda limits: take_rate(limits, UPLOAD_TAT, dt.datetime.now(dt.UTC), rate),
            )
        except HttpError:
            raise
        except Exception:
            logger.warn("upload rate not checked", uid=uid)
            raise HttpError(
                ErrorCode.UNAVAILABLE, "The service is unavailable; try again."
            ) from None
