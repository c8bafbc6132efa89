"""The events of one stream, with the upstream and the server's ``send`` played by fakes:
what goes out, in how many writes, and what the record is told."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from promptstream import MidStreamError, SSEDecoder
from promptstream.http._events import EventStream, start_data, start_of_record
from promptstream.run._prepare import Execution
from promptstream.run._request import ExecuteRequest
from promptstream.store._prompts import Prompt
from support.fakes import FakeStream, chunk


def execution() -> Execution:
    body = ExecuteRequest(prompt_id="p1")
    prompt = Prompt("p1", "alice", "hi", None, [], False)
    return Execution("alice", body, prompt, ("m",), "hi", None, {}, execution_id="e1")


def test_a_start_rebuilt_from_the_record_says_what_the_original_said() -> None:
    ex = execution()
    original = start_data(ex)
    # The record as the opening wrote it: what a resume on another instance reads.
    record = {
        "prompt_id": ex.prompt.id,
        "prompt_version": ex.prompt.version,
        "requested_model": ex.model,
        "models": list(ex.models),
        "comparison_id": ex.request.comparison_id,
        **ex.conversation,
        "resumable": ex.request.resumable,
    }
    assert start_of_record(ex.execution_id, record) == {**original, "resumed": True}


async def relay(stream: FakeStream) -> tuple[list[bytes], EventStream]:
    writes: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            writes.append(message["body"])

    async def finish() -> None:
        pass

    events = EventStream(
        execution(), send, heartbeat=15, stall_timeout=30, on_stall=lambda: None, redact=str
    )
    await events.relay(stream, finish)  # type: ignore[arg-type]
    return writes, events


def decoded(writes: list[bytes]) -> list[tuple[str, str]]:
    decoder = SSEDecoder()
    return [(e.event, e.data) for w in writes for e in decoder.feed(w)]


async def test_chunks_of_one_read_go_out_in_one_write() -> None:
    reads = [[chunk("a"), chunk("b"), chunk("c")], [chunk("d")], [chunk("e", "stop")]]
    writes, events = await relay(FakeStream(reads))
    # One write per read that carried content, then the closing events, then the end.
    assert len(writes) == 5
    got = decoded(writes)
    contents = [json.loads(d)["content"] for e, d in got if e == "message" and d != "[DONE]"]
    assert contents == ["a", "b", "c", "d", "e"]
    assert [e for e, _ in got][-2:] == ["end", "message"] and got[-1][1] == "[DONE]"
    assert events.outcome.status == "completed" and events.outcome.output == "abcde"


async def test_chunks_read_with_an_error_go_out_before_the_error_event() -> None:
    reads = [[chunk("a")], [chunk("b"), chunk("c")]]
    # The error is an event of the second read: b and c are still unsent when it comes.
    stream = FakeStream(reads, MidStreamError("upstream broke", partial="abc"))
    writes, events = await relay(stream)
    got = decoded(writes)
    kinds = [e for e, _ in got]
    contents = [json.loads(d)["content"] for e, d in got if e == "message" and d != "[DONE]"]
    assert contents == ["a", "b", "c"]
    assert kinds[-2:] == ["error", "message"]
    assert events.outcome.status == "error" and events.outcome.output == "abc"


@pytest.mark.parametrize("size", [1, 64, 65, 200])
async def test_at_most_64_events_in_one_write(size: int) -> None:
    reads = [[chunk(str(i)) for i in range(size)], [chunk("", "stop")]]
    writes, _ = await relay(FakeStream(reads))
    per_write = [w.count(b"\n\nid: ") + w.startswith(b"id: ") for w in writes]
    assert max(per_write) <= 64
    got = decoded(writes)
    contents = [json.loads(d)["content"] for e, d in got if e == "message" and d != "[DONE]"]
    assert contents == [str(i) for i in range(size)] + [""]


async def test_the_heartbeat_has_ended_when_the_relay_returns() -> None:
    await relay(FakeStream([[chunk("a")], [chunk("b", "stop")]]))
    assert [t for t in asyncio.all_tasks() if "_ping" in repr(t.get_coro())] == []


async def test_a_bug_while_relaying_propagates_as_itself() -> None:
    stream = FakeStream([[chunk("a")], [chunk("b")]], RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        await relay(stream)


async def test_a_crash_in_the_heartbeat_fails_the_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    async def crash(self: EventStream) -> None:
        raise RuntimeError("heartbeat bug")

    monkeypatch.setattr(EventStream, "_ping", crash)
    with pytest.raises(ExceptionGroup) as caught:
        await relay(FakeStream([[chunk("a")], [chunk("b")], [chunk("c", "stop")]]))
    assert [str(e) for e in caught.value.exceptions] == ["heartbeat bug"]
