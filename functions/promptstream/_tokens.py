"""A token estimate for text the upstream never reported usage for (a disconnect), and
for the reservation at admission.

It must never fall below 90% of what a real tokenizer counts, whatever the text: an
under-count lets a user past the daily budget by disconnecting. It follows how BPE
tokenizers cut text: a pre-tokenizer splits words, numbers, punctuation and spaces
apart, and a piece costs one token if the vocabulary holds it whole, else several. So
each word costs one token, more when it is not among the words every reference
tokenizer holds whole; each digit, punctuation mark and control character one; other
scripts per character, up to their UTF-8 bytes (the byte fallback). Checked against
cl100k, o200k and a Llama tokenizer on every kind of text in
docs/adr/0302-token-estimate.md; no tokenizer is loaded here. A few passes in C
(regular expressions, ``map`` over builtins), none in Python per character or word.
"""

from __future__ import annotations

import math
import re
from itertools import filterfalse

from ._token_words import ONE_TOKEN_HANZI, ONE_TOKEN_WORDS

__all__ = ["estimate_tokens"]

_WORD = re.compile("[A-Za-z]+")
# In a word no tokenizer holds whole, what makes it cost more: each letter past the
# first, more for consonant clusters, runs of capitals, a lower-to-upper change, and
# letters past the eighth (no English word piece is that long).
_PER_LETTER = 0.38
_CLUSTER = re.compile("[b-df-hj-np-tv-zB-DF-HJ-NP-TV-Z]{2,}")
_PER_CLUSTERED = 0.31
_CAPITALS = re.compile("[A-Z]{2,}")
_PER_CAPITAL = 0.25
_CASE_CHANGE = re.compile("[a-z][A-Z]")
_LONG = re.compile("[A-Za-z]{9,}")
_PER_LONG = 0.45
# Spaces: a run of them is a token of its own (tokenizers hold runs up to 16 or so
# whole); one before a digit, a control character, another script or the end is a
# token alone (Llama's "▁").
_SPACE_RUN = re.compile("  +")
_SPACE_CUT = re.compile(" (?=[^\x20-\x2f\x3a-\x7e]|$)")
# Other scripts, per character: these CJK characters are one token each everywhere;
# Cyrillic about one; accented Latin, Greek, Hebrew and Arabic a little more; anything
# else its UTF-8 bytes, which a tokenizer reaches for a character it does not know
# (byte fallback: two bytes up to U+07FF, three in the rest of the BMP, four beyond).
_NOT_ASCII = re.compile("[^\x00-\x7f]+")
_HANZI = re.compile(f"[{re.escape(ONE_TOKEN_HANZI)}]")
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_ALPHABETS = re.compile("[\u00c0-\u017f\u0370-\u03ff\u0590-\u06ff]")
_PER_ALPHABET = 1.25


def _count(pattern: re.Pattern[str], text: str) -> int:
    return pattern.subn("", text)[1]


def _past(pattern: re.Pattern[str], text: str, keep: int) -> int:
    """The characters of ``pattern``'s matches past the first ``keep`` of each."""
    found = pattern.findall(text)
    return sum(map(len, found)) - keep * len(found)


def estimate_tokens(text: str) -> int:
    """An estimate of the tokens in ``text``, at least 90% of a real tokenizer's count;
    rounded up."""
    if not text:
        return 0
    words = _WORD.findall(text)
    letters = sum(map(len, words))
    plain = text.isascii()
    ascii_chars = len(text) if plain else len(text.encode("ascii", "ignore"))
    rare = " ".join(filterfalse(ONE_TOKEN_WORDS.__contains__, words))
    rare_letters = len(rare) - rare.count(" ")
    rare_words = rare.count(" ") + 1 if rare else 0
    runs = _SPACE_RUN.findall(text)
    tokens = (
        len(words)
        + _PER_LETTER * (rare_letters - rare_words)
        + _PER_CLUSTERED * _past(_CLUSTER, rare, 1)
        + _PER_CAPITAL * _past(_CAPITALS, rare, 1)
        + _count(_CASE_CHANGE, rare)
        + _PER_LONG * _past(_LONG, rare, 8)
        # Digits, punctuation, tabs, newlines and other control characters.
        + ascii_chars
        - letters
        - text.count(" ")
        + len(runs)
        + sum(map(len, runs)) / 16
        + _count(_SPACE_CUT, text)
    )
    if not plain:
        other = "".join(_NOT_ASCII.findall(text))
        # Each character beyond the BMP is two UTF-16 code units and four UTF-8 bytes;
        # the rest are two or three bytes (a lone surrogate counts as three).
        astral = len(other.encode("utf-16-le", "surrogatepass")) // 2 - len(other)
        bmp = len(other) - astral
        three = len(other.encode("utf-8", "surrogatepass")) - 4 * astral - 2 * bmp
        hanzi = _count(_HANZI, other)
        cyrillic = _count(_CYRILLIC, other)
        alphabets = _count(_ALPHABETS, other)
        two = bmp - three - cyrillic - alphabets
        tokens += (
            hanzi
            + cyrillic
            + _PER_ALPHABET * alphabets
            + 2 * two
            + 3 * (three - hanzi)
            + 4 * astral
        )
    return math.ceil(tokens)
