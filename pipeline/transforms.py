"""The preprocessing job's composite transforms.

Records travel in chunks (a list per element) until they are grouped by user, so per-element
runner overhead is paid per chunk, not per record. Every transform routes bad records to a `dead`
output with the reason and reports what it read, kept and rejected in a `counts` output, so the
job can prove that records read = kept + rejected.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline import reasons
from pipeline.core import schema
from pipeline.core.timestamps import format_timestamp
from pipeline.formats import FileFormat, decode_record, raw_text, read_file
from pipeline.history import build_timeline
from pipeline.reasons import RecordError
from pipeline.records import (
    TEXT_FIELDS,
    Event,
    EventParser,
    Item,
    ItemParser,
    dead_letter,
    item_text,
)
from pipeline.splits import (
    EVAL,
    SPLITS,
    TRAIN,
    VALIDATION,
    SplitRule,
    assign_splits,
    event_key,
    smallest_distinct,
)
from pipeline.stats import log2_bucket, merge_stats

__all__ = [
    "BuildTimelines",
    "EncodeItems",
    "MergeDicts",
    "MergeItemCounts",
    "ParseEvents",
    "ParseItems",
    "ParseSideRecords",
    "ReadChunks",
    "ResolveItems",
    "SmallestDistinctKeys",
    "user_shard",
]

NAMESPACE = "recsys.preprocess"
DEAD, COUNTS = "dead", "counts"


def user_shard(user_id: str, num_shards: int) -> int:
    """A stable shard of a user id (Python's `hash` is salted per process, so it is not used)."""
    return zlib.crc32(user_id.encode("utf-8")) % num_shards


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
      paths: Files to read (already matched; see `pipeline.inputs`).
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


class _Rejections:
    """Counts rejections per reason in Beam metrics and in the job's own counts."""

    def __init__(self, input_name: str):
        self._input = input_name
        self._counters = {
            reason: Metrics.counter(NAMESPACE, f"{input_name}_rejected_{reason}")
            for reason in reasons.ALL
        }

    def reject(
        self, counts: Counter, source: str, line: int, error: RecordError, raw: Any
    ) -> pvalue.TaggedOutput:
        counts[f"rejected.{error.reason}"] += 1
        self._counters[error.reason].inc()
        return pvalue.TaggedOutput(
            DEAD, dead_letter(self._input, source, line, error, raw_text(raw))
        )


class _ParseItemsFn(beam.DoFn):
    def __init__(self, fmt: FileFormat, parser: ItemParser):
        self._fmt = fmt
        self._parser = parser

    def setup(self):
        self._rejections = _Rejections("items")
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
        self._rejections = _Rejections(SIDE_INPUTS[self._kind])

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
        self._rejections = _Rejections("items")
        self._side_rejections = {kind: _Rejections(name) for kind, name in SIDE_INPUTS.items()}

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


class _ParseEventsFn(beam.DoFn):
    def __init__(
        self,
        fmt: FileFormat,
        parser: EventParser,
        item_field: str,
        user_shards: int,
        split: SplitRule,
        key_kind: str | None,
    ):
        self._fmt = fmt
        self._parser = parser
        self._item_field = item_field
        self._user_shards = user_shards
        self._split = split
        self._key_kind = key_kind

    def setup(self):
        self._rejections = _Rejections("events")
        self._read = Metrics.counter(NAMESPACE, "events_read")

    def process(self, chunk, catalog):
        path, records, skipped = chunk
        counts: Counter = Counter(read=len(records), skipped_lines=skipped)
        self._read.inc(len(records))
        batches: dict[int, list[tuple]] = defaultdict(list)
        keys: list[int] = []
        for number, raw in records:
            try:
                event = self._parser.parse(decode_record(raw, self._fmt), path, number)
                if event.item_id not in catalog:
                    raise RecordError(
                        reasons.UNKNOWN_ITEM,
                        f"item_id {event.item_id!r} is not in the item catalog",
                        self._item_field,
                    )
            except RecordError as e:
                yield self._rejections.reject(counts, path, number, e, raw)
                continue
            # A plain tuple: Beam's fast coder encodes it natively, a NamedTuple it pickles.
            batches[user_shard(event.user_id, self._user_shards)].append(tuple(event))
            if self._key_kind == "timestamp":
                keys.append(event.timestamp)
            elif self._key_kind == "hash":
                keys.append(event_key(event, self._split.seed))
        yield from batches.items()
        if keys:
            yield pvalue.TaggedOutput("split_keys", keys)
        yield pvalue.TaggedOutput(COUNTS, {"events": dict(counts)})


class ParseEvents(beam.PTransform):
    """Chunks of event records → `(user_shard, [Event fields as a plain tuple, ...])` batches.

    Outputs: the main batches; `dead`; `counts`; `split_keys` (lists of event times or random
    keys, for the split boundary).

    Args:
      fmt: How to decode the records.
      parser: Field validation.
      catalog: Side input, a PCollection of `(item_id, categories)`: events on other items are
        rejected as `unknown_item`.
      user_shards: Number of user groups.
      split: The split rule (its method decides which keys are emitted).
      needs_keys: `timestamp`, `hash` or None: which split keys to emit.
    """

    def __init__(self, fmt, parser, catalog, user_shards, split, needs_keys, item_field="item_id"):
        super().__init__()
        self._fn = _ParseEventsFn(fmt, parser, item_field, user_shards, split, needs_keys)
        self._catalog = catalog

    def expand(self, chunks):
        return chunks | "ParseEventRecords" >> beam.ParDo(
            self._fn, catalog=beam.pvalue.AsDict(self._catalog)
        ).with_outputs(DEAD, COUNTS, "split_keys", main="batches")


class _BuildTimelinesFn(beam.DoFn):
    def __init__(self, history_length: int):
        self._history_length = history_length

    def setup(self):
        self._rejections = _Rejections("events")
        self._split_counters = {
            name: Metrics.counter(NAMESPACE, f"events_{name}") for name in SPLITS
        }

    def process(self, element, rule: SplitRule, catalog):
        _, batches = element
        by_user: dict[str, list[Event]] = defaultdict(list)
        for batch in batches:
            for fields in batch:
                event = Event._make(fields)
                by_user[event.user_id].append(event)
        counts: Counter = Counter()
        stats: dict[str, Any] = {}
        user_counts: dict[str, tuple[int, int]] = {}
        item_counts: dict[str, tuple[int, int, int]] = {}
        split_totals: Counter = Counter()
        for user_id in sorted(by_user):
            timeline, duplicates = build_timeline(by_user[user_id], self._history_length)
            for duplicate, original in duplicates:
                error = RecordError(
                    reasons.DUPLICATE_EVENT,
                    f"same user, item, time and event type as {original.source}:{original.line}",
                )
                yield self._rejections.reject(
                    counts, duplicate.source, duplicate.line, error, _event_raw(duplicate)
                )
            names = assign_splits(timeline, rule)
            n_split = Counter(names)
            # Train counts cover every event before eval: what the model and baselines learn from.
            user_counts[user_id] = (n_split[TRAIN] + n_split[VALIDATION], len(names))
            for entry, split in zip(timeline, names, strict=True):
                event = entry.event
                record = schema.EVENTS.encode(
                    {
                        "user_id": event.user_id,
                        "item_id": event.item_id,
                        "timestamp": event.timestamp,
                        "event_type": event.event_type,
                        "label": event.label,
                        "weight": event.weight,
                        "item_categories": catalog[event.item_id],
                        "history_item_ids": entry.history_item_ids,
                        "history_timestamps": entry.history_timestamps,
                    }
                )
                yield pvalue.TaggedOutput(split, record)
                train, total, first = item_counts.get(event.item_id, (0, 0, event.timestamp))
                item_counts[event.item_id] = (
                    train + (split != EVAL),
                    total + 1,
                    min(first, event.timestamp),
                )
            split_totals.update(n_split)
            stats = merge_stats(stats, _timeline_stats(timeline, n_split))
        counts["kept"] += sum(total for _, total in user_counts.values())
        for name, counter in self._split_counters.items():
            counter.inc(split_totals[name])
        yield pvalue.TaggedOutput(COUNTS, {"events": dict(counts)})
        yield pvalue.TaggedOutput("stats", stats)
        yield pvalue.TaggedOutput("user_counts", user_counts)
        yield pvalue.TaggedOutput("item_counts", item_counts)


def _event_raw(event: Event) -> dict[str, Any]:
    return {
        "user_id": event.user_id,
        "item_id": event.item_id,
        "timestamp": event.timestamp,
        "event_type": event.event_type,
    }


def _timeline_stats(timeline, n_split: Counter) -> dict[str, Any]:
    labels = [t.event.label for t in timeline]
    times = [t.event.timestamp for t in timeline]
    days: Counter = Counter(time // 86400 * 86400 for time in times)
    n_before_eval = n_split[TRAIN] + n_split[VALIDATION]
    n_eval = n_split[EVAL]
    return {
        "train": n_split[TRAIN],
        "validation": n_split[VALIDATION],
        "eval": n_eval,
        "users": 1,
        "users_with_train": int(n_before_eval > 0),
        "eval_users_without_train": int(n_before_eval == 0 and n_eval > 0),
        "eval_events_cold_users": n_eval if n_before_eval == 0 else 0,
        "label_sum": float(sum(labels)),
        "label_sq_sum": float(sum(x * x for x in labels)),
        "label_min": min(labels),
        "label_max": max(labels),
        "history_len_sum": sum(len(t.history_item_ids) for t in timeline),
        "time_min": min(times),
        "time_max": max(times),
        "event_types": dict(Counter(t.event.event_type for t in timeline)),
        "events_per_user": {log2_bucket(len(timeline)): 1},
        "events_per_day": {format_timestamp(day)[:10]: n for day, n in days.items()},
    }


class BuildTimelines(beam.PTransform):
    """`(user_shard, [Event, ...])` batches → serialized train, validation and eval Examples.

    Groups each shard's events by user, drops duplicates (to `dead`), builds histories and assigns
    the split. Outputs: `train`, `validation`, `eval` (serialized tf.train.Example), `dead`,
    `counts`, `stats` (partial statistics), `user_counts` (user → (train, total)) and
    `item_counts` (item → (train, total, first event time)), one dict per shard. Their "train"
    counts are train + validation events: everything before eval, which the deployed model (after
    model selection) and the baselines learn from.

    Args:
      history_length: H.
      rule: Side input holding the resolved `SplitRule`.
      catalog: PCollection of `(item_id, categories)`.
    """

    def __init__(self, history_length: int, rule, catalog):
        super().__init__()
        self._history_length = history_length
        self._rule = rule
        self._catalog = catalog

    def expand(self, batches):
        return (
            batches
            | "GroupByUserShard" >> beam.GroupByKey()
            | "BuildHistories"
            >> beam.ParDo(
                _BuildTimelinesFn(self._history_length),
                rule=beam.pvalue.AsSingleton(self._rule),
                catalog=beam.pvalue.AsDict(self._catalog),
            ).with_outputs(
                *SPLITS, DEAD, COUNTS, "stats", "user_counts", "item_counts", main="unused"
            )
        )


class MergeDicts(beam.CombineFn):
    """Merges partial statistics/count dicts with `pipeline.stats.merge_stats`."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, element):
        return merge_stats(accumulator, element)

    def merge_accumulators(self, accumulators):
        merged: dict[str, Any] = {}
        for accumulator in accumulators:
            merged = merge_stats(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


class MergeItemCounts(beam.CombineFn):
    """Merges `item → (train, total, first_time)` dicts: counts add, first times take the min."""

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, element):
        for key, (train, total, first) in element.items():
            old = accumulator.get(key)
            accumulator[key] = (
                (train, total, first)
                if old is None
                else (old[0] + train, old[1] + total, min(old[2], first))
            )
        return accumulator

    def merge_accumulators(self, accumulators):
        merged: dict[str, tuple[int, int, int]] = {}
        for accumulator in accumulators:
            merged = self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


class SmallestDistinctKeys(beam.CombineFn):
    """The k smallest distinct uint64 keys, from batches of keys (for an exact eval count)."""

    def __init__(self, k: int):
        self._k = k

    def create_accumulator(self):
        return np.zeros(0, dtype=np.uint64)

    def add_input(self, accumulator, element):
        keys = np.concatenate([accumulator, np.asarray(element, dtype=np.uint64)])
        return smallest_distinct(keys, self._k)

    def merge_accumulators(self, accumulators):
        return smallest_distinct(np.concatenate(list(accumulators)), self._k)

    def extract_output(self, accumulator):
        return [int(k) for k in accumulator]


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
      text_fields: The fields joined into the item text (`pipeline.records.item_text`).
    """

    def __init__(self, item_counts, text_fields=TEXT_FIELDS):
        super().__init__()
        self._item_counts = item_counts
        self._text_fields = tuple(text_fields)

    def expand(self, items):
        return items | "EncodeItemRecords" >> beam.ParDo(
            _EncodeItemFn(self._text_fields), item_counts=beam.pvalue.AsSingleton(self._item_counts)
        ).with_outputs("stats", main="records")


def to_json_line(value: Any) -> str:
    """One JSON line, UTF-8 text kept readable."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
