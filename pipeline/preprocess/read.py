"""Reading the job's input files: paths in, chunks of raw records out, spread over workers.

Records travel in chunks (a list per element) until they are grouped by user, so per-element
runner overhead is paid per chunk, not per record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam

from pipeline.preprocess.formats import FileFormat, read_file

__all__ = ["ReadChunks"]


class _ReadFileChunks(beam.DoFn):
    def __init__(self, fmt: FileFormat, chunk_size: int):
        self._fmt = fmt
        self._chunk_size = chunk_size

    def process(self, path: str) -> Iterable[tuple[str, list[tuple[int, Any]], int]]:
        chunk: list[tuple[int, Any]] = []
        skipped = 0
        for number, raw in read_file(path, self._fmt):
            if raw is None:
                skipped += 1
                continue
            chunk.append((number, raw))
            if len(chunk) >= self._chunk_size:
                yield path, chunk, skipped
                chunk, skipped = [], 0
        if chunk or skipped:
            yield path, chunk, skipped


class ReadChunks(beam.PTransform):
    """Reads files into `(path, [(line, raw), ...], skipped_lines)` chunks spread over workers.

    Args:
      paths: Files to read (already matched; see `pipeline.preprocess.inputs`).
      fmt: How to read them.
      chunk_size: Records per chunk.
    """

    def __init__(self, paths: list[str], fmt: FileFormat, chunk_size: int):
        super().__init__()
        if not paths:
            raise ValueError("ReadChunks needs at least one path")
        self._paths = list(paths)
        self._fmt = fmt
        self._chunk_size = chunk_size

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._paths)
            | "ReadFiles" >> beam.ParDo(_ReadFileChunks(self._fmt, self._chunk_size))
            | "SpreadChunks" >> beam.Reshuffle()
        )
