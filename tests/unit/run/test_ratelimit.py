"""The per-user rate rule (GCRA): a burst, then a steady refill; a clock gone backwards;
a limits document without the rate's field; the front bucket's memory bound; the two
layers of an upload's rate."""

from __future__ import annotations

import datetime as dt

import pytest

from promptstream import Settings
from promptstream.run._ratelimit import FrontBuckets, Rates
from promptstream.store._limits import (
    OPEN_TAT,
    UPLOAD_TAT,
    LimitExceeded,
    Rate,
    gcra,
    take_rate,
    upload_rate,
)

# One request every 2 s once the burst of 3 is spent.
RATE = Rate("requests", per_minute=30, burst=3)
NOW = dt.datetime(2026, 12, 7, 10, 0, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def passes(tat: float | None, now: float, rate: Rate = RATE) -> bool:
    try:
        gcra(tat, now, rate)
    except LimitExceeded:
        return False
    return True


def run(times: list[float], rate: Rate = RATE) -> list[bool]:
    """Which of requests at ``times`` pass, the time kept as GCRA keeps it."""
    tat: float | None = None
    out = []
    for now in times:
        try:
            tat = gcra(tat, now, rate)
        except LimitExceeded:
            out.append(False)
        else:
            out.append(True)
    return out


def test_a_burst_passes_at_once_and_the_next_is_refused() -> None:
    assert run([100.0] * 5) == [True, True, True, False, False]


def test_the_bucket_refills_one_request_per_interval() -> None:
    times = [100.0] * 3 + [101.0, 102.0, 103.0, 104.0, 104.0]
    assert run(times) == [True, True, True, False, True, False, True, False]


def test_an_idle_user_gets_the_whole_burst_back_and_no_more() -> None:
    assert run([100.0] * 3 + [1000.0] * 4) == [True] * 3 + [True] * 3 + [False]


def test_a_refusal_says_when_to_come_back() -> None:
    tat = 100.0
    for _ in range(3):
        tat = gcra(tat, 100.0, RATE)
    with pytest.raises(LimitExceeded) as refused:
        gcra(tat, 100.0, RATE)
    error = refused.value
    assert (error.code, error.status, error.retry_after) == ("rate_limited", 429, 2)
    assert "3 at once" in error.message and "30 a minute" in error.message
    assert passes(tat, 102.0)  # and it does pass then


def test_a_clock_gone_back_a_little_is_waited_out() -> None:
    # Written by an instance whose clock is 5 s ahead: the burst spent at 100 there.
    tat = 100.0 + 3 * 2.0
    assert not passes(tat, 95.0)
    with pytest.raises(LimitExceeded) as refused:
        gcra(tat, 95.0, RATE)
    assert refused.value.retry_after == 7
    assert passes(tat, 102.0)


def test_a_clock_gone_far_back_never_shuts_the_user_out() -> None:
    # A time an hour ahead of any empty bucket: one request passes, then the rate holds.
    far = 100.0 + 3600.0
    assert passes(far, 100.0)
    tat = gcra(far, 100.0, RATE)
    assert tat == 100.0 + 3 * 2.0  # an empty bucket, no further ahead
    assert not passes(tat, 100.0)
    assert passes(tat, 102.0)


def test_a_document_without_the_field_is_a_full_bucket() -> None:
    for limits in (None, {}, {"leases": {}, "day": "2026-12-07", "tokens_today": 5}):
        assert take_rate(limits, OPEN_TAT, NOW, RATE) == {OPEN_TAT: NOW_MS + 2000}


def test_junk_in_the_field_is_a_full_bucket() -> None:
    for junk in ("soon", True, -5, 0, 1.5e12, 1e15, None):
        assert take_rate({OPEN_TAT: junk}, OPEN_TAT, NOW, RATE) == {OPEN_TAT: NOW_MS + 2000}


def test_the_documents_time_is_kept_in_milliseconds_and_refuses_past_the_burst() -> None:
    limits: dict[str, int] = {}
    for _ in range(3):
        limits = take_rate(limits, OPEN_TAT, NOW, RATE)
    assert limits == {OPEN_TAT: NOW_MS + 6000}
    with pytest.raises(LimitExceeded):
        take_rate(limits, OPEN_TAT, NOW, RATE)
    later = NOW + dt.timedelta(seconds=2)
    assert take_rate(limits, OPEN_TAT, later, RATE) == {OPEN_TAT: NOW_MS + 8000}


def test_a_rate_of_zero_is_no_limit_and_writes_nothing() -> None:
    off = Rate("requests", per_minute=0, burst=1)
    assert take_rate({OPEN_TAT: NOW_MS + 10**9}, OPEN_TAT, NOW, off) == {}
    bucket = FrontBuckets(off, clock=lambda: 0.0)
    for _ in range(100):
        bucket.take("alice")
    assert len(bucket) == 0


def test_the_front_bucket_holds_per_user_on_its_clock() -> None:
    now = [0.0]
    bucket = FrontBuckets(RATE, clock=lambda: now[0])
    for _ in range(3):
        bucket.take("alice")
    with pytest.raises(LimitExceeded):
        bucket.take("alice")
    bucket.take("bob")  # another user's bucket is full
    now[0] = 2.0
    bucket.take("alice")


def test_the_front_bucket_forgets_users_whose_bucket_is_full_again() -> None:
    now = [0.0]
    bucket = FrontBuckets(RATE, clock=lambda: now[0])
    for n in range(1000):
        bucket.take(f"user{n}")
    assert len(bucket) == 1000
    now[0] = 10.0  # every bucket has refilled
    bucket.take("late")
    assert len(bucket) == 1


def test_the_settings_defaults_make_a_sane_rate() -> None:
    settings = Settings()
    assert 1 <= settings.open_rate_burst <= settings.open_rate_per_minute <= 600
    assert 1 <= settings.upload_rate_burst <= settings.upload_rate_per_minute <= 600


UPLOADS = Settings(upload_rate_burst=2, upload_rate_per_minute=1)


def test_an_upload_past_the_burst_is_refused_by_the_front_bucket() -> None:
    rates = Rates(UPLOADS, clock=lambda: 0.0)
    rates.upload("alice")
    rates.upload("alice")
    with pytest.raises(LimitExceeded) as refused:
        rates.upload("alice")
    assert refused.value.code == "rate_limited" and refused.value.retry_after == 60
    rates.upload("bob")


def test_the_documents_upload_time_refuses_what_this_instance_has_not_seen() -> None:
    now = dt.datetime.now(dt.UTC)
    ahead = {UPLOAD_TAT: int((now.timestamp() + 120) * 1000)}
    with pytest.raises(LimitExceeded):  # another instance took the burst
        take_rate(ahead, UPLOAD_TAT, now, upload_rate(UPLOADS))


def test_openings_have_their_own_front_bucket() -> None:
    rates = Rates(Settings(open_rate_burst=1, open_rate_per_minute=1))
    rates.opening("alice")
    with pytest.raises(LimitExceeded):
        rates.opening("alice")
    rates.opening("bob")
