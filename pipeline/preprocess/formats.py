"""File formats: reading a file into numbered raw records, and decoding a raw record to fields.

Reading is cheap and runs once per file; decoding (JSON parsing, UTF-8 checks, splitting) runs in
parallel after the records are spread over workers. A record that cannot be decoded raises
`RecordError` with a reason code, so it becomes a dead letter instead of failing the job; a file
that cannot be read to its end (a gzip cut short, not a Parquet file) raises `DataError` naming
the file and the cause, since no record of it can be trusted to be the last.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import json
import lzma
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.core.errors import DataError
from pipeline.preprocess import movielens, reasons
from pipeline.preprocess.reasons import RecordError

__all__ = [
    "DECODERS",
    "FileFormat",
    "RawProblem",
    "decode_record",
    "iter_raw_records",
    "raw_text",
    "read_file",
]

# Decompressors by file suffix. Python's own, not Beam's `CompressedFile`: that one is not an
# `io` stream (no line iteration, no `TextIOWrapper`) and takes a gzip cut short for a whole one.
_DECOMPRESSORS: dict[str, Callable[[BinaryIO], Any]] = {
    ".gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    ".bz2": bz2.BZ2File,
    ".xz": lzma.LZMAFile,
    ".lzma": lzma.LZMAFile,
}
# Suffixes Beam would decompress that are not read here: refused rather than parsed as text.
_UNSUPPORTED_SUFFIXES = (".zst", ".deflate")


class RawProblem(NamedTuple):
    """A raw record the reader already knows is bad (e.g. a CSV row with the wrong column count)."""

    reason: str
    detail: str
    text: str


@dataclass(frozen=True)
class FileFormat:
    """How to read and decode one kind of input file.

    Attributes:
      reader: `lines` (one record per non-blank line), `csv` (rows under a header) or `parquet`.
      decoder: Name of the decoder in `DECODERS` that turns a raw record into a field dict.
      csv_delimiter: Field separator of `csv` files.
      max_record_bytes: Longest raw record accepted.
      options: Decoder-specific settings (e.g. MovieLens genre names), as a tuple of pairs.
    """

    reader: str
    decoder: str
    csv_delimiter: str = ","
    max_record_bytes: int = 1 << 20
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


def read_file(path: str, fmt: FileFormat) -> Iterator[tuple[int, Any]]:
    """`iter_raw_records` of a file on any Beam filesystem, decompressed by its suffix (`.gz`,
    `.bz2`, `.xz`), so line and row numbers count lines of the uncompressed text.

    Raises:
      DataError: `<path>: <cause>` when the file cannot be read to its end, e.g.
        `.../events.jsonl.gz: compressed file ends before the end-of-stream marker`.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _UNSUPPORTED_SUFFIXES:
        raise DataError(f"{path}: {suffix} files are not supported; use .gz, .bz2 or .xz")
    decompress = _DECOMPRESSORS.get(suffix, contextlib.nullcontext)
    try:
        with (
            FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw,
            decompress(raw) as f,
        ):
            yield from iter_raw_records(f, fmt)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, pa.ArrowException) as e:
        raise DataError(f"{path}: {_unreadable(e)}") from None


def _unreadable(e: Exception) -> str:
    """One line on why a file could not be read to its end."""
    if isinstance(e, EOFError):  # gzip, bz2 and xz all say so for a stream cut short
        return "compressed file ends before the end-of-stream marker"
    if isinstance(e, (zlib.error, lzma.LZMAError, gzip.BadGzipFile)):
        return f"corrupt compressed data: {e}"
    if isinstance(e, pa.ArrowException):
        return f"not a readable Parquet file: {e}"
    return f"cannot read: {e}"


def iter_raw_records(f: BinaryIO, fmt: FileFormat) -> Iterator[tuple[int, Any]]:
    """Yields `(line_or_row_number, raw)`; blank lines are yielded as `(n, None)` so callers can
    count them (they are not records)."""
    if fmt.reader == "lines":
        yield from _iter_lines(f)
    elif fmt.reader == "csv":
        # Fields up to the record limit parse, so a longer one becomes an oversized dead letter.
        csv.field_size_limit(max(csv.field_size_limit(), fmt.max_record_bytes + 1))
        yield from _iter_csv(f, fmt.csv_delimiter)
    elif fmt.reader == "parquet":
        yield from _iter_parquet(f)
    else:
        raise ValueError(f"unknown reader {fmt.reader!r}")


def _iter_lines(f: BinaryIO) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(f, start=1):
        stripped = line.rstrip(b"\r\n")
        yield number, (stripped if stripped.strip() else None)


def _iter_csv(f: BinaryIO, delimiter: str) -> Iterator[tuple[int, Any]]:
    # surrogateescape keeps undecodable bytes as lone surrogates; the decoder reports them as
    # invalid UTF-8 for the one record concerned instead of failing the whole file.
    text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    header: list[str] | None = None
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # one unparseable row must not end the file
            number, start = start, reader.line_num + 1
            yield number, RawProblem(reasons.MALFORMED, f"CSV error: {e}", "")
            continue
        number, start = start, reader.line_num + 1
        if header is None:
            header = [h.strip() for h in row]
            yield number, None  # the header is not a record
            continue
        if not any(cell.strip() for cell in row):
            yield number, None
            continue
        if len(row) != len(header):
            yield (
                number,
                RawProblem(
                    reasons.MALFORMED,
                    f"expected {len(header)} columns, got {len(row)}",
                    delimiter.join(row),
                ),
            )
            continue
        yield number, dict(zip(header, row, strict=True))


def _iter_parquet(f: BinaryIO) -> Iterator[tuple[int, Any]]:
    number = 0
    for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def raw_text(raw: Any, limit: int = 10_000) -> str:
    """The raw record as text for a dead letter (undecodable bytes escaped), truncated."""
    if isinstance(raw, RawProblem):
        text = raw.text
    elif isinstance(raw, bytes):
        text = raw.decode("utf-8", errors="backslashreplace")
    else:
        text = json.dumps(raw, ensure_ascii=True, default=str, sort_keys=True)
    text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


def decode_record(raw: Any, fmt: FileFormat) -> dict[str, Any]:
    """Decodes a raw record to a field dict, or raises RecordError."""
    if isinstance(raw, RawProblem):
        raise RecordError(raw.reason, raw.detail)
    size = len(raw) if isinstance(raw, bytes) else _dict_size(raw)
    if size > fmt.max_record_bytes:
        raise RecordError(
            reasons.OVERSIZED,
            f"record is {size} bytes, more than max_record_bytes={fmt.max_record_bytes}",
        )
    if isinstance(raw, dict):
        for key, value in raw.items():
            if isinstance(value, str) and _has_surrogate(value):
                raise RecordError(reasons.INVALID_UTF8, f"invalid UTF-8 in field {key!r}", key)
    return DECODERS[fmt.decoder](raw, fmt)


def _dict_size(row: dict[str, Any]) -> int:
    return sum(len(str(v)) for v in row.values())


def _decode_json(raw: bytes, fmt: FileFormat) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(reasons.INVALID_UTF8, f"invalid UTF-8 at byte {e.start}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(
            reasons.MALFORMED, f"not valid JSON: {e.msg} at column {e.colno}"
        ) from None
    except ValueError as e:  # e.g. an integer past Python's int-parsing digit limit
        raise RecordError(reasons.MALFORMED, f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise RecordError(reasons.MALFORMED, f"expected a JSON object, got {type(value).__name__}")
    return value


def _decode_row(raw: dict[str, Any], fmt: FileFormat) -> dict[str, Any]:
    return raw  # rows arrive split by the reader; decode_record already checked their text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


DECODERS: dict[str, Callable[[Any, FileFormat], dict[str, Any]]] = {
    "json": _decode_json,
    "row": _decode_row,
    **movielens.DECODERS,
}
