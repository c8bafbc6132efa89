"""What an opening costs the relay's CPU before any of the product's logic: the stack's
floor under issue 28's "≤ 1.5 ms of relay CPU per execution opened".

Serves ``bench/_floor_main.py`` (the product's server settings and endpoint plumbing, no
product logic) in shapes that add one part of an opening at a time, and the product
itself, alternating, each measured as ``bench.openings --chunks 1`` measures it: N
sequential requests, a fresh user and ID token each, the function's process tree's CPU
divided by N. Loopback only, bounded by N and the rounds.

    functions/venv/bin/python -m bench.opening_floor [--executions 400] [--rounds 3]

The shapes:
- ``server``: the request read and two events answered (``bench/_floor_main.py``);
- ``+ token``: and the caller's ID token checked (the product's ``Authenticator``);
- ``+ Firestore``: and the three requests an execution makes to Firestore, on aiohttp (a
  read, a commit while the upstream opens, a commit after), their answers parsed;
- ``+ upstream``: and a streamed chat completion of one chunk, relayed as the product's
  events: every request an execution makes, and nothing else done;
- ``product``: ``execute_prompt_stream`` as deployed, the same one-chunk answer.
"""

from __future__ import annotations

import argparse
import asyncio

from devstack import FirestoreEmulator, FunctionServer, fake_upstream

from ._procs import SKELETON, SKELETON_TARGET, tree_pids
from .openings import API_KEY, PROJECT, _run, seed_prompt

SHAPES: dict[str, dict[str, str]] = {
    "server": {},
    "+ token": {"FLOOR_AUTH": "1"},
    "+ Firestore": {"FLOOR_AUTH": "1", "FLOOR_FIRESTORE": "3"},
    "+ upstream": {"FLOOR_AUTH": "1", "FLOOR_FIRESTORE": "3", "FLOOR_UPSTREAM": "1"},
}
PRODUCT = "product"


def _measure(shape: str, emulator: FirestoreEmulator, upstream: str, executions: int) -> float:
    if shape == PRODUCT:
        target, source, env = "execute_prompt_stream", None, {}
    else:
        target, source = SKELETON_TARGET, SKELETON
        env = SHAPES[shape]
    with FunctionServer(
        target,
        emulator.host,
        upstream,
        project=PROJECT,
        api_key=API_KEY,
        env={"MAX_CONCURRENT_STREAMS": "100", **env},
        source=source,
    ) as server:
        pids = tree_pids(server.pid)
        return asyncio.run(_run(server.url + "/", executions, pids, "latest", None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shapes = [*SHAPES, PRODUCT]
    figures: dict[str, list[float]] = {shape: [] for shape in shapes}
    with FirestoreEmulator(PROJECT) as emulator, fake_upstream() as upstream:
        seed_prompt(emulator, 1)
        for n in range(args.rounds):
            for shape in shapes:
                ms = _measure(shape, emulator, upstream, args.executions)
                figures[shape].append(ms)
                print(f"round {n + 1}: {shape:<14} {ms:.2f} ms", flush=True)
    print(f"\nms of relay CPU per request, {args.executions} sequential requests a run:")
    for shape in shapes:
        median = sorted(figures[shape])[len(figures[shape]) // 2]
        runs = ", ".join(f"{ms:.2f}" for ms in figures[shape])
        print(f"{shape:<14} median {median:.2f}   runs {runs}")


if __name__ == "__main__":
    main()
