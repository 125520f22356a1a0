"""The job's CombineFns: partial statistics, item counts and split keys merged into one."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import numpy as np

from pipeline.preprocess.splits import smallest_distinct
from pipeline.preprocess.stats import merge_stats

__all__ = ["MergeDicts", "MergeItemCounts", "SmallestDistinctKeys"]


class MergeDicts(beam.CombineFn):
    """Merges partial statistics/count dicts with `pipeline.preprocess.stats.merge_stats`."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, element):
        return merge_stats(accumulator, element)

    def merge_accumulators(self, accumulators):
        merged: dict[str, Any] = {}
        for accumulator in accumulators:
            merged = merge_stats(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


class MergeItemCounts(beam.CombineFn):
    """Merges `item → (train, total, first_time)` dicts: counts add, first times take the min."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, element):
        for key, (train, total, first) in element.items():
            old = accumulator.get(key)
            accumulator[key] = (
                (train, total, first)
                if old is None
                else (old[0] + train, old[1] + total, min(old[2], first))
            )
        return accumulator

    def merge_accumulators(self, accumulators):
        merged: dict[str, tuple[int, int, int]] = {}
        for accumulator in accumulators:
            merged = self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


class SmallestDistinctKeys(beam.CombineFn):
    """The k smallest distinct uint64 keys, from batches of keys (for an exact eval count)."""

    def __init__(self, k: int):
        self._k = k

    def create_accumulator(self):
        return np.zeros(0, dtype=np.uint64)

    def add_input(self, accumulator, element):
        keys = np.concatenate([accumulator, np.asarray(element, dtype=np.uint64)])
        return smallest_distinct(keys, self._k)

    def merge_accumulators(self, accumulators):
        return smallest_distinct(np.concatenate(list(accumulators)), self._k)

    def extract_output(self, accumulator):
        return [int(k) for k in accumulator]
