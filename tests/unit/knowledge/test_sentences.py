"""Sentence vectors (docs/adr/0802-sentence-vectors.md): packed as int8 within about 1% of
their cosines, and search re-scoring its best candidates by their best sentence."""

from __future__ import annotations

import math
import random
from typing import Any, cast

from promptstream.knowledge._search import search
from promptstream.knowledge._sentences import best_similarity, pack
from promptstream.store._firestore import Document, FirestoreRest
from promptstream.upstream._embeddings import Embeddings


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.hypot(*a) / math.hypot(*b)


def test_packed_vectors_keep_their_cosines_to_within_one_percent() -> None:
    rng = random.Random(7)
    for _ in range(50):
        query = [rng.gauss(0, 1) for _ in range(256)]
        vectors = [[rng.gauss(0, 1) for _ in range(256)] for _ in range(4)]
        packed = pack(vectors)
        assert len(packed) == 4 * (4 + 256)  # each its float32 norm, then 256 bytes
        found = best_similarity(query, packed)
        assert found is not None
        assert abs(found - max(_cosine(query, v) for v in vectors)) < 0.01


def test_the_best_sentence_wins_whatever_its_place() -> None:
    query = [1.0, 0.0, 0.0]
    for place in range(3):
        vectors = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
        vectors[place] = [2.0, 0.1, 0.0]  # its length does not matter, its direction does
        found = best_similarity(query, pack(vectors))
        assert found is not None and found > 0.99


def test_nothing_usable_is_no_similarity() -> None:
    query = [1.0, 0.0]
    assert best_similarity(query, None) is None
    assert best_similarity(query, b"") is None
    assert best_similarity(query, "not bytes") is None
    assert best_similarity(query, b"\x01\x02\x03") is None  # not whole vectors of 2
    assert best_similarity(query, pack([[0.0, 0.0]])) is None  # a zero vector has no direction
    assert best_similarity([], pack([[1.0]])) is None


# -- search: the pool's best re-scored by their sentences ----------------------------------


class _Db:
    """One ready document of alice's whose passages come in the given vector order, the
    first nearest, with the sentence vectors given for some."""

    def __init__(self, count: int, sentences: dict[int, Any]) -> None:
        self.count = count
        self.sentences = sentences

    async def get_all(self, paths: list[str]) -> dict[str, Document]:
        data = {"owner_uid": "alice", "status": "ready", "generation": 1, "language": "english"}
        return {p: Document(p, {**data, "passage_count": self.count}, "t") for p in paths}

    async def find_nearest(self, *args: Any, limit: int, **kwargs: Any) -> list[Document]:
        hits = []
        for i in range(min(limit, self.count)):
            fields: dict[str, Any] = {
                "position": i,
                "text": f"passage {i}",
                "terms": "passag",
                "distance": 0.1 + i / 100,
            }
            if i in self.sentences:
                fields["sentence_vectors"] = self.sentences[i]
            hits.append(Document(f"passages/p{i}", fields, "t"))
        return hits


class _Embedder:
    async def embed(self, texts: Any) -> Embeddings:
        return Embeddings([[1.0, 0.0]], 3)


async def _search(db: _Db, **kwargs: Any) -> list[tuple[int, float]]:
    found = await search(
        cast(FirestoreRest, db),
        _Embedder(),
        owner_uid="alice",
        document_ids=["d"],
        query="anything",
        **{"top_k": 3, "candidates": 20, **kwargs},
    )
    return [(s.position, round(s.score, 2)) for s in found.sources]


# A sentence in the query's own direction, and one across it.
EXACT = pack([[0.0, 1.0], [1.0, 0.0]])
ACROSS = pack([[0.0, 1.0], [-1.0, 0.0]])


async def test_a_passage_whose_sentence_answers_rises_above_nearer_passages() -> None:
    assert await _search(_Db(30, {})) == [(0, 0.9), (1, 0.89), (2, 0.88)]
    # Its score in the sources stays the passage's own cosine similarity.
    assert await _search(_Db(30, {7: EXACT})) == [(7, 0.83), (0, 0.9), (1, 0.89)]
    # A sentence less similar than its passage changes nothing.
    assert await _search(_Db(30, {0: ACROSS, 1: ACROSS})) == [(0, 0.9), (1, 0.89), (2, 0.88)]
    # Malformed vectors (a length that is not the query's) are ignored.
    assert (await _search(_Db(30, {7: b"\x01\x02\x03"})))[0] == (0, 0.9)


async def test_only_the_best_candidates_are_re_scored() -> None:
    # Read whole (30 passages), the 25th is past the first max(top_k, candidates) = 20.
    assert (await _search(_Db(30, {24: EXACT})))[0] == (0, 0.9)
    assert (await _search(_Db(30, {24: EXACT}), candidates=25))[0] == (24, 0.66)
    # No hybrid ranking (candidates 0): the vector order alone.
    assert (await _search(_Db(30, {7: EXACT}), candidates=0))[0] == (0, 0.9)
