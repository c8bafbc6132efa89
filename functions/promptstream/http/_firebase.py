"""Declaring an async HTTPS function for both Firebase deploy and functions-framework.

firebase-functions' ``https_fn.on_request`` wraps only synchronous Flask views.
functions-framework serves a coroutine registered with ``functions_framework.aio.http``
as ASGI (gunicorn with uvicorn's worker), and deploy discovery lists any module-level
function that carries ``__firebase_endpoint__``. ``https_endpoint`` joins the two.

It relies on two private names of firebase-functions, kept here and nowhere else:
``HttpsOptions._endpoint`` (the manifest entry ``on_request`` would build) and
``core._with_init`` (which runs the ``@init`` callback before the first request).
tests/integration/test_firebase_manifest.py fails if the manifest they produce changes.
See docs/adr/0005-native-async-path.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import functions_framework.aio
from firebase_functions import core, options
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from ._asgi import AsgiResponse

__all__ = ["https_endpoint"]

Endpoint = Callable[[Request], Awaitable[Response]]


def https_endpoint(name: str, app: ASGIApp, **opts: Any) -> Endpoint:
    """The function ``name`` (the module attribute it must be assigned to) serving the
    ASGI ``app``, declared with ``on_request``'s options."""
    run_init = core._with_init(lambda: None)

    async def endpoint(request: Request) -> Response:
        run_init()
        return AsgiResponse(app)

    endpoint.__name__ = endpoint.__qualname__ = name
    registered: Any = functions_framework.aio.http(endpoint)
    registered.__firebase_endpoint__ = options.HttpsOptions(**opts)._endpoint(func_name=name)
    return registered  # type: ignore[no-any-return]
