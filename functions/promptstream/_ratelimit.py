"""Per-user request rates: openings (both execution endpoints) and uploads, each a GCRA
(a token bucket kept as one time, the "theoretical arrival time").

Two layers hold each rate. A front bucket in this instance refuses a flood before any
Firestore round trip; the time in the user's limits document (``open_tat``,
``upload_tat``, wall-clock milliseconds) holds the rate across instances, updated by a
conditional commit: the one that takes the lease (of an execution or of an upload), so it
costs no round trip of its own. See docs/adr/0309-per-user-rates.md.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._admission import LimitExceeded
from ._config import Settings
from ._errors import ErrorCode

__all__ = [
    "OPEN_TAT",
    "UPLOAD_TAT",
    "FrontBuckets",
    "Rate",
    "Rates",
    "gcra",
    "opening_rate",
    "take_rate",
    "upload_rate",
]

OPEN_TAT = "open_tat"
UPLOAD_TAT = "upload_tat"
# Users remembered by one front bucket; past it the least recently seen are forgotten
# (their next burst then reaches the document's rate, which still holds).
_FRONT_USERS = 10_000
# Instances' clocks agree within far less than this (NTP); a time further ahead than an
# empty bucket and this is not a clock's.
_SKEW = 60.0


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` requests at once, then ``per_minute`` (0: no limit)."""

    what: str
    per_minute: int
    burst: int

    @property
    def interval(self) -> float:
        """Seconds between two requests at the sustained rate."""
        return 60.0 / self.per_minute


def gcra(tat: float | None, now: float, rate: Rate) -> float:
    """The theoretical arrival time after one more request at ``now`` (seconds, any
    clock the caller keeps to), or ``LimitExceeded`` (429 ``rate_limited``, with the
    seconds until the next request passes). ``tat`` is None for a user never seen.

    A ``tat`` ahead of an empty bucket comes from a clock gone backwards (another
    instance's, or this one's): up to ``_SKEW`` ahead it is waited out; further ahead
    (a jump, a value written by hand) it counts as a bucket with one request left, so
    that no stored value shuts a user out."""
    interval = rate.interval
    horizon = rate.burst * interval
    if tat is None or tat < now:
        start = now
    elif tat > now + horizon + _SKEW:
        start = now + horizon - interval
    else:
        start = tat
    wait = start + interval - now - horizon
    # Within the document's millisecond: the same instant (its time is rounded to one).
    if wait > 0.001:
        raise LimitExceeded(
            ErrorCode.RATE_LIMITED,
            f"Too many {rate.what}: at most {rate.burst} at once and {rate.per_minute} a minute",
            retry_after=max(1, math.ceil(wait)),
        )
    return start + interval


def opening_rate(settings: Settings) -> Rate:
    """The rate of a user's openings, both execution endpoints together."""
    return Rate("requests", settings.open_rate_per_minute, settings.open_rate_burst)


def upload_rate(settings: Settings) -> Rate:
    """The rate of a user's uploads."""
    return Rate("uploads", settings.upload_rate_per_minute, settings.upload_rate_burst)


def take_rate(
    limits: Mapping[str, Any] | None, field: str, now: dt.datetime, rate: Rate
) -> dict[str, Any]:
    """The fields to write to the limits document for one more request of ``rate``
    (``{field: milliseconds}``; nothing when the rate is off), or ``LimitExceeded``.
    Pure; a document without the field, or with junk in it, is a full bucket."""
    if rate.per_minute <= 0:
        return {}
    stored = (limits or {}).get(field)
    if not isinstance(stored, int) or isinstance(stored, bool) or stored <= 0:
        stored = None
    tat = gcra(None if stored is None else stored / 1000, now.timestamp(), rate)
    return {field: round(tat * 1000)}


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
    (``take_rate`` in ``Store.begin_execution`` and ``Store.begin_upload``)."""

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
