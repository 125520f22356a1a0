"""Train/validation/eval splits: a global time cutoff, leave-last-out per user, or a seeded hash.

Every rule is deterministic: the cutoffs and the random thresholds are computed once over the
whole data set and handed to the workers, and the random keys are hashes of the event (or of the
item id, for the cold-item draw), not process state. Validation is carved from the events the
rule leaves before eval, so model selection never looks at the eval split.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass, replace

import numpy as np

from pipeline.preprocess.history import TimelineEvent
from pipeline.preprocess.records import Event

__all__ = [
    "EVAL",
    "SPLITS",
    "TRAIN",
    "VALIDATION",
    "SplitRule",
    "assign_splits",
    "event_key",
    "fraction_threshold",
    "is_cold_item",
    "item_key",
    "quantile_at",
    "quantile_cutoff",
    "share_before",
    "smallest_distinct",
    "temporal_rule",
    "validation_key",
]

TRAIN, VALIDATION, EVAL = "train", "validation", "eval"
SPLITS = (TRAIN, VALIDATION, EVAL)

_KEY_SPACE = 1 << 64
# Salts keep the validation and cold-item draws independent of the eval draw under the same seed
# (a seed + 1 would make seed 42's validation keys seed 43's eval keys).
_VALIDATION_SALT = "validation\x1e"
_COLD_ITEM_SALT = "cold_item\x1e"


@dataclass(frozen=True)
class SplitRule:
    """A resolved split (written to the manifest as `split`).

    Attributes:
      method: `temporal`, `leave_last_out` or `random`.
      cutoff: `temporal`: events at or after this epoch second are eval.
      threshold: `random`: events whose `event_key` is at most this are eval.
      seed: The hash seed of the `random` split, of its validation draw and of the cold items.
      validation_fraction: The configured validation share; for `leave_last_out` it only
        switches the validation slice on (> 0) or off.
      validation_cutoff: `temporal`: events at or after this and before `cutoff` are
        validation; None for no validation.
      validation_threshold: `random`: non-eval events whose `validation_key` is at most this
        are validation; None for no validation.
      cold_item_fraction: Share of items (by `item_key`) whose every event is eval.
    """

    method: str
    cutoff: int | None = None
    threshold: int | None = None
    seed: int = 0
    validation_fraction: float = 0.0
    validation_cutoff: int | None = None
    validation_threshold: int | None = None
    cold_item_fraction: float = 0.0


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def event_key(event: Event, seed: int, salt: str = "") -> int:
    """A uniform 64-bit key of the event's identity (user, item, time, type), the seed and a
    salt (empty for the eval draw, so its keys never change)."""
    return _hash64(
        f"{salt}{seed}\x1f{event.user_id}\x1f{event.item_id}\x1f{event.timestamp}"
        f"\x1f{event.event_type}"
    )


def validation_key(event: Event, seed: int) -> int:
    """The `random` split's validation key: independent of `event_key(event, seed)`."""
    return event_key(event, seed, _VALIDATION_SALT)


def item_key(item_id: str, seed: int) -> int:
    """A uniform 64-bit key of an item id and the seed, for the cold-item draw: it depends on
    the id alone, so an item is cold on every runner, in every run, whatever its events."""
    return _hash64(f"{_COLD_ITEM_SALT}{seed}\x1f{item_id}")


def fraction_threshold(eval_fraction: float) -> int:
    """The key threshold that puts `eval_fraction` of keys at or below it in expectation."""
    return min(_KEY_SPACE - 1, int(eval_fraction * _KEY_SPACE) - 1)


def is_cold_item(item_id: str, rule: SplitRule) -> bool:
    """Whether the item-cold-start protocol sends every event of this item to eval."""
    return rule.cold_item_fraction > 0 and item_key(item_id, rule.seed) <= fraction_threshold(
        rule.cold_item_fraction
    )


def quantile_at(quantiles: list[int], share: float) -> int:
    """The event time below which about `share` of events fall, from evenly spaced quantiles
    (min … max)."""
    if not quantiles:
        raise ValueError("no events to compute a temporal cutoff from")
    index = round(min(max(share, 0.0), 1.0) * (len(quantiles) - 1))
    return int(quantiles[index])


def quantile_cutoff(quantiles: list[int], eval_fraction: float) -> int:
    """The eval cutoff from evenly spaced quantiles (min … max) of event times."""
    return quantile_at(quantiles, 1.0 - eval_fraction)


def share_before(quantiles: list[int], cutoff: int) -> float:
    """About the share of events strictly before `cutoff`, from evenly spaced quantiles: the
    inverse of `quantile_at`, for an explicit cutoff."""
    if not quantiles:
        raise ValueError("no events to compute a share of events from")
    position = bisect_left(quantiles, cutoff)
    if len(quantiles) == 1:
        return float(position)
    return min(1.0, position / (len(quantiles) - 1))


def temporal_rule(
    base: SplitRule, quantiles: list[int], eval_fraction: float, cutoff: int | None = None
) -> SplitRule:
    """`base` with the temporal cutoffs filled in from the quantiles of all event times.

    Eval starts at `cutoff` when given, else at the `1 - eval_fraction` quantile. Validation is
    the latest `base.validation_fraction` of the events before eval: with p the share before the
    eval cutoff, it starts at the `p * (1 - validation_fraction)` quantile.
    """
    if not quantiles:  # nothing kept: the job fails later, naming the empty splits
        return replace(base, cutoff=0 if cutoff is None else cutoff)
    if cutoff is None:
        cutoff = quantile_cutoff(quantiles, eval_fraction)
        share = 1.0 - eval_fraction
    else:
        share = share_before(quantiles, cutoff)
    validation_cutoff = None
    if base.validation_fraction > 0:
        validation_cutoff = quantile_at(quantiles, share * (1.0 - base.validation_fraction))
    return replace(base, cutoff=cutoff, validation_cutoff=validation_cutoff)


def assign_splits(timeline: list[TimelineEvent], rule: SplitRule) -> list[str]:
    """For one user's ordered timeline, each event's split: `train`, `validation` or `eval`.

    Events on cold items are eval whatever their time; the rule divides the others, so a
    leave-last-out user's last event is their last event on a warm item.
    """
    cold = [is_cold_item(t.event.item_id, rule) for t in timeline]
    warm = iter(_rule_splits([t for t, c in zip(timeline, cold, strict=True) if not c], rule))
    return [EVAL if c else next(warm) for c in cold]


def _rule_splits(timeline: list[TimelineEvent], rule: SplitRule) -> list[str]:
    if rule.method == "temporal":
        return [_temporal_split(t.event.timestamp, rule) for t in timeline]
    if rule.method == "leave_last_out":
        return _leave_last_out(len(timeline), rule.validation_fraction > 0)
    if rule.method == "random":
        return [_random_split(t.event, rule) for t in timeline]
    raise ValueError(f"unknown split method {rule.method!r}")


def _temporal_split(timestamp: int, rule: SplitRule) -> str:
    assert rule.cutoff is not None
    if timestamp >= rule.cutoff:
        return EVAL
    if rule.validation_cutoff is not None and timestamp >= rule.validation_cutoff:
        return VALIDATION
    return TRAIN


def _leave_last_out(n: int, validation: bool) -> list[str]:
    """The last of n events is eval (n ≥ 2), the second-to-last validation (n ≥ 3, so train
    keeps at least one event)."""
    out = [TRAIN] * n
    if n >= 2:
        out[-1] = EVAL
    if validation and n >= 3:
        out[-2] = VALIDATION
    return out


def _random_split(event: Event, rule: SplitRule) -> str:
    assert rule.threshold is not None
    if event_key(event, rule.seed) <= rule.threshold:
        return EVAL
    if (
        rule.validation_threshold is not None
        and validation_key(event, rule.seed) <= rule.validation_threshold
    ):
        return VALIDATION
    return TRAIN


def smallest_distinct(keys: np.ndarray, k: int) -> np.ndarray:
    """The k smallest distinct values of `keys` (uint64), sorted."""
    return np.unique(keys)[:k]
