"""The bench's own parts, and what /proc says about the processes under test.

The fake upstream, the Firestore emulator and the function (functions-framework on
gunicorn, as deployed) run as separate processes so that none of them shares the load
generator's GIL. Everything binds to 127.0.0.1 on a free port. The emulator and the
function are devstack's shared parts; here the emulator learns to write and count
documents through its REST API.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import devstack
from devstack import firestore_value, first_line, stop_group

__all__ = [
    "FUNCTIONS",
    "ROOT",
    "SKELETON",
    "SKELETON_TARGET",
    "FakeUpstream",
    "FirestoreEmulator",
    "ProcSample",
    "Profiler",
    "dotenv",
    "machine_cpu",
    "raise_fd_limit",
    "sample",
    "tree_pids",
]

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
# The skeleton function: the stack and an execution's requests, no product logic.
SKELETON = ROOT / "bench" / "_floor_main.py"
# Served with ``FunctionServer(SKELETON_TARGET, ..., source=SKELETON)``.
SKELETON_TARGET = "floor"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; children started after this inherit it.

    1,000 streams through the relay hold 2,000+ sockets in the gunicorn worker (client
    side and upstream side), over the usual soft limit of 1,024.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file; comments and blank lines skipped."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


# -- /proc -------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces; fields start after it.
    return raw[raw.rfind(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, found by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo and len(found) < 10_000:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU seconds (user + system, all threads) and peak RSS of a set of processes."""

    cpu: dict[int, float]
    sys_cpu: dict[int, float]
    hwm_bytes: dict[int, int]
    rss_bytes: dict[int, int]
    # Proportional set size: pages shared between processes (a fork's) counted once in
    # all, as the instance's memory limit counts them.
    pss_bytes: dict[int, int]

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    @property
    def hwm_total(self) -> int:
        return sum(self.hwm_bytes.values())

    @property
    def rss_total(self) -> int:
        return sum(self.rss_bytes.values())

    @property
    def pss_total(self) -> int:
        return sum(self.pss_bytes.values())

    def cpu_since(self, before: ProcSample) -> float:
        """CPU used since ``before`` (a process that started in between counts whole)."""
        return sum(cpu - before.cpu.get(pid, 0.0) for pid, cpu in self.cpu.items())

    def sys_since(self, before: ProcSample) -> float:
        """The kernel's share of ``cpu_since``."""
        return sum(cpu - before.sys_cpu.get(pid, 0.0) for pid, cpu in self.sys_cpu.items())


def sample(pids: Iterable[int]) -> ProcSample:
    cpu: dict[int, float] = {}
    sys_cpu: dict[int, float] = {}
    hwm: dict[int, int] = {}
    rss: dict[int, int] = {}
    pss: dict[int, int] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
        sys_cpu[pid] = int(fields[12]) / _CLK_TCK
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm[pid] = int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    rss[pid] = int(line.split()[1]) * 1024
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss[pid] = int(line.split()[1]) * 1024
                    break
    return ProcSample(cpu, sys_cpu, hwm, rss, pss)


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine (all processes, all cores) has been busy, and the
    seconds its hypervisor gave its cores to someone else (steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal ...
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    return busy / _CLK_TCK, ticks[7] / _CLK_TCK


# -- the parts ---------------------------------------------------------------------------


class FakeUpstream:
    """``python -m fake_openrouter`` in its own process, stamping every content chunk."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / "fake-openrouter.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.root_url = ""

    def start(self) -> FakeUpstream:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fake_openrouter", "--port", "0", "--set", "stamp=1"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        text = first_line(self.proc)
        if "listening on " not in text:
            self.stop()
            raise RuntimeError(f"fake_openrouter did not start: {text!r}")
        self.base_url = text.split("listening on ", 1)[1].split()[0]
        self.root_url = self.base_url.rsplit("/api/v1", 1)[0]
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self._log.close()
            self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class FirestoreEmulator(devstack.FirestoreEmulator):
    """The shared emulator, logging to ``log_dir``, plus REST writes and counts.

    It runs in the background (lowest CPU priority): it stands in for Firestore, a remote
    service whose CPU is not the instance's, and at normal priority its JVM took most of
    the cores the relay is measured on (docs/adr/0007-bench-parts.md). A smoke run, whose
    figures nobody reads, runs it at normal priority (``background=False``): on a machine
    busy with other work a background emulator can wait past every timeout.
    """

    def __init__(self, project: str, log_dir: Path, *, background: bool = True) -> None:
        super().__init__(
            project, log_dir=log_dir, start_timeout=90, http_timeout=30, background=background
        )

    def put(self, collection: str, doc_id: str, fields: Mapping[str, object]) -> None:
        """Write one document through the emulator's REST API (as its owner: no rules)."""
        body = json.dumps({"fields": {k: firestore_value(v) for k, v in fields.items()}}).encode()
        req = urllib.request.Request(
            f"http://{self.host}/v1/projects/{self.project}/databases/(default)/documents/"
            f"{collection}/{doc_id}",
            data=body,
            method="PATCH",
            headers={"Content-Type": "application/json", "Authorization": "Bearer owner"},
        )
        urllib.request.urlopen(req, timeout=self.http_timeout).close()

    def count(self, collection: str, limit: int = 5000) -> int:
        """How many documents ``collection`` holds (up to ``limit``)."""
        req = urllib.request.Request(
            f"http://{self.host}/v1/projects/{self.project}/databases/(default)/documents/"
            f"{collection}?pageSize={limit}&mask.fieldPaths=status",
            headers={"Authorization": "Bearer owner"},
        )
        with urllib.request.urlopen(req, timeout=self.http_timeout) as resp:
            return len(json.loads(resp.read()).get("documents", []))


class Profiler:
    """py-spy record on a process (the gunicorn worker) while the load runs: collapsed
    stacks (raw text) of the thread holding the GIL, so an idle loop is not sampled."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(1.0)  # py-spy attaches before the load starts

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
