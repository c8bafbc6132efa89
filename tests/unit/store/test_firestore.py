"""The Firestore REST client without a server: the value codec against
google-cloud-firestore's own (both directions, through the protobuf JSON form the REST API
speaks), field paths, and production calls (OAuth token, retries, conflicts) against a
scripted server on loopback playing firestore.googleapis.com (tests/support/scripted.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import document
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream.store._firestore import (
    FirestoreError,
    FirestoreRest,
    decode_value,
    encode_value,
    field_path,
)
from support import examples
from support.fakes import FakeCredentials
from support.scripted import ScriptedServer

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


@settings(max_examples=examples(150), deadline=None)
@given(values)
def test_values_decode_as_the_official_client_encodes_them(value: Any) -> None:
    assert decode_value(official_json(value)) == value


@settings(max_examples=examples(150), deadline=None)
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


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3))
def test_field_paths_match_the_official_client(segments: list[str]) -> None:
    assert field_path(*segments) == FieldPath(*segments).to_api_repr()


# -- production calls: a scripted server plays firestore.googleapis.com ------------------

BATCH_GET = "/v1/projects/prod-project/databases/(default)/documents:batchGet"
COMMIT = BATCH_GET.replace(":batchGet", ":commit")


@pytest.fixture
async def session(scripted: ScriptedServer) -> AsyncIterator[aiohttp.ClientSession]:
    """A session that sends what is addressed to https://firestore.googleapis.com to the
    scripted server, in plain HTTP: the client builds its production URLs and headers as
    deployed (each request's Host header still names firestore.googleapis.com)."""

    async def to_loopback(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        assert request.url.host == "firestore.googleapis.com" and request.url.scheme == "https"
        request.url = request.url.with_scheme("http").with_host("127.0.0.1")
        request.url = request.url.with_port(scripted.port)
        return await handler(request)

    async with aiohttp.ClientSession(middlewares=(to_loopback,)) as client:
        yield client


def sent_authorizations(scripted: ScriptedServer) -> list[str]:
    return [request.headers["Authorization"] for request in scripted.all_sent()]


async def test_production_calls_carry_a_refreshed_oauth_token(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    credentials = FakeCredentials()
    found = {
        "found": {
            "name": "projects/prod-project/databases/(default)/documents/prompts/p1",
            "fields": {"content": {"stringValue": "Hi"}},
            "updateTime": "2026-11-26T10:00:00.000001Z",
        },
        "readTime": "2026-11-26T10:00:01Z",
    }
    scripted.post(BATCH_GET, payload=[found], repeat=True)
    db = FirestoreRest("prod-project", session, credentials=credentials)
    docs = await db.get_all(["prompts/p1"])
    await db.get_all(["prompts/p1"])
    credentials.valid = False  # expired
    await db.get_all(["prompts/p1"])
    assert docs["prompts/p1"].data == {"content": "Hi"}
    assert docs["prompts/p1"].update_time == "2026-11-26T10:00:00.000001Z"
    assert credentials.refreshes == 2
    assert sent_authorizations(scripted) == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]
    assert {request.headers["Host"] for request in scripted.all_sent()} == {
        "firestore.googleapis.com"
    }


async def test_reads_are_retried_on_unavailable_and_commits_are_not(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    unavailable = {"error": {"code": 503, "message": "try later", "status": "UNAVAILABLE"}}
    scripted.post(BATCH_GET, status=503, payload=unavailable)
    missing = BATCH_GET.split("/v1/")[1].replace(":batchGet", "/prompts/p1")
    scripted.post(BATCH_GET, payload=[{"missing": missing}, {"missing": "elsewhere/p2"}])
    scripted.post(COMMIT, status=503, payload=unavailable)
    db = FirestoreRest("prod-project", session, credentials=FakeCredentials())
    docs = await db.get_all(["prompts/p1"])
    with pytest.raises(FirestoreError) as refused:
        await db.commit([])
    assert len(scripted.sent(BATCH_GET)) == 2
    assert len(scripted.sent(COMMIT)) == 1
    # What was asked for, absent; a name that was not asked for is ignored.
    assert list(docs) == ["prompts/p1"] and docs["prompts/p1"].data is None
    assert (refused.value.http_status, refused.value.status) == (503, "UNAVAILABLE")
    assert not refused.value.conflict


async def test_a_failed_precondition_is_a_conflict_and_other_errors_are_not(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    replies = [
        (400, "FAILED_PRECONDITION", True),
        (409, "ALREADY_EXISTS", True),
        (409, "ABORTED", True),
        (403, "PERMISSION_DENIED", False),
        (404, "NOT_FOUND", False),
    ]
    for status, name, _ in replies:
        scripted.post(COMMIT, status=status, payload={"error": {"status": name, "message": "m"}})
    scripted.post(COMMIT, status=502, body="<html>bad gateway</html>")
    db = FirestoreRest("prod-project", session, credentials=FakeCredentials())
    seen = []
    for _ in range(len(replies) + 1):
        with pytest.raises(FirestoreError) as refused:
            await db.commit([])
        seen.append((refused.value.status, refused.value.conflict))
    assert seen == [(name, conflict) for _, name, conflict in replies] + [("UNKNOWN", False)]


async def test_a_credential_refresh_does_not_wait_behind_the_loops_default_pool(
    session: aiohttp.ClientSession, scripted: ScriptedServer
) -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()
    held = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    credentials = FakeCredentials()
    credentials.valid = False
    try:
        scripted.post(COMMIT, payload={"writeResults": [], "commitTime": "t"})
        db = FirestoreRest("prod-project", session, credentials=credentials)
        await asyncio.wait_for(db.commit([]), 5)
    finally:
        release.set()
        await asyncio.gather(*held)
    assert credentials.refreshes == 1
