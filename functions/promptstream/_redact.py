"""Taking the API key out of text: whole strings, and text that arrives in pieces.

Matching ignores ASCII case (an upstream that upper-cases what it echoes must not leak
the key; the key itself is ASCII) and is one character to one character, so positions
in the text are never shifted by case folding. A streamed key can be cut anywhere, so
``Redactor`` holds back the shortest tail that could still begin the key, and nothing
else.

See docs/adr/0300-hostile-upstream.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["REDACTED", "Redactor", "redact", "redact_json"]

REDACTED = "[redacted]"


def _pattern(secret: str) -> re.Pattern[str]:
    return re.compile(re.escape(secret), re.IGNORECASE | re.ASCII)


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

    __slots__ = ("_held", "_lower", "_size", "_start", "_tail", "_upper0", "_whole")

    def __init__(self, secret: str) -> None:
        self._held = ""
        self._size = len(secret)
        self._lower = secret.lower()
        # A held-back tail longer than one character starts with these two.
        self._start = self._lower[:2]
        self._upper0 = secret[:1].upper()
        self._whole = _pattern(secret) if secret else None
        # The same question as a pattern, for the rare text whose lower case has another
        # length: a suffix that is a proper prefix of the key, e.g. (?:a(?:b)?)\Z.
        tail = ""
        for char in reversed(secret[:-1]):
            tail = f"{re.escape(char)}(?:{tail})?" if tail else re.escape(char)
        self._tail = re.compile(f"(?:{tail})\\Z", re.IGNORECASE | re.ASCII) if tail else None

    def feed(self, text: str) -> str:
        # The per-chunk path: a few string methods on at most len(secret) characters.
        if self._whole is None:
            return text
        if self._held:
            text = self._held + text
            self._held = ""
        elif self._lower[0] not in text and self._upper0 not in text:
            # Without the key's first letter there is neither a key nor a start of one.
            return text
        size = len(text)
        if size >= self._size and self._lower in text.lower():
            text = self._whole.sub(REDACTED, text)
            size = len(text)
        if self._tail is None or not text:
            return text
        # Only the last len(secret) - 1 characters can begin a key that is not whole yet.
        offset = max(0, size - self._size + 1)
        window = text[offset:]
        low = window.lower()
        if len(low) != len(window):
            match = self._tail.search(text, offset)
            at = -1 if match is None else match.start()
        else:
            at = -1
            i = low.find(self._start)
            while i >= 0:
                if self._lower.startswith(low[i:]):
                    at = offset + i
                    break
                i = low.find(self._start, i + 1)
            if at < 0 and low[-1] == self._lower[0]:
                at = size - 1
        if at < 0:
            return text
        self._held = text[at:]
        return text[:at]

    def flush(self) -> str:
        """The held-back tail: the stream ended, so it was not the key."""
        held, self._held = self._held, ""
        return held
