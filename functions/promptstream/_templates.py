"""``{{variable}}`` templates: which variables a prompt takes, and single-pass rendering.

Rendering is one regex pass over the template. A value that itself contains
``{{other}}`` is inserted literally and never expanded again, which the original
sequential ``str.replace`` loop got wrong (a value could inject another variable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["VariableError", "VariableSpec", "placeholders", "render", "resolve_variables"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]{0,63})\s*\}\}")


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
    """The given variables do not fit the prompt. ``code`` names the problem."""

    def __init__(self, code: str, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.code = code
        self.names = names


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
    only whitespace, are reported together.
    """
    specs = {spec.name: spec for spec in declared}
    for name in used:
        specs.setdefault(name, VariableSpec(name))
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise VariableError(
            "unknown_variables", f"Unknown variables: {', '.join(unknown)}", unknown
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
            "missing_variables", f"Missing required variables: {', '.join(missing)}", missing
        )
    return values


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``{{ name }}`` in one pass; unknown placeholders are left as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
