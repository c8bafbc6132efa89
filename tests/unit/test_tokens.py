"""The token estimate for disconnects: high enough per script, and cheap."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream._tokens import estimate_tokens
from support import examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("abcd", 1),
        ("abcde", 2),
        ("The quick brown fox jumps over the lazy dog.", 11),
        ("日本語", 3),
        ("こんにちは", 5),
        ("안녕하세요", 5),
        ("नमस्ते", 6),
        ("สวัสดี", 6),
        ("Привет", 3),
        ("Γειά", 2),
        ("مرحبا", 3),
        ("café", 2),
        ("🚀", 2),
        ("🚀🚀 ok", 5),
        ("\ud800", 1),
    ],
)
def test_estimate_per_script(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


def test_the_108k_character_cjk_prompt_from_issue_14() -> None:
    # Cancelled right after `start`, it was debited chars / 4 = 26,985 tokens while the
    # upstream billed roughly four times that.
    prompt = ("请总结以下文档的要点。" * 10_800)[:107_940]
    old_estimate = math.ceil(len(prompt) / 4)
    assert old_estimate == 26_985
    assert estimate_tokens(prompt) == len(prompt) >= 4 * old_estimate


def test_other_scripts_count_more_than_latin_and_cjk_most() -> None:
    n = 1000
    latin, cyrillic, cjk = (estimate_tokens(c * n) for c in ("a", "ж", "中"))
    assert latin < cyrillic < cjk


@settings(max_examples=examples(300), deadline=None)
@given(a=st.text(max_size=200), b=st.text(max_size=200))
def test_the_estimate_adds_up_over_pieces_give_or_take_rounding(a: str, b: str) -> None:
    # So a stream's output can be estimated as a whole or piece by piece.
    whole = estimate_tokens(a + b)
    assert (
        estimate_tokens(a) + estimate_tokens(b) - 1
        <= whole
        <= estimate_tokens(a) + estimate_tokens(b)
    )
    assert whole >= math.ceil(len(a + b) / 4)


def test_it_is_cheap_on_a_large_mixed_text() -> None:
    text = "English words, 日本語の文, русский текст, 🚀. " * 20_000
    started = time.process_time()
    estimate_tokens(text)
    assert time.process_time() - started < 0.5
