"""A flood of one request, from a process of its own so that the flooding client's CPU
and GIL are not those of the test that measures another user meanwhile.

``python flood.py PORT COUNT`` (at the lowest CPU priority) reads a request's bytes from
stdin, sends them COUNT times at once on 127.0.0.1:PORT, each on a connection of its own,
prints ``sent`` once every one is written, then reads each status line and hangs up, and
prints the statuses as one JSON list (0 where none came within 60 s). Standard library
only: it runs as a plain script.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter] | None


async def send(port: int, raw: bytes) -> Connection:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
    except OSError:
        return None
    return reader, writer


async def status(connection: Connection) -> int:
    """The status line's code (0 if none came), then hang up."""
    if connection is None:
        return 0
    reader, writer = connection
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 60)
        return int(line.split()[1])
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
        return 0
    finally:
        writer.close()


async def flood(port: int, count: int, raw: bytes) -> list[int]:
    connections = await asyncio.gather(*(send(port, raw) for _ in range(count)))
    print("sent", flush=True)
    return list(await asyncio.gather(*map(status, connections)))


if __name__ == "__main__":
    # The flooding client's own CPU is not what is measured: the server's share of a busy
    # machine's cores should not shrink because of it.
    os.nice(19)
    statuses = asyncio.run(flood(int(sys.argv[1]), int(sys.argv[2]), sys.stdin.buffer.read()))
    print(json.dumps(statuses), flush=True)
