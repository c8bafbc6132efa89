"""An in-memory replica of ``knowledge._search.search`` for ADR 0802's comparisons of
sentence-vector rules: the product's chunker, terms, BM25 and fusion, the fake's wordllama
vectors, cosine in numpy where the emulator's ``find_nearest`` would be, and every
passage read (the sets are under ``RETRIEVAL_LEXICAL_PASSAGES``). Its "chosen" row gives
``bench.kb_eval``'s figures on each set. Run from the repository root:

    functions/venv/bin/python bench/results/history/2026-12-07-round6-recall/replica6.py
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from fake_openrouter._embed import LocalEmbedder  # noqa: E402
from promptstream.knowledge._chunking import Passage, split_passages  # noqa: E402
from promptstream.knowledge._documents import extract_text  # noqa: E402
from promptstream.knowledge._ranking import bm25, expand, fuse  # noqa: E402
from promptstream.knowledge._terms import guess_language, terms  # noqa: E402

EMBEDDER = LocalEmbedder()
KS = (1, 3, 5, 10)
# The tuning sets; ``python replica6.py kb4`` (or any sets, comma-separated) runs others.
SETS = tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else ("kb_tune", "kb", "kb2", "kb3")
_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")


def embed(texts: list[str]) -> Any:
    return np.asarray(EMBEDDER.embed(texts, 256)[0])


def product_sentences(p: Passage) -> list[str]:
    return p.sentences(12)


def min_chars(chars: int) -> Callable[[Passage], list[str]]:
    """Sentences joined until each has at least ``chars`` characters."""

    def sentences(p: Passage) -> list[str]:
        if p.text.count("\n|") > 1:
            return p.sentences(12)
        out: list[str] = []
        current = ""
        for unit in (u.strip() for u in _BREAK.split(p.text) if u.strip()):
            current = f"{current} {unit}".strip()
            if len(current) >= chars:
                out.append(current)
                current = ""
        if current:
            out.append(current) if not out else out.__setitem__(-1, f"{out[-1]} {current}")
        return [Passage(0, p.heading, u).embedding_text() for u in out] if len(out) > 1 else []

    return sentences


def under(heading: Callable[[str], str]) -> Callable[[Passage], list[str]]:
    """The product's sentences under another heading than the passage's path."""

    def sentences(p: Passage) -> list[str]:
        return Passage(p.position, heading(p.heading), p.text).sentences(12)

    return sentences


def last_heading(path: str) -> str:
    return path.split(" > ")[-1]


def no_heading(path: str) -> str:
    return ""


def windows(p: Passage) -> list[str]:
    """Two consecutive sentences each."""
    units = [u.strip() for u in _BREAK.split(p.text) if len(u.strip()) > 3]
    pairs = [" ".join(units[i : i + 2]) for i in range(max(1, len(units) - 1))]
    return [Passage(0, p.heading, u).embedding_text() for u in pairs] if len(pairs) > 1 else []


def quantised(m: Any) -> Any:
    """As ``_vectors.pack`` stores them: int8 scaled to ±127, then unit length."""
    scaled = np.round(m / (np.abs(m).max(axis=1, keepdims=True) / 127))
    return scaled / np.linalg.norm(scaled, axis=1, keepdims=True)


def load(
    name: str, sentences: Callable[[Passage], list[str]], chars: int = 1200, rounded: bool = True
) -> Any:
    folder = ROOT / "tests" / "data" / name
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
        overlap = 150 if chars == 1200 else chars // 8
        passages = split_passages(
            text.text, markdown=text.kind == "markdown", max_chars=chars, overlap_chars=overlap
        )
        language = guess_language([text.text])
        corpus[path.stem] = {
            "passages": passages,
            "vectors": embed([p.embedding_text() for p in passages]),
            "language": language,
            "terms": [terms(f"{p.heading}\n{p.text}", language) for p in passages],
            "sentences": [
                (quantised if rounded else np.asarray)(embed(s)) if (s := sentences(p)) else None
                for p in passages
            ],
        }
    questions = json.loads((folder / "questions.json").read_text())
    return corpus, questions, embed([q["question"] for q in questions])


def ranked(
    corpus: Any, question: str, vector: Any, best: int, mix: float | None, prior: float
) -> list[tuple[str, int]]:
    pool = []
    for name, d in corpus.items():
        for i, s in enumerate(d["vectors"] @ vector):
            pool.append((float(s), name, i))
    pool.sort(key=lambda x: (-x[0], x[1], x[2]))
    similarities = [s for s, _, _ in pool]
    passages = [corpus[n]["terms"][i] for _, n, i in pool]
    vocabulary = {t for p in passages for t in p}
    by_language: dict[str, list[str]] = {}
    for _, n, _ in pool:
        language = corpus[n]["language"]
        if language not in by_language:
            by_language[language] = expand(terms(question, language), vocabulary)
    lexical = bm25([by_language[corpus[n]["language"]] for _, n, _ in pool], passages)
    order = fuse(similarities, lexical, weight=0.3)
    for k in order[:best]:
        _, n, i = pool[k]
        stored = corpus[n]["sentences"][i]
        if stored is not None:
            top = float((stored @ vector).max())
            if mix is None:
                similarities[k] = max(similarities[k], top)
            else:
                similarities[k] = mix * top + (1 - mix) * similarities[k]
    if prior:
        documents = {n: d["vectors"].mean(axis=0) for n, d in corpus.items()}
        near = {n: float(v @ vector / np.linalg.norm(v)) for n, v in documents.items()}
        top_near, top_s, top_x = max(near.values()), max(similarities), max(lexical) or 1.0
        fused = [
            0.7 * s / top_s + 0.3 * x / top_x + prior * near[n] / top_near
            for s, x, (_, n, _) in zip(similarities, lexical, pool, strict=True)
        ]
        order = sorted(range(len(pool)), key=lambda k: (-fused[k], k))
    else:
        order = fuse(similarities, lexical, weight=0.3)
    return [(pool[k][1], pool[k][2]) for k in order]


def recall(data: Any, best: int = 20, mix: float | None = None, prior: float = 0.0) -> str:
    corpus, questions, vectors = data
    ranks = []
    for q, vector in zip(questions, vectors, strict=True):
        found = None
        for j, (n, i) in enumerate(ranked(corpus, q["question"], vector, best, mix, prior)[:10]):
            if n == q["document"] and q["answer"] in corpus[n]["passages"][i].text:
                found = j + 1
                break
        ranks.append(found)
    return " ".join(f"{sum(r is not None and r <= k for r in ranks) / len(ranks):.2f}" for k in KS)


def main() -> None:
    unrounded = ("unrounded",)
    rows: list[tuple[str, Any, int, dict[str, Any]]] = [
        ("ADR 0801 (no sentence vectors)", product_sentences, 1200, {"best": 0}),
        ("sentence vectors, best 20 re-scored (chosen)", product_sentences, 1200, {}),
        ("the same, float vectors (not rounded to int8)", unrounded, 1200, {}),
        ("the same, the best 10", product_sentences, 1200, {"best": 10}),
        ("the same, the best 40", product_sentences, 1200, {"best": 40}),
        ("0.7 x best sentence + 0.3 x passage", product_sentences, 1200, {"mix": 0.7}),
        ("sentences of at least 120 characters", min_chars(120), 1200, {}),
        ("windows of two sentences", windows, 1200, {}),
        ("sentences under the last heading only", under(last_heading), 1200, {}),
        ("sentences under no heading", under(no_heading), 1200, {}),
        ("PASSAGE_CHARS 600, no sentence vectors", product_sentences, 600, {"best": 0}),
        ("a document prior of 0.05 with the chosen rule", product_sentences, 1200, {"prior": 0.05}),
        ("a document prior of 0.1 with the chosen rule", product_sentences, 1200, {"prior": 0.1}),
        ("a document prior of 0.15 with the chosen rule", product_sentences, 1200, {"prior": 0.15}),
        ("a document prior of 0.2 with the chosen rule", product_sentences, 1200, {"prior": 0.2}),
    ]
    print("| rule | " + " | ".join(f"{s} @1 @3 @5 @10" for s in SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    cache: dict[Any, Any] = {}
    for label, sentences, chars, options in rows:
        cells = []
        for name in SETS:
            key = (name, sentences, chars)
            if key not in cache:
                if sentences is unrounded:
                    cache[key] = load(name, product_sentences, chars, rounded=False)
                else:
                    cache[key] = load(name, sentences, chars)
            cells.append(recall(cache[key], **options))
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
