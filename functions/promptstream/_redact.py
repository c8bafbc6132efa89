"""Taking the API key out of text: whole strings, and text that arrives in pieces.

Matching is case-insensitive (an upstream that upper-cases what it echoes must not leak
the key) and one character to one character, so positions in the text are never
shifted by case folding. A streamed key can be cut anywhere, so ``Redactor`` holds back
the shortest tail that could still begin the key, and nothing else.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["REDACTED", "Redactor", "redact", "redact_json"]

REDACTED = "[redacted]"


def _pattern(secret: str) -> re.Pattern[str]:
    return re.compile(re.escape(secret), re.IGNORECASE)


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` (any case) replaced by ``[redacted]``."""
    if not secret or len(text) < len(secret):
        return text
    return _pattern(secret).sub(REDACTED, text)


def redact_json(value: Any, secret: str) -> Any:
    """A JSON-like value with the secret taken out of every string in it, keys included.

    For the rare, small values that go with an error (an upstream's error body); it goes
    through ``json.dumps`` because the key is ASCII and so is spelled the same there.
    """
    if not secret or value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value, secret)
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        return redact(repr(value), secret)
    cleaned = redact(text, secret)
    return value if cleaned is text else json.loads(cleaned)


class Redactor:
    """Redacts one stream of text fed in pieces: ``feed`` each piece, ``flush`` at the end.

    Everything returned is final: a key split across pieces is replaced whole, never
    half-released. What is held back is at most ``len(secret) - 1`` characters, and only
    when the text so far ends with something the key starts with.
    """

    __slots__ = ("_held", "_secret", "_tail", "_whole")

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._held = ""
        self._whole = _pattern(secret) if secret else None
        # A suffix of the text that is a proper prefix of the key, e.g. for "abc":
        # (?:a(?:b)?)\Z. Searched only over the last len(secret) - 1 characters.
        tail = ""
        for char in reversed(secret[:-1]):
            tail = f"{re.escape(char)}(?:{tail})?" if tail else re.escape(char)
        self._tail = re.compile(f"(?:{tail})\\Z", re.IGNORECASE) if tail else None

    def feed(self, text: str) -> str:
        whole = self._whole
        if whole is None:
            return text
        if self._held:
            text = self._held + text
            self._held = ""
        if len(text) >= len(self._secret):
            text = whole.sub(REDACTED, text)
        tail = self._tail
        if tail is not None and text:
            match = tail.search(text, max(0, len(text) - len(self._secret) + 1))
            if match is not None:
                self._held = text[match.start() :]
                return text[: match.start()]
        return text

    def flush(self) -> str:
        """The held-back tail: the stream ended, so it was not the key."""
        held, self._held = self._held, ""
        return held
