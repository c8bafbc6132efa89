"""Orchestration: bring the parts up, run every scenario against the floor and the relay,
measure the processes, write the report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

import devstack
from devstack import DelayProxy, FunctionServer

from . import _latency
from ._loadgen import Request, StreamResult, run_streams
from ._procs import (
    FUNCTIONS,
    SKELETON,
    SKELETON_TARGET,
    FakeUpstream,
    FirestoreEmulator,
    ProcSample,
    Profiler,
    dotenv,
    machine_cpu,
    raise_fd_limit,
    sample,
    tree_pids,
)
from ._report import added, close_latency, summarize, table
from ._scenarios import FULL, QUICK, TARGETS, Scenario

__all__ = ["main"]

PROJECT = "demo-rag-prompts"
# Not a secret: the fake accepts any key. It must be set, or the function refuses to run.
API_KEY = "sk-or-v1-bench-not-a-secret"
MODEL = "x-ai/grok-4-fast:free"
PROMPT_ID = "bench-prompt"
RESULTS = Path(__file__).resolve().parent / "results"


def id_token(uid: str) -> str:
    """An unsigned ID token for the bench project (see devstack.id_token: no bypass)."""
    return devstack.id_token(uid, project=PROJECT, email=False)


# -- requests ------------------------------------------------------------------------------


def floor_requests(sc: Scenario, fake: FakeUpstream) -> list[Request]:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Benchmark run. {sc.directive}"}],
            "stream": True,
            "max_tokens": 32000,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    url = fake.base_url + "/chat/completions"
    return [Request(url, body, headers, "openrouter") for _ in range(sc.streams)]


def relay_requests(sc: Scenario, server: FunctionServer, run_id: str) -> list[Request]:
    body = json.dumps(
        {"prompt_id": PROMPT_ID, "variables": {"knobs": sc.directive}, "max_tokens": 32000}
    ).encode()
    url = server.url + "/execute_prompt_stream"
    requests = []
    for i in range(sc.streams):
        # One user per stream keeps the per-user limits (5 concurrent streams) out of the
        # way; S6 is one user running executions one after another.
        uid = f"bench-{run_id}-{sc.key}-{0 if sc.sequential else i}"
        headers = {"Authorization": f"Bearer {id_token(uid)}", "Content-Type": "application/json"}
        requests.append(Request(url, body, headers, "relay"))
    return requests


def seed(emulator: FirestoreEmulator) -> None:
    emulator.reset()
    emulator.put(
        "prompts",
        PROMPT_ID,
        {
            "owner_uid": "bench-owner",
            "title": "Benchmark prompt",
            # The fake's knobs travel in a variable, so every execution reads the prompt,
            # renders it, and sends the directive upstream as a real client's text would.
            "content": "Benchmark run. {{knobs}}",
            "variables": [{"name": "knobs", "required": True, "default": None}],
            "public": True,
        },
    )


# The skeleton's shape under ``--skeleton``: every request an execution makes
# (bench/_floor_main.py); ``--env`` may change it.
SKELETON_ENV = {
    "FLOOR_AUTH": "1",
    "FLOOR_FIRESTORE": "3",
    "FLOOR_UPSTREAM": "1",
    "FLOOR_PROMPT": PROMPT_ID,
}


def bench_server(
    firestore_host: str,
    fake: FakeUpstream,
    env: dict[str, str],
    log_dir: Path,
    skeleton: bool = False,
) -> FunctionServer:
    """The streaming function (not yet started) on the Firestore at ``firestore_host`` (the
    emulator, or the delay proxy in front of it): functions/.env as deployed, with only
    what must point at local parts overridden, plus ``env``. S6's one user runs its 50
    executions faster than a user's rate allows (ADR 0309): the rate is off here.
    ``skeleton``: the skeleton function in its place, on the same stack and settings."""
    return FunctionServer(
        SKELETON_TARGET if skeleton else "execute_prompt_stream",
        firestore_host,
        fake.base_url,
        project=PROJECT,
        api_key=API_KEY,
        defaults={**dotenv(FUNCTIONS / ".env"), "OPEN_RATE_PER_MINUTE": "0"},
        env={**SKELETON_ENV, **env} if skeleton else env,
        log_dir=log_dir,
        start_timeout=60,
        source=SKELETON if skeleton else None,
    )


# -- the fake's control routes -----------------------------------------------------------


def _http_json(url: str, method: str = "GET", body: bytes | None = None) -> Any:
    req = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def fake_stats(fake: FakeUpstream) -> dict[str, Any]:
    return dict(_http_json(fake.root_url + "/_fake/stats"))


def fake_reset(fake: FakeUpstream) -> None:
    _http_json(fake.root_url + "/_fake/reset", "POST", b"")


def _wait_until(check: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def _settle(pids: Sequence[int], timeout: float = 10.0) -> None:
    """Wait until the processes go quiet (the relay finalises records after the last byte)."""
    deadline = time.monotonic() + timeout
    last = sample(pids).cpu_total
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = sample(pids).cpu_total
        if now - last < 0.01:
            return
        last = now


def _warm_up(server: FunctionServer, skeleton: bool = False) -> None:
    """One request that builds the service (token check, Firestore read), not the upstream.

    An absent prompt answers 404 after the token check and the Firestore read, so the
    instance is warm but its upstream pool is still empty: S6 can count connections.
    The skeleton reads no prompt: it answers a whole execution.
    """
    body = json.dumps({"prompt_id": "bench-absent", "variables": {}}).encode()
    req = urllib.request.Request(
        server.url + "/execute_prompt_stream",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {id_token('bench-warm-up')}",
            "Content-Type": "application/json",
        },
    )
    if skeleton:
        urllib.request.urlopen(req, timeout=60).close()
        return
    try:
        urllib.request.urlopen(req, timeout=60).close()
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise RuntimeError(f"warm-up answered {exc.code}: {exc.read()[:300]!r}") from None
    else:
        raise RuntimeError("warm-up: the absent prompt was found")


def _warm_emulator(server: FunctionServer, run_id: str, rounds: int) -> dict[str, Any]:
    """Executions through a throwaway instance, before any scenario, so the Firestore
    emulator's JVM has compiled its read and commit paths: cold, it spends several times
    the CPU per execution, on the cores the scenarios measure
    (docs/adr/0007-bench-parts.md)."""
    sc = Scenario("W", "emulator warm-up", 100, 2, 0.0)
    started = time.monotonic()
    errors = 0
    for n in range(rounds):
        results = _drive(sc, relay_requests(sc, server, f"{run_id}-{n}"))
        errors += sum(1 for r in results if r.error)
    return {
        "executions": rounds * sc.streams,
        "errors": errors,
        "seconds": round(time.monotonic() - started, 1),
    }


def _measure_round_trips(emulator: FirestoreEmulator, proxy: DelayProxy | None) -> dict[str, Any]:
    """One Firestore call's round trip as the function sees it, straight to the emulator
    and through the delay proxy: the proof that the proxy adds what it says."""
    seed(emulator)
    path = f"/v1/projects/{PROJECT}/databases/(default)/documents/prompts/{PROMPT_ID}"
    out = {"direct": _latency.round_trips(emulator.host, path)}
    if proxy is not None:
        out["through_delay"] = _latency.round_trips(proxy.host, path)
    return out


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- one scenario ------------------------------------------------------------------------


def _drive(sc: Scenario, requests: list[Request]) -> list[StreamResult]:
    # uvloop: the load generator shares the cores with what it measures, so it should
    # spend as little of them as it can (docs/adr/0007-bench-parts.md).
    return uvloop.run(
        run_streams(
            requests,
            sequential=sc.sequential,
            close_after=sc.close_after,
            stream_timeout=sc.timeout(),
        )
    )


class _Meter:
    """CPU of every part over one run, and of everything else on the machine."""

    def __init__(self, parts: dict[str, list[int]]) -> None:
        self.parts = parts
        self.before = {name: sample(pids) for name, pids in parts.items()}
        self.busy, self.steal = machine_cpu()
        self.self_cpu = _cpu_self()
        self.started = time.monotonic()

    def read(self) -> tuple[dict[str, float], dict[str, ProcSample]]:
        after = {name: sample(pids) for name, pids in self.parts.items()}
        cpu = {name: after[name].cpu_since(self.before[name]) for name in self.parts}
        cpu["loadgen"] = _cpu_self() - self.self_cpu
        # Other sessions share this machine; their load is part of every number. So is
        # the hypervisor's: steal is time our cores were given to other machines.
        busy, steal = machine_cpu()
        cpu["other"] = max(0.0, busy - self.busy - sum(cpu.values()))
        cpu["steal"] = max(0.0, steal - self.steal)
        # Steal as a share of all the cores' time while the run lasted.
        cores = os.cpu_count() or 1
        cpu["steal_share"] = cpu["steal"] / max(1e-9, (time.monotonic() - self.started) * cores)
        if "relay" in after:
            cpu["relay_sys"] = after["relay"].sys_since(self.before["relay"])
        return {k: round(v, 3) for k, v in cpu.items()}, after


def _finish_run(
    sc: Scenario, fake: FakeUpstream, results: list[StreamResult], meter: _Meter
) -> tuple[dict[str, Any], dict[str, ProcSample]]:
    if sc.close_after is not None:
        _wait_until(lambda: fake_stats(fake)["early_closes"] >= sc.streams, 5.0)
    _wait_until(lambda: fake_stats(fake)["active_streams"] == 0, 10.0)
    _settle([pid for pids in meter.parts.values() for pid in pids])
    cpu, after = meter.read()
    stats = fake_stats(fake)
    out = summarize(sc, results)
    out["cpu_s"] = cpu
    out["upstream"] = _upstream(stats)
    if sc.close_after is not None:
        out["close"] = close_latency(results, stats["early_close_ns"])
    return out, after


def _stand_ins(emulator: FirestoreEmulator, proxy: DelayProxy | None) -> dict[str, list[int]]:
    """Firestore's parts: the emulator, and the delay proxy in front of it if any."""
    parts = {"firestore": tree_pids(emulator.pid)}
    if proxy is not None:
        parts["delay_proxy"] = [proxy.pid]
    return parts


def run_floor(
    sc: Scenario, fake: FakeUpstream, emulator: FirestoreEmulator, proxy: DelayProxy | None
) -> dict[str, Any]:
    fake_reset(fake)
    meter = _Meter({"fake": [fake.pid], **_stand_ins(emulator, proxy)})
    results = _drive(sc, floor_requests(sc, fake))
    out, _ = _finish_run(sc, fake, results, meter)
    return out


def run_relay(
    sc: Scenario,
    fake: FakeUpstream,
    emulator: FirestoreEmulator,
    proxy: DelayProxy | None,
    server: FunctionServer,
    run_id: str,
    profile: Path | None,
) -> dict[str, Any]:
    requests = relay_requests(sc, server, run_id)
    fake_reset(fake)
    # The instance at rest: started and warmed up, nothing in flight.
    rest = sample(tree_pids(server.pid))
    profiler = Profiler(server.worker_pids()[0], profile) if profile else None
    meter = _Meter(
        {
            "relay": tree_pids(server.pid),
            "fake": [fake.pid],
            **_stand_ins(emulator, proxy),
        }
    )
    results = _drive(sc, requests)
    try:
        out, after = _finish_run(sc, fake, results, meter)
    finally:
        if profiler is not None:
            profiler.stop()
    relay_cpu = out["cpu_s"]["relay"]
    out["relay_cpu_s"] = relay_cpu
    out["relay_cpu_us_per_chunk"] = (
        round(relay_cpu / out["chunks"] * 1e6, 1) if out["chunks"] else None
    )
    out["relay_cpu_ms_per_execution"] = (
        round(relay_cpu / sc.streams * 1000, 2) if sc.streams else None
    )
    out["firestore_cpu_s"] = out["cpu_s"]["firestore"]
    # The master (which imported main.py before forking) and the worker that serves:
    # their memory at rest with what the fork shares counted once (PSS), and each one's RSS.
    out["relay_rest_mb"] = round(rest.pss_total / 2**20, 1)
    out["relay_rest_rss_mb_by_process"] = {
        str(pid): round(rss / 2**20, 1) for pid, rss in sorted(rest.rss_bytes.items())
    }
    # VmHWM of the functions-framework master and its worker: this instance's peak,
    # and the instance is fresh for each scenario.
    out["relay_peak_rss_mb"] = round(after["relay"].hwm_total / 2**20, 1)
    out["relay_processes"] = len(after["relay"].cpu)
    if profile is not None:
        out["profile"] = str(profile)
    return out


def _upstream(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        key: stats.get(key)
        for key in ("requests", "connections_opened", "streams_completed", "early_closes")
    }


# -- the whole bench ---------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "What the relay adds over the upstream floor: latency per chunk, time to first "
            "byte, CPU and memory, for scenarios S1-S6 (issue 6). Loopback only."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny versions (a smoke check; the emulator at normal priority)",
    )
    parser.add_argument("--only", default="", help="comma-separated scenario keys, e.g. S2,S3")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"directory for the JSON (default {RESULTS})"
    )
    parser.add_argument(
        "--profile",
        default="",
        help="scenario keys whose relay run is recorded with py-spy (collapsed stacks)",
    )
    parser.add_argument(
        "--skeleton",
        action="store_true",
        help="serve the skeleton (bench/_floor_main.py: the stack and an execution's "
        "requests, no product logic) in the product's place",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the function (recorded in the JSON)",
    )
    _latency.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenarios = QUICK if args.quick else FULL
    only = {k.strip().upper() for k in args.only.split(",") if k.strip()}
    if only:
        unknown = only - {sc.key for sc in scenarios}
        if unknown:
            print(f"bench: unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        scenarios = tuple(sc for sc in scenarios if sc.key in only)
    profile_keys = {k.strip().upper() for k in args.profile.split(",") if k.strip()}
    try:
        latency = _latency.from_args(args)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if latency.first_token_ms:
        scenarios = tuple(
            dataclasses.replace(sc, first_token=latency.first_token_ms / 1000) for sc in scenarios
        )
    extra_env = dict(item.split("=", 1) for item in args.env)
    fd_limit = raise_fd_limit()
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_id = stamp.lower()
    started = time.monotonic()
    report: dict[str, Any] = {
        "started_at": stamp,
        "mode": "quick" if args.quick else "full",
        "command": "functions/venv/bin/python -m bench " + shlex.join(argv or sys.argv[1:]),
        "machine": _machine(),
        "fd_limit": fd_limit,
        "logs": str(log_dir),
        "latency": latency.as_json(),
        "skeleton": args.skeleton,
        "scenarios": {},
    }
    emulator = FirestoreEmulator(PROJECT, log_dir, background=not args.quick)
    fake = FakeUpstream(log_dir)
    proxy: DelayProxy | None = None
    try:
        print("starting the Firestore emulator and the fake upstream ...", flush=True)
        emulator.start()
        report["firestore_emulator_priority"] = emulator.priority
        fake.start()
        firestore_host = emulator.host
        if latency.firestore_delay_ms:
            proxy = DelayProxy(emulator.host, latency.firestore_delay_ms, log_dir).start()
            firestore_host = proxy.host
        report["latency"]["firestore_round_trip_ms"] = _measure_round_trips(emulator, proxy)

        def new_server() -> FunctionServer:
            return bench_server(firestore_host, fake, extra_env, log_dir, args.skeleton)

        if not args.quick:
            print("warming the Firestore emulator up ...", end=" ", flush=True)
            seed(emulator)
            with new_server() as server:
                warm = _warm_emulator(server, run_id, rounds=3)
            report["emulator_warm_up"] = warm
            print(f"{warm['executions']} executions in {warm['seconds']}s", flush=True)
        for sc in scenarios:
            t0 = time.monotonic()
            print(f"{sc.key}: {sc.load} ...", end=" ", flush=True)
            seed(emulator)
            floor = run_floor(sc, fake, emulator, proxy)
            server = new_server()
            report.setdefault("function_target", server.target)
            report.setdefault("function_env", {**server.defaults, **server.overrides})
            report["function_env"].pop("OPENROUTER_API_KEY", None)
            server.start()
            try:
                _warm_up(server, args.skeleton)
                profile = (
                    args.out / f"profile-{sc.key}-{stamp}.txt" if sc.key in profile_keys else None
                )
                relay = run_relay(sc, fake, emulator, proxy, server, run_id, profile)
            finally:
                server.stop()
            report["scenarios"][sc.key] = {
                "title": sc.title,
                "load": sc.load,
                "streams": sc.streams,
                "chunks": sc.chunks,
                "delay_s": sc.delay,
                "floor": floor,
                "relay": relay,
                "added": added(floor, relay),
                "seconds": round(time.monotonic() - t0, 1),
            }
            print(
                f"{time.monotonic() - t0:.1f}s (errors floor {floor['errors']}, "
                f"relay {relay['errors']})",
                flush=True,
            )
    finally:
        if proxy is not None:
            proxy.stop()
        fake.stop()
        emulator.stop()
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["targets"] = [
        t.check(report["scenarios"][t.scenario])
        for t in TARGETS
        if t.scenario in report["scenarios"]
    ]
    text = table(report)
    print()
    print(text)
    print(f"\ntotal {report['duration_s']}s")
    prefix = "quick-" if args.quick else ""
    for name in (f"{prefix}{stamp}.json", f"{prefix}latest.json"):
        (args.out / name).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out / (prefix + stamp + '.json')} and {prefix}latest.json")
    return 0
