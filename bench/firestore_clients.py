"""What opening an execution costs with each Firestore client: the relay's REST calls on
the loop, google-cloud-firestore's ``AsyncClient`` (gRPC aio) and its sync ``Client``
(gRPC), against gcloud's Firestore emulator on loopback.

    functions/venv/bin/python -m bench.firestore_clients [--rounds 6] [--executions 150]
        [--concurrency 1] [--variants rest,async,sync] [--emulator-priority low]
        [--out FILE]

An execution here is what ``Store.begin_execution`` does: one batch read of the prompt and
the user's limits document, then one commit that updates the limits on condition of the
update time read and creates the ``streaming`` record (``exists: false``). The REST
variant is ``Store.begin_execution`` itself; the two gRPC variants make the same read and
the same conditional writes through the official clients. Each execution has its own
user, whose limits document exists (the common case), so no commit loses a race.

``--concurrency N`` keeps N executions in flight (the relay opens up to
``OPEN_CONCURRENCY``, 8, at once); the sync client then runs in N threads, as the relay's
request threads did before the async path. Latency is the wall time of each call; CPU
is this process's CPU time (every thread, so gRPC's own threads count) over the round,
divided by the executions, and the emulator's beside it. Variants alternate within every round (the order rotates), and each round
starts a fresh client and warms it up first, so a busy machine hurts all variants alike;
the report gives medians and ranges over rounds. The emulator runs at the lowest CPU
priority, as in ``bench`` (``--emulator-priority normal`` leaves it at ours, to tell its
own CPU starvation apart from the client's latency). Bounded by ``--rounds`` x ``--executions`` per variant.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uvloop

from devstack import FirestoreEmulator

from ._procs import ROOT, machine_cpu, sample, tree_pids
from ._report import percentile

sys.path[:0] = [str(ROOT / "functions")]

from promptstream._config import Settings  # noqa: E402
from promptstream.store._firestore import FirestoreRest, encode_fields  # noqa: E402
from promptstream.store._limits import take_lease  # noqa: E402
from promptstream.store._store import Store, auto_id  # noqa: E402

PROJECT = "demo-bench-firestore-clients"
PROMPT_ID = "announce"
WARMUP = 15
PROMPT = {
    "owner_uid": "bench-owner",
    "title": "Announcement",
    "content": "Write a short announcement of {{product}} for {{audience}}.",
    "system_prompt": "You are concise.",
    "variables": [
        {"name": "product", "required": True, "default": None},
        {"name": "audience", "required": True, "default": None},
    ],
    "public": True,
}


def _record() -> dict[str, Any]:
    """The fields of a ``streaming`` record as the relay opens it."""
    return {
        "prompt_id": PROMPT_ID,
        "model": "x-ai/grok-4-fast:free",
        "variables": {"product": "the RAG Prompt Library", "audience": "developers"},
        "output": "",
        "reasoning": "",
        "truncated": False,
    }


def _limits(uid: str, day: str) -> dict[str, Any]:
    return {"uid": uid, "leases": {}, "reserved": {}, "day": day, "tokens_today": 1234}


Execution = Callable[[str], Awaitable[None]]


async def _seed(host: str, uids: list[str]) -> None:
    """The prompt and one limits document per user, in commits of 400 writes."""
    import aiohttp

    day = dt.datetime.now(dt.UTC).date().isoformat()
    async with aiohttp.ClientSession() as session:
        db = FirestoreRest(PROJECT, session, emulator_host=host, timeout=60)
        writes = [
            {"update": {"name": db.name(f"prompts/{PROMPT_ID}"), "fields": encode_fields(PROMPT)}}
        ]
        for uid in uids:
            name = db.name(f"user_limits/{uid}")
            writes.append({"update": {"name": name, "fields": encode_fields(_limits(uid, day))}})
        for start in range(0, len(writes), 400):
            await db.commit(writes[start : start + 400])


class _Timed:
    """Wall time of each read and each commit of the round."""

    def __init__(self) -> None:
        self.read_ms: list[float] = []
        self.commit_ms: list[float] = []


def _timed(call: Callable[..., Awaitable[Any]], into: list[float]) -> Callable[..., Any]:
    """``call``, noting the wall time of each call in ``into`` (ms)."""

    async def timed_call(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await call(*args)
        finally:
            into.append((time.perf_counter() - t0) * 1000)

    return timed_call


def _rest(
    host: str, settings: Settings, timed: _Timed
) -> tuple[Execution, Callable[[], Awaitable[None]]]:
    store = Store(settings, emulator_host=host)
    rest = store.rest
    rest.get_all = _timed(rest.get_all, timed.read_ms)  # type: ignore[method-assign]
    rest.commit = _timed(rest.commit, timed.commit_ms)  # type: ignore[method-assign]

    async def one(uid: str) -> None:
        await store.begin_execution(
            uid=uid, prompt_id=PROMPT_ID, build=lambda prompt: (_record(), 2048, None)
        )

    return one, store.close


def _opening_batch(client: Any, settings: Settings, uid: str, limits: Any) -> Any:
    """The opening commit through a gRPC client: the lease on condition of the limits
    document's update time as read, and the record only if it does not exist yet."""
    from google.cloud import firestore

    execution_id = auto_id()
    lease = take_lease(limits.to_dict(), execution_id, dt.datetime.now(dt.UTC), settings, 2048)
    batch = client.batch()
    batch.update(
        limits.reference,
        {**lease, "uid": uid},
        option=client.write_option(last_update_time=limits.update_time),
    )
    record = {**_record(), "owner_uid": uid, "status": "streaming"}
    batch.create(
        client.collection("executions").document(execution_id),
        {**record, "created_at": firestore.SERVER_TIMESTAMP},
    )
    return batch


def _refs(client: Any, uid: str) -> tuple[Any, Any]:
    return (
        client.collection("prompts").document(PROMPT_ID),
        client.collection("user_limits").document(uid),
    )


def _grpc_async(
    host: str, settings: Settings, timed: _Timed
) -> tuple[Execution, Callable[[], Awaitable[None]]]:
    from google.cloud import firestore

    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    client: Any = firestore.AsyncClient(project=PROJECT)

    async def one(uid: str) -> None:
        refs = _refs(client, uid)
        t0 = time.perf_counter()
        snaps = {snap.reference.path: snap async for snap in client.get_all(list(refs))}
        timed.read_ms.append((time.perf_counter() - t0) * 1000)
        batch = _opening_batch(client, settings, uid, snaps[refs[1].path])
        t0 = time.perf_counter()
        await batch.commit()
        timed.commit_ms.append((time.perf_counter() - t0) * 1000)

    async def close() -> None:
        client.close()

    return one, close


def _grpc_sync(
    host: str, settings: Settings, timed: _Timed
) -> tuple[Execution, Callable[[], Awaitable[None]]]:
    from google.cloud import firestore

    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    client: Any = firestore.Client(project=PROJECT)

    def one_sync(uid: str) -> None:
        refs = _refs(client, uid)
        t0 = time.perf_counter()
        snaps = {snap.reference.path: snap for snap in client.get_all(list(refs))}
        timed.read_ms.append((time.perf_counter() - t0) * 1000)
        batch = _opening_batch(client, settings, uid, snaps[refs[1].path])
        t0 = time.perf_counter()
        batch.commit()
        timed.commit_ms.append((time.perf_counter() - t0) * 1000)

    async def one(uid: str) -> None:
        # In a thread per execution in flight, as the relay's request threads called it.
        await asyncio.to_thread(one_sync, uid)

    async def close() -> None:
        client.close()

    return one, close


VARIANTS = {"rest": _rest, "async": _grpc_async, "sync": _grpc_sync}


async def _all(one: Execution, uids: list[str], concurrency: int) -> None:
    todo = iter(uids)

    async def worker() -> None:
        for uid in todo:
            await one(uid)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _round(
    variant: str, host: str, uids: list[str], concurrency: int, emulator_pids: list[int]
) -> dict[str, Any]:
    # The sync client's threads: one per execution in flight, as request threads were.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(concurrency))
    settings = Settings(project_id=PROJECT)
    timed = _Timed()
    one, close = VARIANTS[variant](host, settings, timed)
    try:
        await _all(one, uids[:WARMUP], concurrency)
        timed.read_ms.clear()
        timed.commit_ms.clear()
        measured = uids[WARMUP:]
        emulator0 = sample(emulator_pids)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        busy0, steal0 = machine_cpu()
        await _all(one, measured, concurrency)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        busy, steal = (a - b for a, b in zip(machine_cpu(), (busy0, steal0), strict=True))
        emulator_cpu = sample(emulator_pids).cpu_since(emulator0)
    finally:
        await close()
    n = len(measured)
    return {
        "variant": variant,
        "concurrency": concurrency,
        "executions": n,
        "cpu_ms_per_execution": round(cpu / n * 1000, 3),
        "emulator_cpu_ms_per_execution": round(emulator_cpu / n * 1000, 3),
        "wall_ms_per_execution": round(wall / n * 1000, 3),
        "read_ms": {
            "p50": round(percentile(sorted(timed.read_ms), 50), 3),
            "p90": round(percentile(sorted(timed.read_ms), 90), 3),
        },
        "commit_ms": {
            "p50": round(percentile(sorted(timed.commit_ms), 50), 3),
            "p90": round(percentile(sorted(timed.commit_ms), 90), 3),
        },
        "machine_busy_s": round(busy, 2),
        "steal_s": round(steal, 2),
    }


def _summary(rounds: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys: dict[str, Callable[[dict[str, Any]], float]] = {
        "cpu_ms_per_execution": lambda r: r["cpu_ms_per_execution"],
        "emulator_cpu_ms_per_execution": lambda r: r["emulator_cpu_ms_per_execution"],
        "wall_ms_per_execution": lambda r: r["wall_ms_per_execution"],
        "read_ms_p50": lambda r: r["read_ms"]["p50"],
        "commit_ms_p50": lambda r: r["commit_ms"]["p50"],
        "read_ms_p90": lambda r: r["read_ms"]["p90"],
        "commit_ms_p90": lambda r: r["commit_ms"]["p90"],
    }
    for variant in variants:
        mine = [r for r in rounds if r["variant"] == variant]
        out[variant] = {
            key: {
                "median": round(statistics.median([get(r) for r in mine]), 3),
                "min": min(get(r) for r in mine),
                "max": max(get(r) for r in mine),
            }
            for key, get in keys.items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--executions", type=int, default=150, help="per variant per round")
    parser.add_argument("--concurrency", type=int, default=1, help="executions in flight")
    parser.add_argument("--variants", default="rest,async,sync")
    parser.add_argument("--emulator-priority", choices=("low", "normal"), default="low")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    per_round = WARMUP + args.executions
    started = dt.datetime.now(dt.UTC)
    rounds: list[dict[str, Any]] = []
    background = args.emulator_priority == "low"
    with FirestoreEmulator(PROJECT, background=background) as emulator:
        plan = [
            (r, variants[(i + r) % len(variants)])
            for r in range(args.rounds)
            for i in range(len(variants))
        ]
        uids = {(r, v): [f"r{r}-{v}-u{i}" for i in range(per_round)] for r, v in plan}
        asyncio.run(_seed(emulator.host, [u for us in uids.values() for u in us]))
        emulator_pids = tree_pids(emulator.pid)
        for r, variant in plan:
            result = uvloop.run(
                _round(variant, emulator.host, uids[(r, variant)], args.concurrency, emulator_pids)
            )
            result["round"] = r
            rounds.append(result)
            print(json.dumps(result), flush=True)
    report = {
        "what": "bench.firestore_clients: one batch read (prompt + limits) and one conditional commit per execution",
        "command": " ".join(
            ["functions/venv/bin/python -m bench.firestore_clients", *sys.argv[1:]]
        ),
        "started": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "versions": _versions(),
        "emulator": {"priority": emulator.priority or "normal"},
        "summary": _summary(rounds, variants),
        "rounds": rounds,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(json.dumps(report["summary"], indent=2))


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        name: version(name) for name in ("google-cloud-firestore", "grpcio", "aiohttp", "uvloop")
    }


if __name__ == "__main__":
    main()
