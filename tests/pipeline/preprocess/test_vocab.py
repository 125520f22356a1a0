"""Tests of vocabulary selection and count files."""

from __future__ import annotations

import pytest

from pipeline.preprocess.vocab import counts_lines, merge_counts, select_vocabulary

COUNTS = {
    "b": (5, 6),
    "a": (5, 6),
    "c": (5, 9),
    "d": (7, 7),
    "e": (0, 4),
    "f": (1, 1),
}


def test_order_is_train_desc_then_total_desc_then_id():
    assert select_vocabulary(COUNTS, min_count=1) == ["d", "c", "a", "b", "f", "e"]


@pytest.mark.parametrize(
    ("min_count", "expected"),
    [
        (0, ["d", "c", "a", "b", "f", "e"]),
        (2, ["d", "c", "a", "b", "e"]),
        (6, ["d", "c", "a", "b"]),
        (7, ["d", "c"]),
        (10, []),
    ],
)
def test_min_count_applies_to_the_total(min_count, expected):
    assert select_vocabulary(COUNTS, min_count) == expected


def test_universe_keeps_zero_count_catalog_items_and_ignores_ids_outside():
    universe = ["z", "a", "y", "e"]
    assert select_vocabulary(COUNTS, 0, universe=universe) == ["a", "e", "y", "z"]
    assert select_vocabulary(COUNTS, 1, universe=universe) == ["a", "e"]
    assert select_vocabulary(COUNTS, 0, universe=iter(universe)) == ["a", "e", "y", "z"]
    assert select_vocabulary(COUNTS, 0, universe=[]) == []


def test_empty_counts():
    assert select_vocabulary({}, 1) == []


def test_merge_counts_sums_per_id():
    merged = merge_counts([{"a": (1, 2), "b": (0, 1)}, {}, {"a": (3, 4)}, {"c": (0, 5)}])
    assert merged == {"a": (4, 6), "b": (0, 1), "c": (0, 5)}
    assert merge_counts([]) == {}


def test_merge_counts_leaves_its_inputs_alone():
    part = {"a": (1, 2)}
    merge_counts([part, part])
    assert part == {"a": (1, 2)}


def test_counts_lines_in_vocabulary_order():
    vocabulary = ["d", "a", "zzz"]
    assert counts_lines(vocabulary, COUNTS) == ["d\t7\t7", "a\t5\t6", "zzz\t0\t0"]
    assert counts_lines([], COUNTS) == []
