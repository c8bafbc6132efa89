"""The labelled retrieval sets (``tests/data/kb*``, read by ``bench.kb_eval`` and the recall
test): every question names a document of its set, and its answer is text of that document,
so that a recall figure can only fall for the search's sake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import ROOT

SETS = sorted(p.parent for p in (ROOT / "tests" / "data").glob("kb*/questions.json"))
KINDS = {"lexical", "paraphrase", "numeric", "table", "non_english"}


def test_there_are_labelled_sets() -> None:
    assert {p.name for p in SETS} >= {"kb", "kb_tune", "kb2", "kb3", "kb4", "kb5", "kb6"}


@pytest.mark.parametrize("folder", SETS, ids=lambda p: p.name)
def test_every_answer_is_text_of_the_document_its_question_names(folder: Path) -> None:
    # What kb_eval ingests: the set's .md and .txt files, named by their stems.
    documents = {
        p.stem: p.read_text(encoding="utf-8")
        for p in folder.iterdir()
        if p.suffix in (".md", ".txt")
    }
    questions = json.loads((folder / "questions.json").read_text(encoding="utf-8"))
    assert questions
    for item in questions:
        assert item["document"] in documents, item
        assert item["answer"].strip() and item["answer"] in documents[item["document"]], item
        assert item.get("kind", "lexical") in KINDS | {None}, item
