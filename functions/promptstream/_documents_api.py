"""``ingest_document``: upload (POST) and delete (DELETE) a knowledge-base document.

``POST ?document_id=&title=&filename=`` with the file's raw bytes as the body and its
``Content-Type`` (``text/plain``, ``text/markdown``, ``application/pdf``; anything else is
told apart by the PDF signature and the file name). Metadata travels in the query string
so the body can be the file itself: no multipart parser, and the size cap is the body's
size. ``document_id`` is optional (one is made); uploading to an existing id of yours
replaces that document. The answer, once the passages are searchable:
``{document_id, generation, passage_count, tokens, status}``.

``DELETE ?document_id=`` deletes the caller's document and its passages.

The embedding tokens of an upload count against the caller's daily budget, also when
the upload failed after embedding. See docs/adr/0200-retrieval-design.md.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable

from . import _logging as logger
from ._admission import seconds_to_utc_midnight
from ._asgi import Receive, Scope, Send, header, send_error, send_json
from ._errors import ClientGone, ErrorCode, HttpError, OpenRouterError
from ._handler import endpoint
from ._request import read_body, too_large
from ._retrieval import IngestError, check_document_id, delete_document, ingest
from ._sanitize import plain_label
from ._service import Service
from ._store import auto_id

__all__ = ["documents_app"]

# IngestError.code -> what the client sees. "embedding_failed" takes its cause's code.
_INGEST_CODES: dict[str, ErrorCode] = {
    "unsupported_type": ErrorCode.UNSUPPORTED_TYPE,
    "empty": ErrorCode.INVALID_DOCUMENT,
    "binary": ErrorCode.INVALID_DOCUMENT,
    "corrupt_pdf": ErrorCode.INVALID_DOCUMENT,
    "encrypted_pdf": ErrorCode.INVALID_DOCUMENT,
    "too_complex": ErrorCode.INVALID_DOCUMENT,
    "too_large": ErrorCode.PAYLOAD_TOO_LARGE,
    "too_many_pages": ErrorCode.DOCUMENT_TOO_LONG,
    "too_long": ErrorCode.DOCUMENT_TOO_LONG,
    "too_many_passages": ErrorCode.DOCUMENT_TOO_LONG,
    "not_found": ErrorCode.DOCUMENT_NOT_FOUND,
    "too_many_documents": ErrorCode.TOO_MANY_DOCUMENTS,
    "superseded": ErrorCode.DOCUMENT_CONFLICT,
    "store_failed": ErrorCode.UNAVAILABLE,
    "busy": ErrorCode.UNAVAILABLE,
}
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
    if exc.code == "embedding_failed" and isinstance(cause, OpenRouterError):
        return HttpError(cause.code, redact(message), details, retry_after=cause.retry_after)
    code = _INGEST_CODES.get(exc.code, ErrorCode.UPSTREAM_ERROR)
    return HttpError(code, message, details)


async def _charge(service: Service, uid: str, tokens: int) -> None:
    if tokens <= 0:
        return
    try:
        await service.store.charge_tokens(uid=uid, tokens=tokens)
    except Exception:
        # The document is stored either way; the budget misses these tokens.
        service.executions.log_failure("embedding tokens not debited")


async def _upload(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
    settings = service.settings
    limit = settings.max_document_bytes
    try:
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_large(limit)  # before the token: nothing of the body is read
        uid = await _caller(service, scope)
        await service.rates.upload(uid)  # the user's upload rate, before the body
        query = _query(scope)
        document_id = _document_id(query.get("document_id"))
        filename = _bounded(query, "filename", _MAX_FILENAME)
        title = _bounded(query, "title", _MAX_TITLE) or filename or document_id
        content_type = (header(scope, b"content-type") or "")[:_MAX_CONTENT_TYPE] or None
        data = await read_body(
            receive, settings, limit=limit, within=settings.document_body_timeout_seconds
        )
    except HttpError as exc:
        # The body may be unread: close the connection rather than drain it.
        await send_error(send, exc, close=True)
        return
    except ClientGone:
        return
    try:
        used = await service.store.tokens_used_today(uid)
    except Exception:
        await _unavailable(service, send, "budget read failed")
        return
    if used >= settings.daily_token_budget:
        await send_error(
            send,
            HttpError(
                ErrorCode.BUDGET_EXCEEDED,
                f"Daily token budget of {settings.daily_token_budget} is used up",
                retry_after=seconds_to_utc_midnight(dt.datetime.now(dt.UTC)),
            ),
        )
        return
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
        )
    except IngestError as exc:
        await _charge(service, uid, exc.tokens)
        logger.warn("ingestion refused", uid=uid, document_id=document_id, reason=exc.code)
        await send_error(send, _refusal(exc, document_id, service.redact))
        return
    except Exception:
        await _unavailable(service, send, "ingestion failed")
        return
    await _charge(service, uid, result.tokens)
    logger.info(
        "ingestion",
        uid=uid,
        document_id=document_id,
        generation=result.generation,
        passages=result.passage_count,
        tokens=result.tokens,
    )
    await send_json(
        send,
        200,
        {
            "document_id": result.document_id,
            "generation": result.generation,
            "passage_count": result.passage_count,
            "tokens": result.tokens,
            "status": "ready",
        },
    )


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
    logger.info("document deleted", uid=uid, document_id=document_id, passages=deleted)
    await send_json(
        send, 200, {"document_id": document_id, "deleted": True, "passages_deleted": deleted}
    )


documents_app = endpoint({"POST": _upload, "DELETE": _delete})


async def _unavailable(service: Service, send: Send, what: str) -> None:
    """Log the exception being handled as ``what`` and answer 503."""
    service.executions.log_failure(what)
    await send_error(send, HttpError(ErrorCode.UNAVAILABLE, "The service is unavailable."))
