"""The words the synthetic marketplace is written in, read from `words.json` beside this module.

`words.json` holds, for each of up to 20 categories, its nouns, materials, uses, four styles
(each a name and its adjectives), brands and extra sentences; then generic title adjectives,
colours, title suffixes, and the sentence templates of item descriptions. A template's fields
(`{noun}`, `{style}`, `{an_adj}`, `{material}`, `{use}`, `{brand}`, `{title}`, `{colour}`, ...)
are filled by `catalog`. The order of every list is part of the data: the generator draws
indices into them, so reordering a list changes the generated files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "BODY_TEMPLATES",
    "CATEGORIES",
    "COLOURS",
    "GENERIC_ADJECTIVES",
    "LEAD_TEMPLATES",
    "N_STYLES",
    "TITLE_SUFFIXES",
    "Category",
]

N_STYLES = 4


@dataclass(frozen=True)
class Category:
    """Vocabulary of one category; `styles` maps four style names to their adjectives."""

    name: str
    nouns: tuple[str, ...]
    materials: tuple[str, ...]
    uses: tuple[str, ...]
    styles: tuple[tuple[str, tuple[str, ...]], ...]
    brands: tuple[str, ...]
    extras: tuple[str, ...]


def _category(entry: dict) -> Category:
    """A `Category` from its `words.json` entry; it must have `N_STYLES` styles."""
    styles = tuple((name, tuple(adjectives)) for name, adjectives in entry["styles"].items())
    if len(styles) != N_STYLES:
        raise ValueError(f"category {entry['name']!r} needs {N_STYLES} styles")
    return Category(
        name=entry["name"],
        nouns=tuple(entry["nouns"]),
        materials=tuple(entry["materials"]),
        uses=tuple(entry["uses"]),
        styles=styles,
        brands=tuple(entry["brands"]),
        extras=tuple(entry["extras"]),
    )


_WORDS = json.loads(resources.files(__package__).joinpath("words.json").read_text(encoding="utf-8"))
CATEGORIES: tuple[Category, ...] = tuple(_category(entry) for entry in _WORDS["categories"])
GENERIC_ADJECTIVES: tuple[str, ...] = tuple(_WORDS["generic_adjectives"])
COLOURS: tuple[str, ...] = tuple(_WORDS["colours"])
TITLE_SUFFIXES: tuple[str, ...] = tuple(_WORDS["title_suffixes"])
LEAD_TEMPLATES: tuple[str, ...] = tuple(_WORDS["lead_templates"])
BODY_TEMPLATES: tuple[str, ...] = tuple(_WORDS["body_templates"])
