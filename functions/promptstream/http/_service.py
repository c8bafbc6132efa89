"""The wiring: everything a request needs (settings, store, token check, upstream clients,
the bounds of this instance), built once per process from the layers below; tests inject
their own with ``set_service``. The PDF children it holds: docs/adr/0307-cpu-bounds.md.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import aiohttp

from .._config import Settings
from .._redact import redact
from ..knowledge._ingest import IngestLimits
from ..run._admission import Openings
from ..run._checkpoints import Checkpoints
from ..run._executions import Executions
from ..run._live import Lives
from ..run._ratelimit import Rates
from ..run._repair import Repair
from ..run._uploads import UploadSlots
from ..store._store import Store
from ..store._uploads import UploadStore
from ..upstream._client import OpenRouterClient, OpenRouterConfig
from ..upstream._embeddings import EmbeddingsClient, EmbeddingsConfig
from ._auth import CONTROL_THREADS, Authenticator, EmulatorGuard, firebase_verifier

__all__ = ["Service", "current_service", "get_service", "set_service"]


class Service:
    """Settings, the Firestore store, the token check, the upstream client and the
    embeddings client of one process. Tests build one with their own parts and install
    it with ``set_service``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        authenticator: Authenticator,
        api_key: str | None,
    ) -> None:
        self.settings = settings
        self.store = store
        # The uploads' calls, on the store's client and per-user locks.
        self.upload_store = UploadStore(settings, store)
        self.auth = authenticator
        self.api_key = api_key or None
        self.openings = Openings(
            settings.open_concurrency,
            settings.open_queue_timeout_seconds,
            settings.open_queue_per_user,
            lag_target=settings.open_lag_target_ms / 1000,
            ceiling=settings.open_concurrency_max,
        )
        self.rates = Rates(settings)
        self.executions = Executions(settings, store, self.redact)
        # Ends silent executions ``interrupted`` (docs/adr/0601-leases-that-prove-alive.md).
        self.repair = Repair(settings, store)
        self.ingest_limits = IngestLimits.from_settings(settings)
        self.uploads = UploadSlots(settings)
        # Resumable executions (docs/adr/0600-durable-streams.md): a finished one stays in
        # memory for as long as a detached one would have gone on.
        self.lives = Lives(settings.resume_grace_seconds, settings.resume_grace_seconds)
        self.checkpoints = Checkpoints(
            settings.checkpoint_seconds, self.lives, lambda: store.rest, store.note_record_time
        )
        self._draining: asyncio.Task[None] | None = None
        self._client: OpenRouterClient | None = None
        self._embeddings: EmbeddingsClient | None = None
        self._embeddings_session: aiohttp.ClientSession | None = None

    async def client(self) -> OpenRouterClient:
        """The process's upstream client (one pooled session), opened on first use."""
        if self._client is None:
            client = OpenRouterClient(
                OpenRouterConfig.from_settings(self.settings, self.api_key or "")
            )
            await client.__aenter__()
            self._client = client
        return self._client

    async def embeddings(self) -> EmbeddingsClient:
        """The process's embeddings client, on a session it shares across requests,
        made on first use (on the loop that serves them)."""
        if self._embeddings is None:
            config = EmbeddingsConfig.from_settings(self.settings, self.api_key or "")
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=60)
            )
            self._embeddings_session = session
            self._embeddings = EmbeddingsClient(config, session)
        return self._embeddings

    def drain(self) -> None:
        """The worker is shutting down: admit nothing more, checkpoint every open
        stream at once, and tell each follower's client to resume elsewhere."""
        if self.lives.draining:
            return
        self.lives.drain()
        if len(self.lives):
            self._draining = asyncio.get_running_loop().create_task(self.checkpoints.tick())

    def redact(self, text: str) -> str:
        """``text`` with the API key taken out, in any case."""
        return redact(text, self.api_key or "")

    async def aclose(self) -> None:
        await self.checkpoints.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._embeddings_session is not None:
            await self._embeddings_session.close()
            self._embeddings_session = None
            self._embeddings = None
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


def current_service() -> Service | None:
    """The process's service if it was ever built (a shutdown drains only that one)."""
    return _service


def _build_service() -> Service:
    import firebase_admin

    settings = Settings.from_env()
    try:
        app = firebase_admin.get_app()
    except ValueError:
        app = firebase_admin.initialize_app(options={"projectId": settings.project_id})
    store = Store(settings, emulator_host=os.environ.get("FIRESTORE_EMULATOR_HOST"))
    control = ThreadPoolExecutor(CONTROL_THREADS, "control")
    return Service(
        settings,
        store,
        Authenticator(
            firebase_verifier(app), EmulatorGuard(settings.project_id, executor=control), control
        ),
        os.environ.get("OPENROUTER_API_KEY"),
    )
