"""The worker's own limits: configure_server hands uvicorn's worker our protocol and the
head limit; BoundedH11Protocol, on an in-memory transport, closes a connection whose
request head does not arrive in time and leaves alone one that is being served."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import uvicorn_worker
from uvicorn.server import ServerState

from promptstream import Settings, configure_server
from promptstream._server import BoundedH11Protocol


@pytest.fixture
def worker_config() -> Iterator[None]:
    saved = (dict(uvicorn_worker.UvicornWorker.CONFIG_KWARGS), BoundedH11Protocol.head_timeout)
    try:
        yield
    finally:
        uvicorn_worker.UvicornWorker.CONFIG_KWARGS, BoundedH11Protocol.head_timeout = saved


@pytest.mark.usefixtures("worker_config")
def test_configure_server_gives_the_worker_our_protocol_and_limits() -> None:
    configure_server(Settings(head_timeout_seconds=2.5, max_request_head_bytes=4096))
    config = uvicorn_worker.UvicornWorker.CONFIG_KWARGS
    assert config["http"] is BoundedH11Protocol
    assert config["h11_max_incomplete_event_size"] == 4096
    assert BoundedH11Protocol.head_timeout == 2.5


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(60)  # a long request: the head deadline must not cut it


def connected(head_timeout: float) -> tuple[BoundedH11Protocol, Transport]:
    config = uvicorn.Config(app, http=BoundedH11Protocol, lifespan="off", log_level="error")
    config.load()
    protocol = BoundedH11Protocol(config=config, server_state=ServerState(), app_state={})
    protocol.head_timeout = head_timeout
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "])
async def test_a_connection_without_a_whole_head_is_closed_after_the_timeout(sent: bytes) -> None:
    protocol, transport = connected(0.05)
    if sent:
        protocol.data_received(sent)
    for _ in range(100):
        if transport.closed:
            break
        await asyncio.sleep(0.01)
    assert transport.closed
    protocol.connection_lost(None)


async def test_a_request_being_served_is_not_cut_by_the_head_deadline() -> None:
    protocol, transport = connected(0.05)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.2)
    assert not transport.closed
    protocol.connection_lost(None)
    await asyncio.sleep(0)
