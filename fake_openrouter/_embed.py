"""Vectors for `POST /embeddings`, from a real small model that ships inside a wheel.

wordllama's `l2_supercat` (256 dimensions, 16 MB of weights in the `wordllama` wheel, a
dev dependency) is loaded from the package's own folder with downloads disabled, so the
fake stays offline. It is a bag of token embeddings, not a transformer, but it ranks
passages well enough that retrieval in the tests and the local demo means something.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "EMBEDDING_MODEL",
    "EMBEDDING_MODELS",
    "MAX_INPUTS",
    "EmbeddingRequestError",
    "LocalEmbedder",
    "embeddings_body",
    "parse_embeddings_request",
]

EMBEDDING_MODEL = "fake/demo-embedding"
EMBEDDING_MODELS = (
    (EMBEDDING_MODEL, "Fake: local demo embedding model (wordllama l2_supercat, 256 dimensions)"),
)
EMBEDDING_DIMENSIONS = 256
# OpenAI's limit on inputs per request.
MAX_INPUTS = 2048


class EmbeddingRequestError(ValueError):
    """A request body the endpoint refuses (answered with 400)."""


class LocalEmbedder:
    """The model, loaded on first use (once per process) and shared by every request."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    import wordllama
                except ImportError as exc:  # a dev dependency: requirements-dev.txt
                    raise RuntimeError(
                        "POST /embeddings needs the wordllama package (requirements-dev.txt)"
                    ) from exc
                self._model = wordllama.WordLlama.load(
                    cache_dir=Path(wordllama.__file__).parent, disable_download=True
                )
            return self._model

    def embed(self, texts: Sequence[str], dimensions: int) -> tuple[list[list[float]], int]:
        """Unit-length vectors of ``dimensions`` (a prefix of the 256: the model was trained
        Matryoshka-style), and the number of tokens read."""
        import numpy as np

        model = self._load()
        raw = np.asarray(model.embed(list(texts), norm=False), dtype=np.float32)
        cut = raw[:, :dimensions]
        norms = np.linalg.norm(cut, axis=1, keepdims=True)
        vectors = cut / np.where(norms == 0, 1.0, norms)
        tokens = sum(sum(enc.attention_mask) for enc in model.tokenize(list(texts)))
        return vectors.tolist(), int(tokens)


def parse_embeddings_request(body: Any) -> tuple[str, list[str], int, str]:
    """Check an OpenAI-style body: (model, inputs, dimensions, encoding_format)."""
    if not isinstance(body, dict):
        raise EmbeddingRequestError("Invalid JSON body")
    model = body.get("model", EMBEDDING_MODEL)
    if not isinstance(model, str) or not model:
        raise EmbeddingRequestError("model must be a non-empty string")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        raise EmbeddingRequestError("input must be a non-empty string or array of strings")
    if len(inputs) > MAX_INPUTS:
        raise EmbeddingRequestError(f"input must have at most {MAX_INPUTS} items")
    for index, text in enumerate(inputs):
        if not isinstance(text, str) or not text.strip():
            raise EmbeddingRequestError(f"input[{index}] must be a non-empty string")
    dimensions = body.get("dimensions", EMBEDDING_DIMENSIONS)
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= EMBEDDING_DIMENSIONS
    ):
        raise EmbeddingRequestError(
            f"dimensions must be an integer from 1 to {EMBEDDING_DIMENSIONS}"
        )
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise EmbeddingRequestError("encoding_format must be 'float' or 'base64'")
    return model, inputs, dimensions, encoding


def embeddings_body(
    model: str,
    vectors: list[list[float]],
    tokens: int,
    encoding: str = "float",
    usage_extra: dict[str, Any] | None = None,
) -> bytes:
    """The OpenAI embeddings response, compact JSON in its key order; ``usage_extra``
    merged into its usage (the `embed_usage` knob)."""
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(vectors):
        embedding: Any = vector
        if encoding == "base64":
            import numpy as np

            packed = np.asarray(vector, dtype="<f4").tobytes()
            embedding = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, **(usage_extra or {})},
    }
    return json.dumps(body, separators=(",", ":")).encode()
