"""The move to per-user document ids (docs/adr/0800-retrieval-quality.md): a document stored
before issue 26 at ``documents/{document_id}`` moves to ``documents/{document_id}~{uid key}``
(``store._uploads.document_path``) with a ``document_id`` field, and its passages gain the
``document_key`` that deletion finds them by. Prompts and the users' limits name documents
by ``document_id`` and need nothing.

Idempotent: a document already at its new id is skipped, and a run cut short is run again.
Run once after deploying, from the repository's ``functions/`` folder, with the
deployment's settings and credentials (or ``FIRESTORE_EMULATOR_HOST``):
``venv/bin/python -m promptstream.knowledge._migrate``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from .. import _logging
from .._config import Settings
from ..store._firestore import Document, FirestoreError, FirestoreRest, encode_fields
from ..store._store import Store
from ..store._uploads import DOCUMENTS, document_path
from ._passages import PASSAGES

__all__ = ["migrate_document_ids"]

_PAGE = 100


async def migrate_document_ids(db: FirestoreRest) -> int:
    """Move every document still at an unscoped id; the number moved."""
    moved = 0
    after: str | None = None
    while True:
        query: dict[str, Any] = {
            "from": [{"collectionId": DOCUMENTS}],
            "orderBy": [{"field": {"fieldPath": "__name__"}, "direction": "ASCENDING"}],
            "limit": _PAGE,
        }
        if after is not None:
            query["startAt"] = {"values": [{"referenceValue": db.name(after)}], "before": False}
        found = await db.run_query(query)
        for doc in found:
            document_id = doc.path.rsplit("/", 1)[1]
            owner = (doc.data or {}).get("owner_uid")
            # A scoped id holds the mark a document id never does.
            if "~" in document_id or not isinstance(owner, str):
                continue
            if await _move(db, doc, owner, document_id):
                moved += 1
        if len(found) < _PAGE:
            return moved
        after = found[-1].path


async def _move(db: FirestoreRest, doc: Document, owner: str, document_id: str) -> bool:
    """The passages keyed first (so that a run cut short leaves nothing unfindable), then
    the document created at its new id and deleted at its old one in one commit."""
    new_path = document_path(owner, document_id)
    key = new_path.rsplit("/", 1)[1]
    query = {
        "from": [{"collectionId": PASSAGES}],
        "where": {
            "fieldFilter": {
                "field": {"fieldPath": "document_id"},
                "op": "EQUAL",
                "value": {"stringValue": document_id},
            }
        },
        "select": {"fields": [{"fieldPath": "owner_uid"}]},
    }
    passages = [p for p in await db.run_query(query) if (p.data or {}).get("owner_uid") == owner]
    writes = [
        {
            "update": {"name": db.name(p.path), "fields": encode_fields({"document_key": key})},
            "updateMask": {"fieldPaths": ["document_key"]},
            "currentDocument": {"exists": True},
        }
        for p in passages
    ]
    for start in range(0, len(writes), _PAGE):
        await db.commit(writes[start : start + _PAGE])
    fields = encode_fields({**(doc.data or {}), "document_id": document_id})
    try:
        await db.commit(
            [
                {
                    "update": {"name": db.name(new_path), "fields": fields},
                    "currentDocument": {"exists": False},
                },
                {"delete": db.name(doc.path), "currentDocument": {"updateTime": doc.update_time}},
            ]
        )
    except FirestoreError as exc:
        if not exc.conflict:
            raise
        # An upload since the deploy made the new one, or the old one changed: left as is.
        _logging.warn("document not moved", document_key=key)
        return False
    return True


async def _main() -> None:
    store = Store(Settings.from_env(), emulator_host=os.environ.get("FIRESTORE_EMULATOR_HOST"))
    try:
        print(f"moved {await migrate_document_ids(store.rest)} documents")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(_main())
