"""execute_prompt_stream and execute_prompt as deployed: functions-framework on gunicorn,
the real Firestore emulator, the fake OpenRouter upstream, read with a streaming client."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from devstack import AuthEmulatorStandIn
from fake_openrouter import FakeOpenRouterThread
from promptstream import SSEDecoder
from support import (
    FunctionServer,
    Serve,
    add_prompt,
    auth,
    body,
    closed_record,
    executions,
    read_until,
    wait_until,
)
from support.http import Reply, post, request, request_bytes, stream

# -- streaming ---------------------------------------------------------------------------


def test_stream_relays_chunks_incrementally(db: Any, stream_server: FunctionServer) -> None:
    add_prompt(db, content="Story about {{topic}} [[fake chunks=5 delay=0.25]]")
    got = asyncio.run(stream(stream_server.url, body(variables={"topic": "owls"}), auth()))
    assert got.status == 200
    content_times = [
        t
        for t, e in zip(got.arrivals, got.events, strict=False)
        if e.event == "message" and e.data != "[DONE]"
    ]
    assert len(content_times) == 5
    # Arrivals are spread over the upstream's own pacing (4 gaps of 0.25 s), not bunched
    # at the end, which is what a buffering relay would do. The first chunk may wait for
    # the opening's commit, which the upstream's work overlaps (docs/adr/1000), so on a
    # busy machine the first gap can be short; the later ones are the relay's alone.
    gaps = [b - a for a, b in itertools.pairwise(content_times)]
    assert all(gap > 0.1 for gap in gaps[1:]), gaps


def test_stream_wire_format(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="Say {{topic}} [[fake chunks=3 text='a b c']]")
    got = asyncio.run(stream(stream_server.url, body(variables={"topic": "x"}), auth()))
    assert got.headers["Content-Type"].startswith("text/event-stream")
    assert got.headers["Cache-Control"] == "no-cache, no-transform"
    assert got.headers["X-Accel-Buffering"] == "no"
    assert got.headers.get("Content-Encoding", "identity") == "identity"
    assert got.kinds[0] == "start" and got.kinds[-2] == "end" and got.events[-1].data == "[DONE]"
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


def test_event_ids_increase(db: Any, stream_server: FunctionServer) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=4]]")
    got = post(stream_server, body(variables={"topic": "t"}))
    ids = [e.id for e in got.events if e.event == "message" and e.data != "[DONE]"]
    assert ids == ["1", "2", "3", "4"]


def test_defaults_fill_in(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(
        db,
        content="Hello {{name}}",
        variables=[{"name": "name", "required": True, "default": "world"}],
    )
    got = asyncio.run(stream(stream_server.url, body(), auth()))
    assert got.status == 200
    assert fake_upstream.requests()[-1]["json"]["messages"][-1]["content"] == "Hello world"


def test_public_prompt_runs_for_others_private_one_is_not_found(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, "pub", content="public [[fake chunks=1]]", public=True)
    add_prompt(db, "priv", content="private")
    ok = asyncio.run(stream(stream_server.url, body("pub"), auth("bob")))
    assert ok.status == 200 and ok.named("end")
    hidden = asyncio.run(stream(stream_server.url, body("priv"), auth("bob")))
    absent = asyncio.run(stream(stream_server.url, body("nope"), auth("bob")))
    assert hidden.status == absent.status == 404
    assert hidden.json == absent.json
    assert fake_upstream.stats()["requests"] == 1


def test_error_mid_stream_is_an_error_event_and_the_partial_is_kept(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="{{topic}} [[fake error_after=2 chunks=5 text='a b c d e']]")
    got = asyncio.run(stream(stream_server.url, body(variables={"topic": "t"}), auth()))
    assert got.status == 200
    assert got.text() == "a b"
    (error,) = got.named("error")
    assert error["code"] == "upstream_error"
    assert "Traceback" not in error["message"]
    assert got.events[-1].data == "[DONE]"
    assert not got.named("end")
    (record,) = executions(db)
    assert record["status"] == "error"
    assert record["output"] == "a b"
    assert record["error_code"] == "upstream_error"


def test_heartbeats_while_the_model_is_silent(db: Any, stream_server: FunctionServer) -> None:
    # The test server sends a heartbeat every 0.3 s; the model is silent for 1.5 s.
    add_prompt(db, content="{{topic}} [[fake first_chunk_delay=1.5 chunks=2]]")
    got = asyncio.run(stream(stream_server.url, body(variables={"topic": "t"}), auth()))
    assert got.status == 200
    assert got.comments >= 3
    assert got.named("end")


def test_disconnect_cancels_upstream_and_records_partial(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=60 delay=0.1]]")
    got = asyncio.run(
        stream(stream_server.url, body(variables={"topic": "t"}), auth(), stop_after_content=3)
    )
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
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="{{topic}} [[fake first_chunk_delay=30 chunks=1]]")

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                stream_server.url, data=body(variables={"topic": "t"}), headers=auth()
            ) as resp:
                assert resp.status == 200
                await resp.content.readany()  # the start event, then leave

    asyncio.run(go())
    assert wait_until(lambda: fake_upstream.stats()["early_closes"] == 1, timeout=5)
    record = closed_record(db)
    assert record["status"] == "cancelled"


def test_concurrent_streams_do_not_block_each_other(db: Any, stream_server: FunctionServer) -> None:
    add_prompt(db, "pub", content="{{topic}} [[fake chunks=8 delay=0.2]]", public=True)
    n = 20

    async def go() -> list[Reply]:
        return await asyncio.gather(
            *(
                stream(stream_server.url, body("pub", variables={"topic": "t"}), auth(f"user{i}"))
                for i in range(n)
            )
        )

    results = asyncio.run(go())
    assert all(r.status == 200 and len(r.content_events()) == 8 for r in results)
    first_contents = [r.arrivals[r.kinds.index("message")] for r in results]
    ends = [r.arrivals[-1] for r in results]
    # Every stream had its first token before any stream finished: they ran side by side.
    assert max(first_contents) < min(ends)


def test_keep_alive_connection_is_reused_after_a_stream(
    db: Any, stream_server: FunctionServer
) -> None:
    # After the loop gave the connection back, gunicorn ends the chunked body and serves
    # the next request on the same socket.
    add_prompt(db, content="{{topic}} [[fake chunks=4 text='one two three four']]")
    conn = http.client.HTTPConnection("127.0.0.1", stream_server.port, timeout=20)
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
    db: Any, stream_server: FunctionServer
) -> None:
    # The loop does not read from the connection it writes to: the next request is
    # gunicorn's to read once the stream is over.
    add_prompt(db, content="{{topic}} [[fake chunks=8 delay=0.1]]")
    with socket.create_connection(("127.0.0.1", stream_server.port), timeout=20) as sock:
        sock.sendall(request_bytes(body(variables={"topic": "t"})))
        # Well into the stream: two content events have arrived.
        read_until(sock, lambda got: got.count(b"\nid: ") >= 2 or got.startswith(b"id: "))
        sock.sendall(b"GET /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = read_until(sock, lambda got: got.endswith(b"ok"))
    stream, _, health = received.partition(b"\r\n0\r\n\r\n")
    assert stream.endswith(b"data: [DONE]\n\n")
    assert health.startswith(b"HTTP/1.1 200") and health.endswith(b"ok")


def test_a_request_pipelined_as_the_stream_starts_is_answered_or_the_connection_closed(
    db: Any, stream_server: FunctionServer
) -> None:
    # Sent the moment the start event arrives, the next request can be waiting when the
    # loop takes the connection over, and the loop's transport may read it: then the
    # stream still ends properly and the connection is closed, so the client retries the
    # unanswered request, as HTTP/1.1 pipelining requires. Never a hang, never garbage.
    add_prompt(db, content="{{topic}} [[fake chunks=4 delay=0.05]]")
    health = b"GET /__/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", stream_server.port), timeout=20) as sock:
        sock.sendall(request_bytes(body(variables={"topic": "t"})))
        first = sock.recv(65536)
        sock.sendall(health)
        received = first + read_until(sock, lambda got: got.endswith(b"ok"))
    stream, sep, rest = received.partition(b"\r\n0\r\n\r\n")
    assert sep and stream.endswith(b"data: [DONE]\n\n")
    assert rest == b"" or (rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"ok"))
    # The record is closed just after the last byte went out.
    record = closed_record(db)
    assert record["status"] == "completed"


def test_http_1_0_client_gets_an_unframed_body(db: Any, stream_server: FunctionServer) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=3 text='a b c']]")
    request = request_bytes(body(variables={"topic": "t"}), version="HTTP/1.0")
    with socket.create_connection(("127.0.0.1", stream_server.port), timeout=20) as sock:
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
def stall_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve(env={"STALL_TIMEOUT_SECONDS": "1", "DEFAULT_MAX_TOKENS": "150000"}) as server:
        yield server


def test_client_that_stops_reading_is_cut_off(
    db: Any, stall_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    # ~10 MB of events at full speed to a client whose receive window is tiny and who reads
    # nothing after the headers: more than the socket buffers (up to 4 MB here) and the
    # transport's high-water mark hold, so the writer waits, and after
    # STALL_TIMEOUT_SECONDS it counts the client as gone.
    add_prompt(db, content="{{topic}} [[fake chunks=150000 delay=0 stamp=true]]")
    request = request_bytes(body(variables={"topic": "t"}))
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
    got = request(stream_server, "GET", None, {}, path="/__/health")
    assert (got.status, got.raw) == (200, b"ok")


def test_a_stream_to_an_allowed_origin_carries_cors_headers(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=1]]")
    headers = {**auth(), "Origin": "http://127.0.0.1:5173"}
    got = post(stream_server, body(variables={"topic": "t"}), headers)
    assert got.status == 200 and got.kinds[0] == "start"
    assert got.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"
    assert "Retry-After" in got.headers["Access-Control-Expose-Headers"]


def one_request_to_a_server_with(env: dict[str, str], serve: Serve, db: Any) -> Reply:
    """Start a function server with ``env`` and post one valid request to it."""
    add_prompt(db, content="{{topic}}")
    with serve(env=env) as server:
        return post(server, body(variables={"topic": "t"}))


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
    env: dict[str, str], serve: Serve, fake_upstream: FakeOpenRouterThread, db: Any
) -> None:
    got = one_request_to_a_server_with(env, serve, db)
    assert got.status == 500
    assert got.error()["code"] == "configuration_error"
    assert fake_upstream.stats()["requests"] == 0
    assert executions(db) == []


def test_unsigned_tokens_are_accepted_under_the_functions_emulator(serve: Serve, db: Any) -> None:
    # What firebase-tools 15 sets for a Python function, with an Auth emulator answering.
    env = {"FUNCTIONS_EMULATOR": "true", "K_SERVICE": "execute_prompt_stream", "K_REVISION": "1"}
    got = one_request_to_a_server_with(env, serve, db)
    assert got.status == 200 and got.named("end")


# -- the non-streaming sibling -----------------------------------------------------------------


def test_execute_prompt_returns_json(
    db: Any, execute_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_prompt(db, content="Say {{topic}} [[fake text='whole answer']]")

    got = post(execute_server, body(variables={"topic": "t"}))
    assert got.status == 200
    answer = got.json
    assert answer["content"] == "whole answer"
    assert answer["finish_reason"] == "stop"
    assert answer["usage"]["total_tokens"] > 0
    record = db.collection("executions").document(answer["execution_id"]).get().to_dict()
    assert record["status"] == "completed" and record["output"] == "whole answer"
    assert fake_upstream.requests()[-1]["json"]["stream"] is False
