"""The two execution endpoints, as ASGI apps: the order of the steps, each request one
coroutine. (The plumbing both endpoints share with ``_documents_api`` is in ``_endpoint``.)

Every check happens before the first byte (method, configuration, size, token, the
user's rate, body, the user's turn to open, prompt, variables, limits, the search of the
documents it names, and the upstream's own answer to the request). Once the read has
shown the request admissible, the upstream call (or the search before it) starts beside
the commit that opens the record, and nothing is sent until that commit has landed
(``_head_start``, docs/adr/1000-one-round-trip-before-the-upstream.md). Once the first
byte has gone out, errors travel as an ``event: error``. A client that disconnects cancels its
request wherever it is: the upstream response is closed and the record ends ``cancelled``
with the text so far.

See docs/adr/0005-native-async-path.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from .. import _logging as logger
from .._config import Settings
from .._errors import ClientGone, ErrorCode, HttpError, OpenRouterError
from ..run._prepare import Execution, Outcome
from ..run._request import CancelRequest, ExecuteRequest, ResumeRequest, check, check_stream
from ._asgi import DisconnectWatch, header, send_error, send_json
from ._endpoint import Handler, endpoint, read_body, too_large
from ._events import SSE_HEADERS, EventStream, redacted_attempts
from ._head_start import HeadStart
from ._resumable import cancel, generate, resume
from ._service import Service

__all__ = ["execute_app", "stream_app"]


Body = ExecuteRequest | ResumeRequest | CancelRequest


async def _checked(
    service: Service,
    scope: Scope,
    receive: Receive,
    send: Send,
    parse: Callable[[bytes, Settings], Body],
) -> tuple[str, Body] | None:
    """Everything that needs no database: configuration, size, token, body, the models
    it names.
    Answers a refusal itself (and returns ``None``)."""
    settings = service.settings
    try:
        if service.lives.draining:
            # The instance is shutting down: another one answers (docs/adr/0600).
            raise HttpError(
                ErrorCode.UNAVAILABLE, "The server is shutting down; try again.", retry_after=1
            )
        if not service.api_key:
            raise HttpError(
                ErrorCode.CONFIGURATION_ERROR,
                "OPENROUTER_API_KEY is not configured on the server.",
            )
        length = header(scope, b"content-length")
        content_length = int(length) if length is not None and length.isdigit() else None
        if content_length is not None and content_length > settings.max_body_bytes:
            raise too_large(settings.max_body_bytes)
        uid = await service.auth.uid(header(scope, b"authorization"))
        # Before the body: a flood is refused for the price of its token check.
        service.rates.opening(uid)
        raw = await read_body(receive, settings)
    except HttpError as exc:
        # The body may be unread: close the connection rather than drain it.
        await send_error(send, exc, close=True)
        return None
    except ClientGone:
        return None
    try:
        body = parse(raw, settings)
    except HttpError as exc:
        await send_error(send, exc)
        return None
    return uid, body


class _Run:
    """One request's execution, once its record is open, and how it ended."""

    __slots__ = ("_finishing", "ex", "outcome", "service")

    def __init__(self, service: Service) -> None:
        self.service = service
        self.ex: Execution | None = None
        # Until the steps say otherwise (a disconnect, say), it counts as cancelled.
        self.outcome = Outcome("cancelled")
        self._finishing: asyncio.Task[None] | None = None

    async def finish(self) -> None:
        """Finish the record, once. The steps call it before their last byte, so that a
        complete response means a final record; the request's coroutine calls it again
        after them (it is a no-op then) in case a disconnect cut them short. Shielded: a
        disconnect never cuts the commit in two."""
        if self.ex is None:
            return
        if self._finishing is None:
            # A task of its own, not a TaskGroup's: it must outlive the cancellation of
            # the coroutine that awaits it.
            self._finishing = asyncio.get_running_loop().create_task(self._finish(self.ex))
        await asyncio.shield(self._finishing)

    async def _finish(self, ex: Execution) -> None:
        try:
            await self.service.executions.finish(ex, self.outcome)
        finally:
            self.service.checkpoints.release(ex.execution_id)


async def _open(
    service: Service,
    send: Send,
    watch: DisconnectWatch,
    run: _Run,
    checked: tuple[str, ExecuteRequest],
    head: HeadStart,
) -> Execution | None:
    """Wait for a turn and open the record, ``head`` starting the upstream (or the
    search) as the commit goes out. Answers a refusal itself (and returns ``None``),
    everything ``head`` started stopped; nothing is written then. The commit that opens
    the record is never cut by a disconnect: the record it creates must be finished."""
    try:
        async with service.openings.turn(checked[0]):
            watch.disarm()
            # A client gone during the commit stops the upstream at once; the commit goes on.
            watch.on_gone(head.abort)
            run.ex = await service.executions.open(*checked, head.admitted)
        # Its lease is proved alive from now until its finish (or its Live's checkpoints).
        service.checkpoints.hold(run.ex.execution_id)
        watch.arm()
        return run.ex
    except HttpError as exc:
        # A refusal, or a race lost and refused on the read again: the upstream stops.
        head.abort()
        await send_error(send, exc)
    except asyncio.CancelledError:
        if run.ex is None:
            logger.info("client left while waiting to start")
        raise
    except Exception:
        # Firestore unreachable, say: nothing was written, the upstream call stopped.
        head.abort()
        service.executions.log_failure("request failed")
        await send_error(
            send, HttpError(ErrorCode.UNAVAILABLE, "The service is unavailable; try again.")
        )
    return None


async def _retrieve(
    service: Service, send: Send, run: _Run, ex: Execution, head: HeadStart
) -> bool:
    """When the execution names documents: the search ``head`` started beside the
    commit, then the upstream call (the passages go into its prompt) beside their write
    to the record's ``sent``. A failure is answered here, the record finished ``error``
    (and ``False`` returned); nothing has been streamed yet."""
    if not ex.document_ids:
        return True
    try:
        await head.searched()
        head.dispatch(ex)
        await service.executions.keep_passages(ex)
    except OpenRouterError as exc:
        await _refuse(send, run, exc)
        return False
    except Exception:
        head.abort()
        # Firestore unreachable, say: the record says so, the client may try again.
        service.executions.log_failure("retrieval failed", ex)
        run.outcome = Outcome("error", error=(ErrorCode.UNAVAILABLE, "retrieval failed"))
        await run.finish()
        await send_error(
            send, HttpError(ErrorCode.UNAVAILABLE, "The service is unavailable; try again.")
        )
        return False
    return True


async def _refuse(send: Send, run: _Run, exc: OpenRouterError) -> None:
    """The upstream refused before anything was streamed: its status, as JSON, with
    the models tried (``details.attempts``) when there were any."""
    service = run.service
    message = service.redact(exc.message)
    attempts = redacted_attempts(exc.attempts, service.redact)
    run.outcome = Outcome("error", output=exc.partial, error=(exc.code, message), attempts=attempts)
    await run.finish()
    details = {"attempts": attempts} if attempts else None
    await send_error(send, HttpError(exc.code, message, details, retry_after=exc.retry_after))


async def _internal(send: Send, run: _Run, message: str) -> None:
    """A bug before the first byte: log it, finish the record, answer without details."""
    run.service.executions.log_failure(message, run.ex)
    run.outcome = Outcome("error", error=(ErrorCode.INTERNAL, "internal error"))
    await run.finish()
    await send_error(send, HttpError(ErrorCode.INTERNAL, "Internal error."))


Steps = Callable[[Service, Send, DisconnectWatch, _Run, Execution, HeadStart], Awaitable[None]]


def _handler(
    steps: Steps, parse: Callable[[bytes, Settings], Body] = check, *, streaming: bool = False
) -> Handler:
    """A POST: the checks, then (a disconnect cancelling them) the opening and ``steps``,
    then the record's finish, which nothing cancels. A resume or a cancel (the streaming
    endpoint's ``parse`` gives those) goes to its own steps."""

    async def handle(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
        checked = await _checked(service, scope, receive, send, parse)
        if checked is None:
            return
        uid, body = checked
        watch = DisconnectWatch(receive)
        if isinstance(body, ResumeRequest):
            await watch.run(resume(service, scope, send, watch, uid, body))
            return
        if isinstance(body, CancelRequest):
            await watch.run(cancel(service, send, uid, body))
            return
        run = _Run(service)
        opening = (uid, body)

        async def opened_then_steps() -> None:
            head = HeadStart(service, await service.client(), streaming=streaming)
            try:
                ex = await _open(service, send, watch, run, opening, head)
                if ex is not None and await _retrieve(service, send, run, ex, head):
                    await steps(service, send, watch, run, ex, head)
            finally:
                await head.aclose()

        await watch.run(opened_then_steps())
        await run.finish()

    return handle


async def _stream_steps(
    service: Service,
    send: Send,
    watch: DisconnectWatch,
    run: _Run,
    ex: Execution,
    head: HeadStart,
) -> None:
    settings = service.settings
    stream, started = head.take_stream()
    watch.on_gone(stream.abort)
    if ex.request.resumable:

        async def refuse(send: Send, exc: OpenRouterError) -> None:
            await _refuse(send, run, exc)

        def hand_over() -> None:
            # The generation finishes the record from here, not this request, and its
            # checkpoints keep it alive.
            run.ex = None
            service.checkpoints.release(ex.execution_id)

        await generate(service, send, watch, ex, stream, started, refuse, hand_over)
        return
    events = EventStream(
        ex,
        send,
        heartbeat=settings.heartbeat_seconds,
        stall_timeout=settings.stall_timeout_seconds,
        on_stall=watch.give_up,
        redact=service.redact,
    )
    run.outcome = events.outcome
    opened = False
    try:
        try:
            await started
        except OpenRouterError as exc:
            await _refuse(send, run, exc)
            return
        await events.open(
            [*SSE_HEADERS, (b"x-execution-id", ex.execution_id.encode())],
            sources=[source.to_json() for source in ex.sources] if ex.document_ids else None,
        )
        opened = True
        await events.relay(stream, run.finish)
    except Exception:
        if not opened:
            await _internal(send, run, "relay failed")
            return
        service.executions.log_failure("relay failed", ex)
        run.outcome.status = "error"
        run.outcome.error = (ErrorCode.INTERNAL, "internal error")
        await run.finish()
        await events.fail()
    finally:
        await stream.aclose()


async def _execute_steps(
    service: Service,
    send: Send,
    watch: DisconnectWatch,
    run: _Run,
    ex: Execution,
    head: HeadStart,
) -> None:
    try:
        result = await head.answer()
    except OpenRouterError as exc:
        await _refuse(send, run, exc)
        return
    except Exception:
        await _internal(send, run, "execution failed")
        return
    attempts = redacted_attempts(result.attempts, service.redact)
    run.outcome = Outcome(
        "completed",
        output=result.content,
        reasoning=result.reasoning or "",
        usage=result.usage,
        finish_reason=result.finish_reason,
        generation_id=result.generation_id,
        model=result.model,
        attempts=attempts,
    )
    await run.finish()
    await send_json(
        send,
        200,
        {
            "execution_id": ex.execution_id,
            "prompt_id": ex.prompt.id,
            "prompt_version": ex.prompt.version,
            "model": result.model or ex.model,
            "requested_model": ex.model,
            "attempts": attempts,
            "comparison_id": ex.request.comparison_id,
            **ex.conversation,
            "content": result.content,
            "reasoning": result.reasoning,
            "finish_reason": result.finish_reason,
            "usage": result.usage,
            "generation_id": result.generation_id,
            "duration_ms": round((time.monotonic() - ex.started) * 1000, 1),
            **({"sources": [s.to_json() for s in ex.sources]} if ex.document_ids else {}),
        },
    )


stream_app = endpoint({"POST": _handler(_stream_steps, check_stream, streaming=True)})
execute_app = endpoint({"POST": _handler(_execute_steps)})
