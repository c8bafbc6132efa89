"""Shared fixtures: one Firestore emulator, one fake OpenRouter and one function server
per test session, reset between tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import FirestoreEmulator, FunctionServer, Serve


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    with FirestoreEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeOpenRouterThread]:
    fake = FakeOpenRouterThread(delay=0.01)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def serve(firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread) -> Serve:
    """Make a function server (not yet started: use it as ``with``) on the session's
    emulator and fake upstream, with ``env`` over the tests' defaults."""

    def make(target: str, env: Mapping[str, str] | None = None) -> FunctionServer:
        return FunctionServer(target, firestore_emulator.host, fake_upstream.base_url, env=env)

    return make


@pytest.fixture(scope="session")
def stream_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("execute_prompt_stream", env={"HEARTBEAT_SECONDS": "0.3"}) as server:
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
