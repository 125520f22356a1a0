"""Tests of the TFRecord schema: encoding, decoding, TensorFlow parsing and output paths."""

from __future__ import annotations

import os

import pytest

from pipeline.core.schema import EVENTS, ITEMS, Feature, Schema, decode_example, output_pattern

EVENT = {
    "user_id": "u1",
    "item_id": "Amélie — 東京",
    "timestamp": 978300760,
    "event_type": "click",
    "label": 4.5,
    "weight": 0.25,
    "item_categories": ["Comédie", "Romance"],
    "history_item_ids": ["i9", "i7", "i9"],
    "history_timestamps": [978300000, 978300100, 978300200],
}
FIRST_EVENT = {
    **EVENT,
    "user_id": "ü2",
    "timestamp": 0,
    "label": 1.0,
    "item_categories": [],
    "history_item_ids": [],
    "history_timestamps": [],
}
ITEM = {
    "item_id": "73",
    "title": "Misérables, Les (1995)",
    "description": "",
    "categories": ["Drama", "Musical"],
    "text": "Misérables, Les (1995). Categories: Drama, Musical.",
    "train_count": 12,
    "total_count": 15,
    "first_event_timestamp": -1,
}


@pytest.mark.parametrize(
    ("schema", "values"),
    [(EVENTS, EVENT), (EVENTS, FIRST_EVENT), (ITEMS, ITEM), (ITEMS, {**ITEM, "categories": []})],
)
def test_encode_decode_round_trip(schema, values):
    assert decode_example(schema.encode(values), schema) == values


def test_encode_accepts_tuples_bytes_and_ignores_extra_keys():
    values = {
        **EVENT,
        "user_id": "ü".encode(),
        "item_categories": ("a", b"b"),
        "history_item_ids": ("i1",),
        "history_timestamps": (5,),
        "not_a_feature": "x",
    }
    decoded = decode_example(EVENTS.encode(values), EVENTS)
    assert decoded["user_id"] == "ü"
    assert decoded["item_categories"] == ["a", "b"]
    assert decoded["history_item_ids"] == ["i1"]
    assert "not_a_feature" not in decoded


def test_encoding_is_deterministic():
    assert EVENTS.encode(EVENT) == EVENTS.encode(dict(reversed(list(EVENT.items()))))


def test_missing_feature_is_named():
    values = {k: v for k, v in EVENT.items() if k != "history_timestamps"}
    with pytest.raises(KeyError, match="'history_timestamps'"):
        EVENTS.encode(values)


@pytest.mark.parametrize(
    ("feature", "value", "message"),
    [
        ("item_categories", "Drama", "must be a list"),
        ("history_item_ids", b"i1", "must be a list"),
        ("history_timestamps", 5, "must be a list"),
        ("user_id", ["u1"], "must be a scalar"),
        ("timestamp", (1, 2), "must be a scalar"),
        ("label", [4.5], "must be a scalar"),
    ],
)
def test_wrong_shapes_are_named(feature, value, message):
    with pytest.raises(ValueError, match=message) as info:
        EVENTS.encode({**EVENT, feature: value})
    assert repr(feature) in str(info.value)


def test_schema_rejects_duplicate_feature_names():
    with pytest.raises(ValueError, match="duplicate"):
        Schema("x", [Feature("a", "string"), Feature("a", "int64")])


def test_names_in_order():
    assert EVENTS.names[:3] == ("user_id", "item_id", "timestamp")
    assert ITEMS.names[-1] == "first_event_timestamp"


@pytest.mark.parametrize(
    ("schema", "records"),
    [(EVENTS, [EVENT, FIRST_EVENT]), (ITEMS, [ITEM, {**ITEM, "item_id": "1", "categories": []}])],
)
def test_tensorflow_parses_the_bytes_to_the_same_values(schema, records):
    import tensorflow as tf

    serialized = [schema.encode(r) for r in records]
    parsed = tf.io.parse_example(tf.constant(serialized), schema.tf_feature_spec())
    assert set(parsed) == set(schema.names)
    for f in schema.features:
        tensor = parsed[f.name]
        if f.varlen:
            assert isinstance(tensor, tf.RaggedTensor)
            column = tensor.to_list()
        else:
            assert tensor.shape == (len(records),)
            column = tensor.numpy().tolist()
        if f.dtype == "string":
            decode = (lambda v: [b.decode() for b in v]) if f.varlen else (lambda b: b.decode())
            column = [decode(v) for v in column]
        assert column == [r[f.name] for r in records], f.name


@pytest.mark.parametrize(
    ("name", "relative"),
    [
        ("train", "train/events-*.tfrecord.gz"),
        ("validation", "validation/events-*.tfrecord.gz"),
        ("eval", "eval/events-*.tfrecord.gz"),
        ("items", "items/items-*.tfrecord.gz"),
        ("dead_letters", "dead_letters/*.jsonl"),
        ("vocab_users", "vocab/users.txt"),
        ("vocab_items", "vocab/items.txt"),
        ("vocab_categories", "vocab/categories.txt"),
        ("counts_items", "vocab/items_counts.tsv"),
        ("stats", "stats.json"),
        ("manifest", "manifest.json"),
    ],
)
def test_output_pattern(name, relative):
    assert output_pattern("work/preprocess", name) == os.path.join("work/preprocess", relative)


def test_output_pattern_unknown_name():
    with pytest.raises(KeyError, match="'bogus'") as info:
        output_pattern("work/preprocess", "bogus")
    assert "train" in str(info.value)
