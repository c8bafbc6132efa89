"""The API key never leaves the server, even when the upstream echoes it; and each
execution leaves exactly one structured JSON log line, without prompt text unless
DEBUG_LOGGING is on.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from promptstream import SSEDecoder
from support import (
    TEST_API_KEY,
    FirestoreEmulator,
    FunctionServer,
    add_prompt,
    auth,
    body,
    executions,
)

PROMPT_MARKER = "PROMPT-MARKER-7Q4"
VALUE_MARKER = "VALUE-MARKER-3Z9"
# The secret part of the key: any 12 characters of it in a row count as a leak.
SECRET = TEST_API_KEY.removeprefix("sk-or-v1-")
WINDOWS = {SECRET[i : i + 12] for i in range(len(SECRET) - 11)}


def leaks(text: str) -> bool:
    return any(window in text for window in WINDOWS)


@pytest.fixture(scope="module")
def log_server(
    firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread
) -> Iterator[FunctionServer]:
    with FunctionServer(
        "execute_prompt_stream", firestore_emulator.host, fake_upstream.base_url
    ) as server:
        yield server


@pytest.fixture(scope="module")
def debug_server(
    firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread
) -> Iterator[FunctionServer]:
    with FunctionServer(
        "execute_prompt",
        firestore_emulator.host,
        fake_upstream.base_url,
        env={"DEBUG_LOGGING": "true"},
    ) as server:
        yield server


def run(server: FunctionServer, db: Any, directive: str) -> tuple[int, bytes]:
    add_prompt(db, content=f"{PROMPT_MARKER} about {{{{topic}}}} [[fake {directive}]]")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/", body=body(variables={"topic": VALUE_MARKER}), headers=auth())
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def execution_logs(server: FunctionServer) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if r.get("message") == "execution"]


# (case, directive that makes the upstream echo the key, status, where the client sees it)
ECHOES: list[tuple[str, str, int]] = [
    ("400 echoing the key", f'status=400 message="invalid key {TEST_API_KEY} for this model"', 400),
    ("401 echoing the bearer header", f'status=401 message="Bearer {TEST_API_KEY} not found"', 502),
    (
        "429 echoing the key",
        f'status=429 retry_after=30 message="key {TEST_API_KEY} is limited"',
        429,
    ),
    ("500 echoing the key", f'status=500 message="{TEST_API_KEY}"', 502),
    (
        "key at the end of a message long enough to be cut",
        f'status=400 message="{"x" * 470}{TEST_API_KEY}"',
        400,
    ),
    (
        "mid-stream error echoing the key",
        f'error_after=2 error_message="provider saw {TEST_API_KEY}"',
        200,
    ),
]


@pytest.mark.parametrize(("case", "directive", "status"), ECHOES, ids=[c[0] for c in ECHOES])
def test_an_echoed_key_reaches_no_client_record_or_log(
    case: str,
    directive: str,
    status: int,
    log_server: FunctionServer,
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    got, raw = run(log_server, db, directive)
    assert got == status, raw
    # The key was really in play: sent upstream, and answered with an error about it.
    requests = fake_upstream.requests()
    assert requests
    assert all(r["headers"]["Authorization"] == f"Bearer {TEST_API_KEY}" for r in requests)
    text = raw.decode()
    if status == 200:
        decoder = SSEDecoder()
        events = [*decoder.feed(raw), *decoder.close()]
        error = json.loads(next(e.data for e in events if e.event == "error"))
    else:
        error = json.loads(raw)["error"]
    assert error["message"]
    assert not leaks(text), text
    [record] = executions(db)
    assert record["status"] == "error"
    assert not leaks(json.dumps(record, default=str))
    assert not leaks(log_server.log_text())


def test_one_json_log_line_per_execution_without_prompt_text(
    log_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    before = {r["execution_id"] for r in execution_logs(log_server)}
    outcomes = [
        run(log_server, db, "chunks=3"),
        run(log_server, db, "status=402"),
        run(log_server, db, "drop_after=1"),
    ]
    assert [status for status, _ in outcomes] == [200, 402, 200]
    records = {r["id"]: r for r in executions(db)}
    assert len(records) == 3
    lines = [r for r in execution_logs(log_server) if r["execution_id"] not in before]
    assert sorted(line["execution_id"] for line in lines) == sorted(records)
    for line in lines:
        record = records[line["execution_id"]]
        assert line["uid"] == "alice"
        assert line["model"] == record["model"]
        assert line["status"] == record["status"]
        assert line["ttft_ms"] == record["ttft_ms"]
        assert line["duration_ms"] == record["duration_ms"]
        assert line["tokens"] == record["tokens_debited"]
        assert line["error_code"] == record["error_code"]
        assert line["severity"] in ("INFO", "WARNING")
        assert "prompt" not in line
    by_status = {line["status"]: line for line in lines}
    assert set(by_status) == {"completed", "error"}
    assert isinstance(by_status["completed"]["ttft_ms"], float)
    assert by_status["completed"]["duration_ms"] >= by_status["completed"]["ttft_ms"] > 0
    # Every line of the log is JSON (Cloud Logging reads one object per line).
    for raw_line in log_server.log_text().splitlines():
        if raw_line.startswith("{"):
            json.loads(raw_line)
    log = log_server.log_text()
    assert PROMPT_MARKER not in log and VALUE_MARKER not in log


def test_debug_logging_adds_the_prompt_text(
    debug_server: FunctionServer, db: Any, fake_upstream: FakeOpenRouterThread
) -> None:
    status, raw = run(debug_server, db, "chunks=3")
    assert status == 200, raw
    [line] = execution_logs(debug_server)
    assert PROMPT_MARKER in line["prompt"] and VALUE_MARKER in line["prompt"]
    [record] = executions(db)
    assert (line["execution_id"], line["status"]) == (record["id"], "completed")


def test_no_log_line_of_the_whole_module_holds_the_key(log_server: FunctionServer) -> None:
    # Runs last in this module: every request above has been logged by now.
    log = log_server.log_text()
    assert len(execution_logs(log_server)) >= len(ECHOES) + 3
    assert not leaks(log)
