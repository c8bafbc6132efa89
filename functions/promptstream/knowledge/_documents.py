"""Text out of an uploaded document: plain text, Markdown or PDF bytes.

Pure (no I/O beyond the bytes given) and bounded: the bytes, the PDF pages read and the
characters kept all have caps, and each refusal is a ``DocumentError`` whose ``code``
(a ``DocumentReason``) the caller can show. Decoding is CPU work: call ``extract_text``
from a worker thread, never on the loop that relays streams; an upload's PDF is read by
``_pdfsandbox`` in a child process with CPU, memory and time limits.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Literal

from .._config import DEFAULTS
from .._errors import DocumentReason
from ._pdfchild import PdfRefused, pdf_text

__all__ = [
    "DocumentError",
    "DocumentKind",
    "ExtractedText",
    "check_upload",
    "detect_kind",
    "extract_text",
    "finish_text",
]

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
    """An upload that cannot be turned into text: ``empty``, ``unsupported_type``,
    ``binary``, ``corrupt_pdf``, ``encrypted_pdf``, ``too_large``, ``too_many_pages``,
    ``too_long``, ``too_complex`` (the PDF child hit a limit) or ``busy`` (no PDF child
    free in time)."""

    def __init__(self, code: DocumentReason, message: str) -> None:
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
        DocumentReason.UNSUPPORTED_TYPE,
        "only plain text (.txt), Markdown (.md) and PDF (.pdf) are accepted",
    )


def check_upload(
    data: bytes,
    *,
    filename: str = "",
    content_type: str | None = None,
    max_bytes: int = DEFAULTS.max_document_bytes,
) -> DocumentKind:
    """The kind of ``data``, after the checks that need no parsing (size, emptiness)."""
    if len(data) > max_bytes:
        raise DocumentError(DocumentReason.TOO_LARGE, f"the file is larger than {max_bytes} bytes")
    if not data.strip():
        raise DocumentError(DocumentReason.EMPTY, "the file is empty")
    return detect_kind(data, filename, content_type)


def extract_text(
    data: bytes,
    *,
    filename: str = "",
    content_type: str | None = None,
    max_bytes: int = DEFAULTS.max_document_bytes,
    max_pages: int = DEFAULTS.max_document_pages,
    max_chars: int = DEFAULTS.max_document_chars,
) -> ExtractedText:
    """The text of ``data``, NFC-normalised with LF line ends, read in this process.

    Raises ``DocumentError`` for empty, binary, corrupt or oversized input. A PDF is
    read without the child process's limits: ``_pdfsandbox`` reads the uploads.
    """
    kind = check_upload(data, filename=filename, content_type=content_type, max_bytes=max_bytes)
    if kind == "pdf":
        try:
            text, pages = pdf_text(data, max_pages=max_pages, max_chars=max_chars)
        except PdfRefused as exc:
            raise DocumentError(DocumentReason(exc.code), exc.message) from None
    else:
        text, pages = _decode_text(data), 1
    return finish_text(text, kind, pages, max_chars=max_chars)


def finish_text(text: str, kind: DocumentKind, pages: int, *, max_chars: int) -> ExtractedText:
    """Extracted ``text`` NFC-normalised (in linear time: stream-safe first) with LF line
    ends, refused when it is blank or longer than ``max_chars``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", _stream_safe(text))
    if not text.strip():
        if kind == "pdf":
            raise DocumentError(DocumentReason.EMPTY, "the PDF has no text layer (a scan?)")
        raise DocumentError(DocumentReason.EMPTY, "the file has no text")
    if len(text) > max_chars:
        raise DocumentError(
            DocumentReason.TOO_LONG, f"the text is longer than {max_chars} characters"
        )
    return ExtractedText(text, kind, pages)


# UAX #15's stream-safe text format: a combining grapheme joiner (a starter) after every
# 30 non-starters in a row. Normalisation reorders each run of non-starters by insertion
# sort, quadratic in the run's length, while holding the GIL; a run of 30 costs nothing.
_MAX_NON_STARTERS = 30
_CGJ = "\u034f"


@functools.cache
def _long_non_starter_run() -> re.Pattern[str]:
    # The characters whose decomposition starts with a non-starter: those with a
    # combining class, and three Tibetan vowel signs that decompose into such.
    members = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.combining(chr(c))]
    members += ["\u0f73", "\u0f75", "\u0f81"]
    ranges: list[list[int]] = []
    for code in sorted(ord(m) for m in members):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    cls = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    # Exactly 30, then one more ahead: each attempt reads at most 31 characters.
    return re.compile(f"[{cls}]{{{_MAX_NON_STARTERS}}}(?=[{cls}])")


def _stream_safe(text: str) -> str:
    if text.isascii():
        return text
    return _long_non_starter_run().sub(lambda m: m.group(0) + _CGJ, text)


def _decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"  # strips a UTF-8 BOM
        if b"\x00" in data:
            raise DocumentError(DocumentReason.BINARY, "the file is binary, not text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise DocumentError(DocumentReason.BINARY, "the file is not UTF-8 text") from None
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f")
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise DocumentError(DocumentReason.BINARY, "the file is binary, not text")
    return text
