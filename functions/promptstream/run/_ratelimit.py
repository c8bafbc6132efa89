"""Per-user request rates: openings (both execution endpoints) and uploads, each a GCRA
(a token bucket kept as one time, the "theoretical arrival time").

Two layers hold each rate. A front bucket in this instance refuses a flood before any
Firestore round trip; the time in the user's limits document (``open_tat``,
``upload_tat``, wall-clock milliseconds) holds the rate across instances, updated by a
conditional commit: the one that takes the lease (of an execution or of an upload), so it
costs no round trip of its own. The GCRA itself (``gcra``, ``take_rate``) is pure and lives with the
document's fields in ``store/_limits.py``. See docs/adr/0309-per-user-rates.md.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from .._config import Settings
from ..store._limits import Rate, gcra, opening_rate, upload_rate

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


class Rates:
    """A user's request rates in this process: the front buckets of openings and
    uploads. The limits document's part of each is in the commit that takes its lease
    (``take_rate`` in ``Store.begin_execution`` and ``UploadStore.begin_upload``)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.opening_rate = opening_rate(settings)
        self.upload_rate = upload_rate(settings)
        self._openings = FrontBuckets(self.opening_rate, clock)
        self._uploads = FrontBuckets(self.upload_rate, clock)

    def opening(self, uid: str) -> None:
        """The front bucket of an opening: ``LimitExceeded`` past the rate."""
        self._openings.take(uid)

    def upload(self, uid: str) -> None:
        """The front bucket of an upload: ``LimitExceeded`` past the rate."""
        self._uploads.take(uid)
