"""A small real parallel data set that ships inside an installed package: CLDR display names from babel.

CLDR (Unicode licence) names territories, languages, scripts, currencies, months and weekdays in each locale; the
same key in two locales is a translation pair. zh <-> ug / kk / mn have about 1,000 pairs each, zh <-> bo about 270.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from babel import Locale


@dataclass(frozen=True)
class NamePair:
    key: str
    """What is named, e.g. territory:CN."""
    src: str
    tgt: str


def cldr_names(lang: str) -> dict[str, str]:
    """Display names of one locale, keyed by what they name."""
    locale = Locale.parse(lang)
    names: dict[str, str] = {}
    for kind, table in (
        ("territory", locale.territories),
        ("language", locale.languages),
        ("script", locale.scripts),
        ("currency", locale.currencies),
    ):
        names.update({f"{kind}:{code}": name for code, name in table.items()})
    for kind, table in (("month", locale.months), ("day", locale.days)):
        names.update({f"{kind}:{k}": v for k, v in table["format"]["wide"].items()})
    return {k: v.strip() for k, v in names.items() if v and v.strip()}


def cldr_pairs(src: str, tgt: str) -> list[NamePair]:
    """Pairs of names for the same key; keys whose target name just repeats the source (untranslated) are left out."""
    a, b = cldr_names(src), cldr_names(tgt)
    return [NamePair(k, a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]


def split_pairs(pairs: list[NamePair], test_fraction: float = 0.1) -> tuple[list[NamePair], list[NamePair]]:
    """A stable train / test split by a hash of the key (the same key is in the same split for every language)."""
    bucket = round(test_fraction * 1000)
    train = [p for p in pairs if zlib.crc32(p.key.encode()) % 1000 >= bucket]
    test = [p for p in pairs if zlib.crc32(p.key.encode()) % 1000 < bucket]
    return train, test
