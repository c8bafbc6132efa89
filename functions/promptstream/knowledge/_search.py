"""Search: the passages nearest a query in the documents a prompt names, one
``find_nearest`` per document pre-filtered on its ready generation's scope, so one user's
search stays inside that user's documents by construction
(docs/adr/0200-retrieval-design.md); the pool then re-ranked with BM25 over the terms stored
with each passage, every passage of the named documents when they are few
(docs/adr/0800-retrieval-quality.md, docs/adr/0801-lexical-statistics.md), the best of
them re-scored by their sentences' vectors, and the documents weighed by their centroids
(docs/adr/0802-sentence-vectors.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._config import DEFAULTS
from ..store._firestore import FirestoreRest
from ..store._uploads import document_path
from ._passages import PASSAGES, Embedder, Source, check_document_id, scope_of
from ._ranking import COMPOUND_CHARS, bm25, expand, fuse, plain_terms
from ._terms import terms
from ._vectors import best_similarity

__all__ = ["SearchResult", "search"]

_PASSAGE_FIELDS = ("document_id", "position", "heading", "text", "terms", "sentence_vectors")
_DISTANCE = "distance"
# The lexical score's share of the fused one (the vector similarity has the rest), each a
# share of the pool's best: tuned on kb_tune and kb (docs/adr/0801-lexical-statistics.md).
LEXICAL_WEIGHT = 0.3
# The weight of a passage's document's similarity to the query (its centroid's), as a share
# of the best document's, when several are searched (docs/adr/0802-sentence-vectors.md).
DOCUMENT_WEIGHT = 0.1

# A pooled passage: its distance, the source, its stored terms, its sentence vectors.
_Pooled = tuple[float, Source, str | None, object]


@dataclass(frozen=True, slots=True)
class SearchResult:
    sources: list[Source]  # nearest first; passage n of the context is sources[n - 1]
    tokens: int  # the query's embedding tokens, for the caller's budget
    unavailable: list[str]  # named documents not searched: missing, not ready, or not theirs


async def search(
    db: FirestoreRest,
    embedder: Embedder,
    *,
    owner_uid: str,
    document_ids: Sequence[str],
    query: str,
    top_k: int,
    candidates: int = DEFAULTS.retrieval_candidates,
    lexical_passages: int = DEFAULTS.retrieval_lexical_passages,
) -> SearchResult:
    """The ``top_k`` passages best for ``query`` among ``document_ids`` that belong to
    ``owner_uid`` and are ``ready``, best first: a pool of passages by vector, re-ranked
    by fusing their vector similarity with their BM25 score (``candidates`` 0: by vector
    alone). The pool is every passage of the documents when they hold at most
    ``lexical_passages`` in all, else the ``max(top_k, candidates)`` nearest (each
    document giving at least ``top_k`` and its share of ``candidates``). The first
    ``max(top_k, candidates)`` of that order are then re-scored by their best sentence
    vector, where ingestion stored them, and the pool fused again, with each document's
    similarity to the query (its centroid's) when several documents all have one.

    Documents that are someone else's, missing, or not ready contribute nothing and are
    listed in ``unavailable`` (one list for all three, so nobody learns that another
    user's id exists); the caller decides whether to tell the user. No ready document:
    no embedding call. Raises ``ValueError`` for an unsafe id, an ``OpenRouterError``
    from the query's embedding and ``FirestoreError`` from the reads.
    """
    ids = list(dict.fromkeys(check_document_id(d) for d in document_ids))
    if not ids or top_k <= 0 or not query.strip():
        return SearchResult([], 0, [])
    paths = [document_path(owner_uid, d) for d in ids]
    found = await db.get_all(paths)
    ready: list[tuple[str, Mapping[str, Any]]] = []
    for document_id, path in zip(ids, paths, strict=True):
        record = found[path].data if path in found else None
        if (
            record is not None
            and record.get("owner_uid") == owner_uid
            and record.get("status") == "ready"
            and int(record.get("generation") or 0) > 0
        ):
            ready.append((document_id, record))
    unavailable = [d for d in ids if d not in {r[0] for r in ready}]
    if not ready:
        return SearchResult([], 0, unavailable)
    embedded = await embedder.embed([query])
    vector = embedded.vectors[0]
    counts = [int(data.get("passage_count") or 0) for _, data in ready]
    # Few passages in all: every one of them is read, and BM25's statistics are the
    # documents' own rather than those of the passages nearest the vector.
    whole = candidates > 0 and 0 < sum(counts) <= lexical_passages
    # The candidates shared out among the documents (each still gives top_k): ten
    # documents read no more passages than a search by vector alone would.
    each = max(top_k, -(-candidates // len(ready)))
    per_document = await asyncio.gather(
        *(
            db.find_nearest(
                PASSAGES,
                "embedding",
                vector,
                limit=max(each, count) if whole else each,
                where_equal={"scope": scope_of(owner_uid, document_id, int(data["generation"]))},
                distance_field=_DISTANCE,
                select=_PASSAGE_FIELDS,
            )
            for (document_id, data), count in zip(ready, counts, strict=True)
        )
    )
    pooled: list[_Pooled] = []
    for (document_id, data), hits in zip(ready, per_document, strict=True):
        for hit in hits:
            fields = hit.data or {}
            distance = float(fields.get(_DISTANCE, 2.0))
            stored = fields.get("terms")
            source = Source(
                document_id=document_id,
                title=str(data.get("title") or ""),
                position=int(fields.get("position") or 0),
                heading=str(fields.get("heading") or ""),
                text=str(fields.get("text") or ""),
                score=1.0 - distance,
            )
            stored = stored if isinstance(stored, str) else None
            pooled.append((distance, source, stored, fields.get("sentence_vectors")))
    pooled.sort(key=lambda item: (item[0], item[1].document_id, item[1].position))
    if not whole:
        pooled = pooled[: max(top_k, candidates)]
    if candidates:
        languages = {document_id: data.get("language") for document_id, data in ready}
        similarities = [source.score for _, source, _, _ in pooled]
        lexical = _lexical(query, pooled, languages)
        order = fuse(similarities, lexical, weight=LEXICAL_WEIGHT)
        for i in order[: max(top_k, candidates)]:
            sentence = best_similarity(vector, pooled[i][3])
            if sentence is not None and sentence > similarities[i]:
                similarities[i] = sentence
        near = _documents_near(vector, ready)
        order = fuse(
            similarities,
            lexical,
            weight=LEXICAL_WEIGHT,
            documents=None if near is None else [near[s.document_id] for _, s, _, _ in pooled],
            document_weight=DOCUMENT_WEIGHT,
        )
        pooled = [pooled[i] for i in order]
    return SearchResult(
        [source for _, source, _, _ in pooled[:top_k]], embedded.tokens, unavailable
    )


def _documents_near(
    vector: Sequence[float], ready: Sequence[tuple[str, Mapping[str, Any]]]
) -> dict[str, float] | None:
    """Each searched document's similarity to the query (its centroid's); ``None`` for a
    single document (it would lift every passage alike) or when one has no centroid
    (stored before them: every document is then weighed alike)."""
    if len(ready) < 2:
        return None
    near = {}
    for document_id, data in ready:
        similarity = best_similarity(vector, data.get("centroid"))
        if similarity is None:
            return None
        near[document_id] = similarity
    return near


def _lexical(
    query: str,
    pooled: Sequence[_Pooled],
    languages: Mapping[str, object],
) -> list[float]:
    """The pool's BM25 scores: over the terms ingestion stored, the query stemmed in each
    passage's document's language; over today's plain terms of the text when a document
    was stored before its terms were (docs/adr/0801-lexical-statistics.md)."""
    if any(stored is None for _, _, stored, _ in pooled) or not all(
        isinstance(languages.get(source.document_id), str) for _, source, _, _ in pooled
    ):
        plain = plain_terms(query)
        return bm25(
            [plain] * len(pooled),
            [plain_terms(f"{source.heading}\n{source.text}") for _, source, _, _ in pooled],
        )
    passages = [(stored or "").split() for _, _, stored, _ in pooled]
    vocabulary: set[str] = set()
    by_language: dict[str, list[str]] = {}
    queries = []
    for _, source, _, _ in pooled:
        language = str(languages[source.document_id])
        if language not in by_language:
            own = terms(query, language)
            if not vocabulary and any(len(t) >= COMPOUND_CHARS for t in own):
                # Only a long query word may be a compound to split against the pool.
                vocabulary.update(*passages)
            by_language[language] = expand(own, vocabulary) if vocabulary else own
        queries.append(by_language[language])
    return bm25(queries, passages)
