"""The item side of the preprocess job: catalog records parsed, joined with their side files
(MovieLens tags, ml-1m plots), one item kept per id, and encoded as item Examples.

Each transform has a `dead` and a `counts` output besides its main one (`rejections`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline.core import schema
from pipeline.preprocess import reasons
from pipeline.preprocess.formats import FileFormat, decode_record
from pipeline.preprocess.reasons import RecordError
from pipeline.preprocess.records import TEXT_FIELDS, Item, ItemParser, item_text
from pipeline.preprocess.rejections import COUNTS, DEAD, NAMESPACE, Rejections

__all__ = ["SIDE_INPUTS", "EncodeItems", "ParseItems", "ParseSideRecords", "ResolveItems"]


class _ParseItemsFn(beam.DoFn):
    def __init__(self, fmt: FileFormat, parser: ItemParser):
        self._fmt = fmt
        self._parser = parser

    def setup(self):
        self._rejections = Rejections("items")
        self._read = Metrics.counter(NAMESPACE, "items_read")

    def process(self, chunk):
        path, records, skipped = chunk
        counts: Counter = Counter(read=len(records), skipped_lines=skipped)
        self._read.inc(len(records))
        for number, raw in records:
            try:
                item = self._parser.parse(decode_record(raw, self._fmt), path, number)
            except RecordError as e:
                yield self._rejections.reject(counts, path, number, e, raw)
                continue
            yield item.item_id, item
        yield pvalue.TaggedOutput(COUNTS, dict(counts))


class ParseItems(beam.PTransform):
    """Chunks of item records → `(item_id, Item)`; outputs `dead` and `counts` too."""

    def __init__(self, fmt: FileFormat, parser: ItemParser):
        super().__init__()
        self._fmt = fmt
        self._parser = parser

    def expand(self, chunks):
        return chunks | "ParseItemRecords" >> beam.ParDo(
            _ParseItemsFn(self._fmt, self._parser)
        ).with_outputs(DEAD, COUNTS, main="items")


# The side inputs joined to items by id, and the input name (dead letters, counts) of each kind.
SIDE_INPUTS = {"tag": "tags", "plot": "plots"}


class _ParseSideRecordsFn(beam.DoFn):
    def __init__(self, fmt: FileFormat, kind: str):
        self._fmt = fmt
        self._kind = kind

    def setup(self):
        self._rejections = Rejections(SIDE_INPUTS[self._kind])

    def process(self, chunk):
        path, records, skipped = chunk
        kind = self._kind
        counts: Counter = Counter(read=len(records), skipped_lines=skipped)
        for number, raw in records:
            try:
                fields = decode_record(raw, self._fmt)
                if not fields[kind]:
                    raise RecordError(reasons.EMPTY_FIELD, f"field {kind!r} is empty", kind)
            except RecordError as e:
                yield self._rejections.reject(counts, path, number, e, raw)
                continue
            yield fields["item_id"], (kind, fields[kind], path, number)
        yield pvalue.TaggedOutput(COUNTS, {SIDE_INPUTS[kind]: dict(counts)})


class ParseSideRecords(beam.PTransform):
    """Chunks of item text from a side file → `(item_id, (kind, text, source, line))`.

    Outputs `dead` and `counts` too, the counts under the kind's input name (`tags`, `plots`):
    what is read here is kept or rejected later, by `ResolveItems`.

    Args:
      fmt: How to decode the records; the decoder returns `item_id` and a field named `kind`.
      kind: `tag` (MovieLens tags) or `plot` (ml-1m plots).
    """

    def __init__(self, fmt: FileFormat, kind: str):
        super().__init__()
        if kind not in SIDE_INPUTS:
            raise ValueError(f"side record kind must be one of {sorted(SIDE_INPUTS)}, got {kind!r}")
        self._fmt = fmt
        self._kind = kind

    def expand(self, chunks):
        return chunks | "ParseSideRecords" >> beam.ParDo(
            _ParseSideRecordsFn(self._fmt, self._kind)
        ).with_outputs(DEAD, COUNTS, main="records")


class _ResolveItemsFn(beam.DoFn):
    """One item id's records: keeps the first item by input position and rejects the rest, then
    joins its side records: the tags into the extra text, the first plot as the description."""

    def __init__(self, max_tags: int, item_field: str):
        self._max_tags = max_tags
        self._item_field = item_field

    def setup(self):
        self._rejections = Rejections("items")
        self._side_rejections = {kind: Rejections(name) for kind, name in SIDE_INPUTS.items()}

    def process(self, element):
        item_id, grouped = element
        items = sorted(grouped["items"], key=lambda it: (it.source, it.line))
        # Every other group holds side records (they carry their kind), here by input position.
        side = sorted(
            (record for key, records in grouped.items() if key != "items" for record in records),
            key=lambda record: (record[2], record[3]),
        )
        counts: Counter = Counter()
        side_counts: dict[str, Counter] = defaultdict(Counter)
        if not items:
            for kind, text, source, line in side:
                error = RecordError(
                    reasons.UNKNOWN_ITEM,
                    f"{kind} for {self._item_field} {item_id!r}, not in the catalog",
                    self._item_field,
                )
                yield self._side_rejections[kind].reject(
                    side_counts[kind], source, line, error, text
                )
            yield pvalue.TaggedOutput(COUNTS, _side_counts(side_counts))
            return
        first = items[0]
        for duplicate in items[1:]:
            error = RecordError(
                reasons.DUPLICATE_ITEM,
                f"item_id {item_id!r} already defined at {first.source}:{first.line}",
                "item_id",
            )
            yield self._rejections.reject(
                counts, duplicate.source, duplicate.line, error, _item_raw(duplicate)
            )
        plots = [record for record in side if record[0] == "plot"]
        if plots:
            _, plot, plot_source, plot_line = plots[0]
            first = first._replace(description=plot)
            side_counts["plot"]["kept"] += 1
            for _, text, source, line in plots[1:]:
                error = RecordError(
                    reasons.DUPLICATE_ITEM,
                    f"a second plot for item_id {item_id!r}: the one at {plot_source}:{plot_line} "
                    "is kept",
                    "item_id",
                )
                yield self._side_rejections["plot"].reject(
                    side_counts["plot"], source, line, error, text
                )
        tags = [text for kind, text, _, _ in side if kind == "tag"]
        if tags:
            frequency = Counter(tag.lower() for tag in tags)
            top = sorted(frequency, key=lambda t: (-frequency[t], t))[: self._max_tags]
            first = first._replace(extra_text=(*first.extra_text, "Tags: " + ", ".join(top) + "."))
            side_counts["tag"]["kept"] += len(tags)
        counts["kept"] += 1
        yield first
        yield pvalue.TaggedOutput(COUNTS, {"items": dict(counts), **_side_counts(side_counts)})


def _side_counts(side_counts: dict[str, Counter]) -> dict[str, dict[str, int]]:
    return {SIDE_INPUTS[kind]: dict(counter) for kind, counter in side_counts.items()}


def _item_raw(item: Item) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "title": item.title,
        "description": item.description,
        "categories": list(item.categories),
    }


class ResolveItems(beam.PTransform):
    """Items and their side records → one `Item` per id; `dead`, `counts`.

    The input is a dict of PCollections: `items` holds `(item_id, Item)`, every other key the
    `(item_id, (kind, text, source, line))` records of `ParseSideRecords`. Of several items with
    one id the first by input position is kept (so is the first of several plots); side records
    for an id that is not in the catalog are rejected as `unknown_item`.

    Args:
      max_tags: The most frequent tags joined into an item's text.
      item_field: The input's name for the item id, named in unknown-item dead letters.
    """

    def __init__(self, max_tags: int = 20, item_field: str = "item_id"):
        super().__init__()
        self._max_tags = max_tags
        self._item_field = item_field

    def expand(self, inputs: dict[str, Any]):
        if "items" not in inputs:
            raise ValueError(f"ResolveItems needs an 'items' input, got {sorted(inputs)}")
        return (
            inputs
            | "GroupById" >> beam.CoGroupByKey()
            | "KeepFirst"
            >> beam.ParDo(_ResolveItemsFn(self._max_tags, self._item_field)).with_outputs(
                DEAD, COUNTS, main="items"
            )
        )


class _EncodeItemFn(beam.DoFn):
    def __init__(self, text_fields: tuple[str, ...]):
        self._text_fields = tuple(text_fields)

    def setup(self):
        self._counter = Metrics.counter(NAMESPACE, "items_written")

    def process(self, item: Item, item_counts):
        train, total, first = item_counts.get(item.item_id, (0, 0, -1))
        text = item_text(item, self._text_fields)
        self._counter.inc()
        yield schema.ITEMS.encode(
            {
                "item_id": item.item_id,
                "title": item.title,
                "description": item.description,
                "categories": item.categories,
                "text": text,
                "train_count": train,
                "total_count": total,
                "first_event_timestamp": first,
            }
        )
        yield pvalue.TaggedOutput(
            "stats",
            {
                "items": 1,
                "empty_description": int(not item.description),
                "text_chars_sum": len(text),
                "text_chars_max": len(text),
                "categories_per_item": {str(len(item.categories)): 1},
            },
        )


class EncodeItems(beam.PTransform):
    """Items → serialized item Examples with their popularity; a `stats` output too.

    Args:
      item_counts: Side input: a singleton dict `item → (train, total, first_time)`.
      text_fields: The fields joined into the item text (`pipeline.preprocess.records.item_text`).
    """

    def __init__(self, item_counts, text_fields=TEXT_FIELDS):
        super().__init__()
        self._item_counts = item_counts
        self._text_fields = tuple(text_fields)

    def expand(self, items):
        return items | "EncodeItemRecords" >> beam.ParDo(
            _EncodeItemFn(self._text_fields), item_counts=beam.pvalue.AsSingleton(self._item_counts)
        ).with_outputs("stats", main="records")
