"""Ingestion's commits stay under Firestore's 10 MiB request: at most ``COMMIT_WRITES``
writes and, by each passage write's bound, ``COMMIT_BYTES``; and that bound holds for the
largest passage at the largest ``EMBEDDING_DIMENSIONS``, whichever encoder writes it."""

from __future__ import annotations

import json
import random
from typing import Any, cast

import orjson

from promptstream import Settings
from promptstream.knowledge._chunking import Passage
from promptstream.knowledge._generations import COMMIT_BYTES, COMMIT_WRITES, commit_in_batches
from promptstream.knowledge._ingest import _passage_fields, passage_write_bound
from promptstream.knowledge._vectors import pack
from promptstream.store._firestore import FirestoreRest


class _Commits:
    def __init__(self) -> None:
        self.commits: list[list[Any]] = []

    async def commit(self, writes: list[Any]) -> None:
        self.commits.append(list(writes))


async def _batches(count: int, sizes: list[int] | None) -> list[list[int]]:
    db = _Commits()
    await commit_in_batches(cast(FirestoreRest, db), list(range(count)), sizes)
    return db.commits


async def test_writes_go_in_order_in_commits_of_at_most_commit_writes() -> None:
    commits = await _batches(250, None)
    assert [len(c) for c in commits] == [COMMIT_WRITES, COMMIT_WRITES, 50]
    assert [w for c in commits for w in c] == list(range(250))
    assert await _batches(0, None) == []


async def test_large_writes_go_in_commits_of_at_most_commit_bytes() -> None:
    size = COMMIT_BYTES // 3 + 1  # two fit, three do not
    commits = await _batches(7, [size] * 7)
    assert [len(c) for c in commits] == [2, 2, 2, 1]
    assert [w for c in commits for w in c] == list(range(7))
    # A write over the budget alone still goes, alone.
    assert await _batches(3, [1, COMMIT_BYTES + 1, 1]) == [[0], [1], [2]]


def test_the_bound_holds_for_the_largest_passage_at_the_largest_dimensions() -> None:
    rng = random.Random(3)
    limit = Settings().passage_chars
    dimensions = Settings.model_fields["embedding_dimensions"].metadata[-1].le
    sentences = Settings.model_fields["passage_sentence_vectors"].metadata[-1].le
    # The character that encodes longest: an astral one (a surrogate pair's escapes, twelve
    # bytes, for the standard library's encoder).
    text = "😀" * limit
    passage = Passage(7, "Guide > " + "😀" * 200, text)
    vector = [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 0) for _ in range(dimensions)]
    packed = pack([[rng.gauss(0, 1) for _ in range(dimensions)] for _ in range(sentences)])
    terms = "😀" * limit
    fields = _passage_fields(
        "u" * 128, "d" * 100, "k" * 140, 9, "s" * 300, passage, vector, terms, packed
    )
    name = "projects/p/databases/(default)/documents/" + "x" * 300
    write = {"update": {"name": name, "fields": fields}}
    encoded = max(len(orjson.dumps(write)), len(json.dumps(write).encode()))
    bound = passage_write_bound(passage, vector, terms, packed)
    assert encoded <= bound
    # And a commit of such writes at that bound stays under Firestore's 10 MiB.
    per_commit = max(1, COMMIT_BYTES // bound)
    assert per_commit * encoded < 10 * 1024 * 1024
