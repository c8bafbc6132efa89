"""Firebase entry points. Declarations only: the logic lives in ``promptstream``."""

from __future__ import annotations

import gc

from firebase_functions import options, params, scheduler_fn
from firebase_functions.core import init

from promptstream import (
    Settings,
    configure_server,
    documents_app,
    execute_app,
    get_service,
    https_endpoint,
    stream_app,
    sweep_streams,
    with_cors,
)

OPENROUTER_API_KEY = params.SecretParam("OPENROUTER_API_KEY")

_options = {
    "secrets": [OPENROUTER_API_KEY],
    # Each open stream is a coroutine on the instance's one event loop.
    "concurrency": 1000,
    "cpu": 1,
    "memory": options.MemoryOption.GB_1,
    # Long generations must not be cut; the upstream deadline (3300 s) stays below this.
    "timeout_sec": 3600,
    "invoker": "public",
}


@init
def _warm_up() -> None:
    get_service()
    # What is alive after start-up lives as long as the process: frozen, the collector
    # stops walking it in the middle of every stream (docs/adr/0003-uvloop-and-gc-freeze.md).
    gc.collect()
    gc.freeze()


_settings = Settings.from_env()
configure_server(_settings)
execute_prompt_stream = https_endpoint(
    "execute_prompt_stream", with_cors(stream_app, _settings), **_options
)
execute_prompt = https_endpoint("execute_prompt", with_cors(execute_app, _settings), **_options)
# Knowledge bases: POST uploads a document (the raw file as the body), DELETE deletes one.
ingest_document = https_endpoint(
    "ingest_document", with_cors(documents_app, _settings, ("POST", "DELETE")), **_options
)


# Every minute: records whose execution fell silent are finished ``interrupted``, their
# leases released (docs/adr/0601-leases-that-prove-alive.md).
@scheduler_fn.on_schedule(
    schedule="every 1 minutes", timeout_sec=120, memory=options.MemoryOption.MB_256
)
def sweep_silent_streams(event: scheduler_fn.ScheduledEvent) -> None:
    sweep_streams(_settings)
