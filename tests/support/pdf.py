"""Builders for the knowledge-base tests: real PDFs written by hand (pypdf reads PDFs
but does not lay out text), one with a text layer, one that inflates past pypdf's
decompression cap, and one whose pages invoke a form XObject thousands of times."""

from __future__ import annotations

import zlib

_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def make_pdf(pages: list[str]) -> bytes:
    """A valid PDF 1.4 file: one page per string, each line in Helvetica, with a correct
    cross-reference table. Only ASCII text (the standard font's encoding)."""
    streams = []
    for text in pages:
        lines = []
        for line in text.split("\n"):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            lines.append(f"({escaped}) Tj T*")
        streams.append(("BT /F1 11 Tf 14 TL 50 780 Td " + " ".join(lines) + " ET").encode("ascii"))
    return _assemble(streams, b"")


def make_deflated_pdf(text: str) -> bytes:
    """One page of ``text`` (ASCII, a line a line), its content stream deflated: a small
    file whose text is many times its size."""
    stream = make_pdf([text])
    ops = stream[stream.index(b"BT /F1") : stream.index(b" ET") + 3]
    return _assemble([zlib.compress(ops, 9)], b" /Filter /FlateDecode")


def make_bomb_pdf(inflated_bytes: int) -> bytes:
    """One page whose content stream is ``inflated_bytes`` spaces, deflated: a small file
    that a parser without a cap would inflate in full."""
    packer = zlib.compressobj(9)
    block = b" " * (1 << 20)
    body = b"".join(packer.compress(block) for _ in range(inflated_bytes >> 20)) + packer.flush()
    return _assemble([body], b" /Filter /FlateDecode")


def make_form_bomb_pdf(pages: int = 200, invocations: int = 5000, form_ops: int = 20) -> bytes:
    """``pages`` pages that all show one content stream: ``invocations`` times ``Do`` of
    one form XObject holding ``form_ops`` text operators that show nothing. pypdf parses
    the form again at each ``Do``: a file of a few KB that takes hours of CPU to read and
    gives no text, so no cap on characters stops it."""
    form = b"BT /F1 1 Tf " + b"() Tj " * form_ops + b"ET"
    content = b"/X0 Do\n" * invocations
    page_ids = [6 + i for i in range(pages)]
    kids = " ".join(f"{pid} 0 R" for pid in page_ids).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        _FONT,
        _deflated(
            form,
            b" /Type /XObject /Subtype /Form /BBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >>",
        ),
        _deflated(content, b""),
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources"
        b" << /Font << /F1 3 0 R >> /XObject << /X0 4 0 R >> >> /Contents 5 0 R >>"
    ] * pages
    return _write(objects)


def _deflated(data: bytes, entries: bytes) -> bytes:
    packed = zlib.compress(data, 9)
    return (
        b"<< /Length %d /Filter /FlateDecode%s >>\nstream\n" % (len(packed), entries)
        + packed
        + b"\nendstream"
    )


def _assemble(streams: list[bytes], filters: bytes) -> bytes:
    page_ids = [4 + 2 * i for i in range(len(streams))]
    kids = " ".join(f"{pid} 0 R" for pid in page_ids).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(streams),
        _FONT,
    ]
    for page_id, stream in zip(page_ids, streams, strict=True):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects.append(
            b"<< /Length %d%s >>\nstream\n" % (len(stream), filters) + stream + b"\nendstream"
        )
    return _write(objects)


def _write(objects: list[bytes]) -> bytes:
    """``objects`` numbered from 1 (the catalog first), with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
