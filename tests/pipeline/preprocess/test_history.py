"""Tests of per-user timelines: order, de-duplication and leak-free histories."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.preprocess.history import TimelineEvent, build_timeline
from pipeline.preprocess.records import Event


def ev(item: str, timestamp: int, line: int, event_type: str = "click", source="e.jsonl"):
    return Event("u1", item, timestamp, event_type, 1.0, 1.0, source, line)


def test_hand_written_timeline():
    events = [
        ev("c", 20, 3),
        ev("a", 10, 1),
        ev("b", 10, 2),
        ev("a", 10, 4),  # duplicate of line 1
        ev("a", 10, 5, "buy"),  # same item and time, other type: kept
        ev("d", 30, 6),
        ev("e", 40, 7),
    ]
    timeline, duplicates = build_timeline(events, history_length=3)
    assert timeline == [
        TimelineEvent(ev("a", 10, 1), (), ()),
        TimelineEvent(ev("b", 10, 2), (), ()),
        TimelineEvent(ev("a", 10, 5, "buy"), (), ()),
        TimelineEvent(ev("c", 20, 3), ("a", "b", "a"), (10, 10, 10)),
        TimelineEvent(ev("d", 30, 6), ("b", "a", "c"), (10, 10, 20)),
        TimelineEvent(ev("e", 40, 7), ("a", "c", "d"), (10, 20, 30)),
    ]
    assert duplicates == [(ev("a", 10, 4), ev("a", 10, 1))]


def test_empty_and_single_event():
    assert build_timeline([], 5) == ([], [])
    timeline, duplicates = build_timeline([ev("a", 1, 1)], 5)
    assert timeline == [TimelineEvent(ev("a", 1, 1), (), ())]
    assert duplicates == []


def test_ties_are_ordered_by_input_position_across_files():
    events = [ev("x", 5, 1, source="b.jsonl"), ev("y", 5, 9, source="a.jsonl"), ev("z", 6, 1)]
    timeline, _ = build_timeline(events, 5)
    assert [t.event.item_id for t in timeline] == ["y", "x", "z"]
    assert timeline[2].history_item_ids == ("y", "x")


# --- property test against a brute-force reference ------------------------------------------------

SOURCES = ("a.jsonl", "b.jsonl")


@st.composite
def user_events(draw) -> list[Event]:
    n = draw(st.integers(0, 14))
    events = []
    for line in range(1, n + 1):
        events.append(
            Event(
                "u1",
                draw(st.sampled_from("abc")),
                draw(st.integers(0, 4)),
                draw(st.sampled_from(("click", "buy"))),
                draw(st.sampled_from((1.0, 3.0))),
                1.0,
                draw(st.sampled_from(SOURCES)),
                line,
            )
        )
    return events


def position(e: Event) -> tuple[str, int]:
    return (e.source, e.line)


def reference(events: list[Event], h: int):
    """Brute force: keep the earliest input position per (item, time, type); history = the last
    h kept events strictly earlier in time, ordered by (time, input position)."""
    kept = [
        e
        for e in events
        if not any(
            (o.item_id, o.timestamp, o.event_type) == (e.item_id, e.timestamp, e.event_type)
            and position(o) < position(e)
            for o in events
        )
    ]
    kept.sort(key=lambda e: (e.timestamp, position(e)))
    histories = {}
    for e in kept:
        earlier = [o for o in kept if o.timestamp < e.timestamp]
        histories[e] = earlier[-h:]
    duplicates = {
        (e, k)
        for e in events
        if e not in kept
        for k in kept
        if (k.item_id, k.timestamp, k.event_type) == (e.item_id, e.timestamp, e.event_type)
    }
    return kept, histories, duplicates


@settings(max_examples=200, deadline=None, database=None)
@given(events=user_events(), h=st.integers(1, 4), data=st.data())
def test_timeline_matches_brute_force_reference(events, h, data):
    timeline, duplicates = build_timeline(events, h)
    kept, histories, expected_duplicates = reference(events, h)

    assert [t.event for t in timeline] == kept
    for t in timeline:
        assert len(t.history_item_ids) <= h
        assert len(t.history_item_ids) == len(t.history_timestamps)
        assert all(ts < t.event.timestamp for ts in t.history_timestamps)
        expected = histories[t.event]
        assert t.history_item_ids == tuple(e.item_id for e in expected)
        assert t.history_timestamps == tuple(e.timestamp for e in expected)
    assert set(duplicates) == expected_duplicates
    assert len(duplicates) == len(events) - len(kept)
    for duplicate, original in duplicates:
        assert position(original) < position(duplicate)

    shuffled = data.draw(st.permutations(events))
    assert build_timeline(shuffled, h) == (timeline, duplicates)
