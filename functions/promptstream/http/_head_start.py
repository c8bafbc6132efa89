"""What an opening starts while its commit is in flight: the upstream call, or, when the
request names documents, the search whose passages must be in that call first.

The store calls ``admitted`` once its read has shown the request admissible, as the
commit goes out; the commit and the upstream's first round trip overlap. Nothing reaches
the client before the commit has landed (the steps that write come after it), and a
commit that refuses or fails stops everything started here (``abort``), so that a lost
race costs the upstream at most one request's start. See
docs/adr/1000-one-round-trip-before-the-upstream.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..run._prepare import Execution
from ..upstream._chat import ChatStream
from ..upstream._client import ChatResponse, OpenRouterClient
from ._service import Service

__all__ = ["HeadStart"]

T = TypeVar("T")


class HeadStart:
    """One opening's early work: owned here (the tasks and, until taken, the stream) and
    closed by ``aclose`` whatever became of the opening."""

    __slots__ = ("_answer", "_client", "_search", "_service", "_started", "_stream", "_streaming")

    def __init__(self, service: Service, client: OpenRouterClient, *, streaming: bool) -> None:
        self._service = service
        self._client = client
        self._streaming = streaming
        self._search: asyncio.Task[None] | None = None
        self._stream: ChatStream | None = None
        self._started: asyncio.Task[None] | None = None
        self._answer: asyncio.Task[ChatResponse] | None = None

    def admitted(self, ex: Execution) -> None:
        """The read admits ``ex``: start its search, or (no documents) the upstream."""
        if ex.document_ids:
            self._search = self._spawn(self._searched(ex))
        else:
            self.dispatch(ex)

    async def _searched(self, ex: Execution) -> None:
        await self._service.executions.search(ex, await self._service.embeddings())

    async def searched(self) -> None:
        """Wait for the search ``admitted`` started; its error is raised here."""
        if self._search is not None:
            await self._search

    def dispatch(self, ex: Execution) -> None:
        """Start the upstream call of ``ex`` (its passages, if any, found)."""
        args = (ex.upstream_prompt, ex.system_prompt, ex.context)
        overrides = ex.overrides(self._service.settings.default_max_tokens)
        if self._streaming:
            self._stream = self._client.generate_response_stream(
                *args, fallbacks=ex.fallbacks, history=ex.history, **overrides
            )
            # Up to the upstream's response headers: its refusals are still an HTTP status.
            self._started = self._spawn(self._stream.start())
        else:
            self._answer = self._spawn(
                self._client.generate_response(
                    *args, fallbacks=ex.fallbacks, history=ex.history, **overrides
                )
            )

    def take_stream(self) -> tuple[ChatStream, asyncio.Task[None]]:
        """The stream ``dispatch`` started, and the task that opens it; the caller closes
        the stream from now on."""
        stream, started = self._stream, self._started
        assert stream is not None and started is not None, "dispatch() comes first"
        self._stream = None
        return stream, started

    async def answer(self) -> ChatResponse:
        """The whole answer of the call ``dispatch`` started (not streamed)."""
        assert self._answer is not None, "dispatch() comes first"
        return await self._answer

    def abort(self) -> None:
        """Stop everything started here, at once (from a plain callback too)."""
        for task in (self._search, self._started, self._answer):
            if task is not None:
                task.cancel()
        if self._stream is not None:
            self._stream.abort()

    async def aclose(self) -> None:
        """Stop what is still running and wait for it; close the stream nobody took."""
        self.abort()
        tasks = [t for t in (self._search, self._started, self._answer) if t is not None]
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                # Retrieved: an abandoned call's error is nobody's to raise.
                task.exception()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.aclose()

    @staticmethod
    def _spawn(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        # Tasks by hand, not a TaskGroup's: they outlive the store's call that starts
        # them, and aclose (in the opening's finally) is their owner's end.
        return asyncio.get_running_loop().create_task(work)
