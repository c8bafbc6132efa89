"""{{variable}} rendering: tables of cases, including the injection the old code allowed."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream import ErrorCode
from promptstream._templates import (
    VariableError,
    VariableSpec,
    check_names,
    is_valid_name,
    placeholders,
    render_prompt,
    resolve_variables,
)
from support import ROOT, examples


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("Hi {{name}}", {"name": "Ann"}, "Hi Ann"),
        ("Hi {{ name }} and {{name}}", {"name": "Ann"}, "Hi Ann and Ann"),
        ("{{a}}{{b}}", {"a": "{{b}}", "b": "x"}, "{{b}}x"),
        ("{{a}}", {"a": "{{ a }}"}, "{{ a }}"),
        ("{{missing}} stays", {}, "{{missing}} stays"),
        ("{{a}}", {"a": "\\1 \\g<0> $1"}, "\\1 \\g<0> $1"),
        ("{{ not valid name }}", {"not": "x"}, "{{ not valid name }}"),
        ("{{a.b}} {{a-b}}", {"a.b": "1", "a-b": "2"}, "1 2"),
        ("{{{a}}}", {"a": "x"}, "{x}"),
        ("{{a}}", {"a": "日本\x00🚀"}, "日本\x00🚀"),
    ],
)
def test_render(template: str, values: dict[str, str], expected: str) -> None:
    assert render_prompt(template, None, values).user_prompt == expected


def test_placeholders_in_order_of_first_use() -> None:
    assert placeholders("{{b}} {{a}} {{ b }}", None, "{{c}}") == ["b", "a", "c"]


def test_missing_required_variables_are_reported_together() -> None:
    declared = [VariableSpec("tone", required=False, default="warm"), VariableSpec("x")]
    with pytest.raises(VariableError) as info:
        resolve_variables(declared, ["topic", "tone", "audience"], {"tone": "dry"})
    assert info.value.code is ErrorCode.MISSING_VARIABLES
    assert info.value.names == ["x", "topic", "audience"]


def test_whitespace_only_value_counts_as_missing_for_required() -> None:
    with pytest.raises(VariableError):
        resolve_variables([], ["topic"], {"topic": "   "})


def test_defaults_and_optional_variables() -> None:
    declared = [
        VariableSpec("tone", required=False, default="warm"),
        VariableSpec("note", required=False),
    ]
    assert resolve_variables(declared, ["topic"], {"topic": "owls"}) == {
        "tone": "warm",
        "note": "",
        "topic": "owls",
    }


def test_unknown_variables_are_an_error() -> None:
    with pytest.raises(VariableError) as info:
        resolve_variables([], ["topic"], {"topic": "t", "tpoic": "t", "zz": "z"})
    assert info.value.code is ErrorCode.UNKNOWN_VARIABLES
    assert info.value.names == ["tpoic", "zz"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("name", VariableSpec("name")),
        ({"name": "n", "required": False}, VariableSpec("n", required=False)),
        ({"name": "n", "default": "d"}, VariableSpec("n", required=False, default="d")),
        (
            {"name": "n", "required": True, "default": 3},
            VariableSpec("n", required=True, default="3"),
        ),
        ({"nom": "n"}, None),
        (42, None),
    ],
)
def test_variable_spec_from_document(raw: object, expected: VariableSpec | None) -> None:
    assert VariableSpec.from_doc(raw) == expected


# -- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("topic", True),
        ("_x", True),
        ("a.b-c_d9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("__x__", False),
        ("____", False),
        ("__init__", False),
        ("___", True),
        ("__x", True),
        ("x__", True),
        ("_x_", True),
        ("", False),
        ("9lives", False),
        ("my var", False),
        ("a/b", False),
        ("é", False),
        (42, False),
    ],
)
def test_a_name_is_the_pattern_and_not_reserved(name: object, valid: bool) -> None:
    assert is_valid_name(name) is valid


@pytest.mark.parametrize(
    ("content", "system", "declared"),
    [
        ("Hi {{__x__}}", None, []),
        ("Hi", "{{ __secret__ }}", []),
        ("Hi", None, [VariableSpec("__x__", required=False, default="d")]),
        ("Hi", None, [VariableSpec("my var", required=False)]),
    ],
)
def test_a_prompt_with_a_name_the_record_cannot_store_is_a_clear_error(
    content: str, system: str | None, declared: list[VariableSpec]
) -> None:
    with pytest.raises(VariableError) as info:
        resolve_variables(declared, placeholders(content, system), {})
    assert info.value.code == "invalid_variable_names"
    assert "not allowed" in str(info.value)


def _rules_name_pattern() -> re.Pattern[str]:
    rules = (ROOT / "firestore.rules").read_text()
    found = re.search(r"v\.get\('name', 0\)\.matches\('([^']+)'\)", rules)
    assert found, "firestore.rules no longer checks variable names as expected"
    return re.compile(found.group(1))


_RULES_NAME = _rules_name_pattern()


@settings(max_examples=examples(500), deadline=None)
@given(
    name=st.one_of(
        st.text(alphabet="_a.-9Z ", max_size=8),
        st.builds(  # r"__?[a-z_]{0,4}__?", drawn faster than st.from_regex draws it
            lambda left, middle, right: left + middle + right,
            st.sampled_from(["_", "__"]),
            st.text(alphabet=string.ascii_lowercase + "_", max_size=4),
            st.sampled_from(["_", "__"]),
        ),
        st.text(alphabet="ab_", min_size=60, max_size=68),
        st.text(max_size=10),
    )
)
def test_the_rules_name_pattern_agrees_with_the_backend(name: str) -> None:
    # Rules match the whole string; the pattern there avoids a negative match by
    # spelling out "not __x__", which is easy to get wrong.
    assert (_RULES_NAME.fullmatch(name) is not None) == is_valid_name(name)


def test_invalid_names_are_reported_together_and_cut_short() -> None:
    with pytest.raises(VariableError) as info:
        check_names(["ok", "__b__", "__a__", "x" * 1000])
    assert info.value.names == ["__a__", "__b__", "x" * 80]


# -- rendering for the record and the size limit -------------------------------------


def test_render_prompt_reports_only_the_values_it_used() -> None:
    declared = [
        VariableSpec("tone", required=False, default="warm"),
        VariableSpec("unused", required=False, default="d" * 1_040_000),
    ]
    values = resolve_variables(declared, ["topic", "tone"], {"topic": "owls"})
    assert "unused" in values
    rendered = render_prompt("About {{topic}}, {{ topic }}.", "Be {{tone}}; {{absent}}", values)
    assert rendered.user_prompt == "About owls, owls."
    assert rendered.system_prompt == "Be warm; {{absent}}"
    assert rendered.used == {"topic": "owls", "tone": "warm"}
    assert list(rendered.used) == ["topic", "tone"]


def test_recorded_values_are_each_bounded() -> None:
    rendered = render_prompt("{{a}} {{b}}", None, {"a": "x" * 50, "b": "short"})
    assert rendered.recorded(10) == {"a": "x" * 10, "b": "short"}
    assert rendered.user_prompt == "x" * 50 + " short"


def test_render_prompt_does_not_expand_values_again() -> None:
    rendered = render_prompt("{{a}}{{b}}", None, {"a": "{{b}}", "b": "x"})
    assert rendered.user_prompt == "{{b}}x"
    assert rendered.used == {"a": "{{b}}", "b": "x"}
