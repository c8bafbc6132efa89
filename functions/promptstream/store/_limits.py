"""The limits document, ``user_limits/{uid_key(uid)}``: its fields and the pure
transitions on them, which the store's conditional commits apply. Given the document as
read, ``take_lease``, ``claim_document`` and ``take_rate`` return the fields to write or
refuse with ``LimitExceeded``; they read no clock and do no I/O. The rules behind them:
docs/adr/0308-uploads-under-the-budget.md (leases, budget, documents),
docs/adr/0309-per-user-rates.md (rates) and docs/adr/0601-leases-that-prove-alive.md
(a stream lease counts while its execution shows life: ``silent_leases``, ``shows_life``,
``after_repair``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .._config import Settings
from .._errors import ErrorCode, HttpError

__all__ = [
    "OPEN_TAT",
    "STREAMS",
    "UPLOADS",
    "UPLOAD_TAT",
    "LimitExceeded",
    "Rate",
    "after_repair",
    "claim_document",
    "gcra",
    "opening_rate",
    "seconds_to_utc_midnight",
    "shows_life",
    "silent_leases",
    "take_lease",
    "take_rate",
    "upload_rate",
]


class LimitExceeded(HttpError):
    """The user is over a per-user limit; nothing was written."""


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


def silent_leases(
    limits: Mapping[str, Any] | None, now: dt.datetime, settings: Settings
) -> list[str]:
    """The stream leases ``take_lease`` still counts that started ``LEASE_TTL_SECONDS`` or
    more ago: the only ones whose records are worth reading when a limit refuses (a
    younger lease is alive whatever its record says)."""
    now_ms = int(now.timestamp() * 1000)
    ttl_ms = settings.lease_ttl_seconds * 1000
    lapse_ms = settings.stream_lease_seconds * 1000
    return [
        key
        for key, started in ((limits or {}).get(STREAMS) or {}).items()
        if isinstance(started, int) and ttl_ms <= now_ms - started < lapse_ms
    ]


def shows_life(
    record: Mapping[str, Any] | None,
    started_ms: int | None,
    now: dt.datetime,
    settings: Settings,
) -> bool:
    """Whether the execution behind a stream lease is still to be counted: its record is
    ``streaming`` and its last sign of life (``alive_at``, else the record's
    ``created_at``, else the lease's start) is younger than the silence it is allowed.

    While an execution runs, its instance refreshes ``alive_at`` every few seconds (its
    checkpoints, or the refresh of a held one), so ``LEASE_TTL_SECONDS`` of silence means
    its instance is gone. A record without ``alive_at`` (written before liveness existed)
    keeps the old lapse, ``STREAM_LEASE_SECONDS``, above the function's timeout."""
    if record is None or record.get("status") != "streaming":
        return False
    last: float | None = None
    for sign in (record.get("alive_at"), record.get("created_at")):
        if isinstance(sign, dt.datetime):
            last = sign.timestamp()
            break
    if last is None and started_ms is not None:
        last = started_ms / 1000
    if last is None:
        return False
    refreshed = record.get("resumable") is True or isinstance(record.get("alive_at"), dt.datetime)
    allowed = settings.lease_ttl_seconds if refreshed else settings.stream_lease_seconds
    return now.timestamp() - last < allowed


def after_repair(
    limits: Mapping[str, Any] | None, debits: Mapping[str, int], now: dt.datetime
) -> dict[str, Any]:
    """The limits document with the stream leases ``debits`` names gone (and their
    reservations), each one's tokens debited today: what a repair leaves for
    ``take_lease`` to decide on, and what it writes when it is committed alone."""
    data = dict(limits or {})
    day = now.date().isoformat()
    used = int(data.get("tokens_today") or 0) if data.get("day") == day else 0
    data[STREAMS] = {k: v for k, v in (data.get(STREAMS) or {}).items() if k not in debits}
    data["reserved"] = {k: v for k, v in (data.get("reserved") or {}).items() if k not in debits}
    data["day"] = day
    data["tokens_today"] = used + sum(max(0, tokens) for tokens in debits.values())
    return data


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


OPEN_TAT = "open_tat"
UPLOAD_TAT = "upload_tat"
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
