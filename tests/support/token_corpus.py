"""Texts of every shape the token estimate must not under-count, each about ``size``
characters and the same on every run (seeded), and the reference tokenizers it is
checked against: OpenAI's cl100k and o200k (``bpe-openai``, data compiled in) and the
Llama-family SentencePiece tokenizer that ships in the ``wordllama`` wheel. All offline;
dev dependencies only (docs/adr/0302-token-estimate.md)."""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

Counter = Callable[[str], int]

# The 100 most frequent Chinese characters (a common frequency list's head), and kana.
FREQUENT_HANZI = (
    "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之"
    "过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如"
)
KANA = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
)
VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnprstvz"


def reference_tokenizers() -> dict[str, Counter]:
    """``{name: text -> token count}``: no special tokens, nothing downloaded."""
    import bpe_openai
    import wordllama
    from tokenizers import Tokenizer

    def counter(encoding: Any) -> Counter:
        return lambda text: len(encoding.encode(text))

    counters = {
        name: counter(bpe_openai.get_encoding(name)) for name in ("cl100k_base", "o200k_base")
    }
    path = Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"
    llama = Tokenizer.from_file(str(path))
    counters["llama"] = lambda text: len(llama.encode(text, add_special_tokens=False).ids)
    return counters


def corpus(size: int = 20_000, seed: int = 22) -> dict[str, str]:
    """``{kind: text}``, each text ``size`` characters (the natural ones at most)."""
    r = random.Random(seed)

    def fill(piece: Callable[[], str]) -> str:
        parts: list[str] = []
        total = 0
        while total < size:
            part = piece()
            parts.append(part)
            total += len(part)
        return "".join(parts)[:size]

    def letters(low: int, high: int, alphabet: str = string.ascii_lowercase) -> str:
        return "".join(r.choice(alphabet) for _ in range(r.randint(low, high)))

    def chars(low: int, high: int) -> Callable[[], str]:
        return lambda: chr(r.randint(low, high))

    def syllables(first: str, second: str) -> str:
        return "".join(r.choice(first) + r.choice(second) for _ in range(r.randint(1, 4)))

    docs = "".join(
        (ROOT / p).read_text() for p in ("README.md", "docs/architecture.md", "docs/api.md")
    )
    code = (ROOT / "functions/promptstream/upstream/_client.py").read_text()
    texts = {
        # Natural text and code, from this repository.
        "english prose (docs)": docs[:size],
        "python code": code[:size],
        # CJK.
        "chinese, frequent characters": fill(lambda: r.choice(FREQUENT_HANZI + "，。")),
        "chinese, random ideographs": fill(chars(0x4E00, 0x9FFF)),
        "japanese kana and kanji": fill(
            lambda: r.choice([*KANA, *FREQUENT_HANZI[:40], "、", "。"])
        ),
        "korean, random syllables": fill(
            lambda: "".join(chr(r.randint(0xAC00, 0xD7A3)) for _ in range(r.randint(1, 4))) + " "
        ),
        "ideographs spaced": fill(lambda: chr(r.randint(0x4E00, 0x9FFF)) + " "),
        # Repeated short words (the issue's `a a a`), and their variants.
        "a a a": "a " * (size // 2),
        "I I I": "I " * (size // 2),
        "x, x, x": "x, " * (size // 3),
        ". . .": ". " * (size // 2),
        "abab (no spaces)": "ab" * (size // 2),
        "a b c (random)": fill(lambda: r.choice("abc") + " "),
        "single letters spaced": fill(lambda: r.choice(string.ascii_letters) + " "),
        "words one a line": fill(lambda: r.choice(["a", "the", "x"]) + "\n"),
        "a  a  (double spaces)": "a  " * (size // 3),
        # Numbers.
        "digits spaced": fill(lambda: r.choice(string.digits) + " "),
        "one long number": fill(lambda: r.choice(string.digits)),
        "decimals": fill(lambda: f"{r.uniform(-1e6, 1e6):.4f} "),
        # Random characters.
        "random printable ascii": fill(lambda: r.choice(string.printable[:94])),
        "random letters, one run": fill(lambda: r.choice(string.ascii_letters)),
        "random lowercase words": fill(lambda: letters(2, 9) + " "),
        "random short words": fill(lambda: letters(1, 3) + " "),
        "random upper-case words": fill(lambda: letters(2, 9).upper() + " "),
        "random camelCase": fill(lambda: letters(2, 6).capitalize() + letters(2, 6).capitalize()),
        "pseudo-words (consonant-vowel)": fill(lambda: syllables(CONSONANTS, VOWELS) + " "),
        "pseudo-words (vowel-consonant)": fill(lambda: syllables(VOWELS, CONSONANTS) + " "),
        "random BMP code points": fill(chars(0xA0, 0xD7FF)),
        # Emoji.
        "emoji": fill(chars(0x1F600, 0x1F64F)),
        "emoji spaced": fill(lambda: chr(r.randint(0x1F600, 0x1F64F)) + " "),
        "emoji ZWJ families": fill(lambda: "\U0001f468\u200d\U0001f469\u200d\U0001f467 "),
        # Whitespace and punctuation.
        "spaces": " " * size,
        "newlines": "\n" * size,
        "mixed whitespace": fill(lambda: r.choice([" ", "\t", "\n", "  "])),
        "punctuation runs": fill(lambda: r.choice(string.punctuation) * r.randint(1, 8)),
        "random punctuation": fill(lambda: r.choice(string.punctuation)),
        # Encodings and machine text.
        "base64": base64.b64encode(r.randbytes(size)).decode()[:size],
        "hex": r.randbytes(size).hex()[:size],
        "urls": fill(
            lambda: (
                f"https://{letters(3, 8)}.example.com/{letters(2, 9)}?id="
                f"{r.randint(0, 99_999)}&q={letters(2, 6)} "
            )
        ),
        "json": fill(
            lambda: json.dumps({"id": r.randint(0, 10**6), "name": letters(3, 8), "ok": True}) + ","
        ),
        # Other scripts, as random letters in words.
        "cyrillic words": fill(
            lambda: (
                "".join(
                    r.choice("абвгдеёжзийклмнопрстуфхцчшщъыьэюя") for _ in range(r.randint(2, 9))
                )
                + " "
            )
        ),
        "greek words": fill(
            lambda: (
                "".join(r.choice("αβγδεζηθικλμνξοπρστυφχψω") for _ in range(r.randint(2, 9))) + " "
            )
        ),
        "arabic words": fill(
            lambda: "".join(chr(r.randint(0x0621, 0x064A)) for _ in range(r.randint(2, 7))) + " "
        ),
        "devanagari words": fill(
            lambda: "".join(chr(r.randint(0x0905, 0x0939)) for _ in range(r.randint(2, 6))) + " "
        ),
        "thai": fill(chars(0x0E01, 0x0E2E)),
        "accented latin words": fill(
            lambda: "".join(r.choice("éèàùçâêîôûëïüœæñğşı") for _ in range(r.randint(1, 6))) + " "
        ),
        "math symbols": fill(chars(0x2200, 0x22FF)),
        "box drawing": fill(chars(0x2500, 0x257F)),
    }
    kinds = list(texts.values())
    texts["mixed (a slice of every kind)"] = "".join(
        text[: size // len(kinds) + 1] for text in kinds
    )[:size]
    return texts
