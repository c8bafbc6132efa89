"""What an upstream reports, made safe to store: identifiers and the usage map."""

from __future__ import annotations

from typing import Any

import pytest

from promptstream._sanitize import MAX_ID_CHARS, plain_label, safe_text, safe_usage

KEY = "sk-or-v1-0123abcdef"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("bad\ud800x", "bad\ufffdx"),
        ("a\nb\x00c\x7f", "a\ufffdb\ufffdc\ufffd"),
        ("日本語 model", "日本語 model"),
        (f"gen-{KEY.upper()}", "gen-[redacted]"),
        ("m" * 500, "m" * MAX_ID_CHARS),
        ("", None),
        (42, None),
        (None, None),
        (["x"], None),
    ],
)
def test_safe_text(value: Any, expected: str | None) -> None:
    assert safe_text(value, KEY) == expected
    if expected is not None:
        expected.encode()


def test_safe_text_redacts_before_it_cuts() -> None:
    # Cut first, the key's start would survive at the end.
    assert safe_text("x" * 190 + KEY, KEY) == "x" * 190 + "[redacted]"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": 0.5},
            {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": 0.5},
        ),
        ({"__bad__": 1, "total_tokens": 2}, {"total_tokens": 2}),
        ({"total_tokens": 2**63}, None),
        ({"total_tokens": 2**63 - 1}, {"total_tokens": 2**63 - 1}),
        ({"total_tokens": -1, "prompt_tokens": True}, None),
        ({"cost": float("nan"), "total_tokens": float("inf")}, None),
        ({"cost": None, "is_byok": False}, {"cost": None, "is_byok": False}),
        ({"is_byok": 1}, None),
        ({"total_tokens": "7"}, None),
        (
            {"completion_tokens_details": {"reasoning_tokens": 2, "__x__": 1, "deep": {}}},
            {"completion_tokens_details": {"reasoning_tokens": 2}},
        ),
        ({"completion_tokens_details": [1]}, None),
        ({KEY: 1, "note": KEY}, None),
        ([1, 2], None),
        (None, None),
    ],
)
def test_safe_usage_keeps_known_keys_with_int64_numbers(
    usage: Any, expected: dict[str, Any] | None
) -> None:
    assert safe_usage(usage) == expected


def test_a_label_loses_its_control_characters_and_keeps_the_rest() -> None:
    assert plain_label(" Hand\x00book\x1b[31m\tv2\r\n\u0085 ") == "Handbook[31m v2"
    assert plain_label("Café 👩‍👩‍👧 \u200f") == "Café 👩‍👩‍👧 \u200f"
