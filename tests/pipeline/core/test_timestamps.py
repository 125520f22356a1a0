"""Tests of event time parsing to whole epoch seconds."""

from __future__ import annotations

import pytest

from pipeline.core.timestamps import TimestampError, format_timestamp, parse_timestamp

Y2001 = 978307200  # 2001-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (978300760, 978300760),
        ("978300760", 978300760),
        (" 978300760 ", 978300760),
        (0, 0),
        ("0", 0),
        (978300760123, 978300760),  # above 1e11: milliseconds
        ("978300760999", 978300760),
        (100_000_000_000, 100_000_000_000),  # exactly 1e11 is still seconds (year 5138)
        (100_000_000_001, 100_000_000),
        (1.9, 1),
        ("1.9", 1),
        (978300760.999, 978300760),
        (978300760999.9, 978300760),
    ],
)
def test_epoch_numbers_with_auto_unit(value, expected):
    assert parse_timestamp(value) == expected
    assert parse_timestamp(value, "auto") == expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (5000, "ms", 5),
        (5999, "ms", 5),
        ("5999", "ms", 5),
        (1999.9, "ms", 1),
        (978300760, "ms", 978300),
        (200_000_000_000, "s", 200_000_000_000),  # explicit seconds are never rescaled
        (978300760, "s", 978300760),
    ],
)
def test_explicit_units(value, unit, expected):
    assert parse_timestamp(value, unit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001-01-01T00:00:00Z", Y2001),
        ("2001-01-01T00:00:00z", Y2001),
        ("2001-01-01T01:00:00+01:00", Y2001),
        ("2000-12-31T19:00:00-05:00", Y2001),
        ("2001-01-01T00:00:00", Y2001),  # naive is UTC
        ("2001-01-01 00:00:00", Y2001),
        ("2001-01-01", Y2001),
        ("2001-01-01T00:00:00.999Z", Y2001),
        ("2000-12-31T23:59:59.5Z", Y2001 - 1),
        ("  2001-01-01T00:00:00Z  ", Y2001),
        ("1970-01-01T00:00:00Z", 0),
        ("9999-12-31T23:59:59Z", 253402300799),
    ],
)
def test_iso_8601(text, expected):
    assert parse_timestamp(text) == expected


def test_iso_ignores_the_unit():
    assert parse_timestamp("2001-01-01T00:00:00Z", "ms") == Y2001


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "2001-13-01",
        "10000-01-01T00:00:00Z",
        "nan",
        "inf",
        "-inf",
        float("nan"),
        float("inf"),
        float("-inf"),
        True,
        False,
        None,
        -1,
        "-1",
        -0.5,
        253402300800000,  # 10000-01-01T00:00:00Z in milliseconds
        "1969-12-31T23:59:59Z",
        "2001-01-01T00:00:00+25:00",
        [978300760],
        b"978300760",
        {"t": 1},
    ],
)
def test_garbage_raises_timestamp_error_naming_the_value(value):
    with pytest.raises(TimestampError) as info:
        parse_timestamp(value)
    assert repr(value).strip("'") in str(info.value)


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_raises_timestamp_error(value):
    with pytest.raises(TimestampError, match="empty"):
        parse_timestamp(value)


def test_out_of_range_with_explicit_units():
    with pytest.raises(TimestampError, match="out of range"):
        parse_timestamp(253402300800, "s")
    with pytest.raises(TimestampError, match="out of range"):
        parse_timestamp(253402300800 * 1000, "ms")
    with pytest.raises(TimestampError, match="out of range"):
        parse_timestamp(978300760123, "s")


def test_timestamp_error_is_a_value_error():
    assert issubclass(TimestampError, ValueError)


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_huge_integer_raises_timestamp_error(value):
    with pytest.raises(TimestampError):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (Y2001, "2001-01-01T00:00:00Z"),
        (978300760, "2000-12-31T22:12:40Z"),
        (253402300799, "9999-12-31T23:59:59Z"),
    ],
)
def test_format_timestamp_round_trip(seconds, text):
    assert format_timestamp(seconds) == text
    assert parse_timestamp(text) == seconds
