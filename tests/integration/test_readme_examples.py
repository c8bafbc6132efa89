"""Every code block of README.md runs as written, against a local stack on free ports.

The stack is devstack's own pieces: the session's Firestore emulator with the prompts
`scripts/dev` seeds; devstack's stand-in for the Auth emulator, which signs the demo user in
as the emulator does (firebase-tools' emulators would take this test past a minute); the
fake OpenRouter answering in Markdown as the demo model does; and `execute_prompt_stream`
served as deployed with the demo model's settings (`devstack.demo_env`). The README's fixed
addresses become the stack's (`LocalStack.addresses`), and nothing else in a block changes.

Each block is run in README order, in a fresh `bash -euo pipefail` whose working directory
holds links to the repo's folders (so files a block writes land there). The HTML comment
on the line before a fence says what else a block is:

- `<!-- readme: file NAME -->`: written to NAME for the blocks after it;
- `<!-- readme: output -->`: what the block before it prints, compared loosely
  (`expected_in`);
- `<!-- readme: not run, REASON -->`: shown, not run; its commands must exist.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import AuthEmulatorStandIn, _seed, demo_env
from devstack._firebase import PROJECT_ID
from fake_openrouter import FakeOpenRouterThread
from support import ROOT, FirestoreEmulator, FunctionServer

_FENCE = re.compile(
    r"(?:^<!-- readme: (?P<mark>[^\n]*?) -->\n)?^(?P<fence>`{3,})(?P<lang>\w*)\n(?P<body>.*?)^(?P=fence)$",
    re.S | re.M,
)
_PAIR = re.compile(r'"(model|outcome|status|finish_reason|prompt_id)":\s*"([^"]*)"')


@dataclass(frozen=True, slots=True)
class Block:
    line: int
    lang: str
    mark: str
    body: str


def readme_blocks(text: str) -> list[Block]:
    return [
        Block(text.count("\n", 0, m.start("lang")) + 1, m["lang"], m["mark"] or "", m["body"])
        for m in _FENCE.finditer(text)
    ]


def expected_in(expected: str, actual: str) -> list[str]:
    """What of ``expected`` (an output block) ``actual`` lacks: every `event:` line and
    `data: [DONE]`; every model, outcome, status, finish_reason and prompt_id a JSON
    object names; and every other line without JSON, read with `…` as anything and
    digits as any number. Lines that start with `…` say "and so on"."""
    missing: list[str] = []
    lines = actual.splitlines()
    pairs = set(_PAIR.findall(actual))
    for line in expected.splitlines():
        line = line.strip()
        if not line or line.startswith("…") or line.startswith("id:"):
            continue
        if line.startswith("event:") or line == "data: [DONE]":
            if line not in lines:
                missing.append(line)
            continue
        if "{" in line or '"' in line:
            missing += [f'"{k}": "{v}"' for k, v in _PAIR.findall(line) if (k, v) not in pairs]
            continue
        pattern = re.escape(line).replace("…", ".*")
        pattern = re.sub(r"\d+", r"\\d+", pattern)
        if not any(re.fullmatch(pattern, got.strip()) for got in lines):
            missing.append(line)
    return missing


@dataclass(frozen=True, slots=True)
class LocalStack:
    auth_port: int
    firestore_port: int
    fake: FakeOpenRouterThread
    function: FunctionServer

    def addresses(self) -> dict[str, str]:
        """README's fixed address -> this stack's."""
        return {
            f"http://127.0.0.1:5001/{PROJECT_ID}/us-central1": self.function.url,
            "http://127.0.0.1:8788": self.fake.url,
            "-m devstack token": f"-m devstack token --auth-port {self.auth_port}",
            "-m devstack record": f"-m devstack record --firestore-port {self.firestore_port}",
        }

    def localize(self, text: str) -> str:
        for fixed, here in self.addresses().items():
            text = text.replace(fixed, here)
        return text


@pytest.fixture(scope="module")
def local_stack(firestore_emulator: FirestoreEmulator) -> Iterator[LocalStack]:
    _seed.seed_prompts(firestore_emulator.host, PROJECT_ID)
    accounts = {_seed.DEMO_EMAIL: (_seed.DEMO_PASSWORD, _seed.DEMO_UID)}
    auth = AuthEmulatorStandIn(PROJECT_ID, accounts)
    # The demo model's answer at the tests' pace; startup defaults, which the README's
    # POST /_fake/reset comes back to.
    try:
        with FakeOpenRouterThread(delay=0.002, markdown=True) as fake:
            env = {
                **demo_env(fake.base_url),
                "FIREBASE_AUTH_EMULATOR_HOST": auth.host,
            }
            with FunctionServer(
                "execute_prompt_stream",
                firestore_emulator.host,
                fake.base_url,
                env=env,
                project=PROJECT_ID,
            ) as function:
                yield LocalStack(auth.port, firestore_emulator.port, fake, function)
    finally:
        auth.close()


def run_blocks(readme: str, local: LocalStack, workdir: Path) -> list[str]:
    """Run every block of ``readme``; what went wrong, one entry per block."""
    for name in ("functions", "devstack", "fake_openrouter", "scripts"):
        link = workdir / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    problems: list[str] = []
    last_output = ""
    for block in readme_blocks(readme):
        where = f"README.md:{block.line}"
        if block.mark.startswith("file "):
            (workdir / block.mark[5:].strip()).write_text(local.localize(block.body))
        elif block.mark == "output":
            missing = expected_in(block.body, last_output)
            if missing:
                problems.append(f"{where}: output lacks {missing}; got:\n{last_output[-3000:]}")
        elif block.mark.startswith("not run"):
            if not block.mark[len("not run") :].strip(" ,"):
                problems.append(f"{where}: 'not run' without a reason")
            for line in block.body.splitlines():
                command = line.split("#")[0].split()
                if command and "/" in command[0] and not os.access(ROOT / command[0], os.X_OK):
                    problems.append(f"{where}: {command[0]} is not an executable")
        elif block.lang == "bash":
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", local.localize(block.body)],
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            last_output = result.stdout
            if result.returncode != 0:
                problems.append(
                    f"{where}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr}"
                )
        else:
            problems.append(f"{where}: a ```{block.lang} block without a readme: mark")
    return problems


def test_every_readme_block_runs_as_written(local_stack: LocalStack, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    problems = run_blocks(readme, local_stack, tmp_path)
    assert not problems, "\n\n".join(problems)
    # The Python example sent its context as a system message of its own.
    sent = [
        r["json"]
        for r in local_stack.fake.requests()
        if r["json"].get("model") == "x-ai/grok-4-fast:free"
    ]
    assert [m["role"] for m in sent[0]["messages"]] == ["system", "system", "user"]
    record = json.loads(
        subprocess.run(
            ["bash", "-c", local_stack.localize("functions/venv/bin/python -m devstack record")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert record["model"] == "demo/backup-model"  # the README's last stream fell back


@pytest.mark.parametrize(
    ("expected", "actual", "missing"),
    [
        ('event: end\ndata: {"model":"a/b",…}', 'event: end\ndata: {"model": "a/b", "x": 1}', []),
        (
            'event: end\ndata: {"model":"a/b",…}',
            'event: end\ndata: {"model":"a/c"}',
            ['"model": "a/b"'],
        ),
        ("event: start\n…\ndata: [DONE]", "event: end\ndata: [DONE]", ["event: start"]),
        (
            "usage: … tokens\ngeneration: gen-… finish: stop",
            "usage: 12 tokens\ngeneration: gen-9-x finish: stop",
            [],
        ),
        ("usage: 99 tokens", "usage: 12 tokens", []),
        ("finish: stop", "finish: length", ["finish: stop"]),
    ],
)
def test_output_blocks_compare_loosely(expected: str, actual: str, missing: list[str]) -> None:
    assert expected_in(expected, actual) == missing
