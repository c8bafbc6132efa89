"""Firestore reads and writes: prompts, execution records and per-user limits.

Per-user limits live in ``user_limits/{uid}``: a map of stream leases (one per open
execution, so a crashed instance's lease simply expires) and the day's token count.
Opening an execution reads the prompt and the limits, then commits the lease and the
record on condition that the limits document is still the one read (its update time):
the limits hold across instances without a lock in the database, and a loser reads
again. Closing an execution releases the lease and debits the tokens in one commit.

The calls run on the bridge's event loop (``_firestore.py``); the methods here are
called from request threads and wait for them.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from ._bridge import AsyncBridge
from ._config import Settings
from ._firestore import Document, FirestoreError, FirestoreRest, encode_fields, field_path

__all__ = ["LimitExceeded", "Prompt", "Store"]

T = TypeVar("T")

PROMPTS = "prompts"
EXECUTIONS = "executions"
USER_LIMITS = "user_limits"
# Reads and commits before a user's lease is given up on (each loser reads again).
_ATTEMPTS = 20
_ID_CHARS = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    owner_uid: str
    content: str
    system_prompt: str | None
    variables: list[Any]
    public: bool


class LimitExceeded(Exception):
    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _prompt_from(doc: Document | None) -> Prompt | None:
    if doc is None or not doc.data or not isinstance(doc.data.get("content"), str):
        return None
    data = doc.data
    system_prompt = data.get("system_prompt")
    variables = data.get("variables")
    return Prompt(
        id=doc.path.rsplit("/", 1)[1],
        owner_uid=str(data.get("owner_uid") or ""),
        content=data["content"],
        system_prompt=system_prompt if isinstance(system_prompt, str) else None,
        variables=variables if isinstance(variables, list) else [],
        public=data.get("public") is True,
    )


def _seconds_to_utc_midnight(now: dt.datetime) -> int:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def _auto_id() -> str:
    """A document id as Firestore's clients make them: 20 random letters and digits."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(20))


class Store:
    def __init__(
        self,
        settings: Settings,
        bridge: AsyncBridge,
        *,
        emulator_host: str | None = None,
        credentials: Any = None,
    ) -> None:
        self._settings = settings
        self._bridge = bridge
        self._emulator_host = emulator_host
        self._credentials = credentials
        # One opening per user per process at a time: concurrent ones would read the
        # same limits and all but one would have to read again. Striped, so bounded.
        self._user_locks = tuple(threading.Lock() for _ in range(64))

    async def _make_db(self) -> FirestoreRest:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        return FirestoreRest(
            self._settings.project_id,
            session,
            emulator_host=self._emulator_host,
            credentials=self._credentials,
            timeout=self._settings.firestore_timeout_seconds,
        )

    @property
    def _db(self) -> FirestoreRest:
        return self._bridge.resource("firestore", self._make_db)

    def close(self) -> None:
        """Close the HTTP session (an instance keeps it for its whole life)."""
        self._bridge.run(self._db.close())

    def begin_execution(
        self,
        *,
        uid: str,
        prompt_id: str,
        build: Callable[[Prompt | None], tuple[dict[str, Any], T]],
    ) -> tuple[str, T]:
        """Read the prompt, check it, take a stream lease and create the execution record
        (one read of both documents, one commit).

        ``build`` sees the prompt (``None`` if absent) and returns the record's fields and
        a result for the caller; it refuses by raising, and then nothing is written.
        Raises ``LimitExceeded`` (and writes nothing) when the user is over a limit.
        """
        db = self._db
        prompt_path = f"{PROMPTS}/{prompt_id}"
        limits_path = f"{USER_LIMITS}/{uid}"
        execution_id = _auto_id()
        with self._user_locks[hash(uid) % len(self._user_locks)]:
            for attempt in range(_ATTEMPTS):
                docs = self._bridge.run(db.get_all([prompt_path, limits_path]))
                record, result = build(_prompt_from(docs.get(prompt_path)))
                limits = docs.get(limits_path) or Document(limits_path, None, None)
                writes = [
                    self._lease_write(db, limits, execution_id),
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
                try:
                    self._bridge.run(db.commit(writes))
                except FirestoreError as exc:
                    if not exc.conflict or attempt + 1 == _ATTEMPTS:
                        raise
                    # Another instance changed the limits since the read: read again.
                    time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
                    continue
                return execution_id, result
        raise AssertionError("unreachable")

    def _lease_write(self, db: FirestoreRest, limits: Document, execution_id: str) -> Any:
        """The limits document with one more lease, on condition that it is unchanged;
        raises ``LimitExceeded`` instead when the user is over a limit."""
        settings = self._settings
        now = dt.datetime.now(dt.UTC)
        now_ms = int(time.time() * 1000)
        day = now.date().isoformat()
        lease_ms = settings.stream_lease_seconds * 1000
        data = limits.data or {}
        leases = {
            key: started
            for key, started in (data.get("leases") or {}).items()
            if isinstance(started, int) and now_ms - started < lease_ms
        }
        tokens = int(data.get("tokens_today") or 0) if data.get("day") == day else 0
        if tokens >= settings.daily_token_budget:
            raise LimitExceeded(
                "budget_exceeded",
                f"Daily token budget of {settings.daily_token_budget} is used up",
                _seconds_to_utc_midnight(now),
            )
        if len(leases) >= settings.max_concurrent_streams:
            raise LimitExceeded(
                "concurrency_limit",
                f"At most {settings.max_concurrent_streams} executions may run at once",
                5,
            )
        leases[execution_id] = now_ms
        return {
            "update": {
                "name": db.name(limits.path),
                "fields": encode_fields({"leases": leases, "day": day, "tokens_today": tokens}),
            },
            "currentDocument": (
                {"updateTime": limits.update_time}
                if limits.update_time is not None
                else {"exists": False}
            ),
        }

    def finish_execution(
        self, *, uid: str, execution_id: str, fields: dict[str, Any], tokens: int
    ) -> None:
        """Finalise the record and release the lease, debiting ``tokens``, in one commit."""
        db = self._db
        writes = [
            {
                "update": {
                    "name": db.name(f"{EXECUTIONS}/{execution_id}"),
                    "fields": encode_fields(fields),
                },
                "updateMask": {"fieldPaths": [field_path(key) for key in fields]},
                "updateTransforms": [
                    {"fieldPath": "finished_at", "setToServerValue": "REQUEST_TIME"}
                ],
                "currentDocument": {"exists": True},
            },
            {
                # In the mask, absent from the fields: the lease is deleted.
                "update": {"name": db.name(f"{USER_LIMITS}/{uid}"), "fields": {}},
                "updateMask": {"fieldPaths": [field_path("leases", execution_id)]},
                "updateTransforms": [
                    {
                        "fieldPath": "tokens_today",
                        "increment": {"integerValue": str(max(0, tokens))},
                    }
                ],
                "currentDocument": {"exists": True},
            },
        ]
        self._bridge.run(db.commit(writes))
