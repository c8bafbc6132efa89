"""Issue 22, items 8 and 9, through the server as deployed and the hostile fake: token
counts an upstream reports are believed only within bounds (an absurd one is
``upstream_error`` and never a stuck record, a zero one is not free), and a silent
upstream cannot hold a request past the first-chunk deadline, however many fallbacks.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from fake_openrouter import FakeOpenRouterThread
from promptstream._tokens import estimate_tokens
from promptstream.store._uploads import document_path
from support import (
    ROOT,
    FunctionServer,
    Serve,
    add_prompt,
    auth,
    body,
    closed_record,
    limits,
)
from support.http import Reply, post, request

BAKERY = (ROOT / "tests" / "data" / "kb" / "bakery.md").read_bytes()
# Each hostile count, and why it is absurd: past int64 (the commit fails), negative, not
# an integer, and within int64 but far past what the request could cost (it would spend
# a year of budget).
ABSURD = [2**64, -1, "12", 1.5, 10**15]


@pytest.fixture(scope="module")
def ingest_server(serve: Serve) -> Iterator[FunctionServer]:
    with serve("ingest_document", env={"UPSTREAM_MAX_RETRIES": "0"}) as server:
        yield server


def upload(server: FunctionServer, data: bytes = BAKERY, document_id: str = "bakery") -> Reply:
    path = "/?" + urllib.parse.urlencode({"document_id": document_id, "title": "Bakery"})
    headers = {**auth(), "Content-Type": "text/markdown"}
    return request(server, "POST", data, headers, path=path, timeout=60)


def passages_estimate(db: Any, document_id: str = "bakery") -> int:
    """What the estimate makes of the texts embedded for a document (its passages)."""
    key = document_path("alice", document_id).rsplit("/", 1)[1]
    where = FieldFilter("document_key", "==", key)
    found = db.collection("passages").where(filter=where).stream()
    return sum(estimate_tokens(d.to_dict()["text"]) for d in found)


def document_status(db: Any, document_id: str = "bakery") -> str:
    return str(db.document(document_path("alice", document_id)).get().to_dict()["status"])


# -- item 8: embeddings usage --------------------------------------------------------------


@pytest.mark.parametrize("count", ABSURD, ids=repr)
def test_an_absurd_embeddings_count_refuses_the_upload_and_charges_an_estimate(
    count: Any, db: Any, ingest_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    fake_upstream.configure(embed_usage={"total_tokens": count})
    got = upload(ingest_server)
    assert got.status == 502, got.raw
    assert got.error()["code"] == "upstream_error"
    assert document_status(db) == "error"
    # The batch was embedded (and likely billed): the budget counts it, within int64.
    assert 0 < limits(db)["tokens_today"] < 10 * len(BAKERY)


@pytest.mark.parametrize("usage", [{"total_tokens": 0}, {"total_tokens": None}], ids=repr)
def test_an_embeddings_count_of_zero_or_none_is_charged_the_estimate(
    usage: dict[str, Any],
    db: Any,
    ingest_server: FunctionServer,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    fake_upstream.configure(embed_usage=usage)
    got = upload(ingest_server)
    assert got.status == 200, got.raw
    # What was embedded is each passage with its heading: at least the passages' estimate.
    assert got.json["tokens"] >= passages_estimate(db) > 0
    assert limits(db)["tokens_today"] == got.json["tokens"]


def test_an_absurd_query_embedding_count_ends_the_record_and_frees_the_lease(
    db: Any,
    ingest_server: FunctionServer,
    stream_server: FunctionServer,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    assert upload(ingest_server).status == 200
    add_prompt(db, content="Say {{topic}}", document_ids=["bakery"])
    fake_upstream.configure(embed_usage={"total_tokens": 2**64})
    got = post(stream_server, body(variables={"topic": "delivery"}))
    assert got.status == 502, got.raw
    assert got.error()["code"] == "upstream_error"
    record = closed_record(db, timeout=5)
    assert record is not None, "the record stayed streaming"
    assert (record["status"], record["error_code"]) == ("error", "upstream_error")
    doc = limits(db)
    assert doc["leases"] == {} and doc["reserved"] == {}
    assert 0 < doc["tokens_today"] < 2**63


# -- item 8: chat usage --------------------------------------------------------------------


@pytest.mark.parametrize("count", ABSURD, ids=repr)
@pytest.mark.parametrize("field", ["total_tokens", "prompt_tokens"])
def test_an_absurd_chat_count_is_an_upstream_error_and_debits_an_estimate(
    field: str, count: Any, db: Any, stream_server: FunctionServer
) -> None:
    extra = json.dumps({field: count})
    add_prompt(db, content="Say {{topic}} [[fake usage_extra=" + repr(extra) + "]]")
    got = post(stream_server, body(variables={"topic": "t"}))
    assert got.status == 200
    # The answer went out whole; its end is an error the client can tell from content.
    assert got.text() and "error" in got.kinds, got.kinds
    assert got.named("error")[0]["code"] == "upstream_error"
    record = closed_record(db)
    assert (record["status"], record["error_code"]) == ("error", "upstream_error")
    assert record["output"] == got.text() and record["usage"] is None
    doc = limits(db)
    assert doc["leases"] == {} and doc["reserved"] == {}
    assert 0 < record["tokens_debited"] == doc["tokens_today"] < 10_000


def test_an_absurd_count_in_a_whole_answer_is_refused_and_ends_the_record(
    db: Any, execute_server: FunctionServer
) -> None:
    extra = json.dumps({"total_tokens": 2**64})
    add_prompt(db, content="Say {{topic}} [[fake usage_extra=" + repr(extra) + "]]")
    got = post(execute_server, body(variables={"topic": "t"}))
    assert got.status == 502, got.raw
    assert got.error()["code"] == "upstream_error"
    record = closed_record(db)
    assert (record["status"], record["error_code"]) == ("error", "upstream_error")
    doc = limits(db)
    assert doc["leases"] == {} and doc["reserved"] == {}
    assert 0 < record["tokens_debited"] == doc["tokens_today"] < 10_000


# -- item 9: a silent upstream and three fallbacks -----------------------------------------

P, FALLBACKS = "demo/primary", ["demo/second", "demo/third", "demo/fourth"]
FIRST_BYTE_TIMEOUT = 1.5
DEADLINE = 2.0
# Far above the deadline's own lateness, far below the time before the fix: every try of
# every model waited its whole timeout (12 × 1.5 s in client routing, 3 × 1.5 s natively).
MARGIN = 1.5
SILENT_ENV = {
    "ALLOWED_MODELS": ",".join([P, *FALLBACKS]),
    "DEFAULT_MODEL": P,
    "UPSTREAM_FIRST_BYTE_TIMEOUT": str(FIRST_BYTE_TIMEOUT),
    "UPSTREAM_IDLE_TIMEOUT": str(FIRST_BYTE_TIMEOUT),
    "UPSTREAM_FIRST_CHUNK_DEADLINE": str(DEADLINE),
    "UPSTREAM_MAX_RETRIES": "2",
    "UPSTREAM_BACKOFF_BASE": "0.05",
    "HEARTBEAT_SECONDS": "0.2",
}
# Silent before the headers; or headers, then keep-alive comments and no content.
SILENCES = {
    "no headers": "first_byte_delay=30",
    "comments only": "first_chunk_delay=30 comment_every=0.2",
}


@pytest.fixture(scope="module", params=["client", "native"])
def silent_servers(request: Any, serve: Serve) -> Iterator[dict[str, FunctionServer]]:
    env = {**SILENT_ENV, "FALLBACK_ROUTING": request.param}
    with serve("execute_prompt_stream", env=env) as stream, serve("execute_prompt", env=env) as one:
        yield {"stream": stream, "execute": one}


# (A non-streamed answer has no comments: the fake answers it whole or not at all.)
@pytest.mark.parametrize(
    ("silence", "endpoint"),
    [("no headers", "stream"), ("no headers", "execute"), ("comments only", "stream")],
)
def test_a_silent_upstream_is_given_up_at_the_first_chunk_deadline(
    silence: str,
    endpoint: str,
    silent_servers: dict[str, FunctionServer],
    db: Any,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    add_prompt(db, content="Say {{topic}} [[fake " + SILENCES[silence] + "]]")
    got = request(
        silent_servers[endpoint],
        "POST",
        body(variables={"topic": "t"}, fallback_models=FALLBACKS),
        auth(),
        timeout=60,
    )
    assert got.seconds < DEADLINE + MARGIN, got.seconds
    if got.status == 200:
        # The headers came in time and the stream had started: the error is an event.
        assert endpoint == "stream" and silence == "comments only"
        [error] = got.named("error")
        assert got.text() == ""
    else:
        assert got.status == 504, got.raw
        error = got.error()
        error = {**error, "attempts": error["details"]["attempts"]}
    assert error["code"] == "upstream_timeout"
    assert error["attempts"] and error["attempts"][-1]["outcome"] == "failed"
    record = closed_record(db)
    assert (record["status"], record["error_code"]) == ("error", "upstream_timeout")
    assert record["attempts"] == error["attempts"]
    doc = limits(db)
    assert doc["leases"] == {} and doc["reserved"] == {}
