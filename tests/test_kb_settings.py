"""The knowledge-base settings: defaults, the environment, bounds, and the places that
must agree with them (the vector index, the rules' upload size, the chunker)."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from promptstream._chunking import split_passages
from promptstream._config import Settings
from promptstream._embeddings import EmbeddingsConfig
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
    assert IngestLimits.from_settings(settings) == IngestLimits()
    changed = Settings.from_env({"MAX_DOCUMENTS_PER_USER": "3", "PASSAGE_CHARS": "700"})
    limits = IngestLimits.from_settings(changed)
    assert (limits.max_documents, limits.passage_chars) == (3, 700)


def test_the_embeddings_config_comes_from_the_settings() -> None:
    default = EmbeddingsConfig.from_settings(Settings(), "sk-key")
    assert default.base_url == Settings().openrouter_base_url
    assert (default.model, default.dimensions) == ("openai/text-embedding-3-small", 256)
    assert default.api_key.get_secret_value() == "sk-key"
    local = EmbeddingsConfig.from_settings(
        Settings.from_env(
            {
                "EMBEDDINGS_BASE_URL": "http://127.0.0.1:8788/api/v1",
                "EMBEDDING_MODEL": "fake/demo-embedding",
                "EMBEDDING_BATCH_SIZE": "16",
            }
        ),
        "sk-key",
    )
    assert (local.base_url, local.model, local.batch_size) == (
        "http://127.0.0.1:8788/api/v1",
        "fake/demo-embedding",
        16,
    )
