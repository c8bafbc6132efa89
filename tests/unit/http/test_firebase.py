"""https_endpoint in-process: the function it returns carries the manifest entry
``on_request`` would build, runs the ``@init`` callbacks before its first request, and
hands the exchange to the ASGI app. (What ``firebase deploy`` discovers in main.py, in a
fresh interpreter, is tests/integration/test_firebase_manifest.py's.)"""

from __future__ import annotations

from typing import Any

from firebase_functions import core, https_fn, options

from promptstream import https_endpoint
from promptstream.http._asgi import AsgiResponse


async def app(scope: Any, receive: Any, send: Any) -> None:
    pass


def test_the_endpoint_is_declared_as_on_request_declares_it() -> None:
    opts = {"memory": options.MemoryOption.GB_1, "timeout_sec": 60, "concurrency": 10}
    endpoint = https_endpoint("my_function", app, **opts)

    @https_fn.on_request(**opts)
    def my_function(request: Any) -> Any:  # what on_request declares for the same options
        raise AssertionError

    assert endpoint.__name__ == endpoint.__qualname__ == "my_function"
    assert endpoint.__firebase_endpoint__ == my_function.__firebase_endpoint__  # type: ignore[attr-defined]


async def test_the_init_callbacks_run_before_the_first_request_and_the_app_answers(
    monkeypatch: Any,
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(core, "_did_init", False)
    monkeypatch.setattr(core, "_init_callback", lambda: ran.append("init"))
    endpoint = https_endpoint("fn", app)
    response = await endpoint(object())  # type: ignore[arg-type]
    assert ran == ["init"]
    assert isinstance(response, AsgiResponse) and response._app is app
    await endpoint(object())  # type: ignore[arg-type]
    assert ran == ["init"]  # once
