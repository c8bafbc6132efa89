"""One long SSE line through the decoder: CPU seconds and peak RSS.

Feeds ``data: `` and then SIZE bytes with no line end, in PIECE-byte reads, as a hostile
upstream would send it, then ends the line. With ``--rev`` the decoder is taken from that
commit instead of the working tree (the one before issue 14: a18c582).

    functions/venv/bin/python -m bench.sse_line 40000000
    functions/venv/bin/python -m bench.sse_line 40000000 --rev a18c582
    functions/venv/bin/python -m bench.sse_line 40000000 --limit 1048576
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench._history import module_at

ROOT = Path(__file__).resolve().parent.parent


def _decoder_class(rev: str | None) -> Any:
    if rev is None:
        sys.path.insert(0, str(ROOT / "functions"))
        from promptstream._sse import SSEDecoder

        return SSEDecoder
    return module_at(rev, "functions/promptstream/_sse.py", "old_sse").SSEDecoder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("size", type=int)
    parser.add_argument("--piece", type=int, default=65536)
    parser.add_argument("--rev")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    cls = _decoder_class(args.rev)
    decoder = cls() if args.limit is None else cls(max_line_bytes=args.limit)
    piece = b"x" * args.piece
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    outcome = "decoded"
    try:
        decoder.feed(b"data: ")
        for _ in range(args.size // args.piece):
            decoder.feed(piece)
        events = decoder.feed(b"\n\n")
        outcome = f"decoded {len(events)} event of {len(events[0].data)} chars"
    except ValueError as exc:
        outcome = f"refused: {exc}"
    cpu = time.process_time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"size={args.size} piece={args.piece} rev={args.rev or 'worktree'} "
        f"limit={args.limit}: {outcome}; cpu {cpu:.3f} s; "
        f"peak RSS {peak / 1024:.0f} MB (+{(peak - before) / 1024:.0f} MB)"
    )


if __name__ == "__main__":
    main()
