"""Uploads under the budget: what an upload reserves of the day's budget, and this
instance's bounds on uploads before any body is read (a user's uploads in flight here, and
bodies being read and ingested at once, whoever sends them). The limits that hold across
instances are the store's (``UploadStore.begin_upload``), under the one rule of
``store._limits.take_lease``. See docs/adr/0308-uploads-under-the-budget.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Sequence

from .._config import Settings
from .._errors import ErrorCode, HttpError
from ..store._limits import LimitExceeded

__all__ = ["INPUT_OVERHEAD", "UploadSlots", "embedding_bound", "upload_reservation"]

# Tokens an embedding input may add beyond its bytes (a tokenizer's start and end marks).
INPUT_OVERHEAD = 2


def embedding_bound(texts: Sequence[str]) -> int:
    """An upper bound on the tokens embedding ``texts`` costs: their UTF-8 bytes and the
    overhead of each input. Byte-level BPE (OpenAI's embedding models) and SentencePiece
    with byte fallback never make a token of less than one byte."""
    return sum(len(text.encode("utf-8", "surrogatepass")) + INPUT_OVERHEAD for text in texts)


def upload_reservation(size: int, settings: Settings) -> int:
    """What an upload of ``size`` bytes reserves at admission: ``embedding_bound`` of the
    passages of a UTF-8 text of that size (no more than ``MAX_DOCUMENT_CHARS`` characters
    of at most 4 bytes), each passage's overlap embedded twice.

    A text the bytes do not bound (a PDF's compressed streams, a UTF-16 file, long heading
    paths repeated on every passage) raises the reservation to its exact bound before its
    embedding, under the same rule (``UploadStore.reserve_upload``)."""
    text_bytes = min(size, 4 * settings.max_document_chars)
    step = max(1, settings.passage_chars - settings.passage_overlap_chars)
    embedded = math.ceil(text_bytes * settings.passage_chars / step)
    passages = min(settings.max_passages_per_document, math.ceil(text_bytes / step) + 1)
    return embedded + INPUT_OVERHEAD * passages


class UploadSlots:
    """This instance's bounds on uploads, checked before any body is read: each user's
    uploads in flight here (``MAX_CONCURRENT_UPLOADS``, refused at once: the rest of a
    flood never reads its body), and uploads being read and ingested at once whoever sends
    them (``MAX_UPLOADS_PER_INSTANCE``, waited for up to
    ``UPLOAD_QUEUE_TIMEOUT_SECONDS``, then 503): the memory bodies can take."""

    def __init__(self, settings: Settings) -> None:
        self._per_user = settings.max_concurrent_uploads
        self._queue_timeout = settings.upload_queue_timeout_seconds
        self._bodies = asyncio.Semaphore(settings.max_uploads_per_instance)
        self._in_flight: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def slot(self, uid: str) -> AsyncIterator[None]:
        """Hold one of ``uid``'s uploads and one of the instance's for the block. Raises
        ``LimitExceeded`` (429) or ``HttpError`` (503) before the block runs."""
        if self._in_flight.get(uid, 0) >= self._per_user:
            raise LimitExceeded(
                ErrorCode.CONCURRENCY_LIMIT,
                f"At most {self._per_user} uploads may run at once",
                retry_after=5,
            )
        self._in_flight[uid] = self._in_flight.get(uid, 0) + 1
        try:
            try:
                async with asyncio.timeout(self._queue_timeout):
                    await self._bodies.acquire()
            except TimeoutError:
                raise HttpError(
                    ErrorCode.UNAVAILABLE,
                    "The server is busy with other uploads; try again.",
                    retry_after=5,
                ) from None
            try:
                yield
            finally:
                self._bodies.release()
        finally:
            left = self._in_flight[uid] - 1
            if left:
                self._in_flight[uid] = left
            else:
                del self._in_flight[uid]
