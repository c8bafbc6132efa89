"""execute_prompt_stream and execute_prompt as deployed: functions-framework on gunicorn,
the real Firestore emulator, the fake OpenRouter upstream, read with a streaming client."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from devstack import AuthEmulatorStandIn
from fake_openrouter import FakeOpenRouterThread
from promptstream import SSEDecoder
from support import (
    FirestoreEmulator,
    FunctionServer,
    add_prompt,
    auth,
    body,
    executions,
    read_until,
    wait_until,
)


@dataclass
class Received:
    status: int
    headers: Mapping[str, str]
    events: list[tuple[float, str, str]]  # (arrival, event type, data)
    comments: int
    json: Any = None

    def content_events(self) -> list[dict[str, Any]]:
        return [json.loads(d) for _, e, d in self.events if e == "message" and d != "[DONE]"]

    def text(self) -> str:
        return "".join(e["content"] for e in self.content_events())

    def named(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(d) for _, e, d in self.events if e == name]


async def post_stream(
    url: str,
    payload: bytes,
    headers: dict[str, str],
    *,
    stop_after_content: int | None = None,
    timeout: float = 30,
) -> Received:
    decoder = SSEDecoder()
    events: list[tuple[float, str, str]] = []
    seen_content = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(url, data=payload, headers=headers) as resp:
            hdrs = resp.headers.copy()  # names are case-insensitive
            if resp.headers.get("Content-Type", "").startswith("application/json"):
                return Received(resp.status, hdrs, [], 0, await resp.json())
            async for data in resp.content.iter_any():
                now = time.monotonic()
                for ev in decoder.feed(data):
                    events.append((now, ev.event, ev.data))
                    if ev.event == "message" and ev.data != "[DONE]":
                        seen_content += 1
                if stop_after_content is not None and seen_content >= stop_after_content:
                    break  # leaving the block closes the connection: a browser going away
            return Received(resp.status, hdrs, events, decoder.comments)


async def post_json(url: str, payload: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=payload, headers=headers) as resp:
            return resp.status, await resp.json()


def raw_request(version: str, payload: bytes) -> bytes:
    """A POST of ``payload`` as Alice, byte for byte, for clients written on a socket."""
    head = "".join(f"{k}: {v}\r\n" for k, v in auth().items())
    return (
        f"POST / {version}\r\nHost: 127.0.0.1\r\n{head}Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def closed_record(db: Any, timeout: float = 10.0) -> Any:
    """The first execution record that is no longer ``streaming`` (None if none in time)."""
    return wait_until(
        lambda: next((r for r in executions(db) if r["status"] != "streaming"), None), timeout
    )


# -- streaming ---------------------------------------------------------------------------


@pytest.fixture
def relay(stream_server: FunctionServer) -> FunctionServer:
    """The stream endpoint."""
    return stream_server


def test_stream_relays_chunks_incrementally(db: Any, relay: FunctionServer) -> None:
    add_prompt(db, content="Story about {{topic}} [[fake chunks=5 delay=0.25]]")
    got = run(post_stream(relay.url, body(variables={"topic": "owls"}), auth()))
    assert got.status == 200
    content_times = [t for t, e, d in got.events if e == "message" and d != "[DONE]"]
    assert len(content_times) == 5
    # Arrivals are spread over the upstream's own pacing (4 gaps of 0.25 s), not bunched
    # at the end, which is what a buffering relay would do.
    gaps = [b - a for a, b in itertools.pairwise(content_times)]
    assert all(gap > 0.1 for gap in gaps), gaps


def test_stream_wire_format(
    db: Any, relay: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="Say {{topic}} [[fake chunks=3 text='a b c']]")
    got = run(post_stream(relay.url, body(variables={"topic": "x"}), auth()))
    assert got.headers["Content-Type"].startswith("text/event-stream")
    assert got.headers["Cache-Control"] == "no-cache, no-transform"
    assert got.headers["X-Accel-Buffering"] == "no"
    assert got.headers.get("Content-Encoding", "identity") == "identity"
    types = [e for _, e, _ in got.events]
    assert types[0] == "start" and types[-2] == "end" and got.events[-1][2] == "[DONE]"
    start = got.named("start")[0]
    assert start["execution_id"] == got.headers["X-Execution-Id"]
    assert got.text() == "a b c"
    assert got.content_events()[-1]["finish_reason"] == "stop"
    end = got.named("end")[0]
    assert end["usage"]["completion_tokens"] == 3
    assert end["model"] == "x-ai/grok-4-fast:free"
    assert end["generation_id"].startswith("gen-")
    record = db.collection("executions").document(start["execution_id"]).get().to_dict()
    assert record["status"] == "completed"
    assert record["output"] == "a b c"
    assert record["usage"]["total_tokens"] == end["usage"]["total_tokens"]
    assert record["generation_id"] == end["generation_id"]
    assert record["owner_uid"] == "alice" and record["prompt_id"] == "p1"
    assert record["variables"] == {"topic": "x"}
    assert record["ttft_ms"] is not None and record["duration_ms"] >= record["ttft_ms"]
    assert fake_upstream.stats()["requests"] == 1


def test_event_ids_increase(db: Any, relay: FunctionServer) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=4]]")
    decoder_ids: list[str] = []

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                relay.url, data=body(variables={"topic": "t"}), headers=auth()
            ) as resp:
                dec = SSEDecoder()
                async for data in resp.content.iter_any():
                    decoder_ids.extend(
                        ev.id
                        for ev in dec.feed(data)
                        if ev.event == "message" and ev.data != "[DONE]"
                    )

    run(go())
    assert decoder_ids == ["1", "2", "3", "4"]


def test_variable_values_are_never_expanded_again(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(
        db,
        content="Write for {{audience}} about {{ topic }}.",
        system_prompt="Secret plan: {{secret}}",
        variables=[{"name": "secret", "required": False, "default": "hidden"}],
    )
    payload = body(variables={"topic": "{{secret}} and {{audience}}", "audience": "{{topic}}"})
    got = run(post_stream(stream_server.url, payload, auth()))
    assert got.status == 200
    messages = fake_upstream.requests()[-1]["json"]["messages"]
    assert messages[0] == {"role": "system", "content": "Secret plan: hidden"}
    assert messages[-1]["content"] == "Write for {{topic}} about {{secret}} and {{audience}}."


def test_missing_variables_are_all_named(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(
        db,
        content="{{a}} {{b}} {{c}}",
        variables=[{"name": "c", "required": False, "default": "C"}],
    )
    got = run(post_stream(stream_server.url, body(), auth()))
    assert got.status == 400
    assert got.json["error"]["code"] == "missing_variables"
    assert got.json["error"]["details"]["missing"] == ["a", "b"]
    assert fake_upstream.stats()["requests"] == 0
    assert executions(db) == []


def test_unknown_variables_are_an_error(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="{{topic}}")
    got = run(post_stream(stream_server.url, body(variables={"topic": "t", "tpoic": "t"}), auth()))
    assert got.status == 400
    assert got.json["error"]["code"] == "unknown_variables"
    assert got.json["error"]["details"]["unknown"] == ["tpoic"]
    assert fake_upstream.stats()["requests"] == 0


def test_defaults_fill_in(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(
        db,
        content="Hello {{name}}",
        variables=[{"name": "name", "required": True, "default": "world"}],
    )
    got = run(post_stream(stream_server.url, body(), auth()))
    assert got.status == 200
    assert fake_upstream.requests()[-1]["json"]["messages"][-1]["content"] == "Hello world"


def test_public_prompt_runs_for_others_private_one_is_not_found(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, "pub", content="public [[fake chunks=1]]", public=True)
    add_prompt(db, "priv", content="private")
    ok = run(post_stream(stream_server.url, body("pub"), auth("bob")))
    assert ok.status == 200 and ok.named("end")
    hidden = run(post_stream(stream_server.url, body("priv"), auth("bob")))
    absent = run(post_stream(stream_server.url, body("nope"), auth("bob")))
    assert hidden.status == absent.status == 404
    assert hidden.json == absent.json
    assert fake_upstream.stats()["requests"] == 1


def test_upstream_refusal_before_content_is_an_http_status(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="{{topic}} [[fake status=402]]")
    got = run(post_stream(stream_server.url, body(variables={"topic": "t"}), auth()))
    assert got.status == 402
    assert got.json["error"]["code"] == "out_of_credits"
    (record,) = executions(db)
    assert record["status"] == "error" and record["error_code"] == "out_of_credits"


def test_error_mid_stream_is_an_error_event_and_the_partial_is_kept(
    db: Any, relay: FunctionServer
) -> None:
    add_prompt(db, content="{{topic}} [[fake error_after=2 chunks=5 text='a b c d e']]")
    got = run(post_stream(relay.url, body(variables={"topic": "t"}), auth()))
    assert got.status == 200
    assert got.text() == "a b"
    (error,) = got.named("error")
    assert error["code"] == "upstream_error"
    assert "Traceback" not in error["message"]
    assert got.events[-1][2] == "[DONE]"
    assert not got.named("end")
    (record,) = executions(db)
    assert record["status"] == "error"
    assert record["output"] == "a b"
    assert record["error_code"] == "upstream_error"


def test_heartbeats_while_the_model_is_silent(db: Any, relay: FunctionServer) -> None:
    # The test server sends a heartbeat every 0.3 s; the model is silent for 1.5 s.
    add_prompt(db, content="{{topic}} [[fake first_chunk_delay=1.5 chunks=2]]")
    got = run(post_stream(relay.url, body(variables={"topic": "t"}), auth()))
    assert got.status == 200
    assert got.comments >= 3
    assert got.named("end")


def test_disconnect_cancels_upstream_and_records_partial(
    db: Any, relay: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=60 delay=0.1]]")
    got = run(post_stream(relay.url, body(variables={"topic": "t"}), auth(), stop_after_content=3))
    assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1)
    record = closed_record(db)
    assert record["status"] == "cancelled"
    # The record holds at least what the client saw; chunks written after the client
    # stopped reading (before the relay noticed) may be there too.
    assert record["output"].startswith(got.text())
    assert fake_upstream.stats()["streams_completed"] == 0
    limits = db.collection("user_limits").document("alice").get().to_dict()
    assert limits["leases"] == {}
    assert limits["tokens_today"] > 0  # debited by an estimate, no usage was reported


def test_disconnect_while_model_is_silent_is_noticed(
    db: Any, relay: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="{{topic}} [[fake first_chunk_delay=30 chunks=1]]")

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                relay.url, data=body(variables={"topic": "t"}), headers=auth()
            ) as resp:
                assert resp.status == 200
                await resp.content.readany()  # the start event, then leave

    run(go())
    assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1, timeout=5)
    record = closed_record(db)
    assert record["status"] == "cancelled"


def test_concurrent_streams_do_not_block_each_other(db: Any, relay: FunctionServer) -> None:
    add_prompt(db, "pub", content="{{topic}} [[fake chunks=8 delay=0.2]]", public=True)
    n = 20

    async def go() -> list[Received]:
        return await asyncio.gather(
            *(
                post_stream(relay.url, body("pub", variables={"topic": "t"}), auth(f"user{i}"))
                for i in range(n)
            )
        )

    results = run(go())
    assert all(r.status == 200 and len(r.content_events()) == 8 for r in results)
    first_contents = [next(t for t, e, d in r.events if e == "message") for r in results]
    ends = [r.events[-1][0] for r in results]
    # Every stream had its first token before any stream finished: they ran side by side.
    assert max(first_contents) < min(ends)


def test_keep_alive_connection_is_reused_after_a_stream(db: Any, relay: FunctionServer) -> None:
    # After the loop gave the connection back, gunicorn ends the chunked body and serves
    # the next request on the same socket.
    add_prompt(db, content="{{topic}} [[fake chunks=4 text='one two three four']]")
    conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=20)
    sockets = []
    try:
        for _ in range(3):
            conn.request(
                "POST",
                "/",
                body=body(variables={"topic": "t"}),
                headers={**auth(), "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            raw = resp.read()
            assert resp.status == 200
            assert resp.getheader("Transfer-Encoding") == "chunked"
            assert not resp.will_close
            decoder = SSEDecoder()
            events = decoder.feed(raw)
            text = "".join(
                json.loads(e.data)["content"]
                for e in events
                if e.event == "message" and e.data != "[DONE]"
            )
            assert text == "one two three four"
            assert events[-1].data == "[DONE]"
            sockets.append(conn.sock)
    finally:
        conn.close()
    assert sockets[0] is sockets[1] is sockets[2]


def test_a_request_pipelined_during_a_stream_is_answered_after_it(
    db: Any, relay: FunctionServer
) -> None:
    # The loop does not read from the connection it writes to: the next request is
    # gunicorn's to read once the stream is over.
    add_prompt(db, content="{{topic}} [[fake chunks=8 delay=0.1]]")
    with socket.create_connection(("127.0.0.1", relay.port), timeout=20) as sock:
        sock.sendall(raw_request("HTTP/1.1", body(variables={"topic": "t"})))
        # Well into the stream: two content events have arrived.
        read_until(sock, lambda got: got.count(b"\nid: ") >= 2 or got.startswith(b"id: "))
        sock.sendall(b"GET /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = read_until(sock, lambda got: got.endswith(b"ok"))
    stream, _, health = received.partition(b"\r\n0\r\n\r\n")
    assert stream.endswith(b"data: [DONE]\n\n")
    assert health.startswith(b"HTTP/1.1 200") and health.endswith(b"ok")


def test_a_request_pipelined_as_the_stream_starts_is_answered_or_the_connection_closed(
    db: Any, relay: FunctionServer
) -> None:
    # Sent the moment the start event arrives, the next request can be waiting when the
    # loop takes the connection over, and the loop's transport may read it: then the
    # stream still ends properly and the connection is closed, so the client retries the
    # unanswered request, as HTTP/1.1 pipelining requires. Never a hang, never garbage.
    add_prompt(db, content="{{topic}} [[fake chunks=4 delay=0.05]]")
    health = b"GET /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", relay.port), timeout=20) as sock:
        sock.sendall(raw_request("HTTP/1.1", body(variables={"topic": "t"})))
        first = sock.recv(65536)
        sock.sendall(health)
        received = first + read_until(sock, lambda got: got.endswith(b"ok"))
    stream, sep, rest = received.partition(b"\r\n0\r\n\r\n")
    assert sep and stream.endswith(b"data: [DONE]\n\n")
    assert rest == b"" or (rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"ok"))
    # The record is closed just after the last byte went out.
    record = closed_record(db)
    assert record["status"] == "completed"


def test_http_1_0_client_gets_an_unframed_body(db: Any, relay: FunctionServer) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=3 text='a b c']]")
    request = raw_request("HTTP/1.0", body(variables={"topic": "t"}))
    with socket.create_connection(("127.0.0.1", relay.port), timeout=20) as sock:
        sock.sendall(request)
        # HTTP/1.0: the body ends when the server closes the connection.
        received = read_until(sock, lambda _: False)
    head_bytes, _, raw = received.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.0 200") or head_bytes.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head_bytes.lower()
    events = SSEDecoder().feed(raw)
    assert events[0].event == "start"
    assert events[-1].data == "[DONE]"
    text = "".join(
        json.loads(e.data)["content"] for e in events if e.event == "message" and e.data != "[DONE]"
    )
    assert text == "a b c"


@pytest.fixture(scope="module")
def stall_server(firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread) -> Any:
    with FunctionServer(
        "execute_prompt_stream",
        firestore_emulator.host,
        fake_upstream.base_url,
        env={"STALL_TIMEOUT_SECONDS": "1", "DEFAULT_MAX_TOKENS": "150000"},
    ) as server:
        yield server


def test_client_that_stops_reading_is_cut_off(
    db: Any, stall_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    # ~10 MB of events at full speed to a client whose receive window is tiny and who reads
    # nothing after the headers: more than the socket buffers (up to 4 MB here) and the
    # transport's high-water mark hold, so the writer waits, and after
    # STALL_TIMEOUT_SECONDS it counts the client as gone.
    add_prompt(db, content="{{topic}} [[fake chunks=150000 delay=0 stamp=true]]")
    request = raw_request("HTTP/1.1", body(variables={"topic": "t"}))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.settimeout(20)
        sock.connect(("127.0.0.1", stall_server.port))
        sock.sendall(request)
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        # Now read nothing: the record must still be closed, and the upstream with it.
        record = closed_record(db, timeout=15)
        assert record["status"] == "cancelled"
        assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1, timeout=5)
        assert fake_upstream.stats()["streams_completed"] == 0
    finally:
        sock.close()


def test_health_probe_answers_at_once(stream_server: FunctionServer) -> None:
    async def go() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(stream_server.url + "/__/health") as resp:
                return resp.status, await resp.text()

    assert run(go()) == (200, "ok")


def test_cors_preflight_and_stream_headers(db: Any, stream_server: FunctionServer) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=1]]")

    async def go() -> tuple[Any, Any, Any]:
        async with aiohttp.ClientSession() as session:
            pre = await session.options(
                stream_server.url,
                headers={
                    "Origin": "http://127.0.0.1:5173",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            evil = await session.options(
                stream_server.url,
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
            )
            post = await session.post(
                stream_server.url,
                data=body(variables={"topic": "t"}),
                headers={**auth(), "Origin": "http://127.0.0.1:5173"},
            )
            await post.read()
            return pre.headers, evil.headers, post.headers

    pre, evil, post = run(go())
    assert pre["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"
    assert "POST" in pre["Access-Control-Allow-Methods"]
    assert "authorization" in pre["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Origin" not in evil
    assert post["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"
    assert "Retry-After" in post["Access-Control-Expose-Headers"]


def refused_by_a_server_with(
    env: dict[str, str], firestore_emulator: FirestoreEmulator, fake: FakeOpenRouterThread, db: Any
) -> Received:
    """Start a function server with ``env`` and post one valid request to it."""
    add_prompt(db, content="{{topic}}")
    with FunctionServer(
        "execute_prompt_stream", firestore_emulator.host, fake.base_url, env=env
    ) as server:
        return run(post_stream(server.url, body(variables={"topic": "t"}), auth()))


STAND_IN_PORT = AuthEmulatorStandIn.shared().host.rsplit(":", 1)[1]


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"OPENROUTER_API_KEY": ""}, id="no API key"),
        # With FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin accepts unsigned tokens: the
        # guard refuses every token (500) unless it sees the local emulator stack.
        pytest.param(
            {"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9"},
            id="emulator auth, not on Cloud Run, but no Auth emulator answers",
        ),
        pytest.param(
            {"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9", "FUNCTIONS_EMULATOR": "true"},
            id="emulator auth with FUNCTIONS_EMULATOR=true alone",
        ),
        pytest.param(
            # 0.0.0.0 reaches the stand-in on Linux, but it is no loopback address.
            {"FIREBASE_AUTH_EMULATOR_HOST": f"0.0.0.0:{STAND_IN_PORT}"},
            id="emulator auth on a host that is not loopback",
        ),
        pytest.param(
            {"K_CONFIGURATION": "execute-prompt-stream", "K_SERVICE": "execute_prompt_stream"},
            id="emulator auth on Cloud Run, an Auth emulator answering",
        ),
    ],
)
def test_misconfiguration_is_refused_before_any_work(
    env: dict[str, str],
    firestore_emulator: FirestoreEmulator,
    fake_upstream: FakeOpenRouterThread,
    db: Any,
) -> None:
    got = refused_by_a_server_with(env, firestore_emulator, fake_upstream, db)
    assert got.status == 500
    assert got.json["error"]["code"] == "configuration_error"
    assert fake_upstream.stats()["requests"] == 0
    assert executions(db) == []


def test_unsigned_tokens_are_accepted_under_the_functions_emulator(
    firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread, db: Any
) -> None:
    # What firebase-tools 15 sets for a Python function, with an Auth emulator answering.
    env = {"FUNCTIONS_EMULATOR": "true", "K_SERVICE": "execute_prompt_stream", "K_REVISION": "1"}
    add_prompt(db, content="{{topic}}")
    with FunctionServer(
        "execute_prompt_stream", firestore_emulator.host, fake_upstream.base_url, env=env
    ) as server:
        got = run(post_stream(server.url, body(variables={"topic": "t"}), auth()))
    assert got.status == 200


# -- the non-streaming sibling -----------------------------------------------------------------


def test_execute_prompt_returns_json(
    db: Any, execute_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="Say {{topic}} [[fake text='whole answer']]")

    status, answer = run(post_json(execute_server.url, body(variables={"topic": "t"}), auth()))
    assert status == 200
    assert answer["content"] == "whole answer"
    assert answer["finish_reason"] == "stop"
    assert answer["usage"]["total_tokens"] > 0
    record = db.collection("executions").document(answer["execution_id"]).get().to_dict()
    assert record["status"] == "completed" and record["output"] == "whole answer"
    assert fake_upstream.requests()[-1]["json"]["stream"] is False


@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [("status=429", 429, "rate_limited"), ("status=503", 503, "upstream_unavailable")],
)
def test_execute_prompt_maps_upstream_errors(
    db: Any, execute_server: FunctionServer, directive: str, status: int, code: str
) -> None:
    add_prompt(db, content="{{topic}} [[fake " + directive + "]]")

    got_status, answer = run(post_json(execute_server.url, body(variables={"topic": "t"}), auth()))
    assert got_status == status
    assert answer["error"]["code"] == code
    (record,) = executions(db)
    assert record["status"] == "error" and record["error_code"] == code
