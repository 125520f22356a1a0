"""Rejected records are counted in Beam metrics too.

The pipelines run on the FnApiRunner, as the steps' DirectRunner jobs do
(`pipeline/core/beam_step.py`).
"""

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline

from pipeline.core.config import EventFields, ValidationConfig
from pipeline.preprocess.events import ParseEvents
from pipeline.preprocess.formats import FileFormat
from pipeline.preprocess.records import EventParser
from pipeline.preprocess.splits import SplitRule

JSON = FileFormat("lines", "json")


def test_rejections_are_beam_counters():
    parser = EventParser(EventFields(), ValidationConfig())
    chunk = (
        "e.jsonl",
        [(1, b"oops"), (2, b'{"user_id": "u", "item_id": "i1", "timestamp": "x"}')],
        0,
    )
    p = TestPipeline(runner="FnApiRunner")
    catalog = p | "Catalog" >> beam.Create([("i1", ())])
    _ = (
        p
        | beam.Create([chunk])
        | ParseEvents(JSON, parser, catalog, 2, SplitRule("temporal", cutoff=0), None)
    )
    result = p.run()
    result.wait_until_finish()

    def counter(name):
        found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
        return sum(c.committed for c in found)

    assert counter("events_read") == 2
    assert counter("events_rejected_malformed_record") == 1
    assert counter("events_rejected_unparseable_timestamp") == 1
