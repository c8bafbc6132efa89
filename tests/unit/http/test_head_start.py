"""What an opening starts beside its commit (ADR 1000), with the upstream played by fakes:
the stream's start runs at once, and a commit that refuses leaves nothing running and no
stream open."""

from __future__ import annotations

import asyncio

from promptstream.http._head_start import HeadStart
from promptstream.run._prepare import Execution
from promptstream.run._request import ExecuteRequest
from promptstream.store._prompts import Prompt
from support.fakes import FakeClient, FakeStream, UnitService, chunk


class SlowStart(FakeStream):
    """A stream whose upstream answers its headers only when told (or never)."""

    def __init__(self) -> None:
        super().__init__([[chunk("Hi", "stop")]])
        self.began = asyncio.Event()
        self.answer = asyncio.Event()
        self.cancelled = False

    async def start(self) -> None:
        self.began.set()
        try:
            await self.answer.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def execution() -> Execution:
    body = ExecuteRequest(prompt_id="p1")
    prompt = Prompt("p1", "alice", "hi", None, [], False)
    return Execution("alice", body, prompt, ("m",), "hi", None, {}, execution_id="e1")


def head(stream: FakeStream) -> tuple[HeadStart, FakeClient]:
    client = FakeClient(stream)
    return HeadStart(UnitService(client=client), client, streaming=True), client  # type: ignore[arg-type]


async def test_the_read_admitting_starts_the_upstream_at_once() -> None:
    stream = SlowStart()
    early, client = head(stream)
    early.admitted(execution())
    await asyncio.wait_for(stream.began.wait(), 1)
    assert len(client.calls) == 1
    stream.answer.set()
    taken, started = early.take_stream()
    await started
    assert taken is stream
    await early.aclose()
    assert not stream.closed  # taken: the steps close it, not the head start


async def test_a_refused_commit_stops_a_start_still_running_and_closes_the_stream() -> None:
    stream = SlowStart()
    early, _ = head(stream)
    early.admitted(execution())
    await asyncio.wait_for(stream.began.wait(), 1)
    early.abort()
    await early.aclose()
    assert stream.cancelled and stream.aborted and stream.closed
