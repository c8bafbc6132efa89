"""The README's client example runs against the fake server and prints what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from fake_openrouter import FakeOpenRouterThread
from support import FUNCTIONS, ROOT


def test_readme_client_example_runs(fake_upstream: FakeOpenRouterThread) -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- client-example -->\n```python\n(.*?)```", readme, re.S)
    assert match, "the client example is missing from the README"
    code = match.group(1).replace("http://127.0.0.1:8788/api/v1", fake_upstream.base_url)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(FUNCTIONS)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"usage: \d+ tokens", result.stdout)
    assert "generation: gen-" in result.stdout and "finish: stop" in result.stdout
    sent = fake_upstream.requests()
    assert [m["role"] for m in sent[-2]["json"]["messages"]] == ["system", "system", "user"]
