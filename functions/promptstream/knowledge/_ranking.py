"""Hybrid ranking: the pooled passages re-scored with BM25 over their terms, and the two
scores fused (docs/adr/0800-retrieval-quality.md, docs/adr/0801-lexical-statistics.md).

Pure. The lexical statistics (document frequencies, average length) are those of the pool
of one search, computed in memory per query: Firestore has no full-text index. When the
named documents are few passages in all, the pool is every one of them, and the
statistics are exact; otherwise it is the passages nearest the query's vector.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence

__all__ = ["COMPOUND_CHARS", "bm25", "expand", "fuse", "plain_terms"]

# Okapi BM25's usual constants: term frequency saturation and length normalisation.
_K1 = 1.2
_B = 0.75
_TERM = re.compile(r"\w+")
# A query word shorter than this is never split as a compound (see ``expand``).
COMPOUND_CHARS = 8
_PART = 4


def plain_terms(text: str) -> list[str]:
    """The terms of a passage stored before its terms were (``_terms.terms`` is the rule
    now): words and numbers of two characters or more, case-folded, a final ``s`` taken
    off words of four or more."""
    return [
        t[:-1] if len(t) > 3 and t.endswith("s") else t
        for t in _TERM.findall(text.casefold())
        if len(t) > 1
    ]


def expand(query: Sequence[str], vocabulary: Collection[str]) -> list[str]:
    """``query``'s terms, each long one missing from ``vocabulary`` followed by the two
    parts it splits into there (a compound: "mittwochnachmittag" finds "mittwoch" and
    "nachmittag"): the first part a term of the vocabulary, the second starting with one
    of four characters or more."""
    out: list[str] = []
    for term in query:
        out.append(term)
        if len(term) < COMPOUND_CHARS or term in vocabulary:
            continue
        for cut in range(len(term) - _PART, _PART - 1, -1):
            head, tail = term[:cut], term[cut:]
            if head not in vocabulary:
                continue
            ends = range(len(tail), _PART - 1, -1)
            stem = next((tail[:end] for end in ends if tail[:end] in vocabulary), None)
            if stem is not None:
                out.extend((head, stem))
                break
    return out


def bm25(queries: Sequence[Sequence[str]], passages: Sequence[Sequence[str]]) -> list[float]:
    """The BM25 score of each passage (its terms) for its query (``queries[i]`` the
    query's terms as ``passages[i]``'s language reads them), with the statistics of
    ``passages`` themselves; 0 for a passage that shares no term with its query."""
    if not passages:
        return []
    wanted = {t for query in queries for t in query}
    if not wanted:
        return [0.0] * len(passages)
    # Counter counts a list in C: the whole read's passages are counted once each.
    counts = [Counter(passage) for passage in passages]
    n = len(passages)
    average = sum(map(len, passages)) / n or 1.0
    idf = {}
    for t in wanted:
        f = sum(1 for count in counts if t in count)
        idf[t] = math.log(1 + (n - f + 0.5) / (f + 0.5))
    scores = []
    for query, passage, count in zip(queries, passages, counts, strict=True):
        norm = _K1 * (1 - _B + _B * len(passage) / average)
        score = 0.0
        for t in set(query):
            c = count.get(t, 0)
            if c:
                score += idf[t] * c * (_K1 + 1) / (c + norm)
        scores.append(score)
    return scores


def fuse(
    similarities: Sequence[float],
    lexical: Sequence[float],
    *,
    weight: float,
    documents: Sequence[float] | None = None,
    document_weight: float = 0.0,
) -> list[int]:
    """The order (indices) of the pool by ``(1 - weight)`` times its vector similarity
    and ``weight`` times its lexical score, each as a share of the pool's highest (so a
    small pool's near-equal similarities stay near-equal), plus ``document_weight``
    times its document's similarity to the query (``documents[i]``), as a share of the
    highest, when given. Ties keep the given order."""
    best = _highest(similarities)
    top = max(lexical, default=0.0) or 1.0
    fused = [
        (1 - weight) * s / best + weight * x / top
        for s, x in zip(similarities, lexical, strict=True)
    ]
    if documents is not None and document_weight:
        nearest = _highest(documents)
        fused = [f + document_weight * d / nearest for f, d in zip(fused, documents, strict=True)]
    return sorted(range(len(fused)), key=lambda i: (-fused[i], i))


def _highest(values: Sequence[float]) -> float:
    """The highest of ``values`` when positive, else 1 (a share of it keeps its sign)."""
    best = max(values, default=0.0)
    return best if best > 0 else 1.0
