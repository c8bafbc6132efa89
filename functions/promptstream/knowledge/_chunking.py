"""Text into passages for retrieval: headings and paragraphs first, bounded size, overlap.

Pure: a string goes in, passages come out. Markdown ATX headings (``#`` to ``######``)
open sections and every passage keeps the path of headings above it; fenced code blocks
are kept whole where they fit and their ``#`` lines are not headings. A document's opening
text (under its title, before the first subsection) is joined to its first section, so it
is never a passage of its own that embeds as little more than the title. Paragraphs are
packed into passages of at most ``max_chars``; a paragraph longer than that is cut at
sentence ends, then at spaces, then anywhere. A passage that follows another in the same
section starts with the whole sentences that ended the one before (up to
``overlap_chars``), so a sentence on the boundary is whole in one of them. A Markdown
table is split into groups of rows, each carrying the header row
(docs/adr/0800-retrieval-quality.md).

Linear in its input whatever the text (docs/adr/0307-cpu-bounds.md): headings, fences and
tables are read with string operations, and the patterns left cannot backtrack (each
match consumes what it tried). It still takes CPU in proportion to the text: call it off
the loop.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from .._config import DEFAULTS

__all__ = ["HEADING_SEPARATOR", "Passage", "split_passages"]

HEADING_SEPARATOR = " > "
# Blanks inside a heading line (CommonMark's), as opposed to str.strip()'s whitespace.
_BLANKS = " \t"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")
_WORD = re.compile(r"\S+\s*|\s+")
# Where a sentence or a line may start: after a sentence end and its blanks, or a line end.
_SENTENCE_START = re.compile(r"(?<=[.!?;:])\s+|(?<=[。！？])|\n+")
# A table's rows go in groups of about this share of a passage, each group under the
# header row: a row among many others embeds as noise (docs/adr/0800-retrieval-quality.md).
_TABLE_GROUP_SHARE = 4
# Where a passage's sentences end, for their own vectors: after a sentence end and its
# blanks, or at a line end (a list item, a table row). Each match consumes what it tried.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")




@dataclass(frozen=True, slots=True)
class Passage:
    """One passage: its place in the document (0-based), the heading path above it
    (``"Guide > Install"``, or ``""``) and its text."""

    position: int
    heading: str
    text: str

    def embedding_text(self) -> str:
        """What is embedded: the heading path gives a short passage its topic."""
        return self._under_heading(self.text)

    def sentences(self, limit: int) -> list[str]:
        """What is embedded for the passage's sentence vectors, at most ``limit``: each
        sentence or line of its text (a table row under its header row), under the heading
        path; consecutive ones joined when there are more; ``[]`` when the passage is one
        sentence, which its own vector already stands for
        (docs/adr/0802-sentence-vectors.md)."""
        if limit <= 0:
            return []
        rows = _table_rows(self.text)
        if rows is not None:
            header, joiner = rows[0].split("\n", 1)[0], "\n"
            units = [row.strip() for row in rows[1] if row.strip()]
        else:
            header, joiner = "", " "
            units = [u.strip() for u in _SENTENCE_BREAK.split(self.text)]
            # A fragment of a few characters (a list's bullet, "Yes.") embeds as noise.
            units = [u for u in units if len(u) > 3]
        if len(units) <= 1:
            return []
        if len(units) > limit:
            # In ``limit`` runs of consecutive units, as even as whole units allow.
            cuts = [len(units) * i // limit for i in range(limit + 1)]
            units = [joiner.join(units[a:b]) for a, b in itertools.pairwise(cuts)]
        return [self._under_heading(f"{header}\n{u}" if header else u) for u in units]

    def _under_heading(self, text: str) -> str:
        return f"{self.heading}\n\n{text}" if self.heading else text


def split_passages(
    text: str,
    *,
    markdown: bool = True,
    max_chars: int = DEFAULTS.passage_chars,
    overlap_chars: int = DEFAULTS.passage_overlap_chars,
) -> list[Passage]:
    """``text`` as passages of at most ``max_chars`` characters, in document order.

    With ``markdown`` false, ``#`` lines are plain text. Empty or blank text gives ``[]``.
    """
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    if not 0 <= overlap_chars <= max_chars // 2:
        raise ValueError("overlap_chars must be between 0 and half of max_chars")
    sections = _sections(text.replace("\r\n", "\n").replace("\r", "\n"), markdown)
    if len(sections) > 1 and _opens(sections[0][0], sections[1][0]):
        # The opening alone would embed as little more than the title, and win every
        # question that names the subject (docs/adr/0800-retrieval-quality.md).
        sections[:2] = [(sections[1][0], sections[0][1] + sections[1][1])]
    passages: list[Passage] = []
    for path, paragraphs in sections:
        heading = HEADING_SEPARATOR.join(path)
        for body in _pack(paragraphs, max_chars, overlap_chars):
            passages.append(Passage(len(passages), heading, body))
    return passages


def _opens(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Whether ``first`` is a document's opening: text before any heading, or under the
    title, followed by a section inside it."""
    return len(first) <= 1 and len(second) > len(first) and second[: len(first)] == first


def _sections(text: str, markdown: bool) -> list[tuple[tuple[str, ...], list[str]]]:
    """(heading path, paragraphs) in order; sections without paragraphs are dropped."""
    sections: list[tuple[tuple[str, ...], list[str]]] = []
    path: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    lines: list[str] = []
    fence: str | None = None

    def end_paragraph() -> None:
        block = "\n".join(lines).strip()
        lines.clear()
        if block:
            paragraphs.append(block)

    def end_section() -> None:
        end_paragraph()
        if paragraphs:
            sections.append((tuple(title for _, title in path), list(paragraphs)))
            paragraphs.clear()

    for line in text.split("\n"):
        if markdown and fence is not None:
            lines.append(line)
            if line.strip().startswith(fence):
                fence = None
                end_paragraph()
            continue
        opening = _fence(line) if markdown else None
        if opening:
            end_paragraph()
            fence = opening
            lines.append(line)
            continue
        heading = _heading(line) if markdown else None
        if heading:
            end_section()
            level, title = heading
            while path and path[-1][0] >= level:
                path.pop()
            if title:
                path.append((level, title))
            continue
        if not line.strip():
            end_paragraph()
        else:
            lines.append(line.rstrip())
    end_section()
    return sections


def _indent(line: str) -> str | None:
    """``line`` without its indent of up to three spaces; ``None`` if indented more."""
    body = line.lstrip(" ")
    return body if len(line) - len(body) <= 3 else None


def _fence(line: str) -> str | None:
    """The first three characters of an opening code fence (three or more backticks or
    tildes after up to three spaces), or ``None``."""
    body = _indent(line)
    if body is not None and body.startswith(("```", "~~~")):
        return body[:3]
    return None


def _heading(line: str) -> tuple[int, str] | None:
    """An ATX heading's level and title, or ``None``: up to three spaces, one to six
    ``#``, then nothing or a blank and the title, less an optional closing run of ``#``
    that follows a blank. Each step is one scan of the line, where a pattern for the same
    grammar backtracked over the blanks in quadratic time."""
    body = _indent(line)
    if body is None:
        return None
    rest = body.lstrip("#")
    level = len(body) - len(rest)
    if not 1 <= level <= 6 or (rest and rest[0] not in _BLANKS):
        return None
    title = rest.strip(_BLANKS)
    closed = title.rstrip("#")
    if closed != title and closed and closed[-1] in _BLANKS:
        title = closed
    return level, title.strip()


def _pieces(paragraph: str, limit: int) -> list[str]:
    """``paragraph`` cut into pieces of at most ``limit``: at sentence ends, then spaces,
    then anywhere (a run without spaces: a URL, base64). Pieces are slices of the text
    with their own spacing, so CJK sentences are not given spaces they did not have."""
    if len(paragraph) <= limit:
        return [paragraph]
    units: list[str] = []
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(paragraph)), len(paragraph)]
    for start, end in itertools.pairwise(cuts):
        sentence = paragraph[start:end]
        if len(sentence.strip()) <= limit:
            units.append(sentence)
            continue
        for match in _WORD.finditer(sentence):
            word = match.group(0)
            # Cut by index: slicing the rest off again at each cut is quadratic in a long
            # run without spaces.
            start, end = 0, len(word.rstrip())
            while end - start > limit:
                units.append(word[start : start + limit])
                start += limit
            if start < len(word):
                units.append(word[start:])
    runs: list[str] = []
    current = ""
    for unit in units:
        if current.strip() and len((current + unit).strip()) > limit:
            runs.append(current.strip())
            current = unit
        else:
            current += unit
    if current.strip():
        runs.append(current.strip())
    return runs


def _join(units: list[str], limit: int, sep: str) -> list[str]:
    """Greedily join ``units`` (each at most ``limit``) into runs of at most ``limit``."""
    runs: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + len(sep) + len(unit) > limit:
            runs.append(current)
            current = unit
        else:
            current = f"{current}{sep}{unit}" if current else unit
    if current:
        runs.append(current)
    return runs


def _tail(text: str, size: int) -> str:
    """The whole sentences (or lines) that end ``text``, at most ``size`` characters of
    them; ``""`` when its last sentence alone is longer."""
    if size <= 0 or len(text) <= size:
        return "" if size <= 0 else text
    # One search from the window's start: the lookbehind sees the character before it.
    match = _SENTENCE_START.search(text, len(text) - size)
    return text[match.end() :] if match is not None else ""


def _pack(paragraphs: list[str], max_chars: int, overlap_chars: int) -> list[str]:
    """A section's paragraphs as passage bodies: prose packed with overlap, each table
    in groups of rows of its own."""
    out: list[str] = []
    prose: list[str] = []
    for paragraph in paragraphs:
        rows = _table_rows(paragraph)
        if rows is None:
            prose.append(paragraph)
            continue
        out += _pack_prose(prose, max_chars, overlap_chars)
        prose = []
        out += _pack_table(*rows, max_chars)
    return out + _pack_prose(prose, max_chars, overlap_chars)


def _pack_prose(paragraphs: list[str], max_chars: int, overlap_chars: int) -> list[str]:
    # Pieces leave room for the overlap that may be put in front of them.
    units = [p for paragraph in paragraphs for p in _pieces(paragraph, max_chars - overlap_chars)]
    bodies = _join(units, max_chars - overlap_chars, "\n\n")
    out: list[str] = []
    for index, body in enumerate(bodies):
        if index and overlap_chars:
            lead = _tail(bodies[index - 1], overlap_chars).strip()
            if lead:
                body = f"{lead} {body}" if len(lead) + 1 + len(body) <= max_chars else body
        out.append(body)
    return out


def _table_rows(paragraph: str) -> tuple[str, list[str]] | None:
    """A Markdown table's head (its header row and delimiter row) and body rows, or
    ``None`` when ``paragraph`` does not open with a table."""
    lines = paragraph.split("\n")
    if len(lines) < 3 or "|" not in lines[0]:
        return None
    delimiter = lines[1].strip()
    if "-" not in delimiter or "|" not in delimiter or delimiter.strip("|-: \t"):
        return None
    return f"{lines[0]}\n{lines[1]}", lines[2:]


def _pack_table(head: str, rows: list[str], max_chars: int) -> list[str]:
    """The rows in groups under ``head``; a head too wide to repeat leaves the table to
    be cut as prose."""
    room = max_chars - len(head) - 1
    if room < max_chars // 2:
        return _pieces("\n".join([head, *rows]), max_chars)
    group = min(room, max(max_chars // _TABLE_GROUP_SHARE, 1))
    bodies: list[str] = []
    for run in _join([p for row in rows for p in _pieces(row, room)], group, "\n"):
        bodies.append(f"{head}\n{run}")
    return bodies
