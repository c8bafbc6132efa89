"""Start and stop the local Firebase stack (`python -m devstack --help`).

The stack: the local demo model (fake OpenRouter, only without a real key), the
Firebase emulators for Functions, Firestore and Auth, seed data, and optionally
the web dev server. Every part runs in its own process group and is torn down,
with all of its descendants, on exit, Ctrl-C or SIGTERM.

The same real parts, one at a time, for the tests and the benchmark: the Firestore
emulator, a function served by functions-framework on gunicorn, and unsigned ID tokens.
"""

from __future__ import annotations

from ._delay import DelayProxy
from ._parts import (
    AuthEmulatorStandIn,
    FirestoreEmulator,
    FunctionServer,
    fake_upstream,
    first_line,
    free_port,
    id_token,
    stop_group,
    wait_http,
)
from ._ports import Ports
from ._seed import firestore_value
from ._stack import Stack, StackOptions, demo_env

__all__ = [
    "AuthEmulatorStandIn",
    "DelayProxy",
    "FirestoreEmulator",
    "FunctionServer",
    "Ports",
    "Stack",
    "StackOptions",
    "demo_env",
    "fake_upstream",
    "firestore_value",
    "first_line",
    "free_port",
    "id_token",
    "stop_group",
    "wait_http",
]
