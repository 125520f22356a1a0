"""Vocabularies: which ids get their own row in the model, ordered most frequent first.

A vocabulary file holds one id per line (the format `tf.keras.layers.StringLookup` reads); its
counts file holds `id<TAB>train_count<TAB>total_count`, which the model uses for popularity (logQ
correction) and to tell ids it never trained on. Ids outside a vocabulary map to the model's
out-of-vocabulary buckets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["Counts", "counts_lines", "merge_counts", "select_vocabulary"]

# id -> (train_count, total_count)
Counts = dict[str, tuple[int, int]]


def merge_counts(parts: Iterable[Mapping[str, tuple[int, int]]]) -> Counts:
    """Sums per-id (train, total) counts from several partial dicts."""
    merged: Counts = {}
    for part in parts:
        for key, (train, total) in part.items():
            old_train, old_total = merged.get(key, (0, 0))
            merged[key] = (old_train + train, old_total + total)
    return merged


def select_vocabulary(
    counts: Mapping[str, tuple[int, int]], min_count: int, universe: Iterable[str] | None = None
) -> list[str]:
    """Ids with total count ≥ `min_count`, by train count, then total count (descending), then id.

    Args:
      counts: id -> (train_count, total_count).
      min_count: The least total count kept; 0 keeps ids with no events.
      universe: When given (the item catalog), every id in it is a candidate, with count 0 if it
        is absent from `counts`; ids outside it are ignored.
    """
    if universe is not None:
        candidates = {key: counts.get(key, (0, 0)) for key in universe}
    else:
        candidates = dict(counts)
    kept = [key for key, (_, total) in candidates.items() if total >= min_count]
    kept.sort(key=lambda key: (-candidates[key][0], -candidates[key][1], key))
    return kept


def counts_lines(vocabulary: list[str], counts: Mapping[str, tuple[int, int]]) -> list[str]:
    """The counts file's lines, in vocabulary order."""
    lines = []
    for key in vocabulary:
        train, total = counts.get(key, (0, 0))
        lines.append(f"{key}\t{train}\t{total}")
    return lines
