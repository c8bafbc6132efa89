"""Firebase entry points. Declarations only: the logic lives in ``promptstream``."""

from __future__ import annotations

import gc

import flask
from firebase_functions import https_fn, options, params
from firebase_functions.core import init
from flask_cors import cross_origin

from promptstream import Settings, get_service, handle_execute, handle_stream

OPENROUTER_API_KEY = params.SecretParam("OPENROUTER_API_KEY")

# Each open stream holds one gunicorn thread, so THREADS in functions/.env must match.
CONCURRENCY = 1000

_cors = cross_origin(
    origins=list(Settings.from_env().allowed_origins),
    methods=["POST", "OPTIONS"],
    allow_headers=["Authorization", "Content-Type"],
    expose_headers=["Retry-After", "X-Execution-Id"],
    max_age=3600,
)

_options = {
    "secrets": [OPENROUTER_API_KEY],
    "concurrency": CONCURRENCY,
    "cpu": 1,
    "memory": options.MemoryOption.GB_1,
    # Long generations must not be cut; the upstream deadline (3300 s) stays below this.
    "timeout_sec": 3600,
    "invoker": "public",
}


@init
def _warm_up() -> None:
    get_service()
    # What is alive after start-up lives as long as the process. Frozen, the collector
    # stops walking it: a full collection over it took 60-110 ms, a pause for every
    # stream the instance was relaying (bench S2).
    gc.collect()
    gc.freeze()


@https_fn.on_request(**_options)  # type: ignore[arg-type]
@_cors
def execute_prompt_stream(req: flask.Request) -> flask.Response:
    return handle_stream(req)


@https_fn.on_request(**_options)  # type: ignore[arg-type]
@_cors
def execute_prompt(req: flask.Request) -> flask.Response:
    return handle_execute(req)
