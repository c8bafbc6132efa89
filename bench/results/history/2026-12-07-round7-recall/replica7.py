"""Round 7's comparisons of query expansion rules on the in-memory replica of round 6
(``replica6.py``: the product's chunker, terms, BM25 and fusion, the fake's wordllama
vectors, sentence vectors and the document prior as chosen in ADR 0802). Only the
lexical query changes between rows. Run from the repository root:

    functions/venv/bin/python bench/results/history/2026-12-07-round7-recall/replica7.py [sets]

The stop-word rows import ``stop_words`` (PyPI ``stop-words`` 2025.11.4, not a dependency
of the product): put its wheel's contents on ``PYTHONPATH``. The output of the run the
ADR quotes is ``replica7-all-sets.txt``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

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

Expand = Callable[[str, Collection[str], str], list[str]]


def product(question: str, vocabulary: Collection[str], language: str) -> list[str]:
    return list(r6.expand(r6.terms(question, language), vocabulary))


def _stopwords(language: str) -> frozenset[str]:
    from stop_words import get_stop_words

    return frozenset(w.casefold() for w in get_stop_words(language))


STOP = {
    language: _stopwords(language)
    for language in (
        "english",
        "german",
        "french",
        "spanish",
        "italian",
        "dutch",
        "portuguese",
        "swedish",
    )
}
_WORD = __import__("re").compile(r"\w+")


def unstopped(also_question: bool) -> Expand:
    """The product's query without the stop words of the language it is stemmed in (and,
    with ``also_question``, of the question's own guessed language)."""

    def rule(question: str, vocabulary: Collection[str], language: str) -> list[str]:
        stop = set(STOP.get(language, ()))
        if also_question:
            stop |= STOP.get(r6.guess_language([question]), frozenset())
        words = [w for w in _WORD.findall(question.casefold()) if w not in stop]
        return list(r6.expand(r6.terms(" ".join(words), language), vocabulary))

    return rule


def common_out(share: float) -> Expand:
    """The product's query without the terms found in more than ``share`` of the pool's
    passages (the pool's own stop words, no list)."""

    def rule(question: str, vocabulary: Collection[str], language: str) -> list[str]:
        frequency = POOL_DF[0]
        size = POOL_DF[1] or 1
        query = [t for t in r6.terms(question, language) if frequency.get(t, 0) <= share * size]
        return list(r6.expand(query, vocabulary))

    return rule


POOL_DF: list[Any] = [{}, 0]


def parts(min_query: int, min_rest: int, languages: Collection[str] | None, where: str) -> Expand:
    """The product's expansion, plus every vocabulary term that holds a query term of at
    least ``min_query`` characters as a part, the rest at least ``min_rest``: at its start
    ("start"), at either end ("ends"), or anywhere ("inside")."""

    def rule(question: str, vocabulary: Collection[str], language: str) -> list[str]:
        query = r6.terms(question, language)
        out: list[str] = r6.expand(query, vocabulary)
        if languages is not None and language not in languages:
            return out
        extra: list[str] = []
        for q in query:
            if len(q) < min_query:
                continue
            for t in vocabulary:
                if len(t) < len(q) + min_rest or t == q:
                    continue
                if where == "start":
                    hit = t.startswith(q)
                elif where == "ends":
                    hit = t.startswith(q) or t.endswith(q)
                else:
                    hit = q in t
                if hit:
                    extra.append(t)
        return out + extra

    return rule


def ranked(
    corpus: Any, question: str, vector: Any, rule: Expand, weight: float = 0.3
) -> list[tuple[str, int]]:
    """``replica6.ranked`` with the chosen rule (the best 20 re-scored by their sentences,
    a document prior of 0.1), the lexical query made by ``rule``."""
    np = r6.np
    pool = []
    for name, d in corpus.items():
        for i, s in enumerate(d["vectors"] @ vector):
            pool.append((float(s), name, i))
    pool.sort(key=lambda x: (-x[0], x[1], x[2]))
    similarities = [s for s, _, _ in pool]
    passages = [corpus[n]["terms"][i] for _, n, i in pool]
    vocabulary = {t for p in passages for t in p}
    frequency: dict[str, int] = {}
    for p in passages:
        for t in set(p):
            frequency[t] = frequency.get(t, 0) + 1
    POOL_DF[:] = [frequency, len(passages)]
    by_language: dict[str, list[str]] = {}
    for _, n, _ in pool:
        language = corpus[n]["language"]
        if language not in by_language:
            by_language[language] = rule(question, vocabulary, language)
    lexical = r6.bm25([by_language[corpus[n]["language"]] for _, n, _ in pool], passages)
    order = r6.fuse(similarities, lexical, weight=weight)
    for k in order[:20]:
        _, n, i = pool[k]
        stored = corpus[n]["sentences"][i]
        if stored is not None:
            similarities[k] = max(similarities[k], float((stored @ vector).max()))
    documents = {n: d["vectors"].mean(axis=0) for n, d in corpus.items()}
    near = {n: float(v @ vector / np.linalg.norm(v)) for n, v in documents.items()}
    top_near, top_s, top_x = max(near.values()), max(similarities), max(lexical) or 1.0
    fused = [
        (1 - weight) * s / top_s + weight * x / top_x + 0.1 * near[n] / top_near
        for s, x, (_, n, _) in zip(similarities, lexical, pool, strict=True)
    ]
    order = sorted(range(len(pool)), key=lambda k: (-fused[k], k))
    return [(pool[k][1], pool[k][2]) for k in order]


def recall(data: Any, rule: Expand, weight: float = 0.3) -> tuple[str, list[int | None]]:
    corpus, questions, vectors = data
    ranks: list[int | None] = []
    for q, vector in zip(questions, vectors, strict=True):
        found = None
        for j, (n, i) in enumerate(ranked(corpus, q["question"], vector, rule, weight)[:10]):
            if n == q["document"] and q["answer"] in corpus[n]["passages"][i].text:
                found = j + 1
                break
        ranks.append(found)
    cells = " ".join(
        f"{sum(r is not None and r <= k for r in ranks) / len(ranks):.2f}" for k in r6.KS
    )
    return cells, ranks


GERMANIC = ("german", "dutch")
ROWS: list[tuple[str, Expand] | tuple[str, Expand, float]] = [
    ("ADR 0802 (chosen then)", product),
    ("stop words out of the query (the stemming language's)", unstopped(False)),
    ("stop words out of the query (the stemming language's and the question's)", unstopped(True)),
    ("terms in more than half the pool out of the query", common_out(0.5)),
    ("terms in more than a third of the pool out of the query", common_out(0.33)),
    ("terms in more than a fifth of the pool out of the query", common_out(0.2)),
    ("terms in more than a tenth of the pool out of the query", common_out(0.1)),
    ("the same, lexical weight 0.2", unstopped(True), 0.2),
    ("the same, lexical weight 0.4", unstopped(True), 0.4),
    ("the same, lexical weight 0.5", unstopped(True), 0.5),
    ("ADR 0802, lexical weight 0.2", product, 0.2),
    ("ADR 0802, lexical weight 0.4", product, 0.4),
    ("+ parts at the start, German and Dutch, 5/4", parts(5, 4, GERMANIC, "start")),
    ("+ parts at either end, German and Dutch, 5/4", parts(5, 4, GERMANIC, "ends")),
    ("+ parts anywhere, German and Dutch, 5/4", parts(5, 4, GERMANIC, "inside")),
    ("+ parts anywhere, German and Dutch, 4/4", parts(4, 4, GERMANIC, "inside")),
    ("+ parts anywhere, German and Dutch, 5/3", parts(5, 3, GERMANIC, "inside")),
    ("+ parts anywhere, every language, 5/4", parts(5, 4, None, "inside")),
    ("+ parts at either end, every language, 5/4", parts(5, 4, None, "ends")),
]


def main() -> None:
    print("| rule | " + " | ".join(f"{s} @1 @3 @5 @10" for s in SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    data = {name: r6.load(name, r6.product_sentences) for name in SETS}
    base: dict[str, list[Any]] = {}
    for label, rule, *rest in ROWS:
        cells = []
        for name in SETS:
            cell, ranks = recall(data[name], rule, *rest)
            if not base.get(name):
                base[name] = ranks
            changed = sum(
                (a is not None and a <= 5) != (b is not None and b <= 5)
                for a, b in zip(base[name], ranks, strict=True)
            )
            cells.append(f"{cell} ({changed}±)")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
