"""The unit layer's fixtures: the process's Service, on injected in-process parts, and a
scripted HTTP server on loopback for the small client cases.

The layer runs on every change, so it stays under 20 s: its property tests draw a few
hundred examples each (new ones every run; a failure is kept in .hypothesis/ and
replayed first), and nothing here starts the emulator or a process: the one server is
in-process, on the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from promptstream import set_service
from support.fakes import UnitService, prompt
from support.scripted import ScriptedServer


@pytest.fixture
async def service() -> AsyncIterator[UnitService]:
    """A UnitService installed as the process's service: Alice's prompt ``p1`` and Bob's
    public ``pub`` in its store, a FakeClient for the upstream."""
    service = UnitService(prompts={"p1": prompt(), "pub": prompt(owner_uid="bob", public=True)})
    set_service(service)
    try:
        yield service
    finally:
        set_service(None)
        await service.aclose()


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    """A ScriptedServer on loopback; the test fails if a request came that nothing was
    scripted to answer."""
    async with ScriptedServer() as server:
        yield server
    assert server.unexpected == [], f"requests nothing was scripted for: {server.unexpected}"
