"""uvicorn's httptools protocol with the rules of our h11 one (docs/adr/0306-server-edge.md),
where httptools (llhttp) does not apply them itself: the request head bounded
(``MAX_REQUEST_HEAD_BYTES``, 431) however it arrives, an HTTP/1.0 answer close-delimited
rather than chunked, ``Connection: close`` on an answer given before the whole body,
h11's refusals of a head (no Host, a transfer coding other than chunked), h11's response
head byte for byte, the body of a request asking for an upgrade it does not get, and what
follows a request parsed only once it is answered. Why httptools:
docs/adr/1004-the-server-on-httptools.md.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.server import ServerState

from .._errors import ErrorCode
from ._connection import ConnectionRules, head_limit, refusal, status_phrase

__all__ = ["BoundedHttpToolsProtocol"]

_CLOSE = (b"connection", b"close")
_BLANK_LINE = b"\r\n\r\n"  # llhttp takes CRLF only, so a head ends at the first of these


class _Refused(Exception):
    """Raised from a parser callback: the head breaks one of h11's rules."""


def _comma_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [
        value.strip().lower()
        for found, values in headers
        if found.lower() == name
        for value in values.split(b",")
        if value.strip()
    ]


def _set_header(
    headers: list[tuple[bytes, bytes]], name: bytes, values: list[bytes]
) -> list[tuple[bytes, bytes]]:
    # h11's set_comma_header: the header moved to the end, its name title-cased.
    kept = [(found, value) for found, value in headers if found.lower() != name]
    return kept + [(name.title(), value) for value in values]


class _Cycle(RequestResponseCycle):
    """uvicorn's request cycle with a response head exactly as h11 writes it (its framing
    headers, their names and order): an answer of unknown length chunked to HTTP/1.1 and
    delimited by the close to HTTP/1.0, which does not know chunked; ``Connection: close``
    when the connection ends after it, including on an answer that starts while the
    request's body is still arriving (keeping the connection would mean reading the rest
    of that body, however long, to find the next request)."""

    until_close = False

    async def send(self, message: ASGISendEvent) -> None:
        # The whole of uvicorn's send, not a wrapper: this is the per-chunk path.
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        event: Any = message
        kind = event["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{kind}'."
                )
            self._start(event)
            return
        if self.response_complete or kind != "http.response.body":
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent.")
        body = event.get("body", b"")
        more = event.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
        elif self.chunked_encoding:
            end = b"" if more else b"0\r\n\r\n"
            self.transport.write(b"%x\r\n%s\r\n%s" % (len(body), body, end) if body else end)
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            if not self.until_close:
                self.expected_content_length -= len(body)
            self.transport.write(body)
        if not more:
            if self.expected_content_length != 0 and not self.until_close:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _start(self, event: Any) -> None:
        self.response_started = True
        self.waiting_for_100_continue = False
        status: int = event["status"]
        headers = self.default_headers + list(event.get("headers", []))
        if _CLOSE in self.scope["headers"] and _CLOSE not in headers:
            headers.append(_CLOSE)
        if self.more_body:
            headers.append(_CLOSE)
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )
        for name, value in headers:
            if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header.")
        head = self.scope["method"] == "HEAD"
        # As h11: the header is rewritten when the request ends the connection; an
        # answer's own Connection: close is written as given.
        close = not self.keep_alive
        self.chunked_encoding = False
        self.expected_content_length = 0
        if status not in (204, 304):
            lengths = _comma_values(headers, b"content-length")
            if _comma_values(headers, b"transfer-encoding") or not lengths:
                headers = _set_header(headers, b"content-length", [])
                if self.scope["http_version"] == "1.0":
                    headers = _set_header(headers, b"transfer-encoding", [])
                    close = close or not head
                    self.until_close = True
                    self.expected_content_length = sys.maxsize
                else:
                    headers = _set_header(headers, b"transfer-encoding", [b"chunked"])
                    self.chunked_encoding = True
            else:
                self.expected_content_length = int(lengths[0])
        if close:
            connection = set(_comma_values(headers, b"connection")) - {b"keep-alive"}
            headers = _set_header(headers, b"connection", sorted(connection | {b"close"}))
        if close or b"close" in _comma_values(headers, b"connection"):
            self.keep_alive = False
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, status_phrase(status))]
        lines += [b"%s: %s\r\n" % (name, value) for name, value in headers]
        lines.append(b"\r\n")
        self.transport.write(b"".join(lines))

    async def send_500_response(self) -> None:
        # h11's cycle's 500, not httptools': no length (chunked) and Connection: close.
        headers = [(b"content-type", b"text/plain; charset=utf-8"), _CLOSE]
        await self.send({"type": "http.response.start", "status": 500, "headers": headers})
        await self.send(
            {"type": "http.response.body", "body": b"Internal Server Error", "more_body": False}
        )


class BoundedHttpToolsProtocol(ConnectionRules, HttpToolsProtocol):
    """uvicorn's httptools protocol with our connection rules and a deadline on every
    head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_head = head_limit(config)
        self._head = 0  # bytes of the current head so far, while one is arriving
        self._tail = b""  # its last three bytes, to find its end across reads
        self._in_body = False
        self._body_left: int | None = None  # of a declared length; None when chunked
        self._upgrade_body = False  # a body llhttp skips, handed to the app by us
        self._refusal = ErrorCode.INVALID_REQUEST
        # A refusal that waits for the answer to the requests before it, as h11's does.
        self._refused: bytes | None = None

    def body_arriving(self) -> bool:
        return self._in_body

    def between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def received(self, data: bytes) -> None:
        # The parser is fed a head at a time, up to its blank line, so that its size is
        # known exactly however it arrived (one read, in pieces, behind another request).
        view = memoryview(data)
        at, size = 0, len(data)
        while at < size and self._refused is None and not self.transport.is_closing():
            counting = False
            if self._in_body and self._body_left:
                end = min(size, at + self._body_left)
                if self._upgrade_body:
                    self.on_body(bytes(view[at:end]))
                    if not self._body_left:
                        self.on_message_complete()
                    at = end
                    continue
            elif self._in_body or self._counted_head:
                # A chunked body's end is the parser's to find, so a head behind it in
                # the same read is measured from the parser's callbacks (_count_head),
                # and the reads it goes on in are bounded too.
                counting = True
                end = size
                if not self._in_body:
                    self._head_later += size - at
                    if self._head_later > self._max_head:
                        self._too_large()
                        return
            else:
                found = self._head_end(data, at)
                if found is None:
                    self._too_large()
                    return
                end = found
            self._counting = counting
            HttpToolsProtocol.data_received(self, view[at:end])  # type: ignore[arg-type]
            self._counting = False
            at = end

    def _too_large(self) -> None:
        self._refusal = ErrorCode.REQUEST_HEAD_TOO_LARGE
        self.send_400_response("request head too large")

    def _head_end(self, data: bytes, at: int) -> int | None:
        """Where in ``data`` the head arriving from ``at`` ends (its end while it goes
        on); None once it is over the limit."""
        start = at
        if self._head == 0:  # blank lines before a request line, skipped by llhttp
            while start < len(data) and data[start] in b"\r\n":
                start += 1
            if start == len(data):
                return start
        end = -1
        if self._tail:
            found = (self._tail + data[start : start + 3]).find(_BLANK_LINE)
            if found >= 0:
                end = start + found + 4 - len(self._tail)
        if end < 0:
            found = data.find(_BLANK_LINE, start, start + self._max_head - self._head)
            end = -1 if found < 0 else found + 4
        if end < 0:
            self._head += len(data) - start
            if self._head > self._max_head:
                return None
            self._tail = (self._tail + data[-3:])[-3:]
            return len(data)
        if self._head + end - start > self._max_head:
            return None
        self._head = 0
        self._tail = b""
        return end

    # -- the parser's callbacks ------------------------------------------------------

    # Feeding what follows a chunked body; a head that began there; its size as the
    # callbacks give it (exact for single spaces and ": "; never more than the head); the
    # bytes of the reads it went on in.
    _counting = False
    _counted_head = False
    _counted = 0
    _head_later = 0

    def _count_head(self, size: int) -> None:
        if self._counted_head:
            self._counted += size
            if self._counted > self._max_head:
                self._refusal = ErrorCode.REQUEST_HEAD_TOO_LARGE
                raise _Refused

    def on_message_begin(self) -> None:
        self._counted_head = self._counting
        self._counted = len(b"  HTTP/1.1\r\n\r\n")  # the request line's and the end's
        self._head_later = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace; h11 strips it
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._count_head(len(self.parser.get_method()))
        self._counted_head = False
        hosts = 0
        chunked = False
        length = 0
        for name, value in self.headers:
            if name == b"host":
                hosts += 1
            elif name == b"transfer-encoding":
                if chunked or value.lower() != b"chunked":  # h11 takes chunked alone
                    raise _Refused
                chunked = True
            elif name == b"content-length":
                length = int(value)
        if hosts > 1 or (hosts == 0 and self.parser.get_http_version() == "1.1"):
            raise _Refused  # as h11 does (RFC 9112 3.2)
        # httptools has llhttp end a request that asks for an upgrade (curl's h2c, say)
        # at its head and parse what follows as the next request; h11 reads its body, as
        # a server that does not switch must. A declared body is then handed over here
        # (received); a chunked one, which only llhttp could decode, is refused.
        upgrade = self.parser.should_upgrade() and not self._should_upgrade()
        if upgrade and chunked:
            raise _Refused
        self._upgrade_body = upgrade and length > 0
        super().on_headers_complete()
        if self.cycle is not None and type(self.cycle) is RequestResponseCycle:
            # uvicorn builds its cycle inside this callback, and its task calls ``send``
            # only once it runs: ours adds methods and a flag with a class default, so
            # the cycle becomes one here rather than this callback being copied whole.
            self.cycle.__class__ = _Cycle
        self._in_body = chunked or length > 0
        self._body_left = None if chunked else length

    def on_body(self, body: bytes) -> None:
        if self._body_left is not None:
            self._body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._upgrade_body and self._body_left:
            return  # llhttp's end of an upgrade request's head, not of its body
        self._upgrade_body = False
        self._in_body = False
        super().on_message_complete()

    # -- refusals ------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """The parser's refusal, in our JSON error shape, and the connection closed; after
        the answers to the requests before it, as h11 gives it (h11 parses what follows a
        request only once that request is answered)."""
        status, headers, body = refusal(self._refusal)
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, status_phrase(status))]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        self._refused = b"".join([*lines, b"\r\n", body])
        queued = bool(self.pipeline) and self.pipeline[0][0] is self.cycle
        if self._in_body and queued:
            self.pipeline.popleft()  # a request waiting its turn whose body broke: never run
        answered = self._in_body and not queued  # the body of the request being answered
        self._in_body = False  # nothing more is read: the close is immediate
        if answered or (not self.pipeline and self.between_requests()):
            self._refuse()
        else:
            self.transport.pause_reading()

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)
        super().on_response_complete()
        if self._refused is not None and not queued:
            self._refuse()

    def _refuse(self) -> None:
        self._unset_keepalive_if_required()
        answering = self.cycle is not None and self.cycle.response_started
        answering = answering and not self.cycle.response_complete
        if not answering and not self.transport.is_closing() and self._refused is not None:
            self.transport.write(self._refused)
        self.transport.close()
