"""Hybrid ranking: BM25 over the pool's terms, fused with the vector similarity by score;
and search's pool: the nearest candidates, or every passage when the documents are few."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest

from promptstream.knowledge._ranking import bm25, expand, fuse, plain_terms
from promptstream.knowledge._search import search
from promptstream.knowledge._terms import terms
from promptstream.store._firestore import Document, FirestoreRest
from promptstream.upstream._embeddings import Embeddings


def test_plain_terms_are_case_folded_words_and_numbers_in_any_script() -> None:
    assert plain_terms("Error E4: Relay 24 V, Größe ÉTÉ") == [
        "error",
        "e4",
        "relay",
        "24",
        "grösse",
        "été",
    ]
    assert plain_terms("a l'entrée des chiens, 2 dogs") == ["entrée", "des", "chien", "dog"]


def _bm25(query: str, texts: list[str]) -> list[float]:
    q = terms(query)
    return bm25([q] * len(texts), [terms(t) for t in texts])


def test_bm25_prefers_the_rare_term_and_scores_zero_without_a_shared_term() -> None:
    texts = [
        "the boiler relay did not switch, error E4",
        "the battery is low, error E3",
        "pair the thermostat with the hub",
    ]
    scores = _bm25("what does E4 mean", texts)
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0
    # "error" is in two texts, "e4" in one: the rarer term weighs more.
    assert _bm25("e4", texts)[0] > _bm25("error", texts)[0]


def test_bm25_matches_the_okapi_formula() -> None:
    passages = [["apple", "apple", "pear"], ["pear", "plum"], ["plum"]]
    query = ["apple", "pear"]
    [first, second, third] = bm25([query] * 3, passages)
    n, average = 3, (3 + 2 + 1) / 3

    def part(tf: int, df: int, length: int) -> float:
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        norm = 1.2 * (1 - 0.75 + 0.75 * length / average)
        return idf * tf * 2.2 / (tf + norm)

    assert first == pytest.approx(part(2, 1, 3) + part(1, 2, 3))
    assert second == pytest.approx(part(1, 2, 2))
    assert third == 0


def test_bm25_scores_each_passage_for_the_query_in_its_own_language() -> None:
    # The query's terms as a German and as an English document read them: a passage
    # counts only the terms of its own reading, the statistics are the pool's.
    german, english = ["hund"], ["dog"]
    scores = bm25([german, english, english], [["hund"], ["hund"], ["dog"]])
    assert scores[0] > 0 and scores[1] == 0 and scores[2] > 0


def test_bm25_of_an_empty_query_or_no_passages_is_nothing() -> None:
    assert bm25([[]], [["text"]]) == [0.0]
    assert bm25([], []) == []


def test_a_compound_missing_from_the_vocabulary_adds_its_parts() -> None:
    vocabulary = {"mittwoch", "nachmittag", "geschloss", "zahnrein"}
    assert expand(["mittwochnachmittag"], vocabulary) == [
        "mittwochnachmittag",
        "mittwoch",
        "nachmittag",
    ]
    # The second part may be the start of a term ("nachmittagen" read as "nachmittag").
    assert expand(["mittwochnachmittagen"], vocabulary)[1:] == ["mittwoch", "nachmittag"]


def test_terms_found_short_or_unsplittable_are_left_alone() -> None:
    vocabulary = {"zahnrein", "mittwoch"}
    assert expand(["zahnrein", "haus", "mittwochx"], vocabulary) == [
        "zahnrein",
        "haus",
        "mittwochx",
    ]
    # Parts of fewer than four characters are not parts.
    assert expand(["abcdefghij"], {"abc", "defghij"}) == ["abcdefghij"]


def test_fuse_keeps_the_vector_order_without_lexical_scores() -> None:
    assert fuse([0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0], weight=0.4) == [0, 1, 2, 3]


def test_fuse_weighs_the_two_scores_each_as_a_share_of_the_pools_best() -> None:
    similarities = [0.8, 0.6, 0.4]
    lexical = [0.0, 2.0, 4.0]
    # Shares: vector 1, 0.75, 0.5; lexical 0, 0.5, 1.
    assert fuse(similarities, lexical, weight=0.4) == [2, 1, 0]  # 0.6, 0.65, 0.7
    assert fuse(similarities, lexical, weight=0.1) == [0, 1, 2]  # 0.9, 0.725, 0.55


def test_fuse_adds_the_documents_similarity_as_a_share_of_the_nearest_documents() -> None:
    similarities, lexical = [0.9, 0.85, 0.8], [0.0, 0.0, 0.0]
    # Vector shares 1, 0.944, 0.889 (times 0.7); documents' shares 0.25, 1, 1 (times 0.3).
    near = [0.1, 0.4, 0.4]
    assert fuse(similarities, lexical, weight=0.3, documents=near, document_weight=0.3) == [1, 2, 0]
    # A small weight only breaks near ties; none, or no documents, changes nothing.
    assert fuse(similarities, lexical, weight=0.3, documents=near, document_weight=0.01) == [0, 1, 2]
    assert fuse(similarities, lexical, weight=0.3, documents=near) == [0, 1, 2]
    assert fuse(similarities, lexical, weight=0.3, document_weight=0.3) == [0, 1, 2]


def test_fuse_does_not_stretch_near_equal_similarities() -> None:
    # A pool of three almost equally near: the lexical score decides, as in a large pool.
    assert fuse([0.9, 0.89, 0.88], [0.0, 0.0, 1.0], weight=0.3) == [2, 0, 1]


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


async def _ranked(db: Any, query: str, documents: int = 1, **kwargs: Any) -> list[int]:
    """The positions ``search`` returns from ``documents`` documents served by ``db``."""
    found = await search(
        cast(FirestoreRest, db),
        _Embedder(),
        owner_uid="alice",
        document_ids=[f"d{i}" for i in range(documents)],
        query=query,
        **{"top_k": 3, "candidates": 20, **kwargs},
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
    assert await _ranked(db, "What is E4?", top_k=3, candidates=20) == [2, 0, 1]
    assert db.limits == [20]


async def test_search_with_no_candidates_keeps_the_vector_order() -> None:
    db = _Db(TEXTS)
    assert await _ranked(db, "What is E4?", top_k=3, candidates=0) == [0, 1, 2]
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


async def test_a_lexical_hit_lifts_a_passage_only_as_far_as_its_similarity_allows() -> None:
    # "note" is in the 17 farthest candidates, "16" in the last: its similarity (0.71 of
    # 0.9) with the best lexical score outweighs the nearest passage, which shares no term.
    top = await _ranked(_Db(TEXTS), "What does note 16 say?", top_k=3, candidates=20)
    assert top[0] == len(TEXTS) - 1
    # Half as similar as the nearest, the best lexical score is not enough.
    far = [*TEXTS[:3], *(["Far away."] * 46), "note 16"]
    top = await _ranked(_Db(far), "What does note 16 say?", top_k=3, candidates=60)
    assert top == [0, 1, 2]


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
    await _ranked(db, "What is E4?", top_k=3, candidates=0)
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


# -- the pool and the stored terms -------------------------------------------------------------


class _Stored:
    """Documents of alice's as ingestion now stores them (a language, a passage count, the
    passages' terms), or as it stored them before (``language=None``: neither)."""

    def __init__(self, texts: list[str], *, language: str | None, count: int | None = None):
        self.texts = texts
        self.language = language
        self.count = len(texts) if count is None else count
        self.limits: list[int] = []

    async def get_all(self, paths: list[str]) -> dict[str, Document]:
        data: dict[str, Any] = {"owner_uid": "alice", "status": "ready", "generation": 1}
        if self.language is not None:
            data.update(language=self.language, passage_count=self.count)
        return {p: Document(p, data, "t") for p in paths}

    async def find_nearest(self, *args: Any, limit: int, **kwargs: Any) -> list[Document]:
        self.limits.append(limit)
        hits = []
        for i, text in enumerate(self.texts[:limit]):
            # Near-equal distances, as a bag-of-words model gives passages of one subject.
            fields: dict[str, Any] = {"position": i, "text": text, "distance": 0.1 + i / 1000}
            if self.language is not None:
                fields["terms"] = " ".join(terms(text, self.language))
            hits.append(Document(f"passages/p{i}", fields, "t"))
        return hits


GERMAN = [
    "Herzlich willkommen in unserer Praxis.",
    "Bitte bringen Sie Ihre Karte mit.",
    "Kinder sind bei uns willkommen.",
    *(f"Hinweis {i} zur Anfahrt." for i in range(40)),
    "Öffnungszeiten: am Mittwoch ist der Nachmittag frei.",
]


async def test_the_documents_few_passages_are_read_whole_and_re_ranked() -> None:
    # The answer is the farthest of 44 by vector: only a whole read reaches it.
    db = _Stored(GERMAN, language="german")
    assert (await _ranked(db, "Öffnungszeit am Mittwochnachmittag?"))[0] == len(GERMAN) - 1
    assert db.limits == [len(GERMAN)]
    # Past the bound, the 20 nearest only: the answer is not among them.
    db = _Stored(GERMAN, language="german")
    top = await _ranked(db, "Öffnungszeit am Mittwochnachmittag?", lexical_passages=43)
    assert db.limits == [20] and len(GERMAN) - 1 not in top


async def test_every_document_is_read_whole_when_all_together_are_few() -> None:
    db = _Stored(GERMAN[:10], language="german")
    await _ranked(db, "Karte", documents=3, lexical_passages=30)
    assert db.limits == [10, 10, 10]
    db = _Stored(GERMAN[:10], language="german")
    await _ranked(db, "Karte", documents=3, lexical_passages=29)
    assert db.limits == [7, 7, 7]  # their share of the 20 candidates
    db = _Stored(GERMAN[:10], language="german")
    await _ranked(db, "Karte", documents=3, candidates=0)
    assert db.limits == [3, 3, 3]  # no lexical score, no whole read


async def test_stored_terms_meet_the_query_stemmed_in_the_documents_language() -> None:
    texts = ["Willkommen.", "Die Karte bitte.", "Unsere Öffnungszeiten sind lang."]
    assert await _ranked(_Stored(texts, language="german"), "öffnungszeit") == [2, 0, 1]


async def test_documents_stored_before_their_terms_fall_back_to_plain_terms() -> None:
    # No language, no terms: today's plain terms of the text, over the nearest candidates.
    texts = ["Willkommen.", "Die Karte bitte.", "Unsere Öffnungszeiten sind lang."]
    db = _Stored(texts, language=None)
    assert await _ranked(db, "öffnungszeit") == [0, 1, 2]  # no stem: no shared term
    assert await _ranked(db, "Öffnungszeiten") == [2, 0, 1]
    assert db.limits == [20, 20]  # no passage count: never read whole
