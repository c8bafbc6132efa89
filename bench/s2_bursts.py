"""How bunched a bench run's chunks were: ``bench`` (the same scenarios, options and JSON),
then, for each scenario's floor and relay, how many other chunks the fake stamped within
half a millisecond of each chunk (uniform phases give about 5 for S2's 100 streams at
20 ms), that count over the run in half-second windows, and the lag's p50 by it; and how
grouped the streams' first chunks were. The relay handles a burst one chunk after another,
so a run's lag follows its bursts.

    functions/venv/bin/python -m bench.s2_bursts --only S2 --out /tmp/s2

See docs/adr/0602-s2-lag-and-the-fake-s-pacing.md.
"""

from __future__ import annotations

import bisect
import statistics
import sys
from collections.abc import Sequence
from typing import Any
from unittest import mock

from . import _run
from ._loadgen import StreamResult
from ._report import percentiles, summarize
from ._scenarios import Scenario

_WINDOW_NS = 500_000


def _near(ordered: list[int], stamp: int) -> int:
    """How many of ``ordered`` lie within ``_WINDOW_NS`` of ``stamp``, itself excluded."""
    return (
        bisect.bisect_right(ordered, stamp + _WINDOW_NS)
        - bisect.bisect_left(ordered, stamp - _WINDOW_NS)
        - 1
    )


def starts(results: Sequence[StreamResult], period_ns: int) -> dict[str, Any]:
    """How grouped the streams' first chunks were: others within ``_WINDOW_NS`` of each,
    in time and in phase (modulo ``period_ns``, the fake's delay): a stamped stream keeps
    its first chunk's phase for the whole run."""
    firsts = sorted(r.arrivals_ns[0] - r.lags_ns[0] for r in results if r.lags_ns)
    if not firsts or period_ns <= 0:
        return {}
    phases = [t % period_ns for t in firsts]
    wrapped = sorted([*phases, *(p + period_ns for p in phases), *(p - period_ns for p in phases)])
    return {
        "starts_near_mean": round(statistics.mean(_near(firsts, t) for t in firsts), 2),
        "phases_near_mean": round(statistics.mean(_near(wrapped, p) for p in phases), 2),
        "starts_spread_ms": round((firsts[-1] - firsts[0]) / 1e6, 1),
    }


def bursts(results: Sequence[StreamResult]) -> dict[str, Any]:
    """For each chunk, the chunks stamped within ``_WINDOW_NS`` of it; their mean over the
    run and per half second, and the lag's percentiles per size of that count."""
    chunks = [
        (arrival - lag, lag)
        for r in results
        for lag, arrival in zip(r.lags_ns, r.arrivals_ns, strict=True)
    ]
    if not chunks:
        return {}
    stamps = sorted(stamp for stamp, _ in chunks)
    start = min(r.start_ns for r in results)
    near: list[int] = []
    by_time: dict[float, list[int]] = {}
    by_size: dict[int, list[float]] = {}
    for stamp, lag in chunks:
        count = _near(stamps, stamp)
        near.append(count)
        by_time.setdefault((stamp - start) // 500_000_000 / 2, []).append(count)
        by_size.setdefault(min(count // 10 * 10, 50), []).append(lag / 1e6)
    return {
        "near_mean": round(statistics.mean(near), 1),
        "near_by_half_second": {
            f"{t:.1f}": round(statistics.mean(v), 1) for t, v in sorted(by_time.items())
        },
        "lag_ms_by_near": {f"{k}+": percentiles(v) for k, v in sorted(by_size.items())},
    }


def main(argv: list[str] | None = None) -> int:
    found: list[dict[str, Any]] = []

    def measured(sc: Scenario, results: Sequence[StreamResult]) -> dict[str, Any]:
        # The bench summarises each scenario's floor, then its relay.
        kind = "relay" if len(found) % 2 else "floor"
        found.append(
            {
                "scenario": sc.key,
                "run": kind,
                **bursts(results),
                **starts(results, round(sc.delay * 1e9)),
            }
        )
        return summarize(sc, results)

    with mock.patch.object(_run, "summarize", measured):
        code = _run.main(argv)
    for run in found:
        sizes = run.get("lag_ms_by_near", {})
        print(
            f"{run['scenario']} {run['run']}: chunks within 0.5 ms of each, mean "
            f"{run.get('near_mean')}; lag p50 by that count: "
            + ", ".join(f"{k} {v['p50']} ms ({v['n']})" for k, v in sizes.items() if v)
        )
        print("  mean by half second: " + str(run.get("near_by_half_second")))
        print(
            f"  first chunks: others within 0.5 ms {run.get('starts_near_mean')}, in phase "
            f"{run.get('phases_near_mean')}, over {run.get('starts_spread_ms')} ms"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
