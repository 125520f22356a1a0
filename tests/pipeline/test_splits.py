"""Tests of the train/eval split rules."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.history import TimelineEvent
from pipeline.records import Event
from pipeline.splits import (
    SplitRule,
    assign_splits,
    event_key,
    fraction_threshold,
    quantile_cutoff,
    smallest_distinct,
)


def ev(user: str, item: str, timestamp: int, event_type: str = "click", line: int = 1) -> Event:
    return Event(user, item, timestamp, event_type, 1.0, 1.0, "e.jsonl", line)


def timeline(*events: Event) -> list[TimelineEvent]:
    return [TimelineEvent(e, (), ()) for e in events]


def test_temporal_cutoff_puts_events_at_or_after_it_in_eval():
    rule = SplitRule("temporal", cutoff=100)
    events = timeline(ev("u", "a", 98), ev("u", "b", 99), ev("u", "c", 100), ev("u", "d", 101))
    assert assign_splits(events, rule) == [False, False, True, True]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, []),
        (1, [False]),
        (2, [False, True]),
        (4, [False, False, False, True]),
    ],
)
def test_leave_last_out(n, expected):
    events = timeline(*(ev("u", f"i{k}", k) for k in range(n)))
    assert assign_splits(events, SplitRule("leave_last_out")) == expected


def test_unknown_method():
    with pytest.raises(ValueError, match="bogus"):
        assign_splits(timeline(ev("u", "a", 1)), SplitRule("bogus"))


SYNTHETIC = [ev(f"u{k % 500}", f"i{k % 997}", 1_000_000 + k) for k in range(10_000)]


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_random_split_gives_about_the_fraction(fraction):
    rule = SplitRule("random", threshold=fraction_threshold(fraction), seed=42)
    flags = assign_splits(timeline(*SYNTHETIC), rule)
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
    assert not any(assign_splits(events, SplitRule("random", threshold=-1, seed=0)))
    everything = SplitRule("random", threshold=fraction_threshold(1.0), seed=0)
    assert all(assign_splits(events, everything))


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
