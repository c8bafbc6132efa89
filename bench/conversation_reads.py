"""A follow-up's chain reads alone (``run._conversations.load_chain``) at depths 1, 10 and
50, against the two-document read every opening makes, on the Firestore emulator; and the
fake upstream's first data with 0 and 50 earlier turns in the request
(docs/adr/0700-conversations.md). Loopback, 20 samples each.

    functions/venv/bin/python -m bench.conversation_reads
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp

from devstack import FirestoreEmulator, fake_upstream
from promptstream import Settings
from promptstream.run._conversations import load_chain
from promptstream.run._request import ExecuteRequest
from promptstream.store._firestore import FirestoreRest

PROJECT = "demo-bench-conversation-reads"
ANSWER = "Hello from the local demo model. This is the answer, word by word. " * 4
SAMPLES = 20


def _chain(db: Any, turns: int) -> list[str]:
    ids = [f"t{i:03d}" for i in range(turns)]
    for i, execution_id in enumerate(ids):
        record = db.collection("executions").document(execution_id)
        record.set(
            {
                "owner_uid": "u",
                "conversation_id": ids[0],
                "prompt_id": "p1",
                "status": "completed",
                "output": ANSWER,
                "ancestors": ids[:i],
                "turn": i + 1,
                "message": None if i == 0 else f"question {i}",
                "requested_model": "m",
                "tokens_debited": 100 * (i + 1),
            }
        )
        sent = {"owner_uid": "u", "user": f"question {i}", "system": None, "context": None}
        record.collection("input").document("sent").set(sent)
    return ids


async def _reads(host: str, ids: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        rest = FirestoreRest(PROJECT, session, emulator_host=host)
        for depth in (1, 10, 50):
            body = ExecuteRequest(
                prompt_id="p1",
                conversation_id=ids[0],
                parent_execution_id=ids[depth - 1],
                message="more",
            )
            chain, pair = [], []
            for _ in range(SAMPLES):
                started = time.perf_counter()
                await load_chain(rest, "u", body, Settings())
                chain.append(time.perf_counter() - started)
                started = time.perf_counter()
                await rest.get_all(["prompts/p1", "user_limits/u"])
                pair.append(time.perf_counter() - started)
            print(
                f"depth {depth:2d}: load_chain p50 {statistics.median(chain) * 1000:.1f} ms; "
                f"a two-document read p50 {statistics.median(pair) * 1000:.1f} ms"
            )


async def _upstream(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for turns in (0, 50):
            messages: list[dict[str, str]] = []
            for i in range(turns):
                messages += [
                    {"role": "user", "content": f"question {i}"},
                    {"role": "assistant", "content": ANSWER},
                ]
            messages.append({"role": "user", "content": "more [[fake chunks=5 delay=0.001]]"})
            body = {"model": "m", "messages": messages, "stream": True}
            times = []
            for _ in range(SAMPLES):
                started = time.perf_counter()
                async with session.post(url, json=body) as resp:
                    async for chunk in resp.content.iter_any():
                        if b"data:" in chunk:
                            break
                times.append(time.perf_counter() - started)
            print(
                f"fake upstream, {turns} earlier turns: first data p50 {statistics.median(times) * 1000:.1f} ms"
            )


def main() -> None:
    with FirestoreEmulator(PROJECT) as emulator:
        ids = _chain(emulator.client(), 50)
        asyncio.run(_reads(emulator.host, ids))
    with fake_upstream() as upstream:
        asyncio.run(_upstream(f"{upstream}/chat/completions"))


if __name__ == "__main__":
    main()
