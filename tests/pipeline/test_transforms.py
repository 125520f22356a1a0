"""Each composite transform of the preprocess job, on TestPipeline with hand-made inputs.

The pipelines run on the FnApiRunner, as the steps' DirectRunner jobs do
(`pipeline/core/beam_step.py`).
"""

import json

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import reasons
from pipeline.core import schema
from pipeline.core.config import EventFields, ItemFields, ValidationConfig
from pipeline.formats import FileFormat
from pipeline.records import Event, EventParser, Item, ItemParser
from pipeline.splits import SplitRule
from pipeline.transforms import (
    BuildTimelines,
    EncodeItems,
    MergeDicts,
    MergeItemCounts,
    ParseEvents,
    ParseItems,
    ParseSideRecords,
    ReadChunks,
    ResolveItems,
    SmallestDistinctKeys,
    user_shard,
)

JSON = FileFormat("lines", "json")


def _item(item_id, source="items.jsonl", line=1, categories=("c",)):
    return Item(item_id, f"Title {item_id}", "", tuple(categories), (), source, line)


def _event(user, item, ts, line=1, event_type="view"):
    return Event(user, item, ts, event_type, 1.0, 1.0, "events.jsonl", line)


def test_read_chunks_yields_every_record_once_with_its_line(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_bytes(b'{"x": 1}\n\n{"x": 2}\n{"x": 3}\n')
    b = tmp_path / "b.jsonl"
    b.write_bytes(b'{"x": 4}\n')
    with TestPipeline(runner="FnApiRunner") as p:
        chunks = p | ReadChunks([str(a), str(b)], JSON, chunk_size=2)
        records = chunks | beam.FlatMap(
            lambda c: [(c[0].rsplit("/", 1)[1], line, raw) for line, raw in c[1]]
        )
        skipped = chunks | "Skipped" >> beam.Map(lambda c: c[2]) | beam.CombineGlobally(sum)
        assert_that(
            records,
            equal_to(
                [
                    ("a.jsonl", 1, b'{"x": 1}'),
                    ("a.jsonl", 3, b'{"x": 2}'),
                    ("a.jsonl", 4, b'{"x": 3}'),
                    ("b.jsonl", 1, b'{"x": 4}'),
                ]
            ),
            label="records",
        )
        assert_that(skipped, equal_to([1]), label="blank lines")


def test_read_chunks_refuses_an_empty_file_list_when_built():
    with pytest.raises(ValueError, match="at least one path"):
        ReadChunks([], JSON, 10)


def test_parse_items_routes_bad_records_to_dead_letters():
    parser = ItemParser(ItemFields(), ValidationConfig())
    chunk = (
        "items.jsonl",
        [
            (1, b'{"item_id": "i1", "title": "Tent", "categories": "outdoor|camping"}'),
            (2, b'{"item_id": "i2"}'),
            (3, b"{not json"),
        ],
        0,
    )
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([chunk]) | ParseItems(JSON, parser)
        ids = out.items | beam.Map(lambda kv: (kv[0], kv[1].categories))
        assert_that(ids, equal_to([("i1", ("outdoor", "camping"))]), label="items")
        dead = out.dead | beam.Map(lambda d: (d["line"], d["reason"], d["field"]))
        assert_that(
            dead,
            equal_to([(2, reasons.MISSING_FIELD, "title"), (3, reasons.MALFORMED, None)]),
            label="dead",
        )
        assert_that(
            out.counts,
            equal_to([{"read": 3, "skipped_lines": 0, "rejected.missing_field": 1,
                       "rejected.malformed_record": 1}]),
            label="counts",
        )  # fmt: skip


def test_resolve_items_keeps_the_first_definition_and_adds_tags():
    items = [("i1", _item("i1", "b.jsonl", 1)), ("i1", _item("i1", "a.jsonl", 7))]
    tags = [
        ("i1", ("tag", "Funny", "t.csv", 2)),
        ("i1", ("tag", "funny", "t.csv", 3)),
        ("i9", ("tag", "x", "t.csv", 4)),
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        grouped = {"items": p | "Items" >> beam.Create(items), "tags": p | beam.Create(tags)}
        out = grouped | ResolveItems()
        kept = out.items | beam.Map(lambda it: (it.item_id, it.source, it.extra_text))
        assert_that(kept, equal_to([("i1", "a.jsonl", ("Tags: funny.",))]), label="kept")
        dead = out.dead | beam.Map(lambda d: (d["input"], d["source"], d["reason"]))
        assert_that(
            dead,
            equal_to(
                [
                    ("items", "b.jsonl", reasons.DUPLICATE_ITEM),
                    ("tags", "t.csv", reasons.UNKNOWN_ITEM),
                ]
            ),
            label="dead",
        )


PLOTS = FileFormat("lines", "movielens_dat_plot")


def _plot_line(item_id: str, plot: str) -> bytes:
    return f"{item_id}::T::1995::G::1995::Drama::D::W::A::{plot}::http://p.jpg\r".encode()


def test_parse_side_records_keys_plots_by_item_and_rejects_bad_lines():
    chunk = (
        "x.dat",
        [(1, _plot_line("1", "A plot.")), (2, _plot_line("2", "N/A")), (4, b"3::too::few")],
        1,
    )
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([chunk]) | ParseSideRecords(PLOTS, "plot")
        assert_that(out.records, equal_to([("1", ("plot", "A plot.", "x.dat", 1))]), label="kept")
        dead = out.dead | beam.Map(lambda d: (d["input"], d["line"], d["reason"], d["field"]))
        assert_that(
            dead,
            equal_to(
                [("plots", 2, reasons.EMPTY_FIELD, "plot"), ("plots", 4, reasons.MALFORMED, None)]
            ),
            label="dead",
        )
        assert_that(
            out.counts,
            equal_to([{"plots": {"read": 3, "skipped_lines": 1, "rejected.empty_field": 1,
                                 "rejected.malformed_record": 1}}]),
            label="counts",
        )  # fmt: skip


def test_parse_side_records_refuses_an_unknown_kind_when_built():
    with pytest.raises(ValueError, match="'poster'"):
        ParseSideRecords(PLOTS, "poster")


def test_resolve_items_sets_the_first_plot_as_description_and_rejects_the_others():
    items = [("i1", _item("i1")), ("i2", _item("i2", line=2))]
    side = [
        ("i1", ("plot", "Second in the file.", "p.dat", 5)),
        ("i1", ("plot", "First in the file.", "p.dat", 2)),
        ("i9", ("plot", "Nobody's plot.", "p.dat", 9)),
    ]
    tags = [("i2", ("tag", "dark", "t.csv", 2))]
    with TestPipeline(runner="FnApiRunner") as p:
        grouped = {
            "items": p | "Items" >> beam.Create(items),
            "plots": p | "Plots" >> beam.Create(side),
            "tags": p | "Tags" >> beam.Create(tags),
        }
        out = grouped | ResolveItems()
        kept = out.items | beam.Map(lambda it: (it.item_id, it.description, it.extra_text))
        assert_that(
            kept,
            equal_to([("i1", "First in the file.", ()), ("i2", "", ("Tags: dark.",))]),
            label="kept",
        )
        dead = out.dead | beam.Map(
            lambda d: (d["input"], d["line"], d["reason"], d["field"], d["raw"], d["detail"])
        )
        assert_that(
            dead,
            equal_to(
                [
                    ("plots", 5, reasons.DUPLICATE_ITEM, "item_id", '"Second in the file."',
                     "a second plot for item_id 'i1': the one at p.dat:2 is kept"),
                    ("plots", 9, reasons.UNKNOWN_ITEM, "item_id", '"Nobody\'s plot."',
                     "plot for item_id 'i9', not in the catalog"),
                ]
            ),
            label="dead",
        )  # fmt: skip
        counts = out.counts | beam.CombineGlobally(MergeDicts())
        assert_that(
            counts,
            equal_to(
                [
                    {
                        "items": {"kept": 2},
                        "plots": {
                            "kept": 1,
                            "rejected.duplicate_item": 1,
                            "rejected.unknown_item": 1,
                        },
                        "tags": {"kept": 1},
                    }
                ]
            ),
            label="counts",
        )


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


def test_combiners_merge_partials():
    with TestPipeline(runner="FnApiRunner") as p:
        merged = (
            p
            | "Dicts" >> beam.Create([{"n": 1, "t_min": 5, "h": {"a": 1}}, {"n": 2, "t_min": 3}])
            | "Merge" >> beam.CombineGlobally(MergeDicts())
        )
        assert_that(merged, equal_to([{"n": 3, "t_min": 3, "h": {"a": 1}}]), label="dicts")
        items = (
            p
            | "Items" >> beam.Create([{"a": (1, 2, 50)}, {"a": (0, 1, 40), "b": (1, 1, 9)}])
            | "MergeItems" >> beam.CombineGlobally(MergeItemCounts())
        )
        assert_that(items, equal_to([{"a": (1, 3, 40), "b": (1, 1, 9)}]), label="items")
        keys = (
            p
            | "Keys" >> beam.Create([[9, 3, 3], [7, 1], [3, 8]])
            | "Smallest" >> beam.CombineGlobally(SmallestDistinctKeys(3))
        )
        assert_that(keys, equal_to([[1, 3, 7]]), label="keys")


def test_encode_items_attaches_popularity_and_text():
    item = Item("i1", "Tent", "Sleeps two.", ("outdoor",), ("Acme",), "items.jsonl", 1)
    cold = _item("i2")
    with TestPipeline(runner="FnApiRunner") as p:
        counts = p | "Counts" >> beam.Create([{"i1": (4, 5, 123)}])
        out = p | beam.Create([item, cold]) | EncodeItems(counts)
        fields = ("item_id", "text", "train_count", "total_count", "first_event_timestamp")
        decoded = out.records | beam.Map(
            lambda r: tuple(schema.decode_example(r, schema.ITEMS)[f] for f in fields)
        )
        assert_that(
            decoded,
            equal_to(
                [
                    ("i1", "Tent. Categories: outdoor. Sleeps two. Acme", 4, 5, 123),
                    ("i2", "Title i2. Categories: c.", 0, 0, -1),
                ]
            ),
        )


def test_rejections_are_beam_counters():
    parser = EventParser(EventFields(), ValidationConfig())
    chunk = (
        "e.jsonl",
        [(1, b"oops"), (2, b'{"user_id": "u", "item_id": "i1", "timestamp": "x"}')],
        0,
    )
    p = TestPipeline(runner="FnApiRunner")
    catalog = p | "Catalog" >> beam.Create([("i1", ())])
    _ = (
        p
        | beam.Create([chunk])
        | ParseEvents(JSON, parser, catalog, 2, SplitRule("temporal", cutoff=0), None)
    )
    result = p.run()
    result.wait_until_finish()

    def counter(name):
        found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
        return sum(c.committed for c in found)

    assert counter("events_read") == 2
    assert counter("events_rejected_malformed_record") == 1
    assert counter("events_rejected_unparseable_timestamp") == 1
