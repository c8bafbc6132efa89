"""The settings: read from the environment (names upper-cased, lists comma-separated, the
project from Firebase's variables), refused out of range, frozen; and for knowledge bases
the places that must agree with them (the vector index, the rules' upload size, the
chunker)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable

import pytest
from pydantic import SecretStr, ValidationError

from promptstream._config import Settings
from promptstream.http._server import BoundedH11Protocol
from promptstream.knowledge._chunking import split_passages
from promptstream.knowledge._documents import check_upload, extract_text
from promptstream.knowledge._ingest import IngestLimits, ingest
from promptstream.knowledge._pdfsandbox import PdfLimits
from promptstream.run._admission import Openings
from promptstream.store._firestore import FirestoreRest
from promptstream.upstream._client import OpenRouterConfig
from promptstream.upstream._embeddings import EmbeddingsConfig
from support import ROOT


def test_each_setting_is_read_from_its_upper_case_name() -> None:
    settings = Settings.from_env(
        {
            "HEARTBEAT_SECONDS": "0.5",
            "MAX_CONCURRENT_STREAMS": "9",
            "DEBUG_LOGGING": "true",
            "ALLOWED_ORIGINS": " http://a.example , http://b.example,, ",
            "heartbeat_seconds": "99",  # lower case is not ours
            "UNRELATED": "x",
        }
    )
    assert settings.heartbeat_seconds == 0.5
    assert settings.max_concurrent_streams == 9
    assert settings.debug_logging is True
    assert settings.allowed_origins == ("http://a.example", "http://b.example")


def test_the_default_model_is_always_allowed() -> None:
    settings = Settings.from_env({"DEFAULT_MODEL": "m/x", "ALLOWED_MODELS": "m/a,m/b"})
    assert settings.allowed_models == ("m/x", "m/a", "m/b")
    kept = Settings.from_env({"DEFAULT_MODEL": "m/b", "ALLOWED_MODELS": "m/a,m/b"})
    assert kept.allowed_models == ("m/a", "m/b")


@pytest.mark.parametrize(
    ("env", "project"),
    [
        ({}, "demo-rag-prompts"),
        ({"GCLOUD_PROJECT": "from-gcloud"}, "from-gcloud"),
        ({"GOOGLE_CLOUD_PROJECT": "from-google"}, "from-google"),
        ({"FIREBASE_CONFIG": '{"projectId": "from-firebase"}'}, "from-firebase"),
        ({"FIREBASE_CONFIG": "/path/to/config.json"}, "demo-rag-prompts"),
        ({"PROJECT_ID": "explicit", "GCLOUD_PROJECT": "other"}, "explicit"),
    ],
)
def test_the_project_comes_from_firebase_s_variables(env: dict[str, str], project: str) -> None:
    assert Settings.from_env(env).project_id == project


@pytest.mark.parametrize(
    "env",
    [{"HEARTBEAT_SECONDS": "0"}, {"MAX_BODY_BYTES": "-1"}, {"UPSTREAM_MAX_RETRIES": "11"}],
)
def test_out_of_range_server_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.from_env(env)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().heartbeat_seconds = 1  # type: ignore[misc]


def test_the_upstream_client_gets_the_upstream_settings() -> None:
    settings = Settings.from_env(
        {"UPSTREAM_FIRST_BYTE_TIMEOUT": "3", "UPSTREAM_MAX_RETRIES": "4", "DEFAULT_MAX_TOKENS": "7"}
    )
    config = OpenRouterConfig.from_settings(settings, "sk-key")
    assert (config.first_byte_timeout, config.max_retries, config.max_tokens) == (3, 4, 7)
    assert config.api_key.get_secret_value() == "sk-key"
    assert "sk-key" not in repr(config)


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


def test_the_default_chunking_parameters_are_accepted_and_match_the_ingest_defaults() -> None:
    settings = Settings()
    split_passages(
        "x", max_chars=settings.passage_chars, overlap_chars=settings.passage_overlap_chars
    )
    assert IngestLimits.from_settings(settings) == IngestLimits()
    changed = Settings.from_env({"MAX_DOCUMENT_PAGES": "3", "PASSAGE_CHARS": "700"})
    limits = IngestLimits.from_settings(changed)
    assert (limits.max_pages, limits.passage_chars) == (3, 700)


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
                "EMBEDDING_CONCURRENCY": "2",
            }
        ),
        "sk-key",
    )
    assert (local.base_url, local.model, local.batch_size, local.concurrency) == (
        "http://127.0.0.1:8788/api/v1",
        "fake/demo-embedding",
        16,
        2,
    )


def test_the_embeddings_config_gets_the_upstream_retries_and_timeout() -> None:
    # Twice each default: a value no field has unless it was passed on.
    tuning = Settings().upstream
    doubled = {
        "UPSTREAM_FIRST_BYTE_TIMEOUT": tuning.first_byte_timeout * 2,
        "UPSTREAM_MAX_RETRIES": tuning.max_retries * 2,
        "UPSTREAM_BACKOFF_BASE": tuning.backoff_base * 2,
        "UPSTREAM_BACKOFF_MAX": tuning.backoff_max * 2,
        "UPSTREAM_MAX_RETRY_AFTER": tuning.max_retry_after * 2,
    }
    settings = Settings.from_env({name: str(value) for name, value in doubled.items()})
    config = EmbeddingsConfig.from_settings(settings, "sk-key")
    got = (
        config.timeout,
        config.max_retries,
        config.backoff_base,
        config.backoff_max,
        config.max_retry_after,
    )
    assert got == tuple(doubled.values())


def test_a_client_built_without_settings_is_the_default_settings_one() -> None:
    assert OpenRouterConfig(api_key=SecretStr("sk-key")) == OpenRouterConfig.from_settings(
        Settings(), "sk-key"
    )
    model = Settings().embedding_model
    assert EmbeddingsConfig(
        api_key=SecretStr("sk-key"), model=model
    ) == EmbeddingsConfig.from_settings(Settings(), "sk-key")


def _default(function: Callable[..., object], name: str) -> object:
    return inspect.signature(function).parameters[name].default


def test_defaults_outside_settings_are_the_settings_ones() -> None:
    # Settings is the one place for a default: a value a caller may leave out is the
    # deployment's.
    settings = Settings()
    upstream = settings.upstream
    pdf = PdfLimits()
    limits = IngestLimits()
    repeated: list[tuple[object, object]] = [
        (_default(split_passages, "max_chars"), settings.passage_chars),
        (_default(split_passages, "overlap_chars"), settings.passage_overlap_chars),
        (_default(check_upload, "max_bytes"), settings.max_document_bytes),
        (_default(extract_text, "max_bytes"), settings.max_document_bytes),
        (_default(extract_text, "max_pages"), settings.max_document_pages),
        (_default(extract_text, "max_chars"), settings.max_document_chars),
        (pdf.cpu_seconds, settings.pdf_cpu_seconds),
        (pdf.memory_bytes, settings.pdf_memory_bytes),
        (pdf.wall_seconds, settings.pdf_wall_seconds),
        (pdf.concurrency, settings.pdf_concurrency),
        (pdf.queue_seconds, settings.pdf_queue_seconds),
        (limits.max_bytes, settings.max_document_bytes),
        (limits.max_pages, settings.max_document_pages),
        (limits.max_chars, settings.max_document_chars),
        (limits.max_passages, settings.max_passages_per_document),
        (limits.passage_chars, settings.passage_chars),
        (limits.overlap_chars, settings.passage_overlap_chars),
        (_default(ingest, "limits"), IngestLimits.from_settings(settings)),
        (_default(Openings, "per_user"), settings.open_queue_per_user),
        (_default(FirestoreRest, "timeout"), settings.firestore_timeout_seconds),
        (BoundedH11Protocol.head_timeout, settings.head_timeout_seconds),
        (BoundedH11Protocol.linger_bytes, settings.max_document_bytes),
        (EmbeddingsConfig.model_fields["dimensions"].default, settings.embedding_dimensions),
        (EmbeddingsConfig.model_fields["batch_size"].default, settings.embedding_batch_size),
        (EmbeddingsConfig.model_fields["concurrency"].default, settings.embedding_concurrency),
        (EmbeddingsConfig.model_fields["timeout"].default, upstream.first_byte_timeout),
        (EmbeddingsConfig.model_fields["max_retries"].default, upstream.max_retries),
        (EmbeddingsConfig.model_fields["backoff_base"].default, upstream.backoff_base),
        (EmbeddingsConfig.model_fields["backoff_max"].default, upstream.backoff_max),
        (EmbeddingsConfig.model_fields["max_retry_after"].default, upstream.max_retry_after),
        (OpenRouterConfig.model_fields["model"].default, settings.default_model),
        (OpenRouterConfig.model_fields["base_url"].default, settings.openrouter_base_url),
        (OpenRouterConfig.model_fields["max_tokens"].default, settings.default_max_tokens),
        (OpenRouterConfig.model_fields["app_url"].default, settings.app_url),
        (OpenRouterConfig.model_fields["app_title"].default, settings.app_title),
        (OpenRouterConfig.model_fields["fallback_routing"].default, settings.fallback_routing),
    ]
    assert [got for got, _ in repeated] == [want for _, want in repeated]
