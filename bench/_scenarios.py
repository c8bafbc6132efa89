"""The scenarios, full size and ``--quick``, and the targets they are held to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FULL", "QUICK", "TARGETS", "Scenario", "Target"]


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    streams: int
    chunks: int
    delay: float
    sequential: bool = False
    # Clients leave after this many content chunks (S5).
    close_after: int | None = None
    # Seconds the upstream takes to its first chunk (bench --first-token), floor and relay.
    first_token: float = 0.0

    @property
    def directive(self) -> str:
        """The fake's knobs for this load, carried in the prompt text."""
        first = f" first_chunk_delay={self.first_token:g}" if self.first_token else ""
        return f"[[fake chunks={self.chunks} delay={self.delay:g}{first}]]"

    @property
    def expected_chunks(self) -> int:
        return self.close_after if self.close_after is not None else self.chunks

    @property
    def load(self) -> str:
        mode = "sequential" if self.sequential else "concurrent"
        text = f"{self.streams} {mode} x {self.chunks} @ {self.delay * 1000:g} ms"
        if self.close_after is not None:
            text += f", leave after {self.close_after}"
        return text

    def timeout(self) -> float:
        """Per-stream bound: generous against the ideal duration, never endless."""
        ideal = self.first_token + self.chunks * max(self.delay, 0.001)
        return min(300.0, 60.0 + 4 * ideal)


FULL: tuple[Scenario, ...] = (
    Scenario("S1", "one stream", 1, 200, 0.02),
    Scenario("S2", "100 concurrent", 100, 200, 0.02),
    Scenario("S3", "1,000 concurrent (Cloud Run's per-instance ceiling)", 1000, 100, 0.05),
    Scenario("S4", "no delay: CPU per chunk", 20, 5000, 0.0),
    # Long streams, so a relay that never closes the upstream is plain to see.
    Scenario("S5", "clients leave after 5 chunks", 100, 500, 0.02, close_after=5),
    Scenario("S6", "sequential executions on one instance", 50, 10, 0.01, sequential=True),
)

QUICK: tuple[Scenario, ...] = (
    Scenario("S1", "one stream", 1, 20, 0.005),
    Scenario("S2", "concurrent", 10, 20, 0.005),
    Scenario("S3", "many concurrent", 40, 10, 0.01),
    Scenario("S4", "no delay: CPU per chunk", 3, 300, 0.0),
    # An upstream far longer than the clients stay: when an opening's commit stalls for
    # seconds (ADR 1000 holds the first byte for it), the upstream must not end first.
    Scenario("S5", "clients leave after 5 chunks", 8, 2000, 0.01, close_after=5),
    Scenario("S6", "sequential executions on one instance", 5, 5, 0.005, sequential=True),
)


@dataclass(frozen=True, slots=True)
class Target:
    scenario: str
    name: str
    limit: float
    unit: str
    # Reads the measured value out of the scenario's result dict; None = not measured.
    value: Callable[[dict[str, Any]], float | None]
    # "max": value must be <= limit; "eq": value must equal limit.
    kind: str = "max"

    def check(self, result: dict[str, Any]) -> dict[str, Any]:
        value = self.value(result)
        if value is None:
            passed = False
        elif self.kind == "eq":
            passed = value == self.limit
        else:
            passed = value <= self.limit
        op = "=" if self.kind == "eq" else "<="
        # How much of the cores the hypervisor took away in the worse of the two runs:
        # past a few percent, a timing is the host's as much as ours.
        steal = max(
            float(((result.get(run) or {}).get("cpu_s") or {}).get("steal_share") or 0.0)
            for run in ("floor", "relay")
        )
        return {
            "scenario": self.scenario,
            "target": f"{self.name} {op} {self.limit:g} {self.unit}".strip(),
            "value": value,
            "unit": self.unit,
            "passed": passed,
            "host_steal_share": round(steal, 3),
        }


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(result: dict[str, Any]) -> float | None:
        node: Any = result
        for key in path:
            if not isinstance(node, dict) or node.get(key) is None:
                return None
            node = node[key]
        return float(node)

    return read


def _all_complete(result: dict[str, Any]) -> float | None:
    relay = result.get("relay") or {}
    return float(relay.get("streams", 0) - relay.get("complete", 0) + relay.get("errors", 0))


# The floors of issue 13 (the relay on the native async path).
TARGETS: tuple[Target, ...] = (
    Target("S1", "added TTFB p50", 5, "ms", _get("added", "ttfb_ms", "p50")),
    Target("S1", "relay memory at rest (PSS)", 100, "MB", _get("relay", "relay_rest_mb")),
    Target("S2", "added lag p50", 1, "ms", _get("added", "lag_ms", "p50")),
    Target("S2", "added lag p99", 3, "ms", _get("added", "lag_ms", "p99")),
    Target("S2", "added TTFB p50", 204, "ms", _get("added", "ttfb_ms", "p50")),
    Target("S3", "errors + incomplete streams", 0, "", _all_complete, kind="eq"),
    Target("S3", "relay peak RSS", 200, "MB", _get("relay", "relay_peak_rss_mb")),
    Target("S4", "relay CPU per chunk", 15, "µs", _get("relay", "relay_cpu_us_per_chunk")),
    Target(
        "S5",
        "upstream closed after client left (worst)",
        50,
        "ms",
        _get("relay", "close", "bound_ms"),
    ),
    Target(
        "S5",
        "streams whose upstream never closed",
        0,
        "",
        _get("relay", "close", "not_closed"),
        kind="eq",
    ),
    Target(
        "S6",
        "relay CPU per execution",
        2,
        "ms",
        _get("relay", "relay_cpu_ms_per_execution"),
    ),
    Target(
        "S6",
        "upstream connections opened",
        1,
        "",
        _get("relay", "upstream", "connections_opened"),
        kind="eq",
    ),
)
