"""Fallback models against the fake upstream, in both routings: for each fault, the exact
number of upstream attempts per model (counted by the fake), what the client receives,
and what the execution record keeps and the budget is debited.

Faults are set per model with the fake's ``per_model`` knob (its server defaults, reset
between tests). Short timeouts keep the timeout cases fast: first byte and content idle
1.5 s (under the faults' 3 s; at 0.6 s a loaded CI run timed out a healthy first byte and
counted a retry the case does not expect). Three tries per model (``UPSTREAM_MAX_RETRIES=2``) wherever a fault is retried.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from promptstream import ServerSentEvent, SSEDecoder
from support import FunctionServer, Serve, add_prompt, auth, body, executions, the_record

P, S, T = "demo/primary", "demo/second", "demo/third"
TRIES = 3  # UPSTREAM_MAX_RETRIES=2: three tries of each model
MODELS_ENV = {
    "ALLOWED_MODELS": f"{P},{S},{T},demo/fourth",
    "DEFAULT_MODEL": P,
    "UPSTREAM_FIRST_BYTE_TIMEOUT": "1.5",
    "UPSTREAM_IDLE_TIMEOUT": "1.5",
    "UPSTREAM_MAX_RETRIES": "2",
    "HEARTBEAT_SECONDS": "0.15",
}
CONTEXT_MESSAGE = "This endpoint's maximum context length is 8192 tokens."


def _server(serve: Serve, target: str, routing: str) -> Iterator[FunctionServer]:
    with serve(target, env={**MODELS_ENV, "FALLBACK_ROUTING": routing}) as server:
        yield server


@pytest.fixture(scope="module")
def client_stream(serve: Serve) -> Iterator[FunctionServer]:
    yield from _server(serve, "execute_prompt_stream", "client")


@pytest.fixture(scope="module")
def native_stream(serve: Serve) -> Iterator[FunctionServer]:
    yield from _server(serve, "execute_prompt_stream", "native")


@pytest.fixture(scope="module")
def client_execute(serve: Serve) -> Iterator[FunctionServer]:
    yield from _server(serve, "execute_prompt", "client")


@pytest.fixture(scope="module")
def native_execute(serve: Serve) -> Iterator[FunctionServer]:
    yield from _server(serve, "execute_prompt", "native")


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def events(self) -> list[ServerSentEvent]:
        decoder = SSEDecoder()
        return [*decoder.feed(self.raw), *decoder.close()]

    def event(self, kind: str) -> dict[str, Any]:
        [found] = [json.loads(e.data) for e in self.events if e.event == kind]
        return dict(found)

    @property
    def text(self) -> str:
        return "".join(
            json.loads(e.data).get("content") or ""
            for e in self.events
            if e.event == "message" and e.data != "[DONE]"
        )

    def json(self) -> dict[str, Any]:
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.raw
        return dict(json.loads(self.raw))


def post(server: FunctionServer, **fields: Any) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        payload = body(variables={"topic": "fallbacks"}, **fields)
        conn.request("POST", "/", body=payload, headers=auth())
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def per_model(fake: FakeOpenRouterThread, knobs: dict[str, dict[str, Any]]) -> None:
    fake.configure(per_model=knobs)


def attempts_per_model(fake: FakeOpenRouterThread) -> dict[str, int]:
    return dict(fake.stats()["attempts"])


def brief(attempts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each attempt as (model, outcome, error_code, status); a failure has a message."""
    for a in attempts:
        assert set(a) == {"model", "outcome", "error_code", "status", "message"}
        assert bool(a["message"]) == (a["outcome"] == "failed"), a
    return [(a["model"], a["outcome"], a["error_code"], a["status"]) for a in attempts]


@dataclass
class Case:
    name: str
    faults: dict[str, dict[str, Any]]
    # Upstream attempts per model, as the fake counted them.
    upstream: dict[str, int]
    # (model, outcome, error_code, status) of each attempt.
    attempts: list[tuple[Any, ...]]
    # "end": the stream completed; "error": an error event after the start; else the
    # HTTP status of a JSON refusal.
    ending: str | int = "end"
    code: str | None = None
    fallbacks: list[str] = field(default_factory=lambda: [S])

    @property
    def answered(self) -> str:
        served = [a[0] for a in self.attempts if a[1] == "answered"]
        return served[0] if served else P


def answered(model: str) -> tuple[Any, ...]:
    return (model, "answered", None, None)


def skipped(model: str) -> tuple[Any, ...]:
    return (model, "skipped", None, None)


def failed(model: str, code: str, status: int | None = None) -> tuple[Any, ...]:
    return (model, "failed", code, status)


# What never falls back, whichever routing: our key refused, and a failure after the first
# chunk (the text already sent stays).
NO_FALLBACK: list[Case] = [
    Case(
        "401 our key refused: no fallback",
        {P: {"status": 401}},
        {P: 1},
        [failed(P, "upstream_auth", 401)],
        ending=502,
        code="upstream_auth",
    ),
    Case(
        "error event after 3 chunks: no fallback, the text stays",
        {P: {"error_after": 3}},
        {P: 1},
        [failed(P, "upstream_error")],
        ending="error",
        code="upstream_error",
    ),
]

# In client routing each model gets its own retries, then the next model is asked.
CLIENT: list[Case] = [
    Case(
        "429, then the next model",
        {P: {"status": 429}},
        {P: TRIES, S: 1},
        [failed(P, "rate_limited", 429), answered(S)],
    ),
    Case(
        "500, then the next model",
        {P: {"status": 500}},
        {P: TRIES, S: 1},
        [failed(P, "upstream_error", 500), answered(S)],
    ),
    Case(
        "503, then the next model",
        {P: {"status": 503}},
        {P: TRIES, S: 1},
        [failed(P, "upstream_unavailable", 503), answered(S)],
    ),
    Case(
        "no headers in time, then the next model",
        {P: {"first_byte_delay": 3}},
        {P: TRIES, S: 1},
        [failed(P, "upstream_timeout"), answered(S)],
    ),
    Case(
        "no content in time, then the next model",
        {P: {"stall_after": 0, "stall": 3}},
        {P: TRIES, S: 1},
        [failed(P, "upstream_timeout"), answered(S)],
    ),
    Case(
        "connection closed before headers, then the next model",
        {P: {"disconnect": True}},
        {P: TRIES, S: 1},
        [failed(P, "upstream_unavailable"), answered(S)],
    ),
    Case(
        "connection dropped before content, then the next model",
        {P: {"drop_after": 0}},
        {P: TRIES, S: 1},
        [failed(P, "upstream_disconnected"), answered(S)],
    ),
    Case(
        "404 model unavailable: not retried, the next model",
        {P: {"status": 404}},
        {P: 1, S: 1},
        [failed(P, "upstream_bad_request", 404), answered(S)],
    ),
    Case(
        "400 context length: not retried, the next model",
        {P: {"status": 400, "message": CONTEXT_MESSAGE}},
        {P: 1, S: 1},
        [failed(P, "upstream_bad_request", 400), answered(S)],
    ),
    Case(
        "two models down, the third answers",
        {P: {"status": 429}, S: {"status": 502}},
        {P: TRIES, S: TRIES, T: 1},
        [failed(P, "rate_limited", 429), failed(S, "upstream_unavailable", 502), answered(T)],
        fallbacks=[S, T],
    ),
    Case(
        "every model fails: the last error, with every attempt",
        {P: {"status": 503}, S: {"status": 500}, T: {"status": 503}},
        {P: TRIES, S: TRIES, T: TRIES},
        [
            failed(P, "upstream_unavailable", 503),
            failed(S, "upstream_error", 500),
            failed(T, "upstream_unavailable", 503),
        ],
        ending=503,
        code="upstream_unavailable",
        fallbacks=[S, T],
    ),
    Case(
        "402 out of credits: no fallback",
        {P: {"status": 402}},
        {P: 1},
        [failed(P, "out_of_credits", 402)],
        ending=402,
        code="out_of_credits",
    ),
    Case(
        "400 a bad request: no fallback",
        {P: {"status": 400}},
        {P: 1},
        [failed(P, "upstream_bad_request", 400)],
        ending=400,
        code="upstream_bad_request",
    ),
    Case(
        "connection dropped after 2 chunks: no fallback, the text stays",
        {P: {"drop_after": 2}},
        {P: 1},
        [failed(P, "upstream_disconnected")],
        ending="error",
        code="upstream_disconnected",
    ),
    *NO_FALLBACK,
]

# In native routing one request carries the list; the fake, like OpenRouter, skips a
# model that fails before its first byte. What fails past that point (a timeout of
# ours, a drop after the headers) is retried as the same list, never moved down it.
NATIVE: list[Case] = [
    Case(
        "429: the upstream skips to the next model",
        {P: {"status": 429}},
        {P: 1, S: 1},
        [skipped(P), answered(S)],
    ),
    Case(
        "500: the upstream skips to the next model",
        {P: {"status": 500}},
        {P: 1, S: 1},
        [skipped(P), answered(S)],
    ),
    Case(
        "503: the upstream skips to the next model",
        {P: {"status": 503}},
        {P: 1, S: 1},
        [skipped(P), answered(S)],
    ),
    Case(
        "connection closed before headers: the upstream skips to the next model",
        {P: {"disconnect": True}},
        {P: 1, S: 1},
        [skipped(P), answered(S)],
    ),
    Case(
        "404 model unavailable: the upstream skips to the next model",
        {P: {"status": 404}},
        {P: 1, S: 1},
        [skipped(P), answered(S)],
    ),
    Case(
        "two models down, the third answers",
        {P: {"status": 429}, S: {"status": 502}},
        {P: 1, S: 1, T: 1},
        [skipped(P), skipped(S), answered(T)],
        fallbacks=[S, T],
    ),
    Case(
        "no headers in time: our timeout, the list retried",
        {P: {"first_byte_delay": 3}},
        {P: TRIES},
        [failed(P, "upstream_timeout")],
        ending=504,
        code="upstream_timeout",
    ),
    Case(
        "connection dropped before content: the list retried",
        {P: {"drop_after": 0}},
        {P: TRIES},
        [failed(P, "upstream_disconnected")],
        ending="error",
        code="upstream_disconnected",
    ),
    Case(
        "every model fails: the last model's error, retried as a list",
        {P: {"status": 503}, S: {"status": 500}, T: {"status": 503}},
        {P: TRIES, S: TRIES, T: TRIES},
        [skipped(P), skipped(S), failed(T, "upstream_unavailable", 503)],
        ending=503,
        code="upstream_unavailable",
        fallbacks=[S, T],
    ),
    *NO_FALLBACK,
]


def check_stream(case: Case, server: FunctionServer, db: Any, fake: FakeOpenRouterThread) -> None:
    add_prompt(db)
    per_model(fake, case.faults)
    reply = post(server, fallback_models=case.fallbacks)
    record = the_record(db)
    assert attempts_per_model(fake) == case.upstream
    assert brief(record["attempts"]) == case.attempts
    assert record["requested_model"] == P
    assert record["models"] == [P, *case.fallbacks]
    assert record["model"] == case.answered
    if isinstance(case.ending, int):
        assert reply.status == case.ending, reply.raw
        error = reply.json()["error"]
        assert error["code"] == case.code
        assert error["details"]["attempts"] == record["attempts"]
        assert (record["status"], record["error_code"], record["output"]) == (
            "error",
            case.code,
            "",
        )
        return
    assert reply.status == 200, reply.raw
    start = reply.event("start")
    assert start["models"] == [P, *case.fallbacks]
    assert start["model"] == P and start["comparison_id"] is None
    if case.ending == "end":
        end = reply.event("end")
        assert end["model"] == case.answered
        assert end["attempts"] == record["attempts"]
        assert record["status"] == "completed"
        assert record["output"] == reply.text
        assert reply.text.count("Hello from the local demo model.") == 1
        # Debited what the model that answered reported; the failures cost nothing more.
        assert record["usage"]["total_tokens"] == record["tokens_debited"]
    else:
        error = reply.event("error")
        assert error["code"] == case.code
        assert error["attempts"] == record["attempts"]
        assert (record["status"], record["error_code"]) == ("error", case.code)
        # The text already sent stays, in the record too.
        assert record["output"] == reply.text


@pytest.mark.parametrize("case", CLIENT, ids=[c.name for c in CLIENT])
def test_client_routing(
    case: Case, client_stream: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    check_stream(case, client_stream, db, fake_upstream)
    # One model per upstream request, each asked in turn.
    asked = [r["json"]["model"] for r in fake_upstream.requests()]
    assert asked == [m for m, n in case.upstream.items() for _ in range(n)]
    assert all("models" not in r["json"] for r in fake_upstream.requests())


@pytest.mark.parametrize("case", NATIVE, ids=[c.name for c in NATIVE])
def test_native_routing(
    case: Case, native_stream: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    check_stream(case, native_stream, db, fake_upstream)
    # One list per upstream request, and no separate model (it would be tried first).
    for request in fake_upstream.requests():
        assert request["json"]["models"] == [P, *case.fallbacks]
        assert "model" not in request["json"]


def test_partial_text_of_a_mid_stream_failure_is_kept_and_not_retried(
    client_stream: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    per_model(fake_upstream, {P: {"error_after": 3}})
    reply = post(client_stream, fallback_models=[S, T])
    kinds = [e.event for e in reply.events]
    assert kinds == ["start", "message", "message", "message", "error", "message"], kinds
    record = the_record(db)
    assert reply.text and record["output"] == reply.text
    assert attempts_per_model(fake_upstream) == {P: 1}


def test_no_fallback_models_means_the_primary_alone(
    client_stream: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, fallback_models=[S])
    per_model(fake_upstream, {P: {"status": 503}})
    reply = post(client_stream, fallback_models=[])
    assert reply.status == 503
    assert attempts_per_model(fake_upstream) == {P: TRIES}
    assert brief(the_record(db)["attempts"]) == [failed(P, "upstream_unavailable", 503)]


def test_the_prompts_fallbacks_serve_when_the_request_names_none(
    native_stream: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    # A prompt's fallbacks outside ALLOWED_MODELS are dropped, not refused.
    add_prompt(db, preferred_model=S, fallback_models=["not/allowed", T])
    per_model(fake_upstream, {S: {"status": 429}})
    reply = post(native_stream)
    assert reply.status == 200, reply.raw
    assert reply.event("start")["models"] == [S, T]
    record = the_record(db)
    assert (record["requested_model"], record["model"]) == (S, T)
    assert brief(record["attempts"]) == [skipped(S), answered(T)]
    assert attempts_per_model(fake_upstream) == {S: 1, T: 1}


# -- execute_prompt: the same fallback, one JSON answer -------------------------------


@pytest.mark.parametrize("routing", ["client", "native"])
def test_execute_prompt_falls_back_and_says_which_model_answered(
    routing: str,
    client_execute: FunctionServer,
    native_execute: FunctionServer,
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    server = client_execute if routing == "client" else native_execute
    add_prompt(db)
    per_model(fake_upstream, {P: {"status": 429}})
    reply = post(server, fallback_models=[S], comparison_id="cmp-1")
    assert reply.status == 200, reply.raw
    doc = reply.json()
    record = the_record(db)
    assert (doc["model"], doc["requested_model"], doc["comparison_id"]) == (S, P, "cmp-1")
    assert doc["attempts"] == record["attempts"]
    first = failed(P, "rate_limited", 429) if routing == "client" else skipped(P)
    assert brief(record["attempts"]) == [first, answered(S)]
    assert attempts_per_model(fake_upstream) == {P: TRIES if routing == "client" else 1, S: 1}
    assert (record["model"], record["comparison_id"]) == (S, "cmp-1")
    assert record["usage"]["total_tokens"] == record["tokens_debited"]


def test_execute_prompt_answers_the_last_error_with_every_attempt(
    client_execute: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db)
    per_model(fake_upstream, {P: {"status": 404}, S: {"status": 503}})
    reply = post(client_execute, fallback_models=[S])
    assert reply.status == 503
    error = reply.json()["error"]
    record = the_record(db)
    assert brief(error["details"]["attempts"]) == [
        failed(P, "upstream_bad_request", 404),
        failed(S, "upstream_unavailable", 503),
    ]
    assert record["attempts"] == error["details"]["attempts"]
    assert attempts_per_model(fake_upstream) == {P: 1, S: TRIES}
    assert record["model"] == P


# -- the models a request names, checked at the edge ----------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"fallback_models": [S, "not/allowed"]}, "model_not_allowed"),
        ({"model": "not/allowed", "fallback_models": [S]}, "model_not_allowed"),
        ({"fallback_models": [S, S]}, "invalid_request"),
        ({"fallback_models": [S, T, "demo/fourth", P]}, "invalid_request"),
        ({"comparison_id": "../x"}, "invalid_request"),
    ],
)
def test_models_the_request_names_are_refused_before_any_read(
    fields: dict[str, Any],
    code: str,
    client_stream: FunctionServer,
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    add_prompt(db)
    reply = post(client_stream, **fields)
    assert reply.status == 400
    assert reply.json()["error"]["code"] == code
    assert executions(db) == []
    assert list(db.collection("user_limits").stream()) == []
    assert fake_upstream.stats()["requests"] == 0


def test_a_fallback_repeating_the_prompts_preferred_model_is_refused_unwritten(
    client_stream: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, preferred_model=S)
    reply = post(client_stream, fallback_models=[S])
    assert reply.status == 400
    assert "must not repeat" in reply.json()["error"]["message"]
    assert executions(db) == []
    assert fake_upstream.stats()["requests"] == 0


def test_a_preferred_model_not_allowed_gives_way_to_the_default(
    client_stream: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, preferred_model="not/allowed")
    reply = post(client_stream)
    assert reply.status == 200, reply.raw
    assert reply.event("start")["models"] == [P]
    assert the_record(db)["requested_model"] == P
    assert attempts_per_model(fake_upstream) == {P: 1}
