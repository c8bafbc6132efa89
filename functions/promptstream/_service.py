"""The wiring: everything a request needs, built once per process."""

from __future__ import annotations

import os

from ._admission import Openings
from ._auth import Authenticator, EmulatorGuard, firebase_verifier
from ._client import OpenRouterClient
from ._config import Settings
from ._executions import Executions
from ._redact import redact
from ._store import Store

__all__ = ["Service", "get_service", "set_service"]


class Service:
    """Settings, the Firestore store, the token check and the upstream client of one
    process. Tests build one with their own parts and install it with ``set_service``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        authenticator: Authenticator,
        api_key: str | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.auth = authenticator
        self.api_key = api_key or None
        self.openings = Openings(settings.open_concurrency, settings.open_queue_timeout_seconds)
        self.executions = Executions(settings, store, self.redact)
        self._client: OpenRouterClient | None = None

    async def client(self) -> OpenRouterClient:
        """The process's upstream client (one pooled session), opened on first use."""
        if self._client is None:
            client = OpenRouterClient(self.settings.openrouter_config(self.api_key or ""))
            await client.__aenter__()
            self._client = client
        return self._client

    def redact(self, text: str) -> str:
        """``text`` with the API key taken out, in any case."""
        return redact(text, self.api_key or "")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self.store.close()


_service: Service | None = None


def get_service() -> Service:
    global _service
    if _service is None:
        _service = _build_service()
    return _service


def set_service(service: Service | None) -> None:
    """Replace the process-wide service (tests)."""
    global _service
    _service = service


def _build_service() -> Service:
    import firebase_admin

    settings = Settings.from_env()
    try:
        app = firebase_admin.get_app()
    except ValueError:
        app = firebase_admin.initialize_app(options={"projectId": settings.project_id})
    store = Store(settings, emulator_host=os.environ.get("FIRESTORE_EMULATOR_HOST"))
    return Service(
        settings,
        store,
        Authenticator(firebase_verifier(app), EmulatorGuard(settings.project_id)),
        os.environ.get("OPENROUTER_API_KEY"),
    )
