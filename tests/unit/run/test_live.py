"""The event log of a resumable execution and the instance's set of them: what the
generation's writes leave in the log, who wakes, and the grace after the last follower."""

from __future__ import annotations

import asyncio

from promptstream._sse import encode_comment, encode_event
from promptstream.run._live import Live, Lives


def _body(data: bytes, more: bool = True) -> dict[str, object]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_the_log_keeps_the_events_with_ids_and_drops_pings_and_done() -> None:
    async def main() -> list[bytes]:
        live = Live("e1", "alice", {"execution_id": "e1"})
        one = encode_event(b'{"content":"a"}', id=1)
        two = encode_event(b'{"content":"b\\nc"}', id=2)
        end = encode_event(b"{}", event="end", id=3)
        await live.send(_body(one + encode_comment("ping")))
        await live.send(_body(two))
        assert not live.done
        await live.send(_body(end + encode_event("[DONE]"), more=False))
        assert live.done
        return live.events

    events = asyncio.run(main())
    assert events == [
        b'id: 1\ndata: {"content":"a"}\n\n',
        b'id: 2\ndata: {"content":"b\\nc"}\n\n',
        b"id: 3\nevent: end\ndata: {}\n\n",
    ]


def test_a_waiting_follower_wakes_on_an_event_and_times_out_without_one() -> None:
    async def main() -> tuple[bool, bool]:
        live = Live("e1", "alice", {})
        idle = await live.wait(0.01)
        waiter = asyncio.create_task(live.wait(5))
        await asyncio.sleep(0)
        live.append(b"id: 1\ndata: x\n\n")
        return idle, await waiter

    assert asyncio.run(main()) == (False, True)


def test_the_generation_is_cancelled_once_nobody_is_attached_for_the_grace() -> None:
    async def main() -> tuple[bool, bool, str | None]:
        lives = Lives(grace_seconds=0.05, keep_seconds=0.05)
        live = Live("e1", "alice", {})

        async def generation() -> None:
            await asyncio.sleep(10)

        task = lives.start(live, generation())
        lives.attach(live)
        lives.detach(live)
        lives.attach(live)  # back within the grace: the timer is off
        await asyncio.sleep(0.1)
        survived = not task.done()
        lives.detach(live)
        await asyncio.sleep(0.1)
        return survived, task.cancelled(), live.end_reason

    assert asyncio.run(main()) == (True, True, "cancelled")


def test_a_finished_execution_stays_for_the_keep_time_then_goes() -> None:
    async def main() -> tuple[bool, bool, bool]:
        lives = Lives(grace_seconds=1, keep_seconds=0.05)
        live = Live("e1", "alice", {})

        async def generation() -> None:
            return None

        await lives.start(live, generation())
        await asyncio.sleep(0)
        kept = lives.get("e1") is live and live.done
        await live.wait_finished()
        await asyncio.sleep(0.1)
        return kept, lives.get("e1") is None, live.done

    assert asyncio.run(main()) == (True, True, True)


def test_cancel_closes_the_upstream_before_the_task_is_cancelled() -> None:
    async def main() -> list[str]:
        seen: list[str] = []
        lives = Lives(grace_seconds=1, keep_seconds=1)
        live = Live("e1", "alice", {})

        async def generation() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        live.abort = lambda: seen.append("aborted")
        lives.start(live, generation())
        await asyncio.sleep(0)
        live.cancel("interrupted")
        await live.wait_finished()
        seen.append(str(live.end_reason))
        return seen

    assert asyncio.run(main()) == ["aborted", "cancelled", "interrupted"]
