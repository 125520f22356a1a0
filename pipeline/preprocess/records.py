"""Validated records: field dicts in, `Event` and `Item` out, or a `RecordError` with the reason.

The parsers are plain Python so the Beam job, the benchmarks' single-process reference and the
tests share one definition of a valid record.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from pipeline.core.config import TEXT_FIELDS, EventFields, ItemFields, ValidationConfig
from pipeline.core.timestamps import TimestampError, parse_timestamp
from pipeline.preprocess import reasons
from pipeline.preprocess.reasons import RecordError

__all__ = ["TEXT_FIELDS", "Event", "EventParser", "Item", "ItemParser", "dead_letter", "item_text"]


class Event(NamedTuple):
    """One interaction; `source` and `line` locate it in the input for dead letters and for a
    deterministic order among events with equal keys."""

    user_id: str
    item_id: str
    timestamp: int
    event_type: str
    label: float
    weight: float
    source: str
    line: int


class Item(NamedTuple):
    """One catalog item."""

    item_id: str
    title: str
    description: str
    categories: tuple[str, ...]
    extra_text: tuple[str, ...]
    source: str
    line: int


def dead_letter(
    input_name: str, source: str, line: int, error: RecordError, raw: str
) -> dict[str, Any]:
    """The dead-letter record written as one JSON line."""
    return {
        "input": input_name,
        "source": source,
        "line": line,
        "reason": error.reason,
        "field": error.field,
        "detail": error.detail,
        "raw": raw,
    }


class _FieldReader:
    def __init__(self, validation: ValidationConfig):
        self._max_id = validation.max_id_bytes
        self._max_field = validation.max_field_bytes

    def required_text(self, record: dict[str, Any], key: str, is_id: bool = False) -> str:
        if key not in record:
            raise RecordError(reasons.MISSING_FIELD, f"field {key!r} is missing", key)
        text = self.text(record[key], key, is_id)
        if not text:
            raise RecordError(reasons.EMPTY_FIELD, f"field {key!r} is empty", key)
        return text

    def optional_text(self, record: dict[str, Any], key: str | None) -> str:
        if key is None or record.get(key) is None:
            return ""
        return self.text(record[key], key, False)

    def text(self, value: Any, key: str, is_id: bool) -> str:
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RecordError(
                reasons.BAD_VALUE, f"field {key!r} must be text (got {_short(value)})", key
            )
        if isinstance(value, float):
            if not value.is_integer():
                raise RecordError(
                    reasons.BAD_VALUE, f"field {key!r} must be text (got {value!r})", key
                )
            value = int(value)
        text = str(value).strip()
        if is_id and any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise RecordError(
                reasons.BAD_VALUE,
                f"field {key!r} contains a control character: {_short(text)}",
                key,
            )
        limit = self._max_id if is_id else self._max_field
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > limit:
            setting = "max_id_bytes" if is_id else "max_field_bytes"
            raise RecordError(
                reasons.OVERSIZED,
                f"field {key!r} is {size} bytes, more than {setting}={limit}",
                key,
            )
        return text

    def number(self, record: dict[str, Any], key: str, required: bool) -> float | None:
        if key not in record:
            if required:
                raise RecordError(reasons.MISSING_FIELD, f"field {key!r} is missing", key)
            return None
        value = record[key]
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise RecordError(reasons.EMPTY_FIELD, f"field {key!r} is empty", key)
            return None
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise RecordError(
                reasons.BAD_VALUE, f"field {key!r} is not a number: {_short(value)}", key
            ) from None
        if not math.isfinite(number):
            raise RecordError(reasons.BAD_VALUE, f"field {key!r} is not finite: {value!r}", key)
        return number


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class EventParser:
    """Field dict → `Event`, enforcing the mapping and validation limits.

    Args:
      fields: Where each attribute lives in the record.
      validation: Size limits.
      timestamp_unit: `auto`, `s` or `ms`.
      default_event_type: Event type for records without one.
      event_type_weights: Weight per event type when the record carries no weight.
    """

    def __init__(
        self,
        fields: EventFields,
        validation: ValidationConfig,
        timestamp_unit: str = "auto",
        default_event_type: str = "interaction",
        event_type_weights: dict[str, float] | None = None,
    ):
        self._fields = fields
        self._read = _FieldReader(validation)
        self._unit = timestamp_unit
        self._default_type = default_event_type
        self._type_weights = dict(event_type_weights or {})

    def parse(self, record: dict[str, Any], source: str, line: int) -> Event:
        f = self._fields
        user_id = self._read.required_text(record, f.user_id, is_id=True)
        item_id = self._read.required_text(record, f.item_id, is_id=True)
        if f.timestamp not in record:
            raise RecordError(
                reasons.MISSING_FIELD, f"field {f.timestamp!r} is missing", f.timestamp
            )
        raw_time = record[f.timestamp]
        if raw_time is None or (isinstance(raw_time, str) and not raw_time.strip()):
            raise RecordError(reasons.EMPTY_FIELD, f"field {f.timestamp!r} is empty", f.timestamp)
        try:
            timestamp = parse_timestamp(raw_time, self._unit)
        except TimestampError as e:
            raise RecordError(
                reasons.BAD_TIMESTAMP, f"field {f.timestamp!r}: {e}", f.timestamp
            ) from None
        event_type = self._read.optional_text(record, f.event_type) or self._default_type
        label = 1.0
        if f.rating is not None:
            label = self._read.number(record, f.rating, required=True)
        weight = self._read.number(record, f.weight, required=False) if f.weight else None
        if weight is None:
            weight = self._type_weights.get(event_type, 1.0)
        elif weight < 0:
            raise RecordError(
                reasons.BAD_VALUE, f"field {f.weight!r} is negative: {weight}", f.weight
            )
        return Event(user_id, item_id, timestamp, event_type, label, weight, source, line)


class ItemParser:
    """Field dict → `Item`.

    Args:
      fields: Where each attribute lives in the record.
      validation: Size limits.
      category_delimiter: Separator when categories arrive as one string.
      extra_text_fields: Further text fields kept for the item text.
    """

    def __init__(
        self,
        fields: ItemFields,
        validation: ValidationConfig,
        category_delimiter: str = "|",
        extra_text_fields: tuple[str, ...] | list[str] = (),
    ):
        self._fields = fields
        self._read = _FieldReader(validation)
        self._delimiter = category_delimiter
        self._extra = tuple(extra_text_fields)

    def parse(self, record: dict[str, Any], source: str, line: int) -> Item:
        f = self._fields
        item_id = self._read.required_text(record, f.item_id, is_id=True)
        title = self._read.required_text(record, f.title)
        description = self._read.optional_text(record, f.description)
        categories = self._categories(record)
        extra = tuple(self._list_text(record, name) for name in self._extra)
        return Item(item_id, title, description, categories, extra, source, line)

    def _categories(self, record: dict[str, Any]) -> tuple[str, ...]:
        key = self._fields.categories
        if key is None or record.get(key) is None:
            return ()
        value = record[key]
        if isinstance(value, list | tuple):
            parts = [self._read.text(v, key, False) for v in value]
        else:
            parts = self._read.text(value, key, False).split(self._delimiter)
        seen: dict[str, None] = {}
        for part in parts:
            if part.strip():
                seen.setdefault(part.strip(), None)
        return tuple(seen)

    def _list_text(self, record: dict[str, Any], key: str) -> str:
        value = record.get(key)
        if isinstance(value, list | tuple):
            return " ".join(self._read.text(v, key, False) for v in value if v is not None)
        return self._read.optional_text(record, key)


def item_text(item: Item, fields: tuple[str, ...] | list[str] = TEXT_FIELDS) -> str:
    """The item's text for the text encoder: the configured fields, in order.

    Args:
      item: The item.
      fields: Any of `title`, `categories`, `description` and `extra` (the extra text fields).

    Empty parts are left out, so an item with only a title gets just its title, and an item whose
    configured fields are all empty gets "" (the text feature treats it as having no text).
    """
    parts = []
    for name in fields:
        if name == "title" and item.title:
            parts.append(item.title.rstrip(".") + ".")
        elif name == "categories" and item.categories:
            parts.append("Categories: " + ", ".join(item.categories) + ".")
        elif name == "description" and item.description:
            parts.append(item.description)
        elif name == "extra":
            parts.extend(p for p in item.extra_text if p)
    return " ".join(parts)
