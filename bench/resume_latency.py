"""Resume latency: how long a client that lost a resumable stream waits, from sending its
resume to the first event it had missed, when the reconnect lands on the instance that
generates (from memory) and on another one (from the checkpoints, then polling them).
Two function servers on one Firestore emulator, the fake upstream in its own process;
``--rounds`` streams per target, one at a time, each cut after ``--cut`` content events and
resumed at once. Prints p50/p99 per target, in ms. Bounded by the rounds.

    functions/venv/bin/python -m bench.resume_latency [--rounds 30] [--cut 10]

See docs/adr/0600-durable-streams.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp

import devstack
from devstack import FirestoreEmulator, FunctionServer, fake_upstream
from promptstream import SSEDecoder

from ._report import percentile

PROJECT = "demo-bench-resume"
API_KEY = "sk-or-v1-bench-not-a-secret"


async def _cut(session: aiohttp.ClientSession, url: str, token: str, cut: int) -> tuple[str, int]:
    """A resumable run read until ``cut`` content events, then dropped."""
    body = json.dumps({"prompt_id": "p1", "variables": {"topic": "x"}, "resumable": True})
    decoder = SSEDecoder()
    execution_id, last = "", 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as resp:
        async for data in resp.content.iter_any():
            for event in decoder.feed(data):
                if event.event == "start":
                    execution_id = json.loads(event.data)["execution_id"]
                elif event.id:
                    last = int(event.id)
            if last >= cut:
                break
    return execution_id, last


async def _resume(
    session: aiohttp.ClientSession, url: str, token: str, execution_id: str, last: int
) -> float:
    """Seconds from the resume's request to the first event after ``last``; reads on."""
    body = json.dumps({"resume": execution_id, "last_event_id": last})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    decoder = SSEDecoder()
    sent = time.monotonic()
    first: float | None = None
    async with session.post(url, data=body, headers=headers) as resp:
        async for data in resp.content.iter_any():
            for event in decoder.feed(data):
                if first is None and event.id and int(event.id) > last:
                    first = time.monotonic() - sent
    if first is None:
        raise RuntimeError(f"no missed event after {last} for {execution_id}")
    return first


async def _bench(a: str, b: str, rounds: int, cut: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as session:
        for target, resume_url in (("same", a), ("other", b)):
            waits = []
            for i in range(rounds + 2):
                token = devstack.id_token(f"{target}{i}", project=PROJECT)
                execution_id, last = await _cut(session, a, token, cut)
                wait = await _resume(session, resume_url, token, execution_id, last)
                if i >= 2:  # the first two warm the pools and the caches
                    waits.append(wait)
            out[target] = {
                "rounds": rounds,
                "p50_ms": round(percentile(sorted(waits), 50) * 1000, 1),
                "p99_ms": round(percentile(sorted(waits), 99) * 1000, 1),
                "mean_ms": round(statistics.fmean(waits) * 1000, 1),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cut", type=int, default=10)
    parser.add_argument("--checkpoint-seconds", default="1.0")
    args = parser.parse_args()
    with FirestoreEmulator(PROJECT) as emulator:
        with fake_upstream() as upstream:
            emulator.client().collection("prompts").document("p1").set(
                {
                    "owner_uid": "x",
                    "title": "t",
                    "public": True,
                    "content": "{{topic}} [[fake chunks=100 delay=0.02]]",
                }
            )
            env = {"CHECKPOINT_SECONDS": args.checkpoint_seconds}
            servers = [
                FunctionServer(
                    "execute_prompt_stream",
                    emulator.host,
                    upstream,
                    project=PROJECT,
                    api_key=API_KEY,
                    env=env,
                )
                for _ in range(2)
            ]
            with servers[0] as one, servers[1] as two:
                a, b = (f"http://127.0.0.1:{s.port}/" for s in (one, two))
                result = asyncio.run(_bench(a, b, args.rounds, args.cut))
            print(json.dumps({"checkpoint_seconds": args.checkpoint_seconds, **result}))


if __name__ == "__main__":
    main()
