"""A scripted HTTP server on loopback for the unit layer's small client cases.

Each route answers from its queue of replies, in the order they were added, and keeps
what it was sent. It runs on the test's own loop with aiohttp's test server, so the
client under test goes through a real socket, real HTTP and its own session; nothing is
patched. (It took the place of aioresponses, which cannot build aiohttp 3.14's
responses: docs/adr/0501-locked-dependencies.md.)
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["Reply", "ScriptedServer", "Sent"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer. ``payload`` is sent as JSON; ``body`` as it is, by default labelled
    ``application/json`` as aioresponses did, so a case that sends HTML under a JSON type
    keeps doing so. ``delay`` waits before the status line."""

    status: int = 200
    payload: Any = None
    body: str | bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Sent:
    """One request as the server read it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedServer:
    """``async with ScriptedServer() as server``: ``server.url(path)`` to call,
    ``server.post(path, ...)`` to script, ``server.sent(path)`` to read back. A request
    with nothing left to answer it gets a 599 and is kept in ``unexpected``."""

    def __init__(self) -> None:
        self._replies: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._repeat: dict[tuple[str, str], Reply] = {}
        self._sent: list[Sent] = []
        self.unexpected: list[Sent] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> ScriptedServer:
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.close()

    @property
    def port(self) -> int:
        assert self._server.port is not None
        return self._server.port

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path: str, *, repeat: bool = False, **fields: Any) -> None:
        """Answer the next POST to ``path`` with ``Reply(**fields)``; with ``repeat``,
        every POST from then on that the queue does not answer."""
        reply = Reply(**fields)
        if repeat:
            self._repeat[("POST", path)] = reply
        else:
            self._replies[("POST", path)].append(reply)

    def sent(self, path: str, method: str = "POST") -> list[Sent]:
        """The requests answered on ``path``, in the order they came."""
        return [r for r in self._sent if (r.method, r.path) == (method, path)]

    def all_sent(self) -> list[Sent]:
        """Every request answered, in the order they came."""
        return list(self._sent)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        key = (request.method, request.path)
        sent = Sent(request.method, request.path, dict(request.headers), await request.read())
        queue = self._replies.get(key)
        reply = queue.popleft() if queue else self._repeat.get(key)
        if reply is None:
            self.unexpected.append(sent)
            return web.Response(status=599, text=f"nothing scripted for {key}")
        self._sent.append(sent)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.payload is not None:
            body: str | bytes = json.dumps(reply.payload)
        else:
            body = reply.body if reply.body is not None else b""
        data = body.encode() if isinstance(body, str) else body
        return web.Response(
            status=reply.status,
            body=data,
            content_type=reply.content_type,
            headers=dict(reply.headers),
        )
