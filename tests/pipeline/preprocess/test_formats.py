"""Tests of reading files into numbered raw records and decoding raw records to field dicts."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import DataError
from pipeline.preprocess import reasons
from pipeline.preprocess.formats import (
    FileFormat,
    RawProblem,
    decode_record,
    iter_raw_records,
    raw_text,
    read_file,
)
from pipeline.preprocess.reasons import RecordError

LINES = FileFormat("lines", "json")
CSV = FileFormat("csv", "row")
PARQUET = FileFormat("parquet", "row")


def read(data: bytes, fmt: FileFormat) -> list[tuple[int, object]]:
    return list(iter_raw_records(io.BytesIO(data), fmt))


# --- lines -------------------------------------------------------------------------------------


def test_lines_are_numbered_blank_lines_are_none_and_crlf_is_stripped():
    data = b'{"a": 1}\r\n\n   \r\n{"b": 2}\n{"c": 3}'
    assert read(data, LINES) == [
        (1, b'{"a": 1}'),
        (2, None),
        (3, None),
        (4, b'{"b": 2}'),
        (5, b'{"c": 3}'),
    ]


def test_lines_keep_undecodable_bytes():
    assert read(b"caf\xe9\n", LINES) == [(1, b"caf\xe9")]


def test_empty_file_has_no_records():
    assert read(b"", LINES) == []
    assert read(b"", CSV) == []


def test_unknown_reader():
    with pytest.raises(ValueError, match="xml"):
        read(b"x", FileFormat("xml", "json"))


# --- csv ---------------------------------------------------------------------------------------


def test_csv_header_is_not_a_record_and_rows_become_dicts():
    data = b"user_id, item_id ,timestamp\r\nu1,i1,5\r\n\r\nu2,i2,6\r\n"
    assert read(data, CSV) == [
        (1, None),
        (2, {"user_id": "u1", "item_id": "i1", "timestamp": "5"}),
        (3, None),
        (4, {"user_id": "u2", "item_id": "i2", "timestamp": "6"}),
    ]


def test_csv_quoted_multiline_field_is_one_record_numbered_by_its_first_line():
    data = b'id,text\n1,"line one\nline two, with comma"\n2,plain\n'
    assert read(data, CSV) == [
        (1, None),
        (2, {"id": "1", "text": "line one\nline two, with comma"}),
        (4, {"id": "2", "text": "plain"}),
    ]


def test_csv_custom_delimiter():
    fmt = FileFormat("csv", "row", csv_delimiter=";")
    assert read(b"a;b\n1,5;x\n", fmt) == [(1, None), (2, {"a": "1,5", "b": "x"})]


@pytest.mark.parametrize(
    ("row", "detail", "text"),
    [
        (b"1,2,3", "expected 2 columns, got 3", "1,2,3"),
        (b"1", "expected 2 columns, got 1", "1"),
    ],
)
def test_csv_wrong_column_count_is_a_malformed_raw_problem(row, detail, text):
    records = read(b"a,b\n" + row + b"\n4,5\n", CSV)
    number, raw = records[1]
    assert number == 2
    assert raw == RawProblem(reasons.MALFORMED, detail, text)
    assert records[2] == (3, {"a": "4", "b": "5"})
    with pytest.raises(RecordError) as info:
        decode_record(raw, CSV)
    assert info.value.reason == reasons.MALFORMED
    assert info.value.detail == detail


def test_csv_invalid_utf8_survives_reading_and_decoding_names_the_field():
    records = read(b"id,title\n1,caf\xe9\n2,ok\n", CSV)
    assert [n for n, _ in records] == [1, 2, 3]
    with pytest.raises(RecordError) as info:
        decode_record(records[1][1], CSV)
    assert info.value.reason == reasons.INVALID_UTF8
    assert info.value.field == "title"
    assert "'title'" in info.value.detail
    assert decode_record(records[2][1], CSV) == {"id": "2", "title": "ok"}


def test_csv_utf8_text_is_decoded():
    records = read("id,title\n1,Misérables 東京\n".encode(), CSV)
    assert decode_record(records[1][1], CSV) == {"id": "1", "title": "Misérables 東京"}


def test_csv_field_above_the_csv_module_limit_does_not_fail_the_file():
    fmt = FileFormat("csv", "row", max_record_bytes=150_000)
    big = b"x" * 200_000
    records = read(b"a,b\n1," + big + b"\n2,3\n", fmt)
    assert records[-1] == (3, {"a": "2", "b": "3"})
    with pytest.raises(RecordError) as info:
        decode_record(records[1][1], fmt)
    assert info.value.reason == reasons.OVERSIZED


# --- parquet -----------------------------------------------------------------------------------


def test_parquet_rows_are_numbered_from_one(tmp_path):
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "user_id": ["u1", "u2", "ü3"],
            "timestamp": [5, 6, 7],
            "categories": [["a", "b"], [], None],
        }
    )
    pq.write_table(table, path)
    with open(path, "rb") as f:
        records = list(iter_raw_records(f, PARQUET))
    assert records == [
        (1, {"user_id": "u1", "timestamp": 5, "categories": ["a", "b"]}),
        (2, {"user_id": "u2", "timestamp": 6, "categories": []}),
        (3, {"user_id": "ü3", "timestamp": 7, "categories": None}),
    ]
    assert decode_record(records[2][1], PARQUET) == records[2][1]


# --- read_file: compressed files --------------------------------------------------------------

COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}
JSONL_TEXT = b'{"a": 1}\n\n{"b": 2}\r\nnot json\n'
CSV_TEXT = b'user_id,item_id\nu1,i1\n\n"u2\nstill u2",i2\nu3\n'


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
@pytest.mark.parametrize(
    ("fmt", "name", "data"), [(LINES, "e.jsonl", JSONL_TEXT), (CSV, "e.csv", CSV_TEXT)]
)
def test_a_compressed_file_reads_like_the_plain_one_with_the_same_line_numbers(
    tmp_path, suffix, fmt, name, data
):
    plain, packed = tmp_path / name, tmp_path / (name + suffix)
    plain.write_bytes(data)
    packed.write_bytes(COMPRESSORS[suffix](data))
    records = list(read_file(str(packed), fmt))
    assert records == list(read_file(str(plain), fmt))
    assert records == read(data, fmt)
    assert [n for n, raw in records if raw is not None] == (
        [1, 3, 4] if fmt is LINES else [2, 4, 6]
    )


def test_a_gzipped_parquet_file_reads_like_the_plain_one(tmp_path):
    buffer = io.BytesIO()
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "timestamp": [5, 6]}), buffer)
    (tmp_path / "e.parquet.gz").write_bytes(gzip.compress(buffer.getvalue()))
    assert list(read_file(str(tmp_path / "e.parquet.gz"), PARQUET)) == [
        (1, {"user_id": "u1", "timestamp": 5}),
        (2, {"user_id": "u2", "timestamp": 6}),
    ]


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_a_compressed_file_cut_short_is_one_line_naming_the_file_and_the_cause(tmp_path, suffix):
    packed = COMPRESSORS[suffix](JSONL_TEXT * 200)
    path = tmp_path / ("events.jsonl" + suffix)
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError) as info:
        list(read_file(str(path), LINES))
    assert str(info.value) == f"{path}: compressed file ends before the end-of-stream marker"


def _corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(b"hello\n" * 1000))
    data[20:30] = b"\xff" * 10  # inside the deflate stream, past the gzip header
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "data", "fmt", "cause"),
    [
        ("e.jsonl.gz", b"plain text, not gzip\n", LINES, "corrupt compressed data: Not a gzipped"),
        ("e.jsonl.gz", _corrupt_gzip(), LINES, "corrupt compressed data: Error -3"),
        ("e.parquet", b"not parquet at all", PARQUET, "not a readable Parquet file: "),
        ("e.jsonl.zst", b"\x28\xb5\x2f\xfd", LINES, ".zst files are not supported"),
    ],
    ids=["not-gzip", "corrupt-gzip", "not-parquet", "zstd"],
)
def test_an_unreadable_file_is_one_line_naming_the_file_and_the_cause(
    tmp_path, name, data, fmt, cause
):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        list(read_file(str(path), fmt))
    assert str(info.value).startswith(f"{path}: {cause}")
    assert "\n" not in str(info.value)


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"gone\.jsonl: cannot read: "):
        list(read_file(str(tmp_path / "gone.jsonl"), LINES))


# --- decode_record (json) ----------------------------------------------------------------------


def test_json_record_decodes_to_a_dict():
    raw = json.dumps({"user_id": "ü", "n": 1, "tags": ["a"]}).encode()
    assert decode_record(raw, LINES) == {"user_id": "ü", "n": 1, "tags": ["a"]}


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b'{"title": "caf\xe9"}', reasons.INVALID_UTF8, "invalid UTF-8 at byte 14"),
        (b'{"user_id": "u1"', reasons.MALFORMED, "not valid JSON"),
        (b"not json", reasons.MALFORMED, "not valid JSON"),
        (b"[1, 2]", reasons.MALFORMED, "expected a JSON object, got list"),
        (b'"text"', reasons.MALFORMED, "expected a JSON object, got str"),
        (b"42", reasons.MALFORMED, "expected a JSON object, got int"),
        (b"null", reasons.MALFORMED, "expected a JSON object, got NoneType"),
    ],
)
def test_bad_json_records_raise_record_error(raw, reason, detail):
    with pytest.raises(RecordError) as info:
        decode_record(raw, LINES)
    assert info.value.reason == reason
    assert detail in info.value.detail


def test_oversized_record_vs_max_record_bytes():
    fmt = FileFormat("lines", "json", max_record_bytes=10)
    assert decode_record(b'{"a": 123}', fmt) == {"a": 123}  # exactly 10 bytes
    with pytest.raises(RecordError) as info:
        decode_record(b'{"a": 1234}', fmt)
    assert info.value.reason == reasons.OVERSIZED
    assert "11 bytes" in info.value.detail
    assert "max_record_bytes=10" in info.value.detail


def test_oversized_row_counts_its_values():
    fmt = FileFormat("csv", "row", max_record_bytes=4)
    assert decode_record({"a": "12", "b": "34"}, fmt) == {"a": "12", "b": "34"}
    with pytest.raises(RecordError) as info:
        decode_record({"a": "12", "b": "345"}, fmt)
    assert info.value.reason == reasons.OVERSIZED


def test_json_with_a_huge_integer_is_a_record_error():
    with pytest.raises(RecordError):
        decode_record(b'{"timestamp": 1' + b"0" * 5000 + b"}", LINES)


# --- raw_text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"caf\xe9 ok", "caf\\xe9 ok"),
        ("café".encode(), "café"),
        ({"b": 1, "a": "x"}, '{"a": "x", "b": 1}'),
        ({"t": "caf\udce9"}, '{"t": "caf\\udce9"}'),
        (RawProblem(reasons.MALFORMED, "d", "1,caf\udce9"), "1,caf\\udce9"),
    ],
)
def test_raw_text_escapes_undecodable_bytes(raw, expected):
    text = raw_text(raw)
    assert text == expected
    text.encode("utf-8")  # always writable as UTF-8


def test_raw_text_truncates():
    assert raw_text(b"abcde", limit=5) == "abcde"
    assert raw_text(b"abcdef", limit=5) == "abcde…[truncated]"
    assert raw_text(b"x" * 20_000).endswith("…[truncated]")
    assert len(raw_text(b"x" * 20_000)) == 10_000 + len("…[truncated]")
