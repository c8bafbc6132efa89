"""Runs of a prompt's versions (issue 27) on the emulator: by default the latest, by
number, by label (resolved at each opening, so a label moved between two runs is
followed), each recorded with the version that ran; what the upstream was sent is that
version's text; a version or label the prompt lacks, and any version of another user's
private prompt, refused before the first byte with nothing written or sent upstream.
Who may write versions: rules-tests/versions.test.js; docs/adr/0900-prompt-versions.md."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from promptstream.store._firestore import decode_fields, encode_fields
from support import (
    ROOT,
    FirestoreEmulator,
    FunctionServer,
    auth,
    body,
    executions,
    id_token,
    the_record,
)
from support.http import Reply, post

VERSIONS = [
    {"content": "one about {{topic}} [[fake chunks=1]]", "system_prompt": "First."},
    {"content": "two about {{topic}} [[fake chunks=1]]"},
    {
        "content": "three for {{name}} [[fake chunks=1]]",
        "variables": [{"name": "name", "required": False, "default": "Ada"}],
    },
]


def add_versions(
    db: Any, prompt_id: str = "p1", *, labels: dict[str, int] | None = None, public: bool = False
) -> None:
    """Alice's prompt at version 3 holding VERSIONS[2], and its three versions, as the
    web app saves them."""
    ref = db.collection("prompts").document(prompt_id)
    for n, fields in enumerate(VERSIONS, start=1):
        ref.collection("versions").document(str(n)).set({**fields, "created_by": "alice"})
    ref.set(
        {
            "owner_uid": "alice",
            "title": "Versioned",
            "public": public,
            "version": len(VERSIONS),
            "labels": labels or {},
            **VERSIONS[-1],
        }
    )


def sent_upstream(fake: FakeOpenRouterThread) -> list[dict[str, str]]:
    """The messages of the last upstream request, the fake's directive taken out."""
    return [
        {"role": m["role"], "content": m["content"].replace(" [[fake chunks=1]]", "")}
        for m in fake.requests()[-1]["json"]["messages"]
    ]


def ran(got: Reply, db: Any) -> tuple[int, int]:
    """The version the start event and the record name (the run completed)."""
    assert got.status == 200, got.raw[:300]
    assert got.named("end")
    start = got.named("start")[0]
    record = db.collection("executions").document(start["execution_id"]).get().to_dict()
    assert record["status"] == "completed"
    return start["prompt_version"], record["prompt_version"]


def test_by_default_the_latest_runs_and_is_recorded(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_versions(db, labels={"production": 1})
    got = post(stream_server, body())
    # The latest, not the production label: a run names a label to get one.
    assert ran(got, db) == (3, 3)
    assert sent_upstream(fake_upstream) == [{"role": "user", "content": "three for Ada"}]
    assert "prompt_label" not in the_record(db)


def test_a_version_by_number_runs_that_version_and_is_recorded(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_versions(db)
    got = post(stream_server, body(version=1, variables={"topic": "otters"}))
    assert ran(got, db) == (1, 1)
    # Its system prompt and its variables, not the latest's.
    assert sent_upstream(fake_upstream) == [
        {"role": "system", "content": "First."},
        {"role": "user", "content": "one about otters"},
    ]
    record = the_record(db)
    assert record["variables"] == {"topic": "otters"}


def test_a_label_runs_the_version_it_names_and_a_moved_label_is_followed(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_versions(db, labels={"production": 2})
    first = post(stream_server, body(label="production", variables={"topic": "bees"}))
    assert ran(first, db) == (2, 2)
    assert sent_upstream(fake_upstream)[-1]["content"] == "two about bees"
    # The owner moves the label (as the web app does): the next run follows it.
    db.collection("prompts").document("p1").update({"labels.production": 1})
    second = post(stream_server, body(label="production", variables={"topic": "bees"}))
    assert ran(second, db) == (1, 1)
    assert sent_upstream(fake_upstream)[-1]["content"] == "one about bees"
    labels = {r["prompt_version"]: r["prompt_label"] for r in executions(db)}
    assert labels == {2: "production", 1: "production"}


def test_the_non_streaming_answer_names_the_version(
    db: Any, execute_server: FunctionServer
) -> None:
    add_versions(db, labels={"staging": 2})
    got = post(execute_server, body(label="staging", variables={"topic": "owls"}))
    assert got.status == 200, got.raw[:300]
    assert got.json["prompt_version"] == 2
    assert the_record(db)["prompt_version"] == 2


def test_a_prompt_saved_before_versions_is_version_1(
    db: Any, stream_server: FunctionServer
) -> None:
    db.collection("prompts").document("p1").set(
        {
            "owner_uid": "alice",
            "title": "Old",
            "public": False,
            "content": "old {{topic}} [[fake chunks=1]]",
        }
    )
    assert ran(post(stream_server, body(variables={"topic": "t"})), db) == (1, 1)
    assert ran(post(stream_server, body(version=1, variables={"topic": "t"})), db) == (1, 1)
    refused = post(stream_server, body(version=2, variables={"topic": "t"}))
    assert refused.status == 404 and refused.error()["code"] == "version_not_found"


@pytest.mark.parametrize(
    ("asked", "details"),
    [
        ({"version": 4}, {"version": 4, "latest": 3}),
        ({"label": "staging"}, {"label": "staging"}),
    ],
    ids=["a version past the latest", "a label the prompt lacks"],
)
def test_a_missing_version_or_label_is_refused_before_anything_is_written(
    asked: dict[str, Any],
    details: dict[str, Any],
    db: Any,
    stream_server: FunctionServer,
    fake_upstream: FakeOpenRouterThread,
) -> None:
    add_versions(db, labels={"production": 1})
    got = post(stream_server, body(variables={"topic": "t"}, **asked))
    assert got.status == 404
    error = got.error()
    assert (error["code"], error["details"]) == ("version_not_found", details)
    assert executions(db) == []
    assert fake_upstream.stats()["requests"] == 0


def test_a_label_past_the_versions_written_is_refused(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    # A label the rules would refuse (written around them): no version to run.
    add_versions(db, labels={"broken": 7})
    got = post(stream_server, body(label="broken", variables={"topic": "t"}))
    assert got.status == 404 and got.error()["code"] == "version_not_found"
    assert executions(db) == [] and fake_upstream.stats()["requests"] == 0


def test_any_version_of_another_users_private_prompt_is_not_found_like_a_missing_prompt(
    db: Any, stream_server: FunctionServer, fake_upstream: FakeOpenRouterThread
) -> None:
    add_versions(db, labels={"production": 1})
    absent = post(stream_server, body("nope"), auth("bob"))
    assert absent.status == 404 and absent.error()["code"] == "prompt_not_found"
    for asked in ({"version": 1}, {"version": 9}, {"label": "production"}, {"label": "x"}):
        hidden = post(stream_server, body(**asked), auth("bob"))
        assert (hidden.status, hidden.json) == (404, absent.json), asked
    assert executions(db) == [] and fake_upstream.stats()["requests"] == 0


def test_another_user_runs_a_public_prompts_version(db: Any, stream_server: FunctionServer) -> None:
    add_versions(db, "pub", public=True, labels={"production": 2})
    got = post(
        stream_server, body("pub", label="production", variables={"topic": "t"}), auth("bob")
    )
    assert ran(got, db) == (2, 2)


@pytest.mark.parametrize(
    "fields",
    [{"version": 1, "label": "production"}, {"version": 0}, {"version": "1"}, {"label": "a.b"}],
    ids=["both", "version 0", "version as text", "a label with a dot"],
)
def test_a_malformed_version_or_label_is_invalid(
    fields: dict[str, Any], db: Any, stream_server: FunctionServer
) -> None:
    add_versions(db)
    got = post(stream_server, body(**fields))
    assert got.status == 400 and got.error()["code"] == "invalid_request"
    assert executions(db) == []


# -- saves under the rules ---------------------------------------------------------------
# The web app saves with its users' tokens, under firestore.rules: here the same commits
# over the emulator's REST API, in a project of their own with the rules loaded.

RULES_PROJECT = "demo-version-saves"


def _call(host: str, method: str, path: str, doc: Any, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://{host}{path}",
        data=json.dumps(doc).encode() if doc is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _commit(host: str, writes: list[dict[str, Any]], token: str) -> int:
    root = f"/v1/projects/{RULES_PROJECT}/databases/(default)/documents"
    status, _ = _call(host, "POST", f"{root}:commit", {"writes": writes}, token)
    return status


def _name(path: str) -> str:
    return f"projects/{RULES_PROJECT}/databases/(default)/documents/{path}"


def _save_writes(n: int, content: str) -> list[dict[str, Any]]:
    """The web app's save of version ``n``: its writeBatch update of the prompt and set of
    the version, with no precondition of its own (the rules are the only guard)."""
    now = [{"fieldPath": "updated_at", "setToServerValue": "REQUEST_TIME"}]
    return [
        {
            "update": {
                "name": _name("prompts/p1"),
                "fields": encode_fields({"content": content, "version": n}),
            },
            "updateMask": {"fieldPaths": ["content", "version"]},
            "updateTransforms": now,
            "currentDocument": {"exists": True},
        },
        {
            "update": {
                "name": _name(f"prompts/p1/versions/{n}"),
                "fields": encode_fields({"content": content, "created_by": "alice"}),
            },
            "updateTransforms": [{"fieldPath": "created_at", "setToServerValue": "REQUEST_TIME"}],
        },
    ]


def _read(host: str, path: str) -> dict[str, Any]:
    root = f"/v1/projects/{RULES_PROJECT}/databases/(default)/documents"
    status, doc = _call(host, "GET", f"{root}/{path}", None, "owner")
    assert status == 200, doc
    return decode_fields(doc.get("fields", {}))


def _race(host: str, token: str, n: int) -> list[int]:
    """Eight tabs save version ``n`` at once, each over the prompt at ``n - 1``: the
    statuses of their commits."""
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def save(i: int) -> None:
        barrier.wait()
        statuses.append(_commit(host, _save_writes(n, f"v{n} from tab {i}"), token))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def test_concurrent_saves_never_make_two_versions_with_one_number(
    firestore_emulator: FirestoreEmulator,
) -> None:
    host = firestore_emulator.host
    rules = (ROOT / "firestore.rules").read_text()
    status, answer = _call(
        host,
        "PUT",
        f"/emulator/v1/projects/{RULES_PROJECT}:securityRules",
        {"rules": {"files": [{"name": "firestore.rules", "content": rules}]}},
        "owner",
    )
    assert status == 200, answer
    _call(
        host,
        "DELETE",
        f"/emulator/v1/projects/{RULES_PROJECT}/databases/(default)/documents",
        None,
        "owner",
    )
    seed = {"owner_uid": "alice", "title": "T", "public": False, "content": "v1", "version": 1}
    seed_writes = [
        {
            "update": {"name": _name("prompts/p1"), "fields": encode_fields(seed)},
            "updateTransforms": [
                {"fieldPath": "created_at", "setToServerValue": "REQUEST_TIME"},
                {"fieldPath": "updated_at", "setToServerValue": "REQUEST_TIME"},
            ],
        },
        {
            "update": {
                "name": _name("prompts/p1/versions/1"),
                "fields": encode_fields({"content": "v1", "created_by": "alice"}),
            }
        },
    ]
    assert _commit(host, seed_writes, "owner") == 200
    token = id_token("alice", project=RULES_PROJECT)
    for n in (2, 3, 4):
        assert sorted(_race(host, token, n)) == [200] + [403] * 7
        prompt = _read(host, "prompts/p1")
        version = _read(host, f"prompts/p1/versions/{n}")
        assert prompt["version"] == n
        assert prompt["content"] == version["content"]
    # A save that skips a number, or reuses one, is refused as well.
    assert _commit(host, _save_writes(6, "skipped"), token) == 403
    assert _commit(host, _save_writes(4, "again"), token) == 403
