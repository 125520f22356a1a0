"""Tests of field dict → Event / Item validation."""

from __future__ import annotations

import pytest

from pipeline.core.config import EventFields, ItemFields, ValidationConfig
from pipeline.preprocess import reasons
from pipeline.preprocess.reasons import RecordError
from pipeline.preprocess.records import Event, EventParser, Item, ItemParser, dead_letter, item_text

LIMITS = ValidationConfig(max_id_bytes=8, max_field_bytes=20)
RATED = EventFields(rating="rating", weight="weight")


def event_parser(fields: EventFields = RATED, **kwargs) -> EventParser:
    return EventParser(fields, LIMITS, **kwargs)


def item_parser(**kwargs) -> ItemParser:
    return ItemParser(ItemFields(), LIMITS, **kwargs)


def event_record(**changes) -> dict:
    record = {"user_id": "u1", "item_id": "i1", "timestamp": 978300760, "rating": "4.5"}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not Ellipsis}


def item_record(**changes) -> dict:
    record = {"item_id": "i1", "title": "Toy Story", "description": "", "categories": "a|b"}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not Ellipsis}


def rejection(parser, record) -> RecordError:
    with pytest.raises(RecordError) as info:
        parser.parse(record, "events.jsonl", 3)
    return info.value


# --- events ------------------------------------------------------------------------------------


def test_valid_event():
    record = event_record(event_type="click", weight=2)
    assert event_parser().parse(record, "events.jsonl", 3) == Event(
        "u1", "i1", 978300760, "click", 4.5, 2.0, "events.jsonl", 3
    )


def test_int_ids_become_strings_and_text_is_stripped():
    event = event_parser().parse(event_record(user_id=17, item_id=42.0, timestamp=" 5 "), "s", 1)
    assert (event.user_id, event.item_id, event.timestamp) == ("17", "42", 5)
    event = event_parser().parse(event_record(user_id="  u 1 "), "s", 1)
    assert event.user_id == "u 1"


def test_iso_and_millisecond_timestamps():
    parser = event_parser()
    assert parser.parse(event_record(timestamp="2001-01-01T00:00:00Z"), "s", 1).timestamp == (
        978307200
    )
    assert parser.parse(event_record(timestamp=978300760123), "s", 1).timestamp == 978300760
    ms = event_parser(timestamp_unit="ms")
    assert ms.parse(event_record(timestamp=5000), "s", 1).timestamp == 5


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"user_id": ...}, reasons.MISSING_FIELD, "user_id"),
        ({"item_id": ...}, reasons.MISSING_FIELD, "item_id"),
        ({"timestamp": ...}, reasons.MISSING_FIELD, "timestamp"),
        ({"rating": ...}, reasons.MISSING_FIELD, "rating"),
        ({"user_id": ""}, reasons.EMPTY_FIELD, "user_id"),
        ({"user_id": "   "}, reasons.EMPTY_FIELD, "user_id"),
        ({"item_id": None}, reasons.EMPTY_FIELD, "item_id"),
        ({"timestamp": None}, reasons.EMPTY_FIELD, "timestamp"),
        ({"timestamp": " "}, reasons.EMPTY_FIELD, "timestamp"),
        ({"rating": ""}, reasons.EMPTY_FIELD, "rating"),
        ({"rating": None}, reasons.EMPTY_FIELD, "rating"),
        ({"timestamp": "yesterday"}, reasons.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": -5}, reasons.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": True}, reasons.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": [1]}, reasons.BAD_TIMESTAMP, "timestamp"),
        ({"rating": "five"}, reasons.BAD_VALUE, "rating"),
        ({"rating": "nan"}, reasons.BAD_VALUE, "rating"),
        ({"rating": float("inf")}, reasons.BAD_VALUE, "rating"),
        ({"rating": True}, reasons.BAD_VALUE, "rating"),
        ({"rating": [4]}, reasons.BAD_VALUE, "rating"),
        ({"weight": "heavy"}, reasons.BAD_VALUE, "weight"),
        ({"weight": -1}, reasons.BAD_VALUE, "weight"),
        ({"user_id": ["u1"]}, reasons.BAD_VALUE, "user_id"),
        ({"user_id": {"id": 1}}, reasons.BAD_VALUE, "user_id"),
        ({"user_id": True}, reasons.BAD_VALUE, "user_id"),
        ({"item_id": 1.5}, reasons.BAD_VALUE, "item_id"),
        ({"item_id": float("nan")}, reasons.BAD_VALUE, "item_id"),
        ({"user_id": "u\x001"}, reasons.BAD_VALUE, "user_id"),
        ({"item_id": "i\t1"}, reasons.BAD_VALUE, "item_id"),
        ({"item_id": "i\x7f"}, reasons.BAD_VALUE, "item_id"),
        ({"event_type": ["click"]}, reasons.BAD_VALUE, "event_type"),
        ({"user_id": "u" * 9}, reasons.OVERSIZED, "user_id"),
        ({"item_id": "é" * 5}, reasons.OVERSIZED, "item_id"),  # 5 characters, 10 bytes
        ({"event_type": "x" * 21}, reasons.OVERSIZED, "event_type"),
    ],
)
def test_event_rejections_name_reason_and_field(changes, reason, field):
    error = rejection(event_parser(), event_record(**changes))
    assert (error.reason, error.field) == (reason, field)
    assert f"'{field}'" in error.detail


def test_limits_are_inclusive():
    event = event_parser().parse(event_record(user_id="u" * 8, event_type="x" * 20), "s", 1)
    assert event.user_id == "u" * 8


def test_renamed_fields_are_named_in_errors():
    fields = EventFields(user_id="uid", item_id="iid", timestamp="ts", rating="stars")
    parser = EventParser(fields, LIMITS)
    event = parser.parse({"uid": "a", "iid": "b", "ts": 1, "stars": 3}, "s", 1)
    assert (event.user_id, event.item_id, event.label) == ("a", "b", 3.0)
    assert rejection(parser, {"uid": "a", "iid": "b", "ts": 1}).field == "stars"
    assert rejection(parser, {"uid": "a", "iid": "b", "ts": "x", "stars": 1}).field == "ts"


def test_default_event_type_and_implicit_label():
    parser = EventParser(EventFields(), LIMITS, default_event_type="view")
    record = {"user_id": "u", "item_id": "i", "timestamp": 1}
    event = parser.parse(record, "s", 1)
    assert (event.event_type, event.label, event.weight) == ("view", 1.0, 1.0)
    assert parser.parse({**record, "event_type": ""}, "s", 1).event_type == "view"
    assert parser.parse({**record, "event_type": None}, "s", 1).event_type == "view"
    assert parser.parse({**record, "event_type": "buy"}, "s", 1).event_type == "buy"


def test_event_type_field_none_ignores_the_record_value():
    parser = EventParser(EventFields(event_type=None), LIMITS)
    record = {"user_id": "u", "item_id": "i", "timestamp": 1, "event_type": "buy"}
    assert parser.parse(record, "s", 1).event_type == "interaction"


def test_event_type_weights_apply_when_there_is_no_weight():
    weights = {"buy": 5.0, "click": 0.5}
    parser = event_parser(event_type_weights=weights)
    assert parser.parse(event_record(event_type="buy"), "s", 1).weight == 5.0
    assert parser.parse(event_record(event_type="click", weight=None), "s", 1).weight == 0.5
    assert parser.parse(event_record(event_type="click", weight=" "), "s", 1).weight == 0.5
    assert parser.parse(event_record(event_type="view"), "s", 1).weight == 1.0
    assert parser.parse(event_record(event_type="buy", weight="0.25"), "s", 1).weight == 0.25
    assert parser.parse(event_record(event_type="buy", weight=0), "s", 1).weight == 0.0
    no_weight_field = EventParser(
        EventFields(), LIMITS, default_event_type="buy", event_type_weights=weights
    )
    record = {"user_id": "u", "item_id": "i", "timestamp": 1, "weight": 9}
    assert no_weight_field.parse(record, "s", 1).weight == 5.0


# --- items -------------------------------------------------------------------------------------


def test_valid_item():
    record = item_record(item_id=7, description=" A toy. ", categories=["Kids", "Comedy"])
    assert item_parser().parse(record, "items.jsonl", 9) == Item(
        "7", "Toy Story", "A toy.", ("Kids", "Comedy"), (), "items.jsonl", 9
    )


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"item_id": ...}, reasons.MISSING_FIELD, "item_id"),
        ({"title": ...}, reasons.MISSING_FIELD, "title"),
        ({"title": ""}, reasons.EMPTY_FIELD, "title"),
        ({"title": None}, reasons.EMPTY_FIELD, "title"),
        ({"item_id": "i\n2"}, reasons.BAD_VALUE, "item_id"),
        ({"title": ["a"]}, reasons.BAD_VALUE, "title"),
        ({"description": {"x": 1}}, reasons.BAD_VALUE, "description"),
        ({"categories": ["a", ["b"]]}, reasons.BAD_VALUE, "categories"),
        ({"categories": {"a": 1}}, reasons.BAD_VALUE, "categories"),
        ({"item_id": "i" * 9}, reasons.OVERSIZED, "item_id"),
        ({"title": "t" * 21}, reasons.OVERSIZED, "title"),
        ({"description": "d" * 21}, reasons.OVERSIZED, "description"),
        ({"categories": ["c" * 21]}, reasons.OVERSIZED, "categories"),
    ],
)
def test_item_rejections_name_reason_and_field(changes, reason, field):
    error = rejection(item_parser(), item_record(**changes))
    assert (error.reason, error.field) == (reason, field)


def test_control_characters_are_allowed_in_text_fields():
    item = item_parser().parse(item_record(title="A\tB"), "s", 1)
    assert item.title == "A\tB"


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        ("Drama|Comedy|Drama", ("Drama", "Comedy")),
        (" Drama | | Comedy |", ("Drama", "Comedy")),
        ("", ()),
        (None, ()),
        (["b", "a", "b", "", " ", None, " a "], ("b", "a")),
        (("x", 3), ("x", "3")),
        ([], ()),
    ],
)
def test_categories_from_a_list_or_a_delimited_string(categories, expected):
    item = item_parser().parse(item_record(categories=categories), "s", 1)
    assert item.categories == expected


def test_category_delimiter_and_missing_categories():
    parser = item_parser(category_delimiter=";")
    assert parser.parse(item_record(categories="a|b;c"), "s", 1).categories == ("a|b", "c")
    assert parser.parse(item_record(categories=...), "s", 1).categories == ()
    no_field = ItemParser(ItemFields(categories=None, description=None), LIMITS)
    item = no_field.parse(item_record(description="ignored"), "s", 1)
    assert (item.categories, item.description) == ((), "")


def test_extra_text_fields_in_order():
    parser = item_parser(extra_text_fields=["tags", "director", "notes"])
    record = item_record(tags=["funny", None, "pixar"], director="Lasseter")
    assert parser.parse(record, "s", 1).extra_text == ("funny pixar", "Lasseter", "")


# --- item_text ---------------------------------------------------------------------------------


def make_item(title="Toy Story", description="", categories=(), extra=()) -> Item:
    return Item("1", title, description, tuple(categories), tuple(extra), "s", 1)


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (make_item(), "Toy Story."),
        (make_item(title="Toy Story (1995)."), "Toy Story (1995)."),
        (
            make_item(categories=["Animation", "Comedy"]),
            "Toy Story. Categories: Animation, Comedy.",
        ),
        (make_item(description="A toy comes alive."), "Toy Story. A toy comes alive."),
        (
            make_item(description="Toys.", categories=["Kids"], extra=["", "funny", "pixar"]),
            "Toy Story. Categories: Kids. Toys. funny pixar",
        ),
        (make_item(extra=["", ""]), "Toy Story."),
    ],
)
def test_item_text_joins_non_empty_parts(item, text):
    assert item_text(item) == text


# --- dead letters ------------------------------------------------------------------------------


def test_dead_letter_shape():
    error = rejection(event_parser(), event_record(rating="five"))
    letter = dead_letter("events", "data/events.jsonl", 3, error, '{"rating": "five"}')
    assert letter == {
        "input": "events",
        "source": "data/events.jsonl",
        "line": 3,
        "reason": "invalid_value",
        "field": "rating",
        "detail": error.detail,
        "raw": '{"rating": "five"}',
    }
    assert "five" in letter["detail"]


def test_dead_letter_field_may_be_none():
    error = RecordError(reasons.MALFORMED, "not valid JSON")
    assert dead_letter("items", "f", 1, error, "x")["field"] is None


def test_huge_integer_rating_is_a_record_error():
    error = rejection(event_parser(), event_record(rating=10**400))
    assert (error.reason, error.field) == (reasons.BAD_VALUE, "rating")


def test_huge_integer_timestamp_is_a_record_error():
    error = rejection(event_parser(), event_record(timestamp=10**400))
    assert (error.reason, error.field) == (reasons.BAD_TIMESTAMP, "timestamp")
