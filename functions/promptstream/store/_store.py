"""Firestore reads and writes: prompts, execution records and per-user limits.

Opening an execution reads the prompt and the user's limits, then commits the lease and
the record on condition that the limits document is still the one read (its update
time): the limits hold across instances without a lock in the database, and a loser
reads the limits again. The caller's upstream call starts as the commit goes out
(docs/adr/1000-one-round-trip-before-the-upstream.md). Closing an execution releases
the lease and debits the tokens in one commit, on condition that the record is still
``streaming``. See docs/adr/0002-conditional-commits.md.

A stream lease counts while its execution shows life; when a limit refuses, the silent
ones are read and the dead ones repaired in the opening's commit, and ``repair_execution``
repairs one record alone (docs/adr/0601-leases-that-prove-alive.md).

Uploads take their own leases in the same document by the same rule: ``_uploads``, under
the same per-user lock (``user_lock``) and with the same conditional write
(``limits_write``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from .._config import Settings
from .._ids import uid_key
from ._firestore import Document, FirestoreError, FirestoreRest, encode_fields, field_path
from ._limits import OPEN_TAT, STREAMS, LimitExceeded, opening_rate, take_lease, take_rate
from ._prompts import Prompt, prompt_from
from ._records import EXECUTIONS, record_write, repairs_at_admission
from ._versions import as_asked, version_path

__all__ = [
    "EXECUTIONS",
    "USER_LIMITS",
    "Store",
    "auto_id",
    "limits_write",
    "sent_path",
]

T = TypeVar("T")
R = TypeVar("R")

PROMPTS = "prompts"
USER_LIMITS = "user_limits"


def sent_path(execution_id: str) -> str:
    """What an execution sent upstream as its own turn (the first turn's system prompt and
    context, the user message with its passages): beside the record, not in it, so that
    history reads stay small and the record's 1 MiB holds its output
    (docs/adr/0700-conversations.md)."""
    return f"{EXECUTIONS}/{execution_id}/input/sent"


_ID_CHARS = string.ascii_letters + string.digits


def auto_id() -> str:
    """A document id as Firestore's clients make them: 20 random letters and digits.

    From one read of the system's random source (not one per character); bytes past the
    largest multiple of 62 are dropped, so every character is equally likely."""
    chars: list[str] = []
    while len(chars) < 20:
        chars.extend(_ID_CHARS[b % 62] for b in secrets.token_bytes(32) if b < 248)
    return "".join(chars[:20])


class _UserLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        # Holding it or waiting for it: the entry goes when none is left.
        self.users = 0


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
        # One write of a user's limits document per instance at a time (an opening, an
        # upload): concurrent ones would read the same document and all but one lose the
        # race, and a lost opening may have its upstream call at work already. One lock per
        # user while someone holds or waits for it, so bounded and never another user's.
        self._user_locks: dict[str, _UserLock] = {}
        self._opening_rate = opening_rate(settings)
        # Each open record's update time as this instance last wrote it: its finish
        # commits on that condition without reading the record first.
        self._record_times: dict[str, str] = {}

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

    @contextlib.asynccontextmanager
    async def user_lock(self, uid: str) -> AsyncIterator[None]:
        """Hold ``uid``'s openings and uploads on this instance to one at a time."""
        entry = self._user_locks.get(uid)
        if entry is None:
            entry = self._user_locks[uid] = _UserLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._user_locks[uid]

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
        version: int | None = None,
        label: str | None = None,
        sent: Callable[[T], dict[str, Any]] | None = None,
        admitted: Callable[[str, T], None] | None = None,
    ) -> tuple[str, T]:
        """Read the prompt, check it, take a stream lease and create the execution record
        (one read of both documents, one commit).

        ``build`` sees the prompt (``None`` if absent) as its ``version``, or the version
        its ``label`` names, or its latest, and returns the record's fields, the tokens to
        reserve against the day's budget until the execution finishes, and a result for
        the caller; it refuses by raising, and then nothing is written. A version named by
        number is read with the two documents; one a label names, after them (unless it
        is the latest). Raises ``HttpError`` for a version the prompt lacks.
        ``sent`` gives the fields of its ``sent_path`` document, created in the same commit.
        A record without a ``conversation_id`` starts its own: the execution's id. Raises
        ``LimitExceeded`` when the user is over a limit: nothing is written then, but the
        repair of the user's dead executions, if it found any.

        ``admitted`` is called (once, with the execution's id and ``build``'s result) when
        the read has shown the request admissible, just before its commit is sent: the
        caller's work overlaps the commit (docs/adr/1000-one-round-trip-before-the-upstream.md).
        A commit that loses its race reads the limits document alone again and commits
        again (the prompt and ``build``'s result stay those of the first read); when that
        read refuses, ``LimitExceeded`` is raised all the same, after ``admitted``.
        """
        db = self._db
        prompt_path = f"{PROMPTS}/{prompt_id}"
        # Keyed by an encoding of the uid (a uid may hold "/" or be "__x__"); the raw uid
        # is stored beside it, for the rules and for people (docs/adr/0303-uid-keys.md).
        limits_path = f"{USER_LIMITS}/{uid_key(uid)}"
        execution_id = auto_id()
        built: tuple[dict[str, Any], int, T] | None = None
        told = False

        async def first_read() -> tuple[dict[str, Any], int, T, Document]:
            paths = [prompt_path, limits_path]
            named = version_path(prompt_path, version) if version is not None else None
            if named is not None:
                paths.append(named)
            docs = await db.get_all(paths)
            versions = {named: docs.get(named)} if named is not None else {}
            prompt = prompt_from(docs.get(prompt_path))
            if prompt is not None and prompt.readable_by(uid):
                # Only for a prompt the caller may read: another's private prompt is
                # refused by build, as absent, whatever version it names.
                prompt = await as_asked(db, prompt_path, prompt, version, label, versions)
            return (*build(prompt), docs.get(limits_path) or Document(limits_path, None, None))

        async def step() -> tuple[list[dict[str, Any]], tuple[str, T] | LimitExceeded]:
            nonlocal built, told
            if built is None:
                record, reserve, result, limits = await first_read()
                built = (record, reserve, result)
            else:
                # A lost race: the prompt and the build stand (the upstream may be at work
                # on them already); only the limits are decided again.
                record, reserve, result = built
                limits = (await db.get_all([limits_path])).get(limits_path) or Document(
                    limits_path, None, None
                )
            decided = await self._admit(limits, uid, execution_id, reserve)
            if isinstance(decided[1], LimitExceeded):
                return decided[0], decided[1]
            writes = [*decided[0], self._record_write(execution_id, uid, record)]
            if sent is not None:
                writes.append(
                    {
                        "update": {
                            "name": db.name(sent_path(execution_id)),
                            "fields": encode_fields({**sent(result), "owner_uid": uid}),
                        },
                        "currentDocument": {"exists": False},
                    }
                )
            if admitted is not None and not told:
                told = True
                admitted(execution_id, result)
            return writes, (execution_id, result)

        async with self.user_lock(uid):
            opened, times = await db.committed(step)
        if isinstance(opened, LimitExceeded):
            raise opened
        if times and times[-1] is not None:
            self._record_times[execution_id] = times[-1]
        return opened

    async def _admit(
        self, limits: Document, uid: str, execution_id: str, reserve: int
    ) -> tuple[list[dict[str, Any]], LimitExceeded | None]:
        """The limits' writes for one more stream lease of ``execution_id`` on ``limits``
        as read (and the repairs of dead executions that made room), or the refusal and
        the repairs to commit alone."""
        db = self._db
        now = dt.datetime.now(dt.UTC)
        data = limits.data
        repairs: list[dict[str, Any]] = []
        try:
            lease = take_lease(data, execution_id, now, self._settings, reserve)
        except LimitExceeded:
            # Only now, so that an opening stays one read: some of the leases that
            # refuse may belong to executions whose instance died.
            repaired = await repairs_at_admission(db, self._settings, data, now)
            if repaired is None:
                raise
            data, repairs = repaired
            try:
                lease = take_lease(data, execution_id, now, self._settings, reserve)
            except LimitExceeded as refused:
                # Refused all the same: the repair is committed alone, then the refusal.
                kept = {key: data[key] for key in (STREAMS, "reserved", "day", "tokens_today")}
                return [*repairs, limits_write(db, limits, kept)], refused
        # The user's rate, in the same commit (docs/adr/0309-per-user-rates.md).
        lease.update(take_rate(data, OPEN_TAT, now, self._opening_rate))
        # Only these fields: what uploads and their rate keep there stays as it is
        # (ADR 0308, 0309).
        return [*repairs, limits_write(db, limits, {**lease, "uid": uid})], None

    def _record_write(self, execution_id: str, uid: str, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "update": {
                "name": self._db.name(f"{EXECUTIONS}/{execution_id}"),
                "fields": encode_fields(
                    {
                        "conversation_id": execution_id,
                        **record,
                        "owner_uid": uid,
                        "status": "streaming",
                    }
                ),
            },
            # alive_at: its first sign of life, which checkpoints refresh (ADR 0601).
            "updateTransforms": [
                {"fieldPath": "created_at", "setToServerValue": "REQUEST_TIME"},
                {"fieldPath": "alive_at", "setToServerValue": "REQUEST_TIME"},
            ],
            "currentDocument": {"exists": False},
        }

    def note_record_time(self, execution_id: str, update_time: str | None) -> None:
        """The record's update time after a write of this instance (a checkpoint), the
        condition of its finish; None when the execution is done with."""
        if update_time is None:
            self._record_times.pop(execution_id, None)
        else:
            self._record_times[execution_id] = update_time

    async def finish_execution(
        self, *, uid: str, execution_id: str, fields: dict[str, Any], tokens: int
    ) -> bool:
        """Finalise the record and release the lease and its reservation, debiting
        ``tokens``, in one commit, on condition that the record is still ``streaming``.
        False, with nothing written or debited, when it is not: the repair judged the
        execution dead and finished it ``interrupted`` first (ADR 0601).

        The condition is the record's update time: the one this instance last wrote,
        with no read; when another write came since, the record is read first."""
        db = self._db
        path = f"{EXECUTIONS}/{execution_id}"
        release = self._release_write(uid, execution_id, tokens)
        known = self._record_times.pop(execution_id, None)
        if known is not None:
            try:
                await db.commit([record_write(db, execution_id, fields, known), release])
                return True
            except FirestoreError as exc:
                if not exc.conflict:
                    raise

        async def step() -> tuple[list[dict[str, Any]], bool]:
            found = (await db.get_all([path]))[path]
            if found.data is None or found.data.get("status") != "streaming":
                return [], False
            return [record_write(db, execution_id, fields, found.update_time), release], True

        return await self._committed(step)

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

    async def update_sent(self, *, execution_id: str, fields: dict[str, Any]) -> None:
        """Update fields of the execution's ``sent_path`` document (its user message once
        the passages retrieval found are in it)."""
        write = {
            "update": {
                "name": self._db.name(sent_path(execution_id)),
                "fields": encode_fields(fields),
            },
            "updateMask": {"fieldPaths": [field_path(key) for key in fields]},
            "currentDocument": {"exists": True},
        }
        await self._db.commit([write])

    async def finish_record(self, *, execution_id: str, fields: dict[str, Any]) -> None:
        """Update the record alone (the short version, after ``release``)."""
        await self._db.commit([record_write(self._db, execution_id, fields, None)])

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

    async def _committed(self, step: Callable[[], Awaitable[tuple[list[dict[str, Any]], R]]]) -> R:
        """``FirestoreRest.committed``: the one retry of the per-user limits
        (docs/adr/0002-conditional-commits.md)."""
        return (await self._db.committed(step))[0]


def limits_write(db: FirestoreRest, limits: Document, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` of the limits document, the others left as they are, on condition that
    it is still the one read."""
    return {
        "update": {"name": db.name(limits.path), "fields": encode_fields(fields)},
        "updateMask": {"fieldPaths": [field_path(key) for key in fields]},
        "currentDocument": (
            {"updateTime": limits.update_time}
            if limits.update_time is not None
            else {"exists": False}
        ),
    }
