"""Knowledge bases over HTTP, as deployed: ingest_document, execute_prompt_stream and
execute_prompt on functions-framework, the real Firestore emulator, and the fake's
/embeddings (the local wordllama model)."""

from __future__ import annotations

import datetime
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from fake_openrouter import FakeOpenRouterThread
from promptstream.store._uploads import document_path
from support import (
    ROOT,
    FunctionServer,
    Serve,
    add_prompt,
    auth,
    body,
    closed_record,
    executions,
    limits,
    read_until,
    wait_until,
)
from support.http import post, request

KB = ROOT / "tests" / "data" / "kb"
BAKERY = (KB / "bakery.md").read_bytes()
GREENHOUSE = (KB / "greenhouse.md").read_bytes()
# Bob's near-identical handbook says something Alice's does not.
BOBS = BAKERY.replace(b"four pounds", b"nine pounds (BOB-ONLY)")
# Small on purpose: the oversize test sends just over it.
MAX_DOCUMENT_BYTES = 64 * 1024
QUESTION = "How much does delivery beyond three kilometres cost?"


@pytest.fixture(scope="module")
def ingest_server(serve: Serve) -> Iterator[FunctionServer]:
    env = {
        "MAX_DOCUMENT_BYTES": str(MAX_DOCUMENT_BYTES),
        # A failed batch fails the upload at once (the fault test counts calls), and
        # small batches put a fault in the middle of a document.
        "UPSTREAM_MAX_RETRIES": "0",
        "EMBEDDING_BATCH_SIZE": "2",
    }
    with serve("ingest_document", env=env) as server:
        yield server


def upload(
    server: FunctionServer,
    data: bytes,
    *,
    uid: str = "alice",
    document_id: str | None = "bakery",
    title: str = "Bakery handbook",
    filename: str = "bakery.md",
    content_type: str = "text/markdown",
    method: str = "POST",
) -> tuple[int, Any]:
    query = {"title": title, "filename": filename}
    if document_id is not None:
        query["document_id"] = document_id
    headers = {**auth(uid), "Content-Type": content_type}
    path = "/?" + urllib.parse.urlencode(query)
    got = request(server, method, data, headers, path=path, timeout=60)
    return got.status, json.loads(got.raw or b"null")


def delete(server: FunctionServer, document_id: str, uid: str = "alice") -> tuple[int, Any]:
    return upload(server, b"", uid=uid, document_id=document_id, method="DELETE")


def passages_of(db: Any, document_id: str, uid: str = "alice") -> list[dict[str, Any]]:
    key = document_path(uid, document_id).rsplit("/", 1)[1]
    found = db.collection("passages").where(filter=FieldFilter("document_key", "==", key))
    return [d.to_dict() for d in found.stream()]


def document(db: Any, document_id: str, uid: str = "alice") -> dict[str, Any] | None:
    snap = db.document(document_path(uid, document_id)).get()
    return snap.to_dict() if snap.exists else None


def tokens_today(db: Any) -> int:
    return int(limits(db).get("tokens_today") or 0)


def rag_fields() -> dict[str, Any]:
    return {
        "content": "Answer: {{question}} [[fake chunks=3 text='a b c']]",
        "variables": [{"name": "question", "required": True}],
        "document_ids": ["bakery"],
        "top_k": 3,
        "retrieval_query_variable": "question",
    }


def rag_prompt(db: Any, prompt_id: str = "kb", **fields: Any) -> str:
    return add_prompt(db, prompt_id, **{**rag_fields(), **fields})


def user_message(fake: FakeOpenRouterThread) -> tuple[str, str]:
    """The last chat request's user message and its system messages, joined."""
    chat = [r for r in fake.requests() if r["path"].endswith("/chat/completions")][-1]
    messages = chat["json"]["messages"]
    user = "\n".join(m["content"] for m in messages if m["role"] == "user")
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    return user, system


# -- ingestion ----------------------------------------------------------------------------


def test_upload_makes_a_ready_document_and_debits_its_embedding_tokens(
    db: Any, ingest_server: FunctionServer
) -> None:
    status, answer = upload(ingest_server, BAKERY)
    assert status == 200, answer
    assert answer["document_id"] == "bakery" and answer["status"] == "ready"
    assert answer["generation"] == 1 and answer["passage_count"] > 1
    assert answer["tokens"] > 0
    stored = document(db, "bakery")
    assert stored is not None and stored["status"] == "ready"
    assert stored["owner_uid"] == "alice" and stored["title"] == "Bakery handbook"
    assert len(passages_of(db, "bakery")) == answer["passage_count"]
    assert tokens_today(db) == answer["tokens"]
    # Uploading again replaces it: a new generation, the old passages gone, charged again.
    status, again = upload(ingest_server, BAKERY)
    assert status == 200 and again["generation"] == 2
    assert {p["generation"] for p in passages_of(db, "bakery")} == {2}
    assert tokens_today(db) == answer["tokens"] + again["tokens"]


def test_upload_over_the_days_budget_is_refused_before_any_work(
    db: Any, ingest_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    db.collection("user_limits").document("alice").set(
        {"day": today, "tokens_today": 500_000, "leases": {}}
    )
    status, answer = upload(ingest_server, BAKERY)
    assert status == 429 and answer["error"]["code"] == "budget_exceeded", answer
    assert document(db, "bakery") is None
    assert fake_upstream.stats()["embedding_requests"] == 0


def test_upload_without_an_id_gets_one(db: Any, ingest_server: FunctionServer) -> None:
    status, answer = upload(ingest_server, GREENHOUSE, document_id=None, title="")
    assert status == 200, answer
    stored = document(db, answer["document_id"])
    assert stored is not None and stored["title"] == "bakery.md"  # the filename


def test_embedding_fault_midway_leaves_the_document_error_without_passages(
    db: Any, ingest_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    # What a whole upload asks for, in batches of two texts.
    status, answer = upload(ingest_server, BAKERY, document_id="whole")
    assert status == 200, answer
    whole = fake_upstream.stats()["embedding_requests"]
    spent_before = tokens_today(db)
    fake_upstream.reset()
    # The second call fails; others may be in flight then (EMBEDDING_CONCURRENCY), but
    # no batch starts after the failure is known, so the upload stops well short.
    fake_upstream.configure(embed_status=500, embed_status_at=2)
    status, answer = upload(ingest_server, BAKERY)
    assert status == 502, answer
    assert answer["error"]["code"] == "upstream_error"
    assert answer["error"]["details"]["reason"] == "embedding_failed"
    assert 2 <= fake_upstream.stats()["embedding_requests"] < whole / 2
    stored = document(db, "bakery")
    assert stored is not None and stored["status"] == "error" and stored["error_message"]
    assert passages_of(db, "bakery") == []
    # The batches answered around the fault were billed: their tokens are debited.
    assert tokens_today(db) > spent_before


def test_embedding_rate_limit_is_a_429_with_retry_after(
    db: Any, ingest_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    fake_upstream.configure(embed_status=429)
    status, answer = upload(ingest_server, BAKERY)
    assert status == 429 and answer["error"]["code"] == "rate_limited"
    assert document(db, "bakery")["status"] == "error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"\x00\x01\x02binary" * 10, "application/octet-stream", 415, "unsupported_type"),
        (b"\x00\x01\x02binary" * 10, "text/plain", 422, "invalid_document"),
        (b"%PDF-1.4 not really", "application/pdf", 422, "invalid_document"),
        (b"   \n  ", "text/plain", 422, "invalid_document"),
    ],
)
def test_unreadable_uploads_are_refused_with_their_reason(
    db: Any, ingest_server: FunctionServer, data: bytes, content_type: str, status: int, code: str
) -> None:
    got, answer = upload(ingest_server, data, filename="upload.bin", content_type=content_type)
    assert (got, answer["error"]["code"]) == (status, code), answer


def test_upload_without_a_valid_token_is_refused(ingest_server: FunctionServer) -> None:
    headers = {"Content-Type": "text/plain"}
    got = request(ingest_server, "POST", b"hello", headers, path="/?document_id=x")
    assert got.status == 401
    assert got.error()["code"] == "unauthenticated"


def test_oversize_upload_is_refused_413_without_reading_it(
    db: Any, ingest_server: FunctionServer
) -> None:
    head = {**auth(), "Content-Type": "text/plain"}
    # Declared too large: the answer comes while the client has sent one byte of it.
    with socket.create_connection(("127.0.0.1", ingest_server.port), timeout=10) as sock:
        lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
        sock.sendall(
            f"POST /?document_id=big HTTP/1.1\r\nHost: x\r\n{lines}"
            f"Content-Length: {MAX_DOCUMENT_BYTES + 1}\r\n\r\nx".encode()
        )
        started = time.monotonic()
        got = read_until(sock, lambda b: b"payload_too_large" in b, timeout=5)
        assert got.startswith(b"HTTP/1.1 413"), got[:200]
        assert time.monotonic() - started < 3
    # Chunked, so no length up front: refused once it passes the cap, while the client
    # still has most of its 16 x 64 KiB to send.
    with socket.create_connection(("127.0.0.1", ingest_server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /?document_id=big HTTP/1.1\r\nHost: x\r\n{lines}"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"%x\r\n" % MAX_DOCUMENT_BYTES + b"a" * MAX_DOCUMENT_BYTES + b"\r\n"
        sent = 0
        try:
            for _ in range(16):
                sock.sendall(chunk)
                sent += 1
                time.sleep(0.05)
        except OSError:
            pass  # the server closed: what we want
        got = read_until(sock, lambda b: b"payload_too_large" in b, timeout=5)
        assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert document(db, "big") is None


def test_delete_removes_the_document_and_its_passages_for_its_owner_only(
    db: Any, ingest_server: FunctionServer
) -> None:
    assert upload(ingest_server, BAKERY)[0] == 200
    status, answer = delete(ingest_server, "bakery", uid="bob")
    assert status == 404 and answer["error"]["code"] == "document_not_found"
    assert document(db, "bakery") is not None
    status, answer = delete(ingest_server, "bakery")
    assert status == 200, answer
    assert answer["deleted"] is True and answer["passages_deleted"] > 0
    assert document(db, "bakery") is None
    assert passages_of(db, "bakery") == []
    assert delete(ingest_server, "bakery")[0] == 404


def test_two_users_with_one_document_id_each_have_their_own(
    db: Any,
    ingest_server: FunctionServer,
    stream_server: FunctionServer,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    assert upload(ingest_server, BAKERY)[0] == 200
    status, answer = upload(ingest_server, BOBS, uid="bob")
    assert status == 200, answer
    assert (answer["document_id"], answer["generation"]) == ("bakery", 1)
    assert document(db, "bakery")["owner_uid"] == "alice"  # type: ignore[index]
    assert document(db, "bakery", "bob")["owner_uid"] == "bob"  # type: ignore[index]
    rag_prompt(db)
    add_prompt(db, "kb-bob", **{**rag_fields(), "owner_uid": "bob"})
    for uid, prompt_id, own, other in (
        ("alice", "kb", "four pounds", "BOB-ONLY"),
        ("bob", "kb-bob", "BOB-ONLY", "four pounds per drop"),
    ):
        got = post(stream_server, body(prompt_id, variables={"question": QUESTION}), auth(uid))
        [sources] = got.named("sources")
        assert sources and {s["document_id"] for s in sources} == {"bakery"}
        text = "\n".join(s["text"] for s in sources)
        assert own in text and other not in text
    # Alice's delete leaves Bob's document and passages whole.
    bob_passages = len(passages_of(db, "bakery", "bob"))
    assert delete(ingest_server, "bakery")[0] == 200
    assert document(db, "bakery", "bob") is not None
    assert len(passages_of(db, "bakery", "bob")) == bob_passages > 0


def test_probing_an_id_someone_else_holds_says_nothing(
    db: Any, ingest_server: FunctionServer
) -> None:
    assert upload(ingest_server, BAKERY, document_id="held")[0] == 200
    # A delete of an id Alice holds and of an id nobody holds: one answer, byte for byte.
    held = delete(ingest_server, "held", uid="bob")
    free = delete(ingest_server, "free", uid="bob")
    assert held[0] == free[0] == 404
    assert json.dumps(held[1]).replace("held", "X") == json.dumps(free[1]).replace("free", "X")
    # And an upload to it is Bob's own new document, as it would be for a free id.
    status, answer = upload(ingest_server, GREENHOUSE, uid="bob", document_id="held")
    assert status == 200 and answer["generation"] == 1
    assert document(db, "held", "bob")["passage_count"] > 0  # type: ignore[index]
    assert document(db, "held")["title"] == "Bakery handbook"  # type: ignore[index]


# -- retrieval at execution ------------------------------------------------------------


@pytest.fixture
def bakery(db: Any, ingest_server: FunctionServer) -> None:
    """Alice's bakery handbook, ingested, and her prompt ``kb`` that draws on it."""
    assert upload(ingest_server, BAKERY)[0] == 200
    rag_prompt(db)


@pytest.mark.usefixtures("bakery")
def test_stream_sends_sources_after_start_and_before_content_and_records_them(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    before = tokens_today(db)
    got = post(stream_server, body("kb", variables={"question": QUESTION}))
    assert got.status == 200
    kinds = [e.event for e in got.events if e.data != "[DONE]"]
    assert kinds[:3] == ["start", "sources", "message"], kinds
    [sources] = got.named("sources")
    assert 1 <= len(sources) <= 3
    assert {s["document_id"] for s in sources} == {"bakery"}
    assert "four pounds" in sources[0]["text"]  # the passage that answers the question
    assert set(sources[0]) == {"document_id", "title", "position", "heading", "text", "score"}
    assert got.text() == "a b c"
    # The passages went upstream quoted in the user message, numbered, not in a system one.
    user, system = user_message(fake_upstream)
    assert '<passage number="1"' in user and "four pounds" in user
    assert "four pounds" not in system
    record = closed_record(db)
    assert record["status"] == "completed"
    assert record["document_ids"] == ["bakery"]
    assert [s["document_id"] for s in record["sources"]] == [s["document_id"] for s in sources]
    assert record["sources"][0]["text"] == sources[0]["text"]
    assert record["retrieval_tokens"] > 0
    # The debit is the generation's usage plus the query's embedding.
    assert record["tokens_debited"] == record["usage"]["total_tokens"] + record["retrieval_tokens"]
    assert tokens_today(db) == before + record["tokens_debited"]


@pytest.mark.usefixtures("bakery")
def test_execute_prompt_returns_the_sources(db: Any, execute_server: FunctionServer) -> None:
    got = post(execute_server, body("kb", variables={"question": QUESTION}))
    answer = got.json
    assert got.status == 200, answer
    assert answer["sources"] and answer["sources"][0]["document_id"] == "bakery"
    assert "four pounds" in answer["sources"][0]["text"]
    record = closed_record(db)
    assert [s["position"] for s in record["sources"]] == [s["position"] for s in answer["sources"]]


@pytest.mark.usefixtures("bakery")
def test_request_may_override_documents_and_top_k(
    db: Any, ingest_server: FunctionServer, stream_server: FunctionServer
) -> None:
    assert upload(ingest_server, GREENHOUSE, document_id="greenhouse")[0] == 200
    payload = body("kb", variables={"question": "tomatoes"}, document_ids=["greenhouse"], top_k=1)
    got = post(stream_server, payload)
    [sources] = got.named("sources")
    assert [s["document_id"] for s in sources] == ["greenhouse"]
    # Over the cap: refused before anything is opened.
    got = post(stream_server, body("kb", top_k=50))
    assert got.status == 400 and got.json["error"]["code"] == "invalid_request"


def test_another_users_document_is_never_searched(
    db: Any,
    ingest_server: FunctionServer,
    stream_server: FunctionServer,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    assert upload(ingest_server, BOBS, uid="bob", document_id="bob-bakery")[0] == 200
    assert upload(ingest_server, BAKERY)[0] == 200
    rag_prompt(db)
    payload = body("kb", variables={"question": QUESTION}, document_ids=["bob-bakery", "bakery"])
    got = post(stream_server, payload)
    assert got.status == 200
    [sources] = got.named("sources")
    assert sources and {s["document_id"] for s in sources} == {"bakery"}
    user, _ = user_message(fake_upstream)
    assert "BOB-ONLY" not in user
    # Bob's alone: nothing searched, no embedding call for the query.
    fake_upstream.reset()
    payload = body("kb", variables={"question": QUESTION}, document_ids=["bob-bakery"])
    got = post(stream_server, payload)
    assert got.named("sources") == [[]]
    assert fake_upstream.stats()["embedding_requests"] == 0
    assert "BOB-ONLY" not in user_message(fake_upstream)[0]


@pytest.mark.usefixtures("bakery")
def test_query_embedding_failure_is_an_http_error_with_the_record_finished_error(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    fake_upstream.configure(embed_status=503)
    got = post(stream_server, body("kb", variables={"question": QUESTION}))
    assert got.status == 503 and got.json["error"]["code"] == "upstream_unavailable"
    record = wait_until(lambda: next(iter(executions(db)), None))
    assert record["status"] == "error" and record["error_code"] == "upstream_unavailable"
    # The model was never asked.
    assert not [r for r in fake_upstream.requests() if r["path"].endswith("/chat/completions")]


def test_browser_may_upload_and_delete_cross_origin(ingest_server: FunctionServer) -> None:
    for method in ("POST", "DELETE"):
        preflight = {
            "Origin": "http://127.0.0.1:5173",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        got = request(ingest_server, "OPTIONS", None, preflight, path="/?document_id=x")
        assert got.status == 200, method
        assert method in got.headers.get("Access-Control-Allow-Methods", "")
    got = request(ingest_server, "GET", None, auth())
    assert got.status == 405
    assert got.headers["Allow"] == "POST, DELETE, OPTIONS"
    assert got.error()["code"] == "method_not_allowed"
