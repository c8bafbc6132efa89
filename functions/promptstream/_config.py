"""Settings read once from the environment (``functions/.env`` locally and in production)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULTS", "Routing", "Settings", "UpstreamTuning"]

# How a call with fallback models falls back (upstream/_routing.py).
Routing = Literal["auto", "native", "client"]


def _csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class UpstreamTuning(BaseModel):
    """The upstream client's timeouts, retries and size limit, declared once: the
    settings read each as ``UPSTREAM_<NAME>`` and the upstream's ``OpenRouterConfig``
    inherits them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_timeout: float = Field(default=10.0, gt=0)
    # Until the response headers arrive.
    first_byte_timeout: float = Field(default=60.0, gt=0)
    # The content watchdog: the longest silence between two content chunks. Keep-alive
    # comments do not count, which is why a socket read timeout cannot do this job.
    idle_timeout: float = Field(default=90.0, gt=0)
    # The whole call, retries and fallbacks included; keep it below the function's
    # timeout.
    deadline: float = Field(default=3300.0, gt=0)
    # Every attempt before the first content (or headers, not streamed), retries and
    # fallbacks included: a silent upstream cannot hold a request, its lease and its
    # reservation for (1 + fallbacks) × (1 + retries) first-byte timeouts. Two
    # first-byte timeouts: a primary that is silent to the end still leaves a fallback
    # the whole of one, and a person waiting for a first word has given up long before.
    first_chunk_deadline: float = Field(default=120.0, gt=0)
    # Per model: a fallback model gets its own retries.
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    # A Retry-After longer than this is not waited for; the error goes to the caller
    # (or the next model).
    max_retry_after: float = Field(default=10.0, ge=0)
    # The largest single message the upstream may send: one SSE line, one event's data,
    # or a whole non-streamed body. Past it the call fails with InvalidResponseError.
    max_message_bytes: int = Field(default=1 << 20, ge=1024)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    project_id: str = "demo-rag-prompts"
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    default_model: str = "x-ai/grok-4-fast:free"
    allowed_models: tuple[str, ...] = ("x-ai/grok-4-fast:free",)
    allowed_origins: tuple[str, ...] = ()
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    # A client that takes no bytes for this long while the stream has some to send is
    # treated as gone.
    stall_timeout_seconds: float = Field(default=30.0, gt=0)
    app_url: str | None = None
    app_title: str | None = "RAG Prompt Library"
    # The upstream client's timeouts, retries and size limit, declared in UpstreamTuning:
    # each read from ``UPSTREAM_<NAME>`` (UPSTREAM_FIRST_BYTE_TIMEOUT, ...). Timeouts in
    # seconds; the deadline stays below the function's timeout_sec.
    upstream: UpstreamTuning = Field(default_factory=UpstreamTuning)
    # Models (issue 18): how a call falls back (auto: OpenRouter's native ``models``
    # routing against openrouter.ai, the client's own elsewhere), and how many fallback
    # models a request or a prompt may name.
    fallback_routing: Routing = "auto"
    max_fallback_models: int = Field(default=3, ge=0, le=3)
    # Executions whose record is being opened (the Firestore read and commit) at once in
    # one instance; more wait their turn, up to the queue timeout, then get a 503. A burst
    # of new requests then cannot swamp the loop that relays the streams already open.
    # 0 = no bound.
    open_concurrency: int = Field(default=8, ge=0)
    # With a target (ms > 0), the bound grows past ``open_concurrency`` (its floor), up to
    # ``open_concurrency_max``, while the loop's measured lag stays under the target, and
    # halves when it is over: round trips to Firestore vary with the region, and a fixed
    # bound fits one (docs/adr/1001-realistic-latency-and-the-bound.md). 0 = fixed.
    open_lag_target_ms: float = Field(default=0.0, ge=0)
    open_concurrency_max: int = Field(default=64, ge=1)
    open_queue_timeout_seconds: float = Field(default=60.0, gt=0)
    # Each Firestore call (a read of two documents, a commit) gives up after this long.
    firestore_timeout_seconds: float = Field(default=10.0, gt=0)
    # Request limits.
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    # The whole request body must arrive within this long.
    body_timeout_seconds: float = Field(default=15.0, gt=0)
    # The request line and headers: their size together, and how long they may take.
    max_request_head_bytes: int = Field(default=16 * 1024, ge=1024)
    head_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long an idle connection is kept between requests: longer than any pooling
    # proxy in front keeps one (Google's load balancers 600 s, node's agent in the
    # Functions emulator 5 s), so that the proxy, never this server, closes it and no
    # request is sent on a connection being closed (docs/adr/0306-server-edge.md).
    keep_alive_seconds: float = Field(default=620.0, gt=0)
    # The server's HTTP/1.1 parser, both bounded by the limits above; httptools costs the
    # loop less per request and per write (docs/adr/1004-the-server-on-httptools.md).
    http_parser: Literal["h11", "httptools"] = "httptools"
    max_variables: int = Field(default=50, gt=0)
    max_variable_chars: int = Field(default=20_000, gt=0)
    max_context_chars: int = Field(default=100_000, gt=0)
    max_prompt_chars: int = Field(default=200_000, gt=0)
    default_max_tokens: int = Field(default=2048, gt=0)
    max_tokens_cap: int = Field(default=32_000, gt=0)
    # Per-user limits, enforced by conditional Firestore commits.
    max_concurrent_streams: int = Field(default=5, gt=0)
    daily_token_budget: int = Field(default=500_000, gt=0)
    # Leases older than this are treated as dead (an instance crashed mid-stream).
    stream_lease_seconds: float = Field(default=3700.0, gt=0)
    # Durable streams (docs/adr/0600-durable-streams.md). A resumable execution's new
    # events reach Firestore at least this often, so a crash loses at most this much.
    checkpoint_seconds: float = Field(default=1.0, gt=0)
    # How long a resumable execution goes on with no client attached before it is
    # cancelled: a phone changing networks comes back well within it.
    resume_grace_seconds: float = Field(default=30.0, ge=0)
    # A resumable execution whose record shows no sign of life (``alive_at``, refreshed by
    # its checkpoints) for this long is dead: its lease stops counting, and the repair
    # finishes its record ``interrupted`` (docs/adr/0601-leases-that-prove-alive.md).
    lease_ttl_seconds: float = Field(default=60.0, gt=0)
    # Records the scheduled sweep repairs at most per run (the rest wait a minute).
    repair_sweep_limit: int = Field(default=200, ge=1)
    # After SIGTERM, the generations go on (checkpointing) for this long, then end
    # ``interrupted``: below Cloud Run's 10 s between SIGTERM and SIGKILL.
    shutdown_grace_seconds: float = Field(default=8.0, ge=0)
    debug_logging: bool = False

    # --- Hardening (issue 14). -------------------------------------------------------
    # (UPSTREAM_MAX_MESSAGE_BYTES is UpstreamTuning.max_message_bytes.)
    # Each variable value kept in the execution record is cut to this many characters
    # (Rendered.recorded); the full value still goes upstream.
    record_variable_chars: int = Field(default=2_000, gt=0)
    # The output and reasoning kept in the record, together, in characters: at most 4
    # UTF-8 bytes each, so the default keeps a record well under Firestore's 1 MiB
    # document limit. Longer answers are cut there and the record says ``truncated``.
    record_text_chars: int = Field(default=200_000, gt=0)

    _split = field_validator("allowed_models", "allowed_origins", mode="before")(_csv)

    @model_validator(mode="after")
    def _liveness_outlasts_the_refresh(self) -> Settings:
        # A running execution refreshes alive_at every fifth checkpoint pass when it has
        # nothing new: a TTL shorter than a few of those would give up live executions.
        if self.lease_ttl_seconds < 10 * self.checkpoint_seconds:
            raise ValueError(
                "LEASE_TTL_SECONDS must be at least ten times CHECKPOINT_SECONDS"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            name: env[name.upper()]
            for name in cls.model_fields
            if name.upper() in env and name != "upstream"
        }
        upstream = {
            name: env[f"UPSTREAM_{name.upper()}"]
            for name in UpstreamTuning.model_fields
            if f"UPSTREAM_{name.upper()}" in env
        }
        if upstream:
            values["upstream"] = upstream
        if "project_id" not in values:
            project = env.get("GCLOUD_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT")
            if not project and env.get("FIREBASE_CONFIG", "").startswith("{"):
                project = json.loads(env["FIREBASE_CONFIG"]).get("projectId")
            if project:
                values["project_id"] = project
        settings = cls.model_validate(values)
        if settings.default_model not in settings.allowed_models:
            settings = settings.model_copy(
                update={"allowed_models": (settings.default_model, *settings.allowed_models)}
            )
        return settings

    # -- Knowledge bases (issue 16) ------------------------------------------------------
    # The OpenAI-compatible /embeddings endpoint: OpenRouter's (the same key) unless set.
    embeddings_base_url: str | None = None
    embedding_model: str = "openai/text-embedding-3-small"
    # Must equal the vector index's dimension in firestore.indexes.json.
    embedding_dimensions: int = Field(default=256, ge=1, le=2048)
    embedding_batch_size: int = Field(default=64, ge=1, le=2048)
    # Batches of one upload in flight at once; each still retries on its own.
    embedding_concurrency: int = Field(default=4, ge=1, le=16)
    # Passages per execution: the prompt's top_k or this default, a request's override
    # capped at the max (the default weighed against its tokens: docs/adr/0800).
    retrieval_top_k_default: int = Field(default=5, ge=1, le=50)
    retrieval_top_k_max: int = Field(default=10, ge=1, le=50)
    # Passages fetched by vector per document and re-ranked with BM25 (0: vector order
    # alone); more finds more exact tokens at the cost of their text read per search.
    retrieval_candidates: int = Field(default=20, ge=0, le=100)
    # Named documents of at most this many passages in all are read whole and every passage
    # re-ranked, with exact BM25 statistics (docs/adr/0801); Firestore's nearest-neighbour
    # query returns at most 1000.
    retrieval_lexical_passages: int = Field(default=150, ge=0, le=1000)
    max_documents_per_prompt: int = Field(default=10, ge=1, le=50)
    # Uploads (documents are written by ingestion only: the rules hold no copy of these).
    max_document_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    # An upload's whole body must arrive within this long (ingest_document).
    document_body_timeout_seconds: float = Field(default=120.0, gt=0)
    # Characters of each passage's text kept in an execution record's sources.
    record_source_chars: int = Field(default=1000, ge=0)
    max_documents_per_user: int = Field(default=50, ge=1)
    max_document_pages: int = Field(default=200, ge=1)
    max_document_chars: int = Field(default=500_000, ge=1)
    max_passages_per_document: int = Field(default=2000, ge=1)
    # Chunking (ADR 0200).
    passage_chars: int = Field(default=1200, ge=50)
    passage_overlap_chars: int = Field(default=150, ge=0)
    # Each passage's sentences (or table rows) are embedded too, in at most this many runs,
    # and stored with it; search re-scores its best candidates by their best sentence
    # (docs/adr/0802-sentence-vectors.md). 0: none, and uploads embed their passages alone.
    passage_sentence_vectors: int = Field(default=12, ge=0, le=64)

    # -- CPU bounds on uploads (issue 22, ADR 0307) --------------------------------------
    # Each PDF is read in a child process with these limits; at one it is refused 422
    # ``too_complex``. At most pdf_concurrency at once per instance; an upload that waits
    # longer than pdf_queue_seconds for one is refused 503.
    pdf_cpu_seconds: int = Field(default=10, ge=1)
    pdf_memory_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024 * 1024)
    pdf_wall_seconds: float = Field(default=20.0, gt=0)
    pdf_concurrency: int = Field(default=2, ge=1)
    pdf_queue_seconds: float = Field(default=5.0, gt=0)

    # -- Per-user fairness (issue 22, ADR 0309) ----------------------------------------
    # Each user's openings (both execution endpoints) and uploads: a burst at once, then
    # so many a minute (0: no limit); over it, 429 rate_limited with Retry-After.
    open_rate_burst: int = Field(default=20, ge=1)
    open_rate_per_minute: int = Field(default=60, ge=0)
    upload_rate_burst: int = Field(default=10, ge=1)
    upload_rate_per_minute: int = Field(default=20, ge=0)
    # A user's requests waiting for a turn to open in one instance (a user holds at most
    # one turn); past this many, 429 rate_limited at once.
    open_queue_per_user: int = Field(default=8, ge=1)

    # -- Uploads under the budget (issue 22, ADR 0308) ------------------------------------
    # A user's uploads in flight at once, across instances (the limits document) and, before
    # any body is read, within each instance.
    max_concurrent_uploads: int = Field(default=2, ge=1)
    # Upload bodies read and ingested at once in one instance, whoever sends them (each holds
    # up to MAX_DOCUMENT_BYTES and its text, passages and vectors); more wait their turn up to
    # the queue timeout, then get a 503.
    max_uploads_per_instance: int = Field(default=4, ge=1)
    upload_queue_timeout_seconds: float = Field(default=30.0, gt=0)
    # An upload's lease (and its reservation) lapses after this long when its instance died
    # before settling it.
    upload_lease_seconds: float = Field(default=3700.0, gt=0)

    # -- Conversations (issue 25, docs/adr/0700-conversations.md) ---------------------------
    # The context window assumed for every allowed model, in tokens: a follow-up whose
    # conversation (estimated) plus its max_tokens would not fit is refused before the first
    # byte (413 conversation_too_long) rather than cut by the upstream.
    context_window_tokens: int = Field(default=128_000, ge=1024)
    # Turns in one chain of a conversation: bounds the records a follow-up reads.
    max_conversation_turns: int = Field(default=100, ge=2, le=500)


# The defaults, for code that takes a value when its caller passes none: one object, so
# every default is the one Settings declares.
DEFAULTS = Settings()
