"""Ingestion: a user's upload to passages with vectors, written under a new generation's
scope and made visible by one conditional flip (the document's record through its
generations, and deletion: ``_generations``). The collections and why a passage is never
half-visible: ``_passages`` and docs/adr/0200-retrieval-design.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .. import _logging
from .._config import DEFAULTS, Settings
from .._errors import DocumentReason, OpenRouterError
from ..store._firestore import (
    FirestoreError,
    FirestoreRest,
    Vector,
    encode_fields,
)
from ..store._uploads import document_path
from ._chunking import Passage, split_passages
from ._documents import DocumentError, ExtractedText, check_upload, extract_text, finish_text
from ._generations import (
    IngestError,
    claim,
    commit_in_batches,
    delete_document,
    delete_passages,
    fail,
    flip,
)
from ._passages import PASSAGES, Embedder, check_document_id, scope_of
from ._pdfsandbox import PdfLimits, PdfSandbox
from ._terms import passage_terms
from ._vectors import centroid, pack

__all__ = [
    "IngestError",
    "IngestLimits",
    "IngestResult",
    "delete_document",
    "delete_passages",
    "ingest",
]


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """The caps one ingestion works within (``from_settings`` builds them from the
    deployment's settings)."""

    max_bytes: int = DEFAULTS.max_document_bytes
    max_pages: int = DEFAULTS.max_document_pages
    max_chars: int = DEFAULTS.max_document_chars
    max_passages: int = DEFAULTS.max_passages_per_document
    passage_chars: int = DEFAULTS.passage_chars
    overlap_chars: int = DEFAULTS.passage_overlap_chars
    sentence_vectors: int = DEFAULTS.passage_sentence_vectors
    # The instance's PDF children (shared by its uploads: their number is bounded).
    pdf: PdfSandbox = field(default_factory=PdfSandbox, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_bytes=settings.max_document_bytes,
            max_pages=settings.max_document_pages,
            max_chars=settings.max_document_chars,
            max_passages=settings.max_passages_per_document,
            passage_chars=settings.passage_chars,
            overlap_chars=settings.passage_overlap_chars,
            sentence_vectors=settings.passage_sentence_vectors,
            pdf=PdfSandbox(
                PdfLimits(
                    cpu_seconds=settings.pdf_cpu_seconds,
                    memory_bytes=settings.pdf_memory_bytes,
                    wall_seconds=settings.pdf_wall_seconds,
                    concurrency=settings.pdf_concurrency,
                    queue_seconds=settings.pdf_queue_seconds,
                )
            ),
        )


@dataclass(frozen=True, slots=True)
class IngestResult:
    document_id: str
    generation: int
    passage_count: int
    tokens: int  # embedding tokens, for the caller's budget


async def ingest(
    db: FirestoreRest,
    embedder: Embedder,
    *,
    owner_uid: str,
    document_id: str,
    data: bytes,
    title: str,
    filename: str = "",
    content_type: str | None = None,
    limits: IngestLimits = IngestLimits(),
    before_embedding: Callable[[Sequence[str]], Awaitable[None]] | None = None,
) -> IngestResult:
    """Split, embed and store ``data`` as the next generation of ``document_id``, then
    make it the one search uses; older generations are deleted after.

    The document is created if missing, or must belong to ``owner_uid``. On any failure
    it is left ``error`` with the reason, no passage of the failed generation is
    visible to search, and ``IngestError`` is raised (with the tokens already spent).
    The result carries the embedding tokens, for the caller's budget.
    ``before_embedding`` sees the texts about to be embedded and may refuse by raising an
    ``IngestError``. The cap on a user's documents is the caller's (the upload's
    admission: docs/adr/0308-uploads-under-the-budget.md).
    """
    check_document_id(document_id)
    if len(data) > limits.max_bytes:
        # Refused before the document is touched: an upload too large for a new
        # document does not create one, and does not take a ready one out of search.
        raise IngestError(
            DocumentReason.TOO_LARGE, f"the file is larger than {limits.max_bytes} bytes"
        )
    path = document_path(owner_uid, document_id)
    generation, claimed_at = await claim(
        db, path, owner_uid, document_id, title, filename, content_type, len(data)
    )
    scope = scope_of(owner_uid, document_id, generation)
    key = path.rsplit("/", 1)[1]
    written: list[str] = []
    spent = 0
    try:
        try:
            text = await _extract(data, filename, content_type, limits)
        except DocumentError as exc:
            raise IngestError(exc.code, exc.message) from exc
        # Linear in the text, yet CPU in proportion to it: off the loop that relays streams.
        passages = await asyncio.to_thread(
            split_passages,
            text.text,
            markdown=text.kind == "markdown",
            max_chars=limits.passage_chars,
            overlap_chars=limits.overlap_chars,
        )
        if not passages:
            raise IngestError(DocumentReason.EMPTY, "the document has no text to index")
        if len(passages) > limits.max_passages:
            raise IngestError(
                DocumentReason.TOO_MANY_PASSAGES,
                f"the document makes more than {limits.max_passages} passages",
            )
        # Each passage's text, then the sentences of every passage, in one embedding call.
        sentences = [p.sentences(limits.sentence_vectors) for p in passages]
        texts = [p.embedding_text() for p in passages]
        texts += [s for group in sentences for s in group]
        # Stored for the lexical score: stemming is pure Python, so off the loop too.
        language, lexical = await asyncio.to_thread(
            passage_terms, text.text, [f"{p.heading}\n{p.text}" for p in passages]
        )
        if before_embedding is not None:
            # The caller's last word before tokens are spent (the upload's reservation).
            await before_embedding(texts)
        try:
            embedded = await embedder.embed(texts)
        except OpenRouterError as exc:
            spent = exc.tokens_spent  # billed before the failed batch
            raise IngestError(
                DocumentReason.EMBEDDING_FAILED, f"embedding failed: {exc.message}"
            ) from exc
        spent = int(embedded.tokens)
        # Quantising is pure Python over every component: off the loop.
        packed, center = await asyncio.to_thread(
            _pack_vectors, embedded.vectors, len(passages), [len(g) for g in sentences]
        )
        writes = []
        sizes = []
        for passage, vector, stored, vectors in zip(
            passages, embedded.vectors[: len(passages)], lexical, packed, strict=True
        ):
            passage_id = f"{key}-g{generation}-{passage.position}"
            written.append(passage_id)
            writes.append(
                {
                    "update": {
                        "name": db.name(f"{PASSAGES}/{passage_id}"),
                        "fields": _passage_fields(
                            owner_uid,
                            document_id,
                            key,
                            generation,
                            scope,
                            passage,
                            vector,
                            stored,
                            vectors,
                        ),
                    }
                }
            )
            sizes.append(passage_write_bound(passage, vector, stored, vectors))
        try:
            await commit_in_batches(db, writes, sizes)
        except FirestoreError as exc:
            raise IngestError(DocumentReason.STORE_FAILED, "storing the passages failed") from exc
        await flip(db, path, generation, claimed_at, len(passages), language, center)
    except BaseException as exc:
        # Also on cancellation and on anything unforeseen (a connection error from
        # Firestore): the document must not stay "indexing" with no one indexing it.
        reason = (
            exc
            if isinstance(exc, IngestError)
            else IngestError(DocumentReason.STORE_FAILED, "indexing failed")
        )
        reason.tokens = spent
        await fail(db, path, generation, reason.message, written)
        try:
            if reason is exc or not isinstance(exc, Exception):
                raise
            raise reason from exc
        finally:
            # The error's traceback holds this frame: a local naming the error would make
            # a cycle that keeps ``data`` (up to MAX_DOCUMENT_BYTES) until a full
            # collection, which a process that allocates few objects rarely runs.
            del reason
    try:
        await delete_passages(db, owner_uid, document_id, keep_generation=generation)
    except (FirestoreError, aiohttp.ClientError, TimeoutError):
        # Older generations are out of search already; the next ingestion or the
        # document's deletion removes them.
        _logging.warn("old passages not deleted", document_id=document_id)
    return IngestResult(document_id, generation, len(passages), spent)


async def _extract(
    data: bytes, filename: str, content_type: str | None, limits: IngestLimits
) -> ExtractedText:
    """The upload's text: a PDF read by a limited child process, text decoded in a
    worker thread (both off the loop)."""
    kind = check_upload(
        data, filename=filename, content_type=content_type, max_bytes=limits.max_bytes
    )
    if kind != "pdf":
        return await asyncio.to_thread(
            extract_text,
            data,
            filename=filename,
            content_type=content_type,
            max_bytes=limits.max_bytes,
            max_chars=limits.max_chars,
        )
    text, pages = await limits.pdf.text(
        data, max_pages=limits.max_pages, max_chars=limits.max_chars
    )
    return await asyncio.to_thread(finish_text, text, kind, pages, max_chars=limits.max_chars)


def passage_write_bound(
    passage: Passage, vector: Sequence[float], terms: str, sentence_vectors: bytes
) -> int:
    """A bound on the bytes of a passage's write as the commit's JSON encodes it (orjson,
    or the standard library's ASCII escapes): twelve for a character (a surrogate pair's
    escapes), 48 for a number of the vector with its wrapping, base64 for the sentence
    vectors, and a kilobyte for the names and the other fields."""
    characters = len(passage.heading) + len(passage.text) + len(terms)
    return 12 * characters + 48 * len(vector) + 4 * (len(sentence_vectors) + 2) // 3 + 1024


def _pack_vectors(
    vectors: Sequence[Sequence[float]], passages: int, sizes: Sequence[int]
) -> tuple[list[bytes], bytes]:
    """From the ``passages`` passages' vectors and then their sentences': each passage's
    sentence vectors packed (``sizes[i]`` for passage i), and the passages' centroid."""
    out = []
    start = passages
    for size in sizes:
        out.append(pack(vectors[start : start + size]))
        start += size
    return out, pack([centroid(vectors[:passages])])


def _passage_fields(
    owner_uid: str,
    document_id: str,
    key: str,
    generation: int,
    scope: str,
    passage: Passage,
    vector: Sequence[float],
    terms: str,
    sentence_vectors: bytes,
) -> dict[str, Any]:
    optional = {"sentence_vectors": sentence_vectors} if sentence_vectors else {}
    return encode_fields(
        {
            "owner_uid": owner_uid,
            "document_id": document_id,
            "document_key": key,
            "generation": generation,
            "scope": scope,
            "position": passage.position,
            "heading": passage.heading,
            "text": passage.text,
            "terms": terms,
            "embedding": Vector(vector),
            **optional,
        }
    )
