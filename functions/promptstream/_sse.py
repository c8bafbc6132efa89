"""Server-Sent Events: an incremental decoder (bytes in, events out) and one encoder.

The decoder follows the WHATWG "event stream interpretation" algorithm line by line.
It is pure: no sockets, no clock. Lines are split on CR, LF and CRLF *before* UTF-8 is
decoded, so a multi-byte character split across two network reads is never mangled,
and there is no line-length limit (aiohttp's ``resp.content`` iterator has one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "encode_comment", "encode_event"]

_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True, frozen=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed by them."""

    __slots__ = (
        "_buffer",
        "_data",
        "_event",
        "_last_event_id",
        "_retry",
        "_skip_lf",
        "_started",
        "comments",
        "retry",
    )

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._last_event_id = ""
        self._retry: int | None = None
        self.comments = 0
        self.retry: int | None = None

    @property
    def last_event_id(self) -> str:
        return self._last_event_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._buffer = buffer
                return []
            self._started = True
            if buffer.startswith(_BOM):
                buffer = buffer[len(_BOM) :]
        if self._skip_lf and buffer:
            # The previous read ended in CR; a LF that starts this one completes a CRLF.
            self._skip_lf = False
            if buffer[:1] == b"\n":
                buffer = buffer[1:]
        events: list[ServerSentEvent] = []
        lines = buffer.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._buffer = lines.pop()
        else:
            self._buffer = b""
            self._skip_lf = bool(lines) and lines[-1].endswith(b"\r")
        for raw in lines:
            event = self._line(raw.rstrip(b"\r\n").decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream. Per the spec, an event without its blank line is discarded."""
        self._buffer = b""
        self._data = []
        self._event = ""
        return []

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            self.comments += 1
            return None
        field, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_event_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self._retry = self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            self._retry = None
            return None
        event = ServerSentEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._last_event_id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        self._retry = None
        return event


_NEWLINES = re.compile(r"\r\n|\r|\n")


def encode_event(
    data: str, *, event: str | None = None, id: str | int | None = None, retry: int | None = None
) -> bytes:
    """Encode one event. Multi-line data becomes several ``data:`` lines."""
    parts: list[str] = []
    if id is not None:
        parts.append(f"id: {_one_line(str(id))}\n")
    if event is not None:
        parts.append(f"event: {_one_line(event)}\n")
    if retry is not None:
        parts.append(f"retry: {int(retry)}\n")
    if "\n" in data or "\r" in data:
        parts.extend(f"data: {line}\n" for line in _NEWLINES.split(data))
    else:
        parts.append(f"data: {data}\n")
    parts.append("\n")
    return "".join(parts).encode()


def encode_comment(text: str = "") -> bytes:
    lines = _NEWLINES.split(text) if text else [""]
    return "".join(f": {line}\n" if line else ":\n" for line in lines).encode() + b"\n"


def _one_line(value: str) -> str:
    return _NEWLINES.sub("", value)
