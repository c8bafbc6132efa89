"""The shared ASGI pieces: DisconnectWatch with the server's ``receive`` played by a fake
(what a disconnect cancels, what it calls first, what it leaves alone while disarmed),
the header lookup, the JSON answer and the error shape."""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

import pytest

from promptstream import ErrorCode, HttpError
from promptstream.http._asgi import AsgiResponse, DisconnectWatch, header, send_error, send_json


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


async def test_while_disarmed_a_disconnect_calls_on_gone_and_arming_cancels() -> None:
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
    # What runs beside the commit (an upstream call) stops at once; the commit is not cut.
    assert seen == ["on_gone", "commit done", "cancelled"]


async def test_steps_that_end_leave_the_watch_not_gone_and_a_bug_propagates() -> None:
    watch = DisconnectWatch(Receive())

    async def fine() -> None:
        await asyncio.sleep(0)

    await watch.run(fine())
    assert not watch.gone

    async def buggy() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await DisconnectWatch(Receive()).run(buggy())


async def test_give_up_counts_a_client_that_stopped_reading_as_gone() -> None:
    watch = DisconnectWatch(Receive())
    cancelled: list[bool] = []

    async def steps() -> None:
        try:
            watch.give_up()
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    await asyncio.wait_for(watch.run(steps()), 5)
    assert watch.gone and cancelled == [True]


def scope_with(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"headers": list(headers)}


def test_header_is_the_first_value_decoded_as_latin_1() -> None:
    scope = scope_with((b"x-a", b"one"), (b"x-a", b"two"), (b"x-b", "é".encode("latin-1")))
    assert header(scope, b"x-a") == "one"
    assert header(scope, b"x-b") == "é"
    assert header(scope, b"x-c") is None


async def sent_by(coro_of_send: Any) -> tuple[int, dict[str, str], bytes]:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await coro_of_send(send)
    start, body = messages
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


async def test_send_json_writes_utf_8_with_its_length() -> None:
    status, headers, raw = await sent_by(lambda send: send_json(send, 201, {"t": "café"}))
    assert status == 201 and json.loads(raw) == {"t": "café"}
    assert "café".encode() in raw
    assert headers == {"content-type": "application/json", "content-length": str(len(raw))}


async def test_send_error_has_the_documented_shape_and_headers() -> None:
    error = HttpError(ErrorCode.BUDGET_EXCEEDED, "used up", {"left": 0}, retry_after=2.2)
    status, headers, raw = await sent_by(lambda send: send_error(send, error, close=True))
    assert status == 429
    assert json.loads(raw) == {
        "error": {"code": "budget_exceeded", "message": "used up", "details": {"left": 0}}
    }
    assert headers["retry-after"] == "3"  # whole seconds, rounded up
    assert headers["connection"] == "close"
    refused = HttpError(ErrorCode.METHOD_NOT_ALLOWED, "no")
    status, headers, raw = await sent_by(
        lambda send: send_error(send, refused, allow="POST, DELETE")
    )
    assert status == 405 and headers["allow"] == "POST, DELETE, OPTIONS"
    assert "details" not in json.loads(raw)["error"] and "connection" not in headers


async def test_asgi_response_hands_the_exchange_to_the_app() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    scope, receive, send = {"type": "http"}, object(), object()
    await AsgiResponse(app)(scope, receive, send)  # type: ignore[arg-type]
    assert seen == [(scope, receive, send)]


def test_the_asgi_types_are_starlettes_everywhere() -> None:
    # One definition of the ASGI types (starlette.types); no module defines them again.
    import pkgutil

    import starlette.types

    import promptstream

    for info in pkgutil.walk_packages(promptstream.__path__, "promptstream."):
        module = importlib.import_module(info.name)
        for name in ("Scope", "Message", "Receive", "Send", "ASGIApp"):
            if name in vars(module):
                assert vars(module)[name] is getattr(starlette.types, name), (info.name, name)
