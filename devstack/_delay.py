"""A TCP proxy that delays every byte by a fixed time in each direction, in order.

The bench puts it in front of the Firestore emulator so that a round trip costs what it
will from a function to Firestore in the same region, not loopback's fraction of a
millisecond (issue 28). Each direction of each connection keeps a queue of what it read,
stamped with the time it is due, and one writer that waits for each piece in turn: the
bytes arrive `delay` late, never reordered. Why hand-written, and the round trip it adds
as measured: docs/adr/1001-realistic-latency-and-the-bound.md.

    python -m devstack._delay --target 127.0.0.1:8080 --delay-ms 5    # prints its address

It also counts the HTTP requests clients send through it, by the last segment of their
path (``batchGet``, ``commit``...), and writes the totals to stderr (the bench's
``logs/delay-proxy.log``) each second they moved: Firestore's requests per execution
(docs/adr/1003-reads-that-meet.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self

from ._parts import _Part, first_line

__all__ = ["DelayProxy", "serve"]

# Pieces read but not yet due, per direction: past this the reader waits (back-pressure).
_QUEUE_PIECES = 256
# A request line, and its verb: the path's last ``:name`` or ``/name``. A line break
# never appears raw in a JSON body, so only a request line matches.
_REQUEST = re.compile(rb"[A-Z]+ /[^ \r\n]*?[:/]([A-Za-z_]+) HTTP/1\.[01]\r\n")
_TAIL = 1024
_counts: collections.Counter[str] = collections.Counter()


class _Requests:
    """Counts the request lines in one connection's client bytes, across pieces."""

    __slots__ = ("tail",)

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, data: bytes) -> None:
        text = self.tail + data
        for match in _REQUEST.finditer(text):
            if match.end() > len(self.tail):  # not counted with the pieces before
                _counts[match.group(1).decode()] += 1
        self.tail = text[-_TAIL:]


async def _report() -> None:
    said: dict[str, int] = {}
    while True:
        await asyncio.sleep(1)
        if dict(_counts) != said:
            said = dict(_counts)
            at = time.strftime("%H:%M:%S", time.gmtime())
            print(f"{at} requests {json.dumps(said, sort_keys=True)}", file=sys.stderr, flush=True)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    requests: _Requests | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_PIECES)

    async def read() -> None:
        try:
            while data := await reader.read(65536):
                if requests is not None:
                    requests.feed(data)
                await queue.put((loop.time() + delay, data))
        except OSError:
            pass
        await queue.put((loop.time() + delay, b""))

    async def write() -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                # The other side's end, delivered as late as its last bytes.
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(read())
        tasks.create_task(write())


async def _connection(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
    delay: float,
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_pipe(client_reader, upstream_writer, delay, _Requests()))
            tasks.create_task(_pipe(upstream_reader, client_writer, delay))
    except* OSError:
        pass  # a reset on either side ends the connection, as it would on the network
    finally:
        for writer in (client_writer, upstream_writer):
            writer.close()


async def serve(target: str, delay: float, port: int = 0) -> asyncio.Server:
    """Listen on 127.0.0.1:``port`` (0: a free one) and forward each connection to
    ``target`` (host:port), ``delay`` seconds late each way."""
    host, _, target_port = target.rpartition(":")
    address = (host, int(target_port))
    return await asyncio.start_server(
        lambda r, w: _connection(r, w, address, delay), "127.0.0.1", port
    )


async def _main(target: str, delay: float, port: int) -> None:
    server = await serve(target, delay, port)
    sockname = server.sockets[0].getsockname()
    print(f"delay proxy listening on 127.0.0.1:{sockname[1]}", flush=True)
    report = asyncio.get_running_loop().create_task(_report())
    try:
        async with server:
            await server.serve_forever()
    finally:
        report.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack._delay", description=__doc__)
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, required=True, help="added each way")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    # asyncio's own loop: uvloop's timers count whole milliseconds (docs/adr/0007).
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.target, args.delay_ms / 1000, args.port))
    return 0


class DelayProxy(_Part):
    """`python -m devstack._delay` in its own process group: ``host`` reaches ``target``
    ``delay_ms`` later each way. Its output goes to ``log_dir/delay-proxy.log``."""

    def __init__(self, target: str, delay_ms: float, log_dir: Path | None = None) -> None:
        super().__init__()
        self.target = target
        self.delay_ms = delay_ms
        self.log_dir = log_dir
        self.host = ""

    def start(self) -> Self:
        log: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            self._log = (self.log_dir / "delay-proxy.log").open("wb")
            log = self._log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack._delay",
                "--target",
                self.target,
                "--delay-ms",
                f"{self.delay_ms:g}",
            ],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        text = first_line(self.proc)
        if "listening on " not in text:
            self.stop()
            raise RuntimeError(f"the delay proxy did not start: {text!r}")
        self.host = text.rsplit(" ", 1)[1]
        return self


if __name__ == "__main__":
    sys.exit(main())
