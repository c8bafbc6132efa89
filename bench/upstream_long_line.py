"""The client against an upstream that sends one endless SSE line: outcome, CPU, peak RSS.

Starts the fake OpenRouter (this tree's) in its own process with ``long_line=SIZE`` and
streams one answer with the client from ``--functions`` (default: this tree's). To try
the client as it was before issue 14:

    git archive a18c582 functions/promptstream | tar -x -C /tmp/old
    functions/venv/bin/python -m bench.upstream_long_line 40000000 --functions /tmp/old/functions
    functions/venv/bin/python -m bench.upstream_long_line 40000000
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


async def _run(base_url: str) -> str:
    from pydantic import SecretStr

    from promptstream import OpenRouterClient, OpenRouterConfig, OpenRouterError

    config = OpenRouterConfig(api_key=SecretStr("sk-or-bench"), base_url=base_url, max_retries=0)
    async with OpenRouterClient(config) as client:
        try:
            chunks = [c async for c in client.generate_response_stream("q")]
        except OpenRouterError as exc:
            return f"{type(exc).__name__} ({exc.code}): {exc.message[:80]}"
    return f"{len(chunks)} chunks"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("size", type=int)
    parser.add_argument("--functions", default=str(ROOT / "functions"))
    args = parser.parse_args()
    sys.path.insert(0, args.functions)
    import promptstream  # noqa: F401  (imported before the clock starts)

    fake: Any = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fake_openrouter",
            "--port",
            "0",
            "--delay",
            "0",
            "--chunks",
            "3",
            "--set",
            f"long_line={args.size}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = fake.stdout.readline()
        found = re.search(r"(http://\S+/api/v1)", line)
        if not found:
            raise SystemExit(f"the fake did not start: {line!r}")
        started = time.process_time()
        outcome = asyncio.run(_run(found.group(1)))
        cpu = time.process_time() - started
    finally:
        fake.terminate()
        fake.wait(10)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"size={args.size} client={args.functions}: {outcome}; cpu {cpu:.2f} s; peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
