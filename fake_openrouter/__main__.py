"""`python -m fake_openrouter`: serve the fake until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from ._knobs import KNOB_NAMES, KnobError, coerce_knobs
from ._server import FakeState, start_site


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fake_openrouter",
        description=(
            "A local OpenRouter look-alike (chat completions, streaming and not). "
            "Prints 'fake-openrouter listening on http://HOST:PORT/api/v1' when ready."
        ),
        epilog="Knobs: " + ", ".join(KNOB_NAMES),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788, help="0 picks a free port (default 8788)")
    parser.add_argument(
        "--api-key", default=None, help="accept only this bearer key (default: any)"
    )
    parser.add_argument("--delay", type=float, help="seconds between chunks (default 0.02)")
    parser.add_argument(
        "--chunks", type=int, help="content chunks per answer; 0 = one per word (default 8)"
    )
    parser.add_argument(
        "--first-chunk-delay", type=float, help="seconds from headers to the first chunk"
    )
    parser.add_argument(
        "--comment-every", type=float, help="keep-alive comment interval while silent"
    )
    parser.add_argument("--reasoning", type=int, help="reasoning chunks before the content")
    parser.add_argument("--provider", help="provider name in the chunks")
    parser.add_argument("--text", help="the content to stream instead of the demo text")
    parser.add_argument(
        "--unicode", action="store_true", default=None, help="add multi-byte text to the demo text"
    )
    parser.add_argument(
        "--set",
        dest="knobs",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="any other default knob (repeatable)",
    )
    return parser


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    for name in (
        "delay",
        "chunks",
        "first_chunk_delay",
        "comment_every",
        "reasoning",
        "provider",
        "text",
        "unicode",
    ):
        value = getattr(args, name)
        if value is not None:
            knobs[name] = value
    for item in args.knobs:
        name, sep, value = item.partition("=")
        if not sep:
            raise KnobError(f"--set {item!r} is not KNOB=VALUE")
        knobs[name] = value
    return coerce_knobs(knobs)


def _raise_fd_limit() -> None:
    # Each stream holds a socket; 1,000+ concurrent streams need more than 1024.
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard)
            )
    except (ImportError, ValueError, OSError):
        pass


async def _serve(state: FakeState, host: str, port: int) -> None:
    runner, bound = await start_site(state, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake-openrouter listening on http://{host}:{bound}/api/v1", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        defaults = _defaults(args)
    except KnobError as exc:
        print(f"fake-openrouter: {exc}", file=sys.stderr)
        return 2
    _raise_fd_limit()
    asyncio.run(_serve(FakeState(defaults, api_key=args.api_key), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
