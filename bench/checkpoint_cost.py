"""What the checkpoints of resumable executions cost one instance: N open executions, each
given ``--per-second`` new events a second, checkpointed by one ``Checkpoints`` pass a
second against the Firestore emulator for ``--seconds``. Prints, per N, the commits and
writes a second and the relay process's CPU per pass (the emulator's own time is not
counted: production Firestore is another machine). Bounded by N and the seconds.

    functions/venv/bin/python -m bench.checkpoint_cost [--streams 10,100,1000] [--seconds 10]

See docs/adr/0600-durable-streams.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from devstack import FirestoreEmulator
from promptstream.run._checkpoints import Checkpoints
from promptstream.run._live import Live, Lives
from promptstream.store._firestore import FirestoreRest, encode_fields

PROJECT = "demo-bench-checkpoints"
# A content event as the relay encodes it, about the size of one token's delta.
EVENT = b'id: %d\ndata: {"content":" word","finish_reason":null}\n\n'


async def _measure(host: str, streams: int, seconds: int, per_second: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        db = FirestoreRest(PROJECT, session, emulator_host=host)
        lives = Lives(30, 30)
        for start in range(0, streams, 500):
            writes = [
                {
                    "update": {
                        "name": db.name(f"executions/b{n}"),
                        "fields": encode_fields({"status": "streaming", "owner_uid": "u"}),
                    }
                }
                for n in range(start, min(streams, start + 500))
            ]
            await db.commit(writes)

        async def forever() -> None:
            await asyncio.sleep(3600)

        all_lives = []
        for n in range(streams):
            live = Live(f"b{n}", "u", {})
            lives.start(live, forever())
            all_lives.append(live)
        checkpoints = Checkpoints(1.0, lives, lambda: db)
        await checkpoints.tick()  # the first pass reads every record once: not counted
        commits, written = checkpoints.commits, checkpoints.writes
        cpu = checkpoints.cpu_seconds
        wall = time.process_time()
        passes = 0
        started = time.monotonic()
        for _ in range(seconds):
            for live in all_lives:
                for _ in range(per_second):
                    live.events.append(EVENT % (len(live.events) + 1))
            await checkpoints.tick()
            passes += 1
            await asyncio.sleep(max(0.0, started + passes - time.monotonic()))
        elapsed = time.monotonic() - started
        process = time.process_time() - wall
        for live in all_lives:
            live.cancel()
        return {
            "streams": streams,
            "seconds": round(elapsed, 1),
            "commits_per_s": round((checkpoints.commits - commits) / elapsed, 1),
            "writes_per_s": round((checkpoints.writes - written) / elapsed, 1),
            "cpu_ms_per_pass": round((checkpoints.cpu_seconds - cpu) / passes * 1000, 2),
            "process_cpu_ms_per_s": round(process / elapsed * 1000, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="10,100,1000")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--per-second", type=int, default=20)
    args = parser.parse_args()
    with FirestoreEmulator(PROJECT) as emulator:
        for streams in (int(n) for n in args.streams.split(",")):
            emulator.reset()
            result = asyncio.run(_measure(emulator.host, streams, args.seconds, args.per_second))
            print(json.dumps(result))


if __name__ == "__main__":
    main()
