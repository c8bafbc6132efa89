"""The bench's delay proxy (``devstack.DelayProxy``, `bench --firestore-delay`): every byte
arrives, in order, no sooner than the delay in each direction, and an end travels through.

An echo server on loopback stands behind the proxy. The round trip is asserted from below
(the delay is really added) and only loosely from above (a liveness bound, not a timing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from devstack import DelayProxy

DELAY_MS = 20


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo_proxy() -> AsyncIterator[DelayProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = DelayProxy(f"127.0.0.1:{port}", DELAY_MS)
    await asyncio.to_thread(proxy.start)
    try:
        yield proxy
    finally:
        proxy.stop()
        server.close()
        await server.wait_closed()


async def _connect(proxy: DelayProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = proxy.host.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def test_a_round_trip_takes_the_delay_each_way(echo_proxy: DelayProxy) -> None:
    reader, writer = await _connect(echo_proxy)
    trips = []
    for n in range(5):
        started = time.monotonic()
        writer.write(b"ping %d\n" % n)
        assert await asyncio.wait_for(reader.readline(), 10) == b"ping %d\n" % n
        trips.append(time.monotonic() - started)
    writer.close()
    assert min(trips) >= 2 * DELAY_MS / 1000
    assert max(trips) < 2 * DELAY_MS / 1000 + 5  # liveness only


async def test_bytes_written_in_many_small_pieces_arrive_whole_and_in_order(
    echo_proxy: DelayProxy,
) -> None:
    reader, writer = await _connect(echo_proxy)
    lines = [b"%06d\n" % n for n in range(3000)]

    async def send() -> None:
        for n, line in enumerate(lines):
            writer.write(line)
            if n % 7 == 0:
                await writer.drain()
                await asyncio.sleep(0)  # separate reads at the proxy, each with its own time
        await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    received = await asyncio.wait_for(reader.read(), 30)  # to the end the echo passes on
    await sender
    writer.close()
    assert received == b"".join(lines)


async def test_the_targets_end_reaches_the_client(echo_proxy: DelayProxy) -> None:
    reader, writer = await _connect(echo_proxy)
    writer.write(b"last words\n")
    writer.write_eof()  # the echo server answers, then closes its side
    assert await asyncio.wait_for(reader.read(), 10) == b"last words\n"
    writer.close()
