"""The repair of executions whose instance died mid-stream: lazily, when the owner resumes
or reads one (``Repair.stale_execution``), and every minute by a scheduled function
(``Repair.sweep``, run by ``sweep_streams``), so that no record stays ``streaming`` past
``LEASE_TTL_SECONDS`` and the function's timeout. (At an admission refused by a limit, the
store repairs the user's dead executions in the opening's commit.)

docs/adr/0601-leases-that-prove-alive.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from typing import Any

from .. import _logging as logger
from .._config import Settings
from ..store._records import repair_execution, silent_executions
from ..store._store import Store

__all__ = ["Repair", "sweep_streams"]


class Repair:
    """Finishes silent executions ``interrupted`` (one conditional commit each)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store

    async def stale_execution(self, uid: str, execution_id: str) -> dict[str, Any] | None:
        """The record of ``uid``'s execution, repaired first when it is ``streaming`` and
        silent past its allowance; None when it is absent or another user's (the same
        answer for both)."""
        record, ended = await repair_execution(
            self._store.rest, self._settings, owner_uid=uid, execution_id=execution_id
        )
        if ended:
            logger.info("execution repaired", execution_id=execution_id, uid=uid)
        return record

    async def sweep(self, now: dt.datetime) -> int:
        """Repair the records still ``streaming`` that a query finds silent at ``now``
        (up to ``REPAIR_SWEEP_LIMIT`` of each kind a run); how many it ended. One that
        turns out alive on its second read is left as it is."""
        settings = self._settings
        cutoff = now - dt.timedelta(seconds=settings.lease_ttl_seconds)
        found = await silent_executions(self._store.rest, cutoff, settings.repair_sweep_limit)
        repaired = 0
        for execution_id, owner in found:
            try:
                _, ended = await repair_execution(
                    self._store.rest, settings, owner_uid=owner, execution_id=execution_id
                )
            except Exception as exc:
                # One record that cannot be repaired must not stop the others'.
                logger.error("repair failed", execution_id=execution_id, error=repr(exc))
                continue
            repaired += ended
        logger.info("repair sweep", found=len(found), repaired=repaired)
        return repaired


def sweep_streams(settings: Settings) -> int:
    """One run of the sweep on a loop and a Firestore session of its own (the scheduled
    function is a plain synchronous handler): how many records it ended."""

    async def run() -> int:
        store = Store(settings, emulator_host=os.environ.get("FIRESTORE_EMULATOR_HOST"))
        try:
            return await Repair(settings, store).sweep(dt.datetime.now(dt.UTC))
        finally:
            await store.close()

    return asyncio.run(run())
