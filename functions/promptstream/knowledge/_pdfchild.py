"""PDF text, read in a child process that cannot outgrow its limits.

Run as ``python -I _pdfchild.py MAX_PAGES MAX_CHARS CPU_SECONDS MEMORY_BYTES`` with the
file on stdin: it lowers its own CPU-time and address-space limits, reads the text and
answers one JSON object on stdout, ``{"text", "pages"}`` or ``{"error", "message"}``.
It imports nothing of the package (that would load the whole server into every child);
``_pdfsandbox`` runs it and ``_documents`` reads PDFs in-process with ``pdf_text``.
See docs/adr/0307-cpu-bounds.md.
"""

from __future__ import annotations

import io
import json
import logging
import resource
import sys

__all__ = ["PdfRefused", "pdf_text"]


class PdfRefused(Exception):
    """A PDF that gives no text; ``code`` is a ``DocumentReason`` value (a plain string:
    the child imports nothing of the package)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def pdf_text(data: bytes, *, max_pages: int, max_chars: int) -> tuple[str, int]:
    """The text of each page, joined by blank lines, and the number of pages."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    # pypdf logs every repair it makes to a damaged file; the outcome is what matters.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise PdfRefused("encrypted_pdf", "the PDF is encrypted")
        count = len(reader.pages)
        if count > max_pages:
            raise PdfRefused("too_many_pages", f"the PDF has more than {max_pages} pages")
        parts: list[str] = []
        size = 0
        for page in reader.pages:
            part = page.extract_text() or ""
            size += len(part)
            if size > max_chars:
                raise PdfRefused("too_long", f"the text is longer than {max_chars} characters")
            parts.append(part.strip())
    except PdfRefused:
        raise
    except FileNotDecryptedError:
        raise PdfRefused("encrypted_pdf", "the PDF is encrypted") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # A damaged file reaches pypdf's parser in many ways; all of them mean "corrupt".
        raise PdfRefused("corrupt_pdf", f"the PDF cannot be read ({type(exc).__name__})") from None
    except RecursionError:
        raise PdfRefused("corrupt_pdf", "the PDF cannot be read (nested too deep)") from None
    return "\n\n".join(part for part in parts if part), count


def _main(argv: list[str]) -> int:
    max_pages, max_chars, cpu_seconds, memory_bytes = (int(arg) for arg in argv[1:5])
    data = sys.stdin.buffer.read()
    import pypdf  # noqa: F401  (loaded before the memory limit: it is ours, not the file's)

    # The kernel sends SIGXCPU at the soft limit and SIGKILL a second later; the address
    # space limit turns a runaway allocation into MemoryError.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        text, pages = pdf_text(data, max_pages=max_pages, max_chars=max_chars)
        answer: dict[str, object] = {"text": text, "pages": pages}
    except PdfRefused as exc:
        answer = {"error": exc.code, "message": exc.message}
    except MemoryError:
        answer = {"error": "too_complex", "message": "the PDF needs too much memory to read"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
