"""The job bench.cpu_bounds runs through a forkserver: importable without the bench."""

from __future__ import annotations

from multiprocessing.connection import Connection

from promptstream.knowledge._pdfchild import pdf_text


def read(data: bytes, pipe: Connection) -> None:
    pipe.send(pdf_text(data, max_pages=200, max_chars=500_000))
