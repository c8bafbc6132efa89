"""Single real parts for tests and the benchmark: gcloud's Firestore emulator, a function
served as deployed (functions-framework on gunicorn), and Auth-emulator ID tokens.

Each part runs in its own process group on 127.0.0.1 on a free port, so it can run next
to a live dev stack, and `stop()` ends the whole tree (wrappers leave children behind).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self

from ._firebase import REPO
from ._procs import _children_by_parent

FUNCTIONS = REPO / "functions"
# functions-framework from the venv that runs us (the tests and the bench run from it).
_VENV_BIN = Path(sys.executable).parent


class AuthEmulatorStandIn:
    """The one endpoint of the Auth emulator that the function's guard probes
    (``GET /emulator/v1/projects/{project}/config``), on loopback, in a daemon thread of
    this process: FunctionServer points FIREBASE_AUTH_EMULATOR_HOST at it, so that
    firebase-admin accepts unsigned tokens and the guard (EmulatorGuard in _auth.py)
    finds an Auth emulator there. Starting the real one would cost seconds per session;
    scripts/dev runs the real one. No token is ever sent to it.

    With ``accounts`` (email -> (password, uid)) it also answers the password sign-in
    (``accounts:signInWithPassword``, as `python -m devstack token` calls it) with an
    unsigned ID token of ``project``, as the emulator does.
    """

    _shared: AuthEmulatorStandIn | None = None

    def __init__(
        self, project: str = "", accounts: Mapping[str, tuple[str, str]] | None = None
    ) -> None:
        known = dict(accounts or {})

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, ok: bool, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) if ok else 0))
                self.end_headers()
                if ok:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                parts = self.path.split("/")
                ok = len(parts) == 6 and parts[1:4] == ["emulator", "v1", "projects"]
                ok = ok and parts[5] == "config"
                self._answer(ok, {"signIn": {"allowDuplicateEmails": False}})

            def do_POST(self) -> None:
                sent = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                path = "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword"
                account = known.get(sent.get("email")) if self.path.startswith(path) else None
                ok = account is not None and account[0] == sent.get("password")
                uid = account[1] if account is not None else ""
                self._answer(ok, {"idToken": id_token(uid, project=project)} if ok else {})

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @classmethod
    def shared(cls) -> AuthEmulatorStandIn:
        """This process's stand-in, started on first use."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once `url` answers at all (any status); fail early if `proc` exits."""
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
    """End a process tree started with start_new_session=True: TERM, then KILL the group.

    The group is killed even when the leader has already exited, because wrappers
    (gcloud, functions-framework) leave children behind.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def first_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    """The first line ``proc`` writes to its stdout (a pipe), stripped: what a child prints
    once it listens. Shorter when the child closes its stdout or ``timeout`` runs out."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            piece = os.read(proc.stdout.fileno(), 4096)
            if not piece:
                break
            line += piece
    return line.decode(errors="replace").strip()


@contextlib.contextmanager
def fake_upstream() -> Iterator[str]:
    """``python -m fake_openrouter`` on a free port, in its own process group, for as long
    as the block runs; yields its API base URL (``…/api/v1``)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fake_openrouter", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_fake/stats", 30, proc)
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        stop_group(proc)


def id_token(
    uid: str,
    *,
    project: str,
    expires_in: int = 3600,
    issued_ago: int = 0,
    email: bool = True,
) -> str:
    """An unsigned ID token, in the Auth emulator's format.

    firebase-admin verifies these only when FIREBASE_AUTH_EMULATOR_HOST is set, and the
    function accepts them only under the local emulator stack (its EmulatorGuard); so callers go
    through the real token-verification code path without any bypass that could be
    switched on in production. With `email`, the token carries `{uid}@example.com`, as
    after a password sign-in.
    """
    now = int(time.time()) - issued_ago

    def b64(obj: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + expires_in,
    }
    if email:
        claims["email"] = f"{uid}@example.com"
    claims["firebase"] = {"identities": {}, "sign_in_provider": "password"}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


class _Part:
    """A process group we started, with the log file its output goes to (if any)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        """The group leader."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> Self:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if self.proc is not None:
            return self  # `with part.start() as part:` starts it once, not twice
        try:
            return self.start()
        except BaseException:
            self.stop()  # a part that never came up is still a process group to end
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()  # a part read its first line from it
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _lower_autogroup(pid: int) -> bool:
    """Give the scheduler autogroup of `pid`'s session the lowest priority (Linux with
    autogroups on). Returns whether it could."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write("19")
    except OSError:
        return False
    return True


class FirestoreEmulator(_Part):
    """gcloud's Firestore emulator (Java) in its own process group.

    Its output goes to `log_dir/firestore-emulator.log`, or nowhere without `log_dir`.
    `http_timeout` bounds each request to the emulator's REST API.

    `background=True` runs it at the lowest CPU priority (nice 19, and the same for its
    session's scheduler autogroup where Linux has them, since a process started in its
    own session competes as a group whatever its nice value). It still answers every
    request, only on cores that nothing else wants: the benchmark uses this so that the
    stand-in for a remote database does not take the relay's cores.

    `jvm_options` go to its JVM through JAVA_TOOL_OPTIONS. The default keeps the JIT to
    its quick tier (C1): the emulator lives for seconds to minutes, and C2's compiles cost
    it more CPU than they save (docs/adr/0007-bench-parts.md).
    """

    def __init__(
        self,
        project: str,
        *,
        log_dir: Path | None = None,
        start_timeout: float = 60.0,
        http_timeout: float = 30.0,
        background: bool = False,
        jvm_options: Sequence[str] = ("-XX:TieredStopAtLevel=1",),
    ) -> None:
        super().__init__()
        self.project = project
        self.background = background
        self.jvm_options = tuple(jvm_options)
        # What start() managed to apply: {"nice": 19, "autogroup": True}, say.
        self.priority: dict[str, Any] = {}
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = log_dir / "firestore-emulator.log" if log_dir is not None else None
        self.start_timeout = start_timeout
        self.http_timeout = http_timeout

    def start(self) -> Self:
        if self.log_path is not None:
            self._log = self.log_path.open("wb")
        command = [
            "gcloud",
            "emulators",
            "firestore",
            "start",
            f"--host-port={self.host}",
            "--quiet",
        ]
        env = dict(os.environ)
        if self.jvm_options:
            env["JAVA_TOOL_OPTIONS"] = " ".join(
                filter(None, (env.get("JAVA_TOOL_OPTIONS"), *self.jvm_options))
            )
        self.proc = subprocess.Popen(
            ["nice", "-n", "19", *command] if self.background else command,
            env=env,
            stdout=self._log if self._log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
        if self.background:
            self.priority = {"nice": 19, "autogroup": _lower_autogroup(self.proc.pid)}
        wait_http(f"http://{self.host}/", self.start_timeout, self.proc)
        return self

    def reset(self) -> None:
        """Delete every document of the project."""
        req = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{self.project}/databases/(default)/documents",
            method="DELETE",
        )
        urllib.request.urlopen(req, timeout=self.http_timeout).close()

    def client(self) -> Any:
        """A google.cloud.firestore.Client on this emulator (sets FIRESTORE_EMULATOR_HOST)."""
        from google.cloud import firestore

        os.environ["FIRESTORE_EMULATOR_HOST"] = self.host
        return firestore.Client(project=self.project)


class FunctionServer(_Part):
    """One function of functions/main.py (or of ``source``) served as deployed:
    functions-framework on gunicorn.

    The environment is ours, then `defaults` (e.g. functions/.env), then `overrides`: what
    must point at local parts (upstream, Firestore emulator, project, API key, unsigned
    tokens) and finally the caller's `env`. Output goes to `log_path` under `log_dir`
    ($TMPDIR without one).
    """

    def __init__(
        self,
        target: str,
        firestore_host: str,
        base_url: str,
        *,
        project: str,
        api_key: str,
        defaults: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        start_timeout: float = 60.0,
        source: Path | None = None,
    ) -> None:
        super().__init__()
        self.target = target
        self.source = source if source is not None else FUNCTIONS / "main.py"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir = log_dir if log_dir is not None else Path(os.environ.get("TMPDIR", "/tmp"))
        self.log_path = log_dir / f"fn-{target}-{self.port}.log"
        self.start_timeout = start_timeout
        self.defaults = dict(defaults or {})
        self.overrides = {
            "OPENROUTER_BASE_URL": base_url,
            "OPENROUTER_API_KEY": api_key,
            "GCLOUD_PROJECT": project,
            "FIRESTORE_EMULATOR_HOST": firestore_host,
            "FIREBASE_AUTH_EMULATOR_HOST": AuthEmulatorStandIn.shared().host,
            **(env or {}),
        }
        # Not a deployment, not the Functions emulator, whatever our own environment says
        # (a caller may still set either on purpose, through ``env``).
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in ("K_SERVICE", "K_CONFIGURATION", "FUNCTIONS_EMULATOR")
        }
        self.env = {**inherited, "PYTHONUNBUFFERED": "1", **self.defaults, **self.overrides}
        if source is not None:
            # A source elsewhere still imports the product's package.
            self.env["PYTHONPATH"] = str(FUNCTIONS)

    def start(self) -> Self:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(_VENV_BIN / "functions-framework"),
                "--target",
                self.target,
                "--source",
                str(self.source),
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
        wait_http(f"{self.url}/__/health", self.start_timeout, self.proc)
        return self

    def worker_pids(self) -> list[int]:
        """The gunicorn worker(s): children of `pid`, the functions-framework master."""
        return sorted(_children_by_parent().get(self.pid, []))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The log lines that are JSON objects (the function's structured logs)."""
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    records.append(obj)
        return records
