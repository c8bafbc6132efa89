"""The Firestore REST client and the store on it.

The value codec is checked against google-cloud-firestore's own (both directions, through
the protobuf JSON form the REST API speaks); the store against the emulator, including a
commit that loses to another writer; production calls (OAuth token, retries, conflicts)
against aioresponses; the function against a Firestore that refuses connections, one that
never answers, and one that goes away in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import document
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from fake_openrouter import FakeOpenRouterThread
from promptstream._admission import LimitExceeded
from promptstream._config import Settings
from promptstream._firestore import (
    FirestoreError,
    FirestoreRest,
    decode_value,
    encode_value,
    field_path,
)
from promptstream._store import Store
from support import (
    PROJECT,
    FirestoreEmulator,
    FunctionServer,
    TcpProxy,
    add_prompt,
    auth,
    body,
    free_port,
)

# Values Firestore stores and gives back unchanged.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=64)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def official_json(value: Any) -> dict[str, Any]:
    """google-cloud-firestore's encoding of ``value``, as the REST API's JSON."""
    return json_format.MessageToDict(_helpers.encode_value(value)._pb)  # type: ignore[no-any-return]


def official_decode(value_json: dict[str, Any]) -> Any:
    pb = json_format.ParseDict(value_json, document.Value()._pb)
    return _helpers.decode_value(pb, client=None)


@settings(max_examples=300, deadline=None)
@given(values)
def test_values_decode_as_the_official_client_encodes_them(value: Any) -> None:
    assert decode_value(official_json(value)) == value


@settings(max_examples=300, deadline=None)
@given(values)
def test_the_official_client_decodes_our_encoding(value: Any) -> None:
    assert official_decode(encode_value(value)) == value


def test_special_values() -> None:
    at = dt.datetime(2026, 11, 26, 12, 30, 5, 123456, tzinfo=dt.UTC)
    assert official_decode(encode_value(at)) == at
    assert decode_value(official_json(at)) == at
    assert math.isnan(official_decode(encode_value(math.nan)))
    assert official_decode(encode_value(-math.inf)) == -math.inf
    assert decode_value(official_json(math.inf)) == math.inf
    with pytest.raises(ValueError, match="64-bit"):
        encode_value(2**63)
    with pytest.raises(ValueError, match="time zone"):
        encode_value(dt.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="set"):
        encode_value({1, 2})
    with pytest.raises(TypeError, match="map keys"):
        encode_value({1: "a"})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3))
def test_field_paths_match_the_official_client(segments: list[str]) -> None:
    assert field_path(*segments) == FieldPath(*segments).to_api_repr()


# -- the store, on the emulator ----------------------------------------------------------


@pytest.fixture
async def store(firestore_emulator: FirestoreEmulator) -> AsyncIterator[Store]:
    store = Store(
        Settings(project_id=PROJECT, max_concurrent_streams=2),
        emulator_host=firestore_emulator.host,
    )
    try:
        yield store
    finally:
        await store.close()


def record(prompt: Any) -> tuple[dict[str, Any], int, Any]:
    assert prompt is not None
    return {"prompt_id": prompt.id, "output": "", "usage": None}, 0, prompt


async def test_an_execution_is_opened_and_closed(store: Store, db: Any) -> None:
    add_prompt(db, "p1", content="Hello {{name}}", system_prompt="Be brief.")
    execution_id, prompt = await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    assert (prompt.id, prompt.content, prompt.system_prompt) == (
        "p1",
        "Hello {{name}}",
        "Be brief.",
    )
    opened = db.collection("executions").document(execution_id).get().to_dict()
    assert (opened["status"], opened["owner_uid"], opened["prompt_id"]) == (
        "streaming",
        "alice",
        "p1",
    )
    assert isinstance(opened["created_at"], dt.datetime)
    limits = db.collection("user_limits").document("alice").get().to_dict()
    assert list(limits["leases"]) == [execution_id]

    await store.finish_execution(
        uid="alice",
        execution_id=execution_id,
        fields={"status": "completed", "output": "Hi", "usage": {"total_tokens": 7}},
        tokens=7,
    )
    closed = db.collection("executions").document(execution_id).get().to_dict()
    assert (closed["status"], closed["output"], closed["usage"]) == (
        "completed",
        "Hi",
        {"total_tokens": 7},
    )
    assert closed["created_at"] == opened["created_at"]
    assert isinstance(closed["finished_at"], dt.datetime)
    limits = db.collection("user_limits").document("alice").get().to_dict()
    assert (limits["leases"], limits["tokens_today"]) == ({}, 7)


async def test_release_settles_the_limits_once(store: Store, db: Any) -> None:
    """The settle apart, after a failed final commit: it releases the lease and the
    reservation and debits; if the final commit was applied after all (it failed in
    transit), the lease is gone and nothing is debited twice."""
    add_prompt(db, "p1")

    def reserving(prompt: Any) -> tuple[dict[str, Any], int, Any]:
        return {"prompt_id": prompt.id}, 500, prompt

    first, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=reserving)
    second, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=reserving)
    limits = db.collection("user_limits").document("alice")
    assert limits.get().to_dict()["reserved"] == {first: 500, second: 500}
    assert await store.release(uid="alice", execution_id=first, tokens=7) is True
    await store.finish_execution(uid="alice", execution_id=second, fields={}, tokens=5)
    assert await store.release(uid="alice", execution_id=second, tokens=5) is False
    assert await store.release(uid="alice", execution_id=first, tokens=7) is False
    doc = limits.get().to_dict()
    assert (doc["leases"], doc["reserved"], doc["tokens_today"]) == ({}, {}, 12)


async def test_an_absent_prompt_reaches_build_as_none_and_a_refusal_writes_nothing(
    store: Store, db: Any
) -> None:
    seen: list[Any] = []

    def refuse(prompt: Any) -> tuple[dict[str, Any], int, None]:
        seen.append(prompt)
        raise LookupError("no such prompt")

    with pytest.raises(LookupError):
        await store.begin_execution(uid="alice", prompt_id="absent", build=refuse)
    assert seen == [None]
    assert list(db.collection("executions").stream()) == []
    assert list(db.collection("user_limits").stream()) == []


async def test_a_commit_that_loses_to_another_writer_reads_again(store: Store, db: Any) -> None:
    """Another instance takes a lease between our read and our commit: our commit's
    precondition fails, nothing of ours is written, and the second attempt sees both."""
    add_prompt(db, "p1")
    limits = db.collection("user_limits").document("alice")
    limits.set({"leases": {}, "day": dt.date.today().isoformat(), "tokens_today": 0})
    calls = 0

    def build(prompt: Any) -> tuple[dict[str, Any], int, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            lease = {"leases": {"elsewhere": int(time.time() * 1000)}}
            limits.set(lease, merge=True)
        return record(prompt)

    execution_id, _ = await store.begin_execution(uid="alice", prompt_id="p1", build=build)
    assert calls == 2
    assert sorted(limits.get().to_dict()["leases"]) == sorted(["elsewhere", execution_id])
    assert [d.id for d in db.collection("executions").stream()] == [execution_id]

    # Now at the cap of 2: refused, and nothing written.
    with pytest.raises(LimitExceeded) as refused:
        await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    assert refused.value.code == "concurrency_limit"
    assert len(list(db.collection("executions").stream())) == 1


async def test_many_openings_of_one_user_never_exceed_the_cap(
    firestore_emulator: FirestoreEmulator, db: Any
) -> None:
    """Six openings at once, through two stores (two instances): their locks cannot
    serialise them, only the conditional commits can."""
    add_prompt(db, "p1")
    settings = Settings(project_id=PROJECT, max_concurrent_streams=2)
    stores = [Store(settings, emulator_host=firestore_emulator.host) for _ in range(2)]
    outcomes: list[str] = []

    async def one(store: Store) -> None:
        try:
            await store.begin_execution(uid="bob", prompt_id="p1", build=record)
            outcomes.append("opened")
        except LimitExceeded as exc:
            outcomes.append(exc.code)

    try:
        await asyncio.gather(*(one(stores[i % 2]) for i in range(6)))
    finally:
        for store in stores:
            await store.close()
    assert sorted(outcomes) == ["concurrency_limit"] * 4 + ["opened"] * 2
    leases = db.collection("user_limits").document("bob").get().to_dict()["leases"]
    assert sorted(leases) == sorted(d.id for d in db.collection("executions").stream())


# -- the function, when Firestore is not there -------------------------------------------


@pytest.fixture(scope="module")
def silent_firestore() -> Iterator[str]:
    """A listener that never accepts: the kernel completes connections into its backlog,
    and requests sent on them are never answered."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def post(server: FunctionServer) -> tuple[int, dict[str, Any], float]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    started = time.monotonic()
    try:
        conn.request("POST", "/", body=body(variables={"topic": "x"}), headers=auth())
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), time.monotonic() - started
    finally:
        conn.close()


@pytest.mark.parametrize("firestore", ["refused", "silent"])
def test_firestore_out_of_reach_is_503_and_nothing_goes_upstream(
    firestore: str, silent_firestore: str, fake_upstream: FakeOpenRouterThread
) -> None:
    host = f"127.0.0.1:{free_port()}" if firestore == "refused" else silent_firestore
    fake_upstream.reset()
    with FunctionServer(
        "execute_prompt_stream",
        host,
        fake_upstream.base_url,
        env={"FIRESTORE_TIMEOUT_SECONDS": "1"},
    ) as server:
        status, answer, seconds = post(server)
        assert status == 503
        assert answer["error"]["code"] == "unavailable"
        assert seconds < 5  # one timeout of 1 s (reads are retried only on error statuses)
        assert fake_upstream.stats()["requests"] == 0
        # The instance still serves: a second request is refused the same way.
        assert post(server)[0] == 503
        assert "request failed" in server.log_text()


# -- production calls (no emulator): aioresponses plays firestore.googleapis.com ---------

BATCH_GET = (
    "https://firestore.googleapis.com/v1/projects/prod-project/databases/(default)"
    "/documents:batchGet"
)
COMMIT = BATCH_GET.replace(":batchGet", ":commit")


class FakeCredentials:
    """google-auth's credential interface: ``valid``, ``token``, ``refresh(request)``."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.valid = False
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        self.valid = True


def sent_authorizations(mocked: Any) -> list[str]:
    return [
        call.kwargs["headers"]["Authorization"]
        for calls in mocked.requests.values()
        for call in calls
    ]


async def test_production_calls_carry_a_refreshed_oauth_token() -> None:
    credentials = FakeCredentials()
    found = {
        "found": {
            "name": "projects/prod-project/databases/(default)/documents/prompts/p1",
            "fields": {"content": {"stringValue": "Hi"}},
            "updateTime": "2026-11-26T10:00:00.000001Z",
        },
        "readTime": "2026-11-26T10:00:01Z",
    }
    with aioresponses() as mocked:
        mocked.post(BATCH_GET, payload=[found], repeat=True)
        async with aiohttp.ClientSession() as session:
            db = FirestoreRest("prod-project", session, credentials=credentials)
            docs = await db.get_all(["prompts/p1"])
            await db.get_all(["prompts/p1"])
            credentials.valid = False  # expired
            await db.get_all(["prompts/p1"])
    assert docs["prompts/p1"].data == {"content": "Hi"}
    assert docs["prompts/p1"].update_time == "2026-11-26T10:00:00.000001Z"
    assert credentials.refreshes == 2
    assert sent_authorizations(mocked) == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_reads_are_retried_on_unavailable_and_commits_are_not() -> None:
    unavailable = {"error": {"code": 503, "message": "try later", "status": "UNAVAILABLE"}}
    with aioresponses() as mocked:
        mocked.post(BATCH_GET, status=503, payload=unavailable)
        missing = BATCH_GET.split("/v1/")[1].replace(":batchGet", "/prompts/p1")
        mocked.post(BATCH_GET, payload=[{"missing": missing}, {"missing": "elsewhere/p2"}])
        mocked.post(COMMIT, status=503, payload=unavailable)
        async with aiohttp.ClientSession() as session:
            db = FirestoreRest("prod-project", session, credentials=FakeCredentials())
            docs = await db.get_all(["prompts/p1"])
            with pytest.raises(FirestoreError) as refused:
                await db.commit([])
    assert len(mocked.requests[("POST", URL(BATCH_GET))]) == 2
    assert len(mocked.requests[("POST", URL(COMMIT))]) == 1
    # What was asked for, absent; a name that was not asked for is ignored.
    assert list(docs) == ["prompts/p1"] and docs["prompts/p1"].data is None
    assert (refused.value.http_status, refused.value.status) == (503, "UNAVAILABLE")
    assert not refused.value.conflict


async def test_a_failed_precondition_is_a_conflict_and_other_errors_are_not() -> None:
    replies = [
        (400, "FAILED_PRECONDITION", True),
        (409, "ALREADY_EXISTS", True),
        (409, "ABORTED", True),
        (403, "PERMISSION_DENIED", False),
        (404, "NOT_FOUND", False),
    ]
    with aioresponses() as mocked:
        for status, name, _ in replies:
            mocked.post(COMMIT, status=status, payload={"error": {"status": name, "message": "m"}})
        mocked.post(COMMIT, status=502, body="<html>bad gateway</html>")
        async with aiohttp.ClientSession() as session:
            db = FirestoreRest("prod-project", session, credentials=FakeCredentials())
            seen = []
            for _ in range(len(replies) + 1):
                with pytest.raises(FirestoreError) as refused:
                    await db.commit([])
                seen.append((refused.value.status, refused.value.conflict))
    assert seen == [(name, conflict) for _, name, conflict in replies] + [("UNKNOWN", False)]


def test_a_final_commit_that_fails_is_logged_and_the_stream_still_ends_cleanly(
    firestore_emulator: FirestoreEmulator, fake_upstream: FakeOpenRouterThread, db: Any
) -> None:
    add_prompt(db, content="Tell me about {{topic}}. [[fake chunks=20 delay=0.05]]")
    proxy = TcpProxy(firestore_emulator.host)
    with FunctionServer(
        "execute_prompt_stream",
        proxy.host,
        fake_upstream.base_url,
        env={"FIRESTORE_TIMEOUT_SECONDS": "2"},
    ) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("POST", "/", body=body(variables={"topic": "x"}), headers=auth())
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.readline().startswith(b"event: start")  # the record is open
            proxy.cut()
            # The whole body, through the closing chunk (http.client raises
            # IncompleteRead otherwise).
            rest = resp.read()
        finally:
            conn.close()
        assert b"event: end" in rest and rest.endswith(b"data: [DONE]\n\n")
        deadline = time.monotonic() + 10
        while "record not finalised" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        logged = [r for r in server.log_records() if r.get("message") == "record not finalised"]
    assert len(logged) == 1
    [record] = [d.to_dict() for d in db.collection("executions").stream()]
    assert record["status"] == "streaming"  # left for the lease to lapse
    assert logged[0]["execution_id"] == db.collection("executions").get()[0].id
