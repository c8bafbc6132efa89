"""Real parts for the tests, with the tests' defaults: the Firestore emulator, the
function served by functions-framework on gunicorn, and Auth-emulator style ID tokens.

The parts themselves live in devstack (shared with the benchmark); this module fixes
the test project, the test API key and the environment every test server starts from.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import devstack
from devstack import free_port, stop_group, wait_http
from fake_openrouter import FakeOpenRouterThread
from promptstream._ids import uid_key

__all__ = [
    "FUNCTIONS",
    "PROJECT",
    "ROOT",
    "TEST_API_KEY",
    "FirestoreEmulator",
    "FunctionServer",
    "Serve",
    "TcpProxy",
    "add_prompt",
    "auth",
    "body",
    "closed_record",
    "examples",
    "executions",
    "fake_openrouter",
    "free_port",
    "id_token",
    "limits",
    "read_to_close",
    "read_until",
    "stop_group",
    "the_record",
    "wait_http",
    "wait_until",
    "worker_pids",
]

ROOT = Path(__file__).resolve().parent.parent.parent
FUNCTIONS = ROOT / "functions"
PROJECT = "demo-test-streams"
TEST_API_KEY = "sk-or-v1-test-SECRET-4f1c2b9d7e"
# What every test server starts from; a test's own `env` goes on top.
TEST_ENV = {
    "ALLOWED_MODELS": "x-ai/grok-4-fast:free,openai/gpt-4o-mini,demo/local-model",
    "ALLOWED_ORIGINS": "http://127.0.0.1:5173",
    "UPSTREAM_BACKOFF_BASE": "0.05",
    "UPSTREAM_FIRST_BYTE_TIMEOUT": "3",
    "UPSTREAM_IDLE_TIMEOUT": "3",
    # The session's servers serve every test's "alice": their per-user rates (kept in the
    # process) would run out across tests. High, not off, so the path still runs;
    # test_fairness.py sets its own.
    "OPEN_RATE_BURST": "100000",
    "OPEN_RATE_PER_MINUTE": "6000000",
    "UPLOAD_RATE_BURST": "100000",
    "UPLOAD_RATE_PER_MINUTE": "6000000",
}


class FirestoreEmulator(devstack.FirestoreEmulator):
    """gcloud's Firestore emulator for the test project, its output discarded."""

    def __init__(self, project: str = PROJECT) -> None:
        super().__init__(project, start_timeout=60, http_timeout=10)


class FunctionServer(devstack.FunctionServer):
    """A function served exactly as deployed, with the test key and TEST_ENV."""

    def __init__(
        self,
        target: str,
        firestore_host: str,
        base_url: str,
        env: Mapping[str, str] | None = None,
        project: str = PROJECT,
    ) -> None:
        super().__init__(
            target,
            firestore_host,
            base_url,
            project=project,
            api_key=TEST_API_KEY,
            defaults=TEST_ENV,
            env=env,
            start_timeout=30,
        )


# The `serve` fixture (integration/conftest.py): a target, an env, and where Firestore and
# the upstream are when not the session's -> a FunctionServer, not yet started.
Serve = Callable[..., FunctionServer]


class TcpProxy:
    """A TCP forwarder (to the Firestore emulator, say) that can hold what clients send,
    and be cut: a slow Firestore, and Firestore going away mid-stream.

    While held, bytes from clients are kept back (nothing reaches the target) and every
    HTTP request that starts in them is counted in ``held_requests``.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.held_requests = 0
        self._only: bytes | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, only: bytes | None = None) -> None:
        """Keep back what clients send from now on; with ``only``, just the chunks that
        hold it (``b":commit "``: Firestore's commits, the reads passing)."""
        self._only = only
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while True:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, from_client: bool) -> None:
        try:
            while data := a.recv(65536):
                held = self._only is None or self._only in data
                if from_client and held and not self._flowing.is_set():
                    with self._lock:
                        self.held_requests += data.count(b"POST /") + data.count(b"GET /")
                    self._flowing.wait()
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone would not
        self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def fake_openrouter(delay: float) -> Iterator[FakeOpenRouterThread]:
    """The fake OpenRouter on a free port, each chunk ``delay`` seconds apart by default."""
    fake = FakeOpenRouterThread(delay=delay)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def id_token(
    uid: str,
    *,
    project: str = PROJECT,
    expires_in: int = 3600,
    issued_ago: int = 0,
) -> str:
    """An unsigned ID token for the test project, as the Auth emulator issues them."""
    return devstack.id_token(uid, project=project, expires_in=expires_in, issued_ago=issued_ago)


def worker_pids(server: FunctionServer) -> list[int]:
    """The gunicorn worker(s) under the functions-framework master."""
    return server.worker_pids()


# -- small builders for endpoint tests --------------------------------------------


def add_prompt(db: Any, prompt_id: str = "p1", **fields: Any) -> str:
    doc = {
        "owner_uid": "alice",
        "title": "Test prompt",
        "content": "Tell me about {{topic}}.",
        "public": False,
        **fields,
    }
    db.collection("prompts").document(prompt_id).set(doc)
    return prompt_id


def auth(uid: str = "alice", **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {id_token(uid, **kwargs)}"}


def body(prompt_id: str = "p1", **fields: Any) -> bytes:
    return json.dumps({"prompt_id": prompt_id, **fields}).encode()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or the timeout;
    then its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def read_until(sock: socket.socket, done: Callable[[bytes], bool], timeout: float = 20) -> bytes:
    """What ``sock`` receives until ``done(received)``, the peer closes, or the timeout."""
    received = b""
    deadline = time.monotonic() + timeout
    while not done(received) and time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received


def read_to_close(sock: socket.socket, timeout: float = 5) -> bytes:
    """Everything ``sock`` receives until the peer closes (or resets), or the timeout."""
    sock.settimeout(timeout)
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def executions(db: Any) -> list[dict[str, Any]]:
    return [{"id": d.id, **(d.to_dict() or {})} for d in db.collection("executions").stream()]


def examples(n: int) -> int:
    """How many cases a property test draws: ``n`` on a developer's run, so that the unit
    layer stays quick enough to run on every change, and ``PROPERTY_EXAMPLES_SCALE`` times
    as many where that is set (scripts/test sets it, so CI draws more)."""
    return n * max(1, int(os.environ.get("PROPERTY_EXAMPLES_SCALE", "1")))


def the_record(db: Any) -> dict[str, Any]:
    """The one execution record, finished, with its lease released and its tokens
    debited once."""
    [record] = executions(db)
    [limits] = [d.to_dict() for d in db.collection("user_limits").stream()]
    assert limits["leases"] == {}
    assert limits["tokens_today"] == record["tokens_debited"] > 0
    assert record["finished_at"] is not None
    return record


def closed_record(db: Any, timeout: float = 10.0) -> Any:
    """The first execution record that is no longer ``streaming`` (None if none in time)."""
    return wait_until(
        lambda: next((r for r in executions(db) if r["status"] != "streaming"), None), timeout
    )


def limits(db: Any, uid: str = "alice") -> dict[str, Any]:
    """The user's limits document (empty if there is none)."""
    return dict(db.collection("user_limits").document(uid_key(uid)).get().to_dict() or {})
