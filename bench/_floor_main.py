"""The skeleton: what the stack alone costs an execution. A function served exactly as the
product's are (functions-framework's async path, our server settings, the same endpoint
plumbing and token check) that makes the requests an execution makes and does nothing
else with them. Served by ``bench.opening_floor`` and ``bench --skeleton``; never
deployed.

The body is read as every endpoint reads it (``read_body``: its size and time bounds), and
every event goes through the product's one encoder.

- ``FLOOR_AUTH=1``: the caller's ID token checked by the product's ``Authenticator``.
- ``FLOOR_FIRESTORE=N`` (0 to 3): Firestore requests on aiohttp, each answer parsed, in
  an execution's order: a ``batchGet`` of the prompt (``FLOOR_PROMPT``, default ``p1``),
  a commit of a small record while the upstream opens (the first byte waits for it), a
  commit of the record after the stream.
- ``FLOOR_UPSTREAM=1``: a streamed chat completion, its content relayed in the product's
  events (``start``, ``message`` with ids, ``end``, ``[DONE]``) so that ``bench`` can read
  them; the prompt is ``variables.knobs`` of the body when it has one.

Without the upstream the answer is the ``start`` and ``end`` events alone.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import aiohttp

from promptstream import Settings, configure_server, https_endpoint, with_cors
from promptstream._json import dumps, loads
from promptstream._sse import encode_event
from promptstream.http._asgi import header
from promptstream.http._endpoint import endpoint, read_body
from promptstream.http._service import Service

_settings = Settings.from_env()
configure_server(_settings)

_AUTH = os.environ.get("FLOOR_AUTH") == "1"
_FIRESTORE = int(os.environ.get("FLOOR_FIRESTORE", "0"))
_UPSTREAM = os.environ.get("FLOOR_UPSTREAM") == "1"
_PROJECT = os.environ["GCLOUD_PROJECT"]
_DOCS = f"projects/{_PROJECT}/databases/(default)/documents"
_BASE = f"http://{os.environ['FIRESTORE_EMULATOR_HOST']}/v1/{_DOCS}"
# As the product's store sends them to the emulator.
_FIRESTORE_HEADERS = {"Authorization": "Bearer owner", "Content-Type": "application/json"}
_READ_BODY = dumps({"documents": [f"{_DOCS}/prompts/{os.environ.get('FLOOR_PROMPT', 'p1')}"]})
_CHAT_URL = os.environ["OPENROUTER_BASE_URL"].rstrip("/") + "/chat/completions"
_CHAT_HEADERS = {
    "Authorization": f"Bearer {os.environ['OPENROUTER_API_KEY']}",
    "Content-Type": "application/json",
}
_session: aiohttp.ClientSession | None = None


async def _firestore(verb: str, body: bytes) -> None:
    assert _session is not None
    async with _session.post(_BASE + verb, data=body, headers=_FIRESTORE_HEADERS) as resp:
        loads(await resp.read())


def _commit(state: str) -> bytes:
    name = f"{_DOCS}/floor_runs/{uuid.uuid4().hex}"
    fields = {"state": {"stringValue": state}, "uid": {"stringValue": "u"}}
    return dumps({"writes": [{"update": {"name": name, "fields": fields}}]})


_START = encode_event(b"{}", event="start")
_END = encode_event(b"{}", event="end") + encode_event("[DONE]")
_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def _start(send: Any, opening: asyncio.Task[None] | None) -> None:
    if opening is not None:
        await opening
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _START, "more_body": True})


async def _relay(asked: dict[str, Any], send: Any, opening: asyncio.Task[None] | None) -> None:
    """The upstream's content as the product's events, one per upstream chunk; the first
    byte after the record's commit."""
    assert _session is not None
    knobs = (asked.get("variables") or {}).get("knobs") or "x [[fake chunks=1 delay=0]]"
    body = dumps(
        {
            "model": "openai/gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": f"Benchmark run. {knobs}"}],
        }
    )
    n = 0
    async with _session.post(_CHAT_URL, data=body, headers=_CHAT_HEADERS) as resp:
        await _start(send, opening)
        # Line by line is enough for the fake's short lines (the product reads what arrived
        # and splits it itself, against an endless line).
        async for line in resp.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            choices = loads(line[6:]).get("choices") or []
            if not choices:
                continue
            choice = choices[0]
            content = (choice.get("delta") or {}).get("content")
            if content:
                n += 1
                data = dumps({"content": content, "finish_reason": choice.get("finish_reason")})
                event = encode_event(data, id=n)
                await send({"type": "http.response.body", "body": event, "more_body": True})


async def _handle(service: Service, scope: Any, receive: Any, send: Any) -> None:
    global _session
    raw = await read_body(receive, service.settings)
    if _AUTH:
        await service.auth.uid(header(scope, b"authorization"))
    if _session is None:
        _session = aiohttp.ClientSession()
    if _FIRESTORE >= 1:
        await _firestore(":batchGet", _READ_BODY)
    # The record's commit while the upstream opens.
    opening = (
        asyncio.create_task(_firestore(":commit", _commit("open"))) if _FIRESTORE >= 2 else None
    )
    if _UPSTREAM:
        await _relay(loads(raw) if raw else {}, send, opening)
    else:
        await _start(send, opening)
    if _FIRESTORE >= 3:
        await _firestore(":commit", _commit("done"))
    await send({"type": "http.response.body", "body": _END})


floor = https_endpoint("floor", with_cors(endpoint({"POST": _handle}), _settings))
