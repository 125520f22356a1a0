"""Dead-letter reason codes and the exception that carries one.

The codes are stable: they appear in dead-letter records, Beam counters and the manifest's
`counts.rejected_by_reason`.
"""

from __future__ import annotations

__all__ = ["ALL", "RecordError"]

MALFORMED = "malformed_record"
MISSING_FIELD = "missing_field"
EMPTY_FIELD = "empty_field"
BAD_TIMESTAMP = "unparseable_timestamp"
BAD_VALUE = "invalid_value"
UNKNOWN_ITEM = "unknown_item"
INVALID_UTF8 = "invalid_utf8"
OVERSIZED = "oversized_field"
DUPLICATE_EVENT = "duplicate_event"
DUPLICATE_ITEM = "duplicate_item"

ALL = (
    MALFORMED,
    MISSING_FIELD,
    EMPTY_FIELD,
    BAD_TIMESTAMP,
    BAD_VALUE,
    UNKNOWN_ITEM,
    INVALID_UTF8,
    OVERSIZED,
    DUPLICATE_EVENT,
    DUPLICATE_ITEM,
)


class RecordError(Exception):
    """A record that goes to the dead letters, with a reason code and the field at fault."""

    def __init__(self, reason: str, detail: str, field_name: str | None = None):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.field = field_name
