"""Knowledge-base figures for ADR 0200: ingestion time for N passages and search latency
(query embedding + find_nearest) over them, on the Firestore emulator and the fake's
/embeddings (the local wordllama model).

Run: ``functions/venv/bin/python -m bench.kb_retrieval --passages 10000 --queries 30``
from the repo root. It starts its own emulator and fake on loopback and stops them.
``--documents D`` splits the passages over D documents, all of them named by the search
and by the prompt (ADR 0800 compares 10 documents and 10,000 passages).

``--uploads N`` first times N uploads of ``--upload-passages`` passages with the embedding
batches one at a time against the default ``EMBEDDING_CONCURRENCY``, in turn, each
/embeddings request delayed ``--embed-delay`` seconds (ADR 0803); with ``--passages 0``
that is all it does.

``--ttfb N`` then serves execute_prompt_stream as deployed (functions-framework on
gunicorn) and times N runs of a prompt that names the document against N runs of the
same prompt without it, alternating: the time to the response head (sent with the
``start`` event, after retrieval) and to the first content event.
The emulator scans every passage of the pre-filtered scope in Java, so these are local
figures, not production Firestore's (which uses the vector index).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions")]

from devstack import FirestoreEmulator, FunctionServer, id_token  # noqa: E402
from fake_openrouter import EMBEDDING_MODEL, FakeOpenRouter  # noqa: E402
from promptstream._config import DEFAULTS  # noqa: E402
from promptstream.knowledge._ingest import IngestLimits, ingest  # noqa: E402
from promptstream.knowledge._search import search  # noqa: E402
from promptstream.store._firestore import FirestoreRest, encode_fields  # noqa: E402
from promptstream.upstream._embeddings import EmbeddingsClient, EmbeddingsConfig  # noqa: E402

from ._report import percentile  # noqa: E402

PROJECT = "demo-kb-bench"
_WORDS = (
    "oven starter flour bicycle brake tyre greenhouse tomato aphid deploy proxy token "
    "refund delivery membership workshop seedling heater glass canary logs region "
    "winter summer morning evening volunteer customer invoice battery garden river"
).split()


def synthetic_document(passages: int, seed: int = 7) -> bytes:
    """``passages`` Markdown sections of about 300 characters in four sentences, each
    section its own passage (and four sentence vectors: ADR 0802)."""
    rng = random.Random(seed)
    parts = []
    for i in range(passages):
        sentences = [" ".join(rng.choice(_WORDS) for _ in range(11)) for _ in range(4)]
        parts.append(f"## Section {i}\n\nSection {i} is about " + ". ".join(sentences) + ".")
    return ("# Synthetic\n\n" + "\n\n".join(parts)).encode()


def _summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    p95 = percentile(values, 95)
    return (
        f"{name}: median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms ({len(values)} runs)"
    )


async def _timed_stream(
    session: aiohttp.ClientSession, url: str, payload: bytes, token: str
) -> tuple[float, float, bool]:
    """(ms to the response head, ms to the first content event, saw a sources event)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    t0 = time.perf_counter()
    async with session.post(url, data=payload, headers=headers) as resp:
        head = time.perf_counter()
        assert resp.status == 200, await resp.text()
        buffer = b""
        async for data in resp.content.iter_any():
            buffer += data
            if b"\nid: 1\n" in buffer or buffer.startswith(b"id: 1\n"):
                first = time.perf_counter()
                break
        else:
            raise AssertionError("no content event")
    return 1000 * (head - t0), 1000 * (first - t0), b"event: sources" in buffer


async def ttfb(
    db: FirestoreRest,
    emulator: FirestoreEmulator,
    fake: FakeOpenRouter,
    runs: int,
    document_ids: list[str],
) -> None:
    """Time to first byte with and without retrieval over the ingested document."""
    now_fields = {"owner_uid": "u", "title": "t", "public": False, "variables": []}
    content = "Which section is about deploy proxy canary logs in winter?"
    await db.commit(
        [
            {
                "update": {
                    "name": db.name("prompts/plain"),
                    "fields": encode_fields({**now_fields, "content": content}),
                }
            },
            {
                "update": {
                    "name": db.name("prompts/rag"),
                    "fields": encode_fields(
                        {**now_fields, "content": content, "document_ids": document_ids, "top_k": 5}
                    ),
                }
            },
        ]
    )
    with FunctionServer(
        "execute_prompt_stream",
        emulator.host,
        fake.base_url,
        project=PROJECT,
        api_key="sk-bench",
        env={
            "EMBEDDING_MODEL": EMBEDDING_MODEL,
            "FIRESTORE_TIMEOUT_SECONDS": "60",
            "ALLOWED_MODELS": "x-ai/grok-4-fast:free",
            # One user opens every run: the per-user rate would refuse past 60 a minute.
            "OPEN_RATE_PER_MINUTE": "0",
        },
    ) as server:
        token = id_token("u", project=PROJECT)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            results: dict[str, tuple[list[float], list[float]]] = {
                "plain": ([], []),
                "rag": ([], []),
            }
            for i in range(runs + 1):
                for name in ("plain", "rag"):
                    payload = json.dumps({"prompt_id": name}).encode()
                    head, first, sourced = await _timed_stream(session, server.url, payload, token)
                    assert sourced == (name == "rag")
                    if i:  # the first pair warms the worker up
                        results[name][0].append(head)
                        results[name][1].append(first)
    for name, label in (("plain", "without retrieval"), ("rag", "with retrieval (top 5)")):
        heads, firsts = results[name]
        print(_summary(f"{label}: response head", heads))
        print(_summary(f"{label}: first content", firsts))
    added = statistics.median(results["rag"][0]) - statistics.median(results["plain"][0])
    print(f"added to the time to first byte (medians): {added:.1f} ms")


@dataclass(frozen=True, slots=True)
class LocalKb:
    emulator: FirestoreEmulator
    fake: FakeOpenRouter
    db: FirestoreRest
    client: EmbeddingsClient
    session: aiohttp.ClientSession


@contextlib.asynccontextmanager
async def local_kb(project: str, *, batch_size: int) -> AsyncIterator[LocalKb]:
    """A Firestore emulator, the fake (chat and its wordllama ``/embeddings``), a REST
    client and an embeddings client on them, all on loopback, stopped after."""
    with FirestoreEmulator(project, start_timeout=90) as emulator:
        async with FakeOpenRouter() as fake, aiohttp.ClientSession() as session:
            db = FirestoreRest(project, session, emulator_host=emulator.host, timeout=120)
            config = EmbeddingsConfig(
                api_key=SecretStr("sk-bench"),
                model=EMBEDDING_MODEL,
                base_url=fake.base_url,
                batch_size=batch_size,
            )
            yield LocalKb(emulator, fake, db, EmbeddingsClient(config, session), session)


async def candidates_pairs(
    db: FirestoreRest, client: EmbeddingsClient, names: list[str], pairs: int
) -> None:
    """Search by vector alone (``candidates=0``, the search before ADR 0800), the hybrid
    search over the nearest candidates only (``lexical_passages=0``) and the default one
    (every passage when the documents are few: ADR 0801), in turn on the same queries, so
    the differences are the changes' and not the machine's."""
    rng = random.Random(13)
    shapes = {
        "vector alone": {"candidates": 0},
        "hybrid, nearest only": {"lexical_passages": 0},
        "hybrid, default": {},
    }
    times: dict[str, list[float]] = {name: [] for name in shapes}
    for i in range(pairs):
        query = " ".join(rng.choice(_WORDS) for _ in range(8))
        order = list(shapes)[i % 3 :] + list(shapes)[: i % 3]
        for name in order:
            t0 = time.perf_counter()
            await search(
                db,
                client,
                owner_uid="u",
                document_ids=names,
                query=query,
                top_k=5,
                **shapes[name],
            )
            times[name].append(1000 * (time.perf_counter() - t0))
    for name, values in times.items():
        print(_summary(f"search, {name}", values))
    for name in list(shapes)[1:]:
        differences = [b - a for a, b in zip(times["vector alone"], times[name], strict=True)]
        print(
            f"{name} minus vector alone, median of the differences: "
            f"{statistics.median(differences):.1f} ms"
        )


def _limits_for(data: bytes, passages: int) -> IngestLimits:
    """Limits that let a synthetic document of ``passages`` passages through whole."""
    return IngestLimits(max_bytes=len(data) + 1, max_chars=len(data) + 1, max_passages=passages + 1)


async def uploads(kb: LocalKb, runs: int, passages: int, embed_delay: float) -> None:
    """``runs`` uploads of a document of ``passages`` passages with its embedding batches
    one at a time, and as many at the deployed default (``EMBEDDING_CONCURRENCY``), in
    turn, each request to the fake's /embeddings delayed by ``embed_delay`` seconds (a
    hosted model's round trip): the wall time of each upload, embedding and storing."""
    kb.fake.configure(embed_delay=embed_delay)
    at_once = DEFAULTS.embedding_concurrency
    shapes = {"one batch at a time": 1, f"{at_once} at once": at_once}
    clients = {
        name: EmbeddingsClient(
            kb.client.config.model_copy(
                update={"batch_size": DEFAULTS.embedding_batch_size, "concurrency": concurrency}
            ),
            kb.session,
        )
        for name, concurrency in shapes.items()
    }
    times: dict[str, list[float]] = {name: [] for name in shapes}
    for i in range(runs):
        data = synthetic_document(passages, seed=1000 + i)
        limits = _limits_for(data, passages)
        order = list(shapes) if i % 2 == 0 else list(reversed(shapes))
        for name in order:
            before = kb.fake.stats()["embedding_requests"]
            t0 = time.perf_counter()
            await ingest(
                kb.db,
                clients[name],
                owner_uid="u",
                document_id=f"upload{i}-{shapes[name]}",
                data=data,
                title="Synthetic",
                filename="upload.md",
                limits=limits,
            )
            times[name].append(1000 * (time.perf_counter() - t0))
            requests = kb.fake.stats()["embedding_requests"] - before
    print(
        f"uploads of {passages} passages, {requests} embedding requests each, "
        f"each request delayed {1000 * embed_delay:.0f} ms:"
    )
    for name, values in times.items():
        print(_summary(f"upload, {name}", values))
    kb.fake.configure(embed_delay=0.0)


async def run(
    passages: int,
    queries: int,
    ttfb_runs: int = 0,
    documents: int = 1,
    pairs: int = 0,
    upload_runs: int = 0,
    upload_passages: int = 100,
    embed_delay: float = 0.3,
) -> None:
    async with local_kb(PROJECT, batch_size=128) as kb:
        if upload_runs:
            await uploads(kb, upload_runs, upload_passages, embed_delay)
            if not passages:
                return
        db, client = kb.db, kb.client
        names = ["big"] if documents == 1 else [f"doc{i}" for i in range(documents)]
        started = time.perf_counter()
        count = 0
        for n, name in enumerate(names):
            data = synthetic_document(passages // documents, seed=7 + n)
            limits = _limits_for(data, passages)
            result = await ingest(
                db,
                client,
                owner_uid="u",
                document_id=name,
                data=data,
                title="Synthetic",
                filename=f"{name}.md",
                limits=limits,
            )
            count += result.passage_count
        ingest_s = time.perf_counter() - started
        print(
            f"ingest: {count} passages in {len(names)} documents in {ingest_s:.1f} s "
            f"({1000 * ingest_s / count:.2f} ms per passage)"
        )
        rng = random.Random(11)
        embed_ms, total_ms = [], []
        for _ in range(queries):
            query = " ".join(rng.choice(_WORDS) for _ in range(8))
            t0 = time.perf_counter()
            await client.embed([query])
            t1 = time.perf_counter()
            found = await search(
                db, client, owner_uid="u", document_ids=names, query=query, top_k=5
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
        if pairs:
            await candidates_pairs(db, client, names, pairs)
        if ttfb_runs:
            await ttfb(db, kb.emulator, kb.fake, ttfb_runs, names)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kb_retrieval")
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--ttfb", type=int, default=0, help="runs with and without retrieval")
    parser.add_argument("--documents", type=int, default=1, help="documents the passages span")
    parser.add_argument(
        "--pairs", type=int, default=0, help="searches by vector alone and hybrid, in turn"
    )
    parser.add_argument(
        "--uploads", type=int, default=0, help="uploads with batches one at a time and at once"
    )
    parser.add_argument("--upload-passages", type=int, default=100)
    parser.add_argument(
        "--embed-delay", type=float, default=0.3, help="seconds added to each /embeddings"
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            args.passages,
            args.queries,
            args.ttfb,
            args.documents,
            args.pairs,
            args.uploads,
            args.upload_passages,
            args.embed_delay,
        )
    )


if __name__ == "__main__":
    main()
