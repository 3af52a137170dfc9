"""Every fact about the languages in one place: codes and their tags, names, scripts and sentence ends.

Plain data and small functions (no torch, no transformers): the CLI, metrics, noising, generation and the server
all read them from here.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from .errors import RecipeError

Lang = Literal["bo", "ug", "kk", "mn", "zh"]
"""The languages XLM-SWCM is built for: Tibetan, Uyghur, Kazakh, Mongolian, and Chinese as the pivot."""
LANGS: tuple[str, ...] = get_args(Lang)
"""Their codes; every one gets a language tag (`<bo>` ...) right after `<s>` (the paper's order)."""
MINORITY_LANGS: tuple[str, ...] = ("ug", "kk", "mn", "bo")
"""The low-resource targets (paired with zh in translation); the order reports and the quickstart use."""

# A tag's embedding starts as the mean of the pieces of the language's own name, so tags start apart from each other
# and near text of their language.
LANGUAGE_NAMES: dict[str, str] = {
    "bo": "བོད་ཡིག",
    "ug": "ئۇيغۇرچە",
    "kk": "қазақ тілі",
    "mn": "монгол хэл",
    "zh": "中文",
    "en": "English",
}

# Script of a code point, by Unicode block (the scripts these languages are written in).
SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0F00, 0x0FFF, "tibetan"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0x0400, 0x052F, "cyrillic"),
    (0x1800, 0x18AF, "mongolian"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xF900, 0xFAFF, "han"),
    (0x20000, 0x2FA1F, "han"),
    (0x3040, 0x30FF, "kana"),
)
# Scripts each language is written in (Kazakh: Cyrillic, and Arabic in China; Mongolian: Cyrillic and traditional).
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    "bo": frozenset({"tibetan"}),
    "ug": frozenset({"arabic"}),
    "kk": frozenset({"cyrillic", "arabic"}),
    "mn": frozenset({"cyrillic", "mongolian"}),
    "zh": frozenset({"han"}),
}
TIBETAN_DELIMITERS = frozenset("\u0f0b\u0f0c\u0f0d\u0f0e\u0f0f\u0f10\u0f11\u0f12\u0f14")  # tsheg, shads, ...
"""Tibetan marks between syllables and clauses: word boundaries for metrics and whole-word masking."""
WORD_JOINERS = frozenset({"\u200c", "\u200d", "\u180e", "\u202f"})
"""Inside words: ZWNJ / ZWJ (Uyghur), the Mongolian vowel separator and narrow no-break space."""
SENTENCE_ENDS = ".!?。！？；།༎؟۔᠃᠉"
"""Sentence-final marks: Latin / Cyrillic, CJK, Tibetan shads, Arabic question mark and full stop, Mongolian."""
SENTENCE_END = re.compile(rf"(?<=[{re.escape(SENTENCE_ENDS)}])\s*")


def script_of(char: str) -> str:
    """The script of one character: a name from SCRIPT_RANGES, 'latin' for ASCII letters, else 'other'."""
    code = ord(char)
    for low, high, name in SCRIPT_RANGES:
        if low <= code <= high:
            return name
    if char.isascii() and char.isalpha():
        return "latin"
    return "other"


def scripts_of_language(lang: str) -> frozenset[str]:
    """The scripts `lang` is written in; an unknown code is a ValueError naming the known ones."""
    if lang not in LANGUAGE_SCRIPTS:
        raise RecipeError(f"unknown language {lang!r}; known: {sorted(LANGUAGE_SCRIPTS)}")
    return LANGUAGE_SCRIPTS[lang]


def lang_tag(code: str) -> str:
    """`bo` -> `<bo>`; a tag passed in already (`<bo>`) is returned unchanged."""
    code = code.strip()
    if not code or any(c.isspace() for c in code):
        raise RecipeError(f"language code {code!r} must be a non-empty word without spaces")
    return code if code.startswith("<") and code.endswith(">") else f"<{code}>"


def lang_code(tag_or_code: str) -> str:
    """`<bo>` or `bo` -> `bo`."""
    return lang_tag(tag_or_code)[1:-1]
