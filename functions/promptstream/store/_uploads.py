"""A user's knowledge-base documents under the limits: where each is stored, and the
uploads' leases and claims in the user's limits document.

Uploads take their own leases in the limits document by the rule of executions (the
same lock per user, the same conditional write as ``_store``), and claim a new document
id there in the same commit; settling one releases it and debits its tokens
(docs/adr/0308-uploads-under-the-budget.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .._config import Settings
from .._errors import ErrorCode, HttpError
from .._ids import uid_key
from ._firestore import Document, FirestoreError, FirestoreRest, field_path, structured_query
from ._limits import (
    UPLOAD_TAT,
    UPLOADS,
    LimitExceeded,
    claim_document,
    take_lease,
    take_rate,
    upload_rate,
)
from ._records import settle_write
from ._store import USER_LIMITS, Store, auto_id, limits_write

__all__ = ["DOCUMENTS", "UploadStore", "document_path"]

R = TypeVar("R")

# Knowledge-base documents (written by ingestion; the limits document counts them).
DOCUMENTS = "documents"

# Between a document id and its owner's key in a document's Firestore id: never in a
# document id, so the first one splits the two (docs/adr/0800-retrieval-quality.md).
_OWNER_MARK = "~"


def document_path(uid: str, document_id: str) -> str:
    """Where ``uid``'s document ``document_id`` lives: ids are scoped per user, so two
    users' ``handbook`` are two documents and one user's ids say nothing of another's."""
    return f"{DOCUMENTS}/{document_id}{_OWNER_MARK}{uid_key(uid)}"


class UploadStore:
    """The uploads' Firestore calls, on the store's REST client and its per-user locks
    (built beside the ``Store`` it shares them with)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._upload_rate = upload_rate(settings)

    @property
    def _db(self) -> FirestoreRest:
        return self._store.rest

    async def begin_upload(self, *, uid: str, document_id: str, reserve: int) -> tuple[str, int]:
        """Take an upload lease reserving ``reserve`` tokens, and claim ``document_id`` in
        the user's set of documents, in one conditional commit on the limits document
        (read with the document itself). Returns the lease's id and its start (the stamp
        it put on the document id). Raises ``LimitExceeded`` (budget, uploads in flight,
        documents) and ``HttpError`` (another user's document) with nothing written."""
        db = self._db
        limits_path = f"{USER_LIMITS}/{uid_key(uid)}"
        path_of_document = document_path(uid, document_id)
        upload_id = auto_id()
        known: dict[str, int] | None = None
        gone: set[str] = set()

        async def step() -> tuple[list[dict[str, Any]], tuple[str, int]]:
            nonlocal known, gone
            docs = await db.get_all([limits_path, path_of_document])
            limits = docs.get(limits_path) or Document(limits_path, None, None)
            found = docs.get(path_of_document)
            if found is not None and found.data is not None:
                if found.data.get("owner_uid") != uid:
                    raise HttpError(ErrorCode.DOCUMENT_NOT_FOUND, "No such document.")
            now = dt.datetime.now(dt.UTC)
            lease = take_lease(limits.data, upload_id, now, self._settings, reserve, kind=UPLOADS)
            data = limits.data or {}
            if known is None and not isinstance(data.get("documents"), dict):
                # Written before the set existed: the documents a query finds.
                known = await self._documents_of(uid)
            try:
                owned = claim_document(
                    data, document_id, now, self._settings, known=known, gone=gone
                )
            except LimitExceeded:
                if gone:
                    raise
                # At the cap: the set may name documents deleted since (a deletion
                # whose second commit failed). One batch read, only here.
                gone = await self._missing(uid, data.get("documents") or known or {})
                if not gone:
                    raise
                owned = claim_document(
                    data, document_id, now, self._settings, known=known, gone=gone
                )
            # The user's upload rate, in the same commit (docs/adr/0309-per-user-rates.md).
            lease.update(take_rate(data, UPLOAD_TAT, now, self._upload_rate))
            fields = {**lease, "documents": owned, "uid": uid}
            return [limits_write(db, limits, fields)], (upload_id, owned[document_id])

        async with self._store.user_lock(uid):
            return await self._committed(step)

    async def reserve_upload(self, *, uid: str, upload_id: str, reserve: int) -> None:
        """Raise the upload's reservation to ``reserve`` under the same budget rule (its
        text turned out longer than its bytes promised). Raises ``LimitExceeded``."""
        db = self._db
        path = f"{USER_LIMITS}/{uid_key(uid)}"

        async def step() -> tuple[list[dict[str, Any]], None]:
            limits = (await db.get_all([path]))[path]
            now = dt.datetime.now(dt.UTC)
            lease = take_lease(
                limits.data, upload_id, now, self._settings, reserve, kind=UPLOADS, again=True
            )
            return [limits_write(db, limits, lease)], None

        await self._committed(step)

    async def settle_upload(
        self, *, uid: str, upload_id: str, document_id: str, stamp: int, tokens: int
    ) -> bool:
        """Release the upload's lease and reservation and debit ``tokens``, in one
        conditional commit; the document id leaves the user's set when the upload left no
        document (and no later upload of that id claimed it since). False, with nothing
        written, when the lease is gone: settled already (a commit that failed in transit
        may have been applied) or lapsed and dropped."""
        db = self._db
        path = f"{USER_LIMITS}/{uid_key(uid)}"
        path_of_document = document_path(uid, document_id)

        async def step() -> tuple[list[dict[str, Any]], bool]:
            docs = await db.get_all([path, path_of_document])
            limits = docs[path]
            data = limits.data or {}
            if upload_id not in (data.get(UPLOADS) or {}):
                return [], False
            paths = [field_path(UPLOADS, upload_id), field_path("reserved", upload_id)]
            found = docs.get(path_of_document)
            stored = found is not None and (found.data or {}).get("owner_uid") == uid
            if not stored and (data.get("documents") or {}).get(document_id) == stamp:
                paths.append(field_path("documents", document_id))
            return [settle_write(db, limits, paths, tokens, dt.datetime.now(dt.UTC))], True

        return await self._committed(step)

    async def _committed(self, step: Callable[[], Awaitable[tuple[list[dict[str, Any]], R]]]) -> R:
        """``FirestoreRest.committed``: the one retry of the per-user limits
        (docs/adr/0002-conditional-commits.md)."""
        return (await self._db.committed(step))[0]

    async def forget_document(self, *, uid: str, document_id: str) -> None:
        """Take a deleted document out of the user's set (a field in the mask, absent from
        the fields). Unconditional: removing one key races with nothing."""
        path = f"{USER_LIMITS}/{uid_key(uid)}"
        write = {
            "update": {"name": self._db.name(path), "fields": {}},
            "updateMask": {"fieldPaths": [field_path("documents", document_id)]},
            "currentDocument": {"exists": True},
        }
        try:
            await self._db.commit([write])
        except FirestoreError as exc:
            if exc.status != "NOT_FOUND":
                raise

    async def _documents_of(self, uid: str) -> dict[str, int]:
        """The ids of ``uid``'s documents (up to one past the cap), for a limits document
        written before the set was kept there."""
        query = structured_query(DOCUMENTS, {"owner_uid": uid}, select=["__name__"])
        query["limit"] = self._settings.max_documents_per_user + 1
        found = await self._db.run_query(query)
        return {d.path.rsplit("/", 1)[1].split(_OWNER_MARK, 1)[0]: 0 for d in found}

    async def _missing(self, uid: str, documents: Mapping[str, Any]) -> set[str]:
        """The ids in ``documents`` whose document is gone or not ``uid``'s."""
        paths = {document_path(uid, key): key for key in documents}
        found = await self._db.get_all(list(paths)) if paths else {}
        return {
            key
            for path, key in paths.items()
            if found.get(path) is None or (found[path].data or {}).get("owner_uid") != uid
        }
