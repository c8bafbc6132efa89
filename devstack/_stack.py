"""The whole local stack: start in order, wait for each part, tear down in reverse."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import _firebase, _seed
from ._firebase import CACHE, PROJECT_ID, REGION, REPO
from ._ports import Ports
from ._procs import Managed, StackError

FUNCTIONS = REPO / "functions"
VENV_PYTHON = FUNCTIONS / "venv" / "bin" / "python"
WEB = REPO / "web"

# Written by devstack into functions/.env.local and .secret.local; files that start
# with this line are ours to rewrite or delete, any other file is the user's.
MARKER = "# written by devstack (scripts/dev); delete or edit freely"
PLACEHOLDER_KEY = "local-demo-no-real-key"
DEMO_MODEL = "demo/local-model"
# The models the fake serves in demo mode (it answers any id): enough to compare four side by
# side, and to fall back (issue 18). The first is the default.
DEMO_MODELS = (DEMO_MODEL, "demo/fast-model", "demo/careful-model", "demo/backup-model")
# The dev stack's demo models differ in pace, so a comparison's columns look different; test
# stacks keep the fake's defaults for every model, which their directives build on.
DEMO_PER_MODEL = {
    "demo/fast-model": {"delay": 0.015},
    "demo/careful-model": {"delay": 0.09, "first_chunk_delay": 0.6},
}
# The fake's /embeddings model (wordllama, 256 dimensions): fake_openrouter.EMBEDDING_MODEL.
DEMO_EMBEDDING_MODEL = "fake/demo-embedding"


def demo_env(fake_base_url: str) -> dict[str, str]:
    """The functions' settings for the local demo model: chat and embeddings both from
    the fake at ``fake_base_url``."""
    return {
        "OPENROUTER_BASE_URL": fake_base_url,
        "DEFAULT_MODEL": DEMO_MODEL,
        "ALLOWED_MODELS": ",".join(DEMO_MODELS),
        # The fake speaks OpenRouter's `models` routing, so the native path is the one
        # exercised locally.
        "FALLBACK_ROUTING": "native",
        # A comparison of four is four streams at once, each holding a lease.
        "MAX_CONCURRENT_STREAMS": "6",
        "EMBEDDINGS_BASE_URL": fake_base_url,
        "EMBEDDING_MODEL": DEMO_EMBEDDING_MODEL,
    }


def _parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _is_real_key(value: str | None) -> bool:
    return bool(value) and value != PLACEHOLDER_KEY and "REPLACE_ME" not in (value or "")


def _ours(path: Path) -> bool:
    return not path.exists() or path.read_text(encoding="utf-8").startswith(MARKER)


def _write_env_file(path: Path, values: Mapping[str, str], note: str) -> None:
    lines = [MARKER, f"# {note}"] + [f"{k}={v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def key_source(functions_dir: Path = FUNCTIONS) -> str | None:
    """Where a real OPENROUTER_API_KEY comes from, or None (then: the demo model)."""
    if _is_real_key(os.environ.get("OPENROUTER_API_KEY")):
        return "the OPENROUTER_API_KEY environment variable"
    if _is_real_key(_parse_env_file(functions_dir / ".secret.local").get("OPENROUTER_API_KEY")):
        return str((functions_dir / ".secret.local").relative_to(REPO))
    return None


def _http_status(
    url: str, *, method: str = "GET", body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(2000).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode("utf-8", errors="replace")


def _poll(what: str, check: Managed, probe: object, timeout: float) -> None:
    """Call `probe()` until it returns True; StackError if `check` dies or time runs out."""
    assert callable(probe)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not check.running():
            raise StackError(f"{check.name} exited while waiting for {what}; log: {check.log_path}")
        try:
            if probe():
                return
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise StackError(f"{what} not ready within {timeout:.0f} s ({last}); log: {check.log_path}")


@dataclass
class StackOptions:
    ports: Ports = field(default_factory=Ports)
    # Parts: "firestore" is always on; "auth", "functions", "web" are optional.
    auth: bool = True
    functions: bool = True
    web: bool = False
    seed: bool = True
    # Echo every child's output with a [name] prefix (scripts/dev); else log files only.
    echo: bool = True
    # Run a copy of functions/ with its own .env.local in .cache/devstack/<name>, leaving
    # functions/.env.local alone (test stacks; always so for non-default ports).
    isolated: bool = False
    # Use the local demo model even if a real key is configured (tests).
    force_demo_model: bool = False


class Stack:
    """One local stack. Use as a context manager, or call up() and down()."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.ports = options.ports
        self.isolated = options.isolated or not options.ports.is_default
        self.name = f"stack-{self.ports.functions}" if self.isolated else "dev"
        self.workdir = CACHE / self.name
        self.logs = self.workdir / "logs"
        self.parts: list[Managed] = []
        self.demo_model = False
        self.key_source: str | None = None
        self.prompt_ids: list[str] = []

    # --- addresses -------------------------------------------------------------

    @property
    def functions_base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.functions}/{PROJECT_ID}/{REGION}"

    @property
    def stream_url(self) -> str:
        return f"{self.functions_base_url}/execute_prompt_stream"

    @property
    def ingest_url(self) -> str:
        return f"{self.functions_base_url}/ingest_document"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.web}/"

    @property
    def fake_base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.fake_openrouter}/api/v1"

    def client_env(self) -> dict[str, str]:
        """What clients of this stack need: the web app's VITE_* and the e2e's E2E_*."""
        p = self.ports
        env = {
            "VITE_FIREBASE_PROJECT_ID": PROJECT_ID,
            "VITE_AUTH_EMULATOR_URL": f"http://127.0.0.1:{p.auth}",
            "VITE_FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{p.firestore}",
            "VITE_FUNCTIONS_BASE_URL": self.functions_base_url,
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{p.firestore}",
            "FIREBASE_AUTH_EMULATOR_HOST": f"127.0.0.1:{p.auth}",
            "GCLOUD_PROJECT": PROJECT_ID,
            "E2E_PROJECT_ID": PROJECT_ID,
            "E2E_WEB_URL": self.web_url,
            "E2E_FUNCTIONS_BASE_URL": self.functions_base_url,
            "E2E_AUTH_EMULATOR_URL": f"http://127.0.0.1:{p.auth}",
            "E2E_FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{p.firestore}",
            # The sign-in page names the seeded account (only when the emulators are used).
            "VITE_DEMO_EMAIL": _seed.DEMO_EMAIL,
            "VITE_DEMO_PASSWORD": _seed.DEMO_PASSWORD,
            "E2E_DEMO_EMAIL": _seed.DEMO_EMAIL,
            "E2E_DEMO_PASSWORD": _seed.DEMO_PASSWORD,
            "E2E_CHROMIUM": os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"),
        }
        if self.demo_model:
            env["VITE_DEFAULT_MODEL"] = DEMO_MODEL
            # The web app then says it is in demo mode and offers only the demo models.
            env["VITE_DEMO_MODEL"] = DEMO_MODEL
            env["VITE_DEMO_MODELS"] = ",".join(DEMO_MODELS)
            env["E2E_FAKE_OPENROUTER_URL"] = f"http://127.0.0.1:{p.fake_openrouter}"
            env["E2E_FAKE_OPENROUTER_BASE_URL"] = self.fake_base_url
        return env

    # --- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def _start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Managed:
        part = Managed(
            name,
            argv,
            env=env,
            cwd=cwd,
            log_path=self.logs / f"{name}.log",
            echo=self.options.echo,
        )
        self.parts.append(part)
        return part

    def _say(self, text: str) -> None:
        print(f"[devstack] {text}", flush=True)

    def up(self) -> None:
        opts = self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        wanted = ["firestore", "hub", "logging"]
        if opts.auth:
            wanted.append("auth")
        if opts.functions:
            wanted.append("functions")
        if opts.web:
            wanted.append("web")
        functions_dir = self._prepare_functions() if opts.functions else None
        if opts.functions and self.demo_model:
            wanted.append("fake_openrouter")
        busy = [b for b in self.ports.busy() if b.split(" ")[0] in wanted]
        if busy:
            raise StackError(
                "these ports are already in use: "
                + ", ".join(busy)
                + " (another scripts/dev running? stop it, or pick other ports: "
                "python -m devstack up --help)"
            )
        if opts.functions and self.demo_model:
            self._start_fake()
        self._start_firebase(functions_dir)
        if opts.seed and opts.auth:
            self.prompt_ids = _seed.seed(
                f"127.0.0.1:{self.ports.auth}", f"127.0.0.1:{self.ports.firestore}", PROJECT_ID
            )
            self._say(f"seeded {_seed.DEMO_EMAIL} and prompts: {', '.join(self.prompt_ids)}")
            if opts.functions:
                self._seed_documents()
        if opts.web:
            self._start_web()

    def down(self) -> list[int]:
        """Stop every part, newest first; returns the pids that survived (expected: none)."""
        survivors: list[int] = []
        while self.parts:
            part = self.parts.pop()
            survivors += part.stop()
        if self.isolated and self.workdir.exists():
            # Keep the logs of a failed run; the copied sources are not needed.
            shutil.rmtree(self.workdir / "functions", ignore_errors=True)
        return survivors

    def check_alive(self) -> None:
        for part in self.parts:
            if not part.running():
                raise StackError(
                    f"{part.name} exited with code {part.proc.returncode}; last lines:\n"
                    f"{part.tail()}\nlog: {part.log_path}"
                )

    # --- parts -------------------------------------------------------------------

    def _prepare_functions(self) -> Path:
        """The functions source dir to emulate, with .env.local and .secret.local set."""
        opts = self.options
        self.key_source = None if opts.force_demo_model else key_source()
        self.demo_model = self.key_source is None
        if not self.isolated:
            self._prepare_repo_functions()
            return FUNCTIONS
        target = self.workdir / "functions"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            FUNCTIONS,
            target,
            symlinks=True,
            ignore=shutil.ignore_patterns(
                "venv", "__pycache__", "*.pyc", ".env.local", ".secret.local", "tests"
            ),
        )
        (target / "venv").symlink_to(FUNCTIONS / "venv")
        origins = f"http://127.0.0.1:{self.ports.web},http://localhost:{self.ports.web}"
        local = {"ALLOWED_ORIGINS": origins}
        if self.demo_model:
            local.update(demo_env(self.fake_base_url))
            _write_env_file(
                target / ".secret.local",
                {"OPENROUTER_API_KEY": PLACEHOLDER_KEY},
                "the local demo model needs no key",
            )
        else:
            secret = FUNCTIONS / ".secret.local"
            if secret.exists():
                shutil.copy2(secret, target / ".secret.local")
            user_local = _parse_env_file(FUNCTIONS / ".env.local")
            if not _ours(FUNCTIONS / ".env.local"):
                local = {**user_local, **local}
        _write_env_file(target / ".env.local", local, f"test stack {self.name}")
        return target

    def _prepare_repo_functions(self) -> None:
        env_local = FUNCTIONS / ".env.local"
        secret = FUNCTIONS / ".secret.local"
        if self.demo_model:
            if not _ours(env_local):
                raise StackError(
                    f"{env_local} is yours (no devstack marker) but no real "
                    "OPENROUTER_API_KEY is configured; move it away or add a key "
                    "(functions/.secret.local.example)"
                )
            _write_env_file(
                env_local,
                demo_env(self.fake_base_url),
                "no real OPENROUTER_API_KEY: the functions talk to the local demo model",
            )
            if not secret.exists():
                _write_env_file(
                    secret,
                    {"OPENROUTER_API_KEY": PLACEHOLDER_KEY},
                    "placeholder; put a real key here to use OpenRouter "
                    "(see .secret.local.example)",
                )
            return
        if env_local.exists() and _ours(env_local):
            env_local.unlink()  # back to .env's real OpenRouter base_url
        env_key = os.environ.get("OPENROUTER_API_KEY")
        file_key = _parse_env_file(secret).get("OPENROUTER_API_KEY")
        if _is_real_key(env_key) and not _is_real_key(file_key):
            # The Functions emulator reads secrets only from .secret.local (or Secret
            # Manager); a placeholder there would shadow the key from the shell.
            if secret.exists() and not _ours(secret):
                raise StackError(
                    f"{secret} holds a placeholder key; put the real key there or delete it"
                )
            _write_env_file(
                secret,
                {"OPENROUTER_API_KEY": str(env_key)},
                "copied from $OPENROUTER_API_KEY by scripts/dev",
            )

    def _start_fake(self) -> None:
        part = self._start(
            "fake-openrouter",
            [
                str(VENV_PYTHON),
                "-m",
                "fake_openrouter",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.fake_openrouter),
                # The demo streams word by word at a readable pace, each demo model at its
                # own, and answers in Markdown that cites the passages it was given; test
                # stacks keep the fake's defaults, which their directives build on.
                # Startup defaults, so that POST /_fake/reset comes back to them.
                *(
                    []
                    if self.isolated
                    else [
                        *("--chunks", "0", "--delay", "0.05", "--set", "markdown=true"),
                        *("--set", "per_model=" + json.dumps(DEMO_PER_MODEL)),
                    ]
                ),
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
        )
        part.wait_for(r"fake-openrouter listening on", timeout=30)

    def _start_firebase(self, functions_dir: Path | None) -> None:
        only = ["firestore"]
        if self.options.auth:
            only.append("auth")
        if functions_dir is not None:
            only.append("functions")
        if self.isolated:
            config_dir = self.workdir
            config = _firebase.emulator_config(self.ports, config_dir, functions_dir)
            # firebase-tools refuses paths outside the config's directory: copy the rules.
            for name in ("firestore.rules", "firestore.indexes.json"):
                shutil.copy2(REPO / name, config_dir / name)
            config["firestore"] = {"rules": "firestore.rules", "indexes": "firestore.indexes.json"}
            (config_dir / "firebase.json").write_text(json.dumps(config, indent=2))
        else:
            config_dir = REPO
        argv = [
            str(_firebase.firebase_bin()),
            "emulators:start",
            "--config",
            str(config_dir / "firebase.json"),
            "--project",
            PROJECT_ID,
            "--only",
            ",".join(only),
        ]
        env = _firebase.firebase_env(dict(os.environ))
        env["PATH"] = f"{VENV_PYTHON.parent}{os.pathsep}{env['PATH']}"
        part = self._start("firebase", argv, env, cwd=config_dir)
        part.wait_for(r"All emulators ready", timeout=180)
        part.remember_descendants()
        if functions_dir is not None:
            # The first request starts the Python runtime; until the functions are
            # loaded the emulator answers 404 "does not exist". An unauthenticated
            # POST is refused by our handler with 401 once it really runs.
            def probe() -> bool:
                status, text = _http_status(self.stream_url, method="POST", body=b"{}", timeout=30)
                return status != 404 and "does not exist" not in text

            _poll("the execute_prompt_stream function", part, probe, timeout=90)
            part.remember_descendants()

    def _seed_documents(self) -> None:
        """The demo documents, through the real ingestion path, and the prompt that
        names them. A failure is reported, not fatal: the rest of the stack works."""
        try:
            token = _seed.sign_in(f"127.0.0.1:{self.ports.auth}")
            ids = _seed.seed_documents(self.ingest_url, token)
            self.prompt_ids.append(
                _seed.seed_kb_prompt(f"127.0.0.1:{self.ports.firestore}", PROJECT_ID)
            )
        except (RuntimeError, OSError) as exc:
            self._say(f"documents not seeded: {exc}")
            return
        self._say(f"seeded documents: {', '.join(ids)} and prompt {_seed.KB_PROMPT_ID}")

    def _start_web(self) -> None:
        if not (WEB / "package.json").exists():
            raise StackError("web/package.json is missing: no web app to serve")
        env = {**os.environ, **self.client_env(), "BROWSER": "none"}
        part = self._start(
            "web",
            [
                "npm",
                "run",
                "dev",
                "--",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.web),
                "--strictPort",
            ],
            env,
            cwd=WEB,
        )
        _poll("the web app", part, lambda: _http_status(self.web_url)[0] == 200, timeout=90)
        part.remember_descendants()

    # --- what scripts/dev prints ---------------------------------------------------

    def curl_line(self) -> str:
        token = _seed.sign_in(f"127.0.0.1:{self.ports.auth}")
        body = json.dumps({"prompt_id": _seed.CURL_PROMPT_ID, "variables": _seed.CURL_VARIABLES})
        return (
            f"curl -N -X POST {shlex.quote(self.stream_url)} \\\n"
            f"  -H {shlex.quote('Authorization: Bearer ' + token)} \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(body)}"
        )

    def banner(self) -> str:
        p = self.ports
        lines = [""]
        if self.options.functions and self.demo_model:
            bar = "!" * 78
            lines += [
                bar,
                "!!  NO OPENROUTER_API_KEY: answers come from a LOCAL DEMO MODEL",
                f"!!  (fake OpenRouter at {self.fake_base_url}), NOT from a real model.",
                "!!  To use OpenRouter: put your key in functions/.secret.local",
                "!!  (see functions/.secret.local.example) and run scripts/dev again.",
                bar,
                "",
            ]
        elif self.options.functions:
            lines += [f"Model calls go to the real upstream (key from {self.key_source}).", ""]
        lines += ["Local stack is up:"]
        if self.options.web:
            lines.append(f"  web app            {self.web_url}")
        if self.options.functions:
            lines.append(f"  stream function    {self.stream_url}")
            lines.append(f"  non-stream         {self.functions_base_url}/execute_prompt")
            lines.append(f"  documents          {self.ingest_url}")
        lines.append(f"  Firestore emulator 127.0.0.1:{p.firestore}")
        if self.options.auth:
            lines.append(f"  Auth emulator      127.0.0.1:{p.auth}")
            lines.append(f"  demo user          {_seed.DEMO_EMAIL} / {_seed.DEMO_PASSWORD}")
        lines.append(f"  logs               {self.logs}")
        if self.options.functions and self.options.auth:
            lines += [
                "",
                "Stream a seeded prompt (the ID token is valid for 1 hour; "
                "`functions/venv/bin/python -m devstack curl` prints a fresh line):",
                "",
                self.curl_line(),
            ]
        lines += ["", "Ctrl-C stops everything.", ""]
        return "\n".join(lines)


def run_exec(stack: Stack, command: Sequence[str]) -> int:
    """Start `stack`, run `command` against it with client_env(), tear down."""
    import subprocess

    with stack:
        env = {**os.environ, **stack.client_env()}
        sys.stdout.flush()
        code = subprocess.call(list(command), env=env)
    if code == 0:
        shutil.rmtree(stack.workdir, ignore_errors=True)
    else:
        print(f"[devstack] the stack's logs: {stack.logs}", file=sys.stderr, flush=True)
    return code
