"""Structured log lines for Cloud Logging: one JSON object per line, whole.

``firebase_functions.logger`` prints the JSON and its newline as two writes, so lines
written at once (the loop and a worker thread, say) can run together into one line that
Cloud Logging cannot parse. Here each line is one write under a process-wide lock. Same
call shape: ``info("message", key=value, ...)``.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

__all__ = ["error", "info", "warn"]

_lock = threading.Lock()


def _write(severity: str, stream: TextIO, message: str, fields: dict[str, Any]) -> None:
    line = json.dumps(
        {"severity": severity, **fields, "message": message}, ensure_ascii=False, default=str
    )
    with _lock:
        stream.write(line + "\n")
        stream.flush()


def info(message: str, **fields: Any) -> None:
    _write("INFO", sys.stdout, message, fields)


def warn(message: str, **fields: Any) -> None:
    _write("WARNING", sys.stderr, message, fields)


def error(message: str, **fields: Any) -> None:
    _write("ERROR", sys.stderr, message, fields)
