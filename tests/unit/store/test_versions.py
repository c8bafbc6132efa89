"""A run's version (issue 27): which version a request asks for, the prompt as that
version holds it, and what an opening reads for it: nothing more for the latest, the
version in the same read when it is named by number, one read more for a label that
names an older one (tests/support/scripted.py plays Firestore's REST API)."""

from __future__ import annotations

from typing import Any

import pytest

from promptstream._errors import ErrorCode, HttpError
from promptstream.store._firestore import Document
from promptstream.store._prompts import Prompt, prompt_from
from promptstream.store._store import Store
from promptstream.store._versions import at_version, wanted
from support.scripted import ScriptedServer

from . import test_store as base
from .test_store import BATCH_GET, COMMIT, ROOT, found, missing, record, sent

# The store on a scripted Firestore, as test_store's tests have it.
firestore = base.firestore
store = base.store


def prompt(**fields: Any) -> Prompt:
    doc = {"owner_uid": "alice", "content": "latest", "public": False, **fields}
    found = prompt_from(Document("prompts/p1", doc, "t"))
    assert found is not None
    return found


def test_a_prompt_without_a_version_is_at_1_and_junk_labels_are_dropped() -> None:
    assert prompt().version == 1
    assert prompt(version=True).version == 1
    assert prompt(version=0).version == 1
    assert prompt(version="3").version == 1
    assert prompt(version=4).version == 4
    labels = {"production": 2, "staging": "2", "off": 0, "flag": True, "fine": 1}
    assert prompt(version=4, labels=labels).labels == {"production": 2, "fine": 1}
    assert prompt(labels=["production"]).labels == {}


@pytest.mark.parametrize(
    ("version", "label", "expected"),
    [(None, None, 3), (1, None, 1), (3, None, 3), (None, "production", 2)],
)
def test_wanted_is_the_version_the_label_or_the_latest(
    version: int | None, label: str | None, expected: int
) -> None:
    assert wanted(prompt(version=3, labels={"production": 2}), version, label) == expected


@pytest.mark.parametrize(
    ("version", "label", "details"),
    [
        (4, None, {"version": 4, "latest": 3}),
        (2, None, None),
        (None, "staging", {"label": "staging"}),
    ],
)
def test_a_version_or_label_the_prompt_lacks_is_version_not_found(
    version: int | None, label: str | None, details: dict[str, Any] | None
) -> None:
    p = prompt(version=3, labels={"production": 2})
    with pytest.raises(HttpError) as caught:
        at_version(p, wanted(p, version, label), None)
    assert caught.value.code == ErrorCode.VERSION_NOT_FOUND
    assert caught.value.status == 404
    if details is not None:
        assert caught.value.details == details


def test_at_version_takes_every_run_shaping_field_from_the_version() -> None:
    p = prompt(version=2, title="T", public=True, labels={"production": 1}, top_k=5)
    older = {
        "content": "one",
        "system_prompt": "sys",
        "variables": [{"name": "x"}],
        "document_ids": ["d1"],
        "top_k": 3,
        "retrieval_query_variable": "x",
        "preferred_model": "m",
        "fallback_models": ["f"],
        "created_by": "alice",
    }
    at = at_version(p, 1, Document("prompts/p1/versions/1", older, "t"))
    assert (at.version, at.content, at.system_prompt, at.variables) == (
        1,
        "one",
        "sys",
        [{"name": "x"}],
    )
    assert (at.document_ids, at.top_k, at.retrieval_query_variable) == (("d1",), 3, "x")
    assert (at.preferred_model, at.fallback_models) == ("m", ("f",))
    # What is the prompt's, not its version's, stays.
    assert (at.id, at.owner_uid, at.public, at.labels) == ("p1", "alice", True, {"production": 1})
    # The latest is the prompt itself: no version document needed.
    assert at_version(p, 2, None) is p


PROMPT_V3 = found(
    "prompts/p1",
    {
        "owner_uid": {"stringValue": "alice"},
        "content": {"stringValue": "three"},
        "version": {"integerValue": "3"},
        "labels": {
            "mapValue": {
                "fields": {
                    "production": {"integerValue": "1"},
                    "latest": {"integerValue": "3"},
                }
            }
        },
    },
)
V1 = found("prompts/p1/versions/1", {"content": {"stringValue": "one"}})
LIMITS = missing("user_limits/alice")


def reads(firestore: ScriptedServer) -> list[list[str]]:
    return [
        [d.removeprefix(f"{ROOT}/") for d in r["documents"]] for r in sent(firestore, BATCH_GET)
    ]


async def test_the_latest_is_one_read_of_the_prompt_and_the_limits(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[PROMPT_V3, LIMITS])
    firestore.post(COMMIT, payload={})
    _, p = await store.begin_execution(uid="alice", prompt_id="p1", build=record)
    assert (p.version, p.content) == (3, "three")
    assert reads(firestore) == [["prompts/p1", "user_limits/alice"]]


async def test_a_version_by_number_is_read_with_the_prompt_and_the_limits(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[PROMPT_V3, LIMITS, V1])
    firestore.post(COMMIT, payload={})
    _, p = await store.begin_execution(uid="alice", prompt_id="p1", version=1, build=record)
    assert (p.version, p.content) == (1, "one")
    assert reads(firestore) == [["prompts/p1", "user_limits/alice", "prompts/p1/versions/1"]]


async def test_a_label_naming_an_older_version_reads_it_after_and_only_once(
    store: Store, firestore: ScriptedServer
) -> None:
    conflict = {"error": {"status": "FAILED_PRECONDITION", "message": "changed"}}
    firestore.post(BATCH_GET, payload=[PROMPT_V3, LIMITS])
    firestore.post(BATCH_GET, payload=[V1])
    firestore.post(COMMIT, status=400, payload=conflict)
    firestore.post(BATCH_GET, payload=[LIMITS])
    firestore.post(COMMIT, payload={})
    _, p = await store.begin_execution(
        uid="alice", prompt_id="p1", label="production", build=record
    )
    assert (p.version, p.content) == (1, "one")
    # The commit's second attempt reads the limits alone: the prompt as first read stands
    # (its upstream call may be at work already, ADR 1000).
    assert reads(firestore) == [
        ["prompts/p1", "user_limits/alice"],
        ["prompts/p1/versions/1"],
        ["user_limits/alice"],
    ]


async def test_a_label_naming_the_latest_reads_nothing_more(
    store: Store, firestore: ScriptedServer
) -> None:
    firestore.post(BATCH_GET, payload=[PROMPT_V3, LIMITS])
    firestore.post(COMMIT, payload={})
    _, p = await store.begin_execution(uid="alice", prompt_id="p1", label="latest", build=record)
    assert (p.version, p.content) == (3, "three")
    assert len(reads(firestore)) == 1


async def test_another_users_private_prompt_is_absent_whatever_version_it_names(
    store: Store, firestore: ScriptedServer
) -> None:
    seen: list[Any] = []

    def refuse(p: Any) -> Any:
        seen.append(p)
        raise HttpError(ErrorCode.PROMPT_NOT_FOUND, "Prompt not found.")

    for asked in ({"version": 9}, {"label": "nope"}, {"label": "production"}):
        firestore.post(BATCH_GET, payload=[PROMPT_V3, missing("user_limits/bob")])
        with pytest.raises(HttpError) as caught:
            await store.begin_execution(uid="bob", prompt_id="p1", build=refuse, **asked)
        # The refusal of a prompt the caller may not read (prepare's), never one that
        # tells its versions apart.
        assert caught.value.code == ErrorCode.PROMPT_NOT_FOUND
    # Build saw the prompt as read, no version was read after it, nothing was committed.
    assert [(p.version, p.content) for p in seen] == [(3, "three")] * 3
    assert [len(r) for r in reads(firestore)] == [3, 2, 2]
    assert sent(firestore, COMMIT) == []
