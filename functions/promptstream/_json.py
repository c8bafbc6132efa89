"""JSON on the per-chunk path: orjson where it can, the standard library where it cannot.

Every relayed chunk is one upstream event parsed and one event encoded; orjson does
both several times faster than the ``json`` module (docs/adr/0006-orjson.md). It is
stricter than ``json`` in a few corners an upstream may reach (a lone surrogate escape,
``NaN``); those fall back to ``json``, so what is accepted does not change. One
difference stays: orjson reads an integer past 64 bits as a float (nothing downstream
keeps such a number: ``safe_usage`` drops it either way).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def loads(raw: str | bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(value: Any) -> bytes:
    """UTF-8 JSON without escaping non-ASCII text (``ensure_ascii=False``)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, a huge int, a str subclass key
        return json.dumps(value).encode()
