"""Terms for the lexical score: stemmed in their language, case- and accent-folded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from promptstream.knowledge._terms import LANGUAGES, guess_language, passage_terms, terms


@pytest.mark.parametrize(
    ("language", "one", "other"),
    [
        ("english", "How many lanes does the pool have?", "The pool has six lanes"),
        ("german", "Wann sind die Öffnungszeiten?", "Unsere Öffnungszeit"),
        ("german", "Mülltonnen", "die Mülltonne"),
        ("french", "Les chiens sont-ils admis ?", "un chien"),
        ("spanish", "¿Cuántas tarifas tenéis?", "la tarifa"),
        ("italian", "le camerate", "una camerata"),
        ("dutch", "de boeken", "het boek"),
        ("portuguese", "as bibliotecas", "uma biblioteca"),
    ],
)
def test_a_word_meets_its_inflected_form_in_its_language(
    language: str, one: str, other: str
) -> None:
    assert set(terms(one, language)) & set(terms(other, language)) - {"the", "die", "de"}


def test_terms_are_folded_after_stemming() -> None:
    # The accent goes, the case goes, and "é" and "e" written either way meet.
    assert terms("ÉTÉ", "french") == terms("été", "french") == ["ete"]
    assert terms("Cafe\u0301", "english") == terms("Café", "english") == ["cafe"]
    assert terms("Straße", "german") == terms("STRASSE", "german")


def test_terms_keep_numbers_and_codes_and_drop_single_characters() -> None:
    assert terms("Error E4: a 24 V relay", "english") == ["error", "e4", "24", "relay"]


def test_stored_terms_never_hold_a_blank() -> None:
    # U+FDFA decomposes (NFKD) to words with spaces: a stored term must stay one term.
    [term] = terms("\ufdfa\ufdfa", "english")
    assert " " not in term and term


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The museum is closed on Mondays and the shop opens at ten.", "english"),
        ("Die Praxis ist am Mittwoch nicht geöffnet, und wir sind auch für Kinder da.", "german"),
        ("Le musée est fermé le lundi et les chiens ne sont pas admis.", "french"),
        (
            "El espacio abre de lunes a viernes y los socios tienen acceso con su tarjeta.",
            "spanish",
        ),
        ("Il check-out è entro le 10:30 e la colazione è servita nella sala.", "italian"),
        ("De fietsen staan in het rek en je kunt ze niet voor de ingang zetten.", "dutch"),
        ("A biblioteca não abre aos domingos e os livros são para uma semana.", "portuguese"),
    ],
)
def test_the_language_is_guessed_from_common_words(text: str, language: str) -> None:
    assert guess_language([text]) == language


def test_a_text_without_common_words_is_read_as_english() -> None:
    assert guess_language(["| 8:00 | 12:30 |", ""]) == "english"
    assert guess_language([]) == "english"


def test_the_stopword_lists_share_no_word() -> None:
    from promptstream.knowledge import _terms

    lists = [_terms._STOPWORDS[language] for language in LANGUAGES]
    for i, one in enumerate(lists):
        for other in lists[i + 1 :]:
            assert not one & other


def test_passage_terms_read_every_passage_in_the_documents_language() -> None:
    language, stored = passage_terms(
        "Die Hunde und die Katzen sind nicht im Haus.", ["Die Hunde", "Öffnungszeiten"]
    )
    assert language == "german"
    assert stored == [" ".join(terms("Die Hunde", "german")), "offnungszeit"]


def test_the_stemmers_load_on_first_use_not_with_the_functions() -> None:
    # snowballstemmer loads every language at import: an instance that never searches a
    # document must not carry them (the relay's memory at rest).
    functions = Path(__file__).resolve().parents[3] / "functions"
    code = (
        "import sys, main; from promptstream.knowledge import _terms; "
        "before = 'snowballstemmer' in sys.modules; _terms.terms('Öffnungszeiten', 'german'); "
        "print(before, 'snowballstemmer' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=functions, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]
