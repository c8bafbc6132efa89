"""Batch reads that meet, merged into one ``batchGet`` (``store/_reads.py``), on a ``send``
the test answers by hand: what each request named, when it went, and what each caller got
back. The same on the emulator: tests/integration/test_firestore_rest.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from promptstream.store._firestore import FirestoreError
from promptstream.store._reads import BatchReads


class Requests:
    """A ``send`` whose requests wait until the test answers them, in order."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self._pending: list[asyncio.Future[list[Any]]] = []
        self._arrived = asyncio.Condition()

    async def send(self, names: list[str]) -> list[Any]:
        self.sent.append(list(names))
        async with self._arrived:
            self._arrived.notify_all()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        return await future

    def answer(self, index: int, *, missing: frozenset[str] = frozenset()) -> None:
        """Answer request ``index`` as Firestore would: every name it named, found or
        missing, plus a read time alone."""
        items: list[Any] = [{"readTime": "t"}]
        for name in self.sent[index]:
            if name in missing:
                items.append({"missing": name, "readTime": "t"})
            else:
                items.append({"found": {"name": name, "fields": {}, "updateTime": "u"}})
        self._pending[index].set_result(items)

    async def until(self, count: int) -> None:
        """Until ``count`` requests were sent (a liveness bound, not a timing)."""
        async with asyncio.timeout(5), self._arrived:
            await self._arrived.wait_for(lambda: len(self.sent) >= count)

    def fail(self, index: int, exc: Exception) -> None:
        self._pending[index].set_exception(exc)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def done(*tasks: asyncio.Task[Any]) -> list[Any]:
    """The tasks' results, or their errors; a read left waiting fails the test, it does not
    hang it (a liveness bound, not a timing)."""
    async with asyncio.timeout(5):
        return await asyncio.gather(*tasks, return_exceptions=True)


def found(names: list[str]) -> dict[str, Any]:
    return {n: {"found": {"name": n, "fields": {}, "updateTime": "u"}} for n in names}


async def test_a_lone_read_is_sent_at_once() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1)
    task = asyncio.create_task(reads.read(["a", "b"]))
    await asyncio.sleep(0)  # the read's first step, no more: no window waited for
    assert requests.sent == [["a", "b"]]
    requests.answer(0)
    assert await done(task) == [found(["a", "b"])]


async def test_reads_that_meet_go_as_one_request_each_getting_its_own_documents() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1)
    first = asyncio.create_task(reads.read(["p1", "l1"]))
    await settle()
    waiting = [
        asyncio.create_task(reads.read(names)) for names in (["p2", "l2"], ["p1", "l3"], ["gone"])
    ]
    await settle()
    assert requests.sent == [["p1", "l1"]]  # the others wait for the slot
    requests.answer(0)
    await settle()
    # One request for the three that waited, each name once.
    assert requests.sent[1:] == [["p2", "l2", "p1", "l3", "gone"]]
    requests.answer(1, missing=frozenset({"gone", "l3"}))
    assert await done(first) == [found(["p1", "l1"])]
    two, three, four = await done(*waiting)
    assert two == found(["p2", "l2"])
    assert three == {**found(["p1"]), "l3": {"missing": "l3", "readTime": "t"}}
    assert four == {"gone": {"missing": "gone", "readTime": "t"}}
    assert reads.in_flight == 0


async def test_a_failed_merged_request_reaches_every_caller_as_its_own_error() -> None:
    requests = Requests()
    reads = BatchReads(
        requests.send, 1, own=lambda e: e.again() if isinstance(e, FirestoreError) else e
    )
    first = asyncio.create_task(reads.read(["a"]))
    await settle()
    waiting = [asyncio.create_task(reads.read([name])) for name in ("b", "c")]
    await settle()
    requests.answer(0)
    await settle()
    refusal = FirestoreError(503, "UNAVAILABLE", "try later")
    requests.fail(1, refusal)
    await done(first)
    errors = await done(*waiting)
    assert all(isinstance(e, FirestoreError) and e.status == "UNAVAILABLE" for e in errors)
    assert errors[0] is not errors[1]  # each its own
    assert all(e.__cause__ is refusal for e in errors)


async def test_one_callers_cancellation_does_not_cancel_the_others() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1)
    first = asyncio.create_task(reads.read(["a"]))
    await settle()
    leaving, staying = (asyncio.create_task(reads.read([name])) for name in ("b", "c"))
    await settle()
    requests.answer(0)
    await settle()
    assert requests.sent[1] == ["b", "c"]
    leaving.cancel()
    await settle()
    requests.answer(1)
    assert await done(staying) == [found(["c"])]
    assert leaving.cancelled()
    await done(first)


async def test_a_read_whose_caller_left_while_it_waited_is_not_sent() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1)
    first = asyncio.create_task(reads.read(["a"]))
    await settle()
    leaving, staying = (asyncio.create_task(reads.read([name])) for name in ("b", "c"))
    await settle()
    leaving.cancel()
    await settle()
    requests.answer(0)
    await settle()
    assert requests.sent[1:] == [["c"]]
    requests.answer(1)
    assert await done(staying) == [found(["c"])]
    await done(first)


async def test_the_first_caller_leaving_still_sends_the_reads_that_waited() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1)
    first = asyncio.create_task(reads.read(["a"]))
    await settle()
    staying = asyncio.create_task(reads.read(["b"]))
    await settle()
    first.cancel()  # its own request cancelled; the slot frees for the one waiting
    await settle()
    assert requests.sent == [["a"], ["b"]]
    requests.answer(1)
    assert await done(staying) == [found(["b"])]


async def test_a_merged_request_stays_under_the_cap_and_the_rest_follow() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1, max_names=3)
    first = asyncio.create_task(reads.read(["a"]))
    await settle()
    waiting = [asyncio.create_task(reads.read(n)) for n in (["b", "c"], ["d", "e"], ["f"])]
    await settle()
    requests.answer(0)
    await settle()
    assert requests.sent[1:] == [["b", "c"]]  # "d", "e" would make four
    requests.answer(1)
    await settle()
    assert requests.sent[2:] == [["d", "e", "f"]]
    requests.answer(2)
    assert await done(first, *waiting) == [
        found(["a"]),
        found(["b", "c"]),
        found(["d", "e"]),
        found(["f"]),
    ]


@pytest.mark.parametrize("in_flight", [0, 2])
async def test_with_free_slots_or_none_reads_go_each_alone(in_flight: int) -> None:
    requests = Requests()
    reads = BatchReads(requests.send, in_flight)
    tasks = [asyncio.create_task(reads.read([name])) for name in ("a", "b")]
    await settle()
    assert requests.sent == [["a"], ["b"]]
    requests.answer(0)
    requests.answer(1)
    assert await done(*tasks) == [found(["a"]), found(["b"])]


async def test_aclose_cancels_the_merged_requests_and_their_callers() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1)
    first = asyncio.create_task(reads.read(["a"]))
    await settle()
    waiting = asyncio.create_task(reads.read(["b"]))
    await settle()
    requests.answer(0)
    await settle()
    async with asyncio.timeout(5):
        await reads.aclose()
    assert await done(first) == [found(["a"])]
    assert waiting.cancelled()


async def test_reads_that_waited_past_the_patience_go_without_the_read_still_out() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, 1, patience=0.05)
    stuck = asyncio.create_task(reads.read(["a"]))  # its connection dead: never answered
    await settle()
    waiting = [asyncio.create_task(reads.read([name])) for name in ("b", "c")]
    await requests.until(2)
    assert requests.sent == [["a"], ["b", "c"]]  # together, beside the stuck one
    requests.answer(1)
    assert await done(*waiting) == [found(["b"]), found(["c"])]
    assert not stuck.done()
    stuck.cancel()
    await done(stuck)
    assert reads.in_flight == 0
