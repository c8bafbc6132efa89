"""Vectors stored as bytes: a passage's sentence vectors (its sentences or table rows
embedded too), by which search re-scores its best passages, and a document's centroid, by
which it weighs the documents (docs/adr/0802-sentence-vectors.md).

Pure. A passage's own vector averages all it says, so a question about one sentence of it
meets that sentence's vector more closely than the passage's.
"""

from __future__ import annotations

import math
import operator
import struct
from array import array
from collections.abc import Sequence

__all__ = ["best_similarity", "centroid", "pack"]

_INT8 = 127
# Each vector's own norm (after rounding) leads it: search then reads one dot product a
# sentence instead of two.
_NORM = struct.Struct("<f")


def pack(vectors: Sequence[Sequence[float]]) -> bytes:
    """``vectors`` one after another, each as its norm (a little-endian float32) and its
    components as signed bytes, scaled so that the largest is ±127: its direction, which
    is all a cosine reads, to within about 1%."""
    out = bytearray()
    for vector in vectors:
        top = max(map(abs, vector), default=0.0)
        scale = _INT8 / top if top > 0 else 0.0
        values = array("b", (round(x * scale) for x in vector))
        out += _NORM.pack(math.sqrt(sum(map(operator.mul, values, values))))
        out += values.tobytes()
    return bytes(out)


def centroid(vectors: Sequence[Sequence[float]]) -> list[float]:
    """The mean of ``vectors`` (all of one length), component by component."""
    if not vectors:
        return []
    return [sum(column) / len(vectors) for column in zip(*vectors, strict=True)]


def best_similarity(query: Sequence[float], packed: object) -> float | None:
    """The highest cosine similarity between ``query`` and the vectors ``pack`` made of
    the same dimensions; ``None`` when ``packed`` holds none (missing, empty, not bytes,
    not a whole number of vectors of ``query``'s length, or only zero vectors)."""
    size = _NORM.size + len(query)
    if not isinstance(packed, bytes) or not packed or not query or len(packed) % size:
        return None
    values = array("b", packed)
    query_norm = math.sqrt(sum(map(operator.mul, query, query))) or 1.0
    found: float | None = None
    for start in range(0, len(packed), size):
        (norm,) = _NORM.unpack_from(packed, start)
        if norm > 0 and math.isfinite(norm):
            vector = values[start + _NORM.size : start + size]
            similarity = sum(map(operator.mul, query, vector)) / (norm * query_norm)
            found = similarity if found is None else max(found, similarity)
    return found
