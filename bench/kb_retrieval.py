"""Knowledge-base figures for ADR 0200: ingestion time for N passages and search latency
(query embedding + find_nearest) over them, on the Firestore emulator and the fake's
/embeddings (the local wordllama model).

Run: ``functions/venv/bin/python -m bench.kb_retrieval --passages 10000 --queries 30``
from the repo root. It starts its own emulator and fake on loopback and stops them.
The emulator scans every passage of the pre-filtered scope in Java, so these are local
figures, not production Firestore's (which uses the vector index).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions")]

from devstack import FirestoreEmulator  # noqa: E402
from fake_openrouter import EMBEDDING_MODEL, FakeOpenRouter  # noqa: E402
from promptstream._embeddings import EmbeddingsClient, EmbeddingsConfig  # noqa: E402
from promptstream._firestore import FirestoreRest  # noqa: E402
from promptstream._retrieval import IngestLimits, ingest, search  # noqa: E402

PROJECT = "demo-kb-bench"
_WORDS = (
    "oven starter flour bicycle brake tyre greenhouse tomato aphid deploy proxy token "
    "refund delivery membership workshop seedling heater glass canary logs region "
    "winter summer morning evening volunteer customer invoice battery garden river"
).split()


def synthetic_document(passages: int, seed: int = 7) -> bytes:
    """``passages`` Markdown sections of about 300 characters, each its own passage."""
    rng = random.Random(seed)
    parts = []
    for i in range(passages):
        words = " ".join(rng.choice(_WORDS) for _ in range(45))
        parts.append(f"## Section {i}\n\nSection {i} is about {words}.")
    return ("# Synthetic\n\n" + "\n\n".join(parts)).encode()


async def run(passages: int, queries: int) -> None:
    with FirestoreEmulator(PROJECT, start_timeout=90) as emulator:
        async with FakeOpenRouter() as fake, aiohttp.ClientSession() as session:
            db = FirestoreRest(PROJECT, session, emulator_host=emulator.host, timeout=120)
            config = EmbeddingsConfig(
                api_key=SecretStr("sk-bench"),
                model=EMBEDDING_MODEL,
                base_url=fake.base_url,
                batch_size=128,
            )
            client = EmbeddingsClient(config, session)
            data = synthetic_document(passages)
            limits = IngestLimits(
                max_bytes=len(data) + 1, max_chars=len(data) + 1, max_passages=passages + 1
            )
            started = time.perf_counter()
            result = await ingest(
                db,
                client,
                owner_uid="u",
                document_id="big",
                data=data,
                title="Synthetic",
                filename="big.md",
                limits=limits,
            )
            ingest_s = time.perf_counter() - started
            print(
                f"ingest: {result.passage_count} passages in {ingest_s:.1f} s "
                f"({1000 * ingest_s / result.passage_count:.2f} ms per passage)"
            )
            rng = random.Random(11)
            embed_ms, total_ms = [], []
            for _ in range(queries):
                query = " ".join(rng.choice(_WORDS) for _ in range(8))
                t0 = time.perf_counter()
                await client.embed([query])
                t1 = time.perf_counter()
                found = await search(
                    db, client, owner_uid="u", document_ids=["big"], query=query, top_k=5
                )
                t2 = time.perf_counter()
                assert len(found.sources) == 5
                embed_ms.append(1000 * (t1 - t0))
                total_ms.append(1000 * (t2 - t1))
            for name, values in (("query embedding", embed_ms), ("search (all)", total_ms)):
                values.sort()
                p95 = values[max(0, int(0.95 * len(values)) - 1)]
                print(
                    f"{name}: median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms "
                    f"over {len(values)} queries"
                )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kb_retrieval")
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(run(args.passages, args.queries))


if __name__ == "__main__":
    main()
