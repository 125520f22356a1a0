"""The item side's composite transforms, on TestPipeline with hand-made inputs.

The pipelines run on the FnApiRunner, as the steps' DirectRunner jobs do
(`pipeline/core/beam_step.py`).
"""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core import schema
from pipeline.core.config import ItemFields, ValidationConfig
from pipeline.preprocess import reasons
from pipeline.preprocess.combiners import MergeDicts
from pipeline.preprocess.formats import FileFormat
from pipeline.preprocess.items import EncodeItems, ParseItems, ParseSideRecords, ResolveItems
from pipeline.preprocess.records import Item, ItemParser

JSON = FileFormat("lines", "json")


def _item(item_id, source="items.jsonl", line=1, categories=("c",)):
    return Item(item_id, f"Title {item_id}", "", tuple(categories), (), source, line)


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
