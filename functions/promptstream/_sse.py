"""Server-Sent Events: an incremental decoder (bytes in, events out) and one encoder.

The decoder follows the WHATWG "event stream interpretation" algorithm line by line.
It is pure: no sockets, no clock. Lines are split on CR, LF and CRLF *before* UTF-8 is
decoded, so a multi-byte character split across two network reads is never mangled.
Its size limits are its own settings (aiohttp's ``resp.content`` line iterator has a
fixed one and splits on LF only).

Its limits against a hostile upstream: docs/adr/0300-hostile-upstream.md.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["SSEDecoder", "SSELimitError", "ServerSentEvent", "encode_comment", "encode_event"]

_BOM = b"\xef\xbb\xbf"


class SSELimitError(ValueError):
    """A line or an event went past the decoder's size limit. The client turns it into
    its own ``InvalidResponseError``; the decoder knows nothing of OpenRouter."""


class ServerSentEvent(NamedTuple):
    """One event. A tuple: immutable, and built at C speed (one per upstream chunk)."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed by them.

    ``max_line_bytes`` bounds one line and ``max_event_bytes`` one event's data (the sum
    of its ``data:`` lines); going past either raises ``SSELimitError``. Only the bytes
    of a new read are scanned for line ends, and an unfinished line is kept as a list of
    pieces joined once, so a long line costs time linear in its length.
    """

    __slots__ = (
        "_data",
        "_data_bytes",
        "_event",
        "_last_event_id",
        "_max_event",
        "_max_line",
        "_pending",
        "_pending_bytes",
        "_prefix",
        "_retry",
        "_skip_lf",
        "_started",
        "comments",
        "retry",
    )

    def __init__(
        self, *, max_line_bytes: int | None = None, max_event_bytes: int | None = None
    ) -> None:
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        # The first bytes, while they could still be the start of a BOM.
        self._prefix = b""
        # The unfinished last line, in the pieces it arrived in.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._started = False
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0
        self._last_event_id = ""
        self._retry: int | None = None
        self.comments = 0
        self.retry: int | None = None

    @property
    def last_event_id(self) -> str:
        return self._last_event_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if not self._started:
            chunk = self._prefix + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._prefix = chunk
                return []
            self._started = True
            self._prefix = b""
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._skip_lf and chunk:
            # The previous read ended in CR; a LF that starts this one completes a CRLF.
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        lines = chunk.splitlines(keepends=True)
        tail = None if lines[-1].endswith((b"\n", b"\r")) else lines.pop()
        if lines:
            # A CR that ends this read may be the first half of a CRLF.
            self._skip_lf = tail is None and lines[-1].endswith(b"\r")
            if self._pending:
                lines[0] = b"".join(self._pending) + lines[0]
                self._pending = []
                self._pending_bytes = 0
        events: list[ServerSentEvent] = []
        limit = self._max_line
        for raw in lines:
            if limit is not None and len(raw) > limit and len(raw.rstrip(b"\r\n")) > limit:
                raise SSELimitError(f"an event-stream line is longer than {limit} bytes")
            event = self._line(raw.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        if tail is not None:
            self._pending.append(tail)
            self._pending_bytes += len(tail)
            if limit is not None and self._pending_bytes > limit:
                raise SSELimitError(f"an event-stream line is longer than {limit} bytes")
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream. Per the spec, an event without its blank line is discarded."""
        self._pending = []
        self._pending_bytes = 0
        self._data = []
        self._data_bytes = 0
        self._event = ""
        return []

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":
            self.comments += 1
            return None
        if raw[:5] == b"data:" or raw == b"data":
            # The data lines of one event are counted before they are decoded.
            self._data_bytes += len(raw)
            if self._max_event is not None and self._data_bytes > self._max_event:
                raise SSELimitError(f"an event's data is longer than {self._max_event} bytes")
            if raw[5:6] == b" ":
                # The common line, on the per-chunk path: no partition, no second look.
                self._data.append(raw[6:].decode("utf-8", "replace"))
                return None
        field, sep, value = raw.decode("utf-8", "replace").partition(":")
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
            self._data_bytes = 0
            self._event = ""
            self._retry = None
            return None
        data = self._data
        event = ServerSentEvent(
            data[0] if len(data) == 1 else "\n".join(data),
            self._event or "message",
            self._last_event_id,
            self._retry,
        )
        self._data = []
        self._data_bytes = 0
        self._event = ""
        self._retry = None
        return event


_NEWLINES = re.compile(r"\r\n|\r|\n")
_NEWLINE_BYTES = re.compile(rb"\r\n|\r|\n")


def encode_event(
    data: str | bytes,
    *,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event (``data`` as text, or as UTF-8). Multi-line data becomes several
    ``data:`` lines."""
    raw = data.encode() if isinstance(data, str) else data
    head = b""
    if id is not None:
        head = b"id: %d\n" % id if type(id) is int else f"id: {_one_line(str(id))}\n".encode()
    if event is not None:
        head += f"event: {_one_line(event)}\n".encode()
    if retry is not None:
        head += b"retry: %d\n" % int(retry)
    if b"\n" in raw or b"\r" in raw:
        lines = _NEWLINE_BYTES.split(raw)
        return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    return head + b"data: " + raw + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    lines = _NEWLINES.split(text) if text else [""]
    return "".join(f": {line}\n" if line else ":\n" for line in lines).encode() + b"\n"


def _one_line(value: str) -> str:
    return _NEWLINES.sub("", value)
