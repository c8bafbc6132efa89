"""ingest_document in-process on a Service with injected parts, ingestion and deletion
played by fakes: the checks before any work, the budget, and how each outcome of an
ingestion is answered and charged. (Uploads end to end are
tests/integration/test_kb_endpoint.py's.)"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from promptstream import RateLimitError, documents_app
from promptstream._errors import DocumentReason
from promptstream.knowledge._ingest import IngestError, IngestResult
from promptstream.run._uploads import INPUT_OVERHEAD
from promptstream.store._limits import UPLOADS, take_lease
from support.fakes import API_KEY, UnitService, asgi_call
from support.http import Reply

ALICE = {"authorization": "Bearer alice", "content-type": "text/markdown"}


class Ingestion:
    """Plays ``ingest``: records its arguments, returns ``result`` or raises ``error``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.result = IngestResult("doc", 1, 3, 40)
        self.error: Exception | None = None
        # What it is about to embed, shown to the caller first.
        self.texts = ["# Notes"]
        self.gate: asyncio.Event | None = None  # when given, it waits for it

    async def __call__(self, db: Any, embedder: Any, **kwargs: Any) -> IngestResult:
        self.calls.append(kwargs)
        await kwargs["before_embedding"](self.texts)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def ingestion(monkeypatch: pytest.MonkeyPatch) -> Ingestion:
    fake = Ingestion()
    monkeypatch.setattr("promptstream.http._documents_api.ingest", fake)
    return fake


async def upload(query: str = "document_id=doc&filename=notes.md", **headers: str) -> Reply:
    return await asgi_call(
        documents_app, "POST", b"# Notes", {**ALICE, **headers}, path="/?" + query
    )


async def test_a_declared_size_over_the_cap_is_413_before_the_token(
    service: UnitService, ingestion: Ingestion
) -> None:
    too_big = str(service.settings.max_document_bytes + 1)
    got = await upload(authorization="", **{"content-length": too_big})
    assert (got.status, got.error()["code"]) == (413, "payload_too_large")
    assert got.headers["Connection"] == "close"
    assert ingestion.calls == []


async def test_no_api_key_is_a_configuration_error(
    service: UnitService, ingestion: Ingestion
) -> None:
    service.api_key = None
    got = await upload()
    assert (got.status, got.error()["code"]) == (500, "configuration_error")
    assert ingestion.calls == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("document_id=../x", "document_id"),
        ("title=" + "t" * 201, "title"),
        ("filename=" + "f" * 256, "filename"),
    ],
)
async def test_bad_metadata_is_400_naming_it(
    service: UnitService, ingestion: Ingestion, query: str, words: str
) -> None:
    got = await upload(query)
    error = got.error()
    assert (got.status, error["code"]) == (400, "invalid_request")
    assert words in error["message"]
    assert ingestion.calls == []


async def test_an_upload_is_ingested_charged_and_answered(
    service: UnitService, ingestion: Ingestion
) -> None:
    got = await upload("document_id=doc&filename=notes.md")
    assert got.status == 200
    assert got.json == {
        "document_id": "doc",
        "generation": 1,
        "passage_count": 3,
        "tokens": 40,
        "status": "ready",
    }
    [call] = ingestion.calls
    assert (call["owner_uid"], call["document_id"], call["data"]) == ("alice", "doc", b"# Notes")
    assert (call["title"], call["filename"], call["content_type"]) == (
        "notes.md",  # no title: the file name
        "notes.md",
        "text/markdown",
    )
    assert service.fake_store.limits["alice"]["tokens_today"] == 40


async def test_an_upload_without_an_id_gets_one(service: UnitService, ingestion: Ingestion) -> None:
    await upload("title=Notes")
    [call] = ingestion.calls
    assert len(call["document_id"]) == 20 and call["title"] == "Notes"


async def test_a_used_budget_is_429_before_any_work(
    service: UnitService, ingestion: Ingestion
) -> None:
    service.fake_store.spend("alice", service.settings.daily_token_budget)
    got = await upload()
    assert (got.status, got.error()["code"]) == (429, "budget_exceeded")
    assert int(got.headers["Retry-After"]) >= 1
    assert ingestion.calls == []


async def test_a_refused_embedding_is_its_status_and_its_tokens_are_charged(
    service: UnitService, ingestion: Ingestion
) -> None:
    error = IngestError(
        DocumentReason.EMBEDDING_FAILED, f"embedding refused for {API_KEY}", tokens=12
    )
    error.__cause__ = RateLimitError("slow down", status_code=429, retry_after=9)
    ingestion.error = error
    got = await upload()
    refusal = got.error()
    assert (got.status, refusal["code"], got.headers["Retry-After"]) == (429, "rate_limited", "9")
    assert refusal["details"] == {"reason": "embedding_failed", "document_id": "doc"}
    assert API_KEY not in refusal["message"] and refusal["message"][0].isupper()
    assert service.fake_store.limits["alice"]["tokens_today"] == 12


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [
        (DocumentReason.BINARY, 422, "invalid_document"),
        (DocumentReason.TOO_MANY_PAGES, 422, "document_too_long"),
        (DocumentReason.BUDGET_EXCEEDED, 429, "budget_exceeded"),
        (DocumentReason.SUPERSEDED, 409, "document_conflict"),
        (DocumentReason.STORE_FAILED, 503, "unavailable"),
        (DocumentReason.EMBEDDING_FAILED, 502, "upstream_error"),  # a cause not from upstream
    ],
)
async def test_each_ingestion_refusal_has_its_code(
    service: UnitService, ingestion: Ingestion, reason: DocumentReason, status: int, code: str
) -> None:
    ingestion.error = IngestError(reason, "no")
    got = await upload()
    assert (got.status, got.error()["code"]) == (status, code)
    assert got.error()["details"]["reason"] == reason.value
    limits = service.fake_store.limits["alice"]
    # Nothing spent, nothing charged, the lease and its reservation released.
    assert limits["tokens_today"] == 0 and limits["upload_leases"] == limits["reserved"] == {}


async def test_a_failure_of_ingestion_itself_is_503(
    service: UnitService, ingestion: Ingestion, capsys: pytest.CaptureFixture[str]
) -> None:
    ingestion.error = ConnectionError("firestore")
    got = await upload()
    assert (got.status, got.error()["code"]) == (503, "unavailable")
    assert "ingestion failed" in capsys.readouterr().err


async def test_delete_needs_an_id_and_answers_what_it_deleted(
    service: UnitService, monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted: list[tuple[str, str]] = []

    async def delete_document(db: Any, *, owner_uid: str, document_id: str) -> int:
        if document_id == "gone":
            raise IngestError(DocumentReason.NOT_FOUND, "no such document")
        deleted.append((owner_uid, document_id))
        return 4

    monkeypatch.setattr("promptstream.http._documents_api.delete_document", delete_document)
    missing = await asgi_call(documents_app, "DELETE", headers=ALICE, path="/")
    assert (missing.status, missing.error()["code"]) == (400, "invalid_request")
    gone = await asgi_call(documents_app, "DELETE", headers=ALICE, path="/?document_id=gone")
    assert (gone.status, gone.error()["code"]) == (404, "document_not_found")
    got = await asgi_call(documents_app, "DELETE", headers=ALICE, path="/?document_id=doc")
    assert got.json == {"document_id": "doc", "deleted": True, "passages_deleted": 4}
    assert deleted == [("alice", "doc")]


async def test_other_methods_are_405_naming_post_and_delete(service: UnitService) -> None:
    got = await asgi_call(documents_app, "GET", headers=ALICE)
    assert (got.status, got.headers["Allow"]) == (405, "POST, DELETE, OPTIONS")


async def test_a_text_longer_than_its_bytes_promised_reserves_more_before_embedding(
    service: UnitService, ingestion: Ingestion
) -> None:
    # A small file (a PDF's compressed streams, say) that makes a long text.
    ingestion.texts = ["x" * 50_000]
    reserved: list[int] = []
    store = service.fake_store
    grow = store.reserve_upload
    rival = False

    async def reserve_upload(**kwargs: Any) -> None:
        reserved.append(kwargs["reserve"])
        if rival:  # another upload reserved the rest of the budget since the admission
            now = dt.datetime.now(dt.UTC)
            held = store.limits["alice"]
            held.update(take_lease(held, "other", now, service.settings, 10**9, kind=UPLOADS))
        await grow(**kwargs)

    store.reserve_upload = reserve_upload  # type: ignore[method-assign]
    seven = {"content-length": "7"}  # b"# Notes"
    assert (await upload(**seven)).status == 200
    assert reserved == [50_000 + INPUT_OVERHEAD]
    assert store.limits["alice"]["tokens_today"] == 40  # the real tokens, once settled
    rival = True
    got = await upload(**seven)
    assert (got.status, got.error()["code"]) == (429, "budget_exceeded")
    assert got.error()["details"]["reason"] == "budget_exceeded"
    assert int(got.headers["Retry-After"]) == 30
    assert store.limits["alice"]["tokens_today"] == 40


async def test_a_users_uploads_past_the_limit_here_are_refused_before_any_round_trip(
    service: UnitService, ingestion: Ingestion
) -> None:
    ingestion.gate = gate = asyncio.Event()
    # MAX_CONCURRENT_UPLOADS (2) of them, held in ingestion.
    seven = {"content-length": "7"}  # a small reservation each: the budget lets both in
    held = [asyncio.create_task(upload(f"document_id=d{n}", **seven)) for n in range(2)]
    for _ in range(100):  # until both are in ingestion
        if len(ingestion.calls) == 2:
            break
        await asyncio.sleep(0.01)
    began = service.fake_store._ids
    got = await upload("document_id=d3", **seven)
    assert (got.status, got.error()["code"]) == (429, "concurrency_limit")
    assert got.headers["Connection"] == "close" and "uploads" in got.error()["message"]
    assert service.fake_store._ids == began  # the store was not asked
    gate.set()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
