"""The few ASGI pieces the endpoints share: headers, a JSON answer, and the
watch that turns a client's disconnect into the cancellation of its request."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .._errors import HttpError

__all__ = [
    "AsgiResponse",
    "DisconnectWatch",
    "error_body",
    "header",
    "send_error",
    "send_json",
]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` in lower case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    await _send_json_body(send, status, body, headers)


async def _send_json_body(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_body(error: HttpError) -> bytes:
    """The JSON error shape, ``{"error": {"code", "message", "details"?}}``, as bytes."""
    payload: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        payload["details"] = error.details
    return json.dumps({"error": payload}, ensure_ascii=False).encode()


async def send_error(
    send: Send, error: HttpError, *, close: bool = False, allow: str = "POST"
) -> None:
    """The JSON error shape. ``close`` ends the connection after it (a body left unread
    is not drained); ``allow`` lists the methods a 405 names."""
    headers: list[tuple[bytes, bytes]] = []
    if error.retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(error.retry_after))).encode()))
    if error.status == 405:
        headers.append((b"allow", f"{allow}, OPTIONS".encode()))
    if close:
        headers.append((b"connection", b"close"))
    await _send_json_body(send, error.status, error_body(error), headers)


class DisconnectWatch:
    """Runs a request's steps as a task of their own, cancelled when the client
    disconnects: the caller (the request's own coroutine) then still finishes the record,
    with nothing left to cancel it.

    While *disarmed* (a commit that must not be cut in two), a disconnect is only noted;
    arming again cancels at once if the client has gone meanwhile. Start it once the body
    has been read: from then on the server's ``receive`` has nothing to say but
    ``http.disconnect``.
    """

    __slots__ = ("_armed", "_on_gone", "_receive", "_target", "gone")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._target: asyncio.Task[Any] | None = None
        self._armed = True
        self._on_gone: Callable[[], None] | None = None
        self.gone = False

    def on_gone(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` the moment the client is known gone (disarmed too), before
        the steps' cancellation gets to run: what must stop at once need not wait its
        turn."""
        self._on_gone = callback

    async def run(self, steps: Coroutine[Any, Any, None]) -> None:
        """Run ``steps`` until they end or the client leaves (then they are cancelled:
        their ``finally`` blocks close what they opened)."""
        loop = asyncio.get_running_loop()
        # Two tasks by hand, not a TaskGroup: the steps are cancelled from outside (give_up,
        # arm) while the watch goes on, a failing watch must not cancel the steps, and a
        # bug in the steps reaches the server as itself, not in an ExceptionGroup.
        target = self._target = loop.create_task(steps)
        watcher = loop.create_task(self._watch())
        try:
            await asyncio.wait((target,))
        except asyncio.CancelledError:  # the server itself is stopping
            target.cancel()
            await asyncio.wait((target,))
            raise
        finally:
            watcher.cancel()
        if not target.cancelled():
            target.result()  # a bug in the steps propagates to the server

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.give_up()
                return

    def give_up(self) -> None:
        """Treat the client as gone (it disconnected, or stopped reading)."""
        self.gone = True
        if self._on_gone is not None:
            # Disarmed as well: what runs beside a commit stops; the commit goes on.
            self._on_gone()
        if self._armed and self._target is not None:
            self._target.cancel()

    def disarm(self) -> None:
        self._armed = False

    def arm(self) -> None:
        self._armed = True
        if self.gone and self._target is not None:
            self._target.cancel()


class AsgiResponse(Response):
    """Hands the whole exchange to an ASGI app: what the endpoint returns to
    functions-framework, whose Starlette route then calls it with the connection."""

    def __init__(self, app: ASGIApp) -> None:  # no super().__init__: nothing is rendered
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
