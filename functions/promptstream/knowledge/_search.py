"""Search: the passages nearest a query in the documents a prompt names, one
``find_nearest`` per document pre-filtered on its ready generation's scope, so one user's
search stays inside that user's documents by construction
(docs/adr/0200-retrieval-design.md); the nearest candidates then re-ranked with BM25 over
their text (docs/adr/0800-retrieval-quality.md).
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
from ._ranking import bm25, fuse

__all__ = ["SearchResult", "search"]

_PASSAGE_FIELDS = ("document_id", "position", "heading", "text")
_DISTANCE = "distance"
# Reciprocal rank fusion: a small constant keeps the vector order's first places apart (the
# usual 60 flattens a list of 20 until any lexical hit wins), and the lexical ranking
# weighs less, lifting an exact token by a place or two (docs/adr/0800-retrieval-quality.md).
FUSION_K = 5
LEXICAL_WEIGHT = 0.3


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
) -> SearchResult:
    """The ``top_k`` passages best for ``query`` among ``document_ids`` that belong to
    ``owner_uid`` and are ``ready``, best first: the ``max(top_k, candidates)`` nearest by
    vector (each document giving at least ``top_k`` and its share of ``candidates``),
    re-ranked by fusing that order with their BM25 order (``candidates`` 0: by vector
    alone).

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
    pool = max(top_k, candidates)
    # The candidates shared out among the documents (each still gives top_k): ten
    # documents read no more passages than a search by vector alone would.
    each = max(top_k, -(-candidates // len(ready)))
    per_document = await asyncio.gather(
        *(
            db.find_nearest(
                PASSAGES,
                "embedding",
                vector,
                limit=each,
                where_equal={"scope": scope_of(owner_uid, document_id, int(data["generation"]))},
                distance_field=_DISTANCE,
                select=_PASSAGE_FIELDS,
            )
            for document_id, data in ready
        )
    )
    sources: list[tuple[float, Source]] = []
    for (document_id, data), hits in zip(ready, per_document, strict=True):
        for hit in hits:
            fields = hit.data or {}
            distance = float(fields.get(_DISTANCE, 2.0))
            sources.append(
                (
                    distance,
                    Source(
                        document_id=document_id,
                        title=str(data.get("title") or ""),
                        position=int(fields.get("position") or 0),
                        heading=str(fields.get("heading") or ""),
                        text=str(fields.get("text") or ""),
                        score=1.0 - distance,
                    ),
                )
            )
    sources.sort(key=lambda item: (item[0], item[1].document_id, item[1].position))
    nearest = [source for _, source in sources[:pool]]
    if candidates:
        lexical = bm25(query, [f"{s.heading}\n{s.text}" for s in nearest])
        nearest = [nearest[i] for i in fuse(lexical, k=FUSION_K, weight=LEXICAL_WEIGHT)]
    return SearchResult(nearest[:top_k], embedded.tokens, unavailable)
