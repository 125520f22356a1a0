"""Tests of the train/validation/eval split rules and the cold-item draw."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from pipeline.preprocess.history import TimelineEvent
from pipeline.preprocess.records import Event
from pipeline.preprocess.splits import (
    EVAL,
    TRAIN,
    VALIDATION,
    SplitRule,
    assign_splits,
    event_key,
    fraction_threshold,
    is_cold_item,
    item_key,
    quantile_at,
    quantile_cutoff,
    share_before,
    smallest_distinct,
    temporal_rule,
    validation_key,
)

T, V, E = TRAIN, VALIDATION, EVAL


def ev(user: str, item: str, timestamp: int, event_type: str = "click", line: int = 1) -> Event:
    return Event(user, item, timestamp, event_type, 1.0, 1.0, "e.jsonl", line)


def timeline(*events: Event) -> list[TimelineEvent]:
    return [TimelineEvent(e, (), ()) for e in events]


def eval_flags(events: list[TimelineEvent], rule: SplitRule) -> list[bool]:
    return [name == EVAL for name in assign_splits(events, rule)]


def test_temporal_cutoff_puts_events_at_or_after_it_in_eval():
    rule = SplitRule("temporal", cutoff=100)
    events = timeline(ev("u", "a", 98), ev("u", "b", 99), ev("u", "c", 100), ev("u", "d", 101))
    assert assign_splits(events, rule) == [T, T, E, E]


def test_temporal_validation_is_between_the_two_cutoffs():
    rule = SplitRule("temporal", cutoff=100, validation_cutoff=90)
    events = timeline(*(ev("u", f"i{t}", t) for t in (80, 89, 90, 99, 100, 120)))
    assert assign_splits(events, rule) == [T, T, V, V, E, E]


@pytest.mark.parametrize(
    ("n", "validation_fraction", "expected"),
    [
        (0, 0.1, []),
        (1, 0.1, [T]),
        (2, 0.1, [T, E]),  # too few for a validation event: train keeps one
        (3, 0.1, [T, V, E]),
        (4, 0.1, [T, T, V, E]),
        (4, 0.0, [T, T, T, E]),
    ],
)
def test_leave_last_out(n, validation_fraction, expected):
    events = timeline(*(ev("u", f"i{k}", k) for k in range(n)))
    rule = SplitRule("leave_last_out", validation_fraction=validation_fraction)
    assert assign_splits(events, rule) == expected


def test_unknown_method():
    with pytest.raises(ValueError, match="bogus"):
        assign_splits(timeline(ev("u", "a", 1)), SplitRule("bogus"))


SYNTHETIC = [ev(f"u{k % 500}", f"i{k % 997}", 1_000_000 + k) for k in range(10_000)]


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_random_split_gives_about_the_fraction(fraction):
    rule = SplitRule("random", threshold=fraction_threshold(fraction), seed=42)
    flags = eval_flags(timeline(*SYNTHETIC), rule)
    # binomial standard deviation on 10k events is at most 0.005; allow 4 of them
    assert abs(sum(flags) / len(flags) - fraction) < 0.02


def test_random_split_is_stable_across_calls_and_input_order():
    rule = SplitRule("random", threshold=fraction_threshold(0.2), seed=7)
    flags = assign_splits(timeline(*SYNTHETIC), rule)
    assert assign_splits(timeline(*SYNTHETIC), rule) == flags
    by_event = dict(zip(SYNTHETIC, flags, strict=True))
    shuffled = SYNTHETIC[:]
    random.Random(3).shuffle(shuffled)
    again = assign_splits(timeline(*shuffled), rule)
    assert again == [by_event[e] for e in shuffled]


def test_random_split_ignores_label_weight_and_position():
    rule = SplitRule("random", threshold=fraction_threshold(0.5), seed=1)
    base = SYNTHETIC[:200]
    moved = [e._replace(label=5.0, weight=2.0, source="other.jsonl", line=e.line + 9) for e in base]
    assert assign_splits(timeline(*moved), rule) == assign_splits(timeline(*base), rule)


def test_random_split_extremes():
    events = timeline(*SYNTHETIC[:1000])
    assert not any(eval_flags(events, SplitRule("random", threshold=-1, seed=0)))
    everything = SplitRule("random", threshold=fraction_threshold(1.0), seed=0)
    assert all(eval_flags(events, everything))


def test_event_key_depends_on_seed_and_identity():
    e = ev("u1", "i1", 100)
    assert event_key(e, 1) == event_key(e, 1)
    assert event_key(e, 1) != event_key(e, 2)
    for other in (
        ev("u2", "i1", 100),
        ev("u1", "i2", 100),
        ev("u1", "i1", 101),
        ev("u1", "i1", 100, "buy"),
    ):
        assert event_key(other, 1) != event_key(e, 1)
    assert 0 <= event_key(e, 1) < 1 << 64


def test_event_key_fields_do_not_run_together():
    assert event_key(ev("u1", "1", 5), 0) != event_key(ev("u", "11", 5), 0)


def test_seed_changes_which_events_are_eval():
    threshold = fraction_threshold(0.5)
    events = timeline(*SYNTHETIC[:1000])
    a = assign_splits(events, SplitRule("random", threshold=threshold, seed=1))
    b = assign_splits(events, SplitRule("random", threshold=threshold, seed=2))
    assert a != b


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.5, (1 << 63) - 1), (0.25, (1 << 62) - 1), (1.0, (1 << 64) - 1), (0.0, -1)],
)
def test_fraction_threshold(fraction, expected):
    assert fraction_threshold(fraction) == expected


@pytest.mark.parametrize(
    ("quantiles", "fraction", "expected"),
    [
        (list(range(0, 101, 10)), 0.1, 90),
        (list(range(0, 101, 10)), 0.3, 70),
        ([0, 25, 50, 75, 100], 0.25, 75),
        ([0, 25, 50, 75, 100], 0.5, 50),
        ([5, 7], 0.9, 5),
        ([5, 7], 0.1, 7),
        ([42], 0.1, 42),
    ],
)
def test_quantile_cutoff(quantiles, fraction, expected):
    assert quantile_cutoff(quantiles, fraction) == expected


def test_quantile_cutoff_needs_events():
    with pytest.raises(ValueError, match="no events"):
        quantile_cutoff([], 0.1)


def test_smallest_distinct():
    keys = np.array([9, 3, 7, 3, 1, 9, 2**64 - 1], dtype=np.uint64)
    assert smallest_distinct(keys, 3).tolist() == [1, 3, 7]
    assert smallest_distinct(keys, 10).tolist() == [1, 3, 7, 9, 2**64 - 1]
    assert smallest_distinct(keys, 0).tolist() == []
    assert smallest_distinct(np.array([], dtype=np.uint64), 2).tolist() == []


def _split_shares(names: list[str]) -> tuple[float, float]:
    """(eval share of all events, validation share of the non-eval events)."""
    n_eval, n_validation = names.count(EVAL), names.count(VALIDATION)
    return n_eval / len(names), n_validation / (len(names) - n_eval)


def _random_rule(eval_fraction: float, validation_fraction: float, seed: int = 42) -> SplitRule:
    return SplitRule(
        "random",
        threshold=fraction_threshold(eval_fraction),
        seed=seed,
        validation_fraction=validation_fraction,
        validation_threshold=fraction_threshold(validation_fraction),
    )


@pytest.mark.parametrize(("eval_fraction", "validation_fraction"), [(0.1, 0.1), (0.2, 0.25)])
def test_random_validation_is_about_the_fraction_of_non_eval_events(
    eval_fraction, validation_fraction
):
    names = assign_splits(timeline(*SYNTHETIC), _random_rule(eval_fraction, validation_fraction))
    eval_share, validation_share = _split_shares(names)
    # ≥ 7,500 non-eval events: binomial standard deviation ≤ 0.005; allow 4 of them
    assert abs(eval_share - eval_fraction) < 0.02
    assert abs(validation_share - validation_fraction) < 0.02


def test_random_validation_is_seeded_and_deterministic():
    events = timeline(*SYNTHETIC[:2000])
    names = assign_splits(events, _random_rule(0.2, 0.3, seed=5))
    assert assign_splits(events, _random_rule(0.2, 0.3, seed=5)) == names
    assert assign_splits(events, _random_rule(0.2, 0.3, seed=6)) != names


def test_random_validation_leaves_eval_unchanged():
    events = timeline(*SYNTHETIC[:2000])
    without = assign_splits(events, _random_rule(0.2, 0.0))
    with_validation = assign_splits(events, _random_rule(0.2, 0.3))
    assert [n == EVAL for n in with_validation] == [n == EVAL for n in without]
    assert VALIDATION not in without


def test_validation_key_is_independent_of_the_eval_key():
    # Among the events whose eval key is low (eval) and high (not eval), about the same share has
    # a low validation key: the two draws do not overlap.
    threshold = fraction_threshold(0.3)
    low = [validation_key(e, 42) <= threshold for e in SYNTHETIC if event_key(e, 42) <= threshold]
    high = [validation_key(e, 42) <= threshold for e in SYNTHETIC if event_key(e, 42) > threshold]
    assert abs(sum(low) / len(low) - 0.3) < 0.04 and abs(sum(high) / len(high) - 0.3) < 0.03
    e = SYNTHETIC[0]
    assert validation_key(e, 42) not in (event_key(e, 42), event_key(e, 43))


ITEMS = [f"item{k}" for k in range(2000)]


def test_cold_items_are_about_the_fraction_and_depend_on_the_id_and_seed_only():
    rule = SplitRule("temporal", cutoff=10**12, seed=42, cold_item_fraction=0.2)
    cold = {i for i in ITEMS if is_cold_item(i, rule)}
    # binomial standard deviation on 2,000 items ≈ 0.009; allow 4 of them
    assert abs(len(cold) / len(ITEMS) - 0.2) < 0.04
    assert {i for i in ITEMS if is_cold_item(i, rule)} == cold
    other_seed = SplitRule("temporal", cutoff=10**12, seed=7, cold_item_fraction=0.2)
    assert {i for i in ITEMS if is_cold_item(i, other_seed)} != cold
    assert not any(is_cold_item(i, SplitRule("temporal", cutoff=0, seed=42)) for i in ITEMS)


def test_item_key_is_a_fixed_hash_of_the_id():
    # Pinned: a change of derivation would silently move items in and out of the cold set
    # between runs (blake2b does not depend on the process, unlike Python's hash).
    assert item_key("i1", 42) == 0x2D1AF53660595B43
    assert item_key("i1", 42) != item_key("i1", 43) != item_key("i2", 42)


@pytest.mark.parametrize(
    "rule",
    [
        SplitRule("temporal", cutoff=1_002_500, validation_cutoff=1_002_000),
        SplitRule("leave_last_out", validation_fraction=0.1),
        _random_rule(0.1, 0.2),
    ],
    ids=["temporal", "leave_last_out", "random"],
)
def test_every_event_of_a_cold_item_is_eval_under_every_rule(rule):
    rule = replace(rule, seed=42, cold_item_fraction=0.3)
    events = timeline(*SYNTHETIC[:3000])
    names = assign_splits(events, rule)
    cold = [is_cold_item(t.event.item_id, rule) for t in events]
    assert 0 < sum(cold) < len(cold)
    assert all(n == EVAL for n, c in zip(names, cold, strict=True) if c)
    warm = [n for n, c in zip(names, cold, strict=True) if not c]
    assert TRAIN in warm and VALIDATION in warm and EVAL in warm


def test_leave_last_out_counts_only_warm_events():
    rule = SplitRule("leave_last_out", seed=42, validation_fraction=0.1, cold_item_fraction=0.5)
    cold = [i for i in ITEMS if is_cold_item(i, rule)][:2]
    warm = [i for i in ITEMS if not is_cold_item(i, rule)][:3]
    events = timeline(
        ev("u", warm[0], 1), ev("u", cold[0], 2), ev("u", warm[1], 3), ev("u", warm[2], 4),
        ev("u", cold[1], 5),
    )  # fmt: skip
    # the warm events a, b, c split as leave-last-out; both cold events are eval
    assert assign_splits(events, rule) == [T, E, V, E, E]


@pytest.mark.parametrize(
    ("quantiles", "share", "expected"),
    [(list(range(0, 101, 10)), 0.6, 60), (list(range(0, 101, 10)), 0.64, 60), ([5, 7], -1, 5)],
)
def test_quantile_at(quantiles, share, expected):
    assert quantile_at(quantiles, share) == expected


@pytest.mark.parametrize(
    ("quantiles", "cutoff", "expected"),
    [
        (list(range(0, 101, 10)), 80, 0.8),  # 8 of the 10 steps are below 80
        (list(range(0, 101, 10)), 75, 0.8),
        (list(range(0, 101, 10)), 0, 0.0),
        (list(range(0, 101, 10)), 500, 1.0),
        ([42], 42, 0.0),
        ([42], 43, 1.0),
    ],
)
def test_share_before(quantiles, cutoff, expected):
    assert share_before(quantiles, cutoff) == pytest.approx(expected)


QUANTILES = list(range(0, 101, 10))  # event times 0 … 100, evenly spread


@pytest.mark.parametrize(
    ("cutoff", "validation_fraction", "expected"),
    [
        (None, 0.25, (80, 60)),  # eval from the 0.8 quantile; validation from 0.8 × 0.75 = 0.6
        (80, 0.25, (80, 60)),  # an explicit cutoff at the same place gives the same slice
        (70, 0.25, (70, 50)),  # 0.7 before it; validation from 0.7 × 0.75 = 0.525 → 0.5
        (None, 0.0, (80, None)),
    ],
)
def test_temporal_rule_second_cutoff(cutoff, validation_fraction, expected):
    base = SplitRule("temporal", seed=3, validation_fraction=validation_fraction)
    rule = temporal_rule(base, QUANTILES, 0.2, cutoff)
    assert (rule.cutoff, rule.validation_cutoff) == expected
    assert (rule.seed, rule.validation_fraction) == (3, validation_fraction)


def test_temporal_rule_without_events():
    base = SplitRule("temporal", validation_fraction=0.1)
    assert temporal_rule(base, [], 0.2).cutoff == 0
    assert temporal_rule(base, [], 0.2, 55) == SplitRule(
        "temporal", cutoff=55, validation_fraction=0.1
    )
