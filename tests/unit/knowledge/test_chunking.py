"""Passages: headings and paragraphs first, bounded size, overlap, unicode kept whole."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream.knowledge._chunking import Passage, _fence, _heading, split_passages
from support import examples

GUIDE = """\
# Guide

Welcome to the guide.

## Install

Run the installer.
It takes a minute.

```sh
# this is a shell comment, not a heading
make install
```

### Linux

Use the package.

## Use

Open the app.

# Appendix #

Last words.
"""


def words(text: str) -> list[str]:
    return text.split()


def test_headings_give_each_passage_its_path_and_paragraphs_stay_whole() -> None:
    passages = split_passages(GUIDE, max_chars=80, overlap_chars=0)
    assert [(p.heading, p.text) for p in passages] == [
        ("Guide", "Welcome to the guide."),
        ("Guide > Install", "Run the installer.\nIt takes a minute."),
        (
            "Guide > Install",
            "```sh\n# this is a shell comment, not a heading\nmake install\n```",
        ),
        ("Guide > Install > Linux", "Use the package."),
        ("Guide > Use", "Open the app."),
        ("Appendix", "Last words."),
    ]
    assert [p.position for p in passages] == list(range(6))


def test_small_paragraphs_of_one_section_are_packed_together() -> None:
    passages = split_passages(GUIDE, max_chars=1000)
    assert passages[1] == Passage(
        1,
        "Guide > Install",
        "Run the installer.\nIt takes a minute.\n\n```sh\n"
        "# this is a shell comment, not a heading\nmake install\n```",
    )
    # Sections are never merged, whatever room is left.
    assert [p.heading for p in passages] == [
        "Guide",
        "Guide > Install",
        "Guide > Install > Linux",
        "Guide > Use",
        "Appendix",
    ]


def test_plain_text_has_no_headings() -> None:
    passages = split_passages("# not a heading\n\nbody", markdown=False)
    assert [(p.heading, p.text) for p in passages] == [("", "# not a heading\n\nbody")]


def test_embedding_text_leads_with_the_heading_path() -> None:
    assert Passage(0, "A > B", "body").embedding_text() == "A > B\n\nbody"
    assert Passage(0, "", "body").embedding_text() == "body"


@pytest.mark.parametrize("text", ["", "   \n\n\t", "# Only a heading\n\n## And another\n"])
def test_empty_input_gives_no_passages(text: str) -> None:
    assert split_passages(text) == []


def test_a_very_long_paragraph_is_cut_at_sentences_within_the_bound_with_overlap() -> None:
    sentences = [f"Sentence {i} says something about topic {i}." for i in range(400)]
    paragraph = " ".join(sentences)
    passages = split_passages(paragraph, max_chars=500, overlap_chars=100)
    assert len(passages) > 20
    assert all(len(p.text) <= 500 for p in passages)
    # Every sentence is whole in some passage, in order.
    for sentence in sentences:
        assert any(sentence in p.text for p in passages), sentence
    # Each passage after the first starts with words that ended the one before.
    for before, after in itertools.pairwise(passages):
        lead = words(after.text)[:3]
        assert " ".join(lead) in before.text[-110:]


def test_a_run_without_spaces_is_cut_anywhere_within_the_bound() -> None:
    blob = "A" * 5000
    passages = split_passages(f"before\n\n{blob}\n\nafter", max_chars=400, overlap_chars=50)
    assert all(len(p.text) <= 400 for p in passages)
    assert sum(p.text.count("A") for p in passages) >= 5000
    assert passages[0].text.startswith("before")
    assert passages[-1].text.endswith("after")


def test_cjk_sentences_are_cut_at_their_full_stops_without_added_spaces() -> None:
    paragraph = "".join(f"これは{i}番目の文です。" for i in range(200))
    passages = split_passages(paragraph, max_chars=200, overlap_chars=0)
    assert all(len(p.text) <= 200 for p in passages)
    assert all(p.text.endswith("。") for p in passages)
    assert "".join(p.text for p in passages) == paragraph


def test_emoji_and_combining_marks_survive() -> None:
    text = "# Café ☕\n\nZoë’s 👩‍👩‍👧 family e\u0301 — ok."
    [passage] = split_passages(text)
    assert passage.heading == "Café ☕"
    assert passage.text == "Zoë’s 👩‍👩‍👧 family e\u0301 — ok."


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        split_passages("x", max_chars=10)
    with pytest.raises(ValueError):
        split_passages("x", max_chars=100, overlap_chars=60)


@settings(max_examples=examples(150), deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=3000))
def test_any_text_gives_bounded_passages_that_cover_its_words(text: str) -> None:
    passages = split_passages(text, max_chars=200, overlap_chars=40)
    assert all(0 < len(p.text) <= 200 for p in passages)
    assert [p.position for p in passages] == list(range(len(passages)))
    # Words outside headings all reach some passage (a long word only in pieces).
    covered = "".join(p.text for p in passages)
    body = "\n".join(
        line for line in text.replace("\r", "\n").split("\n") if not re.match(r" {0,3}#", line)
    )
    for word in body.split():
        if len(word) <= 160 and "`" not in body and "~~~" not in body:
            assert word in covered


# -- linear time (issue 22) -----------------------------------------------------------------

# The patterns the chunker used to read headings and fences with: the reference grammar.
_OLD_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_OLD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@settings(max_examples=examples(400), deadline=None)
@given(st.text(alphabet=" \t#`~a\f\u3000", max_size=24))
def test_headings_and_fences_read_as_the_reference_patterns_did(line: str) -> None:
    old = _OLD_HEADING.match(line)
    assert _heading(line) == ((len(old.group(1)), (old.group(2) or "").strip()) if old else None)
    fence = _OLD_FENCE.match(line)
    assert _fence(line) == (fence.group(1)[:3] if fence else None)


# Large enough that the quadratic pattern took seconds; ten times it is the 500,000
# characters a document may have.
_BASE_CHARS = 50_000

# Adversarial shapes for every scan the chunker makes, at a given size in characters.
_SHAPES = {
    "heading_then_blanks": lambda n: "# a" + " " * n + "b",
    "heading_blank_tab_hash": lambda n: "# a" + " \t#" * (n // 3) + "b",
    "hashes_only": lambda n: "#" * n,
    "closing_run_not_at_end": lambda n: "## x " + "#" * n + " y",
    "indented_hashes": lambda n: "   " + "# " * (n // 2),
    "sentence_then_blanks": lambda n: "a." + " " * n + "b",
    "cjk_full_stops": lambda n: "。" * n,
    "dot_space_runs": lambda n: ". " * (n // 2),
    "one_long_word": lambda n: "x" * n,
    "open_fence": lambda n: "```\n" + "x\n" * (n // 2),
    "fence_like_lines": lambda n: " ``\n" * (n // 4),
    "short_heading_lines": lambda n: "# h\nw\n" * (n // 6),
    "words_with_long_blanks": lambda n: "a" + (" " * 1199 + "b") * (n // 1200),
}


def _seconds(text: str) -> float:
    """The best of three timings of one split (each repeated until it takes 20 ms)."""
    best = float("inf")
    for _ in range(3):
        calls, started = 0, time.perf_counter()
        while True:
            split_passages(text)
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= 0.02:
                break
        best = min(best, elapsed / calls)
    return best


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_chunking_time_grows_linearly_with_adversarial_input(shape: str) -> None:
    # Ten times the input: about ten times the time for a linear scan, a hundred for the
    # quadratic backtracking this replaced. The bound sits between, a ratio and not a
    # wall-clock figure, so a busy machine does not fail it.
    small, large = _SHAPES[shape](_BASE_CHARS), _SHAPES[shape](_BASE_CHARS * 10)
    assert _seconds(large) / _seconds(small) < 35
