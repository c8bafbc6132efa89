"""The token estimate: never below 90% of a real tokenizer's count on any kind of text,
never absurdly above it, and cheap. The real counts come from the reference tokenizers
(dev dependencies, offline: tests/support/token_corpus.py); docs/adr/0302 has the table."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream._token_words import ONE_TOKEN_HANZI, ONE_TOKEN_WORDS
from promptstream._tokens import estimate_tokens
from support import examples
from support.token_corpus import Counter, corpus, reference_tokenizers

FLOOR = 0.9
# Above the most expensive reference tokenizer's count, at most this much: punctuation
# and letter runs are where the estimate leans highest (the ADR's table).
CEILING = 2.5


@pytest.fixture(scope="module")
def tokenizers() -> Iterator[dict[str, Counter]]:
    yield reference_tokenizers()


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return corpus()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        (" ", 1),  # a space alone, or before a digit or another script (Llama's)
        ("the", 1),  # a word every tokenizer holds whole
        ("a a a a", 4),  # one a word, the space joined to it
        ("12345", 5),  # a digit each (Llama)
        ("a, b. c!", 6),  # a punctuation mark each
        ("\n\n", 2),  # a newline each (Llama)
        ("xkcdqz", 5),  # a word no tokenizer holds: more for its clusters
        ("Привет", 6),
        ("こんにちは", 5),
        ("🚀", 4),  # its UTF-8 bytes: the byte fallback
        ("\ud800", 3),
    ],
)
def test_estimate_per_shape(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


def test_the_190k_character_a_a_a_prompt_from_issue_22() -> None:
    # Cancelled, it was debited chars / 4 = 47,500 tokens; every reference tokenizer
    # counts 95,000 (a token a word).
    prompt = "a " * 95_000
    assert math.ceil(len(prompt) / 4) == 47_500
    assert estimate_tokens(prompt) >= FLOOR * 95_000


def test_the_108k_character_cjk_prompt_from_issue_14() -> None:
    # Characters / 4 had debited a quarter of it: a token a character at least.
    prompt = ("请总结以下文档的要点。" * 10_800)[:107_940]
    assert estimate_tokens(prompt) >= len(prompt)


def test_never_below_the_floor_nor_absurdly_above_on_any_kind(
    tokenizers: dict[str, Counter], texts: dict[str, str]
) -> None:
    low: list[str] = []
    high: list[str] = []
    for kind, text in texts.items():
        estimate = estimate_tokens(text)
        counts = {name: count(text) for name, count in tokenizers.items()}
        low += [
            f"{kind} / {name}: {estimate / real:.2f}"
            for name, real in counts.items()
            if estimate < FLOOR * real
        ]
        if estimate > CEILING * max(counts.values()):
            high.append(f"{kind}: {estimate / max(counts.values()):.2f}")
    assert not low, low
    assert not high, high


def test_the_one_token_words_and_characters_are_one_token_everywhere(
    tokenizers: dict[str, Counter],
) -> None:
    # "a " first: Llama prepends its space mark to the text.
    for name, count in tokenizers.items():
        assert [w for w in ONE_TOKEN_WORDS if count("a " + w) != 2] == [], name
        assert [c for c in ONE_TOKEN_HANZI if count("a" + c) != 2] == [], name


def test_other_scripts_count_more_than_latin_and_cjk_most() -> None:
    n = 1000
    latin, cyrillic, cjk = (estimate_tokens(" ".join(c * n)) for c in ("a", "ж", "鬱"))
    assert latin < cyrillic < cjk


_REFERENCE: dict[str, Counter] = {}


@settings(max_examples=examples(300), deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.text(st.characters(max_codepoint=0x7F), max_size=300),
        st.lists(st.sampled_from(["a", "I", "x,", ".", "1", "ab", " ", "\n", "🚀"])).map(" ".join),
    )
)
def test_any_text_is_estimated_at_least_at_the_floor(text: str) -> None:
    # Random text, and random joins of the shapes tokenizers cut finest. A tokenizer may
    # count a token or two of its own on a short text (a leading space mark).
    _REFERENCE.update(_REFERENCE or reference_tokenizers())
    estimate = estimate_tokens(text)
    for name, count in _REFERENCE.items():
        assert estimate >= FLOOR * count(text) - 2, name


def test_it_is_cheap_on_a_large_mixed_text() -> None:
    text = "English words, 日本語の文, русский текст, 🚀. " * 20_000
    started = time.process_time()
    estimate_tokens(text)
    assert time.process_time() - started < 0.5
