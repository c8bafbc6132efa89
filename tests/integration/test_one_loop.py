"""One loop carries every request: nothing slow may run on it.

The endpoint runs in-process here, on uvicorn (h11, as functions-framework's worker runs
it) in the test's own loop, with a Service whose token check is injected: the client
and the server share the loop, so a stall in the server shows up as a gap at the client.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn

from fake_openrouter import FakeOpenRouterThread
from promptstream import Service, Settings, set_service, stream_app
from promptstream.http._auth import Authenticator, Claims
from promptstream.store._store import Store
from support import PROJECT, TEST_API_KEY, FirestoreEmulator, add_prompt, body, free_port

SLOW = "slow-token"
SLOW_SECONDS = 1.5


def verify(token: str) -> Claims:
    """Any token is alice's; one takes SLOW_SECONDS, as a key fetch over a slow network."""
    if token == SLOW:
        time.sleep(SLOW_SECONDS)
    return "alice", time.time() + 3600


@pytest.fixture
async def server(
    firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread
) -> AsyncIterator[str]:
    settings = Settings(
        project_id=PROJECT,
        openrouter_base_url=fake_upstream.base_url,
        max_concurrent_streams=10,
    )
    service = Service(
        settings,
        Store(settings, emulator_host=firestore_emulator.host),
        Authenticator(verify),
        TEST_API_KEY,
    )
    set_service(service)
    port = free_port()
    config = uvicorn.Config(
        stream_app, host="127.0.0.1", port=port, http="h11", lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # a bounded wait for the socket to listen
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await service.aclose()
        set_service(None)


async def read_pieces(
    session: aiohttp.ClientSession, url: str, token: str, flowing: asyncio.Event | None = None
) -> list[float]:
    """POST and read the stream; the arrival time of each piece of the body. ``flowing``
    is set once content has been arriving for a while."""
    arrivals = []
    async with session.post(
        url, data=body(variables={"topic": "t"}), headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        async for _ in resp.content.iter_any():
            arrivals.append(time.monotonic())
            if flowing is not None and len(arrivals) == 4:
                flowing.set()
    return arrivals


async def test_a_slow_token_check_does_not_stall_the_streams_already_open(
    db: Any, server: str
) -> None:
    add_prompt(db, content="{{topic}} [[fake chunks=40 delay=0.05]]")
    async with aiohttp.ClientSession() as session:
        is_flowing = asyncio.Event()
        flowing = asyncio.create_task(read_pieces(session, server, "fast-token", is_flowing))
        await asyncio.wait_for(is_flowing.wait(), 20)
        started = time.monotonic()
        slow = asyncio.create_task(read_pieces(session, server, SLOW))
        arrivals = await flowing
        await slow
    during = [t for t in arrivals if t > started]
    assert len(during) > 5  # the stream went on while the slow check ran...
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < SLOW_SECONDS / 3, gaps  # ...without a pause
    assert time.monotonic() - started >= SLOW_SECONDS  # and the slow check was slow
