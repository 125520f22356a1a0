"""Train/eval splits: a global time cutoff, leave-last-out per user, or a seeded random hash.

Every rule is deterministic: the cutoff and the random threshold are computed once over the whole
data set and handed to the workers, and the random key is a hash of the event, not process state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pipeline.history import TimelineEvent
from pipeline.records import Event

__all__ = [
    "SplitRule",
    "assign_splits",
    "event_key",
    "fraction_threshold",
    "quantile_cutoff",
    "smallest_distinct",
]

_KEY_SPACE = 1 << 64


@dataclass(frozen=True)
class SplitRule:
    """A resolved split.

    Attributes:
      method: `temporal`, `leave_last_out` or `random`.
      cutoff: `temporal`: events at or after this epoch second are eval.
      threshold: `random`: events whose `event_key` is at most this are eval.
      seed: `random`: the hash seed.
    """

    method: str
    cutoff: int | None = None
    threshold: int | None = None
    seed: int = 0


def event_key(event: Event, seed: int) -> int:
    """A uniform 64-bit key of the event's identity (user, item, time, type) and the seed."""
    text = (
        f"{seed}\x1f{event.user_id}\x1f{event.item_id}\x1f{event.timestamp}\x1f{event.event_type}"
    )
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def fraction_threshold(eval_fraction: float) -> int:
    """The key threshold that puts `eval_fraction` of events in eval in expectation."""
    return min(_KEY_SPACE - 1, int(eval_fraction * _KEY_SPACE) - 1)


def quantile_cutoff(quantiles: list[int], eval_fraction: float) -> int:
    """The cutoff from evenly spaced quantiles (min … max) of event times."""
    if not quantiles:
        raise ValueError("no events to compute a temporal cutoff from")
    index = round((1.0 - eval_fraction) * (len(quantiles) - 1))
    return int(quantiles[index])


def assign_splits(timeline: list[TimelineEvent], rule: SplitRule) -> list[bool]:
    """For one user's ordered timeline, whether each event is eval (True) or train (False)."""
    if rule.method == "temporal":
        assert rule.cutoff is not None
        return [t.event.timestamp >= rule.cutoff for t in timeline]
    if rule.method == "leave_last_out":
        n = len(timeline)
        return [n >= 2 and i == n - 1 for i in range(n)]
    if rule.method == "random":
        assert rule.threshold is not None
        return [event_key(t.event, rule.seed) <= rule.threshold for t in timeline]
    raise ValueError(f"unknown split method {rule.method!r}")


def smallest_distinct(keys: np.ndarray, k: int) -> np.ndarray:
    """The k smallest distinct values of `keys` (uint64), sorted."""
    return np.unique(keys)[:k]
