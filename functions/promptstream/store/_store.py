"""Firestore reads and writes: prompts, execution records and per-user limits.

Opening an execution reads the prompt and the user's limits, then commits the lease and
the record on condition that the limits document is still the one read (its update
time): the limits hold across instances without a lock in the database, and a loser
reads again. Closing an execution releases the lease and debits the tokens in one
commit. See docs/adr/0002-conditional-commits.md.

Uploads take their own leases in the same document by the same rule, and claim a new
document id there in the same commit; settling one releases it and debits its tokens
(docs/adr/0308-uploads-under-the-budget.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import secrets
import string
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp

from .._config import Settings
from .._errors import ErrorCode, HttpError
from .._ids import uid_key
from ._firestore import (
    Document,
    FirestoreError,
    FirestoreRest,
    encode_fields,
    field_path,
    structured_query,
)
from ._limits import (
    OPEN_TAT,
    UPLOAD_TAT,
    UPLOADS,
    LimitExceeded,
    claim_document,
    opening_rate,
    take_lease,
    take_rate,
    upload_rate,
)
from ._prompts import Prompt, prompt_from

__all__ = ["DOCUMENTS", "Store", "auto_id", "document_path"]

T = TypeVar("T")
R = TypeVar("R")

PROMPTS = "prompts"
EXECUTIONS = "executions"
USER_LIMITS = "user_limits"
# Knowledge-base documents (written by ingestion; the limits document counts them).
DOCUMENTS = "documents"
# Between a document id and its owner's key in a document's Firestore id: never in a
# document id, so the first one splits the two (docs/adr/0800-retrieval-quality.md).
_OWNER_MARK = "~"
# Reads and commits before a user's lease is given up on (each loser reads again).
_ATTEMPTS = 20
_ID_CHARS = string.ascii_letters + string.digits


def document_path(uid: str, document_id: str) -> str:
    """Where ``uid``'s document ``document_id`` lives: ids are scoped per user, so two
    users' ``handbook`` are two documents and one user's ids say nothing of another's."""
    return f"{DOCUMENTS}/{document_id}{_OWNER_MARK}{uid_key(uid)}"


def auto_id() -> str:
    """A document id as Firestore's clients make them: 20 random letters and digits.

    From one read of the system's random source (not one per character); bytes past the
    largest multiple of 62 are dropped, so every character is equally likely."""
    chars: list[str] = []
    while len(chars) < 20:
        chars.extend(_ID_CHARS[b % 62] for b in secrets.token_bytes(32) if b < 248)
    return "".join(chars[:20])


class Store:
    """The relay's Firestore calls, on the running loop. The HTTP session is made on
    first use (it belongs to the loop that serves the requests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        emulator_host: str | None = None,
        credentials: Any = None,
    ) -> None:
        self._settings = settings
        self._emulator_host = emulator_host
        self._credentials = credentials
        self._rest: FirestoreRest | None = None
        # One opening per user per instance at a time: concurrent ones would read the
        # same limits and all but one would have to read again. Striped, so bounded. (The
        # handlers' turn holds a user to one already; this holds callers without one.)
        self._user_locks = tuple(asyncio.Lock() for _ in range(64))
        self._opening_rate = opening_rate(settings)
        self._upload_rate = upload_rate(settings)

    @property
    def rest(self) -> FirestoreRest:
        """The REST client of this store (retrieval and ingestion make their own calls
        on it)."""
        return self._db

    @property
    def _db(self) -> FirestoreRest:
        if self._rest is None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
            self._rest = FirestoreRest(
                self._settings.project_id,
                session,
                emulator_host=self._emulator_host,
                credentials=self._credentials,
                timeout=self._settings.firestore_timeout_seconds,
            )
        return self._rest

    async def close(self) -> None:
        """Close the HTTP session (an instance keeps it for its whole life)."""
        if self._rest is not None:
            await self._rest.close()
            self._rest = None

    async def begin_execution(
        self,
        *,
        uid: str,
        prompt_id: str,
        build: Callable[[Prompt | None], tuple[dict[str, Any], int, T]],
    ) -> tuple[str, T]:
        """Read the prompt, check it, take a stream lease and create the execution record
        (one read of both documents, one commit).

        ``build`` sees the prompt (``None`` if absent) and returns the record's fields, the
        tokens to reserve against the day's budget until the execution finishes, and a
        result for the caller; it refuses by raising, and then nothing is written.
        Raises ``LimitExceeded`` (and writes nothing) when the user is over a limit.
        """
        db = self._db
        prompt_path = f"{PROMPTS}/{prompt_id}"
        # Keyed by an encoding of the uid (a uid may hold "/" or be "__x__"); the raw uid
        # is stored beside it, for the rules and for people (docs/adr/0303-uid-keys.md).
        limits_path = f"{USER_LIMITS}/{uid_key(uid)}"
        execution_id = auto_id()

        async def step() -> tuple[list[dict[str, Any]], tuple[str, T]]:
            docs = await db.get_all([prompt_path, limits_path])
            record, reserve, result = build(prompt_from(docs.get(prompt_path)))
            limits = docs.get(limits_path) or Document(limits_path, None, None)
            now = dt.datetime.now(dt.UTC)
            lease = take_lease(limits.data, execution_id, now, self._settings, reserve)
            # The user's rate, in the same commit (docs/adr/0309-per-user-rates.md).
            lease.update(take_rate(limits.data, OPEN_TAT, now, self._opening_rate))
            fields = {**lease, "uid": uid}
            writes: list[dict[str, Any]] = [
                # Only these fields: what uploads and their rate keep there stays as it is
                # (ADR 0308, 0309).
                self._limits_write(limits, fields),
                {
                    "update": {
                        "name": db.name(f"{EXECUTIONS}/{execution_id}"),
                        "fields": encode_fields(
                            {**record, "owner_uid": uid, "status": "streaming"}
                        ),
                    },
                    "updateTransforms": [
                        {"fieldPath": "created_at", "setToServerValue": "REQUEST_TIME"}
                    ],
                    "currentDocument": {"exists": False},
                },
            ]
            return writes, (execution_id, result)

        async with self._user_locks[hash(uid) % len(self._user_locks)]:
            return await self._committed(step)

    async def finish_execution(
        self, *, uid: str, execution_id: str, fields: dict[str, Any], tokens: int
    ) -> None:
        """Finalise the record and release the lease and its reservation, debiting
        ``tokens``, in one commit."""
        db = self._db
        await db.commit(
            [
                self._record_write(execution_id, fields),
                self._release_write(uid, execution_id, tokens),
            ]
        )

    async def release(self, *, uid: str, execution_id: str, tokens: int) -> bool:
        """Release the lease and its reservation and debit ``tokens``, alone: for when the
        final commit failed, so that the user's limits never stay taken. False (and
        nothing written) when the lease is already gone: a commit that failed in transit
        may have been applied, and the debit must not be made twice. Conditional on the
        limits document as read, like an opening."""
        db = self._db
        path = f"{USER_LIMITS}/{uid_key(uid)}"

        async def step() -> tuple[list[dict[str, Any]], bool]:
            doc = (await db.get_all([path])).get(path)
            leases = (doc.data or {}).get("leases") if doc is not None else None
            if doc is None or not isinstance(leases, dict) or execution_id not in leases:
                return [], False
            write = self._release_write(uid, execution_id, tokens)
            write["currentDocument"] = {"updateTime": doc.update_time}
            return [write], True

        return await self._committed(step)

    async def finish_record(self, *, execution_id: str, fields: dict[str, Any]) -> None:
        """Update the record alone (the short version, after ``release``)."""
        await self._db.commit([self._record_write(execution_id, fields)])

    def _record_write(self, execution_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "update": {
                "name": self._db.name(f"{EXECUTIONS}/{execution_id}"),
                "fields": encode_fields(fields),
            },
            "updateMask": {"fieldPaths": [field_path(key) for key in fields]},
            "updateTransforms": [{"fieldPath": "finished_at", "setToServerValue": "REQUEST_TIME"}],
            "currentDocument": {"exists": True},
        }

    def _release_write(self, uid: str, execution_id: str, tokens: int) -> dict[str, Any]:
        return {
            # In the mask, absent from the fields: the lease and the reservation go.
            "update": {"name": self._db.name(f"{USER_LIMITS}/{uid_key(uid)}"), "fields": {}},
            "updateMask": {
                "fieldPaths": [
                    field_path("leases", execution_id),
                    field_path("reserved", execution_id),
                ]
            },
            "updateTransforms": [
                {"fieldPath": "tokens_today", "increment": {"integerValue": str(max(0, tokens))}}
            ],
            "currentDocument": {"exists": True},
        }

    # -- uploads (docs/adr/0308-uploads-under-the-budget.md) ---------------------------

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
            return [self._limits_write(limits, fields)], (upload_id, owned[document_id])

        async with self._user_locks[hash(uid) % len(self._user_locks)]:
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
            return [self._limits_write(limits, lease)], None

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
            fields: dict[str, Any] = {}
            transforms = []
            day = dt.datetime.now(dt.UTC).date().isoformat()
            if data.get("day") == day:
                debit = {"integerValue": str(max(0, tokens))}
                transforms.append({"fieldPath": "tokens_today", "increment": debit})
            else:
                fields = {"day": day, "tokens_today": max(0, tokens)}
                paths += list(fields)
            write = {
                "update": {"name": db.name(path), "fields": encode_fields(fields)},
                "updateMask": {"fieldPaths": paths},
                "updateTransforms": transforms,
                "currentDocument": {"updateTime": limits.update_time},
            }
            return [write], True

        return await self._committed(step)

    async def _committed(self, step: Callable[[], Awaitable[tuple[list[dict[str, Any]], R]]]) -> R:
        """``step`` reads, decides and returns its writes (conditional on what it read) with
        its result; they are committed, and when another writer changed a document since
        the read (another request, another instance), ``step`` runs again after a growing
        jittered wait. No writes: the result alone, nothing committed. The one retry of
        the per-user limits (docs/adr/0002-conditional-commits.md)."""
        for attempt in range(_ATTEMPTS):
            writes, result = await step()
            if not writes:
                return result
            try:
                await self._db.commit(writes)
            except FirestoreError as exc:
                if not exc.conflict or attempt + 1 == _ATTEMPTS:
                    raise
                await _backoff(attempt)
                continue
            return result
        raise AssertionError("unreachable")

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

    def _limits_write(self, limits: Document, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` of the limits document, the others left as they are, on condition
        that it is still the one read."""
        return {
            "update": {"name": self._db.name(limits.path), "fields": encode_fields(fields)},
            "updateMask": {"fieldPaths": [field_path(key) for key in fields]},
            "currentDocument": (
                {"updateTime": limits.update_time}
                if limits.update_time is not None
                else {"exists": False}
            ),
        }

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


async def _backoff(attempt: int) -> None:
    """Jittered and growing: rivals on one limits document spread out."""
    await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
