"""`python -m bench.compare` at its smallest, as a smoke check that the harness works end
to end: every execution of both variants complete, and lags read from the stamps. No
timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import ROOT


def test_compare_bench_runs_both_variants_with_complete_streams(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.compare",
            *("--rounds", "1", "--batch", "1", "--chunks", "5", "--lag-chunks", "5"),
            *("--out", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [path] = tmp_path.glob("compare-*.json")
    report = json.loads(path.read_text())
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
