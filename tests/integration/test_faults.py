"""The fault matrix: each upstream failure, the retries made (counted by the fake), what
the client receives and the final execution record, partial text included.

Faults are steered by ``[[fake ...]]`` directives in the prompt. Short timeouts keep the
timeout cases fast: first byte 0.6 s, content idle 0.6 s, heartbeat 0.15 s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import FunctionServer, Serve, free_port, the_record
from support.http import post_prompt

FIRST_BYTE_TIMEOUT = 1.2  # under the faults' 3 s, with room for a loaded CI run
IDLE_TIMEOUT = 1.2
RETRIES = 2  # the default UPSTREAM_MAX_RETRIES: three attempts in all


@pytest.fixture(scope="module")
def fault_server(serve: Serve) -> Iterator[FunctionServer]:
    env = {
        "UPSTREAM_FIRST_BYTE_TIMEOUT": str(FIRST_BYTE_TIMEOUT),
        "UPSTREAM_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "HEARTBEAT_SECONDS": "0.15",
    }
    with serve("execute_prompt_stream", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def refused_server(serve: Serve) -> Iterator[FunctionServer]:
    # A port that was free a moment ago and has no listener: connections are refused.
    with serve(base_url=f"http://127.0.0.1:{free_port()}/api/v1") as server:
        yield server


def upstream_requests(fake: FakeOpenRouterThread) -> int:
    return int(fake.stats()["requests"])


# -- refusals before the first byte: an HTTP status and a JSON error ------------------

# (case, directive, upstream requests, client status, code, Retry-After sent to the client)
REFUSALS: list[tuple[str, str, int, int, str, str | None]] = [
    (
        "429 with Retry-After, every time",
        "status=429 retry_after=1",
        1 + RETRIES,
        429,
        "rate_limited",
        "1",
    ),
    ("429 without Retry-After, every time", "status=429", 1 + RETRIES, 429, "rate_limited", None),
    (
        "429 asking for longer than we wait",
        "status=429 retry_after=30",
        1,
        429,
        "rate_limited",
        "30",
    ),
    ("402 out of credits", "status=402", 1, 402, "out_of_credits", None),
    ("500", "status=500", 1 + RETRIES, 502, "upstream_error", None),
    ("502", "status=502", 1 + RETRIES, 503, "upstream_unavailable", None),
    ("503", "status=503", 1 + RETRIES, 503, "upstream_unavailable", None),
    ("400 from upstream", "status=400", 1, 400, "upstream_bad_request", None),
    ("401 our key refused", "status=401", 1, 502, "upstream_auth", None),
    ("403 moderation", "status=403", 1, 403, "content_blocked", None),
    (
        "connection closed before headers",
        "disconnect=1",
        1 + RETRIES,
        503,
        "upstream_unavailable",
        None,
    ),
    ("slow first byte", "first_byte_delay=3", 1 + RETRIES, 504, "upstream_timeout", None),
]


@pytest.mark.parametrize(
    ("case", "directive", "requests", "status", "code", "retry_after"),
    REFUSALS,
    ids=[c[0] for c in REFUSALS],
)
def test_refusal_before_content_is_an_http_error(
    case: str,
    directive: str,
    requests: int,
    status: int,
    code: str,
    retry_after: str | None,
    fault_server: FunctionServer,
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    outcome = post_prompt(fault_server, db, f"About {{{{topic}}}} [[fake {directive}]]")
    assert outcome.status == status, outcome.raw
    error = outcome.error()
    assert error["code"] == code
    assert outcome.headers.get("Retry-After") == retry_after
    assert upstream_requests(fake_upstream) == requests
    record = the_record(db)
    assert record["status"] == "error"
    assert record["error_code"] == code
    assert record["error_message"] == error["message"]
    assert record["output"] == ""
    assert record["usage"] is None


def test_retry_after_is_honoured_between_attempts(
    fault_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    outcome = post_prompt(
        fault_server, db, "{{topic}} [[fake status=429 retry_after=1 fail_times=1]]"
    )
    assert outcome.status == 200
    first, second = (r["received_ns"] for r in fake_upstream.requests())
    assert (second - first) / 1e9 >= 0.95


# (case, directive, upstream requests). A retry succeeds: the client never sees the fault.
RECOVERED: list[tuple[str, str, int]] = [
    ("429 with Retry-After once", "status=429 retry_after=1 fail_times=1", 2),
    ("429 without Retry-After once", "status=429 fail_times=1", 2),
    ("500 once", "status=500 fail_times=1", 2),
    ("502 twice", "status=502 fail_times=2", 3),
    ("503 once", "status=503 fail_times=1", 2),
    ("connection closed before headers once", "disconnect=1 fail_times=1", 2),
    ("dropped before any content once", "drop_after=0 fail_times=1", 2),
    ("stalled before any content once", "stall_after=0 stall=3 fail_times=1", 2),
]


@pytest.mark.parametrize(
    ("case", "directive", "requests"), RECOVERED, ids=[c[0] for c in RECOVERED]
)
def test_fault_before_content_is_retried_and_recovers(
    case: str,
    directive: str,
    requests: int,
    fault_server: FunctionServer,
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    outcome = post_prompt(fault_server, db, f"Tell me about {{{{topic}}}}. [[fake {directive}]]")
    assert outcome.status == 200, outcome.raw
    events = outcome.events
    assert [e.event for e in events][:1] == ["start"]
    assert [e.event for e in events][-2:] == ["end", "message"] and events[-1].data == "[DONE]"
    assert "error" not in [e.event for e in events]
    assert upstream_requests(fake_upstream) == requests
    record = the_record(db)
    assert record["status"] == "completed"
    assert record["error_code"] is None
    # The text appears once: nothing from a failed attempt was relayed or stored twice.
    assert outcome.text().startswith("Hello from the local demo model.")
    assert outcome.text().count("Hello from the local demo model.") == 1
    assert record["output"] == outcome.text()
    assert record["usage"]["total_tokens"] == record["tokens_debited"]


# -- faults after the stream started: an error event, then [DONE] ---------------------

# (case, directive, upstream requests, event code, content chunks relayed before it)
MID_STREAM: list[tuple[str, str, int, str, int]] = [
    ("error event after 3 chunks", "error_after=3", 1, "upstream_error", 3),
    ("error event before any content", "error_after=0", 1, "upstream_error", 0),
    ("dropped connection after 2 chunks", "drop_after=2", 1, "upstream_disconnected", 2),
    (
        "dropped before any content, every time",
        "drop_after=0",
        1 + RETRIES,
        "upstream_disconnected",
        0,
    ),
    ("truncated without [DONE] after 2 chunks", "truncate_after=2", 1, "upstream_disconnected", 2),
    ("malformed JSON after 2 chunks", "malformed_after=2", 1, "upstream_error", 2),
    ("malformed JSON first", "malformed_after=0", 1, "upstream_error", 0),
    ("stall after 2 chunks (comments only)", "stall_after=2 stall=3", 1, "upstream_timeout", 2),
    (
        "stall before any content, every time",
        "stall_after=0 stall=3",
        1 + RETRIES,
        "upstream_timeout",
        0,
    ),
]


@pytest.mark.parametrize(
    ("case", "directive", "requests", "code", "chunks"),
    MID_STREAM,
    ids=[c[0] for c in MID_STREAM],
)
def test_fault_after_start_is_an_error_event_and_keeps_the_partial_text(
    case: str,
    directive: str,
    requests: int,
    code: str,
    chunks: int,
    fault_server: FunctionServer,
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    outcome = post_prompt(fault_server, db, f"Tell me about {{{{topic}}}}. [[fake {directive}]]")
    assert outcome.status == 200, outcome.raw
    assert outcome.headers["Content-Type"].startswith("text/event-stream")
    events = outcome.events
    kinds = [e.event for e in events]
    assert kinds == ["start"] + ["message"] * chunks + ["error", "message"], kinds
    assert events[-1].data == "[DONE]"
    error = json.loads(events[-2].data)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    content = [json.loads(e.data) for e in events[1 : 1 + chunks]]
    assert all(c["content"] and c["finish_reason"] is None for c in content)
    assert upstream_requests(fake_upstream) == requests
    record = the_record(db)
    assert record["status"] == "error"
    assert record["error_code"] == code
    assert record["error_message"] == error["message"]
    assert record["output"] == outcome.text()
    assert len(record["output"]) > 0 or chunks == 0
    assert record["usage"] is None
    assert record["finish_reason"] is None


def test_stall_keeps_the_client_connection_alive_with_heartbeats(
    fault_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    outcome = post_prompt(fault_server, db, "{{topic}} [[fake stall_after=2 stall=3]]")
    assert outcome.status == 200
    # Heartbeats are comments: never content, and at least one while the model was silent.
    assert outcome.raw.count(b": ping\n\n") >= 2
    assert b"OPENROUTER PROCESSING" not in outcome.raw
    # The idle watchdog, not the fake's 3 s stall, ended it.
    assert outcome.seconds < 2.5


def test_stream_without_done_but_with_finish_reason_completes(
    fault_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    outcome = post_prompt(fault_server, db, "Tell me about {{topic}}. [[fake no_done=1]]")
    assert outcome.status == 200
    assert [e.event for e in outcome.events][-2:] == ["end", "message"]
    assert upstream_requests(fake_upstream) == 1
    record = the_record(db)
    assert (record["status"], record["finish_reason"]) == ("completed", "stop")
    assert record["output"] == outcome.text()


def test_connection_refused_is_503_upstream_unavailable(
    refused_server: FunctionServer, db: Any
) -> None:
    outcome = post_prompt(refused_server, db, "Tell me about {{topic}}.")
    assert outcome.status == 503
    assert outcome.error()["code"] == "upstream_unavailable"
    # Retried with backoff (0.05 s base), not for long.
    assert outcome.seconds < 5
    record = the_record(db)
    assert (record["status"], record["error_code"], record["output"]) == (
        "error",
        "upstream_unavailable",
        "",
    )


# -- the non-streaming sibling: the same refusals as HTTP errors ----------------------

EXECUTE_FAULTS: list[tuple[str, str, int, int, str]] = [
    ("429", "status=429 retry_after=1", 1 + RETRIES, 429, "rate_limited"),
    ("402", "status=402", 1, 402, "out_of_credits"),
    ("500", "status=500", 1 + RETRIES, 502, "upstream_error"),
    ("503", "status=503", 1 + RETRIES, 503, "upstream_unavailable"),
    ("disconnect", "disconnect=1", 1 + RETRIES, 503, "upstream_unavailable"),
]


@pytest.mark.parametrize(
    ("case", "directive", "requests", "status", "code"),
    EXECUTE_FAULTS,
    ids=[c[0] for c in EXECUTE_FAULTS],
)
def test_execute_prompt_maps_upstream_faults_to_the_same_statuses(
    case: str,
    directive: str,
    requests: int,
    status: int,
    code: str,
    execute_server: FunctionServer,
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    outcome = post_prompt(execute_server, db, f"About {{{{topic}}}} [[fake {directive}]]")
    assert outcome.status == status, outcome.raw
    assert outcome.error()["code"] == code
    assert upstream_requests(fake_upstream) == requests
    record = the_record(db)
    assert (record["status"], record["error_code"], record["output"]) == ("error", code, "")
