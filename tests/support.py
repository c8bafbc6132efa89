"""Real parts for the tests: the Firestore emulator, the function served by
functions-framework on gunicorn, and Auth-emulator style ID tokens."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
VENV_BIN = Path(sys.executable).parent
PROJECT = "demo-test-streams"
TEST_API_KEY = "sk-or-v1-test-SECRET-4f1c2b9d7e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was up")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout}s")


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """End a process tree started with start_new_session=True."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


class FirestoreEmulator:
    """gcloud's Firestore emulator in its own process group."""

    def __init__(self, project: str = PROJECT) -> None:
        self.project = project
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FirestoreEmulator:
        self.proc = subprocess.Popen(
            ["gcloud", "emulators", "firestore", "start", f"--host-port={self.host}", "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_http(f"http://{self.host}/", 60, self.proc)
        return self

    def reset(self) -> None:
        req = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{self.project}/databases/(default)/documents",
            method="DELETE",
        )
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)

    def client(self) -> Any:
        from google.cloud import firestore

        os.environ["FIRESTORE_EMULATOR_HOST"] = self.host
        return firestore.Client(project=self.project)


def id_token(
    uid: str,
    *,
    project: str = PROJECT,
    expires_in: int = 3600,
    issued_ago: int = 0,
) -> str:
    """An unsigned ID token, as the Auth emulator issues them."""
    now = int(time.time()) - issued_ago

    def b64(obj: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + expires_in,
        "email": f"{uid}@example.com",
        "firebase": {"identities": {}, "sign_in_provider": "password"},
    }
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


class FunctionServer:
    """A function served exactly as deployed: functions-framework on gunicorn."""

    def __init__(
        self,
        target: str,
        firestore_host: str,
        base_url: str,
        env: Mapping[str, str] | None = None,
        project: str = PROJECT,
    ) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"fn-{target}-{self.port}.log"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "GCLOUD_PROJECT": project,
            "FIRESTORE_EMULATOR_HOST": firestore_host,
            # Unsigned tokens are accepted only with this set; never in production config.
            "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9",
            "OPENROUTER_API_KEY": TEST_API_KEY,
            "OPENROUTER_BASE_URL": base_url,
            "ALLOWED_MODELS": "x-ai/grok-4-fast:free,openai/gpt-4o-mini,demo/local-model",
            "ALLOWED_ORIGINS": "http://127.0.0.1:5173",
            "THREADS": "64",
            "UPSTREAM_BACKOFF_BASE": "0.05",
            "UPSTREAM_FIRST_BYTE_TIMEOUT": "3",
            "UPSTREAM_IDLE_TIMEOUT": "3",
            **(env or {}),
        }
        self.env.pop("K_SERVICE", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FunctionServer:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "functions-framework"),
                "--target",
                self.target,
                "--source",
                str(FUNCTIONS / "main.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=FUNCTIONS,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{self.url}/__/health", 30, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    records.append(obj)
        return records

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def worker_pids(server: FunctionServer) -> list[int]:
    """The gunicorn worker(s) under the functions-framework master."""
    out = subprocess.run(
        ["pgrep", "-P", str(server.pid())], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


@contextlib.contextmanager
def started(*parts: Any) -> Iterator[None]:
    try:
        for part in parts:
            part.start()
        yield
    finally:
        for part in reversed(parts):
            part.stop()


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


def executions(db: Any) -> list[dict[str, Any]]:
    return [{"id": d.id, **(d.to_dict() or {})} for d in db.collection("executions").stream()]
