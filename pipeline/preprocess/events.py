"""The event side of the preprocess job: event records parsed and checked against the catalog,
batched by user shard, then each user's timeline built: duplicates dropped, histories attached,
the split assigned, and each event encoded as a train, validation or eval Example.

Each transform has a `dead` and a `counts` output besides its main ones (`rejections`).
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline.core import schema
from pipeline.core.timestamps import format_timestamp
from pipeline.preprocess import reasons
from pipeline.preprocess.formats import FileFormat, decode_record
from pipeline.preprocess.history import build_timeline
from pipeline.preprocess.reasons import RecordError
from pipeline.preprocess.records import Event, EventParser
from pipeline.preprocess.rejections import COUNTS, DEAD, NAMESPACE, Rejections
from pipeline.preprocess.splits import (
    EVAL,
    SPLITS,
    TRAIN,
    VALIDATION,
    SplitRule,
    assign_splits,
    event_key,
)
from pipeline.preprocess.stats import log2_bucket, merge_stats

__all__ = ["BuildTimelines", "ParseEvents", "user_shard"]


def user_shard(user_id: str, num_shards: int) -> int:
    """A stable shard of a user id (Python's `hash` is salted per process, so it is not used)."""
    return zlib.crc32(user_id.encode("utf-8")) % num_shards


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
        self._rejections = Rejections("events")
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
        self._rejections = Rejections("events")
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
