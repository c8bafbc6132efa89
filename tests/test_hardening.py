"""Issue 14, phase 2, through the server as production runs it, the Firestore emulator
and the hostile fake: names Firestore reserves, any uid Firebase accepts, everything sent
upstream counted, a per-script estimate after a disconnect, records and limits that never
stay stuck, and a budget reserved at admission."""

from __future__ import annotations

from typing import Any

from test_endpoint import closed_record, post_stream, run

from promptstream._ids import uid_key
from support import FunctionServer, add_prompt, auth, body, executions


def limits(db: Any, uid: str = "alice") -> dict[str, Any]:
    return dict(db.collection("user_limits").document(uid_key(uid)).get().to_dict() or {})


# -- names and uids ---------------------------------------------------------------------


def test_a_reserved_placeholder_name_is_400_not_a_failed_commit(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="Hello {{__x__}} and {{ok}}")
    got = run(post_stream(stream_server.url, body(variables={"ok": "y"}), auth()))
    assert got.status == 400
    assert got.json["error"]["code"] == "invalid_variable_names"
    assert got.json["error"]["details"] == {"invalid": ["__x__"]}
    assert executions(db) == []


def test_any_uid_firebase_accepts_runs_and_is_limited_under_its_key(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(db, content="Say {{topic}}", public=True)
    for uid in ("a/b/c", "..", "__x__", "é.ü"):
        got = run(post_stream(stream_server.url, body(variables={"topic": "t"}), auth(uid)))
        assert got.status == 200, (uid, got.json)
        doc = limits(db, uid)
        assert doc["uid"] == uid and doc["leases"] == {} and doc["tokens_today"] > 0
    # Nothing was written under a path built from a raw uid.
    assert not db.collection("user_limits").document("a").collection("b").get()
    owners = {r["owner_uid"] for r in executions(db)}
    assert owners == {"a/b/c", "..", "__x__", "é.ü"}


# -- what counts against MAX_PROMPT_CHARS -----------------------------------------------


def test_the_context_framing_counts_against_the_prompt_limit(
    db: Any, stream_server: FunctionServer
) -> None:
    # 99,990 + 100,000 characters fit 200,000; with the context's framing sent upstream
    # too, they do not.
    add_prompt(db, content="{{topic}}" + "p" * (99_990 - 1))
    payload = body(variables={"topic": "t"}, context="c" * 100_000)
    got = run(post_stream(stream_server.url, payload, auth()))
    assert got.status == 400
    assert got.json["error"]["code"] == "prompt_too_large"


def test_a_huge_unused_default_stays_out_of_the_record(
    db: Any, stream_server: FunctionServer
) -> None:
    add_prompt(
        db,
        content="Say {{topic}}",
        variables=[
            {"name": "topic", "required": True},
            {"name": "unused", "required": False, "default": "u" * 1_040_000},
        ],
    )
    got = run(post_stream(stream_server.url, body(variables={"topic": "t" * 5000}), auth()))
    assert got.status == 200
    record = closed_record(db)
    assert record["status"] == "completed"
    # Only what the render used, each value cut to RECORD_VARIABLE_CHARS.
    assert record["variables"] == {"topic": "t" * 2000}
    assert limits(db)["leases"] == {} and limits(db)["tokens_today"] > 0


# -- the estimate after a disconnect ----------------------------------------------------


def test_a_disconnect_is_debited_per_script(db: Any, stream_server: FunctionServer) -> None:
    cjk = "漢字仮名交じり文" * 1000  # 8,000 characters: about a token each
    add_prompt(db, content="{{topic}} [[fake chunks=200 delay=0.05]]")
    got = run(
        post_stream(stream_server.url, body(variables={"topic": cjk}), auth(), stop_after_content=1)
    )
    assert got.status == 200
    record = closed_record(db)
    assert record["status"] == "cancelled" and record["usage"] is None
    # Characters / 4 would have been about 2,000.
    assert record["tokens_debited"] >= 8000
    assert limits(db)["tokens_today"] == record["tokens_debited"]
