"""Which model answers: the routing of one call over a primary model and its fallbacks,
and the record of each model tried. Pure: no I/O, no clock.

Two routings (``FALLBACK_ROUTING``): *native* sends OpenRouter's ``models`` list in one
request and lets OpenRouter move down it; the model that answered is the one the chunks
name, and the ones before it were skipped. *client* asks one model at a time, each after
its own retries, and moves to the next on a fault another model could serve. Either way,
nothing falls back once a chunk has reached the caller (docs/adr/0400-model-comparison-
and-fallback.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from .._config import Routing
from .._errors import (
    APIConnectionError,
    APIStatusError,
    ContentBlockedError,
    InvalidResponseError,
    MidStreamError,
    OpenRouterError,
)

__all__ = ["Attempt", "Route", "Routing", "falls_back", "native_routing"]

# One entry of ``attempts``: {"model", "outcome", "error_code", "status", "message"}.
Attempt = dict[str, Any]

# Statuses another model may well serve: the model or its providers are unavailable,
# overloaded or too slow. 401 and 402 are about our account, the same for every model.
_FALLBACK_STATUS = frozenset({404, 408, 409, 413, 422, 429})
# A 400 another model could serve: the prompt is too long for this one's context.
_CONTEXT = re.compile(r"context|too many tokens|too long|maximum.{0,20}length", re.IGNORECASE)
_ACCOUNT_CODES = frozenset({401, 402})


def native_routing(routing: Routing, base_url: str) -> bool:
    """Whether ``models`` goes upstream in one request: ``auto`` means so for OpenRouter
    itself (the only server known to route a ``models`` list)."""
    if routing == "auto":
        host = (urlsplit(base_url).hostname or "").lower()
        return host == "openrouter.ai" or host.endswith(".openrouter.ai")
    return routing == "native"


def falls_back(error: OpenRouterError) -> bool:
    """Whether another model could serve what ``error`` refused, before the first chunk."""
    if isinstance(error, APIConnectionError | InvalidResponseError):
        return True  # timeouts, refused or dropped connections, a garbled answer
    if isinstance(error, ContentBlockedError):
        return True  # moderation belongs to a model's providers (OpenRouter falls back too)
    if isinstance(error, APIStatusError):
        status = error.status_code
        if status >= 500 or status in _FALLBACK_STATUS:
            return True
        return status == 400 and bool(_CONTEXT.search(error.message))
    if isinstance(error, MidStreamError):
        # An error event before any content: the provider gave up on this model.
        code = error.upstream_code
        return not (isinstance(code, int) and code in _ACCOUNT_CODES)
    return False


def _status(error: OpenRouterError) -> int | None:
    status = getattr(error, "status_code", None)
    if status is None and isinstance(error, MidStreamError) and type(error.upstream_code) is int:
        status = error.upstream_code
    return status if isinstance(status, int) else None


def attempt(model: str, outcome: str, error: OpenRouterError | None = None) -> Attempt:
    return {
        "model": model,
        "outcome": outcome,
        "error_code": None if error is None else str(error.code),
        "status": None if error is None else _status(error),
        "message": None if error is None else error.message,
    }


def _listed(models: Sequence[str], reported: str | None) -> int:
    """The index in ``models`` of the model the upstream says answered: the same id, else
    the longest listed id it extends (``openai/gpt-4o-mini-2024-07-18``, or a listed
    ``x:free`` reported as ``x``), else the first."""
    if not reported:
        return 0
    if reported in models:
        return models.index(reported)
    best, length = 0, -1
    for index, model in enumerate(models):
        base = model.split(":", 1)[0]
        if reported.startswith(base) and len(base) > length:
            best, length = index, len(base)
    return best


class Route:
    """One call's way down ``models`` (primary first). ``native`` only matters with
    fallbacks: one model alone is one ordinary request either way."""

    __slots__ = ("failures", "index", "models", "native")

    def __init__(self, models: Sequence[str], *, native: bool) -> None:
        if not models:
            raise ValueError("a route needs a model")
        self.models = tuple(models)
        self.native = native and len(self.models) > 1
        self.index = 0
        # Client routing: the models that failed before their first chunk, in order.
        self.failures: list[Attempt] = []

    @property
    def model(self) -> str:
        """The model being asked (client routing), or the primary (native)."""
        return self.models[self.index]

    def body(self, base: dict[str, Any]) -> dict[str, Any]:
        """The request body for the next attempt."""
        if self.native:
            # The list alone: OpenRouter would try a separate ``model`` first, then the list.
            body = {key: value for key, value in base.items() if key != "model"}
            body["models"] = list(self.models)
            return body
        return {**base, "model": self.model}

    def fall_back(self, error: OpenRouterError, *, move: bool = True) -> bool:
        """The model being asked failed before its first chunk, after its own retries:
        record why, and move to the next model when ``move`` (the time is not up), there
        is one and ``error`` is a fault another model could serve (client routing only:
        natively, OpenRouter did that)."""
        if self.native:
            return False
        self.failures.append(attempt(self.model, "failed", error))
        if move and self.index + 1 < len(self.models) and falls_back(error):
            self.index += 1
            return True
        return False

    def attempts(
        self, *, served: bool, reported: str | None, error: OpenRouterError | None
    ) -> list[Attempt]:
        """Every model tried or skipped so far. ``served``: a chunk reached the caller;
        ``reported``: the model the last attempt's events named, if any; ``error``: how
        the call ended, if it failed (a model that fails after its first chunk is
        ``failed`` and still the one that answered)."""
        outcome = "answered" if error is None else "failed"
        if not self.native:
            done = list(self.failures)
            if served:
                done.append(attempt(self.model, outcome, error))
            return done
        if served or reported is not None:
            # The chunks (or the error event) named the model that took the request.
            index = _listed(self.models, reported)
        elif isinstance(error, APIStatusError | MidStreamError) and falls_back(error):
            # OpenRouter went down the whole list and answered the last model's failure.
            index = len(self.models) - 1
        elif error is not None:
            # An account-wide refusal, or a fault between us and OpenRouter (a timeout,
            # a dropped connection): nothing says a model past the first was tried.
            index = 0
        else:
            return []
        skipped = [attempt(model, "skipped") for model in self.models[:index]]
        return [*skipped, attempt(self.models[index], outcome, error)]
