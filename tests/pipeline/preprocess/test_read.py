"""`ReadChunks`: files to chunks of raw records, on TestPipeline with hand-made files.

The pipelines run on the FnApiRunner, as the steps' DirectRunner jobs do
(`pipeline/core/beam_step.py`).
"""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.preprocess.formats import FileFormat
from pipeline.preprocess.read import ReadChunks

JSON = FileFormat("lines", "json")


def test_read_chunks_yields_every_record_once_with_its_line(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_bytes(b'{"x": 1}\n\n{"x": 2}\n{"x": 3}\n')
    b = tmp_path / "b.jsonl"
    b.write_bytes(b'{"x": 4}\n')
    with TestPipeline(runner="FnApiRunner") as p:
        chunks = p | ReadChunks([str(a), str(b)], JSON, chunk_size=2)
        records = chunks | beam.FlatMap(
            lambda c: [(c[0].rsplit("/", 1)[1], line, raw) for line, raw in c[1]]
        )
        skipped = chunks | "Skipped" >> beam.Map(lambda c: c[2]) | beam.CombineGlobally(sum)
        assert_that(
            records,
            equal_to(
                [
                    ("a.jsonl", 1, b'{"x": 1}'),
                    ("a.jsonl", 3, b'{"x": 2}'),
                    ("a.jsonl", 4, b'{"x": 3}'),
                    ("b.jsonl", 1, b'{"x": 4}'),
                ]
            ),
            label="records",
        )
        assert_that(skipped, equal_to([1]), label="blank lines")


def test_read_chunks_refuses_an_empty_file_list_when_built():
    with pytest.raises(ValueError, match="at least one path"):
        ReadChunks([], JSON, 10)
