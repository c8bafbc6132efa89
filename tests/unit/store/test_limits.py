"""The liveness of a stream lease (docs/adr/0601-leases-that-prove-alive.md): which leases
are worth reading, when an execution's record still shows life, and the limits document
a repair leaves. (take_lease's own rules: tests/unit/run/test_admission.py.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from promptstream import Settings
from promptstream.store._limits import (
    LimitExceeded,
    after_repair,
    shows_life,
    silent_leases,
    take_lease,
)

SETTINGS = Settings(
    max_concurrent_streams=2,
    daily_token_budget=1000,
    lease_ttl_seconds=60,
    stream_lease_seconds=3600,
)
NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TODAY = NOW.date().isoformat()


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def ms_ago(seconds: float) -> int:
    return NOW_MS - int(seconds * 1000)


def test_only_leases_older_than_the_ttl_and_not_yet_lapsed_are_worth_reading() -> None:
    limits = {
        "leases": {
            "young": ms_ago(59),
            "at_ttl": ms_ago(60),
            "old": ms_ago(600),
            "lapsed": ms_ago(3600),  # take_lease drops it anyway
            "junk": "x",
        },
        "upload_leases": {"u": ms_ago(600)},  # uploads keep their own lapse
    }
    assert silent_leases(limits, NOW, SETTINGS) == ["at_ttl", "old"]
    assert silent_leases(None, NOW, SETTINGS) == []


def streaming(**fields: Any) -> dict[str, Any]:
    return {"status": "streaming", **fields}


LIFE = [
    # (record, the lease's start in seconds ago, alive?)
    (streaming(resumable=True, alive_at=ago(59)), 600, True),
    (streaming(resumable=True, alive_at=ago(61)), 600, False),
    # Not yet checkpointed: the record's start, else the lease's.
    (streaming(resumable=True, created_at=ago(30)), 600, True),
    (streaming(resumable=True, created_at=ago(90)), 30, False),
    (streaming(resumable=True), 30, True),
    (streaming(resumable=True), 90, False),
    (streaming(resumable=True), None, False),
    # alive_at wins over created_at.
    (streaming(resumable=True, alive_at=ago(5), created_at=ago(900)), 900, True),
    # A plain execution's alive_at is refreshed as well (it is held): the same TTL.
    (streaming(alive_at=ago(59)), 600, True),
    (streaming(resumable=False, alive_at=ago(61)), 600, False),
    # A record from before liveness (no alive_at): the old lapse.
    (streaming(created_at=ago(600)), 600, True),
    (streaming(created_at=ago(3599)), 3599, True),
    (streaming(created_at=ago(3600)), 3600, False),
    # Ended, or gone: nothing to count.
    ({"status": "completed", "alive_at": ago(1)}, 1, False),
    ({"status": "interrupted"}, 1, False),
    (None, 1, False),
]


@pytest.mark.parametrize(("record", "started", "alive"), LIFE)
def test_an_execution_shows_life_while_its_last_sign_is_younger_than_its_allowance(
    record: dict[str, Any] | None, started: float | None, alive: bool
) -> None:
    start = None if started is None else ms_ago(started)
    assert shows_life(record, start, NOW, SETTINGS) is alive


def test_a_repair_takes_the_dead_leases_out_and_debits_them_today() -> None:
    limits = {
        "leases": {"dead": ms_ago(600), "gone": ms_ago(600), "live": ms_ago(1)},
        "reserved": {"dead": 400, "gone": 400, "live": 300, "u": 7},
        "upload_leases": {"u": ms_ago(1)},
        "day": TODAY,
        "tokens_today": 100,
        "open_tat": 5,
    }
    with pytest.raises(LimitExceeded):
        take_lease(limits, "new", NOW, SETTINGS, 100)
    repaired = after_repair(limits, {"dead": 50, "gone": 0}, NOW)
    assert repaired["leases"] == {"live": ms_ago(1)}
    assert repaired["reserved"] == {"live": 300, "u": 7}
    assert repaired["tokens_today"] == 150
    # The rest of the document as it was.
    assert (repaired["upload_leases"], repaired["open_tat"]) == ({"u": ms_ago(1)}, 5)
    assert take_lease(repaired, "new", NOW, SETTINGS, 100)["leases"] == {
        "live": ms_ago(1),
        "new": NOW_MS,
    }


def test_a_repair_on_a_new_day_starts_its_count_with_the_debit() -> None:
    limits = {"leases": {"dead": ms_ago(600)}, "day": "2026-12-06", "tokens_today": 999}
    repaired = after_repair(limits, {"dead": 40}, NOW)
    assert (repaired["day"], repaired["tokens_today"]) == (TODAY, 40)
