"""In-process parts for the unit tests: a Store held in memory, an upstream client that
plays back chunks, a Service built on them, and a call of an ASGI app without a server.

The fakes keep to the interfaces the package calls (Store's, OpenRouterClient's,
ChatStream's); the real ones are the integration suites'.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from multidict import CIMultiDict

from promptstream import ChatResponse, Service, Settings, StreamChunk
from promptstream._templates import VariableSpec
from promptstream.http._auth import Authenticator, Claims
from promptstream.store._firestore import Document
from promptstream.store._limits import UPLOADS, claim_document, take_lease
from promptstream.store._prompts import Prompt
from promptstream.store._versions import at_version, wanted

from .http import Reply

__all__ = [
    "FakeClient",
    "FakeCredentials",
    "FakeStore",
    "FakeStream",
    "UnitService",
    "asgi_call",
    "chunk",
    "prompt",
]

API_KEY = "sk-or-v1-unit-SECRET-0a1b2c3d"


def chunk(text: str, finish: str | None = None) -> StreamChunk:
    return StreamChunk(text, finish)


def prompt(
    content: str = "Tell me about {{topic}}.",
    *,
    owner_uid: str = "alice",
    public: bool = False,
    system_prompt: str | None = None,
    variables: list[Any] | None = None,
    prompt_id: str = "p1",
    **knowledge: Any,
) -> Prompt:
    return Prompt(
        prompt_id, owner_uid, content, system_prompt, variables or [], public, **knowledge
    )


class FakeStream:
    """ChatStream's interface over chunks in reads: ``reads`` is a list of lists of
    chunks; ``buffered`` says how many events of the current read are left, as ChatStream
    does. ``error`` is raised by an event of the last read, after its chunks; ``refusal``
    by ``start()``, before any."""

    def __init__(
        self,
        reads: list[list[StreamChunk]],
        error: Exception | None = None,
        refusal: Exception | None = None,
    ) -> None:
        self.reads = reads
        self.error = error
        self.refusal = refusal
        self.buffered = 0
        self.model = self.answered_model = "m"
        self.attempts: list[dict[str, Any]] = [{"model": "m", "outcome": "answered"}]
        self.usage: dict[str, Any] | None = {"total_tokens": 3}
        self.finish_reason: str | None = "stop"
        self.generation_id = "gen-1"
        self.aborted = False
        self.closed = False

    async def start(self) -> None:
        if self.refusal is not None:
            raise self.refusal

    def abort(self) -> None:
        self.aborted = True

    async def aclose(self) -> None:
        self.closed = True

    async def _run(self) -> AsyncIterator[StreamChunk]:
        for n, read in enumerate(self.reads):
            await asyncio.sleep(0)  # the upstream's next read
            # The event that carries the error is one more of the last read.
            events = len(read) + (self.error is not None and n == len(self.reads) - 1)
            for i, item in enumerate(read):
                self.buffered = events - i - 1
                yield item
        if self.error is not None:
            raise self.error

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._run()


class FakeClient:
    """OpenRouterClient's two calls: the stream it hands out (``stream``), or the answer
    (``answer``, or ``error`` raised); every call's arguments in ``calls``."""

    def __init__(
        self,
        stream: FakeStream | None = None,
        answer: ChatResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self.stream = stream or FakeStream([[chunk("Hi"), chunk("!", "stop")]])
        self.answer = answer or ChatResponse("whole", "stop", "m", {"total_tokens": 5})
        self.error = error
        self.calls: list[tuple[Any, ...]] = []

    def generate_response_stream(self, *args: Any, **kwargs: Any) -> FakeStream:
        self.calls.append((*args, kwargs))
        return self.stream

    async def generate_response(self, *args: Any, **kwargs: Any) -> ChatResponse:
        self.calls.append((*args, kwargs))
        if self.error is not None:
            raise self.error
        return self.answer

    async def aclose(self) -> None:
        pass


class FakeStore:
    """The Store's and the UploadStore's calls on dicts: prompts by id, records by
    execution id, limits by uid; the leases taken with the real ``take_lease``.
    ``fail_finish`` makes the final commit raise (as a record too large for Firestore
    would)."""

    def __init__(self, settings: Settings, prompts: Mapping[str, Prompt] = ()) -> None:  # type: ignore[assignment]
        self.settings = settings
        self.prompts = dict(prompts)
        self.records: dict[str, dict[str, Any]] = {}
        # What each execution sent as its turn (the store's input/sent documents).
        self.sent: dict[str, dict[str, Any]] = {}
        self.limits: dict[str, dict[str, Any]] = {}
        self.fail_finish = False
        self.fail_open: Exception | None = None
        self.rest = object()  # what retrieval and ingestion are handed (they are faked)
        # Version documents by (prompt id, n), resolved with the store's own rules.
        self.versions: dict[tuple[str, int], Document] = {}
        self._ids = 0

    async def begin_execution(
        self,
        *,
        uid: str,
        prompt_id: str,
        build: Callable[[Prompt | None], Any],
        version: int | None = None,
        label: str | None = None,
        sent: Callable[[Any], dict[str, Any]] | None = None,
        admitted: Callable[[str, Any], None] | None = None,
    ) -> tuple[str, Any]:
        if self.fail_open is not None:
            raise self.fail_open
        prompt = self.prompts.get(prompt_id)
        if prompt is not None and prompt.readable_by(uid):
            n = wanted(prompt, version, label)
            prompt = at_version(prompt, n, self.versions.get((prompt_id, n)))
        record, reserve, result = build(prompt)
        self._ids += 1
        execution_id = f"e{self._ids}"
        now = dt.datetime.now(dt.UTC)
        lease = take_lease(self.limits.get(uid), execution_id, now, self.settings, reserve)
        if admitted is not None:
            admitted(execution_id, result)
        self.limits[uid] = lease
        self.records[execution_id] = {
            "conversation_id": execution_id,
            **record,
            "owner_uid": uid,
            "status": "streaming",
        }
        if sent is not None:
            self.sent[execution_id] = {**sent(result), "owner_uid": uid}
        return execution_id, result

    def note_record_time(self, execution_id: str, update_time: str | None) -> None:
        """The real store keeps it as its finish's condition; the dicts need none."""

    async def update_sent(self, *, execution_id: str, fields: dict[str, Any]) -> None:
        self.sent[execution_id].update(fields)

    async def finish_execution(
        self, *, uid: str, execution_id: str, fields: dict[str, Any], tokens: int
    ) -> bool:
        if self.fail_finish:
            raise RuntimeError("the record is too large")
        if self.records[execution_id]["status"] != "streaming":
            return False  # the repair ended it first
        self.records[execution_id].update(fields)
        await self.release(uid=uid, execution_id=execution_id, tokens=tokens)
        return True

    async def release(self, *, uid: str, execution_id: str, tokens: int) -> bool:
        limits = self.limits[uid]
        if execution_id not in limits["leases"]:
            return False
        del limits["leases"][execution_id]
        limits["reserved"].pop(execution_id, None)
        limits["tokens_today"] += tokens
        return True

    async def finish_record(self, *, execution_id: str, fields: dict[str, Any]) -> None:
        self.records[execution_id].update(fields)

    async def begin_upload(self, *, uid: str, document_id: str, reserve: int) -> tuple[str, int]:
        self._ids += 1
        upload_id = f"u{self._ids}"
        now = dt.datetime.now(dt.UTC)
        held = self.limits.get(uid)
        lease = take_lease(held, upload_id, now, self.settings, reserve, kind=UPLOADS)
        owned = claim_document(held, document_id, now, self.settings)
        self.limits[uid] = {**(held or {}), **lease, "documents": owned}
        return upload_id, owned[document_id]

    async def reserve_upload(self, *, uid: str, upload_id: str, reserve: int) -> None:
        held = self.limits[uid]
        now = dt.datetime.now(dt.UTC)
        held.update(
            take_lease(held, upload_id, now, self.settings, reserve, kind=UPLOADS, again=True)
        )

    async def settle_upload(
        self, *, uid: str, upload_id: str, document_id: str, stamp: int, tokens: int
    ) -> bool:
        limits = self.limits[uid]
        if upload_id not in limits[UPLOADS]:
            return False
        del limits[UPLOADS][upload_id]
        limits["reserved"].pop(upload_id, None)
        limits["tokens_today"] += tokens
        return True

    async def forget_document(self, *, uid: str, document_id: str) -> None:
        self.limits.get(uid, {}).get("documents", {}).pop(document_id, None)

    def spend(self, uid: str, tokens: int) -> None:
        """Debit ``tokens`` today, as earlier runs would have."""
        day = dt.datetime.now(dt.UTC).date().isoformat()
        limits = self.limits.setdefault(uid, {"day": day, "tokens_today": 0})
        limits["tokens_today"] += tokens

    async def close(self) -> None:
        pass


class FakeCredentials:
    """google-auth's credential interface: ``valid``, ``token``, ``refresh(request)``."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.valid = False
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        self.valid = True


def verify(token: str) -> Claims:
    """A token is its uid ("bad" is refused): the Auth emulator's check without one."""
    if token == "bad":
        raise ValueError("invalid token")
    return token, time.time() + 3600


class UnitService(Service):
    """The process's Service on a FakeStore, a token check that takes the token for the
    uid, and a FakeClient for the upstream."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        prompts: Mapping[str, Prompt] = (),  # type: ignore[assignment]
        client: FakeClient | None = None,
        api_key: str | None = API_KEY,
    ) -> None:
        settings = settings or Settings(project_id="demo-unit", heartbeat_seconds=15)
        self.fake_store = FakeStore(settings, prompts)
        super().__init__(settings, self.fake_store, Authenticator(verify), api_key)  # type: ignore[arg-type]
        self.upload_store = self.fake_store  # type: ignore[assignment]
        self.fake_client = client or FakeClient()

    async def client(self) -> Any:
        return self.fake_client


async def asgi_call(
    app: Any,
    method: str = "POST",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    path: str = "/",
    disconnect: asyncio.Event | None = None,
) -> Reply:
    """Call an ASGI app in-process: the body in one message, then ``http.disconnect``
    once ``disconnect`` is set (never, by default); what it sent, as a Reply."""
    sent: list[dict[str, Any]] = []
    delivered = False
    gone = disconnect or asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "query_string": query.encode(),
    }
    started = time.monotonic()
    await app(scope, receive, send)
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answer_headers: CIMultiDict[str] = CIMultiDict(
        (k.decode(), v.decode()) for k, v in start["headers"]
    )
    return Reply(start["status"], answer_headers, raw, time.monotonic() - started)


def declared(name: str, **fields: Any) -> dict[str, Any]:
    """A prompt's variable declaration, as stored."""
    doc = {"name": name, **fields}
    assert VariableSpec.from_doc(doc) is not None
    return doc
