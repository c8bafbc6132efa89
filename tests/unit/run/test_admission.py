"""Admission: the turns for opening an execution, and the pure per-user lease check."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time

import pytest

from promptstream import HttpError, Settings
from promptstream.run._admission import LagBound, Openings
from promptstream.store._limits import (
    UPLOADS,
    LimitExceeded,
    claim_document,
    seconds_to_utc_midnight,
    take_lease,
)

SETTINGS = Settings(
    daily_token_budget=1000,
    max_concurrent_streams=2,
    stream_lease_seconds=60,
    max_concurrent_uploads=1,
    upload_lease_seconds=30,
    max_documents_per_user=2,
)
NOW = dt.datetime(2026, 11, 30, 23, 59, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TODAY = NOW.date().isoformat()


def test_a_first_lease_starts_the_day() -> None:
    doc = take_lease(None, "e1", NOW, SETTINGS, 300)
    assert doc == {
        "leases": {"e1": NOW_MS},
        "upload_leases": {},
        "reserved": {"e1": 300},
        "day": TODAY,
        "tokens_today": 0,
    }


def test_yesterdays_count_does_not_carry_over() -> None:
    doc = take_lease({"day": "2026-11-29", "tokens_today": 999}, "e1", NOW, SETTINGS)
    assert doc["tokens_today"] == 0


def test_the_concurrency_cap_refuses_with_a_short_retry() -> None:
    held = {"leases": {"a": NOW_MS, "b": NOW_MS}, "day": TODAY}
    with pytest.raises(LimitExceeded) as refused:
        take_lease(held, "e3", NOW, SETTINGS)
    assert (refused.value.code, refused.value.status, refused.value.retry_after) == (
        "concurrency_limit",
        429,
        5,
    )


def test_leases_older_than_the_lease_time_lapse() -> None:
    held = {"leases": {"dead": NOW_MS - 61_000, "live": NOW_MS - 1000, "junk": "x"}}
    doc = take_lease(held, "e3", NOW, SETTINGS)
    assert set(doc["leases"]) == {"live", "e3"}


def test_a_used_budget_refuses_until_midnight() -> None:
    with pytest.raises(LimitExceeded) as refused:
        take_lease({"day": TODAY, "tokens_today": 1000}, "e1", NOW, SETTINGS)
    assert refused.value.code == "budget_exceeded"
    assert refused.value.retry_after == seconds_to_utc_midnight(NOW) == 61


def test_tokens_reserved_by_open_executions_count_and_then_retry_sooner() -> None:
    held = {"day": TODAY, "tokens_today": 400, "leases": {"a": NOW_MS}, "reserved": {"a": 600}}
    with pytest.raises(LimitExceeded) as refused:
        take_lease(held, "e2", NOW, SETTINGS)
    assert refused.value.code == "budget_exceeded"
    assert "reserved" in refused.value.message
    assert refused.value.retry_after == 30


def test_a_reservation_lapses_with_its_lease() -> None:
    now = dt.datetime.now(dt.UTC)
    old = int(now.timestamp() * 1000) - 61_000
    doc = {"day": now.date().isoformat(), "tokens_today": 10}
    held = {**doc, "leases": {"gone": old}, "reserved": {"gone": 5000}}
    taken = take_lease(held, "new", now, SETTINGS, 700)
    assert taken["leases"].keys() == {"new"} and taken["reserved"] == {"new": 700}
    live = {**doc, "leases": {"live": old + 60_000}, "reserved": {"live": 990}}
    with pytest.raises(LimitExceeded):
        take_lease(live, "new", now, SETTINGS, 1)


def test_midnight_is_at_least_a_second_away() -> None:
    assert seconds_to_utc_midnight(NOW.replace(second=59, microsecond=999_999)) == 1
    assert seconds_to_utc_midnight(NOW.replace(hour=0, minute=0)) == 86_401


async def test_turns_bound_the_openings_and_a_long_wait_is_503() -> None:
    openings = Openings(1, queue_timeout=0.05)

    async def second_turn() -> None:
        async with openings.turn("bob"):
            pass

    async with openings.turn("alice"):
        with pytest.raises(HttpError) as refused:
            # Bounded here too: a wait without the queue timeout would never end.
            await asyncio.wait_for(second_turn(), 5)
    assert (refused.value.status, refused.value.retry_after) == (503, 5)
    async with openings.turn("bob"):  # the turn was given back
        pass


async def test_a_waiter_gets_the_turn_when_it_is_given_back() -> None:
    openings = Openings(1, queue_timeout=5)
    order: list[str] = []

    async def hold() -> None:
        async with openings.turn("alice"):
            order.append("first in")
            await asyncio.sleep(0.02)
            order.append("first out")

    async def wait() -> None:
        await asyncio.sleep(0)
        async with openings.turn("bob"):
            order.append("second in")

    await asyncio.gather(hold(), wait())
    assert order == ["first in", "first out", "second in"]


async def test_zero_means_no_bound_across_users() -> None:
    openings = Openings(0, queue_timeout=0.01)
    async with openings.turn("a"), openings.turn("b"), openings.turn("c"):
        pass


async def test_a_user_holds_at_most_one_turn_and_others_take_the_rest() -> None:
    openings = Openings(4, queue_timeout=5, per_user=100)
    inside: list[str] = []
    release = asyncio.Event()

    async def run(uid: str) -> None:
        async with openings.turn(uid):
            inside.append(uid)
            await release.wait()

    floods = [asyncio.create_task(run("alice")) for _ in range(50)]
    await asyncio.sleep(0.01)
    bob = asyncio.create_task(run("bob"))
    await asyncio.sleep(0.01)
    # The flood's 49 other requests wait behind alice's own turn, not in bob's way.
    assert inside == ["alice", "bob"]
    release.set()
    await asyncio.wait_for(asyncio.gather(*floods, bob), 5)
    assert len(inside) == 51


async def test_turns_given_back_go_round_robin_over_users_waiting() -> None:
    openings = Openings(1, queue_timeout=5, per_user=10)
    order: list[str] = []
    queued = asyncio.Event()

    async def run(uid: str) -> None:
        async with openings.turn(uid):
            order.append(uid)
            await queued.wait()

    holder = asyncio.create_task(run("zed"))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(run("alice")) for _ in range(3)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(run(uid)) for uid in ("bob", "carol")]
    await asyncio.sleep(0)
    queued.set()
    await asyncio.wait_for(asyncio.gather(holder, *tasks), 5)
    assert order == ["zed", "alice", "bob", "carol", "alice", "alice"]


async def test_past_the_users_queue_bound_a_request_is_refused_at_once() -> None:
    openings = Openings(8, queue_timeout=5, per_user=2)
    release = asyncio.Event()

    async def run(uid: str) -> None:
        async with openings.turn(uid):
            await release.wait()

    held = [asyncio.create_task(run("alice")) for _ in range(3)]  # one turn, two waiting
    await asyncio.sleep(0.01)
    with pytest.raises(LimitExceeded) as refused:
        async with openings.turn("alice"):
            pass
    assert (refused.value.code, refused.value.status, refused.value.retry_after) == (
        "rate_limited",
        429,
        1,
    )
    async with openings.turn("bob"):  # another user is not refused
        pass
    release.set()
    await asyncio.wait_for(asyncio.gather(*held), 5)


async def test_a_waiter_that_leaves_gives_its_place_up() -> None:
    openings = Openings(1, queue_timeout=5, per_user=2)
    release = asyncio.Event()
    order: list[str] = []

    async def run(name: str) -> None:
        async with openings.turn("alice"):
            order.append(name)
            await release.wait()

    holder = asyncio.create_task(run("holder"))
    await asyncio.sleep(0)
    leaving = asyncio.create_task(run("leaving"))
    after = asyncio.create_task(run("after"))
    await asyncio.sleep(0)
    # The turn is given back in the same step as the client leaves: the turn must skip
    # the waiter that left, before it has run, and go to the next.
    release.set()
    leaving.cancel()
    await asyncio.wait_for(asyncio.gather(holder, after), 5)
    assert leaving.cancelled()
    assert order == ["holder", "after"]
    async with openings.turn("alice"):  # every turn was given back
        pass


async def test_after_a_storm_of_users_leaving_and_timing_out_every_turn_is_back() -> None:
    openings = Openings(3, queue_timeout=0.05, per_user=4)

    async def run(uid: str, hold: float) -> None:
        async with openings.turn(uid):
            await asyncio.sleep(hold)

    tasks = [asyncio.create_task(run(f"user{n % 40}", 0.001 * (n % 7))) for n in range(400)]
    await asyncio.sleep(0.01)
    for task in tasks[::5]:
        task.cancel()  # clients leaving while they wait, or while they hold a turn
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    refused = [r for r in results if isinstance(r, HttpError)]
    assert refused and {r.status for r in refused} <= {429, 503}
    assert any(r is None for r in results)
    # Every turn was given back: three users take one each at once, none waits.
    async with contextlib.AsyncExitStack() as stack:
        for uid in ("a", "b", "c"):
            await asyncio.wait_for(stack.enter_async_context(openings.turn(uid)), 0.01)


async def test_a_turn_handed_to_a_waiter_that_leaves_in_the_same_step_comes_back() -> None:
    openings = Openings(1, queue_timeout=5)
    held = openings.turn("alice")
    await held.__aenter__()

    async def wait() -> None:
        async with openings.turn("bob"):
            raise AssertionError("bob's client left: his steps never run")

    bob = asyncio.create_task(wait())
    await asyncio.sleep(0)
    await held.__aexit__(None, None, None)  # the turn goes to bob's waiter...
    bob.cancel()  # ...whose client leaves before his task has run
    with pytest.raises(asyncio.CancelledError):
        await bob
    async with asyncio.timeout(1):  # the turn bob was handed is back
        async with openings.turn("carol"):
            pass


@pytest.mark.parametrize(
    ("limit", "lag", "backlog", "after"),
    [
        (8, 0.001, True, 9),  # under the target with requests waiting: one more
        (8, 0.001, False, 8),  # nobody waits: no reason to grow
        (12, 0.001, True, 12),  # at the ceiling
        (12, 0.009, True, 6),  # over the target: halved
        (10, 0.009, False, 5),
        (5, 0.009, True, 4),  # never below the floor
        (4, 0.009, True, 4),
    ],
)
def test_the_lag_bound_grows_by_one_under_its_target_and_halves_over_it(
    limit: int, lag: float, backlog: bool, after: int
) -> None:
    bound = LagBound(4, 12, target=0.005)
    bound.limit = limit
    bound.observe(lag, backlog=backlog)
    assert bound.limit == after


async def _most_at_once(openings: Openings, users: int) -> int:
    """``users`` requests for a turn, each held for a few loop turns: the most that held
    one at the same time."""
    inside = peak = 0

    async def run(uid: str) -> None:
        nonlocal inside, peak
        async with openings.turn(uid):
            inside += 1
            peak = max(peak, inside)
            for _ in range(5):  # each grant's probe runs an iteration later
                await asyncio.sleep(0)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(run(f"user{n}") for n in range(users))), 5)
    return peak


async def test_with_a_lag_target_a_quick_loop_opens_more_at_once_up_to_the_ceiling() -> None:
    openings = Openings(2, queue_timeout=5, lag_target=10.0, ceiling=6)
    assert await _most_at_once(openings, 40) == 6
    assert openings.limit == 6


class Holders:
    """Requests that take a turn and hold it until ``release`` is set; ``inside``: the
    uids that got one."""

    def __init__(self, openings: Openings) -> None:
        self.openings = openings
        self.release = asyncio.Event()
        self.inside: list[str] = []

    async def run(self, uid: str) -> None:
        async with self.openings.turn(uid):
            self.inside.append(uid)
            await self.release.wait()


async def test_a_bound_that_grows_hands_its_new_turns_out_at_once() -> None:
    openings = Openings(2, queue_timeout=5, lag_target=10.0, ceiling=6)
    held = Holders(openings)
    release, inside, run = held.release, held.inside, held.run
    tasks = [asyncio.create_task(run(f"user{n}")) for n in range(10)]
    for _ in range(20):
        await asyncio.sleep(0)
    # No turn has been given back, yet the waiters got the turns the bound grew by.
    assert len(inside) == 6
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_requests_that_come_to_wait_later_grow_the_bound_too() -> None:
    openings = Openings(2, queue_timeout=5, lag_target=10.0, ceiling=6)
    held = Holders(openings)
    release, inside, run = held.release, held.inside, held.run
    holders = [asyncio.create_task(run(f"holder{n}")) for n in range(2)]
    for _ in range(5):  # their grants' probes have run, with nobody waiting
        await asyncio.sleep(0)
    assert openings.limit == 2
    later = [asyncio.create_task(run(f"later{n}")) for n in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(inside) == 5  # no turn was given back: each arrival's probe grew the bound
    release.set()
    await asyncio.wait_for(asyncio.gather(*holders, *later), 5)


async def test_with_a_lag_target_a_busy_loop_keeps_the_floor() -> None:
    openings = Openings(2, queue_timeout=5, lag_target=0.01, ceiling=6)
    loop = asyncio.get_running_loop()
    busy = True

    def hold_the_loop() -> None:
        # 30 ms of work in every iteration: every probe spans one of them.
        time.sleep(0.03)
        if busy:
            loop.call_soon(hold_the_loop)

    loop.call_soon(hold_the_loop)
    try:
        assert await _most_at_once(openings, 8) == 2
    finally:
        busy = False
    assert openings.limit == 2


async def test_without_a_lag_target_the_bound_is_fixed() -> None:
    openings = Openings(2, queue_timeout=5, ceiling=6)
    assert await _most_at_once(openings, 40) == 2
    assert openings.limit == 2


# -- uploads under the same rule (ADR 0308) ----------------------------------------------


def test_uploads_and_executions_share_one_budget_and_have_their_own_caps() -> None:
    held = take_lease(None, "u1", NOW, SETTINGS, 600, kind=UPLOADS)
    assert held["upload_leases"] == {"u1": NOW_MS} and held["leases"] == {}
    # An execution sees the upload's reservation; a stream slot is still free.
    with pytest.raises(LimitExceeded) as refused:
        take_lease({**held, "tokens_today": 400}, "e1", NOW, SETTINGS, 1)
    assert refused.value.code == "budget_exceeded" and refused.value.retry_after == 30
    stream = take_lease(held, "e1", NOW, SETTINGS, 100)
    assert stream["reserved"] == {"u1": 600, "e1": 100}
    # A second upload at once is over MAX_CONCURRENT_UPLOADS (1), whatever the streams.
    with pytest.raises(LimitExceeded) as refused:
        take_lease(stream, "u2", NOW, SETTINGS, 1, kind=UPLOADS)
    assert (refused.value.code, refused.value.retry_after) == ("concurrency_limit", 5)
    assert "uploads" in refused.value.message


def test_an_upload_lease_lapses_on_its_own_time() -> None:
    held = {"upload_leases": {"old": NOW_MS - 31_000}, "reserved": {"old": 999}}
    taken = take_lease(held, "u2", NOW, SETTINGS, 5, kind=UPLOADS)
    assert taken["upload_leases"] == {"u2": NOW_MS} and taken["reserved"] == {"u2": 5}


def test_a_held_lease_may_reserve_more_under_the_same_rule() -> None:
    held = take_lease(None, "u1", NOW, SETTINGS, 600, kind=UPLOADS)
    # Its own reservation does not count against it, and it is not a second upload.
    more = take_lease({**held, "day": TODAY}, "u1", NOW, SETTINGS, 5000, kind=UPLOADS, again=True)
    assert more["reserved"] == {"u1": 5000} and more["upload_leases"] == {"u1": NOW_MS}
    spent = {**more, "tokens_today": 1000}
    with pytest.raises(LimitExceeded):
        take_lease(spent, "u1", NOW, SETTINGS, 6000, kind=UPLOADS, again=True)


def test_a_new_document_over_the_cap_is_refused_and_a_known_one_is_not() -> None:
    held = {"documents": {"a": 1, "b": 2}}
    with pytest.raises(LimitExceeded) as refused:
        claim_document(held, "c", NOW, SETTINGS)
    assert (refused.value.code, refused.value.status) == ("too_many_documents", 403)
    assert claim_document(held, "a", NOW, SETTINGS) == {"a": NOW_MS, "b": 2}


def test_a_set_not_yet_kept_starts_from_the_documents_found() -> None:
    with pytest.raises(LimitExceeded):
        claim_document({"tokens_today": 3}, "c", NOW, SETTINGS, known={"a": 0, "b": 0})
    assert claim_document(None, "c", NOW, SETTINGS, known={"a": 0}) == {"a": 0, "c": NOW_MS}


def test_a_gone_document_is_dropped_unless_an_upload_in_flight_may_create_it() -> None:
    held = {"documents": {"deleted": 1, "coming": NOW_MS - 5}, UPLOADS: {"u1": NOW_MS - 5}}
    gone = {"deleted", "coming"}
    assert claim_document(held, "c", NOW, SETTINGS, gone=gone) == {
        "coming": NOW_MS - 5,
        "c": NOW_MS,
    }
