"""Start and stop the local Firebase stack (`python -m devstack --help`).

The stack: the local demo model (fake OpenRouter, only without a real key), the
Firebase emulators for Functions, Firestore and Auth, seed data, and optionally
the web dev server. Every part runs in its own process group and is torn down,
with all of its descendants, on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

from ._ports import Ports
from ._stack import Stack, StackOptions

__all__ = ["Ports", "Stack", "StackOptions"]
