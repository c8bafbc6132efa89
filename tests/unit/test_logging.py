"""Log lines: one JSON object per line, severity and message included, each one write."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from promptstream import _logging as logger


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_info_goes_to_stdout_warn_and_error_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    logger.info("started", execution_id="e1", ms=1.5)
    logger.warn("slow")
    logger.error("failed", traceback="x")
    assert lines(out) == [
        {"severity": "INFO", "execution_id": "e1", "ms": 1.5, "message": "started"}
    ]
    assert [(d["severity"], d["message"]) for d in lines(err)] == [
        ("WARNING", "slow"),
        ("ERROR", "failed"),
    ]


def test_a_value_json_cannot_write_is_logged_as_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    logger.info("the message", when=object())
    [line] = lines(out)
    assert line["message"] == "the message"
    assert line["when"].startswith("<object")


def test_concurrent_lines_never_run_together(monkeypatch: pytest.MonkeyPatch) -> None:
    out = CountingStream()
    monkeypatch.setattr("sys.stdout", out)
    threads = [
        threading.Thread(target=lambda i=i: [logger.info("x" * 500, i=i) for _ in range(50)])
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parsed = lines(out)
    assert len(parsed) == 400  # each line parses alone: none ran into another
    assert out.writes == 400  # the line and its newline in one write
