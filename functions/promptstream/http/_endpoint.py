"""The plumbing every endpoint shares: the ASGI app around an endpoint's handlers (the
health probe, preflights, the methods it takes), the browser's CORS rules, and reading a
body within its size and time limits (docs/adr/0306-server-edge.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .._config import Settings
from .._errors import ClientGone, ErrorCode, HttpError
from ._asgi import send_error
from ._service import Service, get_service

__all__ = ["Handler", "endpoint", "read_body", "too_large", "with_cors"]

Handler = Callable[[Service, Scope, Receive, Send], Awaitable[None]]


def endpoint(handlers: dict[str, Handler]) -> ASGIApp:
    """Probes, preflights and other methods are answered here; a request whose method
    is in ``handlers`` goes to its handler with the process's service."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].endswith("/__/health"):
            # The emulator's worker probe: answer at once, touch nothing.
            body = b"ok"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        method = scope["method"]
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        handle = handlers.get(method)
        if handle is None:
            allowed = ", ".join(handlers)
            await send_error(
                send, HttpError(ErrorCode.METHOD_NOT_ALLOWED, f"Use {allowed}."), allow=allowed
            )
            return
        await handle(get_service(), scope, receive, send)

    return app


def with_cors(app: ASGIApp, settings: Settings, methods: tuple[str, ...] = ("POST",)) -> ASGIApp:
    """The browser's cross-origin rules, for the allowed origins only."""
    return CORSMiddleware(
        app,
        allow_origins=list(settings.allowed_origins),
        allow_methods=[*methods, "OPTIONS"],
        # Last-Event-ID: a resume (docs/adr/0600-durable-streams.md).
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        expose_headers=["Retry-After", "X-Execution-Id"],
        max_age=3600,
    )


def too_large(limit: int) -> HttpError:
    return HttpError(ErrorCode.PAYLOAD_TOO_LARGE, f"The body is limited to {limit} bytes.")


async def read_body(
    receive: Receive, settings: Settings, *, limit: int | None = None, within: float | None = None
) -> bytes:
    """The whole body, refused as soon as it grows over ``limit`` (``MAX_BODY_BYTES``
    unless given), or when it is too slow to arrive (``BODY_TIMEOUT_SECONDS`` unless
    given, in seconds). Raises ``HttpError`` (413, 408) or ``ClientGone``.
    """
    limit = settings.max_body_bytes if limit is None else limit
    seconds = settings.body_timeout_seconds if within is None else within
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                parts.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(parts)
    except TimeoutError:
        raise HttpError(
            ErrorCode.REQUEST_TIMEOUT,
            f"The body did not arrive within {seconds:g} s.",
        ) from None
