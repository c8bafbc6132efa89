"""An in-memory replica of ``knowledge._search.search`` for ADR 0801's comparisons of
fusion rules and statistics: the product's chunker and terms, the fake's wordllama vectors,
cosine in numpy where the emulator's ``find_nearest`` would be. On main (448ddb5) it gave
kb_eval's figures exactly. Run from the repository root:

    functions/venv/bin/python bench/results/history/2026-12-07-round4-recall/replica.py
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from fake_openrouter._embed import LocalEmbedder  # noqa: E402
from promptstream.knowledge._chunking import split_passages  # noqa: E402
from promptstream.knowledge._documents import extract_text  # noqa: E402
from promptstream.knowledge._ranking import expand, plain_terms  # noqa: E402
from promptstream.knowledge._terms import guess_language, terms  # noqa: E402

EMBEDDER = LocalEmbedder()
KS = (1, 3, 5, 10)


def embed(texts: list[str]) -> Any:
    return np.asarray(EMBEDDER.embed(texts, 256)[0])


def load(folder: Path) -> Any:
    corpus = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".md", ".txt"):
            continue
        text = extract_text(
            path.read_bytes(),
            filename=path.name,
            content_type=None,
            max_bytes=10**7,
            max_chars=10**7,
        )
        passages = split_passages(text.text, markdown=text.kind == "markdown")
        language = guess_language([text.text])
        stored = [terms(f"{p.heading}\n{p.text}", language) for p in passages]
        plain = [plain_terms(f"{p.heading}\n{p.text}") for p in passages]
        vectors = embed([p.embedding_text() for p in passages])
        corpus[path.stem] = (passages, vectors, language, stored, plain)
    questions = json.loads((folder / "questions.json").read_text())
    return corpus, questions, embed([q["question"] for q in questions])


def pool_of(corpus: Any, vector: Any, top_k: int, candidates: int, whole: bool) -> Any:
    each = max(top_k, -(-candidates // len(corpus)))
    out = []
    for name, (passages, vectors, *_) in corpus.items():
        distance = 1 - vectors @ vector
        for i in np.argsort(distance, kind="stable")[: len(passages) if whole else each]:
            out.append((float(distance[i]), name, int(i)))
    out.sort(key=lambda x: (x[0], x[1], corpus[x[1]][0][x[2]].position))
    return out if whole else out[: max(top_k, candidates)]


def bm25(queries: Any, passages: Any, stats: Any) -> list[float]:
    n, average, df = stats
    scores = []
    for query, passage in zip(queries, passages, strict=True):
        count = Counter(t for t in passage if t in set(query))
        norm = 1.2 * (1 - 0.75 + 0.75 * len(passage) / average)
        scores.append(
            sum(
                math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * c * 2.2 / (c + norm)
                for t, c in count.items()
            )
        )
    return scores


def ranker(
    fusion: str,
    weight: float,
    k: int = 5,
    statistics: str = "pool",
    split: bool = True,
    plain: bool = False,
) -> Callable[..., list[int]]:
    field = 4 if plain else 3

    def rank(question: str, pool: Any, corpus: Any) -> list[int]:
        passages = [corpus[n][field][i] for _, n, i in pool]
        scope = passages if statistics == "pool" else [t for c in corpus.values() for t in c[field]]
        vocabulary = {t for p in scope for t in p}
        by_language = {}
        for _, n, _ in pool:
            language = corpus[n][2]
            if language not in by_language:
                q = plain_terms(question) if plain else terms(question, language)
                by_language[language] = expand(q, vocabulary) if split else q
        df = Counter(t for p in scope for t in set(p))
        stats = (len(scope), sum(map(len, scope)) / len(scope), df)
        lexical = bm25([by_language[corpus[n][2]] for _, n, _ in pool], passages, stats)
        similarities = [1 - d for d, _, _ in pool]
        if fusion == "rrf":
            by_lexical = sorted(
                (i for i, x in enumerate(lexical) if x > 0), key=lambda i: -lexical[i]
            )
            fused = [1 / (k + r) for r in range(1, len(pool) + 1)]
            for r, i in enumerate(by_lexical, start=1):
                fused[i] += weight / (k + r)
        else:
            low = min(similarities) if fusion == "minmax" else 0.0
            spread = (max(similarities) - low) or 1.0
            top = max(lexical) or 1.0
            fused = [
                (1 - weight) * (s - low) / spread + weight * x / top
                for s, x in zip(similarities, lexical, strict=True)
            ]
        return sorted(range(len(pool)), key=lambda i: (-fused[i], i))

    return rank


def recall(
    data: Any, rank: Callable[..., list[int]], candidates: int = 20, whole: bool = True
) -> str:
    corpus, questions, vectors = data
    ranks = []
    for q, vector in zip(questions, vectors, strict=True):
        found = None
        for k in KS:
            pool = pool_of(corpus, vector, k, candidates, whole)
            order = rank(q["question"], pool, corpus)
            if any(
                n == q["document"] and q["answer"] in corpus[n][0][i].text
                for _, n, i in (pool[j] for j in order[:k])
            ):
                found = k
                break
        ranks.append(found)
    return " ".join(f"{sum(r is not None and r <= k for r in ranks) / len(ranks):.2f}" for k in KS)


def main() -> None:
    sets = {name: load(ROOT / "tests" / "data" / name) for name in ("kb_tune", "kb")}
    rows = [
        (
            "main's rule: plain terms, RRF k 5, weight 0.3, nearest 20",
            ranker("rrf", 0.3, plain=True, split=False),
            False,
        ),
        (
            "stemmed terms, RRF k 5, weight 0.3, nearest 20, pool statistics",
            ranker("rrf", 0.3),
            False,
        ),
        (
            "RRF k 5, weight 0.3, nearest 20, statistics of every passage",
            ranker("rrf", 0.3, statistics="all"),
            False,
        ),
        ("RRF k 5, weight 0.3, whole", ranker("rrf", 0.3), True),
        ("RRF k 2, weight 0.6, whole", ranker("rrf", 0.6, k=2), True),
        ("min-max scores, weight 0.4, whole", ranker("minmax", 0.4), True),
        ("shares of the best, weight 0.2, whole", ranker("share", 0.2), True),
        ("shares of the best, weight 0.3, whole (chosen)", ranker("share", 0.3), True),
        ("shares of the best, weight 0.4, whole", ranker("share", 0.4), True),
        (
            "shares of the best, weight 0.3, whole, no compound split",
            ranker("share", 0.3, split=False),
            True,
        ),
        ("shares of the best, weight 0.3, nearest 20", ranker("share", 0.3), False),
        (
            "shares of the best, weight 0.3, whole, plain terms",
            ranker("share", 0.3, plain=True, split=False),
            True,
        ),
    ]
    print("| rule | kb_tune @1 @3 @5 @10 | kb @1 @3 @5 @10 |\n|---|---|---|")
    for label, rank, whole in rows:
        print(
            f"| {label} | "
            + " | ".join(recall(data, rank, whole=whole) for data in sets.values())
            + " |"
        )


if __name__ == "__main__":
    main()
