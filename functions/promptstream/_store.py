"""Firestore reads and writes: prompts, execution records and per-user limits.

Per-user limits live in ``user_limits/{uid}``: a map of stream leases (one per open
execution, so a crashed instance's lease simply expires) and the day's token count.
Opening an execution checks and takes a lease in one transaction, so the limits hold
across instances; closing it releases the lease and debits the tokens in one batch.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from ._config import Settings

__all__ = ["LimitExceeded", "Prompt", "Store"]

T = TypeVar("T")

PROMPTS = "prompts"
EXECUTIONS = "executions"
USER_LIMITS = "user_limits"


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


def _prompt_from(snap: Any) -> Prompt | None:
    data = snap.to_dict() if snap is not None and snap.exists else None
    if not data or not isinstance(data.get("content"), str):
        return None
    system_prompt = data.get("system_prompt")
    variables = data.get("variables")
    return Prompt(
        id=snap.id,
        owner_uid=str(data.get("owner_uid") or ""),
        content=data["content"],
        system_prompt=system_prompt if isinstance(system_prompt, str) else None,
        variables=variables if isinstance(variables, list) else [],
        public=data.get("public") is True,
    )


def _seconds_to_utc_midnight(now: dt.datetime) -> int:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


class Store:
    def __init__(self, client: firestore.Client, settings: Settings) -> None:
        self._db = client
        self._settings = settings
        # Firestore transactions lock pessimistically: concurrent read-then-write
        # transactions on one user_limits doc wait on each other until a lock timeout
        # (the emulator took 44 s for six at once). One transaction per user per
        # process at a time; striped so the table stays bounded.
        self._user_locks = tuple(threading.Lock() for _ in range(64))

    def begin_execution(
        self,
        *,
        uid: str,
        prompt_id: str,
        build: Callable[[Prompt | None], tuple[dict[str, Any], T]],
    ) -> tuple[str, T]:
        """Read the prompt, check it, take a stream lease and create the execution record,
        all in one transaction (two round trips: one read of both documents, one commit).

        ``build`` sees the prompt (``None`` if absent) and returns the record's fields and
        a result for the caller; it refuses by raising, and then nothing is written.
        Raises ``LimitExceeded`` (and writes nothing) when the user is over a limit.
        """
        settings = self._settings
        prompt_ref = self._db.collection(PROMPTS).document(prompt_id)
        exec_ref = self._db.collection(EXECUTIONS).document()
        limits_ref = self._db.collection(USER_LIMITS).document(uid)
        now = dt.datetime.now(dt.UTC)
        now_ms = int(time.time() * 1000)
        day = now.date().isoformat()
        lease_ms = settings.stream_lease_seconds * 1000

        @firestore.transactional
        def take_lease(transaction: firestore.Transaction) -> T:
            snaps = {
                snap.reference.path: snap for snap in transaction.get_all([prompt_ref, limits_ref])
            }
            record, result = build(_prompt_from(snaps.get(prompt_ref.path)))
            limits = snaps.get(limits_ref.path)
            data = (limits.to_dict() if limits is not None and limits.exists else None) or {}
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
            leases[exec_ref.id] = now_ms
            transaction.set(limits_ref, {"leases": leases, "day": day, "tokens_today": tokens})
            transaction.create(
                exec_ref,
                {
                    **record,
                    "owner_uid": uid,
                    "status": "streaming",
                    "created_at": firestore.SERVER_TIMESTAMP,
                },
            )
            return result

        with self._user_locks[hash(uid) % len(self._user_locks)]:
            result = take_lease(self._db.transaction(max_attempts=20))
        return str(exec_ref.id), result

    def finish_execution(
        self, *, uid: str, execution_id: str, fields: dict[str, Any], tokens: int
    ) -> None:
        """Finalise the record and release the lease, debiting ``tokens``, in one batch."""
        batch = self._db.batch()
        batch.update(
            self._db.collection(EXECUTIONS).document(execution_id),
            {**fields, "finished_at": firestore.SERVER_TIMESTAMP},
        )
        batch.update(
            self._db.collection(USER_LIMITS).document(uid),
            {
                FieldPath("leases", execution_id).to_api_repr(): firestore.DELETE_FIELD,
                "tokens_today": firestore.Increment(max(0, tokens)),
            },
        )
        batch.commit()
