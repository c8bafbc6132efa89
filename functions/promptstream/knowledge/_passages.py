"""The knowledge base's collections and what ingestion, search and context share: a
document id's check, a generation's scope, the retrieved ``Source``, the ``Embedder``.
(Ingestion is ``_ingest``, search ``_search``, the context ``_context``.)

Collections (``docs/adr/0200-retrieval-design.md``):

- ``documents/{document_id}~{uid_key(owner_uid)}`` (``store._uploads.document_path``: ids
  are per user, docs/adr/0800-retrieval-quality.md): ``owner_uid``, ``document_id``,
  ``title``, ``filename``, ``content_type``, ``size``, ``status`` (``indexing`` |
  ``ready`` | ``error``), ``error_message``, ``generation`` (the ready one),
  ``indexing_generation``, ``passage_count``, ``language`` (the ready generation's, for
  the lexical score), ``centroid`` (its passages' mean vector, packed:
  docs/adr/0802-sentence-vectors.md), ``created_at``, ``updated_at``.
- ``passages/{document key}-g{generation}-{position}``: ``owner_uid``, ``document_id``,
  ``document_key`` (the document's Firestore id), ``generation``, ``scope``
  (``"{owner_uid}/{document_id}/{generation}"``), ``position``, ``heading``, ``text``,
  ``terms`` (its heading's and text's stemmed terms, space-separated:
  docs/adr/0801-lexical-statistics.md), ``embedding`` (a vector), ``sentence_vectors``
  (its sentences' vectors as int8 bytes, when it has more than one:
  docs/adr/0802-sentence-vectors.md).

Why no passage is ever half-visible (generations and scopes), and why one search stays
inside one user's documents: docs/adr/0200-retrieval-design.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..upstream._embeddings import Embeddings

__all__ = ["PASSAGES", "Embedder", "Source", "check_document_id", "scope_of"]

PASSAGES = "passages"
# Firestore refuses ids with "/", "." and "..", and reserves "__x__"; these also keep a
# document's key ("{document_id}~{uid key}"), a passage id and a scope unambiguous.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


class Embedder(Protocol):
    """What ingestion and search need of ``EmbeddingsClient``."""

    async def embed(self, texts: Sequence[str]) -> Embeddings: ...


@dataclass(frozen=True, slots=True)
class Source:
    """One retrieved passage. ``score`` is cosine similarity (1 = same direction)."""

    document_id: str
    title: str
    position: int
    heading: str
    text: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "title": self.title,
            "position": self.position,
            "heading": self.heading,
            "text": self.text,
            "score": round(self.score, 4),
        }


def check_document_id(document_id: str) -> str:
    """``document_id`` if it is safe as a Firestore id here, else ``ValueError``."""
    if not isinstance(document_id, str) or not _SAFE_ID.match(document_id):
        raise ValueError(
            "document ids are 1-100 letters, digits, '_' or '-', not starting with '_' or '-'"
        )
    return document_id


def scope_of(owner_uid: str, document_id: str, generation: int) -> str:
    return f"{owner_uid}/{document_id}/{generation}"
