"""The `data` section: where the raw events and items are and how their records are read."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.config.checks import Problems

__all__ = [
    "FORMATS",
    "TIMESTAMP_UNITS",
    "DataConfig",
    "EventFields",
    "EventsInput",
    "ItemFields",
    "ItemsInput",
    "validate",
]

FORMATS = ("jsonl", "csv", "parquet", "movielens")
TIMESTAMP_UNITS = ("auto", "s", "ms")


@dataclass
class EventFields:
    """Where each event attribute lives in an input record (column or JSON key).

    Attributes:
      user_id: Required. The user's identifier.
      item_id: Required. The item's identifier; must exist in the item catalog.
      timestamp: Required. Epoch seconds, epoch milliseconds or an ISO-8601 string.
      event_type: Optional key; records without it get `EventsInput.default_event_type`.
        `null` means the data has no event types.
      rating: Optional key of an explicit rating, used as the label. When set, every record
        must carry a numeric rating. `null` means implicit feedback (label 1.0).
      weight: Optional key of a per-event sample weight. When absent the weight comes from
        `PreprocessConfig.event_type_weights` (default 1.0).
    """

    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    event_type: str | None = "event_type"
    rating: str | None = None
    weight: str | None = None


@dataclass
class ItemFields:
    """Where each item attribute lives in an item record.

    Attributes:
      item_id: Required. The identifier events refer to.
      title: Required, non-empty.
      description: Optional free text; empty descriptions are allowed.
      categories: Optional; a list, or a string split on `ItemsInput.category_delimiter`.
    """

    item_id: str = "item_id"
    title: str = "title"
    description: str | None = "description"
    categories: str | None = "categories"


@dataclass
class EventsInput:
    """The interaction log.

    Attributes:
      path: File name or glob, relative to `data.path` unless absolute or a URL (gs://...).
      fields: Field mapping, see `EventFields`.
      timestamp_unit: `auto` (numbers above 1e11 are milliseconds), `s` or `ms`.
      default_event_type: Event type of records that carry none.
    """

    path: str = "events*"
    fields: EventFields = field(default_factory=EventFields)
    timestamp_unit: str = "auto"
    default_event_type: str = "interaction"


@dataclass
class ItemsInput:
    """The item catalog.

    Attributes:
      path: File name or glob, relative to `data.path` unless absolute or a URL.
      fields: Field mapping, see `ItemFields`.
      category_delimiter: Separator when categories arrive as one string.
      extra_text_fields: Further text fields appended to the item text, in this order.
    """

    path: str = "items*"
    fields: ItemFields = field(default_factory=ItemFields)
    category_delimiter: str = "|"
    extra_text_fields: list[str] = field(default_factory=list)


@dataclass
class DataConfig:
    """Where the raw data is and how to read it.

    Attributes:
      format: `jsonl`, `csv`, `parquet`, or `movielens` (ml-100k, ml-1m, ml-latest[-small]
        directories, detected by their files).
      path: Dataset directory, file or glob; `{work_dir}` is replaced by the work directory.
        With a file or glob, it names the events and `items.path` must be given in full.
      events: The interaction log, see `EventsInput`.
      items: The item catalog, see `ItemsInput`.
      csv_delimiter: Field separator for `csv` input.
    """

    format: str = "jsonl"
    path: str = "{work_dir}/sample_data"
    events: EventsInput = field(default_factory=EventsInput)
    items: ItemsInput = field(default_factory=ItemsInput)
    csv_delimiter: str = ","


def validate(data: DataConfig, problems: Problems) -> None:
    """Records each semantic error of the `data` section."""
    problems.choice("data.format", data.format, FORMATS)
    problems.check(bool(data.path.strip()), "data.path", data.path, "must not be empty")
    problems.choice("data.events.timestamp_unit", data.events.timestamp_unit, TIMESTAMP_UNITS)
    for name in ("user_id", "item_id", "timestamp"):
        value = getattr(data.events.fields, name)
        problems.check(
            bool(value.strip()), f"data.events.fields.{name}", value, "must not be empty"
        )
    for name in ("item_id", "title"):
        value = getattr(data.items.fields, name)
        problems.check(bool(value.strip()), f"data.items.fields.{name}", value, "must not be empty")
    problems.check(
        len(data.csv_delimiter) == 1,
        "data.csv_delimiter",
        data.csv_delimiter,
        "must be 1 character",
    )
    problems.check(
        bool(data.items.category_delimiter),
        "data.items.category_delimiter",
        data.items.category_delimiter,
        "must not be empty",
    )
