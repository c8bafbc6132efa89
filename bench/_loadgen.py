"""The load generator: N concurrent SSE streams on one asyncio loop, timed per chunk.

Every content chunk the fake upstream sends is exactly ``<t:NANOS>``, its
``time.monotonic_ns()`` at send time (one clock for every process on the machine).
The client subtracts it from its own ``monotonic_ns()`` when the bytes arrive, so the
same code measures the floor (OpenRouter's SSE, straight from the fake) and the relay
(our SSE, through the function); only the event interpretation differs.
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

__all__ = ["Request", "StreamResult", "run_streams"]

Format = Literal["openrouter", "relay"]


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]
    fmt: Format


@dataclass(slots=True)
class StreamResult:
    """What one stream did. Times are ``monotonic_ns``."""

    start_ns: int = 0
    first_ns: int = 0
    end_ns: int = 0
    close_ns: int = 0
    status: int = 0
    chunks: int = 0
    done: bool = False
    finish_reason: str | None = None
    error: str | None = None
    lags_ns: array[int] = field(default_factory=lambda: array("q"))
    arrivals_ns: array[int] = field(default_factory=lambda: array("q"))
    last_stamp: int = 0

    @property
    def ttfb_ns(self) -> int | None:
        return self.first_ns - self.start_ns if self.first_ns else None


class _Blocks:
    """Splits an LF-delimited event stream into (event, id, data) triples.

    Both servers measured here end lines with LF only; comments are skipped.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes | None, bytes]]:
        buf = self._buf + data if self._buf else data
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        out: list[tuple[bytes, bytes | None, bytes]] = []
        for block in blocks:
            event = b"message"
            event_id: bytes | None = None
            lines: list[bytes] = []
            for line in block.split(b"\n"):
                if not line or line[0] == 0x3A:  # ':' comment or blank
                    continue
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    lines.append(value)
                elif name == b"event":
                    event = value
                elif name == b"id":
                    event_id = value
            if lines:
                out.append((event, event_id, b"\n".join(lines)))
        return out

    @property
    def pending(self) -> bytes:
        return self._buf


class _Protocol(Exception):
    """The stream broke the contract (order, duplicates, format)."""


def _stamp(content: Any) -> int:
    if not (isinstance(content, str) and content.startswith("<t:") and content.endswith(">")):
        raise _Protocol(f"content is not a stamp: {str(content)[:60]!r}")
    return int(content[3:-1])


class _Reader:
    """Interprets one stream's events and keeps its result up to date."""

    def __init__(self, result: StreamResult, fmt: Format) -> None:
        self.r = result
        self.relay = fmt == "relay"
        self.started = not self.relay
        self.ended = False

    def content(self, text: str, finish: str | None, now: int) -> None:
        r = self.r
        stamp = _stamp(text)
        if stamp <= r.last_stamp:
            raise _Protocol(f"stamp out of order or duplicated at chunk {r.chunks + 1}")
        r.last_stamp = stamp
        r.chunks += 1
        r.lags_ns.append(now - stamp)
        r.arrivals_ns.append(now)
        if not r.first_ns:
            r.first_ns = now
        if finish:
            r.finish_reason = finish

    def event(self, event: bytes, event_id: bytes | None, data: bytes, now: int) -> None:
        if self.r.done:
            raise _Protocol("event after [DONE]")
        if data == b"[DONE]":
            self.r.done = True
            return
        if self.relay:
            self._relay(event, event_id, data, now)
        else:
            self._openrouter(data, now)

    def _openrouter(self, data: bytes, now: int) -> None:
        obj = json.loads(data)
        if "error" in obj:
            raise _Protocol(f"in-band error: {obj['error']}")
        choices = obj.get("choices") or []
        if not choices:
            return  # the usage chunk
        choice = choices[0]
        text = (choice.get("delta") or {}).get("content")
        if text:
            self.content(text, choice.get("finish_reason"), now)

    def _relay(self, event: bytes, event_id: bytes | None, data: bytes, now: int) -> None:
        if event == b"start":
            if self.started:
                raise _Protocol("second start event")
            self.started = True
            return
        if not self.started:
            raise _Protocol(f"{event!r} before the start event")
        if event == b"error":
            raise _Protocol(f"error event: {data[:200].decode(errors='replace')}")
        if event == b"end":
            self.ended = True
            return
        if event != b"message":
            raise _Protocol(f"unexpected event {event!r}")
        if self.ended:
            raise _Protocol("content after the end event")
        if event_id is None or int(event_id) != self.r.chunks + 1:
            raise _Protocol(f"event id {event_id!r} after {self.r.chunks} chunks")
        obj = json.loads(data)
        self.content(obj.get("content"), obj.get("finish_reason"), now)


class _Gate:
    """Lets every stream leave at the same moment, once all have had their chunks.

    Leaving together keeps the client-side close times within a few milliseconds, so
    "latest upstream close minus earliest client close" bounds every stream's delay
    tightly. A stream that fails also counts as arrived, so the gate cannot hang.
    """

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.open = asyncio.Event()

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.open.set()


async def _one(
    session: aiohttp.ClientSession,
    req: Request,
    *,
    close_after: int | None,
    stream_timeout: float,
    gate: _Gate | None = None,
) -> StreamResult:
    r = StreamResult()
    r.start_ns = time.monotonic_ns()
    arrived = False
    try:
        async with asyncio.timeout(stream_timeout):
            async with session.post(req.url, data=req.body, headers=req.headers) as resp:
                r.status = resp.status
                if resp.status != 200:
                    text = (await resp.read())[:300].decode(errors="replace")
                    r.error = f"HTTP {resp.status}: {text}"
                    return r
                blocks = _Blocks()
                reader = _Reader(r, req.fmt)
                while True:
                    data = await resp.content.readany()
                    now = time.monotonic_ns()
                    if not data:
                        break
                    for event, event_id, payload in blocks.feed(data):
                        reader.event(event, event_id, payload, now)
                        if close_after is not None and r.chunks >= close_after:
                            if gate is not None:
                                arrived = True
                                gate.arrive()
                                await gate.open.wait()
                            # Leave abruptly, as a closed browser tab does.
                            r.close_ns = time.monotonic_ns()
                            resp.close()
                            return r
                if blocks.pending.strip():
                    raise _Protocol("stream ended inside an event")
                if not r.done:
                    raise _Protocol("stream ended without [DONE]")
                if req.fmt == "relay" and not reader.ended:
                    raise _Protocol("stream ended without the end event")
    except _Protocol as exc:
        r.error = f"protocol: {exc}"
    except TimeoutError:
        r.error = f"timeout after {stream_timeout}s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        r.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        r.end_ns = time.monotonic_ns()
        if gate is not None and not arrived:
            gate.arrive()
    return r


async def run_streams(
    requests: Sequence[Request],
    *,
    sequential: bool = False,
    close_after: int | None = None,
    stream_timeout: float = 120.0,
) -> list[StreamResult]:
    """Run every request (all at once, or one after another) and return their results."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    # No sock_read: aiohttp would re-arm that timer on every read; each stream's own
    # asyncio.timeout bounds it instead.
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=client_timeout, auto_decompress=False
    ) as session:
        if sequential:
            results = []
            for req in requests:
                results.append(
                    await _one(session, req, close_after=close_after, stream_timeout=stream_timeout)
                )
            return results
        gate = _Gate(len(requests)) if close_after is not None else None
        return list(
            await asyncio.gather(
                *(
                    _one(
                        session,
                        req,
                        close_after=close_after,
                        stream_timeout=stream_timeout,
                        gate=gate,
                    )
                    for req in requests
                )
            )
        )
