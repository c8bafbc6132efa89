"""The checks that need the prompt (``run._prepare``, pure): access, variables, the
render, size, and what retrieval will search for."""

from __future__ import annotations

from typing import Any

import pytest

from promptstream import ExecuteRequest, HttpError, Settings
from promptstream.run._prepare import prepare
from support.fakes import declared, prompt

SETTINGS = Settings(max_prompt_chars=200, max_context_chars=100, record_text_chars=10)


def request(**fields: Any) -> ExecuteRequest:
    return ExecuteRequest(prompt_id="p1", **{"variables": {"topic": "owls"}, **fields})


def test_someone_elses_private_prompt_is_not_found_like_a_missing_one() -> None:
    for found in (None, prompt(owner_uid="bob")):
        with pytest.raises(HttpError) as refused:
            prepare("alice", request(), found, SETTINGS)
        assert (refused.value.status, refused.value.code) == (404, "prompt_not_found")
    assert prepare("alice", request(), prompt(owner_uid="bob", public=True), SETTINGS)


@pytest.mark.parametrize(
    ("content", "variables", "code", "details"),
    [
        ("{{a}} {{b}}", {}, "missing_variables", {"missing": ["a", "b"]}),
        ("{{a}}", {"a": "1", "z": "2"}, "unknown_variables", {"unknown": ["z"]}),
        ("{{__x__}}", {}, "invalid_variable_names", {"invalid": ["__x__"]}),
    ],
)
def test_variable_errors_name_the_variables(
    content: str, variables: dict[str, str], code: str, details: dict[str, Any]
) -> None:
    with pytest.raises(HttpError) as refused:
        prepare("alice", request(variables=variables), prompt(content), SETTINGS)
    assert (refused.value.status, refused.value.code, refused.value.details) == (
        400,
        code,
        details,
    )


def test_the_render_fills_defaults_and_records_only_what_it_used() -> None:
    found = prompt(
        "Hi {{name}}",
        system_prompt="Be {{tone}}.",
        variables=[declared("tone", default="kind"), declared("unused", default="u" * 50)],
    )
    ex = prepare("alice", request(variables={"name": "Ann"}), found, SETTINGS)
    assert (ex.user_prompt, ex.system_prompt) == ("Hi Ann", "Be kind.")
    assert ex.values == {"name": "Ann", "tone": "kind"}
    assert ex.prompt_tokens > 0
    assert ex.overrides(77) == {
        "model": SETTINGS.default_model,
        "max_tokens": 77,
        "temperature": None,
    }
    assert (
        prepare("alice", request(max_tokens=5), prompt(), SETTINGS).overrides(77)["max_tokens"] == 5
    )


def test_the_context_and_its_framing_count_against_the_prompt_limit() -> None:
    with pytest.raises(HttpError) as refused:
        prepare("alice", request(context="c" * 101), prompt(), SETTINGS)
    assert refused.value.code == "prompt_too_large"
    # 95 characters of context fit alone, but not with the prompt and the framing.
    with pytest.raises(HttpError):
        prepare("alice", request(context="c" * 95), prompt("x" * 100), SETTINGS)


def test_the_request_s_documents_and_top_k_win_within_the_bounds() -> None:
    settings = Settings(max_documents_per_prompt=2, retrieval_top_k_max=3)
    found = prompt(
        "Q: {{q}}",
        variables=[declared("q", required=False)],
        document_ids=("d1", "../bad", "d1", "d2", "d3"),
        top_k=2,
        retrieval_query_variable="q",
    )
    ex = prepare("alice", request(variables={"q": "cost?"}), found, settings)
    assert (ex.document_ids, ex.top_k, ex.query) == (("d1", "d2"), 2, "cost?")
    ex = prepare(
        "alice", request(variables={"q": " "}, document_ids=["d9"], top_k=9), found, settings
    )
    assert (ex.document_ids, ex.top_k, ex.query) == (("d9",), 3, "Q:  ")


@pytest.mark.parametrize(
    ("content", "query_variable", "values", "query"),
    [
        # The named variable wins.
        ("Answer {{q}} for {{who}}", "q", {"q": "cost?", "who": "Ann"}, "cost?"),
        # None named: the values, in the order the template uses them, not the template.
        ("Answer {{q}} for {{who}}", None, {"q": "cost?", "who": "Ann"}, "cost?\nAnn"),
        ("Please answer, with care: {{q}}", None, {"q": "cost?"}, "cost?"),
        # A named variable left blank: the other values.
        ("{{q}} {{who}}", "q", {"q": " ", "who": "Ann"}, "Ann"),
        # Blank values, or no variables at all: the rendered prompt.
        ("Q: {{q}}", None, {"q": " "}, "Q:  "),
        ("What is the refund policy?", None, {}, "What is the refund policy?"),
    ],
)
def test_the_query_is_the_chosen_variable_else_the_values_else_the_prompt(
    content: str, query_variable: str | None, values: dict[str, str], query: str
) -> None:
    found = prompt(
        content,
        variables=[declared(name, required=False) for name in values],
        document_ids=("d1",),
        retrieval_query_variable=query_variable,
    )
    assert prepare("alice", request(variables=values), found, Settings()).query == query
