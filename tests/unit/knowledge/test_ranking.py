"""Hybrid ranking: BM25 over the candidates, fused with the vector order by reciprocal rank."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest

from promptstream.knowledge._ranking import bm25, fuse, terms
from promptstream.knowledge._search import search
from promptstream.store._firestore import Document, FirestoreRest
from promptstream.upstream._embeddings import Embeddings


def test_terms_are_case_folded_words_and_numbers_in_any_script() -> None:
    assert terms("Error E4: Relay 24 V, Größe ÉTÉ") == ["error", "e4", "relay", "24", "grösse", "été"]


def test_terms_drop_single_characters_and_meet_plurals() -> None:
    assert terms("a l'entrée des chiens, 2 dogs") == ["entrée", "des", "chien", "dog"]
    assert terms("bus gas this") == ["bus", "gas", "thi"]


def test_bm25_prefers_the_rare_term_and_scores_zero_without_a_shared_term() -> None:
    texts = [
        "the boiler relay did not switch, error E4",
        "the battery is low, error E3",
        "pair the thermostat with the hub",
    ]
    scores = bm25("what does E4 mean", texts)
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0
    # "error" is in two texts, "e4" in one: the rarer term weighs more.
    assert bm25("e4", texts)[0] > bm25("error", texts)[0]


def test_bm25_matches_the_okapi_formula() -> None:
    texts = ["apple apple pear", "pear plum", "plum"]
    [first, second, third] = bm25("apple pear", texts)
    n, average = 3, (3 + 2 + 1) / 3

    def part(tf: int, df: int, length: int) -> float:
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        norm = 1.2 * (1 - 0.75 + 0.75 * length / average)
        return idf * tf * 2.2 / (tf + norm)

    assert first == pytest.approx(part(2, 1, 3) + part(1, 2, 3))
    assert second == pytest.approx(part(1, 2, 2))
    assert third == 0


def test_bm25_of_an_empty_query_or_no_texts_is_nothing() -> None:
    assert bm25("", ["a text"]) == [0.0]
    assert bm25("?!", ["a text"]) == [0.0]
    assert bm25("query", []) == []


def test_fuse_keeps_the_vector_order_without_lexical_scores() -> None:
    assert fuse([0, 0, 0, 0], k=5, weight=0.3) == [0, 1, 2, 3]


def test_fuse_lifts_a_lexical_first_by_a_place_or_two_but_not_from_the_bottom() -> None:
    lexical = [0.0] * 20
    lexical[2] = 5.0
    assert fuse(lexical, k=5, weight=0.3)[:3] == [2, 0, 1]
    lexical = [0.0] * 20
    lexical[15] = 5.0
    order = fuse(lexical, k=5, weight=0.3)
    assert order[:4] == [0, 1, 2, 3] and 3 < order.index(15) < 15


def test_fuse_with_both_rankings_agreeing_changes_nothing() -> None:
    assert fuse([4.0, 3.0, 2.0, 1.0], k=5, weight=0.3) == [0, 1, 2, 3]


def test_fuse_orders_by_the_sum_of_the_two_reciprocal_ranks() -> None:
    lexical = [0.0, 1.0, 3.0]  # lexical ranks: 2 -> 1st, 1 -> 2nd
    fused = {0: 1 / 6, 1: 1 / 7 + 0.5 / 7, 2: 1 / 8 + 0.5 / 6}
    expected = sorted(fused, key=lambda i: -fused[i])
    assert fuse(lexical, k=5, weight=0.5) == expected


# -- search: the candidates it asks for and the order it returns ------------------------------


class _Db:
    """What ``search`` reads: one ready document of alice's, and its passages in the
    vector order given (nearest first), cut to the query's limit."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.limits: list[int] = []

    async def get_all(self, paths: list[str]) -> dict[str, Document]:
        data = {"owner_uid": "alice", "status": "ready", "generation": 1, "title": "T"}
        return {p: Document(p, data, "t") for p in paths}

    async def find_nearest(self, *args: Any, limit: int, **kwargs: Any) -> list[Document]:
        self.limits.append(limit)
        return [
            Document(f"passages/p{i}", {"position": i, "text": t, "distance": 0.1 + i / 100}, "t")
            for i, t in enumerate(self.texts[:limit])
        ]


class _Embedder:
    async def embed(self, texts: Any) -> Embeddings:
        return Embeddings([[1.0, 0.0]], 3)


async def _search(db: _Db, query: str, top_k: int, candidates: int) -> list[int]:
    found = await search(
        cast(FirestoreRest, db),
        _Embedder(),
        owner_uid="alice",
        document_ids=["d"],
        query=query,
        top_k=top_k,
        candidates=candidates,
    )
    return [s.position for s in found.sources]


TEXTS = [
    "Pairing the thermostat with the hub takes two minutes.",
    "The batteries last eighteen months.",
    "Error E4 means the boiler relay did not switch.",
    *(f"Schedule note {i} about heating." for i in range(17)),
]


async def test_search_re_ranks_the_vector_candidates_by_their_shared_terms() -> None:
    db = _Db(TEXTS)
    assert await _search(db, "What is E4?", top_k=3, candidates=20) == [2, 0, 1]
    assert db.limits == [20]


async def test_search_with_no_candidates_keeps_the_vector_order() -> None:
    db = _Db(TEXTS)
    assert await _search(db, "What is E4?", top_k=3, candidates=0) == [0, 1, 2]
    assert db.limits == [3]


async def test_scores_stay_cosine_similarity_whatever_the_order() -> None:
    found = await search(
        cast(FirestoreRest, _Db(TEXTS)),
        _Embedder(),
        owner_uid="alice",
        document_ids=["d"],
        query="What is E4?",
        top_k=2,
        candidates=20,
    )
    assert [round(s.score, 2) for s in found.sources] == [0.88, 0.9]


async def test_lexical_hits_far_down_the_candidates_do_not_push_the_nearest_out() -> None:
    # "note" is in the 17 farthest candidates: with the usual k of 60 they would fill the
    # top three, the nearest passage (sharing no term) out of it.
    top = await _search(_Db(TEXTS), "What does note 16 say?", top_k=3, candidates=20)
    assert top[0] == 0
    assert len(TEXTS) - 1 not in top


async def test_the_candidates_are_shared_out_among_the_documents() -> None:
    db = _Db(TEXTS)
    found = await search(
        cast(FirestoreRest, db),
        _Embedder(),
        owner_uid="alice",
        document_ids=["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
        query="What is E4?",
        top_k=3,
        candidates=20,
    )
    # Each of ten documents gives its share (2) but never fewer than top_k.
    assert db.limits == [3] * 10
    assert len(found.sources) == 3
    db = _Db(TEXTS)
    await _search(db, "What is E4?", top_k=3, candidates=0)
    await search(
        cast(FirestoreRest, db),
        _Embedder(),
        owner_uid="alice",
        document_ids=["a", "b", "c"],
        query="E4",
        top_k=3,
        candidates=20,
    )
    assert db.limits == [3, 7, 7, 7]
