"""Resolves the config's data section into the files to read and how to read them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from pipeline.core.config import Config, EventFields, ItemFields
from pipeline.core.errors import DataError
from pipeline.preprocess import movielens
from pipeline.preprocess.formats import FileFormat
from pipeline.preprocess.records import EventParser, ItemParser

__all__ = ["InputPlan", "SideInput", "match_files", "plan_inputs"]

_EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}
_READERS = {"jsonl": ("lines", "json"), "csv": ("csv", "row"), "parquet": ("parquet", "row")}


@dataclass(frozen=True)
class SideInput:
    """Files of item text joined to the items by id after they are parsed.

    Attributes:
      kind: `tag` (MovieLens tags: joined into the item's extra text) or `plot` (ml-1m plots: the
        item's description); see `pipeline.preprocess.items.ResolveItems`.
      files: Matched files.
      fmt: How to read them; the decoder returns `item_id` and a field named `kind`.
    """

    kind: str
    files: list[str]
    fmt: FileFormat


@dataclass(frozen=True)
class InputPlan:
    """What the preprocess job reads.

    Attributes:
      layout: `jsonl`, `csv`, `parquet`, or the MovieLens release name.
      event_files / item_files: Matched files.
      event_format / item_format: How to read each.
      event_parser / item_parser: Field validation.
      item_field: The input's name for the item id (named in unknown-item dead letters).
      side_inputs: Files of item text joined by id (MovieLens tags, ml-1m plots).
    """

    layout: str
    event_files: list[str]
    item_files: list[str]
    event_format: FileFormat
    item_format: FileFormat
    event_parser: EventParser
    item_parser: ItemParser
    item_field: str
    side_inputs: tuple[SideInput, ...] = ()

    def files_of(self, kind: str) -> list[str]:
        """The side files of one kind (`tag`, `plot`)."""
        return [path for side in self.side_inputs if side.kind == kind for path in side.files]

    @property
    def side_files(self) -> list[str]:
        """Every side file, of every kind: part of the preprocess step's input fingerprint."""
        return [path for side in self.side_inputs for path in side.files]


def match_files(pattern: str, what: str) -> list[str]:
    """Files matching a path or glob (any Beam filesystem), sorted.

    Raises:
      DataError: naming the config field and the pattern when nothing matches.
    """
    try:
        results = FileSystems.match([pattern])[0].metadata_list
    except Exception as e:  # Beam raises BeamIOError and others for unreachable filesystems
        raise DataError(f"{what}: cannot list {pattern!r}: {e}") from None
    files = sorted(m.path for m in results if not m.path.endswith("/"))
    if not files:
        raise DataError(f"{what}: no file matches {pattern!r}")
    return files


def _resolve(base: str, pattern: str, is_dir: bool) -> str:
    if "://" in pattern or os.path.isabs(pattern) or not is_dir:
        return pattern
    return os.path.join(base, pattern)


def plan_inputs(config: Config) -> InputPlan:
    """Matches the input files and builds the formats and parsers for them."""
    data = config.data
    path = config.data_path()
    validation = config.preprocess.validation
    weights = config.preprocess.event_type_weights
    if data.format == "movielens":
        layout = movielens.detect_layout(path)
        options = (("genres", layout.genres),)
        limit = validation.max_record_bytes
        event_format = FileFormat(
            layout.events_reader, layout.events_decoder, max_record_bytes=limit
        )
        item_format = FileFormat(
            layout.items_reader, layout.items_decoder, max_record_bytes=limit, options=options
        )
        side_inputs = tuple(
            SideInput(
                side.kind,
                [side.path],
                FileFormat(side.reader, side.decoder, max_record_bytes=limit),
            )
            for side in layout.side_files
        )
        event_fields = EventFields(
            user_id="user_id",
            item_id="item_id",
            timestamp="timestamp",
            event_type=None,
            rating="rating",
            weight=None,
        )
        item_fields = ItemFields()
        return InputPlan(
            layout=layout.name,
            event_files=[layout.events_path],
            item_files=[layout.items_path],
            event_format=event_format,
            item_format=item_format,
            event_parser=EventParser(event_fields, validation, "s", "rating", weights),
            item_parser=ItemParser(item_fields, validation, "|", ()),
            item_field="movieId" if layout.name == "ml-latest" else "item_id",
            side_inputs=side_inputs,
        )
    is_dir = "://" not in path and os.path.isdir(path)
    if is_dir:
        events_pattern = _resolve(path, _with_extension(data.events.path, data.format), True)
        items_pattern = _resolve(path, _with_extension(data.items.path, data.format), True)
    else:
        events_pattern = path
        items_pattern = data.items.path
    reader, decoder = _READERS[data.format]
    fmt = FileFormat(reader, decoder, data.csv_delimiter, validation.max_record_bytes)
    events = data.events
    return InputPlan(
        layout=data.format,
        event_files=match_files(events_pattern, "data.events.path"),
        item_files=match_files(items_pattern, "data.items.path"),
        event_format=fmt,
        item_format=fmt,
        event_parser=EventParser(
            events.fields, validation, events.timestamp_unit, events.default_event_type, weights
        ),
        item_parser=ItemParser(
            data.items.fields,
            validation,
            data.items.category_delimiter,
            data.items.extra_text_fields,
        ),
        item_field=events.fields.item_id,
    )


def _with_extension(pattern: str, fmt: str) -> str:
    """`events*` becomes `events*.jsonl` for the jsonl format; explicit names stay as they are."""
    if pattern.endswith("*"):
        return pattern + "." + _EXTENSIONS[fmt] + "*"
    return pattern
