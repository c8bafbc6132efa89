"""Child processes in their own process groups, torn down with all descendants."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


class StackError(RuntimeError):
    """A part of the stack failed to start or died."""


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                # The command name may contain spaces and parentheses: split after the last ')'.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (not `pid` itself)."""
    children = _children_by_parent()
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal_pids(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Managed:
    """One child process tree: started in a new session, its output logged.

    Every line goes to `log_path`; with `echo`, also to our stdout with a prefix.
    `wait_for(pattern)` blocks until a line matches.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        echo: bool,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[str] = open(log_path, "w", encoding="utf-8")  # closed in stop()
        self._echo = echo
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._known: set[int] = set()
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"log-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._log.write(line + "\n")
            self._log.flush()
            if self._echo:
                sys.stdout.write(f"[{self.name}] {line}\n")
                sys.stdout.flush()
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The first output line matching `pattern`; StackError on timeout or exit."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self._lines)
                if not self.running() and not self._reader.is_alive():
                    raise StackError(
                        f"{self.name} exited with code {self.proc.returncode} before it was "
                        f"ready; its log: {self.log_path}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError(
                        f"{self.name} was not ready within {timeout:.0f} s; its log: "
                        f"{self.log_path}"
                    )
                self._cond.wait(min(left, 0.5))

    def remember_descendants(self) -> None:
        """Note the current descendants, in case they re-parent before stop()."""
        if self.running():
            self._known.update(descendants(self.proc.pid))

    def stop(self, grace: float = 10.0) -> list[int]:
        """SIGINT the leader (lets firebase-tools clean up), then TERM/KILL what is left.

        Everything that ever descended from the leader and was seen is signalled,
        including trees that started their own process group. Returns the pids that
        survived (none, unless something ignores SIGKILL).
        """
        self.remember_descendants()
        pid = self.proc.pid
        if self.running():
            _signal_pids([pid], signal.SIGINT)
            deadline = time.monotonic() + grace
            while self.running() and time.monotonic() < deadline:
                self.remember_descendants()
                time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = [p for p in self._known if _alive(p)]
            groups = {pid}
            for p in left:
                try:
                    groups.add(os.getpgid(p))
                except ProcessLookupError:
                    pass
            for group in groups:
                try:
                    os.killpg(group, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            _signal_pids(left, sig)
            if self.running():
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
            deadline = time.monotonic() + 3
            while any(_alive(p) for p in self._known) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.running() and not any(_alive(p) for p in self._known):
                break
        self._reader.join(timeout=2)
        self._log.close()
        return sorted(p for p in self._known | {pid} if _alive(p))

    def tail(self, lines: int = 30) -> str:
        with self._cond:
            return "\n".join(self._lines[-lines:])
