"""The aiohttp application: request checks, the scripted stream, stats and control routes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import socket
import string
import time
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ._embed import (
    EMBEDDING_MODELS,
    EmbeddingRequestError,
    LocalEmbedder,
    embeddings_body,
    parse_embeddings_request,
)
from ._knobs import (
    FAILURE_KNOBS,
    KnobError,
    Knobs,
    coerce_knobs,
    find_directives,
    for_model,
    parse_header,
    resolve_knobs,
    strip_directives,
)
from ._text import (
    REASONING_TEXT,
    count_words,
    demo_markdown,
    demo_text,
    message_texts,
    split_text,
    user_prompt,
)
from ._wire import (
    COMMENT,
    DONE,
    MALFORMED,
    StreamTemplate,
    completion_body,
    error_body,
    usage_dict,
)

__all__ = ["STATE_KEY", "FakeState", "build_app", "start_site"]

REQUEST_LOG_LIMIT = 1000
EARLY_CLOSE_LOG_LIMIT = 100_000
DEFAULT_MODEL = "fake/demo-model"
MODELS = (
    ("x-ai/grok-4-fast:free", "xAI: Grok 4 Fast (free)"),
    ("deepseek/deepseek-r1:free", "DeepSeek: R1 (free)"),
    ("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini"),
    (DEFAULT_MODEL, "Fake: local demo model"),
)
_ID_ALPHABET = string.ascii_letters + string.digits
_COUNTERS = (
    "requests",
    "streams_started",
    "streams_completed",
    "early_closes",
    "connections_opened",
    "status_answers",
    "non_stream_answers",
    "mid_stream_errors",
    "drops",
    "truncations",
    "disconnects",
    "embedding_requests",
)


class FakeState:
    """Everything the server remembers: defaults, counters, the request log."""

    def __init__(
        self, defaults: Mapping[str, Any] | None = None, *, api_key: str | None = None
    ) -> None:
        self.api_key = api_key
        self._initial_defaults = coerce_knobs(defaults or {})
        self.defaults: dict[str, Any] = dict(self._initial_defaults)
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.active_streams = 0
        self.early_close_ns: list[int] = []
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self.fail_counts: dict[str, int] = {}
        # Chat attempts per model: one per model tried, a skipped one of a `models` list
        # included.
        self.model_attempts: dict[str, int] = {}
        self.embedder = LocalEmbedder()
        self._seen: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def reset(self) -> None:
        """Zero counters, forget requests and `fail_times` counts, restore startup defaults."""
        self.defaults = dict(self._initial_defaults)
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.early_close_ns = []
        self.request_log.clear()
        self.fail_counts.clear()
        self.model_attempts = {}
        # Open connections are not forgotten: a reset must not count them again.

    def configure(self, knobs: Mapping[str, Any]) -> dict[str, Any]:
        self.defaults.update(coerce_knobs(knobs))
        return dict(self.defaults)

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "active_streams": self.active_streams,
            "early_close_ns": list(self.early_close_ns),
            "attempts": dict(self.model_attempts),
        }

    def note_connection(self, request: web.Request) -> None:
        transport = request.transport
        if transport is not None and transport not in self._seen:
            self._seen.add(transport)
            self.counters["connections_opened"] += 1

    def note_early_close(self) -> None:
        self.counters["early_closes"] += 1
        if len(self.early_close_ns) < EARLY_CLOSE_LOG_LIMIT:
            self.early_close_ns.append(time.monotonic_ns())


STATE_KEY = web.AppKey("fake_openrouter_state", FakeState)


def _json_response(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _error(status: int, message: str, metadata: dict[str, Any] | None = None) -> web.Response:
    return _json_response(status, error_body(status, message, metadata))


def _flagged(prompt: str) -> str:
    # OpenRouter keeps 100 characters, cutting long inputs in the middle.
    if len(prompt) <= 100:
        return prompt
    return prompt[:48] + "..." + prompt[-49:]


def _status_answer(
    knobs: Knobs, status: int, model: str, prompt: str, leaked: str | None = None
) -> web.Response:
    metadata: dict[str, Any] | None = None
    if status == 402:
        message = "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
    elif status == 403:
        message = (
            f"{model} requires moderation on {knobs.provider}. "
            'Your input was flagged for "harassment". No credits were charged.'
        )
        metadata = {
            "reasons": ["harassment"],
            "flagged_input": _flagged(prompt),
            "provider_name": knobs.provider,
            "model_slug": model,
        }
    elif status == 429:
        message = "Rate limit exceeded: free-models-per-min."
        metadata = {"headers": {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0"}}
    elif status == 502:
        message = "Provider returned error"
        metadata = {"provider_name": knobs.provider, "raw": "upstream provider error"}
    elif status == 503:
        message = "No allowed providers are available for the selected model."
    else:
        message = {
            400: "Bad Request",
            401: "User not found.",
            404: "Not Found",
            408: "Request timed out",
            500: "Internal Server Error",
        }.get(status, f"Fake error {status}")
    if knobs.message is not None:
        message = knobs.message
    if leaked is not None:
        message += f" (key {leaked})"
    headers = {"Retry-After": knobs.retry_after} if knobs.retry_after is not None else None
    return _json_response(status, error_body(status, message, metadata), headers)


def _new_gen_id(created: int) -> str:
    return f"gen-{created}-" + "".join(random.choices(_ID_ALPHABET, k=20))


class _Dropped(Exception):
    """We closed the socket on purpose; not the client's early close."""


async def _wait(resp: web.StreamResponse, seconds: float, every: float) -> None:
    """Sleep, writing a keep-alive comment each time `every` seconds pass in silence."""
    if seconds <= 0:
        return
    if every <= 0 or every >= seconds:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > every:
        await asyncio.sleep(every)
        await resp.write(COMMENT)
    if remaining > 0:
        await asyncio.sleep(remaining)


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        # abort(), not close(): the chunked body must stay unfinished on the wire.
        transport.abort()
    raise _Dropped


class _Plan:
    """What one request will get, worked out before the first byte."""

    __slots__ = (
        "created",
        "finish_reason",
        "gen_id",
        "knobs",
        "leaked",
        "model",
        "pieces",
        "prompt_tokens",
        "reasoning",
    )

    def __init__(
        self,
        knobs: Knobs,
        body: dict[str, Any],
        messages: list[Any],
        api_key: str = "",
        model: str = DEFAULT_MODEL,
    ) -> None:
        self.knobs = knobs
        leaked = {"upper": api_key.upper(), "lower": api_key.lower()}.get(knobs.leak_case, api_key)
        places = set(knobs.leak.split(","))
        self.leaked = {place: leaked for place in places if place}
        if knobs.model is not None:
            model = knobs.model
        if "model" in self.leaked:
            model = f"{model}:{self.leaked['model']}"
        self.model: str = model
        self.created = knobs.created if knobs.created is not None else int(time.time())
        self.gen_id = knobs.gen_id or _new_gen_id(self.created)
        if "gen_id" in self.leaked:
            self.gen_id = f"gen-{self.leaked['gen_id']}"
        texts = message_texts(messages)
        self.prompt_tokens = max(1, count_words(texts))
        count = knobs.chunks if not knobs.stamp else (knobs.chunks or 8)
        if knobs.stamp:
            pieces: list[str] = [""] * count
        else:
            if knobs.text is not None:
                text = knobs.text
            elif knobs.markdown:
                text = demo_markdown(messages)
            else:
                text = demo_text(user_prompt(messages), unicode=knobs.unicode)
            pieces = split_text(text, count)
        finish_reason = knobs.finish_reason
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if (
            isinstance(max_tokens, int)
            and not isinstance(max_tokens, bool)
            and 0 < max_tokens < len(pieces)
        ):
            pieces = pieces[:max_tokens]
            finish_reason = "length"
        self.pieces = _with_split_key(pieces, self.leaked.get("content"))
        self.finish_reason = finish_reason
        reasoning = split_text(REASONING_TEXT, knobs.reasoning) if knobs.reasoning else []
        self.reasoning = _with_split_key(reasoning, self.leaked.get("reasoning"))

    def usage(self, content_sent: int, reasoning_sent: int) -> dict[str, Any]:
        usage = usage_dict(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=content_sent + reasoning_sent,
            reasoning_tokens=reasoning_sent,
            cost=self.knobs.cost,
        )
        if self.knobs.usage_extra is not None:
            usage.update(json.loads(self.knobs.usage_extra))
        if "usage" in self.leaked:
            usage[self.leaked["usage"]] = 1
            usage["note"] = self.leaked["usage"]
        return usage


def _with_split_key(pieces: list[str], key: str | None) -> list[str]:
    """`pieces` with `key` inserted in the middle, its two halves in two pieces."""
    if key is None or not pieces:
        return pieces
    middle = len(pieces) // 2
    half = len(key) // 2
    return [*pieces[:middle], f" {key[:half]}", key[half:], *pieces[middle:]]


async def _stream(request: web.Request, state: FakeState, plan: _Plan) -> web.StreamResponse:
    knobs = plan.knobs
    template = StreamTemplate(
        gen_id=plan.gen_id, provider=knobs.provider, model=plan.model, created=plan.created
    )
    resp = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Generation-Id": plan.gen_id,
        },
    )
    await resp.prepare(request)
    state.counters["streams_started"] += 1
    state.active_streams += 1
    try:
        if knobs.comments:
            await resp.write(COMMENT * knobs.comments)
        await _wait(resp, knobs.first_chunk_delay, knobs.comment_every)
        sent_any = False
        for piece in plan.reasoning:
            if sent_any:
                await _wait(resp, knobs.delay, knobs.comment_every)
            await resp.write(template.reasoning(piece))
            sent_any = True
        pieces = plan.pieces
        total = len(pieces)

        def at(knob: int | None) -> int | None:
            return None if knob is None else min(knob, total)

        stall_at = at(knobs.stall_after)
        error_at = at(knobs.error_after)
        drop_at = at(knobs.drop_after)
        truncate_at = at(knobs.truncate_after)
        malformed_at = at(knobs.malformed_after)
        long_line_at = None if knobs.long_line is None else min(1, total)
        loop = asyncio.get_running_loop()
        due = loop.time()
        for index in range(total + 1):
            if index == long_line_at:
                await _endless_line(resp, knobs.long_line or 0)
                state.counters["truncations"] += 1
                return resp
            if index == stall_at:
                await resp.write(COMMENT)
                await _wait(resp, knobs.stall, knobs.comment_every or 1.0)
                if knobs.stall_then == "drop":
                    state.counters["drops"] += 1
                    _drop(request)
                if knobs.stall_then == "end":
                    state.counters["truncations"] += 1
                    state.counters["streams_completed"] += 1
                    return resp
            if index == error_at:
                message = knobs.error_message
                if "error" in plan.leaked:
                    message += f" (key {plan.leaked['error']})"
                await resp.write(template.error(knobs.error_code, message))
                state.counters["mid_stream_errors"] += 1
                state.counters["streams_completed"] += 1
                return resp
            if index == drop_at:
                state.counters["drops"] += 1
                _drop(request)
            if index == truncate_at:
                state.counters["truncations"] += 1
                state.counters["streams_completed"] += 1
                return resp
            if index == malformed_at:
                await resp.write(MALFORMED)
            if index == total:
                break
            if sent_any:
                if knobs.stamp:
                    # The bench's streams keep a schedule (chunk n at the first's time plus n
                    # delays): sleeps taken after each write merge whenever this loop wakes
                    # late and never part again, so the streams of a run drift into bursts
                    # that arrive at once (docs/adr/0602-s2-lag-and-the-fake-s-pacing.md).
                    due += knobs.delay
                    await _wait(resp, due - loop.time(), knobs.comment_every)
                else:
                    await _wait(resp, knobs.delay, knobs.comment_every)
            else:
                due = loop.time()
            reason = plan.finish_reason if index == total - 1 else None
            if knobs.stamp:
                now = time.monotonic_ns()
                event = template.content(f"<t:{now}>", finish_reason=reason, sent_ns=now)
            else:
                event = template.content(pieces[index], finish_reason=reason)
            await resp.write(event)
            sent_any = True
        tail = template.usage(plan.usage(total, len(plan.reasoning))) if knobs.usage else b""
        if not knobs.no_done:
            tail += DONE
        if tail:
            await resp.write(tail)
        state.counters["streams_completed"] += 1
        return resp
    finally:
        state.active_streams -= 1


async def _endless_line(resp: web.StreamResponse, size: int) -> None:
    """One `data:` line of `size` bytes, written in 64 KiB pieces, never ended."""
    piece = b"x" * 65536
    await resp.write(b"data: ")
    for start in range(0, size, len(piece)):
        await resp.write(piece[: min(len(piece), size - start)])


def _answer_once(plan: _Plan) -> web.Response:
    content = "".join(plan.pieces) if not plan.knobs.stamp else ""
    reasoning = "".join(plan.reasoning) or None
    body = completion_body(
        gen_id=plan.gen_id,
        provider=plan.knobs.provider,
        model=plan.model,
        created=plan.created,
        content=content,
        reasoning=reasoning,
        finish_reason=plan.finish_reason,
        usage=plan.usage(len(plan.pieces), len(plan.reasoning)),
    )
    return _json_response(200, body, {"X-Generation-Id": plan.gen_id})


def _record(state: FakeState, request: web.Request, raw: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "headers": dict(request.headers),
        "json": None,
        "received_ns": time.monotonic_ns(),
    }
    try:
        entry["json"] = json.loads(raw) if raw else None
    except ValueError:
        entry["body"] = raw.decode("utf-8", "replace")
    state.request_log.append(entry)
    return entry


def _apply_fail_times(state: FakeState, knobs: Knobs, key: str) -> Knobs:
    if knobs.fail_times is None:
        return knobs
    seen = state.fail_counts.get(key, 0) + 1
    state.fail_counts[key] = seen
    if seen <= knobs.fail_times:
        return knobs
    off: dict[str, Any] = {
        name: (False if name in ("disconnect", "no_done") else None) for name in FAILURE_KNOBS
    }
    return _replace(knobs, off)


def _candidates(body: dict[str, Any]) -> list[str]:
    """The models a request asks for, in order: `model`, then the `models` list (without
    repeats), as OpenRouter tries them; the default model if it names none."""
    named: list[str] = []
    model = body.get("model")
    if isinstance(model, str) and model:
        named.append(model)
    models = body.get("models")
    if isinstance(models, list):
        named.extend(m for m in models if isinstance(m, str) and m and m not in named)
    return named or [DEFAULT_MODEL]


# Refusals of the caller's account, not of a model: OpenRouter answers them before any
# routing.
_ACCOUNT_STATUS = (401, 402)


def _skipped(knobs: Knobs) -> bool:
    """Whether a model of a `models` list with these knobs fails before the first byte
    in a way the next model can take over."""
    if knobs.status is not None and knobs.status in _ACCOUNT_STATUS:
        return False
    return knobs.disconnect or (knobs.status is not None and knobs.status != 200)


async def _route(
    state: FakeState, knobs: Knobs, key: str, candidates: list[str]
) -> tuple[Knobs, str]:
    """OpenRouter's `models` routing: each model in turn, one attempt each; one whose
    knobs fail before the first byte is skipped (after its `first_byte_delay`), the first
    that serves answers, and when all fail the last one's failure is answered. A 401 or
    402 is the account's, answered at once. Returns the knobs of the model that answers,
    and its id."""
    for position, model in enumerate(candidates):
        own, has_own = for_model(knobs, model)
        # A model's own `fail_times` counts that model's attempts.
        own = _apply_fail_times(state, own, f"{key}|{model}" if has_own else key)
        state.model_attempts[model] = state.model_attempts.get(model, 0) + 1
        if position + 1 < len(candidates) and _skipped(own):
            if own.first_byte_delay:
                await asyncio.sleep(own.first_byte_delay)
            continue
        return own, model
    raise AssertionError("unreachable: candidates is never empty")


def _replace(knobs: Knobs, changes: dict[str, Any]) -> Knobs:
    return dataclasses.replace(knobs, **changes)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.counters["requests"] += 1
    state.note_connection(request)
    try:
        return await _chat(request, state)
    except asyncio.CancelledError:
        # handler_cancellation: the client closed its socket (even mid-sleep).
        state.note_early_close()
        raise
    except _Dropped:
        # aiohttp's connection loop ends quietly on ConnectionError.
        raise ConnectionResetError("connection dropped by the fake on purpose") from None
    except ConnectionError:
        state.note_early_close()
        raise


async def _chat(request: web.Request, state: FakeState) -> web.StreamResponse:
    raw = await request.read()
    entry = _record(state, request, raw)

    refused = _refuse_key(request, state)
    if refused is not None:
        return refused

    body = entry["json"]
    if not isinstance(body, dict):
        return _error(400, "Invalid JSON body")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, 'Input required: specify "prompt" or "messages"')

    try:
        header_raw = request.headers.get("X-Fake-Scenario")
        header_knobs = parse_header(header_raw)
        directive_knobs, directive_raw = find_directives(message_texts(messages))
        knobs = resolve_knobs(state.defaults, header_knobs, directive_knobs)
    except KnobError as exc:
        return _error(400, str(exc))
    # The caller's key, for the knobs that echo it back (a hostile upstream).
    api_key = request.headers.get("Authorization", "").partition(" ")[2].strip()
    key = knobs.fail_key if knobs.fail_key is not None else (directive_raw or header_raw or "")
    knobs, model = await _route(state, knobs, key, _candidates(body))
    plan = _Plan(knobs, body, messages, api_key, model)

    if knobs.first_byte_delay:
        await asyncio.sleep(knobs.first_byte_delay)
    if knobs.disconnect:
        state.counters["disconnects"] += 1
        _drop(request)
    if knobs.status is not None and knobs.status != 200:
        state.counters["status_answers"] += 1
        return _status_answer(
            knobs, knobs.status, plan.model, user_prompt(messages), plan.leaked.get("error")
        )
    if body.get("stream") is True:
        return await _stream(request, state, plan)
    state.counters["non_stream_answers"] += 1
    return _answer_once(plan)


def _refuse_key(request: web.Request, state: FakeState) -> web.Response | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _error(401, "No auth credentials found")
    if state.api_key is not None and key.strip() != state.api_key:
        return _error(401, "User not found.")
    return None


async def embeddings(request: web.Request) -> web.Response:
    """OpenAI-compatible embeddings from the local model. Knobs come from the header and
    the defaults, and from `[[fake ...]]` directives in the inputs (stripped before
    embedding)."""
    state = request.app[STATE_KEY]
    state.counters["embedding_requests"] += 1
    call = state.counters["embedding_requests"]
    entry = _record(state, request, await request.read())
    refused = _refuse_key(request, state)
    if refused is not None:
        return refused
    try:
        model, inputs, dimensions, encoding = parse_embeddings_request(entry["json"])
        directive_knobs, _ = find_directives(inputs)
        knobs = resolve_knobs(
            state.defaults, parse_header(request.headers.get("X-Fake-Scenario")), directive_knobs
        )
    except (EmbeddingRequestError, KnobError) as exc:
        return _error(400, str(exc))
    if knobs.embed_delay:
        await asyncio.sleep(knobs.embed_delay)
    if knobs.embed_status is not None and knobs.embed_status_at in (None, call):
        state.counters["status_answers"] += 1
        return _status_answer(knobs, knobs.embed_status, model, inputs[0])
    texts = [(strip_directives(t).strip() or t) if directive_knobs else t for t in inputs]
    # The model's CPU work stays off the loop that relays the chat streams.
    vectors, tokens = await asyncio.to_thread(state.embedder.embed, texts, dimensions)
    usage = None if knobs.embed_usage is None else json.loads(knobs.embed_usage)
    return _json_response(200, embeddings_body(model, vectors, tokens, encoding, usage))


async def list_embedding_models(request: web.Request) -> web.Response:
    data = [{"id": model_id, "name": name} for model_id, name in EMBEDDING_MODELS]
    return _json_response(200, json.dumps({"data": data}).encode())


async def list_models(request: web.Request) -> web.Response:
    data = [
        {
            "id": model_id,
            "name": name,
            "context_length": 128000,
            "pricing": {"prompt": "0", "completion": "0"},
        }
        for model_id, name in MODELS
    ]
    return _json_response(200, json.dumps({"data": data}).encode())


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats())


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[STATE_KEY].request_log))


async def post_reset(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.reset()
    return web.json_response({"ok": True})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].defaults)


async def post_config(request: web.Request) -> web.Response:
    try:
        knobs = await request.json()
    except ValueError:
        return _error(400, "config body is not JSON")
    if not isinstance(knobs, dict):
        return _error(400, "config body must be a JSON object")
    try:
        return web.json_response(request.app[STATE_KEY].configure(knobs))
    except KnobError as exc:
        return _error(400, str(exc))


def build_app(state: FakeState) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state
    for prefix in ("/api/v1", "/v1"):
        app.router.add_post(prefix + "/chat/completions", chat_completions)
        app.router.add_get(prefix + "/models", list_models)
        app.router.add_post(prefix + "/embeddings", embeddings)
        app.router.add_get(prefix + "/embeddings/models", list_embedding_models)
    app.router.add_get("/_fake/stats", get_stats)
    app.router.add_get("/_fake/requests", get_requests)
    app.router.add_post("/_fake/reset", post_reset)
    app.router.add_get("/_fake/config", get_config)
    app.router.add_post("/_fake/config", post_config)
    return app


async def start_site(
    state: FakeState, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 4096
) -> tuple[web.AppRunner, int]:
    """Serve `state` on host:port (0 = a free port); returns the runner and the port."""
    runner = web.AppRunner(
        build_app(state),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=0.5,
    )
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
        site = web.SockSite(runner, sock, backlog=backlog)
        await site.start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner, sock.getsockname()[1]
