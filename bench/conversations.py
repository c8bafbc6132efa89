"""What a conversation's follow-up costs to open: time to its ``start`` event against a
first turn's, at several depths of chain, through the function served as deployed on the
Firestore emulator (docs/adr/0700-conversations.md). Sequential, loopback, bounded.

    functions/venv/bin/python -m bench.conversations [--samples 30] [--depths 1,10,50]

The chain is built of real turns (one request each); then, at each depth, ``--samples``
follow-ups of its last turn (siblings: the chain read is the same each time) and as many
first turns, alternating, each timed from the request to its ``start`` event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp

import devstack
from devstack import FirestoreEmulator, FunctionServer, fake_upstream

PROJECT = "demo-bench-conversations"
API_KEY = "sk-or-v1-bench-not-a-secret"


async def _turn(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    """One run: seconds to its ``start`` event, and that event."""
    started = time.monotonic()
    async with session.post(url, data=json.dumps(body), headers=headers) as resp:
        raw = b""
        first: float | None = None
        async for chunk in resp.content.iter_any():
            raw += chunk
            if first is None and b"event: start" in raw and b"\n\n" in raw:
                first = time.monotonic() - started
    if resp.status != 200 or first is None:
        raise RuntimeError(f"{resp.status}: {raw[:300]!r}")
    line = raw.split(b"event: start\ndata: ", 1)[1].split(b"\n", 1)[0]
    return first, json.loads(line)


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(values) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"


async def _run(url: str, samples: int, depths: list[int]) -> None:
    headers = {"Authorization": f"Bearer {devstack.id_token('bench', project=PROJECT)}"}
    first_body = {"prompt_id": "p1", "variables": {"topic": "otters"}, "max_tokens": 64}
    async with aiohttp.ClientSession() as session:
        _, start = await _turn(session, url, headers, first_body)
        conversation = parent = start["execution_id"]
        depth = 1
        for target in sorted(depths):
            while depth < target:
                follow = {
                    "prompt_id": "p1",
                    "conversation_id": conversation,
                    "parent_execution_id": parent,
                    "message": f"And then, part {depth}?",
                    "max_tokens": 64,
                }
                _, start = await _turn(session, url, headers, follow)
                parent, depth = start["execution_id"], depth + 1
            firsts, follows = [], []
            follow = {
                "prompt_id": "p1",
                "conversation_id": conversation,
                "parent_execution_id": parent,
                "message": "One more question?",
                "max_tokens": 64,
            }
            for _ in range(samples):
                firsts.append((await _turn(session, url, headers, first_body))[0])
                follows.append((await _turn(session, url, headers, follow))[0])
            print(
                f"chain of {depth:3d} turns: first turn {_ms(firsts)} | "
                f"follow-up (turn {depth + 1}) {_ms(follows)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--depths", default="1,10,50")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    with FirestoreEmulator(PROJECT) as emulator:
        with fake_upstream() as upstream:
            emulator.client().collection("prompts").document("p1").set(
                {
                    "owner_uid": "bench",
                    "title": "t",
                    "public": False,
                    "content": "Tell me about {{topic}}. [[fake chunks=5 delay=0.001]]",
                }
            )
            with FunctionServer(
                "execute_prompt_stream",
                emulator.host,
                upstream,
                project=PROJECT,
                api_key=API_KEY,
                env={"MAX_CONCURRENT_STREAMS": "100", "OPEN_RATE_PER_MINUTE": "0"},
            ) as server:
                asyncio.run(_run(server.url + "/", args.samples, depths))


if __name__ == "__main__":
    main()
