"""A module of the package as it was at an earlier commit, loaded beside today's, so a
bench can time the old code against the new in one process."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

__all__ = ["module_at"]

ROOT = Path(__file__).resolve().parent.parent


def module_at(rev: str, path: str, name: str) -> types.ModuleType:
    """``path`` (from the repository's root) as it was at ``rev``, run as module ``name``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module
