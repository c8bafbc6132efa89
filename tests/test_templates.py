"""{{variable}} rendering: tables of cases, including the injection the old code allowed."""

from __future__ import annotations

import pytest

from promptstream._templates import (
    VariableError,
    VariableSpec,
    placeholders,
    render,
    resolve_variables,
)


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
    assert render(template, values) == expected


def test_placeholders_in_order_of_first_use() -> None:
    assert placeholders("{{b}} {{a}} {{ b }}", None, "{{c}}") == ["b", "a", "c"]


def test_missing_required_variables_are_reported_together() -> None:
    declared = [VariableSpec("tone", required=False, default="warm"), VariableSpec("x")]
    with pytest.raises(VariableError) as info:
        resolve_variables(declared, ["topic", "tone", "audience"], {"tone": "dry"})
    assert info.value.code == "missing_variables"
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
    assert info.value.code == "unknown_variables"
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
