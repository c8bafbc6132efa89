"""What the delay proxy (`bench --firestore-delay`, devstack/_delay.py) adds to a round
trip: an echo server on loopback, timed straight and through the proxy at each delay.

    functions/venv/bin/python -m bench.delay_proxy [--delays 0,5,10] [--trips 200]

Prints p50/p90/p99/max of the round trip in ms per path. Quoted by
docs/adr/1001-realistic-latency-and-the-bound.md.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Sequence

from devstack import DelayProxy

from ._report import percentiles


def _echo_server() -> str:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            conn = listener.accept()[0]
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}"


def _round_trips(host: str, trips: int) -> dict[str, float] | None:
    name, _, port = host.rpartition(":")
    times: list[float] = []
    with socket.create_connection((name, int(port))) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"x" * 200  # about a small Firestore request's size
        for _ in range(trips + 10):
            started = time.perf_counter()
            conn.sendall(message)
            got = 0
            while got < len(message):
                got += len(conn.recv(65536))
            times.append((time.perf_counter() - started) * 1000)
    return percentiles(times[10:])  # the first few warm the path up


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delay_proxy", description=__doc__)
    parser.add_argument("--delays", default="0,5,10", help="ms each way, comma-separated")
    parser.add_argument("--trips", type=int, default=200)
    args = parser.parse_args(argv)
    target = _echo_server()
    rows = [("direct", _round_trips(target, args.trips))]
    for delay in (float(d) for d in args.delays.split(",")):
        with DelayProxy(target, delay) as proxy:
            rows.append((f"through +{delay:g} ms", _round_trips(proxy.host, args.trips)))
    print(f"{'path':<18}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}  (round trip, ms)")
    for name, stats in rows:
        assert stats is not None
        print(f"{name:<18}" + "".join(f"{stats[k]:>8.2f}" for k in ("p50", "p90", "p99", "max")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
