"""`python -m bench --quick` (with the product and with the skeleton),
`python -m bench.compare` and `python -m bench.opening_floor` at their smallest, as smoke
checks that the harnesses work end to end; and the bench's percentile.

Each starts its own Firestore emulator, fake upstream and function server on free ports.
No timing is asserted (a timed test is no test): only that every scenario ran against
the floor and through the relay, with no errors and every stream complete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import QUICK
from bench._report import percentile
from support import ROOT


def run_bench(module: str, *args: str) -> str:
    """Runs ``python -m module args`` to its end; returns what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1.0, 2.0], 95, 2.0),  # with two runs, p95 is the larger, not the smaller
        ([1.0, 2.0], 50, 1.0),
        ([5.0], 99, 5.0),
        ([float(v) for v in range(1, 101)], 50, 50.0),
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 21)], 95, 19.0),
        ([float(v) for v in range(1, 21)], 100, 20.0),
    ],
)
def test_a_percentile_is_the_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_quick_bench_runs_every_scenario_with_complete_streams(tmp_path: Path) -> None:
    run_bench("bench", "--quick", "--out", str(tmp_path))
    report = json.loads((tmp_path / "quick-latest.json").read_text())

    assert report["mode"] == "quick"
    # A smoke run's emulator is not starved by the rest of a busy suite.
    assert report["firestore_emulator_priority"] == {}
    assert list(report["scenarios"]) == [sc.key for sc in QUICK]
    for sc in QUICK:
        result = report["scenarios"][sc.key]
        for run in ("floor", "relay"):
            r = result[run]
            where = f"{sc.key} {run}: {r['error_samples']}"
            assert r["errors"] == 0, where
            assert r["streams"] == sc.streams, where
            assert r["complete"] == sc.streams, where
            assert r["chunks"] == sc.expected_chunks * sc.streams, where
            # One lag per chunk, one TTFB per stream: the stamps were read, not guessed.
            assert r["lag_ms"]["n"] == r["chunks"], where
            assert r["ttfb_ms"]["n"] == sc.streams, where
            assert r["upstream"]["requests"] == sc.streams, where
        relay = result["relay"]
        # Read in clock ticks: a scenario this small may spend less than one.
        assert relay["relay_cpu_s"] >= 0
        assert relay["relay_peak_rss_mb"] > 0
        assert relay["relay_processes"] >= 2  # the functions-framework master and its worker
        if sc.close_after is not None:
            for run in ("floor", "relay"):
                close = result[run]["close"]
                assert close["clients_left"] == sc.streams
                assert close["upstream_closes"] == sc.streams, f"{sc.key} {run}: {close}"
    assert sum(report["scenarios"][sc.key]["relay"]["relay_cpu_s"] for sc in QUICK) > 0
    assert {t["scenario"] for t in report["targets"]} == {"S1", "S2", "S3", "S4", "S5", "S6"}


def test_a_delayed_firestore_and_a_slow_first_token_are_applied_and_recorded(
    tmp_path: Path,
) -> None:
    run_bench(
        "bench", "--quick", "--only", "S1", "--firestore-delay", "5", "--first-token", "50",
        "--out", str(tmp_path),
    )  # fmt: skip
    report = json.loads((tmp_path / "quick-latest.json").read_text())

    latency = report["latency"]
    assert (latency["firestore_delay_ms"], latency["first_token_ms"]) == (5, 50)
    trips = latency["firestore_round_trip_ms"]
    # Lower bounds only: the proxy adds 5 ms each way, the fake waits 50 ms for both runs.
    assert trips["through_delay"]["p50"] >= 10
    s1 = report["scenarios"]["S1"]
    for run in ("floor", "relay"):
        assert s1[run]["errors"] == 0, s1[run]["error_samples"]
        assert s1[run]["ttfb_ms"]["p50"] >= 50
    assert s1["relay"]["cpu_s"]["delay_proxy"] >= 0  # the proxy's CPU is metered apart


def test_the_skeleton_serves_in_the_products_place_with_complete_streams(
    tmp_path: Path,
) -> None:
    run_bench("bench", "--quick", "--only", "S1,S2", "--skeleton", "--out", str(tmp_path))
    report = json.loads((tmp_path / "quick-latest.json").read_text())

    assert (report["skeleton"], report["function_target"]) == (True, "floor")
    for key in ("S1", "S2"):
        relay = report["scenarios"][key]["relay"]
        streams = report["scenarios"][key]["streams"]
        assert relay["errors"] == 0, relay["error_samples"]
        assert relay["complete"] == streams
        assert relay["upstream"]["requests"] == streams


def test_the_opening_floor_measures_every_shape_and_the_product() -> None:
    printed = run_bench("bench.opening_floor", "--executions", "5", "--rounds", "1")
    measured = [line.split()[2:-2] for line in printed.splitlines() if line.startswith("round 1:")]
    assert [" ".join(words) for words in measured] == [
        "server", "+ token", "+ Firestore", "+ upstream", "product",
    ]  # fmt: skip


def test_compare_bench_runs_both_variants_with_complete_streams(tmp_path: Path) -> None:
    args = ("--rounds", "1", "--batch", "1", "--chunks", "5", "--lag-chunks", "5")
    run_bench("bench.compare", *args, "--smoke", "--out", str(tmp_path))
    [path] = tmp_path.glob("compare-*.json")
    report: dict[str, Any] = json.loads(path.read_text())
    [entry] = report["rounds"]
    for variant in ("comparison", "single"):
        cpu = entry["cpu"][variant]
        assert (cpu["executions"], cpu["complete"], cpu["errors"]) == (4, 4, 0), cpu
        assert cpu["relay_cpu_s"] >= 0
        lag = entry["lag"][variant]
        assert lag["errors"] == 0, lag["error_samples"]
        streams = 4 if variant == "comparison" else 1
        assert lag["relay_lag_ms"]["n"] == lag["floor_lag_ms"]["n"] == 5 * streams
    assert report["summary"]["errors"] == 0
