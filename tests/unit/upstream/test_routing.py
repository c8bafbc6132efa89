"""The pure parts of model fallback and comparison: the routing choice, which faults fall
back, the way down a route and what it records, the models a request runs on, the
request's checks, the upstream settings' one declaration, and the fake's per-model knobs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from fake_openrouter import KnobError, Knobs
from fake_openrouter._knobs import coerce_knobs, for_model
from fake_openrouter._server import _candidates, _skipped
from promptstream._config import Settings, UpstreamTuning
from promptstream._errors import (
    APIConnectionError,
    APITimeoutError,
    ErrorCode,
    HttpError,
    InvalidResponseError,
    MidStreamError,
    OpenRouterError,
    StreamInterruptedError,
    status_error_for,
)
from promptstream.run._request import ExecuteRequest, check, choose_models
from promptstream.upstream._client import OpenRouterConfig
from promptstream.upstream._routing import Route, _listed, falls_back, native_routing

P, S, T = "demo/primary", "demo/second", "demo/third"
SETTINGS = Settings(allowed_models=(P, S, T, "demo/fourth"), default_model=P)


# -- which routing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("routing", "base_url", "native"),
    [
        ("auto", "https://openrouter.ai/api/v1", True),
        ("auto", "https://OpenRouter.ai/api/v1", True),
        ("auto", "https://eu.openrouter.ai/api/v1", True),
        ("auto", "http://127.0.0.1:8788/api/v1", False),
        ("auto", "https://openrouter.ai.example.com/v1", False),
        ("auto", "https://api.openai.com/v1", False),
        ("native", "http://127.0.0.1:8788/api/v1", True),
        ("client", "https://openrouter.ai/api/v1", False),
    ],
)
def test_auto_routing_is_native_only_against_openrouter(
    routing: Any, base_url: str, native: bool
) -> None:
    assert native_routing(routing, base_url) is native


# -- which faults fall back ----------------------------------------------------------


def status(code: int, message: str = "x") -> OpenRouterError:
    return status_error_for(code, message)


def moderation() -> OpenRouterError:
    return status_error_for(403, "flagged", body={"error": {"metadata": {"reasons": ["x"]}}})


FAULTS: list[tuple[str, OpenRouterError, bool]] = [
    ("429 rate limited", status(429), True),
    ("500", status(500), True),
    ("502", status(502), True),
    ("503", status(503), True),
    ("504", status(504), True),
    ("408", status(408), True),
    ("404 no endpoint for the model", status(404), True),
    ("413 too large for this model", status(413), True),
    ("400 context length", status(400, "maximum context length is 8192 tokens"), True),
    ("400 too many tokens", status(400, "Too many tokens in the prompt"), True),
    ("400 otherwise", status(400, "messages: field required"), False),
    ("401 our key", status(401), False),
    ("402 our credits", status(402), False),
    ("403 not moderation (our key's permissions)", status(403), False),
    ("403 moderation of this model", moderation(), True),
    ("connection refused", APIConnectionError("cannot reach"), True),
    ("timeout", APITimeoutError("timed out"), True),
    ("dropped before content", StreamInterruptedError("dropped"), True),
    ("not an event stream", InvalidResponseError("text/html"), True),
    ("error event before content", MidStreamError("overloaded", upstream_code=502), True),
    ("error event, no code", MidStreamError("gone"), True),
    ("error event 402", MidStreamError("credits", upstream_code=402), False),
]


@pytest.mark.parametrize(("case", "error", "expected"), FAULTS, ids=[c[0] for c in FAULTS])
def test_faults_another_model_could_serve_fall_back(
    case: str, error: OpenRouterError, expected: bool
) -> None:
    assert falls_back(error) is expected


# -- the way down a route ------------------------------------------------------------

BASE = {"model": P, "messages": [], "stream": True}


def test_client_route_asks_one_model_at_a_time() -> None:
    route = Route([P, S, T], native=False)
    assert route.body(BASE) == {**BASE, "model": P}
    assert route.fall_back(status(429)) is True
    assert route.body(BASE) == {**BASE, "model": S}
    assert route.fall_back(status(503)) is True
    assert route.model == T
    assert route.fall_back(status(503)) is False  # none left
    assert [(a["model"], a["error_code"]) for a in route.failures] == [
        (P, "rate_limited"),
        (S, "upstream_unavailable"),
        (T, "upstream_unavailable"),
    ]


def test_client_route_stops_at_an_account_fault() -> None:
    route = Route([P, S], native=False)
    assert route.fall_back(status(401)) is False
    assert route.model == P
    attempts = route.attempts(served=False, reported=None, error=status(401))
    assert attempts == [
        {"model": P, "outcome": "failed", "error_code": "upstream_auth", "status": 401,
         "message": "x"}
    ]  # fmt: skip


def test_client_route_out_of_time_records_the_failure_and_stays() -> None:
    # The first-chunk deadline has passed: the model that failed is still in the attempts.
    route = Route([P, S], native=False)
    assert route.fall_back(status(503), move=False) is False
    assert route.model == P
    attempts = route.attempts(served=False, reported=None, error=status(503))
    assert [(a["model"], a["outcome"]) for a in attempts] == [(P, "failed")]


def test_native_route_sends_the_list_alone_and_never_falls_back_itself() -> None:
    route = Route([P, S], native=True)
    body = route.body(BASE)
    assert body["models"] == [P, S] and "model" not in body
    assert route.fall_back(status(429)) is False
    assert route.failures == []


def test_one_model_is_an_ordinary_request_in_either_routing() -> None:
    for native in (True, False):
        route = Route([P], native=native)
        assert route.body(BASE) == BASE


def brief(attempts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["model"], a["outcome"], a["error_code"], a["status"]) for a in attempts]


ROUTE_ENDS: list[tuple[str, bool, list[str], dict[str, Any], list[tuple[Any, ...]]]] = [
    ("client: the primary answered", False, [], {"served": True}, [(P, "answered", None, None)]),
    (
        "client: the second answered after the primary's 429",
        False,
        [429],
        {"served": True},
        [(P, "failed", "rate_limited", 429), (S, "answered", None, None)],
    ),
    (
        "client: the second failed after its first chunk",
        False,
        [429],
        {"served": True, "error": MidStreamError("x", upstream_code=502)},
        [(P, "failed", "rate_limited", 429), (S, "failed", "upstream_error", 502)],
    ),
    ("client: nothing yet (or cancelled before a chunk)", False, [], {}, []),
    (
        "native: the second answered, as the chunks say",
        True,
        [],
        {"served": True, "reported": S},
        [(P, "skipped", None, None), (S, "answered", None, None)],
    ),
    (
        "native: the third answered under a dated id",
        True,
        [],
        {"served": True, "reported": T + "-2026-01-01"},
        [(P, "skipped", None, None), (S, "skipped", None, None), (T, "answered", None, None)],
    ),
    (
        "native: every model failed, the last one's error",
        True,
        [],
        {"error": status(503)},
        [
            (P, "skipped", None, None),
            (S, "skipped", None, None),
            (T, "failed", "upstream_unavailable", 503),
        ],
    ),
    (
        "native: an error event before content names the model that took the request",
        True,
        [],
        {"reported": S, "error": MidStreamError("x", upstream_code=502)},
        [(P, "skipped", None, None), (S, "failed", "upstream_error", 502)],
    ),
    (
        "native: our own timeout is the primary's",
        True,
        [],
        {"error": APITimeoutError("timed out")},
        [(P, "failed", "upstream_timeout", None)],
    ),
    (
        "native: an account refusal is the primary's",
        True,
        [],
        {"error": status(402)},
        [(P, "failed", "out_of_credits", 402)],
    ),
]


@pytest.mark.parametrize(
    ("case", "native", "failures", "end", "expected"), ROUTE_ENDS, ids=[c[0] for c in ROUTE_ENDS]
)
def test_attempts_record_every_model_tried_or_skipped(
    case: str,
    native: bool,
    failures: list[int],
    end: dict[str, Any],
    expected: list[tuple[Any, ...]],
) -> None:
    route = Route([P, S, T], native=native)
    for code in failures:
        assert route.fall_back(status(code))
    attempts = route.attempts(
        served=end.get("served", False), reported=end.get("reported"), error=end.get("error")
    )
    assert brief(attempts) == expected


@pytest.mark.parametrize(
    ("models", "reported", "index"),
    [
        ([P, S], S, 1),
        (["openai/gpt-4o", "openai/gpt-4o-mini"], "openai/gpt-4o-mini-2024-07-18", 1),
        (["openai/gpt-4o-mini", "openai/gpt-4o"], "openai/gpt-4o-2024-08-06", 1),
        (["a/x", "x-ai/grok-4-fast:free"], "x-ai/grok-4-fast", 1),
        ([P, S], "someone/else", 0),
        ([P, S], None, 0),
    ],
)
def test_the_reported_model_is_matched_to_the_listed_one(
    models: list[str], reported: str | None, index: int
) -> None:
    assert _listed(models, reported) == index


# -- the models a request runs on ----------------------------------------------------


def request(**fields: Any) -> ExecuteRequest:
    return ExecuteRequest.model_validate({"prompt_id": "p1", **fields})


CHOICES: list[tuple[str, dict[str, Any], str | None, list[str], tuple[str, ...]]] = [
    ("the default", {}, None, [], (P,)),
    ("the request's model", {"model": S}, T, [], (S,)),
    ("the prompt's preferred model", {}, S, [], (S,)),
    ("a preferred model not allowed: the default", {}, "not/allowed", [], (P,)),
    ("the request's fallbacks", {"fallback_models": [S, T]}, None, [T], (P, S, T)),
    ("no fallbacks asked: none", {"fallback_models": []}, None, [S], (P,)),
    ("the prompt's fallbacks", {}, None, [S, T], (P, S, T)),
    ("the prompt's, minus the disallowed", {}, None, ["x/no", T], (P, T)),
    ("the prompt's, minus the primary and repeats", {"model": S}, None, [S, T, T], (S, T)),
]


@pytest.mark.parametrize(
    ("case", "fields", "preferred", "prompt_fallbacks", "expected"),
    CHOICES,
    ids=[c[0] for c in CHOICES],
)
def test_models_come_from_the_request_then_the_prompt_then_the_default(
    case: str,
    fields: dict[str, Any],
    preferred: str | None,
    prompt_fallbacks: list[str],
    expected: tuple[str, ...],
) -> None:
    assert choose_models(request(**fields), preferred, prompt_fallbacks, SETTINGS) == expected


def test_a_request_fallback_equal_to_the_primary_is_refused() -> None:
    with pytest.raises(HttpError) as caught:
        choose_models(request(fallback_models=[S, P]), None, [], SETTINGS)
    assert caught.value.code == ErrorCode.INVALID_REQUEST
    # The primary from the prompt counts too.
    with pytest.raises(HttpError):
        choose_models(request(fallback_models=[S]), S, [], SETTINGS)


REFUSED: list[tuple[str, dict[str, Any], ErrorCode]] = [
    ("a model not allowed", {"model": "x/no"}, ErrorCode.MODEL_NOT_ALLOWED),
    ("a fallback not allowed", {"fallback_models": [S, "x/no"]}, ErrorCode.MODEL_NOT_ALLOWED),
    ("a fallback twice", {"fallback_models": [S, S]}, ErrorCode.INVALID_REQUEST),
    ("four fallbacks", {"fallback_models": [S, T, "demo/fourth", P]}, ErrorCode.INVALID_REQUEST),
    ("fallbacks not a list", {"fallback_models": S}, ErrorCode.INVALID_REQUEST),
    ("an empty model id", {"fallback_models": [""]}, ErrorCode.INVALID_REQUEST),
    ("a comparison id with a slash", {"comparison_id": "a/b"}, ErrorCode.INVALID_REQUEST),
    ("a comparison id too long", {"comparison_id": "a" * 101}, ErrorCode.INVALID_REQUEST),
    ("a comparison id not a string", {"comparison_id": 7}, ErrorCode.INVALID_REQUEST),
]


@pytest.mark.parametrize(("case", "fields", "code"), REFUSED, ids=[c[0] for c in REFUSED])
def test_the_request_is_refused_before_any_read(
    case: str, fields: dict[str, Any], code: ErrorCode
) -> None:
    with pytest.raises(HttpError) as caught:
        check(json.dumps({"prompt_id": "p1", **fields}).encode(), SETTINGS)
    assert caught.value.code == code
    assert caught.value.message


def test_a_lower_max_fallback_models_is_enforced() -> None:
    settings = SETTINGS.model_copy(update={"max_fallback_models": 1})
    with pytest.raises(HttpError, match="At most 1 fallback"):
        check(json.dumps({"prompt_id": "p1", "fallback_models": [S, T]}).encode(), settings)
    assert choose_models(request(), None, [S, T], settings) == (P, S)


def test_a_good_request_keeps_its_fields() -> None:
    body = check(
        json.dumps(
            {"prompt_id": "p1", "fallback_models": [S, T], "comparison_id": "cmp_1-a"}
        ).encode(),
        SETTINGS,
    )
    assert (body.model, body.fallback_models, body.comparison_id) == (None, [S, T], "cmp_1-a")


# -- the upstream settings, declared once --------------------------------------------


def test_every_upstream_setting_is_read_from_its_environment_name() -> None:
    # Twice each default: a value no field has unless it was read.
    doubled = {name: getattr(UpstreamTuning(), name) * 2 for name in UpstreamTuning.model_fields}
    settings = Settings.from_env(
        {f"UPSTREAM_{name.upper()}": str(v) for name, v in doubled.items()}
    )
    config = OpenRouterConfig.from_settings(settings, "sk-key")
    for name, value in doubled.items():
        assert getattr(settings.upstream, name) == value
        assert getattr(config, name) == value
    assert isinstance(config, UpstreamTuning)


def test_a_bare_upstream_variable_is_not_a_setting() -> None:
    assert Settings.from_env({"UPSTREAM": "x"}).upstream == UpstreamTuning()


def test_defaults_are_the_same_for_the_settings_and_the_client() -> None:
    config = OpenRouterConfig.from_settings(Settings.from_env({}), "sk-key")
    alone = OpenRouterConfig(api_key="sk-key")  # type: ignore[arg-type]
    assert {n: getattr(config, n) for n in UpstreamTuning.model_fields} == {
        n: getattr(alone, n) for n in UpstreamTuning.model_fields
    }


def test_fallback_settings_come_from_the_environment() -> None:
    settings = Settings.from_env({"FALLBACK_ROUTING": "native", "MAX_FALLBACK_MODELS": "2"})
    assert (settings.fallback_routing, settings.max_fallback_models) == ("native", 2)
    assert OpenRouterConfig.from_settings(settings, "k").fallback_routing == "native"
    for bad in ({"FALLBACK_ROUTING": "sometimes"}, {"MAX_FALLBACK_MODELS": "4"}):
        with pytest.raises(ValidationError):
            Settings.from_env(bad)
    with pytest.raises(ValidationError):
        Settings.from_env({"UPSTREAM_MAX_RETRIES": "-1"})


# -- the fake's per-model knobs ------------------------------------------------------


def test_per_model_knobs_win_while_their_model_is_served() -> None:
    coerced = coerce_knobs({"status": 500, "per_model": {S: {"status": "429", "delay": "0"}}})
    knobs = Knobs(**coerced)
    own, has_own = for_model(knobs, S)
    assert has_own and (own.status, own.delay) == (429, 0.0)
    other, has_other = for_model(knobs, P)
    assert not has_other and other.status == 500


@pytest.mark.parametrize(
    "value",
    [
        '{"a": 1}',
        "[1]",
        "not json",
        {"a": {"nope": 1}},
        {"a": {"status": "x"}},
        {"a": {"per_model": {}}},
    ],
)
def test_bad_per_model_values_are_refused(value: Any) -> None:
    with pytest.raises((KnobError, ValueError)):
        coerce_knobs({"per_model": value})


def test_the_fake_tries_model_then_the_models_list_without_repeats() -> None:
    assert _candidates({"models": [P, S]}) == [P, S]
    assert _candidates({"model": T, "models": [P, T, S]}) == [T, P, S]
    assert _candidates({"models": "x"}) == ["fake/demo-model"]


@pytest.mark.parametrize(
    ("knobs", "skipped"),
    [
        ({"status": 429}, True),
        ({"status": 503}, True),
        ({"disconnect": True}, True),
        ({"status": 401}, False),
        ({"status": 402}, False),
        ({"status": 200}, False),
        ({"error_after": 0}, False),
        ({"first_byte_delay": 1}, False),
    ],
)
def test_the_fake_skips_a_model_that_fails_before_its_first_byte(
    knobs: dict[str, Any], skipped: bool
) -> None:
    assert _skipped(Knobs(**coerce_knobs(knobs))) is skipped
