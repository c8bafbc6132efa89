"""The HTTP handlers: the request model, the order of checks, and the stream assembly.

Every check happens before the first byte (method, size, auth, body, prompt, variables,
model, limits, and the upstream's own answer to the request). Once the first byte has
gone out, errors travel as an ``event: error``. The per-chunk path is bytes and dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import queue
import socket
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

import flask
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
)

from . import _logging as logger
from ._bridge import END, AsyncBridge, Pump, PumpCancelled
from ._client import ChatStream, OpenRouterClient, OpenRouterConfig, StreamChunk
from ._config import Settings, emulator_auth_in_production
from ._errors import OpenRouterError
from ._socket import ClientGone, SocketSink
from ._sse import encode_comment, encode_event
from ._store import LimitExceeded, Prompt, Store
from ._templates import VariableError, VariableSpec, placeholders, render, resolve_variables

__all__ = ["ExecuteRequest", "Service", "get_service", "handle_execute", "handle_stream"]

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
    "Content-Encoding": "identity",
}
_DONE = encode_event("[DONE]")
# At most this many queued events go out in one write.
_MAX_COALESCED = 64


def _firestore_id(value: str) -> str:
    # Firestore refuses these as document ids; refuse them here with a clear message.
    if value in (".", "..") or (value.startswith("__") and value.endswith("__")):
        raise ValueError("not a valid prompt id")
    return value


PromptId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[^/]+$"),
    AfterValidator(_firestore_id),
]
VariableName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ExecuteRequest(BaseModel):
    """The body of both endpoints. snake_case only; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt_id: PromptId
    variables: dict[VariableName, str] = Field(default_factory=dict)
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    context: str | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None


class HttpError(Exception):
    """A refusal before the first byte: an HTTP status with the JSON error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def response(self) -> flask.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        resp = flask.Response(
            json.dumps({"error": error}, ensure_ascii=False),
            status=self.status,
            mimetype="application/json",
        )
        if self.retry_after is not None:
            resp.headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if self.status == 405:
            resp.headers["Allow"] = "POST, OPTIONS"
        return resp


@dataclass(frozen=True, slots=True)
class _Request:
    """A request that passed every check that needs no database."""

    uid: str
    body: ExecuteRequest
    model: str


@dataclass
class _Execution:
    """One prepared execution: everything checked, the record opened."""

    uid: str
    request: ExecuteRequest
    prompt: Prompt
    model: str
    user_prompt: str
    system_prompt: str | None
    values: dict[str, str]
    execution_id: str = ""
    started: float = field(default_factory=time.monotonic)


class _Opened:
    """First item of a relayed stream: the upstream accepted the request."""

    __slots__ = ("stream",)

    def __init__(self, stream: ChatStream) -> None:
        self.stream = stream


class _ClientGone(Exception):
    pass


class Service:
    """Everything a request needs, built once per process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        verify_token: Callable[[str], str],
        api_key: str | None,
        bridge: AsyncBridge | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.verify_token = verify_token
        self.api_key = api_key or None
        self.bridge = bridge or AsyncBridge()
        self._redact = [api_key] if api_key else []
        # Turns for opening an execution (see _start).
        self.opening = (
            threading.BoundedSemaphore(settings.open_concurrency)
            if settings.open_concurrency
            else None
        )

    # -- checks, in order -------------------------------------------------------------

    def prepare(self, request: flask.Request) -> _Request:
        """The checks that need no database: configuration, size, token, body, model."""
        settings = self.settings
        if emulator_auth_in_production():
            raise HttpError(500, "configuration_error", "The server is misconfigured.")
        if not self.api_key:
            raise HttpError(
                500, "configuration_error", "OPENROUTER_API_KEY is not configured on the server."
            )
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            raise _too_large(settings)
        uid = self._authenticate(request.headers.get("Authorization"))
        raw = request.stream.read(settings.max_body_bytes + 1)
        if len(raw) > settings.max_body_bytes:
            raise _too_large(settings)
        try:
            body = ExecuteRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise HttpError(
                400,
                "invalid_request",
                _validation_message(exc),
                {
                    "errors": exc.errors(
                        include_url=False, include_input=False, include_context=False
                    )
                },
            ) from None
        if len(body.variables) > settings.max_variables:
            raise HttpError(400, "invalid_request", f"At most {settings.max_variables} variables")
        too_long = sorted(
            k for k, v in body.variables.items() if len(v) > settings.max_variable_chars
        )
        if too_long:
            raise HttpError(
                400,
                "invalid_request",
                f"Variable values are limited to {settings.max_variable_chars} characters: "
                + ", ".join(too_long),
                {"too_long": too_long},
            )
        if body.max_tokens is not None and body.max_tokens > settings.max_tokens_cap:
            raise HttpError(
                400, "invalid_request", f"max_tokens is limited to {settings.max_tokens_cap}"
            )
        model = body.model or settings.default_model
        if model not in settings.allowed_models:
            raise HttpError(
                400,
                "model_not_allowed",
                f"Model {model!r} is not allowed. Allowed: {', '.join(settings.allowed_models)}",
                {"allowed": list(settings.allowed_models)},
            )
        return _Request(uid, body, model)

    def resolve(self, req: _Request, prompt: Prompt | None) -> _Execution:
        """The checks that need the prompt: access, variables, size. Pure; raises HttpError."""
        settings = self.settings
        body = req.body
        if prompt is None or not (prompt.public or prompt.owner_uid == req.uid):
            # The same answer for "absent" and "someone else's private prompt".
            raise HttpError(404, "prompt_not_found", "Prompt not found.")
        declared = [s for s in map(VariableSpec.from_doc, prompt.variables) if s is not None]
        try:
            values = resolve_variables(
                declared, placeholders(prompt.content, prompt.system_prompt), body.variables
            )
        except VariableError as exc:
            key = "missing" if exc.code == "missing_variables" else "unknown"
            raise HttpError(400, exc.code, str(exc), {key: exc.names}) from None
        user_prompt = render(prompt.content, values)
        system_prompt = render(prompt.system_prompt, values) if prompt.system_prompt else None
        size = len(user_prompt) + len(system_prompt or "") + len(body.context or "")
        if len(body.context or "") > settings.max_context_chars or size > settings.max_prompt_chars:
            raise HttpError(
                400,
                "prompt_too_large",
                f"The rendered prompt and context are {size} characters; "
                f"the limit is {settings.max_prompt_chars}.",
            )
        return _Execution(req.uid, body, prompt, req.model, user_prompt, system_prompt, values)

    def _authenticate(self, header: str | None) -> str:
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            raise HttpError(
                401,
                "unauthenticated",
                "Sign in: an 'Authorization: Bearer <ID token>' header is required.",
            )
        try:
            return self.verify_token(header[7:].strip())
        except Exception:
            raise HttpError(401, "unauthenticated", "The ID token is invalid or expired.") from None

    def open(self, req: _Request) -> _Execution:
        """Load and check the prompt, take a lease and open the record (one read, one commit)."""

        def build(prompt: Prompt | None) -> tuple[dict[str, Any], _Execution]:
            ex = self.resolve(req, prompt)
            record = {
                "prompt_id": ex.prompt.id,
                "model": ex.model,
                "variables": ex.values,
                "output": "",
                "usage": None,
                "finish_reason": None,
                "error_code": None,
                "error_message": None,
            }
            return record, ex

        try:
            execution_id, ex = self.store.begin_execution(
                uid=req.uid, prompt_id=req.body.prompt_id, build=build
            )
        except LimitExceeded as exc:
            raise HttpError(429, exc.code, exc.message, retry_after=exc.retry_after) from None
        ex.execution_id = execution_id
        return ex

    # -- the upstream ---------------------------------------------------------------------

    async def _make_client(self) -> OpenRouterClient:
        s = self.settings
        client = OpenRouterClient(
            OpenRouterConfig(
                api_key=SecretStr(self.api_key or ""),
                model=s.default_model,
                base_url=s.openrouter_base_url,
                max_tokens=s.default_max_tokens,
                temperature=None,
                connect_timeout=s.upstream_connect_timeout,
                first_byte_timeout=s.upstream_first_byte_timeout,
                idle_timeout=s.upstream_idle_timeout,
                deadline=s.upstream_deadline,
                max_retries=s.upstream_max_retries,
                backoff_base=s.upstream_backoff_base,
                app_url=s.app_url,
                app_title=s.app_title,
            )
        )
        return await client.__aenter__()

    def client(self) -> OpenRouterClient:
        return self.bridge.resource("openrouter", self._make_client)

    def _overrides(self, ex: _Execution) -> dict[str, Any]:
        body = ex.request
        return {
            "model": ex.model,
            "max_tokens": body.max_tokens or self.settings.default_max_tokens,
            "temperature": body.temperature,
        }

    async def _relay_source(
        self,
        client: OpenRouterClient,
        ex: _Execution,
        progress: _Progress,
        sink_ready: asyncio.Future[SocketSink | None],
    ) -> AsyncIterator[Any]:
        """On the loop: open the upstream, hand ``_Opened`` to the request thread, then
        either yield the chunks to that thread or, once it hands over the client's socket,
        write the rest of the body there directly."""
        stream = client.generate_response_stream(
            ex.user_prompt, ex.system_prompt, ex.request.context, **self._overrides(ex)
        )
        try:
            await stream.start()
            yield _Opened(stream)
            sink = await sink_ready
            if sink is None:
                async for chunk in stream:
                    yield chunk
            else:
                await _write_direct(sink, stream, progress, self.settings.heartbeat_seconds)
        finally:
            await stream.aclose()

    def redact(self, text: str) -> str:
        for secret in self._redact:
            # The client already takes the key out of upstream messages before it cuts
            # them to length; this is the last line of defence for anything else.
            text = text.replace(secret, "[redacted]")
        return text

    # -- finishing ------------------------------------------------------------------------

    def finish(
        self,
        ex: _Execution,
        *,
        status: str,
        output: str,
        reasoning: str = "",
        stream: ChatStream | None = None,
        usage: dict[str, Any] | None = None,
        finish_reason: str | None = None,
        generation_id: str | None = None,
        model: str | None = None,
        ttft: float | None = None,
        error: tuple[str, str] | None = None,
        writer: str | None = None,
    ) -> None:
        if stream is not None:
            usage = stream.usage
            finish_reason = stream.finish_reason
            generation_id = stream.generation_id
            model = stream.model
        duration_ms = round((time.monotonic() - ex.started) * 1000, 1)
        ttft_ms = None if ttft is None else round((ttft - ex.started) * 1000, 1)
        if usage and isinstance(usage.get("total_tokens"), int):
            tokens = usage["total_tokens"]
        else:
            # No usage (a disconnect, an error): debit an estimate so the budget holds.
            size = len(ex.user_prompt) + len(ex.system_prompt or "") + len(ex.request.context or "")
            tokens = math.ceil((size + len(output) + len(reasoning)) / 4)
        fields: dict[str, Any] = {
            "status": status,
            "output": output,
            "reasoning": reasoning or None,
            "usage": usage,
            "finish_reason": finish_reason,
            "generation_id": generation_id,
            "model": model or ex.model,
            "ttft_ms": ttft_ms,
            "duration_ms": duration_ms,
            "error_code": error[0] if error else None,
            "error_message": error[1] if error else None,
            "tokens_debited": tokens,
        }
        try:
            self.store.finish_execution(
                uid=ex.uid, execution_id=ex.execution_id, fields=fields, tokens=tokens
            )
        except Exception:
            # Firestore out of reach, say. The client has had its answer; the record stays
            # "streaming" and the lease lapses after STREAM_LEASE_SECONDS.
            logger.error(
                "record not finalised",
                execution_id=ex.execution_id,
                traceback=self.redact(traceback.format_exc()),
            )
        finally:
            entry: dict[str, Any] = {
                "execution_id": ex.execution_id,
                "uid": ex.uid,
                "prompt_id": ex.prompt.id,
                "model": fields["model"],
                "status": status,
                "ttft_ms": ttft_ms,
                "duration_ms": duration_ms,
                "tokens": tokens,
                "usage_reported": usage is not None,
                "error_code": fields["error_code"],
            }
            if writer is not None:
                # Who wrote the body: "socket" (the loop, straight to the connection) or
                # "thread" (the request thread, handed each event).
                entry["writer"] = writer
            if self.settings.debug_logging:
                entry["prompt"] = ex.user_prompt
            (logger.warn if status == "error" else logger.info)("execution", **entry)


# -- the two endpoints --------------------------------------------------------------------


def handle_stream(request: flask.Request) -> flask.Response:
    peer_gone = _peer_watch(request)
    started = _start(request, peer_gone)
    if isinstance(started, flask.Response):
        return started
    service, ex = started
    settings = service.settings
    sink = (
        SocketSink.from_environ(request.environ, settings.stall_timeout_seconds)
        if settings.direct_socket_writes
        else None
    )
    progress = _Progress(service, ex)
    loop = service.bridge.loop
    sink_ready: asyncio.Future[SocketSink | None] = loop.create_future()
    # The client is fetched here, not on the loop: creating it waits for the loop.
    client = service.client()
    pump: Pump[Any] = Pump(
        service.bridge, lambda: service._relay_source(client, ex, progress, sink_ready)
    )
    try:
        first = _wait(pump, settings.disconnect_poll_seconds, peer_gone)
    except OpenRouterError as exc:
        service.finish(ex, status="error", output="", error=(exc.code, service.redact(exc.message)))
        return HttpError(
            exc.status, exc.code, service.redact(exc.message), retry_after=exc.retry_after
        ).response()
    except _ClientGone:
        pump.close()
        service.finish(ex, status="cancelled", output="")
        return flask.Response(status=499)
    except Exception:
        pump.close()
        return _internal(service, ex)
    assert isinstance(first, _Opened)

    def choose(chosen: SocketSink | None) -> None:
        def set_on_loop() -> None:
            if not sink_ready.done():
                sink_ready.set_result(chosen)

        loop.call_soon_threadsafe(set_on_loop)

    body = _relay(service, progress, pump, first.stream, peer_gone, sink, choose)
    resp = flask.Response(body, headers=SSE_HEADERS)
    resp.headers["X-Execution-Id"] = ex.execution_id
    return resp


def handle_execute(request: flask.Request) -> flask.Response:
    started = _start(request, _peer_watch(request))
    if isinstance(started, flask.Response):
        return started
    service, ex = started
    try:
        result = service.bridge.run(
            service.client().generate_response(
                ex.user_prompt, ex.system_prompt, ex.request.context, **service._overrides(ex)
            )
        )
    except OpenRouterError as exc:
        message = service.redact(exc.message)
        service.finish(ex, status="error", output=exc.partial, error=(exc.code, message))
        return HttpError(exc.status, exc.code, message, retry_after=exc.retry_after).response()
    except Exception:
        return _internal(service, ex)
    service.finish(
        ex,
        status="completed",
        output=result.content,
        reasoning=result.reasoning or "",
        usage=result.usage,
        finish_reason=result.finish_reason,
        generation_id=result.generation_id,
        model=result.model,
    )
    return flask.Response(
        json.dumps(
            {
                "execution_id": ex.execution_id,
                "prompt_id": ex.prompt.id,
                "model": result.model or ex.model,
                "content": result.content,
                "reasoning": result.reasoning,
                "finish_reason": result.finish_reason,
                "usage": result.usage,
                "generation_id": result.generation_id,
                "duration_ms": round((time.monotonic() - ex.started) * 1000, 1),
            },
            ensure_ascii=False,
        ),
        mimetype="application/json",
    )


def _start(
    request: flask.Request, peer_gone: Callable[[], bool]
) -> tuple[Service, _Execution] | flask.Response:
    """Answer probes, preflights and other methods; else run every check and open the
    record. Returns the refusal as a response.

    At most ``OPEN_CONCURRENCY`` requests per instance open their record (the Firestore
    read and commit) at once; the others wait their turn, blocked. Without that bound, a
    burst of a thousand new requests put a thousand Firestore round trips on the loop at
    once, and the streams already open waited behind them (bench S3: the relay's lag p99
    was 261-466 ms without the bound, 38-70 ms with 8). No turn is held while the body is
    read or the upstream called. A request that waited past ``OPEN_QUEUE_TIMEOUT_SECONDS``
    gets a 503; one whose client left while it waited is dropped, with nothing written.
    """
    if request.path.endswith("/__/health"):
        # The emulator's worker probe: answer at once, touch nothing.
        return flask.Response("ok", mimetype="text/plain")
    if request.method == "OPTIONS":
        return flask.Response(status=204)
    if request.method != "POST":
        return HttpError(405, "method_not_allowed", "Use POST.").response()
    service = get_service()
    try:
        # The checks read the body first, outside the turns: a client that sends its body
        # slowly must not hold one.
        req = service.prepare(request)
        with _turn_to_open(service, peer_gone):
            return service, service.open(req)
    except HttpError as exc:
        return exc.response()
    except _ClientGone:
        return flask.Response(status=499)
    except Exception:
        # Firestore unreachable, say: nothing was written, nothing was sent upstream.
        logger.error("request failed", traceback=service.redact(traceback.format_exc()))
        return HttpError(503, "unavailable", "The service is unavailable; try again.").response()


@contextlib.contextmanager
def _turn_to_open(service: Service, peer_gone: Callable[[], bool]) -> Iterator[None]:
    """Hold a turn for opening for the block. Raises ``HttpError`` (503) when none came
    within the queue timeout, ``_ClientGone`` when the client left while waiting."""
    turns = service.opening
    if turns is None:
        yield
        return
    if not turns.acquire(blocking=False):
        waited = service.settings.open_queue_timeout_seconds
        if not turns.acquire(timeout=waited):
            logger.warn("open queue timeout", waited_s=waited)
            raise HttpError(
                503,
                "unavailable",
                "The server is busy starting other executions; try again.",
                retry_after=5,
            )
        if peer_gone():
            turns.release()
            logger.info("client left while waiting to start")
            raise _ClientGone
    try:
        yield
    finally:
        turns.release()


def _internal(service: Service, ex: _Execution) -> flask.Response:
    """A bug before the first byte: log it, close the record, answer without details."""
    logger.error(
        "execution failed",
        execution_id=ex.execution_id,
        traceback=service.redact(traceback.format_exc()),
    )
    service.finish(ex, status="error", output="", error=("internal", "internal error"))
    return HttpError(500, "internal", "Internal error.").response()


def _wait(pump: Pump[Any], poll: float, peer_gone: Callable[[], bool]) -> Any:
    while True:
        try:
            return pump.get(timeout=poll)
        except queue.Empty:
            if peer_gone():
                raise _ClientGone from None


class _Progress:
    """What one stream has relayed so far, and the bytes of each step of its body.

    Both ways of writing the body use it (the request thread, or the loop writing to the
    socket directly); only one of them touches it at a time, and the request thread reads
    it for the record once the loop is done with it.
    """

    __slots__ = (
        "error",
        "ex",
        "parts",
        "reasoning",
        "seq",
        "service",
        "status",
        "ttft",
        "writer",
    )

    def __init__(self, service: Service, ex: _Execution) -> None:
        self.service = service
        self.ex = ex
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.seq = 0
        self.ttft: float | None = None
        # Until the stream ends one way or another, it counts as cancelled.
        self.status = "cancelled"
        self.error: tuple[str, str] | None = None
        self.writer: str | None = None

    def start(self) -> bytes:
        ex = self.ex
        start = {"execution_id": ex.execution_id, "prompt_id": ex.prompt.id, "model": ex.model}
        return encode_event(json.dumps(start), event="start")

    def chunk(self, chunk: StreamChunk) -> bytes | None:
        """The content event for ``chunk``, or ``None`` for the usage chunk (which goes
        out with the end event)."""
        if not (chunk.content or chunk.reasoning or chunk.finish_reason):
            return None
        if self.ttft is None and chunk.content:
            self.ttft = time.monotonic()
        payload: dict[str, Any] = {"content": chunk.content, "finish_reason": chunk.finish_reason}
        if chunk.content:
            self.parts.append(chunk.content)
        if chunk.reasoning:
            self.reasoning.append(chunk.reasoning)
            payload["reasoning"] = chunk.reasoning
        self.seq += 1
        return encode_event(json.dumps(payload, ensure_ascii=False), id=self.seq)

    def end(self, stream: ChatStream) -> bytes:
        self.status = "completed"
        ex = self.ex
        return (
            encode_event(
                json.dumps(
                    {
                        "execution_id": ex.execution_id,
                        "model": stream.model or ex.model,
                        "finish_reason": stream.finish_reason,
                        "usage": stream.usage,
                        "generation_id": stream.generation_id,
                    },
                    ensure_ascii=False,
                ),
                event="end",
            )
            + _DONE
        )

    def upstream_error(self, exc: OpenRouterError) -> bytes:
        self.status = "error"
        self.error = (exc.code, self.service.redact(exc.message))
        return _error_event(*self.error)

    def internal_error(self) -> bytes:
        """For a bug while relaying: logs it (with the traceback of the exception being
        handled) and returns the error event."""
        logger.error(
            "relay failed",
            execution_id=self.ex.execution_id,
            traceback=self.service.redact(traceback.format_exc()),
        )
        self.status = "error"
        self.error = ("internal", "internal error")
        return _error_event("internal", "Internal error.")

    def finish(self, stream: ChatStream) -> None:
        self.service.finish(
            self.ex,
            status=self.status,
            output="".join(self.parts),
            reasoning="".join(self.reasoning),
            stream=stream,
            ttft=self.ttft,
            error=self.error,
            writer=self.writer,
        )


def _error_event(code: str, message: str) -> bytes:
    return encode_event(json.dumps({"code": code, "message": message}), event="error") + _DONE


async def _write_direct(
    sink: SocketSink, stream: ChatStream, progress: _Progress, heartbeat: float
) -> None:
    """On the loop: write every remaining event of the body to the client's socket.

    Ends normally once ``[DONE]`` is queued (after an upstream error too: that is an
    event of the body); raises ``ClientGone`` when the client left.
    """
    task = asyncio.current_task()
    assert task is not None
    await sink.open(on_gone=lambda: _cancel(task))
    pinger = _Pinger(sink, heartbeat)
    try:
        try:
            async for chunk in stream:
                data = progress.chunk(chunk)
                if data is not None:
                    sink.write(data)
                    await sink.drain()
            sink.write(progress.end(stream))
        except OpenRouterError as exc:
            sink.write(progress.upstream_error(exc))
        except asyncio.CancelledError:
            if not sink.gone:
                raise
            task.uncancel()
            raise ClientGone from None
        except ClientGone:
            raise
        except Exception:
            sink.write(progress.internal_error())
    finally:
        pinger.cancel()
        await sink.close()


def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()


class _Pinger:
    """Heartbeats for a directly written stream: a ``: ping`` once nothing has been
    written for ``every`` seconds. One timer per stream, re-armed lazily, so writing a
    chunk costs nothing here."""

    __slots__ = ("_every", "_handle", "_loop", "_sink")

    _PING = encode_comment("ping")

    def __init__(self, sink: SocketSink, every: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._sink = sink
        self._every = every
        self._handle = self._loop.call_at(sink.last_write + every, self._tick)

    def _tick(self) -> None:
        sink = self._sink
        now = self._loop.time()
        due = sink.last_write + self._every
        if now >= due:
            try:
                sink.write(self._PING)
            except ClientGone:
                return
            due = now + self._every
        self._handle = self._loop.call_at(due, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()


def _relay(
    service: Service,
    progress: _Progress,
    pump: Pump[Any],
    stream: ChatStream,
    peer_gone: Callable[[], bool],
    sink: SocketSink | None,
    choose: Callable[[SocketSink | None], None],
) -> Iterator[bytes]:
    """The response body. gunicorn writes the first event (with the headers); then the
    loop writes the rest straight to the socket when it can (``sink``), else this thread
    writes what the loop hands it."""
    settings = service.settings
    try:
        yield progress.start()
        if sink is not None:
            progress.writer = "socket"
            choose(sink)
            # The loop owns the socket until the task ends; the task puts END (or the
            # exception it ended with) after its ``finally`` gave the socket back.
            bound = settings.upstream_deadline + 2 * settings.stall_timeout_seconds + 60
            try:
                pump.get(timeout=bound)
            except (ClientGone, PumpCancelled):
                progress.status = "cancelled"  # even if the end event was queued
            except queue.Empty:
                progress.status = "error"
                progress.error = ("internal", "the relay did not end in time")
            except Exception:
                progress.internal_error()
            return
        progress.writer = "thread"
        choose(None)
        yield from _relay_threaded(progress, pump, stream, peer_gone, settings)
    except (_ClientGone, GeneratorExit):
        progress.status = "cancelled"
    finally:
        # Wait for the task to end: the socket must be back before gunicorn writes again.
        pump.close(wait=settings.stall_timeout_seconds + 5)
        progress.finish(stream)


def _relay_threaded(
    progress: _Progress,
    pump: Pump[Any],
    stream: ChatStream,
    peer_gone: Callable[[], bool],
    settings: Settings,
) -> Iterator[bytes]:
    """The body written by this thread, from the items the loop hands it."""
    idle_poll = settings.disconnect_poll_seconds
    poll = min(idle_poll, settings.heartbeat_seconds)
    heartbeat = settings.heartbeat_seconds
    ping = encode_comment("ping")
    # Events already encoded but not yet written. When chunks queue up faster than this
    # thread writes them (a burst, or a busy CPU), they go out in one write: one trip
    # through WSGI and one send() for many events instead of one each.
    pending: list[bytes] = []
    next_ping = time.monotonic() + heartbeat
    while True:
        if pending and (len(pending) >= _MAX_COALESCED or not pump.ready()):
            # Never wait for the upstream with bytes unsent.
            yield b"".join(pending)
            pending.clear()
            next_ping = time.monotonic() + heartbeat
        try:
            item = pump.get(timeout=poll)
        except queue.Empty:
            if peer_gone():
                raise _ClientGone from None
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + heartbeat
                yield ping
            # Wake up for the next heartbeat on time, or to check on the browser.
            poll = max(0.001, min(idle_poll, next_ping - now))
            continue
        except OpenRouterError as exc:
            pending.append(progress.upstream_error(exc))
            yield b"".join(pending)
            return
        except Exception:
            pending.append(progress.internal_error())
            yield b"".join(pending)
            return
        if item is END:
            pending.append(progress.end(stream))
            yield b"".join(pending)
            return
        data = progress.chunk(cast(StreamChunk, item))
        if data is not None:
            pending.append(data)


def _peer_watch(request: flask.Request) -> Callable[[], bool]:
    """A cheap check that the browser is still connected, for streams that are idle.

    gunicorn only notices a gone client when a write fails; while the model is silent
    nothing is written, so we peek at the socket: a readable socket that returns no
    bytes has been closed by the peer.
    """
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    return gone


def _too_large(settings: Settings) -> HttpError:
    return HttpError(
        413, "payload_too_large", f"The body is limited to {settings.max_body_bytes} bytes."
    )


def _validation_message(exc: ValidationError) -> str:
    messages = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(part) for part in err["loc"]) or "body"
        messages.append(f"{loc}: {err['msg']}")
    return "Invalid request: " + "; ".join(messages)


# -- the process-wide service ----------------------------------------------------------------

_service: Service | None = None
_service_lock = threading.Lock()


def get_service() -> Service:
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                _service = _build_service()
    return _service


def set_service(service: Service | None) -> None:
    """Replace the process-wide service (tests)."""
    global _service
    _service = service


def _build_service() -> Service:
    import os

    import firebase_admin
    from firebase_admin import auth

    settings = Settings.from_env()
    try:
        app = firebase_admin.get_app()
    except ValueError:
        app = firebase_admin.initialize_app(options={"projectId": settings.project_id})

    def verify(token: str) -> str:
        claims = auth.verify_id_token(token, app=app, clock_skew_seconds=5)
        # With the Auth emulator on, firebase-admin checks neither exp nor iat (it accepts
        # unsigned tokens and stops there), so an expired token would pass. Check the
        # times here; in production this repeats what google-auth already did.
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp <= now - 5:
            raise ValueError("ID token expired")
        if not isinstance(iat, int | float) or iat > now + 5:
            raise ValueError("ID token issued in the future")
        return str(claims["uid"])

    bridge = AsyncBridge()
    store = Store(settings, bridge, emulator_host=os.environ.get("FIRESTORE_EMULATOR_HOST"))
    return Service(settings, store, verify, os.environ.get("OPENROUTER_API_KEY"), bridge)
