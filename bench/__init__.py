"""The benchmark: what the relay adds to every chunk, how many streams one instance holds,
and what it costs in CPU and memory, measured side by side with the upstream floor.

Run ``functions/venv/bin/python -m bench`` (or ``bench/run``) from the repo root;
``--quick`` runs tiny versions of every scenario.
"""

from __future__ import annotations

from ._run import main
from ._scenarios import FULL, QUICK, TARGETS, Scenario

__all__ = ["FULL", "QUICK", "TARGETS", "Scenario", "main"]
