"""Property-based tests: the variable renderer and the request model.

(The SSE decoder's random-bytes and re-chunking properties live in test_sse.py.)
"""

from __future__ import annotations

import json
import operator
import re
import string
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
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
field_names = st.sampled_from(
    ["prompt_id", "variables", "model", "context", "max_tokens", "temperature", "promptId", "x"]
)
request_like = st.dictionaries(field_names | st.text(max_size=6), json_values, max_size=6)


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


@settings(max_examples=examples(100), deadline=None)
@given(request_like)
def test_request_shaped_json_is_accepted_only_when_it_fits_the_contract(
    doc: dict[str, Any],
) -> None:
    parsed = _parse(json.dumps(doc))
    if parsed is None:
        return
    # Whatever got through obeys the documented contract, exactly.
    assert set(doc) <= {"prompt_id", "variables", "model", "context", "max_tokens", "temperature"}
    pid = doc["prompt_id"]
    assert isinstance(pid, str) and 1 <= len(pid) <= 128 and "/" not in pid
    assert pid not in (".", "..")
    assert parsed.prompt_id == pid
    variables = doc.get("variables", {})
    assert isinstance(variables, dict)
    assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in variables.items())
    assert parsed.variables == variables
    mt = doc.get("max_tokens")
    assert mt is None or (type(mt) is int and 1 <= mt <= 32_000)
    temp = doc.get("temperature")
    assert temp is None or (type(temp) in (int, float) and 0 <= temp <= 2)
    for key in ("model", "context"):
        assert doc.get(key) is None or isinstance(doc[key], str)


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
