"""Resumable executions at the edge: the generation handed to the instance (``generate``),
a connection following it from memory (``follow``) or, on another instance, from its
checkpoints (``follow_checkpoints``), and the resume and cancel calls.

A follower writes the head (``start``, ``sources``), the events after the client's last
id, then the live ones, then ``[DONE]``; when the instance drains it writes
``event: resume`` and ends the body without ``[DONE]``.

See docs/adr/0600-durable-streams.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Scope, Send

from .. import _logging as logger
from .._errors import ErrorCode, HttpError, OpenRouterError
from .._json import dumps
from .._sse import encode_comment, encode_event
from ..run._live import Live
from ..run._prepare import Execution
from ..run._request import CancelRequest, ResumeRequest
from ..store._firestore import Document
from ..store._limits import shows_life
from ..store._segments import read_record, read_segments, request_cancel
from ..upstream._client import ChatStream
from ._asgi import DisconnectWatch, header, send_error, send_json
from ._events import DONE, SSE_HEADERS, EventStream, error_event, start_data, start_of_record
from ._service import Service, current_service

__all__ = ["cancel", "drain", "generate", "resume"]

_PING = encode_comment("ping")
_FINAL = frozenset({"completed", "error", "cancelled", "interrupted"})
_NOT_FOUND = HttpError(ErrorCode.EXECUTION_NOT_FOUND, "Execution not found.")
_ENDED = {
    "cancelled": (ErrorCode.CANCELLED, "The execution was cancelled."),
    "interrupted": (
        ErrorCode.INTERRUPTED,
        "The execution was interrupted; its text is kept as far as it got.",
    ),
}

Refuse = Callable[[Send, OpenRouterError], Awaitable[None]]


def _nothing() -> None:
    pass


def _headers(execution_id: str) -> list[tuple[bytes, bytes]]:
    return [*SSE_HEADERS, (b"x-execution-id", execution_id.encode())]


def _resume_event(execution_id: str, last_event_id: int) -> bytes:
    data = {"execution_id": execution_id, "last_event_id": last_event_id}
    return encode_event(dumps(data), event="resume")


async def generate(
    service: Service,
    send: Send,
    watch: DisconnectWatch,
    ex: Execution,
    stream: ChatStream,
    started: Awaitable[None],
    refuse: Refuse,
    hand_over: Callable[[], None],
) -> None:
    """Wait for the upstream ``stream`` to have ``started`` (a refusal is answered by
    ``refuse``, as for any stream), then hand the generation to the instance and follow
    it as its first client."""
    settings = service.settings
    try:
        await started
    except OpenRouterError as exc:
        await stream.aclose()
        await refuse(send, exc)
        return
    except BaseException:
        await stream.aclose()
        raise
    sources = b""
    if ex.document_ids:
        sources = encode_event(dumps([s.to_json() for s in ex.sources]), event="sources")
    live = Live(ex.execution_id, ex.uid, start_data(ex), sources)
    if ex.document_ids:
        # What a resume on another instance sends as the sources (as the finish keeps them).
        keep = settings.record_source_chars
        live.first_fields = {
            "sources": [{**s.to_json(), "text": s.text[:keep]} for s in ex.sources]
        }
    live.abort = stream.abort
    events = EventStream(
        ex,
        live.send,
        heartbeat=settings.heartbeat_seconds,
        stall_timeout=settings.stall_timeout_seconds,
        on_stall=_nothing,
        redact=service.redact,
    )
    # From here the generation is the instance's: a disconnect leaves it running.
    watch.on_gone(_nothing)
    service.checkpoints.ensure_running()
    hand_over()
    service.lives.start(live, _generation(service, live, ex, events, stream))
    await follow(service, live, send, 0)


async def _generation(
    service: Service, live: Live, ex: Execution, events: EventStream, stream: ChatStream
) -> None:
    """The relay into ``live``, then its last checkpoint, then the record's finish."""
    loop = asyncio.get_running_loop()
    finishing: asyncio.Task[None] | None = None
    outcome = events.outcome

    async def last() -> None:
        live.finishing = True
        try:
            await service.checkpoints.flush(live)
        except Exception:
            service.executions.log_failure("last checkpoint failed", ex)
        if not live.stopped:
            # The finish is conditional on the record as this instance last wrote it.
            service.store.note_record_time(ex.execution_id, live.record_time)
            await service.executions.finish(ex, outcome)
        live.status = outcome.status

    async def finish() -> None:
        nonlocal finishing
        if finishing is None:
            # Its own task: a cancellation never cuts the record's commit in two.
            finishing = loop.create_task(last())
        await asyncio.shield(finishing)

    try:
        await events.relay(stream, finish)
    except asyncio.CancelledError:
        reason = live.end_reason or ("interrupted" if service.lives.draining else "cancelled")
        outcome.status = reason
        code, message = _ENDED[reason]
        if reason == "interrupted":
            outcome.error = (code, message)
        live.append(
            encode_event(
                dumps({"code": code, "message": message}), event="error", id=len(live.events) + 1
            )
        )
    except Exception:
        service.executions.log_failure("relay failed", ex)
        outcome.status = "error"
        outcome.error = (ErrorCode.INTERNAL, "internal error")
        await events.fail()
    finally:
        await stream.aclose()
        await finish()
        live.close()


async def follow(
    service: Service, live: Live, send: Send, after: int, *, resumed: bool = False
) -> None:
    """Write ``live``'s head and its events after id ``after``, then the live ones."""
    lives = service.lives
    settings = service.settings
    loop = asyncio.get_running_loop()
    lives.attach(live)
    try:
        writer = _Writer(send, settings.stall_timeout_seconds)
        start = {**live.start, "resumed": True} if resumed else live.start
        await send(
            {"type": "http.response.start", "status": 200, "headers": _headers(live.execution_id)}
        )
        await writer.write(encode_event(dumps(start), event="start") + live.sources)
        pos = after
        while True:
            events = live.events
            if pos < len(events):
                data = events[pos] if len(events) == pos + 1 else b"".join(events[pos:])
                pos = len(events)
                await writer.write(data)
            elif live.done:
                await writer.end(DONE)
                return
            elif lives.draining:
                await writer.end(_resume_event(live.execution_id, pos))
                return
            elif not await live.wait(writer.last + settings.heartbeat_seconds - loop.time()):
                await writer.write(_PING)
    except TimeoutError:
        logger.info("follower stopped reading", execution_id=live.execution_id)
    finally:
        lives.detach(live)


def drain(keep: Callable[[asyncio.Task[None]], None]) -> None:
    """The worker got SIGTERM: drain the process's service (if it was built), and hand
    ``keep`` (the server's set of tasks it waits for before it lets the worker go) the
    task that outlasts the generations."""
    service = current_service()
    if service is None or service.lives.draining:
        return
    service.drain()
    keep(asyncio.get_running_loop().create_task(_outlast(service)))


async def _outlast(service: Service) -> None:
    """While this instance's generations go on checkpointing, up to
    SHUTDOWN_GRACE_SECONDS after the drain; then they end ``interrupted``."""
    lives = service.lives
    for live in lives:
        try:
            async with asyncio.timeout_at(
                lives.drained_at + service.settings.shutdown_grace_seconds
            ):
                await live.wait_finished()
        except TimeoutError:
            live.cancel("interrupted")
            await live.wait_finished()


class _Writer:
    """A follower's writes, each given up on after the stall timeout (a client that no
    longer reads is treated as gone)."""

    __slots__ = ("_loop", "_send", "_stall", "last")

    def __init__(self, send: Send, stall: float) -> None:
        self._send = send
        self._stall = stall
        self._loop = asyncio.get_running_loop()
        self.last = self._loop.time()

    async def write(self, data: bytes, more: bool = True) -> None:
        async with asyncio.timeout(self._stall):
            await self._send({"type": "http.response.body", "body": data, "more_body": more})
        self.last = self._loop.time()

    async def end(self, data: bytes) -> None:
        await self.write(data, more=False)


def _last_event_id(scope: Scope, body: ResumeRequest) -> int:
    if body.last_event_id is not None:
        return body.last_event_id
    value = header(scope, b"last-event-id")
    return int(value) if value is not None and value.strip().isdigit() else 0


async def resume(
    service: Service,
    scope: Scope,
    send: Send,
    watch: DisconnectWatch,
    uid: str,
    body: ResumeRequest,
) -> None:
    """The events after the client's last id, then the live ones: from memory when this
    instance generates it, else from its checkpoints."""
    execution_id = body.resume
    after = _last_event_id(scope, body)
    live = service.lives.get(execution_id)
    if live is not None:
        if live.uid != uid:
            await send_error(send, _NOT_FOUND)
            return
        await follow(service, live, send, after, resumed=True)
        return
    try:
        record = await read_record(service.store.rest, execution_id)
    except Exception:
        service.executions.log_failure("resume: record not read")
        await send_error(
            send, HttpError(ErrorCode.UNAVAILABLE, "The service is unavailable; try again.")
        )
        return
    data = (record.data or {}) if record is not None else {}
    if record is None or data.get("owner_uid") != uid or not data.get("resumable"):
        # A plain execution has no checkpoints to resume from: as absent.
        await send_error(send, _NOT_FOUND)
        return
    await follow_checkpoints(service, send, uid, record, after)


def _stale(service: Service, data: dict[str, Any]) -> bool:
    """A ``streaming`` record whose generator has shown no life for its allowance (the
    lease's own rule, ``shows_life``)."""
    if data.get("status") != "streaming":
        return False
    return not shows_life(data, None, dt.datetime.now(dt.UTC), service.settings)


async def follow_checkpoints(
    service: Service, send: Send, uid: str, record: Document, after: int
) -> None:
    """Replay an execution of another instance (or one that ended) from its segments,
    then follow them (polled every CHECKPOINT_SECONDS / 2) until its record is final."""
    db = service.store.rest
    settings = service.settings
    execution_id = record.path.rsplit("/", 1)[1]
    data = record.data or {}
    start = start_of_record(execution_id, data)
    head = encode_event(dumps(start), event="start")
    if data.get("sources") is not None:
        head += encode_event(dumps(data["sources"]), event="sources")
    await send({"type": "http.response.start", "status": 200, "headers": _headers(execution_id)})
    writer = _Writer(send, settings.stall_timeout_seconds)
    await writer.write(head)
    pos = after
    next_first = 1
    last_id = 0
    try:
        while True:
            if _stale(service, data):
                # Its generator is gone: the repair ends the record (interrupted, with its
                # checkpoints' text) and the replay below closes with it.
                logger.warn("resume of a stale execution", execution_id=execution_id, uid=uid)
                repaired = await service.repair.stale_execution(uid, execution_id)
                data = repaired or {"status": "interrupted"}
            out: list[bytes] = []
            closed = False
            for segment in await read_segments(db, execution_id, next_first):
                first = int((segment.data or {}).get("first_id", next_first))
                events = (segment.data or {}).get("events") or []
                for index, text in enumerate(events):
                    event_id = first + index
                    last_id = max(last_id, event_id)
                    closed = closed or "\nevent: end\n" in text or "\nevent: error\n" in text
                    if event_id > pos:
                        out.append(text.encode())
                        pos = event_id
                next_first = first + len(events)
            if out:
                await writer.write(b"".join(out))
            if closed:
                await writer.end(DONE)
                return
            status = data.get("status")
            if status in _FINAL:
                await writer.end(_closing(data, execution_id, last_id + 1))
                return
            if service.lives.draining:
                await writer.end(_resume_event(execution_id, pos))
                return
            await asyncio.sleep(settings.checkpoint_seconds / 2)
            if writer.last + settings.heartbeat_seconds <= asyncio.get_running_loop().time():
                await writer.write(_PING)
            found = await read_record(db, execution_id)
            data = (found.data or {}) if found is not None else {"status": "interrupted"}
    except TimeoutError:
        logger.info("follower stopped reading", execution_id=execution_id)


def _closing(data: dict[str, Any], execution_id: str, event_id: int) -> bytes:
    """The closing event of a final record whose segments did not hold one (the repair
    ended it, or its last checkpoint failed), then ``[DONE]``."""
    status = data.get("status")
    if status == "completed":
        end = {
            "execution_id": execution_id,
            "model": data.get("model"),
            "finish_reason": data.get("finish_reason"),
            "usage": data.get("usage"),
            "generation_id": data.get("generation_id"),
            "attempts": data.get("attempts") or [],
        }
        return encode_event(dumps(end), event="end", id=event_id) + DONE
    if status in _ENDED:
        code, message = _ENDED[str(status)]
    else:
        code = data.get("error_code") or ErrorCode.INTERNAL
        message = data.get("error_message") or "Internal error."
    return error_event(code, message, id=event_id)


async def cancel(service: Service, send: Send, uid: str, body: CancelRequest) -> None:
    """Stop the execution: on this instance at once (the upstream closed before the
    answer); elsewhere by marking its record, which its generator reads at its next
    checkpoint. Answers the status after the call."""
    execution_id = body.cancel
    live = service.lives.get(execution_id)
    if live is not None and live.uid == uid:
        live.cancel()
        await live.wait_finished()
        await send_json(send, 200, {"execution_id": execution_id, "status": live.status})
        return
    db = service.store.rest
    record = await read_record(db, execution_id)
    data = (record.data or {}) if record is not None else {}
    if record is None or data.get("owner_uid") != uid:
        await send_error(send, _NOT_FOUND)
        return
    status = await request_cancel(db, record)
    if status is None:
        await send_error(send, _NOT_FOUND)
        return
    if status == "streaming":
        # Its generator notices within a checkpoint interval: wait that long for the end.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * service.settings.checkpoint_seconds + 1
        while status == "streaming" and loop.time() < deadline:
            await asyncio.sleep(service.settings.checkpoint_seconds / 4)
            found = await read_record(db, execution_id)
            status = (found.data or {}).get("status") if found is not None else status
    await send_json(send, 200, {"execution_id": execution_id, "status": status})
