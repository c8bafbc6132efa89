"""Text out of uploads: plain text, Markdown, PDF; and each refusal with its code."""

from __future__ import annotations

import time
import unicodedata

import pytest

from promptstream.knowledge._documents import DocumentError, detect_kind, extract_text, finish_text
from support.pdf import make_bomb_pdf, make_pdf


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "kind"),
    [
        (b"hello", "notes.txt", None, "text"),
        (b"# Title", "README.md", None, "markdown"),
        (b"# Title", "x", "text/markdown; charset=utf-8", "markdown"),
        (b"plain", "upload", "text/plain", "text"),
        (b"%PDF-1.4 ...", "looks.txt", "text/plain", "pdf"),  # the signature wins
        (b"x", "REPORT.PDF", None, "pdf"),
    ],
)
def test_kind_comes_from_signature_then_content_type_then_extension(
    data: bytes, filename: str, content_type: str | None, kind: str
) -> None:
    assert detect_kind(data, filename, content_type) == kind


def test_plain_text_is_decoded_normalised_and_bom_stripped() -> None:
    # "é" written as e + combining acute, CRLF line ends, a UTF-8 BOM.
    data = "\ufeffCafe\u0301 menu\r\nline two\rline three 日本語 🎉".encode()
    extracted = extract_text(data, filename="menu.txt")
    assert extracted.text == "Café menu\nline two\nline three 日本語 🎉"
    assert extracted.kind == "text" and extracted.pages == 1


def test_utf16_with_bom_is_read() -> None:
    extracted = extract_text("héllo wörld".encode("utf-16"), filename="a.txt")
    assert extracted.text == "héllo wörld"


def test_pdf_text_layer_is_read_page_by_page() -> None:
    data = make_pdf(["Refund policy\nRefunds take 5 days.", "Page two (shipping)."])
    extracted = extract_text(data, filename="policy.pdf", content_type="application/pdf")
    assert extracted.kind == "pdf" and extracted.pages == 2
    assert "Refunds take 5 days." in extracted.text
    assert extracted.text.index("Refund policy") < extracted.text.index("Page two (shipping).")


@pytest.mark.parametrize(
    ("data", "filename", "code"),
    [
        (b"", "a.txt", "empty"),
        (b"  \n\t \r\n", "a.md", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.txt", "binary"),
        (bytes(range(256)) * 4, "blob.md", "binary"),
        (b"caf\xe9 latin-1 \xfd", "latin.txt", "binary"),
        (b"text\x01\x02\x03\x04 with controls", "c.txt", "binary"),
        (b"hello", "archive.zip", "unsupported_type"),
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", "broken.pdf", "corrupt_pdf"),
        (make_pdf(["only a  page"])[:300], "cut.pdf", "corrupt_pdf"),
        (make_pdf([""]), "scan.pdf", "empty"),
    ],
)
def test_bad_uploads_are_refused_with_a_code(data: bytes, filename: str, code: str) -> None:
    with pytest.raises(DocumentError) as refused:
        extract_text(data, filename=filename)
    assert refused.value.code == code
    assert refused.value.message


def test_caps_bound_the_cost() -> None:
    with pytest.raises(DocumentError) as big:
        extract_text(b"a" * 101, filename="a.txt", max_bytes=100)
    assert big.value.code == "too_large"
    with pytest.raises(DocumentError) as long:
        extract_text(b"word " * 100, filename="a.txt", max_chars=100)
    assert long.value.code == "too_long"
    pages = make_pdf([f"page {i}" for i in range(5)])
    with pytest.raises(DocumentError) as many:
        extract_text(pages, filename="p.pdf", max_pages=4)
    assert many.value.code == "too_many_pages"
    assert extract_text(pages, filename="p.pdf", max_pages=5).pages == 5
    with pytest.raises(DocumentError) as pdf_long:
        extract_text(make_pdf(["x" * 80, "y" * 80]), filename="p.pdf", max_chars=100)
    assert pdf_long.value.code == "too_long"


def test_a_pdf_that_inflates_past_the_parsers_cap_is_refused() -> None:
    # 80 MiB of spaces in a small file: without pypdf's 75 MB cap per stream it would be
    # inflated in full and end as "empty", not "corrupt_pdf".
    bomb = make_bomb_pdf(80 * 1024 * 1024)
    assert len(bomb) < 200_000
    with pytest.raises(DocumentError) as refused:
        extract_text(bomb, filename="bomb.pdf")
    assert refused.value.code == "corrupt_pdf"


# -- normalisation in linear time (issue 22) ------------------------------------------------

_NON_STARTER_SHAPES = {
    # Two combining classes in the wrong order: the canonical reordering's worst case.
    "descending_classes": lambda n: "a" + "\u0300" * (n // 2) + "\u0316" * (n // 2),
    # A vowel sign with no combining class that decomposes into two non-starters.
    "tibetan_vowel_signs": lambda n: "a" + "\u0f73" * n,
    "alternating_classes": lambda n: "a" + "\u0300\u0316" * (n // 2),
}


def _seconds(text: str) -> float:
    # This process's CPU time: the suite runs in workers beside other work, and wall time
    # would count their turns on the cores as ours.
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        finish_text(text, "text", 1, max_chars=10**8)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize("shape", sorted(_NON_STARTER_SHAPES))
def test_normalising_a_run_of_combining_marks_takes_linear_time(shape: str) -> None:
    # Ten times the run: about ten times the time, where the insertion sort of the
    # canonical ordering took a hundred.
    make = _NON_STARTER_SHAPES[shape]
    assert _seconds(make(400_000)) / _seconds(make(40_000)) < 35


def test_a_long_run_of_non_starters_is_broken_every_thirty_and_others_are_untouched() -> None:
    text = finish_text("a" + "\u0316\u0300" * 40, "text", 1, max_chars=1000).text
    runs = text.split("\u034f")
    assert len(runs) == 3 and max(len(run) for run in runs) <= 31  # "a" and 30 marks
    ordinary = "Cafe\u0301 👩‍👩‍👧 e\u0301\u0323 日本語 Ελληνικά \u0f73 " * 50
    assert finish_text(ordinary, "text", 1, max_chars=10**6).text == unicodedata.normalize(
        "NFC", ordinary
    )
