"""The integration suites' fixtures: one Firestore emulator, one fake OpenRouter and one
function server per endpoint per test session, reset between tests; and ``serve``, the one
way to make any other function server."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import FirestoreEmulator, FunctionServer, Serve, TcpProxy, fake_openrouter


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    with FirestoreEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeOpenRouterThread]:
    with fake_openrouter(delay=0.01) as fake:
        yield fake


@pytest.fixture(scope="session")
def serve(firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread) -> Serve:
    """Make a function server (not yet started: use it as ``with``) with ``env`` over the
    tests' defaults, on the session's emulator and fake upstream unless ``firestore_host``
    (a proxy, a port that refuses) or ``base_url`` say otherwise."""

    def make(
        target: str = "execute_prompt_stream",
        env: Mapping[str, str] | None = None,
        *,
        firestore_host: str | None = None,
        base_url: str | None = None,
    ) -> FunctionServer:
        return FunctionServer(
            target,
            firestore_host or firestore_emulator.host,
            base_url or fake_upstream.base_url,
            env=env,
        )

    return make


@pytest.fixture(scope="session")
def stream_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve(env={"HEARTBEAT_SECONDS": "0.3"}) as server:
        yield server


@pytest.fixture(scope="session")
def execute_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("execute_prompt") as server:
        yield server


@pytest.fixture
def db(firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread) -> Any:
    """A clean database and a clean fake upstream for each test."""
    firestore_emulator.reset()
    fake_upstream.reset()
    return firestore_emulator.client()


@pytest.fixture
def proxy(firestore_emulator: FirestoreEmulator) -> Iterator[TcpProxy]:
    """A TcpProxy to the emulator (serve it as ``firestore_host=proxy.host``): hold it
    and the requests in their Firestore calls stay there."""
    proxy = TcpProxy(firestore_emulator.host)
    try:
        yield proxy
    finally:
        # Cut first: what is still held is dropped, never delivered into the next test
        # (a commit given up for a timeout would otherwise land after the reset).
        proxy.cut()
        proxy.release()
