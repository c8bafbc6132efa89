"""The token counts an upstream reports, checked before anything is debited or stored.

A count is believable when it is a non-negative integer no larger than a generous
multiple of what the request could cost: a tokenizer never makes more tokens of a text
than its UTF-8 bytes (byte-level BPE, or SentencePiece with byte fallback: every token
is at least a byte), plus a few special tokens per message, which the JSON around each
message more than covers. So a request's JSON body in bytes bounds its input tokens;
twice that, plus four times the tokens it let the model write, is the cap. It stays far
inside Firestore's int64 (the body is itself capped). Anything else is an
``InvalidResponseError`` (``upstream_error``): an absurd count can neither fail the
record's commit nor empty or fill a budget (docs/adr/0300-hostile-upstream.md).
"""

from __future__ import annotations

from typing import Any

from ._errors import InvalidResponseError

__all__ = ["check_usage", "token_cap", "tokens_reported"]

# Without a max_tokens in the request: the longest answer any model is sold for.
_NO_MAX_TOKENS = 1_000_000


def token_cap(body_bytes: int, max_tokens: int | None) -> int:
    """The most tokens a request of ``body_bytes`` (its JSON) allowed to write
    ``max_tokens`` (``None``: no limit sent; 0 for embeddings) can believably be counted."""
    completion = _NO_MAX_TOKENS if max_tokens is None else max(0, max_tokens)
    return 2 * body_bytes + 4 * completion


def _count(value: Any, cap: int, partial: str) -> int | None:
    if value is None:
        return None
    # bool is an int in Python, but a count of True tokens is not a count.
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= cap:
        raise InvalidResponseError(
            f"upstream reported an impossible token count (not an integer from 0 to {cap})",
            partial=partial,
        )
    return value


def check_usage(usage: Any, cap: int, partial: str = "") -> None:
    """Raise ``InvalidResponseError`` unless every ``*_tokens`` count of a chat usage
    object (top level and one level down: cached, reasoning ...) is believable."""
    if not isinstance(usage, dict):
        return
    for key, value in usage.items():
        if isinstance(value, dict):
            for inner, number in value.items():
                if isinstance(inner, str) and inner.endswith("_tokens"):
                    _count(number, cap, partial)
        elif isinstance(key, str) and key.endswith("_tokens"):
            _count(value, cap, partial)


def tokens_reported(usage: Any, cap: int) -> int | None:
    """An embeddings answer's ``usage.total_tokens``: ``None`` when it sends none (some
    providers do not), else the checked count."""
    if not isinstance(usage, dict):
        return None
    return _count(usage.get("total_tokens"), cap, "")
