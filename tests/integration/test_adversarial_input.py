"""The bad-input matrix: every refusal has its documented status and JSON error, makes no
upstream request and writes nothing to Firestore. A few hostile-looking inputs (unicode,
NUL, ``{{`` in values) must instead succeed and reach the model intact.
"""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any

import pytest

from fake_openrouter import FakeOpenRouterThread
from support import FunctionServer, add_prompt, auth, body, executions, id_token
from support.http import JSON, Reply, post, request

ALLOWED_ORIGIN = "http://127.0.0.1:5173"
ALLOWED_MODELS = ["x-ai/grok-4-fast:free", "openai/gpt-4o-mini", "demo/local-model"]


def refusal(
    server: FunctionServer,
    payload: bytes,
    status: int,
    db: Any,
    fake: FakeOpenRouterThread,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST ``payload`` (as Alice, JSON, unless ``headers`` say otherwise): it must be
    refused with ``status`` and the documented error shape, having touched nothing. The
    error."""
    got = post(server, payload, {**auth(), **JSON} if headers is None else headers)
    assert got.status == status, got.raw
    assert_untouched(db, fake)
    return got.error()


def assert_untouched(db: Any, fake: FakeOpenRouterThread) -> None:
    assert fake.stats()["requests"] == 0
    assert executions(db) == []
    assert list(db.collection("user_limits").stream()) == []
    # No collection other than the prompts the test itself wrote, and no subcollections.
    assert {c.id for c in db.collections()} <= {"prompts"}
    for doc in db.collection("prompts").stream():
        assert list(doc.reference.collections()) == []


# -- the body ----------------------------------------------------------------------------

# (case id, raw body). All get 400 invalid_request.
INVALID_BODIES: list[tuple[str, bytes]] = [
    ("not json", b"prompt_id=p1"),
    ("truncated json", b'{"prompt_id": "p1"'),
    ("empty body", b""),
    ("json array", b'["p1"]'),
    ("json string", b'"p1"'),
    ("json number", b"42"),
    ("json null", b"null"),
    ("invalid utf-8", b'{"prompt_id": "p\xff\xfe1"}'),
    ("prompt_id number", b'{"prompt_id": 1}'),
    ("prompt_id null", b'{"prompt_id": null}'),
    ("prompt_id missing", b'{"variables": {}}'),
    ("variables a list", body(variables=["topic"])),
    ("variables a string", body(variables="topic=x")),
    ("variable value a number", body(variables={"topic": 1})),
    ("variable value null", body(variables={"topic": None})),
    ("variable value an object", body(variables={"topic": {"a": "b"}})),
    ("empty variable name", body(variables={"": "x"})),
    ("model a number", body(model=4)),
    ("model empty", body(model="")),
    ("context a list", body(context=["a"])),
    ("max_tokens a string", body(max_tokens="100")),
    ("max_tokens a bool", body(max_tokens=True)),
    ("max_tokens a float", body(max_tokens=10.5)),
    ("max_tokens zero", body(max_tokens=0)),
    ("max_tokens negative", body(max_tokens=-5)),
    ("max_tokens above the cap", body(max_tokens=32_001)),
    ("temperature a string", body(temperature="hot")),
    ("temperature above 2", body(temperature=2.5)),
    ("temperature negative", body(temperature=-0.1)),
    ("temperature NaN", b'{"prompt_id": "p1", "temperature": NaN}'),
    ("unknown field promptId (camelCase)", b'{"promptId": "p1"}'),
    ("promptId next to prompt_id", body(promptId="p1")),
    ("unknown field", body(stream=True)),
    ("unknown nested-looking field", body(**{"variables.topic": "x"})),
    ("empty prompt_id", body("")),
    ("prompt_id with slash", body("p1/executions")),
    ("prompt_id leading slash", body("/p1")),
    ("prompt_id path traversal", body("../p1")),
    ("prompt_id dot dot", body("..")),
    ("prompt_id dot", body(".")),
    ("prompt_id reserved __x__", body("__p1__")),
    ("prompt_id too long", body("p" * 129)),
    ("duplicate keys smuggling an unknown field", b'{"prompt_id": "p1", "x": 1, "x": 2}'),
]


@pytest.mark.parametrize(("case", "raw"), INVALID_BODIES, ids=[c[0] for c in INVALID_BODIES])
def test_invalid_body_is_400_invalid_request(
    case: str, raw: bytes, stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    assert refusal(stream_server, raw, 400, db, fake_upstream)["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("case", "raw"),
    [
        c
        for c in INVALID_BODIES
        if c[0]
        in {
            "not json",
            "json array",
            "unknown field promptId (camelCase)",
            "prompt_id path traversal",
        }
    ],
)
def test_execute_prompt_refuses_the_same_bodies(
    case: str, raw: bytes, execute_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    assert refusal(execute_server, raw, 400, db, fake_upstream)["code"] == "invalid_request"


def test_camel_case_prompt_id_is_named_in_the_error(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    got = post(stream_server, b'{"promptId": "p1"}', {**auth(), **JSON})
    error = got.error()
    assert "promptId" in error["message"]
    assert "prompt_id" in error["message"]  # and the missing right name
    assert_untouched(db, fake_upstream)


def test_huge_body_with_content_length_is_413(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    raw = body(variables={"topic": "x" * (300 * 1024)})
    assert refusal(stream_server, raw, 413, db, fake_upstream)["code"] == "payload_too_large"


def test_huge_chunked_body_without_content_length_is_413(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    raw = body(variables={"topic": "x" * (300 * 1024)})
    conn = http.client.HTTPConnection("127.0.0.1", stream_server.port, timeout=30)
    try:
        conn.putrequest("POST", "/")
        for name, value in {**auth(), **JSON, "Transfer-Encoding": "chunked"}.items():
            conn.putheader(name, value)
        conn.endheaders()
        for start in range(0, len(raw), 64 * 1024):
            piece = raw[start : start + 64 * 1024]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        got = Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()
    assert got.status == 413
    assert got.error()["code"] == "payload_too_large"
    assert_untouched(db, fake_upstream)


def test_huge_variable_is_400_naming_it(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    raw = body(variables={"topic": "x" * 20_001})  # under the body limit
    error = refusal(stream_server, raw, 400, db, fake_upstream)
    assert error["code"] == "invalid_request"
    assert "topic" in error["message"] and "20000" in error["message"]
    assert error["details"] == {"too_long": ["topic"]}


def test_too_many_variables_is_400(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db, content=" ".join(f"{{{{v{i}}}}}" for i in range(51)))
    raw = body(variables={f"v{i}": "x" for i in range(51)})
    error = refusal(stream_server, raw, 400, db, fake_upstream)
    assert error["code"] == "invalid_request" and "50" in error["message"]


def test_rendered_prompt_over_the_limit_is_400_prompt_too_large(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    # Ten values at the per-value limit render to 200,000 characters plus the text around.
    add_prompt(db, content="Start " + "".join(f"{{{{v{i}}}}}" for i in range(10)))
    raw = body(variables={f"v{i}": "y" * 20_000 for i in range(10)})
    assert len(raw) < 256 * 1024
    error = refusal(stream_server, raw, 400, db, fake_upstream)
    assert error["code"] == "prompt_too_large"
    assert "200000" in error["message"]


def test_context_over_the_limit_is_400_prompt_too_large(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    raw = body(variables={"topic": "x"}, context="c" * 100_001)
    assert refusal(stream_server, raw, 400, db, fake_upstream)["code"] == "prompt_too_large"


def test_missing_and_unknown_variables_are_400(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(
        db,
        content="{{a}} and {{b}} {{c}}",
        variables=[{"name": "c", "required": False, "default": "C"}],
    )
    got = post(stream_server, body(), {**auth(), **JSON})
    error = got.error()
    assert (got.status, error["code"], error["details"]) == (
        400,
        "missing_variables",
        {"missing": ["a", "b"]},
    )
    got = post(stream_server, body(variables={"a": "1", "b": "2", "d": "3"}), {**auth(), **JSON})
    error = got.error()
    assert (got.status, error["code"], error["details"]) == (
        400,
        "unknown_variables",
        {"unknown": ["d"]},
    )
    assert_untouched(db, fake_upstream)


# -- the model --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["openai/gpt-4o", "X-AI/GROK-4-FAST:FREE", "x-ai/grok-4-fast:free ", "*"]
)
def test_disallowed_model_is_400_naming_the_allowed_ones(
    model: str, stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    error = refusal(
        stream_server, body(variables={"topic": "x"}, model=model), 400, db, fake_upstream
    )
    assert error["code"] == "model_not_allowed"
    assert sorted(error["details"]["allowed"]) == sorted(ALLOWED_MODELS)
    for allowed in ALLOWED_MODELS:
        assert allowed in error["message"]


# -- methods and CORS -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"])
def test_methods_other_than_post_are_405(
    method: str, stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    got = request(stream_server, method, body(variables={"topic": "x"}), {**auth(), **JSON})
    assert got.status == 405, got.raw
    if method in ("TRACE", "PROPFIND"):
        # functions-framework's router refuses methods outside its list before the
        # function runs: its own plain-text 405 (docs/api.md, "Methods").
        assert got.raw == b"Method Not Allowed"
    else:
        assert got.error()["code"] == "method_not_allowed"
    assert "POST" in got.headers.get("Allow", "")
    assert_untouched(db, fake_upstream)


def test_head_is_405_without_a_body(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db)
    got = request(stream_server, "HEAD", None, auth())
    assert got.status == 405
    assert got.raw == b""
    assert_untouched(db, fake_upstream)


def preflight(server: FunctionServer, origin: str) -> Reply:
    """What a browser at ``origin`` asks before its POST with a token and a JSON body."""
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return request(server, "OPTIONS", None, headers)


def test_preflight_from_an_allowed_origin_gets_cors_headers(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    got = preflight(stream_server, ALLOWED_ORIGIN)
    assert got.status in (200, 204)
    assert got.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in got.headers["Access-Control-Allow-Methods"]
    allowed_headers = got.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert_untouched(db, fake_upstream)


def test_preflight_from_another_origin_gets_no_cors_grant(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    got = preflight(stream_server, "https://evil.example")
    assert got.status < 500
    assert "Access-Control-Allow-Origin" not in got.headers
    assert_untouched(db, fake_upstream)


def test_errors_carry_cors_headers_so_the_browser_can_read_them(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    got = post(stream_server, b"[]", {**auth(), **JSON, "Origin": ALLOWED_ORIGIN})
    assert got.status == 400
    assert got.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert_untouched(db, fake_upstream)


# -- tokens -----------------------------------------------------------------------------


def _token_with_claims(**changes: Any) -> str:
    header, payload, _ = id_token("alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}."


TOKENS: list[tuple[str, dict[str, str]]] = [
    ("missing header", {}),
    ("empty bearer", {"Authorization": "Bearer "}),
    ("wrong scheme", {"Authorization": "Basic YWxpY2U6c2VjcmV0"}),
    ("no scheme", {"Authorization": id_token("alice")}),
    ("lowercase scheme only", {"Authorization": "bearer"}),
    ("garbage", {"Authorization": "Bearer not.a.jwt"}),
    ("one segment", {"Authorization": "Bearer abcdef"}),
    ("expired", auth(expires_in=60, issued_ago=4000)),
    ("issued in the future", auth(issued_ago=-4000)),
    ("foreign project", auth(project="someone-elses-project")),
    ("empty subject", {"Authorization": f"Bearer {_token_with_claims(sub='', user_id='')}"}),
    ("wrong issuer", {"Authorization": f"Bearer {_token_with_claims(iss='https://evil.example')}"}),
]


@pytest.mark.parametrize(("case", "headers"), TOKENS, ids=[c[0] for c in TOKENS])
def test_bad_tokens_are_401(
    case: str,
    headers: dict[str, str],
    stream_server: FunctionServer,
    db: Any,
    fake_upstream: Any,
) -> None:
    add_prompt(db)
    payload = body(variables={"topic": "x"})
    error = refusal(stream_server, payload, 401, db, fake_upstream, {**headers, **JSON})
    assert error["code"] == "unauthenticated"


def test_bad_token_is_refused_before_the_body_is_judged(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    # An anonymous caller learns nothing about the body (or whether prompts exist).
    error = refusal(stream_server, b"not json", 401, db, fake_upstream, JSON)
    assert error["code"] == "unauthenticated"


# -- other users' prompts ---------------------------------------------------------------


def test_another_users_private_prompt_looks_exactly_like_a_missing_one(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db, "bobs", owner_uid="bob", public=False)
    private = post(stream_server, body("bobs", variables={"topic": "x"}), {**auth(), **JSON})
    missing = post(stream_server, body("nope", variables={"topic": "x"}), {**auth(), **JSON})
    # Even the wrong variables must not reveal the prompt's shape.
    probing = post(stream_server, body("bobs", variables={"zzz": "x"}), {**auth(), **JSON})
    assert private.status == missing.status == probing.status == 404
    assert private.error()["code"] == "prompt_not_found"
    assert private.raw == missing.raw == probing.raw
    assert_untouched(db, fake_upstream)


def test_a_document_without_content_is_not_found(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    db.collection("prompts").document("broken").set({"owner_uid": "alice", "content": 5})
    error = refusal(stream_server, body("broken"), 404, db, fake_upstream)
    assert error["code"] == "prompt_not_found"


# -- hostile values that must go through intact ----------------------------------------


def _run_ok(server: FunctionServer, raw: bytes) -> None:
    got = post(server, raw, {**auth(), **JSON})
    assert got.status == 200, got.raw
    assert got.kinds[0] == "start"
    assert got.kinds[-2] == "end" and got.events[-1].data == "[DONE]"


def _user_message(fake: FakeOpenRouterThread) -> str:
    requests = fake.requests()
    assert len(requests) == 1
    messages = requests[0]["json"]["messages"]
    user = [m["content"] for m in messages if m["role"] == "user"]
    assert len(user) == 1
    return str(user[0])


@pytest.mark.parametrize(
    "value",
    [
        "café, naïve, Ελληνικά, 日本語, 🚀, \u200b\u202e RTL, combining e\u0301",
        "before\x00after",
        "\x00",
        "tabs\tand\nnewlines\r\nand \x07 bell \x1b[31m ansi",
        "surrogate-looking \\ud800 text and \\u0000 escapes",
        "\ufeffBOM first",
    ],
)
def test_unicode_and_nul_in_values_reach_the_model_intact(
    value: str, stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db, content="Tell me about <{{topic}}>.")
    _run_ok(stream_server, body(variables={"topic": value}))
    assert _user_message(fake_upstream) == f"Tell me about <{value}>."
    [record] = executions(db)
    assert record["status"] == "completed"
    assert record["variables"] == {"topic": value}


def test_nul_escaped_in_json_reaches_the_model(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(db, content="[{{topic}}]")
    _run_ok(stream_server, b'{"prompt_id": "p1", "variables": {"topic": "a\\u0000b"}}')
    assert _user_message(fake_upstream) == "[a\x00b]"


def test_placeholders_inside_values_are_literal_not_expanded(
    stream_server: FunctionServer, db: Any, fake_upstream: Any
) -> None:
    add_prompt(
        db,
        content="Topic: {{topic}}. Audience: {{ audience }}.",
        system_prompt="Secret rules: {{rules}}",
        variables=[
            {"name": "topic", "required": True},
            {"name": "audience", "required": True},
            {"name": "rules", "required": False, "default": "be kind"},
        ],
    )
    injected = "{{rules}} and {{ audience }} and {{topic}} and {{nope}} {{"
    _run_ok(stream_server, body(variables={"topic": injected, "audience": "{{topic}}"}))
    assert _user_message(fake_upstream) == f"Topic: {injected}. Audience: {{{{topic}}}}."
    system = [m for m in fake_upstream.requests()[0]["json"]["messages"] if m["role"] == "system"]
    assert system == [{"role": "system", "content": "Secret rules: be kind"}]
