"""The events of one streamed execution, written with the server's ``send``.

``start`` once the upstream accepted the request, ``sources`` (the retrieved passages)
right after it when the execution searched documents, one content event per chunk (with an
``id``), then ``end`` or ``error`` and ``data: [DONE]``; ``: ping`` comments while
nothing else has been written for ``HEARTBEAT_SECONDS``. The per-chunk path is a dict,
one JSON encoding and one ``await send``.

See docs/adr/0005-native-async-path.md (the per-chunk path) and
docs/adr/0400-model-comparison-and-fallback.md (the attempts an error names).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Send

from .._errors import ErrorCode, OpenRouterError
from .._json import dumps
from .._sse import encode_comment, encode_event
from ..run._prepare import Execution, Outcome
from ..upstream._client import ChatStream

__all__ = ["DONE", "SSE_HEADERS", "EventStream", "error_event", "start_data", "start_of_record"]

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
    (b"content-encoding", b"identity"),
]
_DONE = DONE = encode_event("[DONE]")
# At most this many events go out in one write.
_MAX_COALESCED = 64
_PING = encode_comment("ping")


def error_event(
    code: str, message: str, attempts: list[dict[str, Any]] | None = None, *, id: int
) -> bytes:
    """The ``error`` event (with the id after the last content event's) and ``[DONE]``."""
    data: dict[str, Any] = {"code": code, "message": message}
    if attempts is not None:
        data["attempts"] = attempts
    return encode_event(dumps(data), event="error", id=id) + _DONE


def redacted_attempts(
    attempts: list[dict[str, Any]], redact: Callable[[str], str]
) -> list[dict[str, Any]]:
    """``attempts`` with the API key taken out of each upstream message."""
    return [{**a, "message": redact(a["message"])} if a.get("message") else a for a in attempts]


def start_data(ex: Execution) -> dict[str, Any]:
    """The ``start`` event's data."""
    return {
        "execution_id": ex.execution_id,
        "prompt_id": ex.prompt.id,
        "prompt_version": ex.prompt.version,
        "model": ex.model,
        "models": list(ex.models),
        "comparison_id": ex.request.comparison_id,
        **ex.conversation,
        "resumable": ex.request.resumable,
    }


def start_of_record(execution_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """``start_data``'s fields, from the execution's record (a resume on an instance that
    does not hold it), with ``"resumed": true``."""
    return {
        "execution_id": execution_id,
        "prompt_id": data.get("prompt_id"),
        "prompt_version": data.get("prompt_version"),
        "model": data.get("requested_model"),
        "models": data.get("models") or [],
        "comparison_id": data.get("comparison_id"),
        "conversation_id": data.get("conversation_id"),
        "parent_execution_id": data.get("parent_execution_id"),
        "turn": data.get("turn"),
        "resumable": bool(data.get("resumable")),
        "resumed": True,
    }


class EventStream:
    """The body of one streamed execution, and what it relayed (its ``outcome``).

    ``on_stall`` is called when the client has taken no bytes for ``stall_timeout``
    seconds while a write waits: such a client is treated as gone.
    """

    __slots__ = (
        "_every",
        "_loop",
        "_on_stall",
        "_pending",
        "_redact",
        "_send",
        "_stall",
        "ex",
        "last_write",
        "outcome",
        "parts",
        "reasoning",
        "seq",
        "writing",
    )

    def __init__(
        self,
        ex: Execution,
        send: Send,
        *,
        heartbeat: float,
        stall_timeout: float,
        on_stall: Callable[[], None],
        redact: Callable[[str], str],
    ) -> None:
        self.ex = ex
        self._send = send
        self._every = heartbeat
        self._stall = stall_timeout
        self._on_stall = on_stall
        self._redact = redact
        self._loop = asyncio.get_running_loop()
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.seq = 0
        self.last_write = self._loop.time()
        self.writing = False
        # Events encoded but not yet written (see _chunks).
        self._pending: list[bytes] = []
        # Until the stream ends one way or another, it counts as cancelled.
        self.outcome = Outcome("cancelled")

    async def open(
        self, headers: list[tuple[bytes, bytes]], *, sources: list[dict[str, Any]] | None = None
    ) -> None:
        """The response head, the ``start`` event and, when given, the ``sources`` event
        (a JSON array: passage ``n`` cited as ``[n]`` is element ``n - 1``), so that the
        sources are there before the first content event."""
        start = start_data(self.ex)
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        head = encode_event(dumps(start), event="start")
        if sources is not None:
            head += encode_event(dumps(sources), event="sources")
        await self._write(head)

    async def relay(self, stream: ChatStream, finish: Callable[[], Awaitable[None]]) -> None:
        """Every chunk of ``stream``, then the closing events, then ``finish()`` (the
        record), then the end of the body: when the response is complete, so is the
        record. Upstream errors become an ``event: error``; bugs and a cancellation (the
        client left) propagate."""
        outcome = self.outcome
        failed: Exception | None = None
        # The heartbeat lives exactly as long as the relay: the group waits for it to
        # end, and a crash in it fails the relay instead of vanishing.
        async with asyncio.TaskGroup() as tasks:
            pinger = tasks.create_task(self._ping())
            try:
                try:
                    final = await self._chunks(stream)
                    status = "completed"
                except OpenRouterError as exc:
                    outcome.error = (exc.code, self._redact(exc.message))
                    attempts = redacted_attempts(stream.attempts, self._redact)
                    final = self._unsent() + error_event(*outcome.error, attempts, id=self.seq + 1)
                    status = "error"
                except Exception:  # a bug; a cancellation (the client left) is not an Exception
                    outcome.error = (ErrorCode.INTERNAL, "internal error")
                    outcome.status = "error"
                    raise
                await self._write(final)
                # Only now: a client that left before the closing events counts as cancelled.
                outcome.status = status
            except Exception as exc:
                # Raised below, outside the group, as itself (not in an ExceptionGroup).
                failed = exc
            finally:
                pinger.cancel()
                self._settle(stream)
        if failed is not None:
            raise failed
        await finish()
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def fail(self) -> None:
        """After a bug while relaying (already logged): the error event, if the client can
        still take it."""
        await self._send(
            {
                "type": "http.response.body",
                "body": error_event(ErrorCode.INTERNAL, "Internal error.", id=self.seq + 1),
                "more_body": False,
            }
        )

    async def _chunks(self, stream: ChatStream) -> bytes:
        """Relay every chunk; return the closing events (with any events not yet sent).

        Chunks that arrived in one read of the upstream go out in one write: the
        server's per-write work is paid once for the lot, and nothing waits for the
        upstream while bytes are unsent.
        """
        parts = self.parts
        outcome = self.outcome
        send = self._send
        loop = self._loop
        pending = self._pending
        async for chunk in stream:
            content = chunk.content
            if content or chunk.reasoning or chunk.finish_reason:
                payload: dict[str, Any] = {
                    "content": content,
                    "finish_reason": chunk.finish_reason,
                }
                if content:
                    if outcome.first_content is None:
                        outcome.first_content = time.monotonic()
                    parts.append(content)
                if chunk.reasoning:
                    self.reasoning.append(chunk.reasoning)
                    payload["reasoning"] = chunk.reasoning
                self.seq += 1
                pending.append(encode_event(dumps(payload), id=self.seq))
            # else: the usage chunk, which goes out with the end event
            if pending and (not stream.buffered or len(pending) >= _MAX_COALESCED):
                data = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                self.writing = True
                await send({"type": "http.response.body", "body": data, "more_body": True})
                self.writing = False
                self.last_write = loop.time()
        ex = self.ex
        end = {
            "execution_id": ex.execution_id,
            "model": stream.answered_model,
            "finish_reason": stream.finish_reason,
            "usage": stream.usage,
            "generation_id": stream.generation_id,
            "attempts": redacted_attempts(stream.attempts, self._redact),
        }
        return self._unsent() + encode_event(dumps(end), event="end", id=self.seq + 1) + _DONE

    def _unsent(self) -> bytes:
        unsent = b"".join(self._pending)
        self._pending.clear()
        return unsent

    def _settle(self, stream: ChatStream) -> None:
        outcome = self.outcome
        outcome.output = "".join(self.parts)
        outcome.reasoning = "".join(self.reasoning)
        outcome.usage = stream.usage
        outcome.finish_reason = stream.finish_reason
        outcome.generation_id = stream.generation_id
        outcome.model = stream.answered_model
        outcome.attempts = redacted_attempts(stream.attempts, self._redact)

    async def _write(self, data: bytes) -> None:
        self.writing = True
        await self._send({"type": "http.response.body", "body": data, "more_body": True})
        self.writing = False
        self.last_write = self._loop.time()

    async def _ping(self) -> None:
        """A ``: ping`` once nothing has been written for the heartbeat interval; and the
        stall check, which needs a clock while a write is stuck."""
        loop = self._loop
        every = self._every
        # A write may start any time after the last one ended: wake up in time for both.
        period = min(every, self._stall)
        while True:
            await asyncio.sleep(max(0.0, self.last_write + period - loop.time()))
            idle = loop.time() - self.last_write
            if self.writing:
                if idle >= self._stall:
                    self._on_stall()
                    return
            elif idle >= every:
                await self._write(_PING)
