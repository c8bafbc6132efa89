"""The bridge's hand-off alone: N threads each pull PER items from a Pump whose source
sleeps DELAY between items, as a stream relayed by the function would. Prints the CPU per
item, with no HTTP, JSON or Firestore in the way.

    functions/venv/bin/python -m bench.handoff 100
"""

from __future__ import annotations

import asyncio
import resource
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from promptstream._bridge import END, AsyncBridge, Pump

PER = 200
DELAY = 0.02


def main(streams: int) -> None:
    bridge = AsyncBridge()

    async def source() -> AsyncIterator[int]:
        for i in range(PER):
            await asyncio.sleep(DELAY)
            yield i

    def consumer() -> None:
        pump: Pump[int] = Pump(bridge, source)
        while pump.get(timeout=0.25) is not END:
            pass

    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=consumer) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PER * DELAY + 30)
    after = resource.getrusage(resource.RUSAGE_SELF)
    items = streams * PER
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    print(
        f"{streams} streams x {PER} items @ {DELAY * 1000:.0f} ms: "
        f"wall {time.monotonic() - started:.2f} s, "
        f"CPU per item {(user + system) / items * 1e6:.1f} µs (system {system / items * 1e6:.1f} µs)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
