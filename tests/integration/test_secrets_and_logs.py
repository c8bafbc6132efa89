"""The API key never leaves the server, even when the upstream echoes it; and each
execution leaves exactly one structured JSON log line, without prompt text unless
DEBUG_LOGGING is on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import TEST_API_KEY, FunctionServer, Serve, closed_record, executions
from support.http import Reply, post_prompt

PROMPT_MARKER = "PROMPT-MARKER-7Q4"
VALUE_MARKER = "VALUE-MARKER-3Z9"
# The secret part of the key: any 12 characters of it in a row count as a leak.
SECRET = TEST_API_KEY.removeprefix("sk-or-v1-")
WINDOWS = {SECRET[i : i + 12] for i in range(len(SECRET) - 11)}


def leaks(text: str) -> bool:
    return any(window in text for window in WINDOWS)


@pytest.fixture(scope="module")
def log_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve() as server:
        yield server


@pytest.fixture(scope="module")
def debug_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("execute_prompt", env={"DEBUG_LOGGING": "true"}) as server:
        yield server


def post_marked(server: FunctionServer, db: Any, directive: str) -> Reply:
    """A run of a prompt and a value that the logs must not show."""
    content = f"{PROMPT_MARKER} about {{{{topic}}}} [[fake {directive}]]"
    return post_prompt(server, db, content, {"topic": VALUE_MARKER})


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
    got = post_marked(log_server, db, directive)
    assert got.status == status, got.raw
    # The key was really in play: sent upstream, and answered with an error about it.
    requests = fake_upstream.requests()
    assert requests
    assert all(r["headers"]["Authorization"] == f"Bearer {TEST_API_KEY}" for r in requests)
    text = got.raw.decode()
    error = got.named("error")[0] if status == 200 else got.error()
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
        post_marked(log_server, db, "chunks=3"),
        post_marked(log_server, db, "status=402"),
        post_marked(log_server, db, "drop_after=1"),
    ]
    assert [got.status for got in outcomes] == [200, 402, 200]
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
    got = post_marked(debug_server, db, "chunks=3")
    assert got.status == 200, got.raw
    [line] = execution_logs(debug_server)
    assert PROMPT_MARKER in line["prompt"] and VALUE_MARKER in line["prompt"]
    [record] = executions(db)
    assert (line["execution_id"], line["status"]) == (record["id"], "completed")


def test_no_log_line_of_the_whole_module_holds_the_key(log_server: FunctionServer) -> None:
    # Runs last in this module: every request above has been logged by now.
    log = log_server.log_text()
    assert len(execution_logs(log_server)) >= len(ECHOES) + 3
    assert not leaks(log)


# -- a hostile upstream, end to end (issue 14, item 9) ------------------------------------


def leaks_any_case(text: str) -> bool:
    low = text.lower()
    return any(window.lower() in low for window in WINDOWS)


def test_a_hostile_upstream_leaks_no_key_in_any_case_and_the_record_finalises(
    db: Any, log_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    fake_upstream.configure(
        leak="content,model,usage,gen_id",
        leak_case="upper",
        # (An impossible count is an upstream_error: test_upstream_bounds.py.)
        usage_extra=json.dumps({"__bad__": 1}),
        model="demo/m\ud800odel",
    )
    got = post_prompt(log_server, db, "About {{topic}}")
    assert got.status == 200
    end = got.named("end")
    assert len(end) == 1 and end[0]["finish_reason"] == "stop"
    record = closed_record(db)
    assert record["status"] == "completed"
    assert "\ufffd" in record["model"] and "__bad__" not in (record["usage"] or {})
    assert not leaks_any_case(got.raw.decode())
    assert not leaks_any_case(json.dumps(record, default=str))
    assert not leaks_any_case(log_server.log_text())


@pytest.mark.parametrize(
    "knobs",
    [
        pytest.param({"status": 400}, id="a 400"),
        pytest.param({"error_after": 2}, id="a mid-stream error"),
    ],
)
def test_an_upper_cased_key_in_an_upstream_error_is_redacted(
    knobs: dict[str, Any],
    db: Any,
    log_server: FunctionServer,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    fake_upstream.configure(leak="error", leak_case="upper", **knobs)
    got = post_prompt(log_server, db, "About {{topic}}")
    record = closed_record(db)
    assert record["status"] == "error"
    assert not leaks_any_case(got.raw.decode())
    assert not leaks_any_case(json.dumps(record, default=str))
    assert not leaks_any_case(log_server.log_text())


def test_an_unbounded_retry_after_is_a_json_429_with_a_finite_one(
    db: Any, log_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    fake_upstream.configure(status=429, retry_after="1e999")
    got = post_prompt(log_server, db, "About {{topic}}")
    assert got.status == 429
    assert got.error()["code"] == "rate_limited"
    assert 0 < int(got.headers["retry-after"]) <= 86_400
    assert closed_record(db)["status"] == "error"


def test_an_endless_upstream_line_is_an_upstream_error_event(
    db: Any, log_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    fake_upstream.configure(long_line=8 << 20)
    got = post_prompt(log_server, db, "About {{topic}}")
    assert got.status == 200
    assert [e["code"] for e in got.named("error")] == ["upstream_error"], got.raw[-500:]
    record = closed_record(db)
    assert record["status"] == "error" and record["error_code"] == "upstream_error"
