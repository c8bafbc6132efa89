"""A realistic latency for the bench (issue 28): a delay each way in front of the
Firestore emulator for the function, and an upstream whose first token takes as long as a
real model's. Loopback answers both in a fraction of a millisecond, so without them a
round trip saved or overlapped does not show. The figures behind the preset:
docs/adr/1001-realistic-latency-and-the-bound.md.
"""

from __future__ import annotations

import argparse
import http.client
import time
from dataclasses import dataclass
from typing import Any

from ._report import percentiles

__all__ = ["REALISTIC", "Latency", "add_arguments", "from_args", "round_trips"]


@dataclass(frozen=True, slots=True)
class Latency:
    """What the bench adds to loopback: ``firestore_delay_ms`` each way between the function
    and Firestore, and ``first_token_ms`` before the upstream's first chunk (floor and relay
    alike, so "added" stays relay minus floor)."""

    firestore_delay_ms: float = 0.0
    first_token_ms: float = 0.0
    preset: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "preset": self.preset or None,
            "firestore_delay_ms": self.firestore_delay_ms,
            "first_token_ms": self.first_token_ms,
        }


# Same-region Cloud Functions to Firestore, and a hosted model's first token.
REALISTIC = Latency(firestore_delay_ms=5, first_token_ms=300, preset="realistic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--firestore-delay",
        type=float,
        default=None,
        metavar="MS",
        help="delay each way between the function and the Firestore emulator (default 0)",
    )
    parser.add_argument(
        "--first-token",
        type=float,
        default=None,
        metavar="MS",
        help="the fake upstream waits MS before its first chunk, floor and relay (default 0)",
    )
    parser.add_argument(
        "--realistic",
        action="store_true",
        help=(
            f"--firestore-delay {REALISTIC.firestore_delay_ms:g} "
            f"--first-token {REALISTIC.first_token_ms:g} (either option overrides its part)"
        ),
    )


def from_args(args: argparse.Namespace) -> Latency:
    base = REALISTIC if args.realistic else Latency()
    delay = base.firestore_delay_ms if args.firestore_delay is None else args.firestore_delay
    first = base.first_token_ms if args.first_token is None else args.first_token
    if delay < 0 or first < 0:
        raise ValueError("--firestore-delay and --first-token take milliseconds >= 0")
    same = (delay, first) == (base.firestore_delay_ms, base.first_token_ms)
    return Latency(delay, first, base.preset if same else "")


def round_trips(host: str, path: str, count: int = 50) -> dict[str, float] | None:
    """``count`` GETs of ``path`` on one kept-alive connection to ``host``: the round trip
    a function pays per Firestore call, in ms (p50/p90/p99/max)."""
    name, _, port = host.rpartition(":")
    conn = http.client.HTTPConnection(name, int(port), timeout=30)
    times: list[float] = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": "Bearer owner"})
            conn.getresponse().read()
            times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    # The first call opens the connection (and warms the emulator's path): not a round trip.
    return percentiles(times[1:])
