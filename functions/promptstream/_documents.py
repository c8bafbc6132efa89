"""Text out of an uploaded document: plain text, Markdown or PDF bytes.

Pure (no I/O beyond the bytes given) and bounded: the bytes, the PDF pages read and the
characters kept all have caps, and each refusal is a ``DocumentError`` with a stable
``code`` the caller can show. PDF parsing is CPU work: call ``extract_text`` from a
worker thread (``asyncio.to_thread``), never on the loop that relays streams.
"""

from __future__ import annotations

import io
import logging
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = ["DocumentError", "DocumentKind", "ExtractedText", "detect_kind", "extract_text"]

DocumentKind = Literal["text", "markdown", "pdf"]

_PDF_MAGIC = b"%PDF-"
_EXTENSIONS: dict[str, DocumentKind] = {
    "txt": "text",
    "text": "text",
    "md": "markdown",
    "markdown": "markdown",
    "pdf": "pdf",
}
_CONTENT_TYPES: dict[str, DocumentKind] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/pdf": "pdf",
}
# Text whose share of control characters (other than tab, LF, CR, FF) passes this is
# binary data that happened to decode, not a document.
_MAX_CONTROL_SHARE = 0.01


class DocumentError(ValueError):
    """An upload that cannot be turned into text. ``code`` is stable: ``empty``,
    ``unsupported_type``, ``binary``, ``corrupt_pdf``, ``encrypted_pdf``, ``too_large``,
    ``too_many_pages``, ``too_long``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ExtractedText:
    text: str
    kind: DocumentKind
    pages: int  # 1 for text and Markdown


def detect_kind(data: bytes, filename: str = "", content_type: str | None = None) -> DocumentKind:
    """The document's kind: the PDF signature first, then the declared content type,
    then the file name's extension."""
    if data.startswith(_PDF_MAGIC):
        return "pdf"
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in _CONTENT_TYPES:
        return _CONTENT_TYPES[declared]
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    raise DocumentError(
        "unsupported_type", "only plain text (.txt), Markdown (.md) and PDF (.pdf) are accepted"
    )


def extract_text(
    data: bytes,
    *,
    filename: str = "",
    content_type: str | None = None,
    max_bytes: int = 5 * 1024 * 1024,
    max_pages: int = 200,
    max_chars: int = 500_000,
) -> ExtractedText:
    """The text of ``data``, NFC-normalised with LF line ends.

    Raises ``DocumentError`` for empty, binary, corrupt or oversized input.
    """
    if len(data) > max_bytes:
        raise DocumentError("too_large", f"the file is larger than {max_bytes} bytes")
    if not data.strip():
        raise DocumentError("empty", "the file is empty")
    kind = detect_kind(data, filename, content_type)
    if kind == "pdf":
        text, pages = _pdf_text(data, max_pages=max_pages, max_chars=max_chars)
    else:
        text, pages = _decode_text(data), 1
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        if kind == "pdf":
            raise DocumentError("empty", "the PDF has no text layer (a scan?)")
        raise DocumentError("empty", "the file has no text")
    if len(text) > max_chars:
        raise DocumentError("too_long", f"the text is longer than {max_chars} characters")
    return ExtractedText(text, kind, pages)


def _decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"  # strips a UTF-8 BOM
        if b"\x00" in data:
            raise DocumentError("binary", "the file is binary, not text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise DocumentError("binary", "the file is not UTF-8 text") from None
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f")
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise DocumentError("binary", "the file is binary, not text")
    return text


def _pdf_text(data: bytes, *, max_pages: int, max_chars: int) -> tuple[str, int]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    # pypdf logs every repair it makes to a damaged file; the outcome is what matters.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise DocumentError("encrypted_pdf", "the PDF is encrypted")
        count = len(reader.pages)
        if count > max_pages:
            raise DocumentError("too_many_pages", f"the PDF has more than {max_pages} pages")
        parts: list[str] = []
        size = 0
        for page in reader.pages:
            part = page.extract_text() or ""
            size += len(part)
            if size > max_chars:
                raise DocumentError("too_long", f"the text is longer than {max_chars} characters")
            parts.append(part.strip())
    except DocumentError:
        raise
    except FileNotDecryptedError:
        raise DocumentError("encrypted_pdf", "the PDF is encrypted") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # A damaged file reaches pypdf's parser in many ways; all of them mean "corrupt".
        raise DocumentError(
            "corrupt_pdf", f"the PDF cannot be read ({type(exc).__name__})"
        ) from None
    except RecursionError:
        raise DocumentError("corrupt_pdf", "the PDF cannot be read (nested too deep)") from None
    return "\n\n".join(part for part in parts if part), count
