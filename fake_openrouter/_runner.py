"""Ways to run the fake: in the current event loop, or in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from ._server import FakeState, start_site

__all__ = ["FakeOpenRouter", "FakeOpenRouterThread"]

_T = TypeVar("_T")


class FakeOpenRouter:
    """The fake server in the running event loop.

    `async with FakeOpenRouter(delay=0.0, chunks=4) as fake:` then point a client at
    `fake.base_url`. Keyword arguments are default knobs; `api_key` makes the server
    accept only that bearer key.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        **knobs: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.state = FakeState(knobs, api_key=api_key)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the server root."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenRouter-style base URL, `http://127.0.0.1:PORT/api/v1`."""
        return self.url + "/api/v1"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeOpenRouter is already started")
        self._runner, self.port = await start_site(self.state, self.host, self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenRouter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> dict[str, Any]:
        """The same dict as `GET /_fake/stats`."""
        return self.state.stats()

    def requests(self) -> list[dict[str, Any]]:
        """The same list as `GET /_fake/requests` (the last 1000 chat requests)."""
        return list(self.state.request_log)

    def reset(self) -> None:
        """Zero the counters, forget requests, restore the startup defaults."""
        self.state.reset()

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change default knobs (like `POST /_fake/config`); returns all defaults."""
        return self.state.configure(knobs)


class FakeOpenRouterThread:
    """The fake server on its own event loop in a daemon thread, for sync code.

    `start()` returns once the port is bound; `stop()` shuts it down and joins the thread.
    Also a context manager.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        **knobs: Any,
    ) -> None:
        self._server = FakeOpenRouter(host=host, port=port, api_key=api_key, **knobs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self, timeout: float = 10.0) -> FakeOpenRouterThread:
        if self._thread is not None:
            raise RuntimeError("FakeOpenRouterThread is already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._main(ready, failure))
            finally:
                loop.close()
                ready.set()

        self._thread = threading.Thread(target=run, name="fake-openrouter", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("fake OpenRouter did not start in time")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            raise failure[0]
        return self

    async def _main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._stopped = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as exc:  # handed to the starting thread
            failure.append(exc)
            return
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            await self._server.close()

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None or loop is None or stopped is None:
            return
        loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout)
        self._thread = None

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("FakeOpenRouterThread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10.0)

    def stats(self) -> dict[str, Any]:
        return self._call(_call_sync(self._server.stats))

    def requests(self) -> list[dict[str, Any]]:
        return self._call(_call_sync(self._server.requests))

    def reset(self) -> None:
        self._call(_call_sync(self._server.reset))

    def configure(self, **knobs: Any) -> dict[str, Any]:
        return self._call(_call_sync(lambda: self._server.configure(**knobs)))

    def __enter__(self) -> FakeOpenRouterThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _call_sync(func: Callable[[], _T]) -> _T:
    # State is only touched on the server's own loop, so reads see a consistent view.
    return func()
