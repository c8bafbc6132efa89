"""The one way the tests talk HTTP to a function server.

- ``post`` / ``request``: a whole request and answer with http.client, blocking;
  ``post_prompt`` stores a prompt first and runs it.
- ``stream``: a POST read as it arrives (aiohttp), with each event's arrival time, that
  can hang up after some content, as a browser going away does.
- ``request_bytes``: a request written byte for byte, for clients on a raw socket.
- ``Call``: a ``post`` in a thread of its own, for requests that must wait side by side.

Each gives back a ``Reply`` (except ``request_bytes``): the status, the headers (names
case-insensitive), the body, and the body read as events or as a JSON error.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import aiohttp

from promptstream import ServerSentEvent, SSEDecoder

from . import FunctionServer, add_prompt, auth, body

__all__ = ["JSON", "Call", "Reply", "post", "post_prompt", "request", "request_bytes", "stream"]

JSON = {"Content-Type": "application/json"}
# After the blank line that ends an event (the server ends lines with LF alone).
_BOUNDARY = re.compile(rb"(?<=\n\n)")


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    raw: bytes
    seconds: float = 0.0
    # time.monotonic() when each event arrived (``stream`` only)
    arrivals: list[float] = field(default_factory=list)

    @cached_property
    def _decoded(self) -> tuple[list[ServerSentEvent], int]:
        decoder = SSEDecoder()
        events = [*decoder.feed(self.raw), *decoder.close()]
        return events, decoder.comments

    @property
    def events(self) -> list[ServerSentEvent]:
        return self._decoded[0]

    @property
    def comments(self) -> int:
        """Comment lines (heartbeats) in the stream."""
        return self._decoded[1]

    @property
    def kinds(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def json(self) -> Any:
        """The body as JSON, when it is JSON (else None)."""
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return None
        return json.loads(self.raw)

    def content_events(self) -> list[dict[str, Any]]:
        return [
            json.loads(e.data) for e in self.events if e.event == "message" and e.data != "[DONE]"
        ]

    def text(self) -> str:
        """The content the client saw (content events only)."""
        return "".join(e.get("content") or "" for e in self.content_events())

    def named(self, name: str) -> list[Any]:
        return [json.loads(e.data) for e in self.events if e.event == name]

    def error(self) -> dict[str, Any]:
        """The JSON error answered before any stream, checked for its documented shape."""
        assert self.headers.get("Content-Type", "").startswith("application/json"), (
            self.status,
            self.raw[:200],
        )
        doc = json.loads(self.raw)
        assert set(doc) == {"error"}, doc
        error = doc["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        assert "Traceback" not in error["message"]
        return dict(error)


def request(
    server: FunctionServer,
    method: str,
    payload: bytes | None,
    headers: Mapping[str, str],
    *,
    path: str = "/",
    timeout: float = 30,
) -> Reply:
    """One request on a fresh connection; the whole answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=payload, headers=dict(headers))
        resp = conn.getresponse()
        raw = resp.read()
        return Reply(resp.status, resp.headers, raw, time.monotonic() - started)
    finally:
        conn.close()


def post(server: FunctionServer, payload: bytes, headers: Mapping[str, str] | None = None) -> Reply:
    """POST ``payload`` (as Alice unless ``headers`` say otherwise); the whole answer."""
    return request(server, "POST", payload, auth() if headers is None else headers)


def post_prompt(
    server: FunctionServer, db: Any, content: str, variables: Mapping[str, str] | None = None
) -> Reply:
    """Store ``content`` as Alice's prompt ``p1`` and run it as Alice (``topic`` set to
    ``t`` unless ``variables`` say otherwise); the whole answer."""
    add_prompt(db, content=content)
    return post(server, body(variables=dict(variables or {"topic": "t"})))


async def stream(
    url: str,
    payload: bytes,
    headers: Mapping[str, str],
    *,
    stop_after_content: int | None = None,
    timeout: float = 30,
) -> Reply:
    """POST and read the answer as it arrives, noting when each event came; hang up after
    ``stop_after_content`` content events if given, having seen nothing after the last of
    them, even what came in the same read."""
    decoder = SSEDecoder()
    raw = b""
    arrivals: list[float] = []
    seen_content = 0
    started = now = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(url, data=payload, headers=dict(headers)) as resp:
            async for data in resp.content.iter_any():
                now = time.monotonic()
                # One event at a time (a read may hold several), as a browser's handler
                # sees them: the hang-up comes before the next one is looked at.
                pieces = _BOUNDARY.split(data)
                if raw.endswith(b"\n") and data.startswith(b"\n") and len(data) > 1:
                    # A blank line split across two reads ends an event at this byte.
                    pieces = [b"\n", *_BOUNDARY.split(data[1:])]
                for piece in pieces:
                    raw += piece
                    for ev in decoder.feed(piece):
                        arrivals.append(now)
                        if ev.event == "message" and ev.data != "[DONE]":
                            seen_content += 1
                    if stop_after_content is not None and seen_content >= stop_after_content:
                        # Leaving the block closes the connection: a browser going away.
                        return Reply(resp.status, resp.headers.copy(), raw, now - started, arrivals)
            return Reply(resp.status, resp.headers.copy(), raw, now - started, arrivals)


def request_bytes(
    payload: bytes | None = None,
    *,
    uid: str | None = "alice",
    version: str = "HTTP/1.1",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """A request as bytes, signed in as ``uid`` (None: no token): with ``payload`` and its
    Content-Length, or only the head when ``payload`` is None (``headers`` may then
    declare a length or a chunked body)."""
    fields = {"Host": "127.0.0.1", **(auth(uid) if uid else {}), **JSON, **(headers or {})}
    if payload is not None:
        fields["Content-Length"] = str(len(payload))
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return f"POST {path} {version}\r\n{head}\r\n".encode() + (payload or b"")


class Call(threading.Thread):
    """One POST of ``uid`` (its prompt ``p1``, topic ``x``) in its own thread;
    ``status``, ``headers`` and ``text`` once it is done."""

    def __init__(self, server: FunctionServer, uid: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.uid = uid
        self.status = 0
        self.headers: Any = {}
        self.text = ""
        self.start()

    def run(self) -> None:  # threading.Thread's
        got = post(self.server, body(variables={"topic": "x"}), auth(self.uid))
        self.status, self.headers, self.text = got.status, got.headers, got.raw.decode()
