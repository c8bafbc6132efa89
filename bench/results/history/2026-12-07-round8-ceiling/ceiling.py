"""How far the signals the search has can go, whatever the fusion: for each question of a
labelled set, is there ANY non-negative weighting of the four scores the search computes
per passage that ranks a passage holding the answer in the first k? The scores are those
of ``replica6.py`` (the product's chunker, terms, BM25 and fusion, the fake's wordllama):

- ``passage``: the passage vector's cosine with the question's;
- ``sentence``: the best cosine of the passage's sentence vectors (the passage's when it
  has none);
- ``lexical``: BM25 of the question's terms over every passage of the set;
- ``document``: the cosine of the passage's document's centroid.

Each question gets its own weights (a grid over the simplex, step 1/20), so the "oracle"
figure is an upper bound on every fixed linear fusion of these four signals, the
product's included: a question it misses is out of reach of any re-weighting, and only
another signal (another model, a reranker) can find it. Run from the repository root:

    functions/venv/bin/python bench/results/history/2026-12-07-round8-ceiling/ceiling.py [sets]
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SETS = (
    tuple(sys.argv[1].split(","))
    if len(sys.argv) > 1
    else ("kb_tune", "kb", "kb2", "kb3", "kb4", "kb5", "kb6")
)
sys.argv = sys.argv[:1]
_spec = importlib.util.spec_from_file_location(
    "replica6", HERE.parent / "2026-12-07-round6-recall" / "replica6.py"
)
assert _spec and _spec.loader
r6: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(r6)

KS = (1, 3, 5, 10)
STEP = 20
# Every non-negative weighting of the four signals, summing to 1, in steps of 1/STEP.
GRID = np.array(
    [
        (a / STEP, b / STEP, c / STEP, (STEP - a - b - c) / STEP)
        for a, b, c in itertools.product(range(STEP + 1), repeat=3)
        if a + b + c <= STEP
    ]
)


def signals(corpus: Any, question: str, vector: Any) -> tuple[Any, list[tuple[str, int]]]:
    """The four scores of every passage of the set (rows), each scaled to its best."""
    keys, passage, sentence, document, texts = [], [], [], [], []
    centroids = {n: d["vectors"].mean(axis=0) for n, d in corpus.items()}
    for name, d in corpus.items():
        near = float(centroids[name] @ vector / np.linalg.norm(centroids[name]))
        for i, s in enumerate(d["vectors"] @ vector):
            keys.append((name, i))
            passage.append(float(s))
            stored = d["sentences"][i]
            sentence.append(
                max(float(s), float((stored @ vector).max())) if stored is not None else float(s)
            )
            document.append(near)
            texts.append(d["terms"][i])
    vocabulary = {t for p in texts for t in p}
    queries = {
        language: r6.expand(r6.terms(question, language), vocabulary)
        for language in {d["language"] for d in corpus.values()}
    }
    lexical = r6.bm25([queries[corpus[n]["language"]] for n, _ in keys], texts)
    columns = []
    for column in (passage, sentence, lexical, document):
        a = np.asarray(column, dtype=float)
        top = np.abs(a).max() or 1.0
        columns.append(a / top)
    return np.stack(columns, axis=1), keys


def best_rank(scores: Any, holds: Any) -> Any:
    """For each weighting (rows of ``scores``: weighting x passage), the rank of the best
    placed passage that holds the answer (1 = first; ties counted against it)."""
    answer = np.where(holds, scores, -np.inf).max(axis=1, keepdims=True)
    return (scores >= answer).sum(axis=1) - (holds & (scores >= answer)).sum(axis=1) + 1


def main() -> None:
    print(
        "| set | n | product @1 @3 @5 @10 | oracle weights @1 @3 @5 @10 | each signal alone, best @5 |"
    )
    print("|---|---|---|---|---|")
    for name in SETS:
        corpus, questions, vectors = r6.load(name, r6.product_sentences)
        product_ranks, oracle_ranks, single = [], [], []
        for q, vector in zip(questions, vectors, strict=True):
            matrix, keys = signals(corpus, q["question"], vector)
            holds = np.array(
                [
                    n == q["document"] and q["answer"] in corpus[n]["passages"][i].text
                    for n, i in keys
                ]
            )
            if not holds.any():
                raise SystemExit(f"{name}: no passage holds {q['answer']!r}")
            ranks = best_rank(GRID @ matrix.T, holds)
            oracle_ranks.append(int(ranks.min()))
            single.append(int(best_rank((np.eye(4) @ matrix.T), holds).min()))
            order = r6.ranked(corpus, q["question"], vector, 20, None, 0.1)
            found = next(
                (j + 1 for j, (n, i) in enumerate(order) if holds[keys.index((n, i))]), None
            )
            product_ranks.append(found)

        def at(ranks: list[Any]) -> str:
            return " ".join(
                f"{sum(r is not None and r <= k for r in ranks) / len(ranks):.2f}" for k in KS
            )

        s5 = sum(r <= 5 for r in single) / len(single)
        print(
            f"| {name} | {len(questions)} | {at(product_ranks)} | {at(oracle_ranks)} | {s5:.2f} |"
        )
        for q, r in zip(questions, oracle_ranks, strict=True):
            if r > 5:
                print(f"|   | oracle rank {r} | {q.get('kind', '')} | {q['question']} | |")


if __name__ == "__main__":
    main()
