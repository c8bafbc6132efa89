"""Numbers out of stream results, and the table printed at the end."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._loadgen import StreamResult
from ._scenarios import Scenario

__all__ = [
    "added",
    "close_latency",
    "latency_line",
    "percentile",
    "percentiles",
    "summarize",
    "table",
]


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100, nearest rank) of values sorted ascending."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def percentiles(values: Sequence[float] | Iterable[float]) -> dict[str, float] | None:
    """p50/p90/p99/max (nearest rank) and the mean, or None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return {
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
        "n": len(ordered),
    }


def summarize(scenario: Scenario, results: Sequence[StreamResult]) -> dict[str, Any]:
    """Errors, completeness, TTFB, lag and throughput of one run."""
    errors = [r.error for r in results if r.error]
    expected = scenario.expected_chunks
    if scenario.close_after is not None:
        complete = sum(1 for r in results if not r.error and r.close_ns and r.chunks == expected)
    else:
        complete = sum(
            1
            for r in results
            if not r.error and r.done and r.chunks == expected and r.finish_reason == "stop"
        )
    lags = [lag / 1e6 for r in results for lag in r.lags_ns]
    # Chunks that arrived once every stream had started: the relay's steady state,
    # without the ramp where up to 1,000 requests are checked at once.
    ramp_end = max((r.first_ns for r in results), default=0)
    steady = [
        lag / 1e6
        for r in results
        for lag, at in zip(r.lags_ns, r.arrivals_ns, strict=True)
        if at > ramp_end
    ]
    ttfbs = [t / 1e6 for r in results if (t := r.ttfb_ns) is not None]
    chunks = sum(r.chunks for r in results)
    start = min((r.start_ns for r in results), default=0)
    end = max((r.end_ns for r in results), default=0)
    wall = (end - start) / 1e9
    samples: list[str] = []
    for err in errors:
        if err not in samples:
            samples.append(err)
        if len(samples) >= 5:
            break
    return {
        "streams": len(results),
        "errors": len(errors),
        "error_samples": samples,
        "complete": complete,
        "chunks": chunks,
        "expected_chunks": expected * len(results),
        "wall_s": round(wall, 3),
        "chunks_per_s": round(chunks / wall, 1) if wall > 0 else None,
        "ttfb_ms": percentiles(ttfbs),
        "lag_ms": percentiles(lags),
        "steady_lag_ms": percentiles(steady),
    }


def close_latency(
    results: Sequence[StreamResult], upstream_close_ns: Sequence[int]
) -> dict[str, Any]:
    """How long after the clients left the upstream saw its connections close.

    The fake records when it saw each close but not whose it was, so two numbers:
    ``bound_ms`` (latest upstream close minus earliest client close) is an upper bound
    on every stream's delay; ``paired_ms`` pairs both lists in time order.
    """
    client = sorted(r.close_ns for r in results if r.close_ns)
    upstream = sorted(upstream_close_ns)
    out: dict[str, Any] = {
        "clients_left": len(client),
        "upstream_closes": len(upstream),
        "not_closed": max(0, len(client) - len(upstream)),
        "bound_ms": None,
        "paired_ms": None,
        "client_spread_ms": round((client[-1] - client[0]) / 1e6, 3) if client else None,
    }
    if client and upstream:
        out["bound_ms"] = round((upstream[-1] - client[0]) / 1e6, 3)
        pairs = [(u - c) / 1e6 for c, u in zip(client, upstream, strict=False)]
        out["paired_ms"] = percentiles(pairs)
    return out


def _diff(
    relay: dict[str, float] | None, floor: dict[str, float] | None
) -> dict[str, float] | None:
    if relay is None or floor is None:
        return None
    return {k: round(relay[k] - floor[k], 3) for k in ("p50", "p90", "p99", "max", "mean")}


def added(floor: dict[str, Any], relay: dict[str, Any]) -> dict[str, Any]:
    """What the relay adds over the floor, percentile by percentile."""
    return {
        "lag_ms": _diff(relay.get("lag_ms"), floor.get("lag_ms")),
        "ttfb_ms": _diff(relay.get("ttfb_ms"), floor.get("ttfb_ms")),
        "steady_lag_ms": _diff(relay.get("steady_lag_ms"), floor.get("steady_lag_ms")),
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(stats: dict[str, Any] | None, key: str, digits: int = 1) -> str:
    return _fmt(None if not stats else stats.get(key), digits)


def latency_line(report: Mapping[str, Any]) -> str:
    """The latency the run added to loopback (bench --realistic), and the Firestore round
    trip it measured straight and through the delay; runs from before the option had none."""
    latency = report.get("latency") or {}
    delay = latency.get("firestore_delay_ms") or 0
    first = latency.get("first_token_ms") or 0
    preset = f" (--{latency['preset']})" if latency.get("preset") else ""
    text = f"latency: Firestore +{delay:g} ms each way, first token {first:g} ms{preset}"
    trips = latency.get("firestore_round_trip_ms") or {}
    measured = [
        f"{name.replace('_', ' ')} p50 {_pct(trips.get(name), 'p50', 2)} ms"
        for name in ("direct", "through_delay")
        if trips.get(name)
    ]
    if measured:
        text += "; a Firestore round trip measured " + ", ".join(measured)
    return text


# Steal above this share of the cores during a scenario makes its timings unreliable.
STEAL_WARNING = 0.05


def table(report: dict[str, Any]) -> str:
    """The results as a fixed-width table, one row per run plus the difference."""
    head = (
        "scen",
        "run",
        "err",
        "complete",
        "TTFB p50",
        "lag p50",
        "lag p99",
        "lag max",
        "chunks/s",
        "relay CPU s",
        "µs/chunk",
        "ms/exec",
        "rest MB",
        "RSS MB",
        "FS CPU s",
        "other CPU s",
        "steal s",
    )
    rows: list[tuple[str, ...]] = [head]
    for key, sc in report["scenarios"].items():
        for run in ("floor", "relay"):
            r = sc[run]
            rows.append(
                (
                    key,
                    run,
                    _fmt(r["errors"]),
                    f"{r['complete']}/{r['streams']}",
                    _pct(r["ttfb_ms"], "p50", 2),
                    _pct(r["lag_ms"], "p50", 2),
                    _pct(r["lag_ms"], "p99", 2),
                    _pct(r["lag_ms"], "max", 1),
                    _fmt(r["chunks_per_s"], 0),
                    _fmt(r.get("relay_cpu_s"), 2),
                    _fmt(r.get("relay_cpu_us_per_chunk"), 1),
                    _fmt(r.get("relay_cpu_ms_per_execution"), 2),
                    _fmt(r.get("relay_rest_mb"), 0),
                    _fmt(r.get("relay_peak_rss_mb"), 0),
                    _fmt(r["cpu_s"].get("firestore"), 2),
                    _fmt(r["cpu_s"].get("other"), 1),
                    _fmt(r["cpu_s"].get("steal"), 1),
                )
            )
        add = sc["added"]
        rows.append(
            (
                key,
                "added",
                "",
                "",
                _pct(add["ttfb_ms"], "p50", 2),
                _pct(add["lag_ms"], "p50", 2),
                _pct(add["lag_ms"], "p99", 2),
                _pct(add["lag_ms"], "max", 1),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    lines.append("")
    lines.append("loads: " + "; ".join(f"{k} {v['load']}" for k, v in report["scenarios"].items()))
    lines.append(
        "times in ms; 'added' = relay minus floor at the same percentile; "
        "'other CPU s' = used by processes outside the bench while the run lasted; "
        "'steal s' = core time the hypervisor gave to other machines during the run"
    )
    priority = report.get("firestore_emulator_priority")
    if priority:
        group = ", its autogroup too" if priority.get("autogroup") else ""
        lines.append(
            f"Firestore emulator at nice {priority.get('nice')}{group} "
            "(a stand-in for a remote service: it gets the cores nothing else wants)"
        )
    lines.append(latency_line(report))
    extra = []
    for key, sc in report["scenarios"].items():
        relay = sc["relay"]
        if relay.get("close"):
            c = relay["close"]
            paired = c["paired_ms"] or {}
            extra.append(
                f"{key}: upstream saw {c['upstream_closes']}/{c['clients_left']} closes; "
                f"worst-case bound {_fmt(c['bound_ms'], 1)} ms, "
                f"time-ordered pairs p50 {_fmt(paired.get('p50'), 1)} / "
                f"max {_fmt(paired.get('max'), 1)} ms "
                f"(floor bound {_fmt((sc['floor'].get('close') or {}).get('bound_ms'), 1)} ms)"
            )
        up = relay.get("upstream") or {}
        if key == "S6" or (report.get("mode") == "quick" and key == "S6"):
            extra.append(
                f"{key}: upstream connections opened by the relay: "
                f"{up.get('connections_opened')} for {up.get('requests')} requests"
            )
    lines += extra
    if report.get("targets"):
        lines.append("")
        lines.append("targets:")
        for t in report["targets"]:
            mark = "PASS" if t["passed"] else "MISS"
            value = "-" if t["value"] is None else f"{t['value']:,.3g}"
            line = f"  {mark}  {t['scenario']}  {t['target']}: measured {value} {t['unit']}"
            steal = t.get("host_steal_share") or 0.0
            if steal > STEAL_WARNING:
                line += f"  (the host took {steal:.0%} of the cores meanwhile: rerun)"
            lines.append(line.rstrip())
    return "\n".join(lines)
