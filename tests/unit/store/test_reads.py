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

    async def send(self, names: list[str]) -> list[Any]:
        self.sent.append(list(names))
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

    def cancelled(self, index: int) -> bool:
        return self._pending[index].cancelled()

    def fail(self, index: int, exc: Exception) -> None:
        self._pending[index].set_exception(exc)


async def settle() -> None:
    """A few turns of the loop, and no time: nothing here waits for a timer."""
    for _ in range(5):
        await asyncio.sleep(0)


async def done(*tasks: asyncio.Task[Any]) -> list[Any]:
    """The tasks' results, or their errors; a read left waiting fails the test, it does not
    hang it (a liveness bound, not a timing)."""
    async with asyncio.timeout(5):
        return await asyncio.gather(*tasks, return_exceptions=True)


def found(names: list[str]) -> dict[str, Any]:
    return {n: {"found": {"name": n, "fields": {}, "updateTime": "u"}} for n in names}


def reads_at_once(reads: BatchReads, *asked: list[str]) -> list[asyncio.Task[Any]]:
    """Reads asked for in one turn of the loop (the tasks start in the next, together)."""
    return [asyncio.create_task(reads.read(names)) for names in asked]


async def test_a_lone_read_is_sent_at_the_end_of_its_turn_without_a_window() -> None:
    requests = Requests()
    reads = BatchReads(requests.send)
    [task] = reads_at_once(reads, ["a", "b"])
    await settle()  # turns of the loop, no time: a window of any length has not passed
    assert requests.sent == [["a", "b"]]
    requests.answer(0)
    assert await done(task) == [found(["a", "b"])]


async def test_reads_of_one_turn_go_as_one_request_each_getting_its_own_documents() -> None:
    requests = Requests()
    reads = BatchReads(requests.send)
    tasks = reads_at_once(reads, ["p1", "l1"], ["p2", "l2"], ["p1", "l3"], ["gone"])
    await settle()
    assert requests.sent == [["p1", "l1", "p2", "l2", "l3", "gone"]]  # each name once
    requests.answer(0, missing=frozenset({"gone", "l3"}))
    one, two, three, four = await done(*tasks)
    assert one == found(["p1", "l1"])
    assert two == found(["p2", "l2"])
    assert three == {**found(["p1"]), "l3": {"missing": "l3", "readTime": "t"}}
    assert four == {"gone": {"missing": "gone", "readTime": "t"}}


async def test_reads_of_later_turns_go_without_waiting_for_the_first() -> None:
    requests = Requests()
    reads = BatchReads(requests.send)
    first = reads_at_once(reads, ["a"], ["b"])
    await settle()
    second = reads_at_once(reads, ["c"])
    await settle()
    assert requests.sent == [["a", "b"], ["c"]]  # the first still out
    requests.answer(1)
    requests.answer(0)
    assert await done(*first, *second) == [found(["a"]), found(["b"]), found(["c"])]


async def test_a_failed_merged_request_reaches_every_caller_as_its_own_error() -> None:
    requests = Requests()
    reads = BatchReads(
        requests.send, own=lambda e: e.again() if isinstance(e, FirestoreError) else e
    )
    tasks = reads_at_once(reads, ["a"], ["b"])
    await settle()
    refusal = FirestoreError(503, "UNAVAILABLE", "try later")
    requests.fail(0, refusal)
    errors = await done(*tasks)
    assert all(isinstance(e, FirestoreError) and e.status == "UNAVAILABLE" for e in errors)
    assert errors[0] is not errors[1]  # each its own
    assert all(e.__cause__ is refusal for e in errors)


async def test_one_callers_cancellation_does_not_cancel_the_others() -> None:
    requests = Requests()
    reads = BatchReads(requests.send)
    leaving, staying = reads_at_once(reads, ["b"], ["c"])
    await settle()
    assert requests.sent == [["b", "c"]]
    leaving.cancel()
    await settle()
    requests.answer(0)
    assert await done(staying) == [found(["c"])]
    assert leaving.cancelled()


async def test_a_read_whose_caller_left_before_it_was_sent_is_left_out() -> None:
    requests = Requests()
    reads = BatchReads(requests.send)
    leaving, staying, other = reads_at_once(reads, ["b"], ["c"], ["d"])
    await asyncio.sleep(0)  # the three asked; their turn has not ended
    leaving.cancel()
    await settle()
    assert requests.sent == [["c", "d"]]
    requests.answer(0)
    assert await done(staying, other) == [found(["c"]), found(["d"])]


async def test_a_merged_request_stays_under_the_cap_and_the_rest_go_beside_it() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, max_names=3)
    tasks = reads_at_once(reads, ["a"], ["b", "c"], ["d", "e"], ["f"], ["a", "b", "c", "d"])
    await settle()
    # "d", "e" would make four; a read naming four goes alone, as it always did.
    assert requests.sent == [["a", "b", "c"], ["d", "e", "f"], ["a", "b", "c", "d"]]
    for index in range(3):
        requests.answer(index)
    assert await done(*tasks) == [
        found(["a"]),
        found(["b", "c"]),
        found(["d", "e"]),
        found(["f"]),
        found(["a", "b", "c", "d"]),
    ]


async def test_without_merging_each_read_goes_alone() -> None:
    requests = Requests()
    reads = BatchReads(requests.send, merge=False)
    tasks = reads_at_once(reads, ["a"], ["b"])
    await settle()
    assert requests.sent == [["a"], ["b"]]
    requests.answer(0)
    requests.answer(1)
    assert await done(*tasks) == [found(["a"]), found(["b"])]


async def test_aclose_cancels_the_merged_requests_and_their_callers() -> None:
    requests = Requests()
    reads = BatchReads(requests.send)
    tasks = reads_at_once(reads, ["a"], ["b"])
    await settle()
    async with asyncio.timeout(5):
        await reads.aclose()
    await done(*tasks)
    assert all(task.cancelled() for task in tasks)


@pytest.mark.parametrize("merge", [True, False])
async def test_a_lone_callers_cancellation_cancels_its_own_request(merge: bool) -> None:
    requests = Requests()
    reads = BatchReads(requests.send, merge=merge)
    [task] = reads_at_once(reads, ["a"])
    await settle()
    task.cancel()
    await done(task)
    assert requests.sent == [["a"]]
    assert task.cancelled() and requests.cancelled(0)
