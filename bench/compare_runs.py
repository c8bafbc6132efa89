"""Two runs of ``python -m bench`` side by side: targets, the main figures of every
scenario both ran, and how busy the machine was during each.

    functions/venv/bin/python -m bench.compare_runs A.json B.json

"B - A" is the second run minus the first. A scenario whose ``other`` CPU (processes
outside the bench) or steal (the hypervisor's) was large is flagged: its time to first
byte and lag say more about the machine than about the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._report import latency_line

# (label, path from the scenario's result): the figures bench/README.md explains.
MEASURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("added TTFB p50 ms", ("added", "ttfb_ms", "p50")),
    ("added TTFB p99 ms", ("added", "ttfb_ms", "p99")),
    ("added lag p50 ms", ("added", "lag_ms", "p50")),
    ("added lag p99 ms", ("added", "lag_ms", "p99")),
    ("relay complete", ("relay", "complete")),
    ("relay errors", ("relay", "errors")),
    ("relay CPU s", ("relay", "relay_cpu_s")),
    ("relay CPU µs/chunk", ("relay", "relay_cpu_us_per_chunk")),
    ("relay CPU ms/execution", ("relay", "relay_cpu_ms_per_execution")),
    ("relay peak RSS MB", ("relay", "relay_peak_rss_mb")),
    ("relay at rest PSS MB", ("relay", "relay_rest_mb")),
    ("upstream closed worst ms", ("relay", "close", "bound_ms")),
    ("other CPU s (relay run)", ("relay", "cpu_s", "other")),
    ("steal share (relay run)", ("relay", "cpu_s", "steal_share")),
)
# Above these, a scenario's run is flagged as taken on a busy machine.
BUSY_OTHER_S = 1.0
BUSY_STEAL_SHARE = 0.05


def _get(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _delta(a: Any, b: Any) -> str:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        diff = b - a
        text = f"{diff:+.3g}" if abs(diff) < 10 else f"{diff:+.1f}"
        return f"{text} ({diff / a:+.0%})" if a else text
    return ""


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _latency_of(run: Mapping[str, Any]) -> tuple[float, float]:
    latency = run.get("latency") or {}
    return (latency.get("firestore_delay_ms") or 0, latency.get("first_token_ms") or 0)


def _busy(scenario: Mapping[str, Any]) -> bool:
    other = _get(scenario, ("relay", "cpu_s", "other")) or 0
    steal = _get(scenario, ("relay", "cpu_s", "steal_share")) or 0
    return other > BUSY_OTHER_S or steal > BUSY_STEAL_SHARE


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """The comparison as text (what ``main`` prints)."""
    out = []
    for name, run in (("A", a), ("B", b)):
        machine = run.get("machine") or {}
        out.append(
            f"{name}: {run.get('started_at', '?')}  {run.get('command', '?')}\n"
            f"   {machine.get('nproc', '?')} CPUs, {machine.get('cpu', '?')}, "
            f"Python {machine.get('python', '?')}, load at start {machine.get('loadavg_at_start', '?')}\n"
            f"   {latency_line(run)}"
        )
    if a.get("machine", {}).get("nproc") != b.get("machine", {}).get("nproc"):
        out.append("!! the two runs were taken on machines with different CPU counts")
    if _latency_of(a) != _latency_of(b):
        out.append("!! the two runs added different latencies: compare their TTFB with care")

    targets_b = {(t["scenario"], t["target"]): t for t in b.get("targets") or []}
    rows = [["scenario", "target", "A", "B", "B - A"]]
    for t in a.get("targets") or []:
        other = targets_b.get((t["scenario"], t["target"]))
        if other is None:
            continue
        rows.append(
            [
                t["scenario"],
                t["target"],
                _fmt(t["value"]) + ("" if t["passed"] else " miss"),
                _fmt(other["value"]) + ("" if other["passed"] else " miss"),
                _delta(t["value"], other["value"]),
            ]
        )
    if len(rows) > 1:
        out.append("\nTargets\n" + _table(rows))

    scenarios_a, scenarios_b = a.get("scenarios") or {}, b.get("scenarios") or {}
    for key in sorted(set(scenarios_a) & set(scenarios_b)):
        sa, sb = scenarios_a[key], scenarios_b[key]
        rows = [["measure", "A", "B", "B - A"]]
        for label, path in MEASURES:
            va, vb = _get(sa, path), _get(sb, path)
            if va is None and vb is None:
                continue
            rows.append([label, _fmt(va), _fmt(vb), _delta(va, vb)])
        flags = [name for name, s in (("A", sa), ("B", sb)) if _busy(s)]
        note = f"  !! busy machine during {' and '.join(flags)}'s run" if flags else ""
        out.append(f"\n{key}: {sa.get('load', sa.get('title', ''))}{note}\n" + _table(rows))
    only = sorted(set(scenarios_a) ^ set(scenarios_b))
    if only:
        out.append(f"\nIn one run only: {', '.join(only)}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare_runs", description=__doc__.splitlines()[0]
    )
    parser.add_argument("a", type=Path, help="the first run's JSON (say, the older commit's)")
    parser.add_argument("b", type=Path, help="the second run's JSON")
    args = parser.parse_args(argv)
    runs = []
    for path in (args.a, args.b):
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"compare_runs: cannot read {path}: {exc}", file=sys.stderr)
            return 2
    print(compare(runs[0], runs[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
