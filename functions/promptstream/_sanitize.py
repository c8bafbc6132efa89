"""Making what an upstream reports safe to put in an event, a record or a log line, and
what a user uploads safe to quote to a model.

An upstream is not trusted to send well-formed values: a lone surrogate cannot be
encoded as UTF-8 (our events, Firestore), a map key Firestore reserves (``__x__``) or a
number beyond int64 fails the whole commit, and a long string can fill a document.

See docs/adr/0300-hostile-upstream.md.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ._redact import redact

__all__ = ["MARKUP", "MAX_ID_CHARS", "plain_label", "quote_markup", "safe_text", "safe_usage"]

# A model slug or a generation id is short; a longer one is cut, not refused.
MAX_ID_CHARS = 200

_INT64_MAX = 2**63 - 1
# Surrogates cannot be encoded; control characters have no place in an identifier and
# would make a log line or an id hard to read.
_UNSAFE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")

# What quoting writes as a character reference: the three characters of XML markup,
# every other character whose compatibility decomposition holds one of them (a unit test
# checks this list against all of Unicode, so NFKC cannot make a bracket out of anything
# left), and the characters that look like an angle bracket (Unicode's confusables and
# the angle brackets of CJK and mathematics).
MARKUP = (
    "&<>\u226e\u226f\ufe60\ufe64\ufe65\uff06\uff1c\uff1e"
    "\u02c2\u02c3\u1433\u1438\u16b2\u2039\u203a\u2329\u232a\u276c\u276d\u276e\u276f"
    "\u27e8\u27e9\u29fc\u29fd\u3008\u3009\U00016f3f\U0001d236\U0001d237"
)
_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_REFERENCES: dict[int, str] = {ord(c): _NAMED.get(c) or f"&#x{ord(c):X};" for c in MARKUP}
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]  # Unicode's Cc
# Quoted text keeps its tabs and line ends; a label (an attribute) is one line.
_QUOTED = str.maketrans({**dict.fromkeys(_CONTROLS), **_REFERENCES, 9: "\t", 10: "\n"})
_LABEL = str.maketrans({**dict.fromkeys(_CONTROLS), 9: " ", 10: " ", 13: " "})
_ATTRIBUTE = str.maketrans(
    {**dict.fromkeys(_CONTROLS), **_REFERENCES, 9: " ", 10: " ", 34: "&quot;"}
)


def quote_markup(text: str, *, attribute: bool = False) -> str:
    """``text`` with no markup left in it, whatever the Unicode: each character of
    ``MARKUP`` as a character reference (so decoding them once gives the text back) and
    the control characters dropped, except tab and LF (spaces in an ``attribute``,
    where ``"`` is a reference too)."""
    return text.translate(_ATTRIBUTE if attribute else _QUOTED)


def plain_label(value: str) -> str:
    """A title or file name from a user: control characters dropped (a tab or a line
    end becomes a space), then stripped."""
    return value.translate(_LABEL).strip()


# OpenRouter's usage object: the keys kept, and for the nested ones, their own keys.
_USAGE_NUMBERS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens", "cost"})
_USAGE_FLAGS = frozenset({"is_byok"})
_USAGE_NESTED: dict[str, frozenset[str]] = {
    "prompt_tokens_details": frozenset({"cached_tokens", "audio_tokens", "cache_write_tokens"}),
    "completion_tokens_details": frozenset(
        {
            "reasoning_tokens",
            "image_tokens",
            "audio_tokens",
            "accepted_prediction_tokens",
            "rejected_prediction_tokens",
        }
    ),
    "cost_details": frozenset(
        {
            "upstream_inference_cost",
            "upstream_inference_prompt_cost",
            "upstream_inference_completions_cost",
        }
    ),
    "server_tool_use": frozenset({"web_search_requests"}),
}


def safe_text(value: Any, secret: str = "", limit: int = MAX_ID_CHARS) -> str | None:
    """A short identifier-like upstream string (model, generation id, finish_reason) made
    safe: ``None`` unless it is a string; the key redacted, then cut to ``limit``
    characters; surrogates and control characters replaced by U+FFFD."""
    if not isinstance(value, str) or not value:
        return None
    text: str = redact(value, secret) if secret else value
    if len(text) > limit:
        text = text[:limit]
    if not (text.isascii() and text.isprintable()):
        text = _UNSAFE.sub("\ufffd", text)
    return text


def _number(value: Any) -> int | float | None:
    # bool is an int in Python, but a count of True tokens is not a count.
    if type(value) is int:
        return value if 0 <= value <= _INT64_MAX else None
    if type(value) is float:
        return value if math.isfinite(value) and 0.0 <= value <= _INT64_MAX else None
    return None


def _ok(value: Any) -> bool:
    return value is None or _number(value) is not None


def safe_usage(usage: Any) -> dict[str, Any] | None:
    """The upstream's usage reduced to the keys we know, each a finite non-negative number
    within int64 (``None`` kept: OpenRouter sends it for costs it does not know).
    Anything else is dropped, so the record can always be written."""
    if not isinstance(usage, dict):
        return None
    clean: dict[str, Any] = {}
    for key, value in usage.items():
        if key in _USAGE_NUMBERS:
            if _ok(value):
                clean[key] = value
        elif key in _USAGE_FLAGS:
            if type(value) is bool:
                clean[key] = value
        elif key in _USAGE_NESTED and isinstance(value, dict):
            allowed = _USAGE_NESTED[key]
            clean[key] = {k: v for k, v in value.items() if k in allowed and _ok(v)}
    return clean or None
