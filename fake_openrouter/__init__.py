"""A local OpenRouter look-alike that speaks its chat-completions and embeddings
wire formats.

Used by the tests, the local demo (`scripts/dev` without an API key) and `bench/`.
Run it with `python -m fake_openrouter --help`, or in-process with `FakeOpenRouter`
(async) or `FakeOpenRouterThread` (sync). Behaviour is steered per request by knobs:
see `Knobs` and `KNOB_NAMES`.
"""

from __future__ import annotations

from ._embed import EMBEDDING_DIMENSIONS, EMBEDDING_MODEL
from ._knobs import KNOB_NAMES, KnobError, Knobs
from ._runner import FakeOpenRouter, FakeOpenRouterThread
from ._server import FakeState, build_app, start_site
from ._text import UNICODE_SAMPLE, demo_text, split_text

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "EMBEDDING_MODEL",
    "KNOB_NAMES",
    "UNICODE_SAMPLE",
    "FakeOpenRouter",
    "FakeOpenRouterThread",
    "FakeState",
    "KnobError",
    "Knobs",
    "build_app",
    "demo_text",
    "split_text",
    "start_site",
]
