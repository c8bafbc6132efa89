"""The wiring: one Service per process, built from injected parts; its upstream and
embeddings clients made once, on first use, from the settings; the key redacted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from promptstream import Service, Settings, get_service, set_service
from promptstream.http._auth import Authenticator
from support.fakes import FakeStore, verify

KEY = "sk-or-v1-service-SECRET-99"
SETTINGS = Settings(
    openrouter_base_url="http://127.0.0.1:9/api/v1",
    embedding_model="fake/embedder",
    open_concurrency=1,
    open_queue_timeout_seconds=0.01,
)


class ClosingStore(FakeStore):
    closed = False

    async def close(self) -> None:
        self.closed = True


def service(api_key: str | None = KEY) -> Service:
    return Service(SETTINGS, ClosingStore(SETTINGS), Authenticator(verify), api_key)  # type: ignore[arg-type]


@pytest.fixture
async def made() -> AsyncIterator[Service]:
    made = service()
    try:
        yield made
    finally:
        await made.aclose()


async def test_the_upstream_client_is_made_once_from_the_settings(made: Service) -> None:
    client = await made.client()
    assert await made.client() is client
    assert client.config.base_url == "http://127.0.0.1:9/api/v1"
    assert client.config.api_key.get_secret_value() == KEY


async def test_the_embeddings_client_is_made_once_from_the_settings(made: Service) -> None:
    embeddings = await made.embeddings()
    assert await made.embeddings() is embeddings
    assert embeddings.config.model == "fake/embedder"


async def test_aclose_closes_what_was_opened_and_the_store() -> None:
    made = service()
    client = await made.client()
    await made.embeddings()
    session = made._embeddings_session
    await made.aclose()
    assert made.store.closed  # type: ignore[attr-defined]
    assert session is not None and session.closed
    assert await made.client() is not client  # opened again on next use
    await made.aclose()


def test_the_key_is_redacted_in_any_case() -> None:
    made = service()
    text = f"echo {KEY} and {KEY.upper()}"
    assert KEY not in made.redact(text) and KEY.upper() not in made.redact(text)
    assert made.redact("nothing secret") == "nothing secret"


def test_an_empty_key_counts_as_none() -> None:
    assert service("").api_key is None


async def test_the_openings_bound_comes_from_the_settings() -> None:
    made = service()
    async with made.openings.turn("alice"):
        with pytest.raises(Exception, match="busy"):
            async with made.openings.turn("bob"):
                pass


def test_set_service_installs_the_process_wide_one() -> None:
    made = service()
    set_service(made)
    try:
        assert get_service() is made
    finally:
        set_service(None)
