"""Redaction of the API key: whole strings, JSON values, and text fed in pieces."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream._redact import REDACTED, Redactor, redact, redact_json
from support import examples

KEY = "sk-or-v1-0123abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {KEY} here", f"key {REDACTED} here"),
        (f"{KEY.upper()}", REDACTED),
        ("Sk-Or-V1-0123ABCdef!", f"{REDACTED}!"),
        (f"{KEY}{KEY}", REDACTED * 2),
        ("sk-or-v1-0123abcde", "sk-or-v1-0123abcde"),
        ("", ""),
        # One character for one: a character whose lower case is longer (İ) does not
        # shift where the key is found.
        (f"İİ{KEY}İ", f"İİ{REDACTED}İ"),
    ],
)
def test_redact_finds_the_key_in_any_case(text: str, expected: str) -> None:
    assert redact(text, KEY) == expected


def test_no_secret_redacts_nothing() -> None:
    assert redact(f"a {KEY}", "") == f"a {KEY}"
    stream = Redactor("")
    assert stream.feed("sk-or") + stream.flush() == "sk-or"


def test_redact_json_cleans_keys_and_values_and_leaves_clean_values_alone() -> None:
    value = {"error": {"message": f"bad {KEY.upper()}", KEY: [1, KEY]}, "n": 1}
    assert redact_json(value, KEY) == {
        "error": {"message": f"bad {REDACTED}", REDACTED: [1, REDACTED]},
        "n": 1,
    }
    clean = {"a": ["b"]}
    assert redact_json(clean, KEY) is clean
    assert redact_json(None, KEY) is None
    assert redact_json(f"x{KEY}", KEY) == f"x{REDACTED}"


def test_a_key_split_across_pieces_is_held_back_then_redacted() -> None:
    stream = Redactor(KEY)
    assert stream.feed("hello sk-or") == "hello "
    assert stream.feed("-V1-0123") == ""
    assert stream.feed("ABCdef and more") == f"{REDACTED} and more"
    assert stream.flush() == ""


def test_a_false_start_is_released_when_it_stops_matching() -> None:
    stream = Redactor(KEY)
    assert stream.feed("risk-o") == "ri"
    assert stream.feed("meter") == "sk-ometer"
    assert stream.feed("ends with sk") == "ends with "
    assert stream.flush() == "sk"


def test_held_back_text_is_never_longer_than_the_key() -> None:
    stream = Redactor(KEY)
    out = stream.feed("s" * 1000 + KEY[:-1])
    assert out == "s" * 1000
    assert stream.flush() == KEY[:-1]


_pieces = st.lists(
    st.text(alphabet=st.sampled_from(list("sSkK-oOrRvV10123abcdefABCDEF xİ")), max_size=30),
    max_size=12,
)


@settings(max_examples=examples(200), deadline=None)
@given(pieces=_pieces, insert=st.integers(min_value=0, max_value=11))
def test_any_split_gives_what_redacting_the_whole_text_gives(
    pieces: list[str], insert: int
) -> None:
    # Put the key (in some case) somewhere, cut at a random place.
    whole_key = KEY.upper() if insert % 2 else KEY
    if pieces:
        at = insert % len(pieces)
        cut = insert % len(whole_key)
        pieces[at:at] = [whole_key[:cut], whole_key[cut:]]
    stream = Redactor(KEY)
    out = "".join(stream.feed(piece) for piece in pieces) + stream.flush()
    whole = "".join(pieces)
    assert out == redact(whole, KEY)
    assert KEY.lower() not in out.lower()
