"""Soak: 320 executions through functions-framework, 64 at a time, with ~10% upstream
faults and ~10% client disconnects. Afterwards every execution has exactly one final
record and one log line, no lease is left, no thread, fd or upstream connection leaked,
and the process still answers its health check.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fake_openrouter import FakeOpenRouterThread
from promptstream import SSEDecoder
from support import (
    FirestoreEmulator,
    FunctionServer,
    Serve,
    add_prompt,
    auth,
    body,
    fake_openrouter,
    worker_pids,
)

TOTAL = 320
CONCURRENCY = 64
USERS = 60
WARM_UP = range(1000, 1000 + CONCURRENCY)  # the same mix, at full concurrency
FAULTS = [
    ("error_after=2", "error", "upstream_error"),
    ("status=500", "error", "upstream_error"),
    ("drop_after=2", "error", "upstream_disconnected"),
    ("malformed_after=1", "error", "upstream_error"),
    ("status=402", "error", "out_of_credits"),
]


@pytest.fixture(scope="module")
def soak_fake() -> Iterator[FakeOpenRouterThread]:
    with fake_openrouter(delay=0.05) as fake:
        yield fake


@pytest.fixture(scope="module")
def soak_server(serve: Serve, soak_fake: FakeOpenRouterThread) -> Iterator[FunctionServer]:
    env = {"MAX_CONCURRENT_STREAMS": "100", "HEARTBEAT_SECONDS": "0.5"}
    with serve(env=env, base_url=soak_fake.base_url) as server:
        yield server


def plan(i: int) -> tuple[str, str, str | None]:
    """(directive, expected status, expected error code) for execution ``i``."""
    if i % 10 == 3:
        directive, status, code = FAULTS[(i // 10) % len(FAULTS)]
        return directive, status, code
    if i % 10 == 7:
        return "chunks=40", "cancelled", None  # the client hangs up after one chunk
    return "chunks=24", "completed", None


class Tally:
    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.seen: dict[str, str] = {}  # execution id -> what the client saw
        self.http_errors: Counter[tuple[int, str]] = Counter()


async def one(session: aiohttp.ClientSession, url: str, i: int, tally: Tally) -> None:
    directive, expected, code = plan(i)
    payload = body("soak", variables={"topic": f"run {i}", "fault": f"[[fake {directive}]]"})
    async with session.post(url, data=payload, headers=auth(f"u{i % USERS}")) as resp:
        if resp.status != 200:
            error = json.loads(await resp.read())["error"]
            tally.http_errors[(resp.status, error["code"])] += 1
            assert (expected, error["code"]) == ("error", code)
            return
        decoder = SSEDecoder()
        execution_id = ""
        tally.open += 1
        tally.peak = max(tally.peak, tally.open)
        try:
            async for data in resp.content.iter_any():
                for event in decoder.feed(data):
                    if event.event == "start":
                        execution_id = json.loads(event.data)["execution_id"]
                    elif event.event == "message" and event.data != "[DONE]":
                        if expected == "cancelled":
                            tally.seen[execution_id] = "cancelled"
                            resp.close()
                            return
                    elif event.event in ("end", "error"):
                        tally.seen[execution_id] = (
                            "completed" if event.event == "end" else json.loads(event.data)["code"]
                        )
        finally:
            tally.open -= 1


async def run_all(url: str, indices: range, tally: Tally) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY + 10)
    timeout = aiohttp.ClientTimeout(total=60, sock_read=20)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def gated(i: int) -> None:
            async with gate:
                await one(session, url, i, tally)

        await asyncio.wait_for(asyncio.gather(*(gated(i) for i in indices)), 120)


def counts(pid: int, fake_port: int, own_port: int, firestore_port: int) -> dict[str, int]:
    """Threads and fds of the worker; its upstream, Firestore and inbound connections."""
    proc = Path(f"/proc/{pid}")
    upstream = firestore = inbound = 0
    for line in (proc / "net" / "tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == fake_port and fields[3] == "01":  # ESTABLISHED
            upstream += 1
        if remote_port == firestore_port and fields[3] == "01":
            firestore += 1
        if local_port == own_port and fields[3] in ("01", "08"):  # ESTABLISHED, CLOSE_WAIT
            inbound += 1
    return {
        "threads": len(os.listdir(proc / "task")),
        "fds": len(os.listdir(proc / "fd")),
        "upstream": upstream,
        "firestore": firestore,
        "inbound": inbound,
    }


def pooled(c: dict[str, int]) -> int:
    """The fds that are pooled connections (to the upstream and to Firestore)."""
    return c["upstream"] + c["firestore"]


def settled(
    pid: int,
    ports: tuple[int, int, int],
    ok: Callable[[dict[str, int]], bool],
    timeout: float = 10,
) -> dict[str, int]:
    """Counts once ``ok`` holds (the server closes a socket once its client has)."""
    deadline = time.monotonic() + timeout
    while True:
        now = counts(pid, *ports)
        if ok(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


@pytest.mark.slow
async def test_soak(
    soak_server: FunctionServer,
    soak_fake: FakeOpenRouterThread,
    firestore_emulator: FirestoreEmulator,
    db: Any,
) -> None:
    add_prompt(
        db,
        "soak",
        content="Tell me about {{topic}}. {{fault}}",
        public=True,
        variables=[{"name": "topic"}, {"name": "fault", "required": False, "default": ""}],
    )
    url = soak_server.url + "/"
    [worker] = worker_pids(soak_server)
    ports = (soak_fake.port, soak_server.port, firestore_emulator.port)
    idle = counts(worker, *ports)

    # Warm-up at full concurrency: gunicorn's threads, the loop thread and the upstream
    # pool all exist afterwards, so the baseline is the steady state.
    warm = Tally()
    await run_all(url, WARM_UP, warm)
    before = settled(worker, ports, lambda c: c["inbound"] == 0)

    started = time.monotonic()
    tally = Tally()
    await run_all(url, range(TOTAL), tally)
    elapsed = time.monotonic() - started

    after = settled(
        worker,
        ports,
        lambda c: c["inbound"] == 0 and c["fds"] - pooled(c) <= before["fds"] - pooled(before),
    )
    print(f"\nsoak: {TOTAL} executions in {elapsed:.1f}s, peak {tally.peak} open streams")
    print(f"soak: idle {idle} warm {before} after {after}")

    assert tally.peak >= 50
    # Bounded by the configured pools, not by the number of executions: the loop's
    # default executor (token checks run there), libuv's thread pool (uvloop's address
    # look-ups), and at most one pooled upstream connection and one Firestore connection per
    # concurrent stream. Every other fd is back to the warm baseline.
    executor = min(32, (os.cpu_count() or 1) + 4)
    libuv_pool = int(os.environ.get("UV_THREADPOOL_SIZE", "4"))
    assert after["threads"] <= idle["threads"] + executor + libuv_pool
    assert after["upstream"] <= CONCURRENCY
    assert after["firestore"] <= CONCURRENCY
    assert after["inbound"] == 0
    assert after["fds"] - pooled(after) <= before["fds"] - pooled(before) + 2

    # Exactly one final record per execution, none still streaming.
    records = [d.to_dict() | {"id": d.id} for d in db.collection("executions").stream()]
    assert len(records) == TOTAL + CONCURRENCY
    statuses = Counter(r["status"] for r in records)
    everything = [*range(TOTAL), *WARM_UP]
    expected = Counter(plan(i)[1] for i in everything)
    assert statuses == expected
    by_id = {r["id"]: r for r in records}
    for execution_id, seen in tally.seen.items():
        record = by_id[execution_id]
        if seen == "completed":
            assert record["status"] == "completed" and record["usage"] is not None
        elif seen == "cancelled":
            assert record["status"] == "cancelled"
        else:
            assert (record["status"], record["error_code"]) == ("error", seen)
    errors = Counter(r["error_code"] for r in records if r["status"] == "error")
    assert errors == Counter(plan(i)[2] for i in everything if plan(i)[1] == "error")

    # Every lease was released; every execution logged exactly once.
    for doc in db.collection("user_limits").stream():
        assert (doc.to_dict() or {}).get("leases") == {}, doc.id
    # Cloud Logging reads one JSON object per line: concurrent writers must not merge lines.
    broken = []
    for line in soak_server.log_text().splitlines():
        if line.startswith("{"):
            try:
                json.loads(line)
            except ValueError:
                broken.append(line)
    assert broken == []
    logged = Counter(
        r["execution_id"] for r in soak_server.log_records() if r.get("message") == "execution"
    )
    assert set(logged) == set(by_id)
    assert set(logged.values()) == {1}

    # The upstream saw every stream end, and the process is still healthy.
    assert soak_fake.stats()["active_streams"] == 0
    async with aiohttp.ClientSession() as session:
        health_started = time.monotonic()
        async with session.get(soak_server.url + "/__/health") as resp:
            assert resp.status == 200
        assert time.monotonic() - health_started < 1
