"""The synthetic interaction log: users with tastes, in sessions, through a purchase funnel.

Users prefer one to three categories and, within each, some styles; the items they pick follow
a Zipf-like popularity times their style affinity, so a text-aware model can beat popularity.
Users have Poisson-many sessions of 2-10 events, minutes apart, mostly within the session's
intent category, with a view -> click -> add_to_cart -> purchase funnel. No event ever
references an item before its `added_at`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.core.config import SampleDataConfig
from pipeline.sample_data.catalog import DAY, LOG_START, Catalog, build_catalog, id_width
from pipeline.sample_data.vocabulary import N_STYLES

__all__ = ["EVENT_TYPES", "SampleData", "generate"]

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
"""Event types, in funnel order."""

ProgressFn = Callable[[int, int], Any]

_PREFERRED_COUNT_P = (0.3, 0.45, 0.25)  # 1, 2 or 3 preferred categories.
_STYLE_CONCENTRATION = 0.3
_STYLE_FLOOR = 0.03
_EXPLORE_SESSION_P = 0.1
_OFF_INTENT_P = 0.15
_EXTRA_EVENTS_MEAN = 3.5
_MAX_SESSION_EVENTS = 10
_GAP_MIN_S, _GAP_MEAN_S, _GAP_MAX_S = 30, 150, 900
_SESSION_ROOM_S = 3 * 3600  # Room left at the end of the log for the last session.
_SESSION_PAUSE_S = 1800  # Minimal pause between two sessions of one user.
_NEW_VIEW_P = 0.45
_ADVANCE_P = (0.0, 0.9, 0.45, 0.5)  # Chance to move an item to funnel stage k.


@dataclass(frozen=True)
class SampleData:
    """A generated catalog and interaction log.

    Attributes:
      items: Item records (`item_id`, `title`, `description`, `categories`, `brand`,
        `added_at`), ordered by `item_id`.
      events: Event records (`user_id`, `item_id`, `timestamp`, `event_type`), ordered by
        `timestamp` then `user_id`.
    """

    items: list[dict]
    events: list[dict]


@dataclass(frozen=True)
class _Taste:
    """A user's preferences: categories with weights and, per category, style item weights."""

    categories: np.ndarray
    weights: np.ndarray
    item_weights: dict[int, np.ndarray]


def _draw_taste(rng: np.random.Generator, catalog: Catalog) -> _Taste:
    """Draws a user's preferred categories, their weights and per-category style affinity."""
    n_categories = len(catalog.members)
    n_preferred = min(n_categories, 1 + int(rng.choice(3, p=_PREFERRED_COUNT_P)))
    preferred = rng.choice(
        n_categories, size=n_preferred, replace=False, p=catalog.category_popularity
    )
    weights = rng.dirichlet(np.full(n_preferred, 1.5))
    item_weights = {}
    for c in preferred:
        members = catalog.members[int(c)]
        affinity = rng.dirichlet(np.full(N_STYLES, _STYLE_CONCENTRATION))
        scale = affinity[catalog.style[members]] + _STYLE_FLOOR
        item_weights[int(c)] = catalog.popularity[members] * scale
    return _Taste(categories=preferred, weights=weights, item_weights=item_weights)


def _draw_category(rng: np.random.Generator, taste: _Taste, n_categories: int) -> int:
    """A category from the user's preferences, or any category when exploring."""
    if rng.random() < _EXPLORE_SESSION_P:
        return int(rng.integers(n_categories))
    return int(taste.categories[int(rng.choice(len(taste.weights), p=taste.weights))])


def _draw_item(
    rng: np.random.Generator, catalog: Catalog, taste: _Taste, category: int, t: int
) -> int:
    """An item of `category` available at time `t`, by popularity times style affinity."""
    members = catalog.members[category]
    weights = taste.item_weights.get(category)
    if weights is None:
        weights = catalog.popularity[members]
    weights = weights * (catalog.added_at[members] <= t)
    cumulative = np.cumsum(weights)
    if len(cumulative) == 0 or cumulative[-1] <= 0:
        members, cumulative = catalog.warm_items, catalog.warm_cumulative
    k = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(members[min(k, len(members) - 1)])


def _session(
    rng: np.random.Generator, catalog: Catalog, taste: _Taste, start: int, end: int
) -> list[tuple[int, int, int]]:
    """One session: `(timestamp, item, event type index)` events, minutes apart."""
    n_categories = len(catalog.members)
    n_events = 2 + min(_MAX_SESSION_EVENTS - 2, int(rng.poisson(_EXTRA_EVENTS_MEAN)))
    intent = _draw_category(rng, taste, n_categories)
    events: list[tuple[int, int, int]] = []
    focus: list[int] = []  # [item, stage] of the item most recently engaged with.
    t = start
    for k in range(n_events):
        if k:
            gap = _GAP_MIN_S + int(rng.exponential(_GAP_MEAN_S))
            t += min(gap, _GAP_MAX_S)
        if t >= end:
            break
        if (
            focus
            and focus[1] < len(EVENT_TYPES) - 1
            and rng.random() >= _NEW_VIEW_P
            and rng.random() < _ADVANCE_P[focus[1] + 1]
        ):
            focus[1] += 1  # Engage further with the same item.
            events.append((t, focus[0], focus[1]))
            continue
        category = intent
        if rng.random() < _OFF_INTENT_P:
            category = _draw_category(rng, taste, n_categories)
        focus = [_draw_item(rng, catalog, taste, category, t), 0]
        events.append((t, focus[0], 0))
    return events


def _user_events(
    rng: np.random.Generator, cfg: SampleDataConfig, catalog: Catalog
) -> list[tuple[int, int, int]]:
    """All events of one user: Poisson-many sessions at random, non-overlapping times."""
    taste = _draw_taste(rng, catalog)
    span = cfg.days * DAY
    n_sessions = max(1, int(rng.poisson(cfg.sessions_per_user)))
    starts = np.sort(rng.integers(0, span - _SESSION_ROOM_S, size=n_sessions))
    events: list[tuple[int, int, int]] = []
    free_from = 0
    for offset in starts:
        start = LOG_START + max(int(offset), free_from)
        session = _session(rng, catalog, taste, start, LOG_START + span)
        if session:
            events.extend(session)
            free_from = session[-1][0] - LOG_START + _SESSION_PAUSE_S
    return events


def generate(cfg: SampleDataConfig, progress: ProgressFn | None = None) -> SampleData:
    """Generates the synthetic marketplace in memory.

    Deterministic: the same config gives the same records, in the same order.

    Args:
      cfg: Sizes, time span, cold-start share and seed.
      progress: Optional `progress(done, total)` callback, called now and then while users'
        events are generated (`total` is the number of users).

    Returns:
      The item catalog and the event log.
    """
    rng = np.random.default_rng(cfg.seed)
    items, catalog = build_catalog(cfg, rng)
    width = id_width(cfg.n_users, 4)
    step = max(1, cfg.n_users // 100)
    rows: list[tuple[int, int, int, int]] = []
    for u in range(cfg.n_users):
        rows.extend((t, u, item, kind) for t, item, kind in _user_events(rng, cfg, catalog))
        if progress is not None and ((u + 1) % step == 0 or u + 1 == cfg.n_users):
            progress(u + 1, cfg.n_users)
    rows.sort(key=lambda row: (row[0], row[1]))
    events = [
        {
            "user_id": f"u{u:0{width}d}",
            "item_id": items[item]["item_id"],
            "timestamp": t,
            "event_type": EVENT_TYPES[kind],
        }
        for t, u, item, kind in rows
    ]
    return SampleData(items=items, events=events)
