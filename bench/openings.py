"""The relay's CPU per execution when executions come back to back: N sequential
executions of a short answer (chunks 1 ms apart) through the function served as deployed,
the relay's process tree's CPU divided by N. Loopback only, bounded by N.

    functions/venv/bin/python -m bench.openings [--executions 400] [--chunks 10] [--ask latest]
        [--concurrency 1] [--env NAME=VALUE] [--profile FILE]

With ``--chunks 1`` it also prints the "opened" figure: the relay's CPU per execution
opened (docs/adr/1002-opening-cpu.md). ``--profile FILE`` records the worker with py-spy
during the measured executions (collapsed stacks of the thread holding the GIL).

``--ask`` chooses what the requests run of a prompt at version 2 (issue 27): its
``latest`` (the prompt alone), ``version`` 1 (read with the prompt and the limits) or the
``label`` naming version 1 (read after them): docs/adr/0900-prompt-versions.md.

Unlike bench S6 (chunks paced at 10 ms, so each is a wake-up of an idle loop), this keeps
the loop warm: what is left is the opening (token, body, Firestore read and commit, the
upstream request), the relay and the record's finish.

``--concurrency N`` keeps N executions in flight at once instead of one (a burst, as S2's
openings are): what an opening costs when others open beside it, where reads that meet go
as one request (docs/adr/1003-reads-that-meet.md). ``--env`` adds a setting of the function.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp

import devstack
from devstack import FirestoreEmulator, FunctionServer, fake_upstream

from ._procs import Profiler, sample, tree_pids

PROJECT = "demo-bench-openings"
API_KEY = "sk-or-v1-bench-not-a-secret"


# What each --ask adds to the request body.
ASKS: dict[str, dict[str, object]] = {
    "latest": {},
    "version": {"version": 1},
    "label": {"label": "production"},
}


async def _run(
    url: str,
    executions: int,
    pids: list[int],
    ask: str,
    profile: tuple[int, Path] | None,
    concurrency: int = 1,
) -> float:
    tokens = [devstack.id_token(f"u{i}", project=PROJECT) for i in range(executions + 20)]
    asked = {"prompt_id": "p1", "variables": {"topic": "x"}, **ASKS[ask]}
    body = json.dumps(asked).encode()
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[i]}"}
            async with session.post(url, data=body, headers=headers) as resp:
                answer = await resp.read()
            # A refusal costs far less than an execution: it must not pass for one.
            if resp.status != 200 or b"event: end" not in answer:
                raise RuntimeError(f"not an execution: {resp.status} {answer[:300]!r}")

        for i in range(20):  # warm-up: the pools and the caches
            await one(i)
        profiler = Profiler(*profile, rate=500) if profile is not None else None
        before = sample(pids)
        numbers = iter(range(20, 20 + executions))

        async def worker() -> None:
            for i in numbers:
                await one(i)

        async with asyncio.TaskGroup() as tasks:
            for _ in range(concurrency):
                tasks.create_task(worker())
        cpu = sample(pids).cpu_since(before)
        if profiler is not None:
            profiler.stop()
        return cpu / executions * 1000


def seed_prompt(emulator: FirestoreEmulator, chunks: int) -> None:
    """The public prompt ``p1`` at version 2, its label ``production`` naming version 1:
    a short answer of ``chunks`` chunks 1 ms apart."""
    db = emulator.client()
    content = f"{{{{topic}}}} [[fake chunks={chunks} delay=0.001]]"
    prompt = db.collection("prompts").document("p1")
    for n in (1, 2):
        prompt.collection("versions").document(str(n)).set({"content": content})
    prompt.set(
        {
            "owner_uid": "x",
            "title": "t",
            "public": True,
            "content": content,
            "version": 2,
            "labels": {"production": 1},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=400)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--ask", choices=sorted(ASKS), default="latest")
    parser.add_argument("--concurrency", type=int, default=1, help="executions in flight at once")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a function setting"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="record the worker with py-spy during the measured executions (collapsed "
        "stacks; the CPU figure then includes py-spy's pauses of the worker)",
    )
    args = parser.parse_args()
    with FirestoreEmulator(PROJECT) as emulator:
        with fake_upstream() as upstream:
            seed_prompt(emulator, args.chunks)
            with FunctionServer(
                "execute_prompt_stream",
                emulator.host,
                upstream,
                project=PROJECT,
                api_key=API_KEY,
                env={
                    "MAX_CONCURRENT_STREAMS": "100",
                    **dict(item.split("=", 1) for item in args.env),
                },
            ) as server:
                started = time.monotonic()
                pids = tree_pids(server.pid)
                profile = (server.worker_pids()[0], args.profile) if args.profile else None
                ms = asyncio.run(
                    _run(
                        server.url + "/",
                        args.executions,
                        pids,
                        args.ask,
                        profile,
                        args.concurrency,
                    )
                )
                took = time.monotonic() - started
    print(
        f"{args.executions} executions ({args.ask}, {args.concurrency} at once) of "
        f"{args.chunks} chunks in {took:.1f} s: "
        f"{ms:.2f} ms of relay CPU per execution"
    )
    if args.chunks == 1:
        # One chunk leaves little but the opening and the finish: issue 28's figure.
        print(f"opened: {ms:.2f} ms of relay CPU per execution opened")


if __name__ == "__main__":
    main()
