"""A document's record through its generations: an ingestion's claim of the next
generation, the conditional flip that makes it the one search reads, the best-effort
failure; and the deletion of a document and its passages. Why a passage is never
half-visible: docs/adr/0200-retrieval-design.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from .. import _logging
from .._errors import DocumentReason
from ..store._firestore import (
    FirestoreError,
    FirestoreRest,
    encode_fields,
    field_path,
    structured_query,
)
from ..store._uploads import document_path
from ._passages import PASSAGES, check_document_id

__all__ = [
    "COMMIT_WRITES",
    "IngestError",
    "claim",
    "commit_in_batches",
    "delete_document",
    "delete_passages",
    "fail",
    "flip",
]

# Writes per commit (Firestore's limit is 500), and their encoded size: Firestore refuses a
# request over 10 MiB, and a passage with its vector and sentence vectors at the largest
# EMBEDDING_DIMENSIONS comes to 150-300 KB (docs/adr/0802-sentence-vectors.md).
COMMIT_WRITES = 100
COMMIT_BYTES = 4 * 1024 * 1024


class IngestError(Exception):
    """Ingestion or deletion refused or failed; ``code`` is the ``DocumentReason`` (a
    ``DocumentError``'s, or one of ingestion's own), which names its ``ErrorCode``."""

    def __init__(self, code: DocumentReason, message: str, *, tokens: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # Embedding tokens already spent when the failure came after the embedding (the
        # caller's budget should still be charged for them).
        self.tokens = tokens


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def commit_in_batches(
    db: FirestoreRest,
    writes: Sequence[Mapping[str, Any]],
    sizes: Sequence[int] | None = None,
) -> None:
    """``writes`` in commits of at most ``COMMIT_WRITES``, in order (not atomic as a whole);
    with ``sizes`` (a bound on each write's encoded bytes), of at most ``COMMIT_BYTES``
    too (a larger write goes alone)."""
    batch: list[Mapping[str, Any]] = []
    held = 0
    for index, write in enumerate(writes):
        size = sizes[index] if sizes is not None else 0
        if batch and (len(batch) == COMMIT_WRITES or held + size > COMMIT_BYTES):
            await db.commit(batch)
            batch, held = [], 0
        batch.append(write)
        held += size
    if batch:
        await db.commit(batch)


async def claim(
    db: FirestoreRest,
    path: str,
    owner_uid: str,
    document_id: str,
    title: str,
    filename: str,
    content_type: str | None,
    size: int,
) -> tuple[int, str]:
    """Mark the document ``indexing`` under a new generation number (a conditional
    commit: two ingestions of one document get two numbers). Returns the generation and
    the document's update time after the claim."""
    for _ in range(5):
        found = (await db.get_all([path]))[path]
        data = found.data
        if data is not None and data.get("owner_uid") != owner_uid:
            raise IngestError(DocumentReason.NOT_FOUND, "no such document")
        previous = max(
            int((data or {}).get("generation") or 0),
            int((data or {}).get("indexing_generation") or 0),
        )
        generation = previous + 1
        now = _now()
        fields: dict[str, Any] = {
            "owner_uid": owner_uid,
            "document_id": document_id,
            "title": title,
            "filename": filename,
            "content_type": content_type or "",
            "size": size,
            "status": "indexing",
            "error_message": None,
            "indexing_generation": generation,
            "updated_at": now,
        }
        if data is None:
            fields.update(generation=0, passage_count=0, created_at=now)
            precondition: dict[str, Any] = {"exists": False}
        else:
            precondition = {"updateTime": found.update_time}
        write = {
            "update": {"name": db.name(path), "fields": encode_fields(fields)},
            "updateMask": {"fieldPaths": [field_path(k) for k in fields]},
            "currentDocument": precondition,
        }
        try:
            [claimed_at] = await db.commit([write])
        except FirestoreError as exc:
            if exc.conflict:
                continue
            raise IngestError(DocumentReason.STORE_FAILED, "claiming the document failed") from exc
        if claimed_at is None:
            raise IngestError(
                DocumentReason.STORE_FAILED, "Firestore gave no update time for the claim"
            )
        return generation, claimed_at
    raise IngestError(DocumentReason.SUPERSEDED, "the document is being changed by another upload")


async def flip(
    db: FirestoreRest,
    path: str,
    generation: int,
    claimed_at: str,
    count: int,
    language: str,
    centroid: bytes,
) -> None:
    """Make ``generation`` the one search reads, if nothing touched the document since
    the claim (another upload, a delete)."""
    fields = {
        "status": "ready",
        "generation": generation,
        "passage_count": count,
        "language": language,
        "centroid": centroid,
        "error_message": None,
        "updated_at": _now(),
    }
    write = {
        "update": {"name": db.name(path), "fields": encode_fields(fields)},
        "updateMask": {"fieldPaths": list(fields)},
        "currentDocument": {"updateTime": claimed_at},
    }
    try:
        await db.commit([write])
    except FirestoreError as exc:
        if exc.conflict:
            raise IngestError(
                DocumentReason.SUPERSEDED, "the document changed while indexing"
            ) from exc
        raise IngestError(DocumentReason.STORE_FAILED, "marking the document ready failed") from exc


async def fail(
    db: FirestoreRest, path: str, generation: int, message: str, written: list[str]
) -> None:
    """Best effort: the document ``error`` (unless a newer upload took it over) and the
    failed generation's passages deleted. Search cannot see them either way."""
    key = path.rsplit("/", 1)[1]
    try:
        found = (await db.get_all([path]))[path]
        if found.data is not None and found.data.get("indexing_generation") == generation:
            fields = {"status": "error", "error_message": message[:500], "updated_at": _now()}
            await db.commit(
                [
                    {
                        "update": {"name": db.name(path), "fields": encode_fields(fields)},
                        "updateMask": {"fieldPaths": list(fields)},
                        "currentDocument": {"updateTime": found.update_time},
                    }
                ]
            )
    except (FirestoreError, aiohttp.ClientError, TimeoutError):
        _logging.warn("document not marked error", document_key=key)
    try:
        await commit_in_batches(db, [{"delete": db.name(f"{PASSAGES}/{pid}")} for pid in written])
    except (FirestoreError, aiohttp.ClientError, TimeoutError):
        _logging.warn("passages of a failed ingestion not deleted", document_key=key)


async def delete_document(db: FirestoreRest, *, owner_uid: str, document_id: str) -> int:
    """Delete ``owner_uid``'s document ``document_id``, then its passages; the number of
    passages deleted. ``IngestError`` (``NOT_FOUND``) when there is no such document of
    theirs (someone else's reads as missing).

    The document goes first (conditional on the version read): from then on search
    skips its passages, and an ingestion still running fails its flip and deletes
    its own."""
    check_document_id(document_id)
    path = document_path(owner_uid, document_id)
    for _ in range(5):
        found = (await db.get_all([path]))[path]
        if found.data is None or found.data.get("owner_uid") != owner_uid:
            raise IngestError(DocumentReason.NOT_FOUND, "no such document")
        try:
            await db.commit(
                [{"delete": db.name(path), "currentDocument": {"updateTime": found.update_time}}]
            )
            break
        except FirestoreError as exc:
            if not exc.conflict:
                raise
    else:
        raise IngestError(
            DocumentReason.SUPERSEDED, "the document is being changed by another upload"
        )
    return await delete_passages(db, owner_uid, document_id)


async def delete_passages(
    db: FirestoreRest, owner_uid: str, document_id: str, *, keep_generation: int | None = None
) -> int:
    """Delete ``owner_uid``'s ``document_id``'s passages (all, or all but
    ``keep_generation``'s); the number deleted. For re-ingestion, and for a document that
    was deleted."""
    key = document_path(owner_uid, document_id).rsplit("/", 1)[1]
    deleted = 0
    while True:
        query = structured_query(PASSAGES, {"document_key": key}, select=["generation"])
        query["limit"] = 300
        found = await db.run_query(query)
        doomed = [
            d.path for d in found if d.data is None or d.data.get("generation") != keep_generation
        ]
        if doomed:
            await commit_in_batches(db, [{"delete": db.name(p)} for p in doomed])
            deleted += len(doomed)
        if len(found) < 300 or not doomed:
            return deleted
