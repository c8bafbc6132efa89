"""A token estimate for text the upstream never reported usage for (a disconnect).

It leans high on purpose: an under-count lets a user get past the daily budget by
disconnecting, an over-count only debits a cancelled run a little more. The rates are
per script, since models' tokenizers split scripts very differently: English-like ASCII
text is about four characters a token, Chinese, Japanese and Korean about one token a
character, and other scripts in between. No tokenizer library: OpenRouter serves models
with many tokenizers, and none of them is ours to load (see docs/adr/0302).
"""

from __future__ import annotations

import math
import re

__all__ = ["estimate_tokens"]

# Scripts written at about a token a character or more: CJK ideographs and punctuation,
# kana, hangul, Yi, full-width forms, and the Brahmic and South-East Asian scripts.
_DENSE = re.compile(
    "[\u0900-\u0dff\u0e00-\u0fff\u1000-\u109f\u1100-\u11ff\u1200-\u139f\u1780-\u17ff"
    "\u2e80-\u2fdf\u3000-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7af\uf900-\ufaff"
    "\uff00-\uffef]+"
)


def estimate_tokens(text: str) -> int:
    """An upper-ish estimate of the tokens in ``text``.

    ASCII counts a quarter token a character; other alphabets (accented Latin, Greek,
    Cyrillic, Arabic, Hebrew ...) and symbols half a token; dense scripts (CJK, kana,
    hangul, Indic, Thai ...) one token; characters outside the BMP (emoji, rare CJK) two.
    Rounded up. A few passes in C over the text, none in Python per character.
    """
    if not text:
        return 0
    total = len(text)
    if text.isascii():
        return math.ceil(total / 4)
    ascii_chars = len(text.encode("ascii", "ignore"))
    # Each character outside the BMP is two UTF-16 code units.
    astral = len(text.encode("utf-16-le", "surrogatepass")) // 2 - total
    dense = sum(map(len, _DENSE.findall(text)))
    other = total - ascii_chars - astral - dense
    return math.ceil(ascii_chars / 4 + other / 2 + dense + 2 * astral)
