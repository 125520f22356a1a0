"""The event side's composite transforms, on TestPipeline with hand-made inputs.

The pipelines run on the FnApiRunner, as the steps' DirectRunner jobs do
(`pipeline/core/beam_step.py`).
"""

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core import schema
from pipeline.core.config import EventFields, ValidationConfig
from pipeline.preprocess import reasons
from pipeline.preprocess.events import BuildTimelines, ParseEvents, user_shard
from pipeline.preprocess.formats import FileFormat
from pipeline.preprocess.records import Event, EventParser
from pipeline.preprocess.splits import SplitRule

JSON = FileFormat("lines", "json")


def _event(user, item, ts, line=1, event_type="view"):
    return Event(user, item, ts, event_type, 1.0, 1.0, "events.jsonl", line)


def test_parse_events_rejects_unknown_items_and_batches_by_user_shard():
    parser = EventParser(EventFields(), ValidationConfig())
    chunk = (
        "events.jsonl",
        [
            (1, b'{"user_id": "u1", "item_id": "i1", "timestamp": 100}'),
            (2, b'{"user_id": "u1", "item_id": "nope", "timestamp": 101}'),
            (3, b'{"user_id": "u2", "item_id": "i1", "timestamp": "1970-01-01T00:03:20Z"}'),
        ],
        1,
    )
    rule = SplitRule("temporal", cutoff=0)
    with TestPipeline(runner="FnApiRunner") as p:
        catalog = p | "Catalog" >> beam.Create([("i1", ("c",))])
        out = p | beam.Create([chunk]) | ParseEvents(JSON, parser, catalog, 4, rule, "timestamp")
        flat = out.batches | beam.FlatMap(
            lambda kv: [(kv[0], Event._make(e).user_id, Event._make(e).timestamp) for e in kv[1]]
        )
        assert_that(
            flat,
            equal_to([(user_shard("u1", 4), "u1", 100), (user_shard("u2", 4), "u2", 200)]),
            label="events",
        )
        dead = out.dead | beam.Map(
            lambda d: (d["line"], d["reason"], d["field"], json.loads(d["raw"]))
        )
        assert_that(
            dead,
            equal_to(
                [(2, reasons.UNKNOWN_ITEM, "item_id",
                  {"user_id": "u1", "item_id": "nope", "timestamp": 101})]
            ),
            label="dead",
        )  # fmt: skip
        keys = out.split_keys | beam.FlatMap(lambda ks: ks)
        assert_that(keys, equal_to([100, 200]), label="keys")
        assert_that(
            out.counts,
            equal_to([{"events": {"read": 3, "skipped_lines": 1, "rejected.unknown_item": 1}}]),
            label="counts",
        )


def test_build_timelines_writes_histories_splits_and_rejects_duplicates():
    events = [
        _event("u1", "a", 10, 1),
        _event("u1", "b", 20, 2),
        _event("u1", "b", 20, 3),  # duplicate of line 2
        _event("u1", "c", 20, 4, "click"),  # same second as b: b is not in its history
        _event("u1", "d", 30, 5),
    ]
    batches = [(0, events[:2]), (0, events[2:])]
    with TestPipeline(runner="FnApiRunner") as p:
        catalog = p | "Catalog" >> beam.Create([(k, (k.upper(),)) for k in "abcd"])
        rule = p | "Rule" >> beam.Create([SplitRule("temporal", cutoff=30)])
        out = p | beam.Create(batches) | BuildTimelines(2, rule, catalog)

        def decoded(records, label):
            return (
                records
                | f"Decode{label}" >> beam.Map(lambda r: schema.decode_example(r, schema.EVENTS))
                | f"Pick{label}"
                >> beam.Map(
                    lambda d: (
                        d["item_id"],
                        tuple(d["history_item_ids"]),
                        tuple(d["item_categories"]),
                    )
                )
            )

        assert_that(
            decoded(out.train, "Train"),
            equal_to([("a", (), ("A",)), ("b", ("a",), ("B",)), ("c", ("a",), ("C",))]),
            label="train",
        )
        assert_that(
            decoded(out.eval, "Eval"),
            equal_to([("d", ("b", "c"), ("D",))]),
            label="eval",
        )
        dead = out.dead | beam.Map(lambda d: (d["line"], d["reason"]))
        assert_that(dead, equal_to([(3, reasons.DUPLICATE_EVENT)]), label="dead")
        assert_that(out.user_counts, equal_to([{"u1": (3, 4)}]), label="users")
        assert_that(
            out.item_counts,
            equal_to([{"a": (1, 1, 10), "b": (1, 1, 20), "c": (1, 1, 20), "d": (0, 1, 30)}]),
            label="items",
        )


def test_build_timelines_emits_validation_and_counts_it_before_eval():
    events = [
        _event("u1", "a", 10, 1),
        _event("u1", "b", 20, 2),  # validation: 20 ≤ t < 30
        _event("u1", "c", 25, 3),
        _event("u1", "d", 30, 4),  # eval
        _event("u2", "d", 5, 5),
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        catalog = p | "Catalog" >> beam.Create([(k, ()) for k in "abcd"])
        rule = p | "Rule" >> beam.Create([SplitRule("temporal", cutoff=30, validation_cutoff=20)])
        out = p | beam.Create([(0, events)]) | BuildTimelines(2, rule, catalog)
        for name, expected in (("train", ["a", "d"]), ("validation", ["b", "c"]), ("eval", ["d"])):
            items = out[name] | f"Items{name}" >> beam.Map(
                lambda r: schema.decode_example(r, schema.EVENTS)["item_id"]
            )
            assert_that(items, equal_to(expected), label=name)
        # train counts are every event before eval: train and validation
        assert_that(out.user_counts, equal_to([{"u1": (3, 4), "u2": (1, 1)}]), label="users")
        assert_that(
            out.item_counts,
            equal_to([{"a": (1, 1, 10), "b": (1, 1, 20), "c": (1, 1, 25), "d": (1, 2, 5)}]),
            label="item counts",
        )
        split_stats = out.stats | beam.Map(
            lambda s: (s["train"], s["validation"], s["eval"], s["users_with_train"])
        )
        assert_that(split_stats, equal_to([(2, 2, 1, 2)]), label="stats")
