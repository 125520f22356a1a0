"""Event time parsing: epoch seconds, epoch milliseconds or ISO-8601, always to epoch seconds."""

from __future__ import annotations

import datetime as dt
import math

__all__ = ["TimestampError", "format_timestamp", "parse_timestamp"]

# Epoch values above this are taken as milliseconds by the `auto` unit: 1e11 seconds is the year
# 5138, while 1e11 milliseconds is 1973.
_AUTO_MS_THRESHOLD = 1e11
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


class TimestampError(ValueError):
    """The value is not a timestamp in any accepted form."""


def parse_timestamp(value: object, unit: str = "auto") -> int:
    """Returns whole epoch seconds (UTC).

    Args:
      value: An int or float epoch, a string of digits, or an ISO-8601 string (`Z` or an offset;
        naive times are UTC).
      unit: `s`, `ms`, or `auto` (values above 1e11 are milliseconds).

    Raises:
      TimestampError: naming the value, for anything else or a time outside years 1970–9999.
    """
    if isinstance(value, bool) or value is None:
        raise TimestampError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise TimestampError(f"timestamp out of range: {str(value)[:40]}…") from None
        return _from_number(number, unit, value)
    if not isinstance(value, str):
        raise TimestampError(f"not a timestamp: {value!r}")
    text = value.strip()
    if not text:
        raise TimestampError("empty timestamp")
    try:
        number = float(text)
    except ValueError:
        return _from_iso(text)
    return _from_number(number, unit, value)


def _from_number(number: float, unit: str, original: object) -> int:
    if not math.isfinite(number):
        raise TimestampError(f"not a finite timestamp: {original!r}")
    if unit == "ms" or (unit == "auto" and abs(number) > _AUTO_MS_THRESHOLD):
        number /= 1000.0
    seconds = math.floor(number)
    if not 0 <= seconds <= _MAX_SECONDS:
        raise TimestampError(f"timestamp out of range (1970–9999): {original!r}")
    return seconds


def _from_iso(text: str) -> int:
    normalized = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = dt.datetime.fromisoformat(normalized)
    except ValueError:
        raise TimestampError(f"not epoch seconds, milliseconds or ISO-8601: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    seconds = math.floor(parsed.timestamp())
    if not 0 <= seconds <= _MAX_SECONDS:
        raise TimestampError(f"timestamp out of range (1970–9999): {text!r}")
    return seconds


def format_timestamp(seconds: int) -> str:
    """Epoch seconds as an ISO-8601 UTC string, for reports."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat().replace("+00:00", "Z")
