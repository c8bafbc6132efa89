"""``ingest_document``: upload (POST) and delete (DELETE) a knowledge-base document.

``POST ?document_id=&title=&filename=`` with the file's raw bytes as the body and its
``Content-Type`` (``text/plain``, ``text/markdown``, ``application/pdf``; anything else is
told apart by the PDF signature and the file name). Metadata travels in the query string
so the body can be the file itself: no multipart parser, and the size cap is the body's
size. ``document_id`` is optional (one is made); uploading to an existing id of yours
replaces that document. The answer, once the passages are searchable:
``{document_id, generation, passage_count, tokens, status}``.

``DELETE ?document_id=`` deletes the caller's document and its passages.

An upload is admitted under the same budget rule as an execution: a lease and a
reservation from its byte size, taken before its body is read, settled with the real
embedding tokens (also when it failed after embedding); a limit on a user's uploads in
flight; the cap on a user's documents claimed in the same commit. See
docs/adr/0200-retrieval-design.md and docs/adr/0308-uploads-under-the-budget.md.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from starlette.types import Receive, Scope, Send

from .. import _logging as logger
from .._errors import ClientGone, DocumentReason, ErrorCode, HttpError, OpenRouterError
from .._sanitize import plain_label
from ..knowledge._ingest import IngestError, delete_document, ingest
from ..knowledge._passages import check_document_id
from ..run._uploads import embedding_bound, upload_reservation
from ..store._limits import LimitExceeded
from ..store._store import auto_id
from ._asgi import header, send_error, send_json
from ._endpoint import endpoint, read_body, too_large
from ._service import Service

__all__ = ["documents_app"]

_MAX_TITLE = 200
_MAX_FILENAME = 255
_MAX_CONTENT_TYPE = 100


async def _caller(service: Service, scope: Scope) -> str:
    """The checks every method shares: configuration, then the ID token (whose check
    holds the emulator-auth guard)."""
    if not service.api_key:
        raise HttpError(
            ErrorCode.CONFIGURATION_ERROR, "OPENROUTER_API_KEY is not configured on the server."
        )
    return await service.auth.uid(header(scope, b"authorization"))


def _query(scope: Scope) -> dict[str, str]:
    raw = bytes(scope.get("query_string") or b"").decode("latin-1")
    try:
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise HttpError(ErrorCode.INVALID_REQUEST, "The query string is malformed.") from None
    return dict(pairs)


def _document_id(value: str | None) -> str:
    if value is None or value == "":
        return auto_id()
    try:
        return check_document_id(value)
    except ValueError as exc:
        raise HttpError(ErrorCode.INVALID_REQUEST, f"document_id: {exc}") from None


def _bounded(query: dict[str, str], name: str, limit: int) -> str:
    value = plain_label(query.get(name, ""))
    if len(value) > limit:
        raise HttpError(ErrorCode.INVALID_REQUEST, f"{name} is limited to {limit} characters")
    return value


def _refusal(exc: IngestError, document_id: str, redact: Callable[[str], str]) -> HttpError:
    details = {"reason": exc.code, "document_id": document_id}
    message = exc.message[:1].upper() + exc.message[1:]
    cause = exc.__cause__
    if exc.code is DocumentReason.EMBEDDING_FAILED and isinstance(cause, OpenRouterError):
        return HttpError(cause.code, redact(message), details, retry_after=cause.retry_after)
    if isinstance(cause, LimitExceeded):
        return HttpError(cause.code, message, details, retry_after=cause.retry_after)
    return HttpError(exc.code.code, message, details)


class _Meter:
    """One admitted upload's account with the budget: its lease, what it reserved, and
    what it is to be charged when it is settled."""

    def __init__(self, service: Service, uid: str, document_id: str, reserve: int) -> None:
        self.service = service
        self.uid = uid
        self.document_id = document_id
        self.reserved = reserve
        self.upload_id = ""
        self.stamp = 0
        # An upper bound of the embedding once it is about to start (0 before): what a
        # cancelled upload is charged, its real tokens being unknown.
        self.bound = 0
        self.tokens: int | None = None
        self._settling: asyncio.Task[None] | None = None

    async def before_embedding(self, texts: Sequence[str]) -> None:
        """The exact bound of the texts, reserved first when over the reservation."""
        bound = embedding_bound(texts)
        if bound > self.reserved:
            try:
                await self.service.upload_store.reserve_upload(
                    uid=self.uid, upload_id=self.upload_id, reserve=bound
                )
            except LimitExceeded as exc:
                raise IngestError(DocumentReason.BUDGET_EXCEEDED, exc.message) from exc
            self.reserved = bound
        self.bound = bound

    async def settle(self) -> None:
        """Release the lease and its reservation and charge the tokens, once; shielded, so
        that a cancellation never cuts the commit in two."""
        if self._settling is None:
            # A task of its own, not a TaskGroup's: it must outlive the cancellation of
            # the coroutine that awaits it.
            self._settling = asyncio.get_running_loop().create_task(self._settle())
        await asyncio.shield(self._settling)

    async def _settle(self) -> None:
        tokens = self.bound if self.tokens is None else self.tokens
        try:
            settled = await self.service.upload_store.settle_upload(
                uid=self.uid,
                upload_id=self.upload_id,
                document_id=self.document_id,
                stamp=self.stamp,
                tokens=tokens,
            )
        except Exception:
            # The lease and its reservation lapse after UPLOAD_LEASE_SECONDS; these
            # tokens are not debited.
            self.service.executions.log_failure("upload not settled")
            return
        if not settled:
            logger.warn("upload lease already gone", uid=self.uid, tokens=tokens)


async def _upload(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
    settings = service.settings
    limit = settings.max_document_bytes
    try:
        length = header(scope, b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > limit:
            raise too_large(limit)  # before the token: nothing of the body is read
        uid = await _caller(service, scope)
        service.rates.upload(uid)  # the front bucket of the user's upload rate, before the body
        query = _query(scope)
        document_id = _document_id(query.get("document_id"))
        filename = _bounded(query, "filename", _MAX_FILENAME)
        title = _bounded(query, "title", _MAX_TITLE) or filename or document_id
        content_type = (header(scope, b"content-type") or "")[:_MAX_CONTENT_TYPE] or None
    except HttpError as exc:
        # The body is unread: close the connection rather than drain it.
        await send_error(send, exc, close=True)
        return
    # Everything up to the lease happens before the body is read, so that a refused upload
    # costs its head only. Without a declared length the reservation is for the cap.
    meter = _Meter(service, uid, document_id, upload_reservation(declared or limit, settings))
    try:
        async with service.uploads.slot(uid):
            try:
                meter.upload_id, meter.stamp = await service.upload_store.begin_upload(
                    uid=uid, document_id=document_id, reserve=meter.reserved
                )
            except HttpError as exc:
                await send_error(send, exc, close=True)
                return
            except Exception:
                await _unavailable(service, send, "upload admission failed", close=True)
                return
            try:
                answer = await _ingest(
                    service,
                    receive,
                    meter,
                    title=title,
                    filename=filename,
                    content_type=content_type,
                )
            finally:
                await meter.settle()
            if isinstance(answer, HttpError):
                await send_error(send, answer, close=meter.tokens is None)
            elif answer is not None:
                await send_json(send, 200, answer)
    except HttpError as exc:
        # Refused by this instance's bounds, before any round trip.
        await send_error(send, exc, close=True)


async def _ingest(
    service: Service,
    receive: Receive,
    meter: _Meter,
    *,
    title: str,
    filename: str,
    content_type: str | None,
) -> dict[str, Any] | HttpError | None:
    """Read the body and ingest it: the answer (a refusal, or None when the client left),
    with ``meter.tokens`` set to the tokens to charge (left None when the body was never
    read whole)."""
    settings = service.settings
    uid, document_id = meter.uid, meter.document_id
    try:
        data = await read_body(
            receive,
            settings,
            limit=settings.max_document_bytes,
            within=settings.document_body_timeout_seconds,
        )
    except HttpError as exc:
        return exc
    except ClientGone:
        return None
    # Not cancelled when the client leaves: the upload is paid for by then, and the
    # document's status tells the user how it ended.
    try:
        result = await ingest(
            service.store.rest,
            await service.embeddings(),
            owner_uid=uid,
            document_id=document_id,
            data=data,
            title=title,
            filename=filename,
            content_type=content_type,
            limits=service.ingest_limits,
            before_embedding=meter.before_embedding,
        )
    except IngestError as exc:
        meter.tokens = exc.tokens
        logger.warn("ingestion refused", uid=uid, document_id=document_id, reason=exc.code)
        return _refusal(exc, document_id, service.redact)
    except Exception:
        meter.tokens = meter.bound
        service.executions.log_failure("ingestion failed")
        return HttpError(ErrorCode.UNAVAILABLE, "The service is unavailable.")
    meter.tokens = result.tokens
    logger.info(
        "ingestion",
        uid=uid,
        document_id=document_id,
        generation=result.generation,
        passages=result.passage_count,
        tokens=result.tokens,
    )
    return {
        "document_id": result.document_id,
        "generation": result.generation,
        "passage_count": result.passage_count,
        "tokens": result.tokens,
        "status": "ready",
    }


async def _delete(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        uid = await _caller(service, scope)
        value = _query(scope).get("document_id")
        if not value:
            raise HttpError(ErrorCode.INVALID_REQUEST, "document_id is required")
        document_id = _document_id(value)
    except HttpError as exc:
        await send_error(send, exc, close=True)
        return
    try:
        deleted = await delete_document(service.store.rest, owner_uid=uid, document_id=document_id)
    except IngestError as exc:
        await send_error(send, _refusal(exc, document_id, service.redact))
        return
    except Exception:
        await _unavailable(service, send, "deletion failed")
        return
    try:
        await service.upload_store.forget_document(uid=uid, document_id=document_id)
    except Exception:
        # The next upload at the cap finds the id gone and drops it (ADR 0308).
        service.executions.log_failure("deleted document not taken out of the count")
    logger.info("document deleted", uid=uid, document_id=document_id, passages=deleted)
    await send_json(
        send, 200, {"document_id": document_id, "deleted": True, "passages_deleted": deleted}
    )


documents_app = endpoint({"POST": _upload, "DELETE": _delete})


async def _unavailable(service: Service, send: Send, what: str, *, close: bool = False) -> None:
    """Log the exception being handled as ``what`` and answer 503."""
    service.executions.log_failure(what)
    error = HttpError(ErrorCode.UNAVAILABLE, "The service is unavailable.")
    await send_error(send, error, close=close)
