"""Property-based tests: the variable renderer and the request model.

(The SSE decoder's random-bytes and re-chunking properties live in test_sse.py.)
"""

from __future__ import annotations

import json
import operator
import re
import string
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from promptstream import ExecuteRequest
from promptstream._templates import (
    VariableError,
    VariableSpec,
    is_valid_name,
    placeholders,
    render_prompt,
    resolve_variables,
)
from support import examples


def render(template: str, values: dict[str, str]) -> str:
    """The prompt as production renders it (``render_prompt``), which notes each value
    it put in and no other."""
    rendered = render_prompt(template, None, values)
    assert set(rendered.used) == {name for name in placeholders(template) if name in values}
    return rendered.user_prompt


# Names the renderer accepts, as the grammar says: a letter or _, then letters, digits,
# '_', '.', '-'; at most 64 characters; not __reserved__ (Firestore's, refused as
# invalid_variable_names: see test_templates.py).
# (Built from characters rather than st.from_regex: the same names, drawn several times
# faster, which keeps the unit layer quick.)
_FIRST = string.ascii_letters + "_"
names = st.builds(
    operator.add,
    st.sampled_from(_FIRST),
    st.text(alphabet=_FIRST + string.digits + ".-", max_size=20),
).filter(is_valid_name)
# Values are arbitrary text, and are often made of template syntax on purpose.
syntax = st.sampled_from(["{{", "}}", "{", "}", " ", "{{ ", " }}", "\\", "$1", "\\g<0>", "\n"])
values = st.lists(st.one_of(syntax, st.text(max_size=8), names), max_size=8).map("".join)


@st.composite
def templates(draw: Any) -> tuple[str, dict[str, str]]:
    """A template over some declared names, and a value for each name."""
    declared = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    pieces: list[str] = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            name = draw(st.sampled_from(declared))
            left, right = draw(st.sampled_from([("", ""), (" ", " "), ("  ", ""), ("\t", "\n")]))
            pieces.append("{{" + left + name + right + "}}")
        else:
            # Literal text that is not itself a placeholder of a declared name.
            pieces.append(draw(st.text(alphabet="ab {}\n", max_size=6)))
    # Values are often made of the template's own placeholders: an injection attempt.
    own = st.sampled_from(declared).map(lambda n: "{{" + n + "}}")
    value = st.lists(st.one_of(syntax, st.text(max_size=8), names, own), max_size=6).map("".join)
    given = {name: draw(value) for name in declared}
    return "".join(pieces), given


def _unrendered(text: str, names: set[str]) -> list[str]:
    found = re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]{0,63})\s*\}\}", text)
    return [n for n in found if n in names]


def _reference_render(template: str, values: dict[str, str]) -> str:
    """Left-to-right scan, written independently of the regex in _templates."""
    out: list[str] = []
    i = 0
    pattern = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]{0,63})\s*\}\}")
    while i < len(template):
        match = pattern.match(template, i)
        if match and match.group(1) in values:
            out.append(values[match.group(1)])
            i = match.end()
        elif match:
            out.append(match.group(0))
            i = match.end()
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


@settings(max_examples=examples(100), deadline=None)
@given(templates())
def test_no_declared_placeholder_survives_rendering(case: tuple[str, dict[str, str]]) -> None:
    template, given = case
    # Values that cannot themselves combine with the text around them into '{{name}}'
    # (a value "a" between a literal "{{" and "}}" would, and that is not a leftover).
    markers = {name: f"\x00{i}\x00" for i, name in enumerate(given)}
    assert _unrendered(render(template, markers), set(given)) == []
    # And every placeholder the template has was replaced by its own value.
    assert render(template, markers).count("\x00") == 2 * len(
        [n for n in _unrendered(template, set(given))]
    )


@settings(max_examples=examples(100), deadline=None)
@given(templates())
def test_values_are_inserted_literally_and_never_expanded(
    case: tuple[str, dict[str, str]],
) -> None:
    template, given = case
    rendered = render(template, given)
    assert rendered == _reference_render(template, given)
    # Expanding once more would change the text only if a value were re-expanded; the
    # renderer's one pass must leave values exactly as given.
    marker_values = {name: f"\x00{i}\x00" for i, name in enumerate(given)}
    skeleton = render(template, marker_values)
    rebuilt = skeleton
    for i, name in enumerate(given):
        rebuilt = rebuilt.replace(f"\x00{i}\x00", given[name])
    if "\x00" not in template and not any("\x00" in v for v in given.values()):
        assert rendered == rebuilt


@settings(max_examples=examples(100), deadline=None)
@given(templates())
def test_every_used_name_is_found_and_resolved(case: tuple[str, dict[str, str]]) -> None:
    template, given = case
    used = placeholders(template)
    # Literal text may spell a placeholder of a name nobody declared ("{{a" then "}}"):
    # that is a missing variable, another test's case.
    assume(set(used) <= set(given))
    declared = [VariableSpec(name, required=False) for name in given]
    values = resolve_variables(declared, used, given)
    assert values == given
    assert _unrendered(render(template, values), set()) == []


@settings(max_examples=examples(80), deadline=None)
@given(templates(), names)
def test_unknown_names_are_refused_never_ignored(
    case: tuple[str, dict[str, str]], extra: str
) -> None:
    template, given = case
    if extra in given:
        return
    declared = [VariableSpec(name, required=False) for name in given]
    try:
        resolve_variables(declared, placeholders(template), {**given, extra: "x"})
    except VariableError as exc:
        assert exc.code == "unknown_variables"
        assert exc.names == [extra]
    else:
        raise AssertionError("an unknown variable was silently accepted")


# -- the request model -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# Every field of ExecuteRequest: a body within the contract, then each field in turn set to
# a value around its bounds (either side) or to any JSON value.
_FIELDS = frozenset(ExecuteRequest.model_fields)
_DOCUMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_document_ids = st.from_regex(_DOCUMENT_ID, fullmatch=True)
_model_ids = st.text(min_size=1, max_size=8) | st.integers(1, 200).map(lambda n: "m" * n)
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_valid: dict[str, st.SearchStrategy[Any]] = {
    "prompt_id": st.text(st.characters(blacklist_characters="/"), min_size=1, max_size=128).filter(
        lambda p: p not in (".", "..") and not (p.startswith("__") and p.endswith("__"))
    ),
    "variables": st.dictionaries(
        st.text(min_size=1, max_size=3) | st.integers(1, 64).map(lambda n: "v" * n),
        st.text(max_size=5),
        max_size=3,
    ),
    "model": st.none() | _model_ids,
    "fallback_models": st.none() | st.lists(_model_ids, max_size=3),
    "comparison_id": st.none() | _document_ids,
    "context": st.none() | st.text(max_size=10),
    "max_tokens": st.none() | st.integers(1, 32_000),
    "temperature": st.none() | st.floats(0, 2) | st.integers(0, 2),
    "document_ids": st.none()
    | st.lists(_document_ids, max_size=3)
    | st.integers(0, 50).map(lambda n: ["d"] * n),
    "top_k": st.none() | st.integers(1, 50),
    "version": st.none() | st.integers(1, 999_999_999),
    "label": st.none() | st.from_regex(_LABEL, fullmatch=True),
    "conversation_id": st.none() | _document_ids,
    "parent_execution_id": st.none() | _document_ids,
    "message": st.none() | st.text(min_size=1, max_size=10),
    "regenerate": st.booleans(),
    "resumable": st.booleans(),
}
_around: dict[str, list[Any]] = {
    "prompt_id": ["", "p" * 128, "p" * 129, "a/b", ".", "..", "__x__", "__x", None],
    "variables": [{"": "x"}, {"v" * 64: "x"}, {"v" * 65: "x"}, {"a": 1}, {"a": None}, None],
    "model": ["", "m", "m" * 200, "m" * 201],
    "fallback_models": [[], ["a", "b", "c"], ["a", "b", "c", "d"], [""], ["m" * 201], "m"],
    "comparison_id": ["", "a" * 100, "a" * 101, "-a", "_a", "a_-", "a/b", "a.b", "é", "a b"],
    "context": ["", 1],
    "max_tokens": [0, 1, 32_000, 32_001, 5.0, True, "5"],
    "temperature": [-0.01, 0, 2, 2.01, True, "1"],
    "document_ids": [["d"] * 50, ["d"] * 51, ["-x"], ["a" * 101], [""], "d"],
    "top_k": [0, 1, 50, 51, 2.0, True, "3"],
    "version": [0, 1, 999_999_999, 1_000_000_000, 2.0, True, "2", -1],
    "label": ["", "production", "x" * 32, "x" * 33, "a.b", "-a", "_a", "a b", "é", 1],
    "conversation_id": ["", "a" * 100, "a" * 101, "-a", "a/b"],
    "parent_execution_id": ["", "a" * 100, "a" * 101, "-a", "a/b"],
    "message": ["", "m", 1],
    "regenerate": [True, False, 1, "true", None],
    "resumable": [1, "true", None],
    "promptId": ["p"],
    "x": [None],
}
assert set(_valid) == _FIELDS, "draw every field of ExecuteRequest"
valid_requests = st.fixed_dictionaries(
    {"prompt_id": _valid["prompt_id"]},
    optional={name: values for name, values in _valid.items() if name != "prompt_id"},
)
each_field_around_its_bounds = st.fixed_dictionaries(
    {name: st.sampled_from(values) | json_values for name, values in _around.items()}
)


def _fits(doc: dict[str, Any]) -> bool:
    """The documented contract of the body (docs/api.md), written apart from the model."""

    def text(value: Any, most: int) -> bool:
        return isinstance(value, str) and 1 <= len(value) <= most

    def number(value: Any, low: float, high: float, kinds: tuple[type, ...]) -> bool:
        return type(value) in kinds and low <= value <= high

    def document_id(value: Any) -> bool:
        return isinstance(value, str) and _DOCUMENT_ID.fullmatch(value) is not None

    pid = doc.get("prompt_id")
    variables = doc.get("variables", {})
    optional: dict[str, Any] = {
        "model": lambda v: text(v, 200),
        "fallback_models": lambda v: (
            isinstance(v, list) and len(v) <= 3 and all(text(m, 200) for m in v)
        ),
        "comparison_id": document_id,
        "context": lambda v: isinstance(v, str),
        "max_tokens": lambda v: number(v, 1, 32_000, (int,)),
        "temperature": lambda v: number(v, 0, 2, (int, float)),
        "document_ids": lambda v: (
            isinstance(v, list) and len(v) <= 50 and all(document_id(d) for d in v)
        ),
        "top_k": lambda v: number(v, 1, 50, (int,)),
        "version": lambda v: number(v, 1, 999_999_999, (int,)),
        "label": lambda v: isinstance(v, str) and _LABEL.fullmatch(v) is not None,
        "conversation_id": document_id,
        "parent_execution_id": document_id,
        "message": lambda v: isinstance(v, str) and len(v) >= 1,
    }
    return (
        set(doc) <= _FIELDS
        # A lone surrogate is no Unicode text: it could not be stored, so it is refused.
        and _unicode(doc)
        and text(pid, 128)
        and "/" not in pid
        and not (pid in (".", "..") or (pid.startswith("__") and pid.endswith("__")))
        and isinstance(variables, dict)
        and all(text(k, 64) and isinstance(v, str) for k, v in variables.items())
        and all(doc.get(name) is None or fits(doc[name]) for name, fits in optional.items())
        # A flag, not a value: false when absent, never null.
        and ("regenerate" not in doc or isinstance(doc["regenerate"], bool))
        and isinstance(doc.get("resumable", False), bool)
    )


def _unicode(doc: dict[str, Any]) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _parse(raw: bytes | str) -> ExecuteRequest | None:
    try:
        return ExecuteRequest.model_validate_json(raw)
    except ValidationError:
        return None


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_validation_error(raw: bytes) -> None:
    _parse(raw)


@settings(max_examples=examples(100), deadline=None)
@given(json_values)
def test_random_json_raises_only_validation_error(value: Any) -> None:
    _parse(json.dumps(value))


def _accepted_exactly_when_it_fits(doc: dict[str, Any]) -> None:
    parsed = _parse(json.dumps(doc))
    assert (parsed is not None) == _fits(doc), doc
    if parsed is not None:
        # Whatever got through is the body as sent, field by field.
        assert parsed.model_dump(exclude_unset=True) == doc


@settings(max_examples=examples(100), deadline=None)
@given(valid_requests, each_field_around_its_bounds)
@example({"prompt_id": "\ud800"}, {"message": "\udc00"})
def test_request_shaped_json_is_accepted_exactly_when_it_fits_the_contract(
    body: dict[str, Any], changes: dict[str, Any]
) -> None:
    _accepted_exactly_when_it_fits(body)
    for name, value in changes.items():
        _accepted_exactly_when_it_fits({**body, name: value})
    _accepted_exactly_when_it_fits({k: v for k, v in body.items() if k != "prompt_id"})


@settings(max_examples=examples(150), deadline=None)
@given(
    st.text(min_size=1, max_size=130),
    st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=3),
)
def test_valid_shapes_round_trip(prompt_id: str, variables: dict[str, str]) -> None:
    parsed = _parse(json.dumps({"prompt_id": prompt_id, "variables": variables}))
    ok_id = (
        len(prompt_id) <= 128
        and "/" not in prompt_id
        and prompt_id not in (".", "..")
        and not (prompt_id.startswith("__") and prompt_id.endswith("__"))
    )
    if ok_id:
        assert parsed is not None
        assert (parsed.prompt_id, parsed.variables) == (prompt_id, variables)
    else:
        assert parsed is None
