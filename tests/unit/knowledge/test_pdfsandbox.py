"""PDFs read in a limited child process: the text as in-process, each limit answering
``too_complex``, the bound on children at once answering ``busy``, and no child left."""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import time
from pathlib import Path

import pytest

from promptstream._errors import DocumentReason
from promptstream.knowledge import _pdfchild
from promptstream.knowledge._documents import DocumentError, extract_text
from promptstream.knowledge._pdfsandbox import PdfLimits, PdfSandbox
from support.pdf import make_bomb_pdf, make_form_bomb_pdf, make_pdf

PAGES = ["Opening hours are nine to five.", "Deliveries beyond three kilometres cost four pounds."]


def read(sandbox: PdfSandbox, data: bytes) -> tuple[str, int]:
    return asyncio.run(sandbox.text(data, max_pages=200, max_chars=500_000))


def refusal(sandbox: PdfSandbox, data: bytes) -> DocumentReason:
    with pytest.raises(DocumentError) as caught:
        read(sandbox, data)
    return caught.value.code


def children() -> list[str]:
    """The pids of this process's live children, from /proc."""
    found: list[str] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found += (task / "children").read_text().split()
    return found


def test_a_pdf_reads_as_it_does_in_process() -> None:
    data = make_pdf(PAGES)
    text, pages = read(PdfSandbox(), data)
    assert (text, pages) == (extract_text(data).text, 2)


def test_refusals_keep_their_codes() -> None:
    assert refusal(PdfSandbox(), b"%PDF-1.4 not really") is DocumentReason.CORRUPT_PDF
    many = make_pdf(["x"] * 3)
    with pytest.raises(DocumentError) as caught:
        asyncio.run(PdfSandbox().text(many, max_pages=2, max_chars=100))
    assert caught.value.code is DocumentReason.TOO_MANY_PAGES


def test_every_code_the_child_answers_is_a_document_reason() -> None:
    # The child imports nothing of the package, so its codes are plain strings: each one
    # must name a DocumentReason, or the sandbox could not turn its answer into one.
    codes: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(_pdfchild))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PdfRefused":
            codes.add(ast.literal_eval(node.args[0]))
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "error":
                    if isinstance(value, ast.Constant):
                        codes.add(value.value)
    assert codes >= {"corrupt_pdf", "too_complex"}
    assert codes <= set(DocumentReason)


def test_the_cpu_limit_kills_a_form_bomb_long_before_the_deadline() -> None:
    # Without the limit the child runs to the 60 s deadline (the bomb takes many minutes).
    before = set(children())  # the session's servers, when the suite runs whole
    started = time.monotonic()
    assert refusal(PdfSandbox(PdfLimits(cpu_seconds=1, wall_seconds=60)), make_form_bomb_pdf()) == (
        "too_complex"
    )
    assert time.monotonic() - started < 20
    assert set(children()) - before == set()


def test_the_deadline_kills_a_child_the_cpu_limit_has_not_stopped_yet() -> None:
    before = set(children())
    started = time.monotonic()
    sandbox = PdfSandbox(PdfLimits(cpu_seconds=60, wall_seconds=1.5))
    assert refusal(sandbox, make_form_bomb_pdf()) == "too_complex"
    assert time.monotonic() - started < 15
    assert set(children()) - before == set()


def test_the_memory_limit_turns_an_inflating_stream_into_too_complex() -> None:
    # pypdf inflates up to its own cap (75 MB) before calling the file corrupt: more than
    # a 128 MiB address space holds, within the default.
    bomb = make_bomb_pdf(80 * 1024 * 1024)
    assert refusal(PdfSandbox(PdfLimits(memory_bytes=128 * 1024 * 1024)), bomb) == "too_complex"
    assert refusal(PdfSandbox(), bomb) == "corrupt_pdf"


def test_no_more_children_than_the_bound_and_a_late_one_hears_busy() -> None:
    sandbox = PdfSandbox(
        PdfLimits(cpu_seconds=60, wall_seconds=3, concurrency=1, queue_seconds=0.5)
    )

    async def both() -> list[str]:
        async def one(data: bytes) -> str:
            try:
                await sandbox.text(data, max_pages=200, max_chars=500_000)
            except DocumentError as exc:
                return exc.code
            return "read"

        first = asyncio.create_task(one(make_form_bomb_pdf()))
        await asyncio.sleep(0.2)
        second = await one(make_pdf(PAGES))
        return [await first, second]

    assert asyncio.run(both()) == ["too_complex", "busy"]
    # The slot is free again once the bomb is gone.
    assert read(sandbox, make_pdf(PAGES))[1] == 2
