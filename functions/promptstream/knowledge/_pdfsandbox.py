"""PDF uploads read in a child process each, a few at a time, killed at their limits.

pypdf cannot be interrupted from outside and a small file can keep it busy for days or
take gigabytes, so the text is read by ``_pdfchild`` in its own process: the kernel caps
its CPU time and address space, a deadline here kills it, and a semaphore bounds how
many run at once in this instance (a wait beyond the queue time answers ``busy``). The
child inherits no environment (the API key stays here). docs/adr/0307-cpu-bounds.md.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .._config import DEFAULTS
from .._errors import DocumentReason
from ._documents import DocumentError

__all__ = ["PdfLimits", "PdfSandbox"]

_CHILD = str(Path(__file__).with_name("_pdfchild.py"))
_TOO_COMPLEX = "the PDF takes more time or memory to read than an upload may use"



@dataclass(frozen=True, slots=True)
class PdfLimits:
    """What one PDF child may use, and how many run at once."""

    cpu_seconds: int = DEFAULTS.pdf_cpu_seconds
    memory_bytes: int = DEFAULTS.pdf_memory_bytes
    wall_seconds: float = DEFAULTS.pdf_wall_seconds
    concurrency: int = DEFAULTS.pdf_concurrency
    queue_seconds: float = DEFAULTS.pdf_queue_seconds


class PdfSandbox:
    """The instance's PDF children: ``text`` reads one file under ``limits``."""

    def __init__(self, limits: PdfLimits | None = None) -> None:
        self.limits = limits or PdfLimits()
        self._slots = asyncio.Semaphore(self.limits.concurrency)

    async def text(self, data: bytes, *, max_pages: int, max_chars: int) -> tuple[str, int]:
        """The PDF's text and page count, or ``DocumentError`` (its own codes, and
        ``too_complex`` at a limit, ``busy`` when no child is free within the queue time)."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.limits.queue_seconds)
        except TimeoutError:
            raise DocumentError(
                DocumentReason.BUSY,
                "too many PDFs are being read on this server: try again shortly",
            ) from None
        try:
            return await self._run(data, max_pages, max_chars)
        finally:
            self._slots.release()

    async def _run(self, data: bytes, max_pages: int, max_chars: int) -> tuple[str, int]:
        limits = self.limits
        args = (max_pages, max_chars, limits.cpu_seconds, limits.memory_bytes)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # no PYTHON* variables, no user site, no script directory on the path
            _CHILD,
            *(str(arg) for arg in args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={},
        )
        try:
            out, _ = await asyncio.wait_for(child.communicate(data), limits.wall_seconds)
        except TimeoutError:
            raise DocumentError(DocumentReason.TOO_COMPLEX, _TOO_COMPLEX) from None
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        try:
            answer = json.loads(out) if child.returncode == 0 else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            # Killed at the CPU limit (SIGXCPU, then SIGKILL), or out of memory before
            # it could answer.
            raise DocumentError(DocumentReason.TOO_COMPLEX, _TOO_COMPLEX)
        if "error" in answer:
            # The child's codes are DocumentReason values (it imports nothing of the package).
            reason = DocumentReason(str(answer["error"]))
            raise DocumentError(reason, str(answer.get("message") or ""))
        return str(answer["text"]), int(answer["pages"])
