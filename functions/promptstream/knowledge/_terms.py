"""Terms for the lexical half of the hybrid search: words stemmed in their text's language,
case- and accent-folded, so that "préstamos" meets "préstamo" and "Öffnungszeiten" meets
"offnungszeit" (docs/adr/0801-lexical-statistics.md).

Pure. The language is guessed cheaply from the commonest short words of a text (a whole
document at ingestion, the passages read at search time otherwise); a text with none of
them is stemmed as English, which leaves names and numbers as they were.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import snowballstemmer

__all__ = ["LANGUAGES", "guess_language", "passage_terms", "terms"]

_WORD = re.compile(r"\w+")
# A few of each language's commonest words, none shared by two lists: enough to tell
# the languages apart over a paragraph, and no model to load.
_STOPWORDS: dict[str, frozenset[str]] = {
    "english": frozenset(
        "the and is are of to you your for with this that not be at on from have it "
        "will can what how".split()
    ),
    "german": frozenset(
        "der die und ist nicht sie mit für auf ein eine den dem wir ihr sich auch bei "
        "oder wie zu wird haben".split()
    ),
    "french": frozenset(
        "le la les et est une des du dans pour pas sur au aux vous nous qui ce sont "
        "avec ou être".split()
    ),
    "spanish": frozenset(
        "el los las y es del al como más pero sus está son hay muy también desde hasta "
        "cuando puede este esta".split()
    ),
    "italian": frozenset(
        "il gli della delle dei è e che per non sono alla nel sul come anche ogni si "
        "degli questo".split()
    ),
    "dutch": frozenset(
        "de het een van ik je niet dat op zijn voor met ook er maar om bij worden wordt".split()
    ),
    "portuguese": frozenset("o os as um uma do da dos das em no na não com ao mais são".split()),
}
LANGUAGES = tuple(_STOPWORDS)
_DEFAULT = "english"


def guess_language(texts: Iterable[str]) -> str:
    """The language of ``LANGUAGES`` whose common words ``texts`` use most; English when
    none is used at all."""
    counts: Counter[str] = Counter()
    for text in texts:
        for word in _WORD.findall(text.casefold()):
            for language, words in _STOPWORDS.items():
                if word in words:
                    counts[language] += 1
    if not counts:
        return _DEFAULT
    # Ties go to the order of LANGUAGES, so the guess never depends on the set's order.
    return max(LANGUAGES, key=lambda language: counts[language])


@functools.cache
def _stemmer(language: str) -> snowballstemmer.Stemmer:
    # On first use: the package loads every language it has, which an instance that never
    # searches a document would carry for nothing.
    import snowballstemmer

    return snowballstemmer.stemmer(language if language in _STOPWORDS else _DEFAULT)


# Bounded: a stemmer in pure Python takes tens of microseconds a word, and a document
# repeats its words (docs/adr/0801-lexical-statistics.md).
@functools.lru_cache(maxsize=1 << 16)
def _stem(language: str, word: str) -> str:
    return _fold(_stemmer(language).stemWord(word))


def _fold(word: str) -> str:
    """``word`` without its accents (NFKD, combining marks dropped; the blanks a few
    ligatures decompose to, too, so that stored terms split on blanks)."""
    if word.isascii():
        return word
    return "".join(
        c
        for c in unicodedata.normalize("NFKD", word)
        if not unicodedata.combining(c) and not c.isspace()
    )


def terms(text: str, language: str = _DEFAULT) -> list[str]:
    """``text``'s words and numbers of two characters or more, case-folded, stemmed in
    ``language`` and then stripped of accents (any script: ``\\w`` is Unicode's)."""
    stems = (_stem(language, w) for w in _WORD.findall(text.casefold()) if len(w) > 1)
    return [s for s in stems if s]


def passage_terms(document: str, passages: Sequence[str]) -> tuple[str, list[str]]:
    """``document``'s language and each of ``passages``' terms in it, space-separated:
    what ingestion stores for the lexical score."""
    language = guess_language([document])
    return language, [" ".join(terms(p, language)) for p in passages]
