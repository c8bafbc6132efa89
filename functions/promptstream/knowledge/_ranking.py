"""Hybrid ranking: the vector search's candidates re-scored with BM25 over their own text,
and the two rankings fused by reciprocal rank (docs/adr/0800-retrieval-quality.md).

Pure. The lexical statistics (document frequencies, average length) are those of the
candidates of one search, computed in memory per query: Firestore has no full-text index,
and a user's passages are already narrowed to the few nearest the query's vector, so
nothing is stored and nothing is read beyond the candidates' text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["bm25", "fuse", "terms"]

# Okapi BM25's usual constants: term frequency saturation and length normalisation.
_K1 = 1.2
_B = 0.75
_TERM = re.compile(r"\w+")


def terms(text: str) -> list[str]:
    """``text``'s words and numbers of two characters or more, case-folded (any script:
    ``\\w`` is Unicode's), a final ``s`` taken off words of four or more, so that a
    plural meets its singular in English, French, Spanish and German alike."""
    return [
        t[:-1] if len(t) > 3 and t.endswith("s") else t
        for t in _TERM.findall(text.casefold())
        if len(t) > 1
    ]


def bm25(query: str, texts: Sequence[str]) -> list[float]:
    """The BM25 score of each of ``texts`` for ``query``, with the statistics of
    ``texts`` themselves; 0 for a text that shares no term with the query."""
    wanted = set(terms(query))
    if not wanted or not texts:
        return [0.0] * len(texts)
    counts = [Counter(t for t in terms(text) if t in wanted) for text in texts]
    lengths = [len(terms(text)) for text in texts]
    average = sum(lengths) / len(texts) or 1.0
    frequency = Counter(t for count in counts for t in count)
    n = len(texts)
    idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
    scores = []
    for count, length in zip(counts, lengths, strict=True):
        norm = _K1 * (1 - _B + _B * length / average)
        scores.append(sum(idf[t] * c * (_K1 + 1) / (c + norm) for t, c in count.items()))
    return scores


def fuse(lexical: Sequence[float], *, k: int, weight: float) -> list[int]:
    """The order (indices) of candidates given nearest first by the vector search, after
    reciprocal rank fusion with their ``lexical`` scores: the vector ranking gives
    ``1 / (k + rank)``, the lexical one ``weight / (k + rank)``, and a candidate with no
    lexical score gets nothing from that ranking. Ties keep the vector order."""
    by_lexical = sorted(
        (i for i, score in enumerate(lexical) if score > 0), key=lambda i: -lexical[i]
    )
    fused = [1 / (k + rank) for rank in range(1, len(lexical) + 1)]
    for rank, index in enumerate(by_lexical, start=1):
        fused[index] += weight / (k + rank)
    return sorted(range(len(lexical)), key=lambda i: (-fused[i], i))
