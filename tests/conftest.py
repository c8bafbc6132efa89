"""Shared fixtures: one Firestore emulator, one fake OpenRouter and one function server
per test session, reset between tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import FirestoreEmulator, FunctionServer


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
def stream_server(
    firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread
) -> Iterator[FunctionServer]:
    with FunctionServer(
        "execute_prompt_stream",
        firestore_emulator.host,
        fake_upstream.base_url,
        env={"HEARTBEAT_SECONDS": "0.3"},
    ) as server:
        yield server


@pytest.fixture(scope="session")
def execute_server(
    firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread
) -> Iterator[FunctionServer]:
    with FunctionServer(
        "execute_prompt", firestore_emulator.host, fake_upstream.base_url
    ) as server:
        yield server


@pytest.fixture
def db(firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread) -> Any:
    """A clean database and a clean fake upstream for each test."""
    firestore_emulator.reset()
    fake_upstream.reset()
    return firestore_emulator.client()
