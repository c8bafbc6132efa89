"""DisconnectWatch with the server's ``receive`` played by a fake: what a disconnect
cancels, what it calls first, and what it leaves alone while disarmed."""

from __future__ import annotations

import asyncio
from typing import Any

from promptstream._asgi import DisconnectWatch


class Receive:
    """``http.disconnect`` once ``leave`` is set."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()

    async def __call__(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}


async def test_a_disconnect_calls_on_gone_at_once_then_cancels_the_steps() -> None:
    receive = Receive()
    watch = DisconnectWatch(receive)
    order: list[str] = []

    async def steps() -> None:
        watch.on_gone(lambda: order.append("on_gone"))
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            order.append("cancelled")
            raise

    async def leave_soon() -> None:
        await asyncio.sleep(0.01)
        receive.leave.set()

    leaving = asyncio.create_task(leave_soon())
    await asyncio.wait_for(watch.run(steps()), 5)
    await leaving
    assert watch.gone
    assert order == ["on_gone", "cancelled"]


async def test_while_disarmed_a_disconnect_is_noted_and_arming_cancels() -> None:
    receive = Receive()
    watch = DisconnectWatch(receive)
    seen: list[str] = []

    async def steps() -> None:
        watch.on_gone(lambda: seen.append("on_gone"))
        watch.disarm()
        receive.leave.set()
        await asyncio.sleep(0.05)  # a commit that must not be cut
        seen.append("commit done")
        watch.arm()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    await asyncio.wait_for(watch.run(steps()), 5)
    assert seen == ["commit done", "cancelled"]
