"""The knowledge-base settings: defaults, the environment, bounds, and the places that
must agree with them (the vector index, the rules' upload size, the chunker)."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from promptstream._chunking import split_passages
from promptstream._config import Settings
from promptstream._retrieval import IngestLimits
from support import ROOT


def test_defaults_and_environment() -> None:
    settings = Settings.from_env({})
    assert settings.embeddings_base_url is None
    assert settings.embedding_dimensions == 256
    assert settings.retrieval_top_k_default <= settings.retrieval_top_k_max
    changed = Settings.from_env(
        {
            "EMBEDDINGS_BASE_URL": "http://127.0.0.1:9/api/v1",
            "EMBEDDING_MODEL": "fake/demo-embedding",
            "EMBEDDING_DIMENSIONS": "64",
            "PASSAGE_CHARS": "800",
        }
    )
    assert changed.embeddings_base_url == "http://127.0.0.1:9/api/v1"
    assert changed.embedding_model == "fake/demo-embedding"
    assert (changed.embedding_dimensions, changed.passage_chars) == (64, 800)


@pytest.mark.parametrize(
    "env",
    [
        {"EMBEDDING_DIMENSIONS": "0"},
        {"RETRIEVAL_TOP_K_MAX": "0"},
        {"MAX_DOCUMENT_BYTES": "0"},
        {"PASSAGE_CHARS": "10"},
        {"PASSAGE_OVERLAP_CHARS": "-1"},
    ],
)
def test_out_of_range_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.from_env(env)


def test_the_vector_index_has_the_default_dimension_and_the_prefilter_field() -> None:
    indexes = json.loads((ROOT / "firestore.indexes.json").read_text())["indexes"]
    [vector] = [
        i
        for i in indexes
        if i["collectionGroup"] == "passages" and any("vectorConfig" in f for f in i["fields"])
    ]
    fields = {f["fieldPath"]: f for f in vector["fields"]}
    assert fields["embedding"]["vectorConfig"]["dimension"] == Settings().embedding_dimensions
    assert fields["scope"]["order"] == "ASCENDING"


def test_the_rules_upload_limit_is_the_settings_one() -> None:
    rules = (ROOT / "firestore.rules").read_text()
    [limit] = re.findall(r"data\.size <= (\d+)", rules)
    assert int(limit) == Settings().max_document_bytes


def test_the_default_chunking_parameters_are_accepted_and_match_the_ingest_defaults() -> None:
    settings = Settings()
    split_passages(
        "x", max_chars=settings.passage_chars, overlap_chars=settings.passage_overlap_chars
    )
    limits = IngestLimits()
    assert (limits.passage_chars, limits.overlap_chars) == (
        settings.passage_chars,
        settings.passage_overlap_chars,
    )
    assert (limits.max_bytes, limits.max_pages, limits.max_chars, limits.max_passages) == (
        settings.max_document_bytes,
        settings.max_document_pages,
        settings.max_document_chars,
        settings.max_passages_per_document,
    )
