"""Vectors stored as bytes (docs/adr/0802-sentence-vectors.md): packed as int8 within about
1% of their cosines; search re-scoring its best candidates by their best sentence, and
weighing the documents by their centroids."""

from __future__ import annotations

import math
import random
from typing import Any, cast

from promptstream.knowledge._search import search
from promptstream.knowledge._vectors import best_similarity, centroid, pack
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


def test_a_centroid_is_the_mean_of_its_vectors() -> None:
    assert centroid([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]]) == [2.0, 2.0, 1.0]
    assert centroid([[0.5, -0.5]]) == [0.5, -0.5]
    assert centroid([]) == []


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


# -- search: the documents weighed by their centroids ---------------------------------------


class _TwoDocs:
    """Two ready documents of alice's, ``a`` and ``b``, each with the same passages at the
    same distances, and the centroids given (``None``: stored before them)."""

    def __init__(self, centroids: dict[str, bytes | None]) -> None:
        self.centroids = centroids

    async def get_all(self, paths: list[str]) -> dict[str, Document]:
        out = {}
        for path in paths:
            document_id = path.rsplit("/", 1)[1].split("~", 1)[0]
            data: dict[str, Any] = {
                "owner_uid": "alice",
                "status": "ready",
                "generation": 1,
                "language": "english",
                "passage_count": 3,
            }
            if self.centroids.get(document_id) is not None:
                data["centroid"] = self.centroids[document_id]
            out[path] = Document(path, data, "t")
        return out

    async def find_nearest(self, *args: Any, limit: int, **kwargs: Any) -> list[Document]:
        document_id = kwargs["where_equal"]["scope"].split("/")[1]
        return [
            Document(
                f"passages/{document_id}{i}",
                {"position": i, "text": "same", "terms": "same", "distance": 0.1 + i / 100},
                "t",
            )
            for i in range(min(limit, 3))
        ]


async def _documents_of(db: _TwoDocs, ids: list[str]) -> list[str]:
    found = await search(
        cast(FirestoreRest, db),
        _Embedder(),
        owner_uid="alice",
        document_ids=ids,
        query="anything",
        top_k=4,
        candidates=20,
    )
    return [f"{s.document_id}{s.position}" for s in found.sources]


async def test_the_passages_of_the_document_nearer_the_query_come_first_among_equals() -> None:
    near, far = pack([[1.0, 0.0]]), pack([[0.0, 1.0]])
    # Equal passages a little apart: the nearer document's all come first, not by id.
    assert await _documents_of(_TwoDocs({"a": far, "b": near}), ["a", "b"]) == [
        "b0",
        "b1",
        "b2",
        "a0",
    ]
    assert (await _documents_of(_TwoDocs({"a": near, "b": far}), ["a", "b"]))[:3] == [
        "a0",
        "a1",
        "a2",
    ]
    # One document searched: nothing to weigh.
    assert await _documents_of(_TwoDocs({"a": far}), ["a"]) == ["a0", "a1", "a2"]
    # One document stored before centroids: every document weighed alike (ids break ties).
    assert await _documents_of(_TwoDocs({"a": None, "b": near}), ["a", "b"]) == [
        "a0",
        "b0",
        "a1",
        "b1",
    ]
