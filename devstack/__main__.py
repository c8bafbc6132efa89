"""`python -m devstack up | exec | curl | token | record`: the local stack from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from types import FrameType

from . import _seed
from ._firebase import PROJECT_ID
from ._ports import Ports
from ._procs import StackError
from ._stack import WEB, Stack, StackOptions, run_exec


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT/SIGHUP."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _install_signal_handlers() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def _ignore_signals() -> None:
    # Teardown must finish even if the user presses Ctrl-C again.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _add_port_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="use free ports instead of README's fixed ones (test stacks)",
    )
    for f in dataclasses.fields(Ports):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}-port",
            dest=f"port_{f.name}",
            type=int,
            metavar="PORT",
            help=f"default {f.default}",
        )


def _ports(args: argparse.Namespace) -> Ports:
    base = Ports.free() if args.free_ports else Ports()
    overrides = {
        f.name: getattr(args, f"port_{f.name}")
        for f in dataclasses.fields(Ports)
        if getattr(args, f"port_{f.name}") is not None
    }
    return dataclasses.replace(base, **overrides)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the stack in the foreground until Ctrl-C")
    up.add_argument(
        "--web",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve the web app too (default: if web/node_modules exists)",
    )
    _add_port_args(up)

    ex = sub.add_parser(
        "exec",
        help="start a stack, run a command against it (env: VITE_*, E2E_*), stop it",
    )
    ex.add_argument(
        "--only",
        default="firestore,auth,functions",
        help="comma list of firestore, auth, functions, web (default: the first three)",
    )
    ex.add_argument("--no-seed", action="store_true", help="skip the demo user and prompts")
    ex.add_argument("--echo", action="store_true", help="echo the stack's output")
    _add_port_args(ex)
    ex.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")

    curl = sub.add_parser("curl", help="print a curl line with a fresh ID token (running stack)")
    _add_port_args(curl)
    token = sub.add_parser(
        "token", help="print only a fresh ID token of the demo user (running stack)"
    )
    _add_port_args(token)
    record = sub.add_parser(
        "record", help="print an execution record as JSON, the newest without an id (running stack)"
    )
    record.add_argument("execution_id", nargs="?", help="the id the start and end events name")
    _add_port_args(record)
    return parser


def _up(args: argparse.Namespace) -> int:
    web = args.web if args.web is not None else (WEB / "node_modules").exists()
    stack = Stack(StackOptions(ports=_ports(args), web=web))
    try:
        stack.up()
        print(stack.banner(), flush=True)
        while True:
            stack.check_alive()
            time.sleep(0.5)
    except _Stop as stop:
        print(f"\n[devstack] {stop}: stopping ...", flush=True)
        return 0
    except StackError as exc:
        print(f"\n[devstack] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        _ignore_signals()
        survivors = stack.down()
        if survivors:
            print(f"[devstack] WARNING: still running: pids {survivors}", flush=True)
        else:
            print("[devstack] stopped: no process of the stack is left.", flush=True)


def _exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("devstack exec: give a command after --", file=sys.stderr)
        return 2
    args.free_ports = True  # test stacks never take the fixed dev ports
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - {"firestore", "auth", "functions", "web"}
    if unknown:
        print(f"devstack exec: unknown parts {sorted(unknown)}", file=sys.stderr)
        return 2
    stack = Stack(
        StackOptions(
            ports=_ports(args),
            auth="auth" in parts or "functions" in parts or "web" in parts,
            functions="functions" in parts or "web" in parts,
            web="web" in parts,
            seed=not args.no_seed,
            echo=args.echo,
            isolated=True,
            force_demo_model=True,
        )
    )
    try:
        return run_exec(stack, argv)
    except _Stop as stop:
        print(f"[devstack] {stop}: stopped", file=sys.stderr)
        return 130
    except StackError as exc:
        print(f"[devstack] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        _ignore_signals()
        stack.down()


def _curl(args: argparse.Namespace) -> int:
    stack = Stack(StackOptions(ports=_ports(args)))
    stack.demo_model = False
    print(stack.curl_line())
    return 0


def _token(args: argparse.Namespace) -> int:
    host = f"127.0.0.1:{_ports(args).auth}"
    try:
        token = _seed.sign_in(host)
    except (RuntimeError, OSError) as exc:
        print(
            f"devstack token: no sign-in at the Auth emulator {host} ({exc}); is scripts/dev "
            "running?",
            file=sys.stderr,
        )
        return 1
    print(token)
    return 0


def _record(args: argparse.Namespace) -> int:
    host = f"127.0.0.1:{_ports(args).firestore}"
    try:
        record = _seed.execution_record(host, PROJECT_ID, args.execution_id)
    except OSError as exc:
        print(
            f"devstack record: no Firestore emulator at {host} ({exc}); is scripts/dev running?",
            file=sys.stderr,
        )
        return 1
    except RuntimeError as exc:
        print(f"devstack record: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=2, ensure_ascii=False, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _install_signal_handlers()
    commands = {"up": _up, "exec": _exec, "curl": _curl, "token": _token, "record": _record}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
