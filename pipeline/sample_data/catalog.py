"""The synthetic catalog: items with readable titles and descriptions, and the latent structure
(category, style, popularity, when each item was added) that the user simulation draws from.

Items belong to one of up to 20 categories (sometimes a second one too) and to one of four
latent "styles" within their category (budget vs professional, hiking vs camping, ...). Titles
and descriptions are built from the category's words (`vocabulary`) and state the item's kind,
style, material and use, so text carries the same signal as behaviour. A share of items is added
near the end of the log (cold start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.core.config import SampleDataConfig
from pipeline.sample_data.vocabulary import (
    BODY_TEMPLATES,
    CATEGORIES,
    COLOURS,
    GENERIC_ADJECTIVES,
    LEAD_TEMPLATES,
    N_STYLES,
    TITLE_SUFFIXES,
    Category,
)

__all__ = ["DAY", "LOG_START", "Catalog", "build_catalog", "id_width"]

LOG_START = 1704067200
"""Start of the simulated log: 2024-01-01T00:00:00Z in epoch seconds."""

DAY = 86_400

_SECOND_CATEGORY_P = 0.2
_EMPTY_DESCRIPTION_P = 0.01
_ZIPF_EXPONENT = 1.0
_WARM_MAX_AGE_DAYS = 730
_COLD_WINDOW = (0.9, 0.97)  # Cold items are added within this share of the log.
_TITLE_SUFFIX_P = 0.3
_TITLE_STYLE_ADJECTIVE_P = 0.7  # Otherwise the title adjective is a generic one.
_SENTENCE_COUNT_P = (0.15, 0.35, 0.35, 0.15)  # 1, 2, 3 or 4 sentences.


@dataclass(frozen=True)
class Catalog:
    """The catalog's latent structure used by the user simulation.

    Attributes:
      category: Primary category index (into the categories in use) of each item.
      style: Style index (0-3) of each item within its category.
      popularity: Zipf-like popularity weight of each item within its category.
      added_at: Epoch seconds each item became available.
      members: Item indices of each category, ascending.
      category_popularity: Global share of each category among users' preferences.
      warm_cumulative: Cumulative popularity of items available from the log start.
      warm_items: The items behind `warm_cumulative`.
    """

    category: np.ndarray
    style: np.ndarray
    popularity: np.ndarray
    added_at: np.ndarray
    members: tuple[np.ndarray, ...]
    category_popularity: np.ndarray
    warm_cumulative: np.ndarray
    warm_items: np.ndarray


def _article(word: str) -> str:
    """Returns `word` with "a" or "an" in front of it."""
    head = word.split("-")[0]
    if head.isupper() and len(head) > 1:
        vowel_sound = head[0] in "AEFHILMNORSX"
    else:
        vowel_sound = word[:1].lower() in "aeiou"
    return f"{'an' if vowel_sound else 'a'} {word}"


def _capitalize(text: str) -> str:
    """Upper-cases the first character only (keeps `RGB-lit`, `iPhone`)."""
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """Draws one element uniformly."""
    return options[int(rng.integers(len(options)))]


def _title(rng: np.random.Generator, brand: str, adjective: str, noun: str) -> str:
    """Builds a title like `Northpeak Lightweight Tent`, sometimes with a model suffix."""
    words = [brand, *(_capitalize(w) for w in adjective.split()), *noun.split()]
    title = " ".join(_capitalize(w) for w in words)
    if rng.random() < _TITLE_SUFFIX_P:
        title = f"{title} {_pick(rng, TITLE_SUFFIXES)}"
    return title


def _describe(rng: np.random.Generator, fields: dict[str, str], extras: Sequence[str]) -> str:
    """Builds a 1-4 sentence description: a lead stating kind and style, then body sentences."""
    n_sentences = 1 + int(rng.choice(len(_SENTENCE_COUNT_P), p=_SENTENCE_COUNT_P))
    body = [*BODY_TEMPLATES, *extras]
    chosen = rng.choice(len(body), size=n_sentences - 1, replace=False)
    sentences = [_pick(rng, LEAD_TEMPLATES)] + [body[int(i)] for i in chosen]
    return " ".join(_capitalize(s.format(**fields)) for s in sentences)


def _item_record(
    rng: np.random.Generator,
    item_id: str,
    category: Category,
    style: int,
    second_category: str | None,
    added_at: int,
) -> dict:
    """Draws the text of one item and returns its record."""
    style_name, style_adjectives = category.styles[style]
    brand = _pick(rng, category.brands)
    noun = _pick(rng, category.nouns)
    adjectives = style_adjectives if rng.random() < _TITLE_STYLE_ADJECTIVE_P else GENERIC_ADJECTIVES
    title_adjective = _pick(rng, adjectives)
    title = _title(rng, brand, title_adjective, noun)
    adj, adj2 = (style_adjectives[int(i)] for i in rng.permutation(len(style_adjectives))[:2])
    use, use2 = (category.uses[int(i)] for i in rng.permutation(len(category.uses))[:2])
    fields = {
        "noun": noun,
        "style": style_name,
        "adj": adj,
        "adj2": adj2,
        "an_adj": _article(adj),
        "an_style": _article(style_name),
        "material": _pick(rng, category.materials),
        "use": use,
        "use2": use2,
        "brand": brand,
        "category": category.name,
        "title": title,
        "years": str(int(rng.integers(1, 6))),
        "colour": _pick(rng, COLOURS),
    }
    description = _describe(rng, fields, category.extras)
    if rng.random() < _EMPTY_DESCRIPTION_P:
        description = ""
    categories = [category.name] if second_category is None else [category.name, second_category]
    return {
        "item_id": item_id,
        "title": title,
        "description": description,
        "categories": categories,
        "brand": brand,
        "added_at": int(added_at),
    }


def id_width(n: int, minimum: int) -> int:
    """Digits needed for zero-padded ids `0 .. n-1`."""
    return max(minimum, len(str(max(n - 1, 0))))


def _assign_categories(rng: np.random.Generator, n_items: int, n_categories: int) -> np.ndarray:
    """Gives every item a primary category; every category gets at least one item."""
    sizes = rng.dirichlet(np.full(n_categories, 8.0))
    category = rng.choice(n_categories, size=n_items, p=sizes)
    category[:n_categories] = rng.permutation(n_categories)[: min(n_items, n_categories)]
    return category


def _zipf_popularity(
    rng: np.random.Generator, category: np.ndarray, n_categories: int
) -> np.ndarray:
    """Zipf-like popularity by a random rank within each category."""
    popularity = np.zeros(len(category))
    for c in range(n_categories):
        members = np.flatnonzero(category == c)
        ranks = rng.permutation(len(members))
        popularity[members] = 1.0 / (ranks + 1.0) ** _ZIPF_EXPONENT
    return popularity


def _added_times(rng: np.random.Generator, cfg: SampleDataConfig) -> np.ndarray:
    """`added_at` of each item: before the log start, or late in the log for cold items."""
    span = cfg.days * DAY
    added = LOG_START - rng.integers(0, _WARM_MAX_AGE_DAYS * DAY, size=cfg.n_items)
    n_cold = min(round(cfg.cold_item_fraction * cfg.n_items), cfg.n_items - 1)
    if n_cold > 0:
        cold = rng.choice(cfg.n_items, size=n_cold, replace=False)
        low, high = (int(span * share) for share in _COLD_WINDOW)
        added[cold] = LOG_START + rng.integers(low, high, size=n_cold)
    return added.astype(np.int64)


def build_catalog(cfg: SampleDataConfig, rng: np.random.Generator) -> tuple[list[dict], Catalog]:
    """Draws the item records and the catalog's latent structure."""
    n_categories = min(cfg.n_categories, len(CATEGORIES))
    categories = CATEGORIES[:n_categories]
    category = _assign_categories(rng, cfg.n_items, n_categories)
    style = rng.integers(0, N_STYLES, size=cfg.n_items)
    popularity = _zipf_popularity(rng, category, n_categories)
    added_at = _added_times(rng, cfg)
    width = id_width(cfg.n_items, 5)
    items = []
    for i in range(cfg.n_items):
        second = None
        if n_categories > 1 and rng.random() < _SECOND_CATEGORY_P:
            offset = 1 + int(rng.integers(n_categories - 1))
            second = categories[(int(category[i]) + offset) % n_categories].name
        items.append(
            _item_record(
                rng,
                f"i{i:0{width}d}",
                categories[int(category[i])],
                int(style[i]),
                second,
                int(added_at[i]),
            )
        )
    warm_items = np.flatnonzero(added_at <= LOG_START)
    catalog = Catalog(
        category=category,
        style=style,
        popularity=popularity,
        added_at=added_at,
        members=tuple(np.flatnonzero(category == c) for c in range(n_categories)),
        category_popularity=rng.dirichlet(np.full(n_categories, 2.0)),
        warm_cumulative=np.cumsum(popularity[warm_items]),
        warm_items=warm_items,
    )
    return items, catalog
