"""The costs behind ADR 0307: the chunker on a hostile heading line, and reading a PDF in
a limited child process against reading it in this one.

    functions/venv/bin/python -m bench.cpu_bounds

Prints, for a heading line of N blanks, the seconds of the working tree's chunker and of
the one before issue 22 (37e8c84); for a one-page and a 200-page PDF, the median seconds
of ``pdf_text`` in-process and through ``PdfSandbox`` (11 runs each) and the child's peak
RSS; the same one-page file through a multiprocessing forkserver with pypdf preloaded;
and the median seconds to start a child from a parent holding 300 MB, with and
without a ``preexec_fn`` (which makes CPython fork instead of vfork).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "tests")]

from bench._forkjob import read  # noqa: E402
from bench._history import module_at  # noqa: E402
from promptstream.knowledge._chunking import split_passages  # noqa: E402
from promptstream.knowledge._pdfchild import pdf_text  # noqa: E402
from promptstream.knowledge._pdfsandbox import PdfSandbox  # noqa: E402
from support.pdf import make_pdf  # noqa: E402

_BEFORE = "37e8c84"


def _old_chunker() -> types.ModuleType:
    # Before the move into layers the chunker sat at the package's top.
    return module_at(_BEFORE, "functions/promptstream/_chunking.py", "old_chunking")


def _seconds(call: object, runs: int = 11) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def chunker() -> None:
    old = _old_chunker()
    for blanks in (2_000, 4_000, 8_000, 500_000):
        line = "# a" + " " * blanks + "b"
        new = _seconds(lambda line=line: split_passages(line), runs=3)
        before = (
            f"{_seconds(lambda line=line: old.split_passages(line), runs=1):.3f} s"
            if blanks <= 8_000
            else "(not run)"
        )
        print(f"heading + {blanks:>7} blanks: now {new * 1e3:.3f} ms, before {before}")


def pdfs() -> None:
    sandbox = PdfSandbox()
    one = make_pdf(["Opening hours are nine to five."])
    many = make_pdf([f"Page {i}: the delivery charge is four pounds." for i in range(200)])
    for name, data in (("1 page", one), ("200 pages", many)):
        here = _seconds(lambda data=data: pdf_text(data, max_pages=200, max_chars=500_000))

        def child(data: bytes = data) -> None:
            asyncio.run(sandbox.text(data, max_pages=200, max_chars=500_000))

        there = _seconds(child)
        print(f"{name}: in-process {here * 1e3:.1f} ms, child {there * 1e3:.1f} ms")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"child peak RSS: {peak:.0f} MB")


def forkserver() -> None:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pypdf", "bench._forkjob"])
    one = make_pdf(["Opening hours are nine to five."])

    def run() -> None:
        here, there = context.Pipe()
        process = context.Process(target=read, args=(one, there))
        process.start()
        here.recv()
        process.join()

    run()  # starts the fork server
    print(f"1 page through a forkserver (pypdf preloaded): {_seconds(run) * 1e3:.1f} ms")


def spawning() -> None:
    ballast = bytearray(300 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # touched: resident, as a busy worker's heap is
    command = [sys.executable, "-c", "pass"]
    plain = _seconds(lambda: subprocess.run(command, check=True))
    hooked = _seconds(lambda: subprocess.run(command, check=True, preexec_fn=lambda: None))
    print(f"start a child from a 300 MB parent: {plain * 1e3:.1f} ms plain (vfork),")
    print(f"  {hooked * 1e3:.1f} ms with a preexec_fn (fork)")
    del ballast


if __name__ == "__main__":
    chunker()
    pdfs()
    forkserver()
    spawning()
