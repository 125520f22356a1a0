"""The job's CombineFns, on TestPipeline with hand-made partials.

The pipelines run on the FnApiRunner, as the steps' DirectRunner jobs do
(`pipeline/core/beam_step.py`).
"""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.preprocess.combiners import MergeDicts, MergeItemCounts, SmallestDistinctKeys


def test_combiners_merge_partials():
    with TestPipeline(runner="FnApiRunner") as p:
        merged = (
            p
            | "Dicts" >> beam.Create([{"n": 1, "t_min": 5, "h": {"a": 1}}, {"n": 2, "t_min": 3}])
            | "Merge" >> beam.CombineGlobally(MergeDicts())
        )
        assert_that(merged, equal_to([{"n": 3, "t_min": 3, "h": {"a": 1}}]), label="dicts")
        items = (
            p
            | "Items" >> beam.Create([{"a": (1, 2, 50)}, {"a": (0, 1, 40), "b": (1, 1, 9)}])
            | "MergeItems" >> beam.CombineGlobally(MergeItemCounts())
        )
        assert_that(items, equal_to([{"a": (1, 3, 40), "b": (1, 1, 9)}]), label="items")
        keys = (
            p
            | "Keys" >> beam.Create([[9, 3, 3], [7, 1], [3, 8]])
            | "Smallest" >> beam.CombineGlobally(SmallestDistinctKeys(3))
        )
        assert_that(keys, equal_to([[1, 3, 7]]), label="keys")
