"""``{{variable}}`` templates: which variables a prompt takes, and single-pass rendering.

Rendering is one regex pass over the template: a value that itself contains
``{{other}}`` is inserted literally and never expanded again, so a caller's value cannot
inject another variable.

A variable name is ``NAME_PATTERN`` and not a name Firestore reserves (``__.*__``): the
resolved values are stored as a map in the execution record, and a reserved key fails
the whole commit. The security rules check declared names with the same pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import ErrorCode

__all__ = [
    "NAME_PATTERN",
    "Rendered",
    "VariableError",
    "VariableSpec",
    "check_names",
    "is_valid_name",
    "placeholders",
    "render_prompt",
    "resolve_variables",
]

# Also in firestore.rules (validVariable); change both together.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
_NAME = re.compile(NAME_PATTERN)
_PLACEHOLDER = re.compile(r"\{\{\s*(" + NAME_PATTERN + r")\s*\}\}")
# The ErrorCode members a VariableError carries.
VariableCode = Literal[
    ErrorCode.MISSING_VARIABLES, ErrorCode.UNKNOWN_VARIABLES, ErrorCode.INVALID_VARIABLE_NAMES
]


def is_valid_name(name: object) -> bool:
    """A name a prompt may declare or use, and the record can keep as a map key."""
    return (
        isinstance(name, str)
        and _NAME.fullmatch(name) is not None
        and not (len(name) >= 4 and name.startswith("__") and name.endswith("__"))
    )


@dataclass(frozen=True, slots=True)
class VariableSpec:
    name: str
    required: bool = True
    default: str | None = None

    @classmethod
    def from_doc(cls, raw: Any) -> VariableSpec | None:
        """Read one entry of a prompt's ``variables`` list; ``None`` if it is unusable."""
        if isinstance(raw, str):
            return cls(raw)
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            return None
        default = raw.get("default")
        return cls(
            name=raw["name"],
            required=bool(raw.get("required", default is None)),
            default=str(default) if default is not None else None,
        )


class VariableError(ValueError):
    """The given variables do not fit the prompt. ``code`` names the problem:
    ``MISSING_VARIABLES`` and ``UNKNOWN_VARIABLES`` (the caller's), or
    ``INVALID_VARIABLE_NAMES`` (the prompt's own: a name it declares or a placeholder it
    uses that the record could not store)."""

    def __init__(self, code: VariableCode, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.code = code
        self.names = names


def check_names(names: Iterable[str]) -> None:
    """Raise ``VariableError("invalid_variable_names")`` naming every invalid name."""
    bad = sorted({name for name in names if not is_valid_name(name)})
    if bad:
        shown = ", ".join(repr(name[:80]) for name in bad[:10])
        raise VariableError(
            ErrorCode.INVALID_VARIABLE_NAMES,
            f"The prompt declares or uses variable names that are not allowed: {shown}. "
            "A name is a letter or _ then up to 63 letters, digits, _ . or -, "
            "and not __like_this__.",
            [name[:80] for name in bad],
        )


def placeholders(*templates: str | None) -> list[str]:
    """The variable names used in the templates, in order of first use."""
    seen: dict[str, None] = {}
    for template in templates:
        if template:
            for match in _PLACEHOLDER.finditer(template):
                seen.setdefault(match.group(1))
    return list(seen)


def resolve_variables(
    declared: Iterable[VariableSpec], used: Iterable[str], given: Mapping[str, str]
) -> dict[str, str]:
    """Merge the caller's values with defaults, or raise ``VariableError``.

    A variable is known if the prompt declares it or uses it. Unknown names are an error
    (a typo would otherwise be silently ignored). Required variables with no value, or
    only whitespace, are reported together. A prompt whose own names are invalid is an
    error first (``invalid_variable_names``), whatever the caller gave.
    """
    specs = {spec.name: spec for spec in declared}
    for name in used:
        specs.setdefault(name, VariableSpec(name))
    check_names(specs)
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise VariableError(
            ErrorCode.UNKNOWN_VARIABLES, f"Unknown variables: {', '.join(unknown)}", unknown
        )
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, spec in specs.items():
        value = given.get(name)
        if value is None or (spec.required and not value.strip()):
            value = spec.default
        if value is None or (spec.required and not value.strip()):
            if spec.required:
                missing.append(name)
                continue
            value = ""
        values[name] = value
    if missing:
        raise VariableError(
            ErrorCode.MISSING_VARIABLES,
            f"Missing required variables: {', '.join(missing)}",
            missing,
        )
    return values


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered prompt, and the values the render put into it."""

    user_prompt: str
    system_prompt: str | None
    # Each variable whose placeholder was substituted, with its full value, in order of
    # first use. Declared values no placeholder asked for are not here.
    used: dict[str, str]

    def recorded(self, max_chars: int) -> dict[str, str]:
        """``used`` for the execution record: each value cut to ``max_chars``."""
        return {name: value[:max_chars] for name, value in self.used.items()}


def render_prompt(content: str, system_prompt: str | None, values: Mapping[str, str]) -> Rendered:
    """Render the prompt and its system prompt in one pass each, noting the values used."""
    used: dict[str, str] = {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is None:
            return match.group(0)
        used[name] = value
        return value

    user_prompt = _PLACEHOLDER.sub(substitute, content)
    system = _PLACEHOLDER.sub(substitute, system_prompt) if system_prompt else None
    return Rendered(user_prompt, system, used)
