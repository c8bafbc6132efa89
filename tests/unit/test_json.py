"""The per-chunk JSON: orjson's speed without its stricter corners changing what is
accepted or written."""

from __future__ import annotations

import json
import math

import pytest

from promptstream._json import dumps, loads


def test_round_trip_keeps_unicode_unescaped() -> None:
    value = {"content": "café 日本 🚀", "n": [1, 2.5, None, True]}
    raw = dumps(value)
    assert isinstance(raw, bytes)
    assert "café 日本 🚀".encode() in raw  # not \\u escapes
    assert loads(raw) == value
    assert loads(raw.decode()) == value


@pytest.mark.parametrize(
    "raw",
    [
        '{"content": "\\ud800"}',  # a lone surrogate escape: orjson refuses it
        '{"x": NaN}',  # not JSON, but what Python's json writes
    ],
)
def test_what_json_accepts_and_orjson_does_not_still_loads(raw: str) -> None:
    assert loads(raw) == json.loads(raw) or math.isnan(loads(raw)["x"])


def test_what_orjson_cannot_write_falls_back_to_json() -> None:
    value = {"s": "\ud800", "big": 2**70}
    assert json.loads(dumps(value)) == value


def test_invalid_json_still_raises() -> None:
    with pytest.raises(ValueError):
        loads(b"{not json")
