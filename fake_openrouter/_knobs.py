"""Behaviour knobs: their types, defaults, and the three places they come from.

Precedence, highest first: `[[fake k=v ...]]` directives in the message texts, the
`X-Fake-Scenario` request header (a JSON object), the server defaults. Above all three,
`per_model` (a JSON object `{model_id: {knob: value, ...}}`, from any of the three)
gives the knobs of one model while that model is the one being served: with OpenRouter's
`models` list a request tries several (see `_server` and docs/fake-openrouter-models.md).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

__all__ = [
    "FAILURE_KNOBS",
    "KNOB_NAMES",
    "LEAK_PLACES",
    "KnobError",
    "Knobs",
    "coerce_knobs",
    "find_directives",
    "for_model",
    "resolve_knobs",
    "strip_directives",
]


class KnobError(ValueError):
    """A knob name or value the fake does not understand (answered with 400)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Knobs:
    """One request's resolved behaviour. `None` on an `*_after` knob means "off"."""

    # Shape of a normal answer.
    chunks: int = 8
    text: str | None = None
    unicode: bool = False
    markdown: bool = False
    reasoning: int = 0
    usage: bool = True
    stamp: bool = False
    finish_reason: str = "stop"
    provider: str = "FakeProvider"
    cost: float = 0.0
    gen_id: str | None = None
    created: int | None = None
    # Timing.
    delay: float = 0.02
    first_byte_delay: float = 0.0
    first_chunk_delay: float = 0.0
    comments: int = 0
    comment_every: float = 0.0
    # Failures before the first byte.
    status: int | None = None
    message: str | None = None
    retry_after: str | None = None
    disconnect: bool = False
    fail_times: int | None = None
    fail_key: str | None = None
    # Failures inside the stream (counted in content chunks).
    error_after: int | None = None
    error_code: str = "server_error"
    error_message: str = "Provider disconnected unexpectedly"
    drop_after: int | None = None
    truncate_after: int | None = None
    no_done: bool = False
    stall_after: int | None = None
    stall: float = 1.0
    stall_then: str = "continue"
    malformed_after: int | None = None
    # Embeddings (POST /embeddings): a status answered at the Nth embeddings call counted
    # since the last reset (1-based; None = at every call), so a fault can land midway
    # through a batched ingestion; and a delay before each answer.
    embed_status: int | None = None
    embed_status_at: int | None = None
    embed_delay: float = 0.0
    # A JSON object merged into the embeddings answer's usage (a hostile count:
    # {"total_tokens": 18446744073709551616}, 0, -1, null), kept as text like usage_extra.
    embed_usage: str | None = None
    # A hostile upstream. `leak` names where the caller's API key is echoed (comma list
    # of LEAK_PLACES; in content and reasoning it is split across two chunks), in the
    # case `leak_case` gives. `model` replaces the model named in every event. `usage_extra`
    # is a JSON object merged into the usage. `long_line` sends, after the first content
    # chunk, one data line of that many bytes that never ends.
    leak: str = ""
    leak_case: str = "same"
    model: str | None = None
    usage_extra: str | None = None
    long_line: int | None = None
    # Models (issue 18): knobs per model id, above every other source while that model
    # is served. Kept as JSON text (sorted keys), like usage_extra.
    per_model: str | None = None


_FIELDS = {f.name: f for f in dataclasses.fields(Knobs)}
KNOB_NAMES: tuple[str, ...] = tuple(_FIELDS)

# The knobs that `fail_times` switches off once its count is used up.
FAILURE_KNOBS: tuple[str, ...] = (
    "status",
    "disconnect",
    "error_after",
    "drop_after",
    "truncate_after",
    "no_done",
    "stall_after",
    "malformed_after",
    "long_line",
)

LEAK_PLACES = ("content", "reasoning", "model", "gen_id", "usage", "error")

_INT = {"chunks", "reasoning", "comments", "created"}
_OPT_INT = {
    "status",
    "fail_times",
    "error_after",
    "drop_after",
    "truncate_after",
    "stall_after",
    "malformed_after",
    "embed_status",
    "embed_status_at",
    "long_line",
}
_FLOAT = {
    "delay",
    "first_byte_delay",
    "first_chunk_delay",
    "comment_every",
    "stall",
    "cost",
    "embed_delay",
}
_BOOL = {"unicode", "markdown", "usage", "stamp", "disconnect", "no_done"}
_CHOICES = {"stall_then": ("continue", "end", "drop"), "leak_case": ("same", "upper", "lower")}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_OFF = {"", "none", "null", "off"}


def _coerce(name: str, value: Any) -> Any:
    if name not in _FIELDS:
        raise KnobError(f"unknown fake knob {name!r}")
    if value is None:
        if name in _OPT_INT or _FIELDS[name].default is None:
            return None
        raise KnobError(f"fake knob {name!r} cannot be null")
    try:
        if name in _BOOL:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if name in _OPT_INT and isinstance(value, str) and value.strip().lower() in _OFF:
            return None
        if name in _INT or name in _OPT_INT:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            number = int(value)
            if number < 0 and name != "created":
                raise ValueError(value)
            return number
        if name in _FLOAT:
            if isinstance(value, bool):
                raise ValueError(value)
            number_f = float(value)
            if number_f < 0 or number_f != number_f:
                raise ValueError(value)
            return number_f
        if name == "per_model":
            return _per_model(value)
        if name in ("usage_extra", "embed_usage"):
            extra = json.loads(value) if isinstance(value, str) else value
            if not isinstance(extra, dict):
                raise ValueError(value)
            # Kept as text: Knobs stays hashable, and the header and directives agree.
            return json.dumps(extra)
        text = str(value)
        if name == "leak" and not set(filter(None, text.split(","))) <= set(LEAK_PLACES):
            raise ValueError(value)
        choices = _CHOICES.get(name)
        if choices is not None and text not in choices:
            raise ValueError(value)
        return text
    except (TypeError, ValueError):
        raise KnobError(f"bad value for fake knob {name!r}: {value!r}") from None


def _per_model(value: Any) -> str:
    table = json.loads(value) if isinstance(value, str) else value
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ValueError(value)
    checked: dict[str, dict[str, Any]] = {}
    for model, knobs in table.items():
        if "per_model" in knobs:
            raise ValueError(value)
        checked[str(model)] = coerce_knobs(knobs)
    return json.dumps(checked, sort_keys=True)


def for_model(knobs: Knobs, model: str) -> tuple[Knobs, bool]:
    """The knobs while ``model`` is served: its `per_model` entry over ``knobs``; and
    whether it has one."""
    if knobs.per_model is None:
        return knobs, False
    own = json.loads(knobs.per_model).get(model)
    if own is None:
        return knobs, False
    return dataclasses.replace(knobs, **own), True


def coerce_knobs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and convert values (strings from directives, JSON from headers)."""
    return {name: _coerce(name, value) for name, value in raw.items()}


def resolve_knobs(
    defaults: Mapping[str, Any],
    header: Mapping[str, Any],
    directive: Mapping[str, Any],
) -> Knobs:
    """Merge the three sources (each already coerced) into one `Knobs`."""
    merged: dict[str, Any] = {}
    merged.update(defaults)
    merged.update(header)
    merged.update(directive)
    return Knobs(**merged)


_DIRECTIVE = re.compile(r"\[\[fake(?:\s+([^\]]*))?\]\]")


def find_directives(texts: list[str]) -> tuple[dict[str, Any], str]:
    """Parse every `[[fake k=v ...]]` in order; later keys win.

    Values may be quoted shell-style (`text="two words"`). Returns the coerced knobs and
    the directives' raw text joined, which is the default `fail_key`.
    """
    knobs: dict[str, Any] = {}
    raw: list[str] = []
    for text in texts:
        for match in _DIRECTIVE.finditer(text):
            raw.append(match.group(0))
            body = match.group(1) or ""
            try:
                words = shlex.split(body)
            except ValueError as exc:
                raise KnobError(f"cannot parse fake directive {match.group(0)!r}: {exc}") from None
            for word in words:
                name, sep, value = word.partition("=")
                if not sep:
                    raise KnobError(f"fake directive item {word!r} is not key=value")
                knobs[name] = _coerce(name, value)
    return knobs, " ".join(raw)


def strip_directives(text: str) -> str:
    return _DIRECTIVE.sub("", text)


def parse_header(value: str | None) -> dict[str, Any]:
    """The `X-Fake-Scenario` header: a JSON object of knobs."""
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        raise KnobError("X-Fake-Scenario is not valid JSON") from None
    if not isinstance(data, dict):
        raise KnobError("X-Fake-Scenario must be a JSON object")
    return coerce_knobs(data)
