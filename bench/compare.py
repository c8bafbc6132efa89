"""A comparison of 4 models against 4 single executions: the relay's CPU per execution,
and the lag a comparison's streams add to paced chunks. Loopback only, bounded rounds.

    functions/venv/bin/python -m bench.compare [--rounds 6] [--batch 8] [--out DIR]

(a) CPU: each round runs ``--batch`` comparisons (4 concurrent streams of one user
sharing a comparison_id, one model each) and ``4 x --batch`` single executions (one after
another, 4 per user), and divides the relay's process-tree CPU by the executions. Every
execution has its own connection in both variants. (b) Lag, as S2 measures it: chunks
paced at ``--delay``, each stamped by the fake; the lag is arrival minus stamp, and the
added lag is the relay's minus the floor's (the same streams straight from the fake).
A comparison's 4 streams against 1 stream alone. The two variants alternate round by
round (which goes first alternates too), since other sessions share the machine: the
report gives medians and ranges over rounds, and each round's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devstack import FunctionServer

from ._loadgen import Request, StreamResult
from ._procs import FakeUpstream, FirestoreEmulator, raise_fd_limit, tree_pids
from ._report import added, summarize
from ._run import (
    PROJECT,
    PROMPT_ID,
    RESULTS,
    _drive,
    _finish_run,
    _machine,
    _Meter,
    _warm_up,
    bench_server,
    fake_reset,
    floor_requests,
    id_token,
    seed,
)
from ._scenarios import Scenario

MODELS = ("demo/local-model", "demo/fast-model", "demo/careful-model", "demo/backup-model")
OUT = RESULTS / "history" / "2026-11-30-compare"


def _requests(
    server: FunctionServer, sc: Scenario, uid: str, comparison_id: str | None
) -> list[Request]:
    """One execution per model for ``uid``; with ``comparison_id``, they are one
    comparison."""
    requests = []
    for model in MODELS:
        fields: dict[str, Any] = {
            "prompt_id": PROMPT_ID,
            "variables": {"knobs": sc.directive},
            "model": model,
            "max_tokens": 4000,
        }
        if comparison_id is not None:
            fields["comparison_id"] = comparison_id
        headers = {"Authorization": f"Bearer {id_token(uid)}", "Content-Type": "application/json"}
        requests.append(
            Request(
                server.url + "/execute_prompt_stream", json.dumps(fields).encode(), headers, "relay"
            )
        )
    return requests


def _cpu_run(
    variant: str,
    sc: Scenario,
    batch: int,
    parts: tuple[FakeUpstream, FirestoreEmulator, FunctionServer],
    tag: str,
) -> dict[str, Any]:
    """``batch`` comparisons, or ``4 x batch`` single executions, measured together."""
    fake, emulator, server = parts
    fake_reset(fake)
    meter = _Meter(
        {"relay": tree_pids(server.pid), "fake": [fake.pid], "firestore": tree_pids(emulator.pid)}
    )
    results: list[StreamResult] = []
    for n in range(batch):
        uid = f"bench-{tag}-{variant}-{n}"
        if variant == "comparison":
            results += _drive(sc, _requests(server, sc, uid, f"cmp-{tag}-{n}"))
        else:
            one = Scenario(sc.key, sc.title, 1, sc.chunks, sc.delay)
            for request in _requests(server, sc, uid, None):
                results += _drive(one, [request])
    out, _ = _finish_run(sc, fake, results, meter)
    executions = len(results)
    return {
        "variant": variant,
        "executions": executions,
        "errors": out["errors"],
        "error_samples": out["error_samples"],
        "complete": out["complete"],
        "relay_cpu_s": out["cpu_s"]["relay"],
        "relay_cpu_ms_per_execution": round(out["cpu_s"]["relay"] / executions * 1000, 3),
        "cpu_s": out["cpu_s"],
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _lag_run(
    variant: str,
    sc: Scenario,
    parts: tuple[FakeUpstream, FirestoreEmulator, FunctionServer],
    tag: str,
) -> dict[str, Any]:
    """A comparison's 4 paced streams, or 1 alone; each against its floor."""
    fake, _, server = parts
    streams = len(MODELS) if variant == "comparison" else 1
    paced = Scenario(sc.key, sc.title, streams, sc.chunks, sc.delay)
    fake_reset(fake)
    floor = summarize(paced, _drive(paced, floor_requests(paced, fake)))
    comparison_id = f"cmp-{tag}-lag" if variant == "comparison" else None
    requests = _requests(server, paced, f"bench-{tag}-lag-{variant}", comparison_id)
    relay = summarize(paced, _drive(paced, requests[:streams]))
    return {
        "variant": variant,
        "streams": streams,
        "errors": floor["errors"] + relay["errors"],
        "error_samples": floor["error_samples"] + relay["error_samples"],
        "floor_lag_ms": floor["lag_ms"],
        "relay_lag_ms": relay["lag_ms"],
        "added_lag_ms": added(floor, relay)["lag_ms"],
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def of(kind: str, variant: str, read: Any) -> dict[str, float]:
        return _spread([read(r[kind][variant]) for r in rounds])

    cpu = {
        v: of("cpu", v, lambda x: x["relay_cpu_ms_per_execution"]) for v in ("comparison", "single")
    }
    ratios = [
        r["cpu"]["comparison"]["relay_cpu_ms_per_execution"]
        / r["cpu"]["single"]["relay_cpu_ms_per_execution"]
        for r in rounds
    ]
    lag = {
        v: {p: of("lag", v, lambda x, p=p: x["added_lag_ms"][p]) for p in ("p50", "p99")}
        for v in ("comparison", "single")
    }
    return {
        "relay_cpu_ms_per_execution": cpu,
        "comparison_over_single_cpu_ratio": _spread(ratios),
        "added_lag_ms": lag,
        "errors": sum(
            r["cpu"][v]["errors"] + r["lag"][v]["errors"]
            for r in rounds
            for v in ("comparison", "single")
        ),
        "loadavg_per_round": [r["loadavg"] for r in rounds],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    parser.add_argument("--batch", type=int, default=8, help="comparisons per CPU run (default 8)")
    parser.add_argument("--chunks", type=int, default=50, help="chunks per CPU-run stream")
    parser.add_argument("--lag-chunks", type=int, default=100, help="paced chunks per lag stream")
    parser.add_argument(
        "--delay", type=float, default=0.02, help="lag runs: seconds between chunks"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a smoke check: the emulator at normal priority (its figures are not read)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rounds_n = max(1, min(args.rounds, 50))
    batch = max(1, min(args.batch, 100))
    cpu_sc = Scenario("C", "comparison CPU", len(MODELS), args.chunks, 0.002)
    lag_sc = Scenario("L", "comparison lag", len(MODELS), args.lag_chunks, args.delay)
    raise_fd_limit()
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report: dict[str, Any] = {
        "started_at": stamp,
        "command": "functions/venv/bin/python -m bench.compare " + shlex.join(argv or sys.argv[1:]),
        "machine": _machine(),
        "models": list(MODELS),
        "cpu_run": {
            "comparisons": batch,
            "singles": batch * len(MODELS),
            "chunks": args.chunks,
            "delay_s": 0.002,
        },
        "lag_run": {"chunks": args.lag_chunks, "delay_s": args.delay},
        "rounds": [],
    }
    emulator = FirestoreEmulator(PROJECT, log_dir, background=not args.smoke)
    fake = FakeUpstream(log_dir)
    env = {
        "ALLOWED_MODELS": ",".join(MODELS),
        "DEFAULT_MODEL": MODELS[0],
        "MAX_CONCURRENT_STREAMS": str(len(MODELS)),
        "DAILY_TOKEN_BUDGET": "100000000",
    }
    started = time.monotonic()
    try:
        emulator.start()
        fake.start()
        seed(emulator)
        with bench_server(emulator.host, fake, env, log_dir) as server:
            _warm_up(server)
            parts = (fake, emulator, server)
            # Warm the emulator's and the relay's paths before anything is measured.
            _cpu_run("comparison", cpu_sc, batch, parts, f"{stamp}-warm")
            _cpu_run("single", cpu_sc, batch, parts, f"{stamp}-warm")
            for n in range(rounds_n):
                order = ("comparison", "single") if n % 2 == 0 else ("single", "comparison")
                entry: dict[str, Any] = {
                    "round": n,
                    "order": list(order),
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                }
                entry["cpu"] = {v: _cpu_run(v, cpu_sc, batch, parts, f"{stamp}-{n}") for v in order}
                entry["lag"] = {v: _lag_run(v, lag_sc, parts, f"{stamp}-{n}") for v in order}
                report["rounds"].append(entry)
                cpu = entry["cpu"]
                lag = entry["lag"]
                print(
                    f"round {n}: relay CPU/execution comparison {cpu['comparison']['relay_cpu_ms_per_execution']} ms, "
                    f"single {cpu['single']['relay_cpu_ms_per_execution']} ms; added lag p50 "
                    f"comparison {lag['comparison']['added_lag_ms']['p50']} ms, "
                    f"single {lag['single']['added_lag_ms']['p50']} ms; load {entry['loadavg']}",
                    flush=True,
                )
    finally:
        fake.stop()
        emulator.stop()
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["summary"] = _summary(report["rounds"])
    path = args.out / f"compare-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
